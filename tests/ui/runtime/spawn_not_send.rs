// Tasks may be spawned from any thread and run on the executor's: a future that is not `Send` (here it
// holds an `Rc` across an await) is refused at compile time.
static RT: wsk::Runtime = wsk::Runtime::new();

fn main() {
    let shared = std::rc::Rc::new(0u32);
    let _ = RT.spawn(async move {
        wsk::yield_now().await;
        drop(shared);
    });
}
