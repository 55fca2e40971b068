#[wsk::wsk_endpoint(kind = "connection", remote = "[::1]:80", v6only)]
struct Endpoint;

fn main() {}
