#[wsk::wsk_endpoint(kind = "connection", remote = "10.0.0.1:80", events(receive, receive))]
struct Endpoint;

fn main() {}
