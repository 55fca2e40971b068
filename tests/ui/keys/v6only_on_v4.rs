#[wsk::wsk_endpoint(kind = "listen", addr = "0.0.0.0:80", v6only)]
struct Endpoint;

fn main() {}
