// A datagram endpoint expands; the struct has no `wsk::DatagramHandler` impl: the error is at its name.
#[wsk::wsk_endpoint(kind = "datagram", addr = "0.0.0.0:53")]
struct Endpoint;

fn main() {}
