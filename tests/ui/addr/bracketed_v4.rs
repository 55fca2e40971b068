#[wsk::wsk_endpoint(kind = "listen", addr = "[10.0.0.1]:80")]
struct Endpoint;

fn main() {}
