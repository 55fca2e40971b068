#[wsk::wsk_endpoint(kind = "listen", adr = "0.0.0.0:80")]
struct Endpoint;

fn main() {}
