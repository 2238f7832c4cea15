//! The target bodies shared with the plain tests: `slowpath/tests/hostile_support` is compiled
//! into this crate as is.

#[path = "../../tests/hostile_support/mod.rs"]
pub mod support;
