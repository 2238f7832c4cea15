//! The fixture and target bodies shared with the plain tests: `fastpath/tests/hostile_support`
//! is compiled into this crate as is, so a fuzz finding replays as a test and the other way
//! round.

#[path = "../../tests/hostile_support/mod.rs"]
pub mod support;
