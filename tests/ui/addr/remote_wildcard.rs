#[wsk::wsk_endpoint(kind = "connection", remote = "0.0.0.0:80")]
struct Endpoint;

fn main() {}
