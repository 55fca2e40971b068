#[wsk::wsk_endpoint(kind = "listen", addr = "[fe80::12345]:8080")]
struct Endpoint;

fn main() {}
