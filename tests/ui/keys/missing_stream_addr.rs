#[wsk::wsk_endpoint(kind = "stream")]
struct Endpoint;

fn main() {}
