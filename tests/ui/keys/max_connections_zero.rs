#[wsk::wsk_endpoint(kind = "listen", addr = "0.0.0.0:80", max_connections = 0)]
struct Endpoint;

fn main() {}
