//! Compiles the one routine Rust cannot define on stable: the variadic `DbgPrint`.

fn main() {
    println!("cargo:rerun-if-changed=csrc/dbgprint.c");
    cc::Build::new().file("csrc/dbgprint.c").warnings(true).extra_warnings(true).compile("wsk_sim_dbgprint");
}
