#[wsk::wsk_endpoint(kind = "connection", remote = "127.0.0.1:80")]
struct Endpoint;

fn main() {}
