#[wsk::wsk_endpoint(kind = "listen", addr = "127.0.0.1")]
struct Endpoint;

fn main() {}
