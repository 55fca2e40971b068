#[wsk::wsk_endpoint(kind = "datagram", addr = "0.0.0.0:53")]
struct Endpoint;

fn main() {}
