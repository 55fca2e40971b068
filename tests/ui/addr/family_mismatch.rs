#[wsk::wsk_endpoint(kind = "connection", remote = "[::1]:80", addr = "0.0.0.0:0")]
struct Endpoint;

fn main() {}
