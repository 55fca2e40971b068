// The stub `Endpoint` impl keeps code that uses the struct as an endpoint free of follow-up errors.
#[wsk::wsk_endpoint(kind = "lisen", addr = "0.0.0.0:8080")]
struct Endpoint;

fn start(rt: &'static wsk::Runtime) -> wsk::Result<()> {
    static ENDPOINT: Endpoint = Endpoint;
    wsk::Endpoint::start(&ENDPOINT, rt)
}

fn main() {
    let _ = start;
}
