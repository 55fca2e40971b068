// Socket I/O takes owned, pool-allocated buffers by value: a borrowed slice could be given back to safe
// code (by leaking the future) while the provider still writes into it, so it does not compile.
async fn echo(conn: &mut wsk::Connection) -> wsk::Result<()> {
    let mut local = [0u8; 64];
    let _ = conn.recv(&mut local[..]).await;
    Ok(())
}

fn main() {
    let _ = echo;
}
