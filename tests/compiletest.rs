//! Compile-time behaviour of `#[differentiable]`: what must compile (`tests/ui/pass`), what
//! must be rejected with an error on the offending tokens (`tests/ui/fail`, one mistake per
//! file, expected output in the `.stderr` next to it; regenerate with
//! `TRYBUILD=overwrite cargo test --test compiletest` and read the diff).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
