#[wsk::wsk_endpoint(kind = "listen", addr = "0.0.0.0:80", events = "accept")]
struct Endpoint;

fn main() {}
