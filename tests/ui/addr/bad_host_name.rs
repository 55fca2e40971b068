#[wsk::wsk_endpoint(kind = "connection", remote = "my_host.example:80")]
struct Endpoint;

fn main() {}
