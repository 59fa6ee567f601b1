//! Integration tests of sable-transaction: matching keys and a lossy-network simulator.

// Helpers outside `#[test]` functions are test code too: a panic there is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod matching;
mod simulator;
