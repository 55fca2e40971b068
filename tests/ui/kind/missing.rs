#[wsk::wsk_endpoint(addr = "0.0.0.0:8080")]
struct Endpoint;

fn main() {}
