#[wsk::wsk_endpoint(kind = "stream", addr = "0.0.0.0:80", events(accept))]
struct Endpoint;

fn main() {}
