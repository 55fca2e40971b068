#[wsk::wsk_endpoint(kind = "listen", addr = "0.0.0.0:80", backlog = 16)]
struct Endpoint;

fn main() {}
