//! Empty: this package only holds the trybuild test `tests/compiletest.rs` (see its
//! `Cargo.toml` for why it is a package of its own).
