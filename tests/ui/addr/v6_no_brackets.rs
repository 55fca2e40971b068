#[wsk::wsk_endpoint(kind = "listen", addr = "fe80::1:8080")]
struct Endpoint;

fn main() {}
