#[wsk::wsk_endpoint(kind = "connection", remote = "255.255.255.255:80")]
struct Endpoint;

fn main() {}
