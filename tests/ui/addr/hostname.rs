#[wsk::wsk_endpoint(kind = "listen", addr = "localhost:8080")]
struct Endpoint;

fn main() {}
