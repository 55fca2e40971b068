// Two edits from `addr`: suggested, and counted as `addr` (no "missing `addr`").
#[wsk::wsk_endpoint(kind = "listen", ad = "0.0.0.0:80")]
struct Endpoint;

fn main() {}
