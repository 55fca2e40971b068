// The connect form of `stream` needs `wsk::ConnectionHandler`.
#[wsk::wsk_endpoint(kind = "stream", remote = "[::1]:9000")]
struct Endpoint;

fn main() {}
