//! Compile-fail cases of `#[wsk_endpoint]`: `tests/ui/<category>/<case>.rs` with the expected compiler
//! output beside each in a `.stderr`. Blessed on the pinned toolchain with
//! `TRYBUILD=overwrite cargo test -p wsk-tests --test ui`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/*/*.rs");
}
