#[wsk::wsk_endpoint(kind = "listen", addr = "0.0.0.0:80", exclusive = 1)]
struct Endpoint;

fn main() {}
