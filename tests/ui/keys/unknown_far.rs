// Far from every key: no suggestion, the list of keys.
#[wsk::wsk_endpoint(kind = "listen", addr = "0.0.0.0:80", port = 80)]
struct Endpoint;

fn main() {}
