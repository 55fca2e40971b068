#[wsk::wsk_endpoint(kind = "connection", addr = "0.0.0.0:0")]
struct Endpoint;

fn main() {}
