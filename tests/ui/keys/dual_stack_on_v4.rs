#[wsk::wsk_endpoint(kind = "listen", addr = "0.0.0.0:80", dual_stack)]
struct Endpoint;

fn main() {}
