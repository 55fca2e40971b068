#[wsk::wsk_endpoint(kind = "listen", addr = "0.0.0.0:80", protocol = "udp")]
struct Endpoint;

fn main() {}
