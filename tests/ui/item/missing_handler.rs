// A valid attribute, but the struct has no `wsk::ListenHandler` impl: the error points at the struct's name.
#[wsk::wsk_endpoint(kind = "listen", addr = "0.0.0.0:8080")]
struct Endpoint;

fn main() {}
