//! Integration tests: the real `sable` binary on loopback, driven over UDP and TCP, with
//! SIPp where it is installed. One test binary; modules by topic.

// Test code: a panic is a failed assertion.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod auth;
mod check;
mod control;
mod core;
mod dialog;
mod dlgs;
mod harness;
mod keepalive;
mod malformed;
mod peerstate;
mod registrar;
mod routing;
mod seed;
mod sidebyside;
mod signals;
mod tm;
mod tm_core;
