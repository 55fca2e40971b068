#[wsk::wsk_endpoint(kind = "listen", addr = "[::]:80", v6only, dual_stack)]
struct Endpoint;

fn main() {}
