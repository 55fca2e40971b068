#[wsk::wsk_endpoint(kind = "conecton", remote = "10.0.0.1:80")]
struct Endpoint;

fn main() {}
