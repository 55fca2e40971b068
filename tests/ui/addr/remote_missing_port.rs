// A bad `remote` still selects the connect form of `stream`: no "missing `addr`" on top.
#[wsk::wsk_endpoint(kind = "stream", remote = "10.0.0.1")]
struct Endpoint;

fn main() {}
