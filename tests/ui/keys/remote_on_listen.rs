#[wsk::wsk_endpoint(kind = "listen", addr = "0.0.0.0:80", remote = "10.0.0.1:80")]
struct Endpoint;

fn main() {}
