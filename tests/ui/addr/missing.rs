#[wsk::wsk_endpoint(kind = "listen")]
struct Endpoint;

fn main() {}
