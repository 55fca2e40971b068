#[wsk::wsk_endpoint(kind = "listen", addr = "")]
struct Endpoint;

fn main() {}
