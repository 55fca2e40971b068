#[wsk::wsk_endpoint(kind = "connection", remote = "10.0.0.1:0")]
struct Endpoint;

fn main() {}
