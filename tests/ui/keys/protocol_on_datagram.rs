#[wsk::wsk_endpoint(kind = "datagram", addr = "0.0.0.0:53", protocol = "tcp")]
struct Endpoint;

fn main() {}
