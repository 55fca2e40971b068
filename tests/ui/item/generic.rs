#[wsk::wsk_endpoint(kind = "listen", addr = "0.0.0.0:8080")]
struct Endpoint<T> {
    state: T,
}

fn main() {}
