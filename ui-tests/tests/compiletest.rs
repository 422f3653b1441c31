//! Compile-time behaviour of `#[differentiable]`: what must compile (`tests/ui/pass`), what
//! must be rejected with an error on the offending tokens (`tests/ui/fail`, one mistake per
//! file, expected output in the `.stderr` next to it; regenerate with
//! `TRYBUILD=overwrite cargo test -p symgrad-ui-tests` and read the diff).
//!
//! `tests/ui` here is a symbolic link to the workspace's `tests/ui`. The cases are built
//! against `symgrad` with `default-features = false` (this package's only dependency besides
//! trybuild), in `target/tests/trybuild`, which later runs reuse.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
