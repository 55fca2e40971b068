#[wsk::wsk_endpoint(kind = "datagram", addr = "0.0.0.0:53", events(disconnect))]
struct Endpoint;

fn main() {}
