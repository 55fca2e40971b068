#[wsk::wsk_endpoint(kind = "listen", addr = "[fe80::1%eth0]:80")]
struct Endpoint;

fn main() {}
