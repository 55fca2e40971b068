#[wsk::wsk_endpoint(kind = "listen", addr = "0.0.0.0:80", addr = "0.0.0.0:81")]
struct Endpoint;

fn main() {}
