#[wsk::wsk_endpoint(kind = "listen", addr = "0.0.0.0:70000")]
struct Endpoint;

fn main() {}
