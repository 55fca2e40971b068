#[wsk::wsk_endpoint(kind = "stream", remote = "10.0.0.1:80", max_connections = 8)]
struct Endpoint;

fn main() {}
