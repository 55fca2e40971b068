#[wsk::wsk_endpoint(kind = "datagram", addr = "0.0.0.0:53", max_connections = 8)]
struct Endpoint;

fn main() {}
