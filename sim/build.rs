//! Compiles the one routine Rust cannot define on stable: the variadic `DbgPrint` (csrc/dbgprint.c).
//! Nothing is built for other targets than Linux, where the crate itself is empty.

fn main() {
    println!("cargo:rerun-if-changed=csrc/dbgprint.c");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    cc::Build::new()
        .file("csrc/dbgprint.c")
        .warnings(true)
        .extra_warnings(true)
        .compile("wsk_sim_dbgprint");
}
