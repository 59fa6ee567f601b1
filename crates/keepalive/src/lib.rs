//! `sable-keepalive`: the destination monitor of Kamailio's `keepalive` module (seed 002),
//! as plain data.
//!
//! What it owns: destinations as operators write them ([`Destination`]: `[sip:|sips:]host
//! [:port][;params]`, `sip:` added when missing, a normalised key so that two spellings of
//! one destination are one); the table of monitored destinations ([`Monitor`]), whose
//! identity is the pair (URI, owner); the probe schedule (first probe 500 ms after the
//! addition plus a phase, then one per interval; phases spread evenly over the interval);
//! the UP/DOWN decision on a probe's final code (2xx UP, anything else DOWN, the first result
//! always a change); the failure counter and `delete_counter` (probing stops for good once
//! more than `delete_counter` probes in a row failed; the record stays, DOWN).
//!
//! What it does not do: send anything (the module sends the [`Probe`]s through tm), read a
//! clock (`now` is a monotonic [`Millis`] given by the caller, `wall` UNIX seconds for the
//! timestamps shown by `keepalive.list`), run callbacks or routes (the module does, from the
//! [`Outcome`] of a result), or lock (the module wraps the monitor in one mutex: every
//! operation is a few hash lookups or heap operations, O(log n) at worst).
//!
//! # Behaviour, from the seed and the reference notes (section 10)
//!
//! - States: 0 unknown (until the first result), 1 up, 2 down ([`State`]).
//! - A final reply 200-299 is UP, any other final code (404, 408 for a timeout, 503, 6xx...)
//!   is DOWN; so is a probe that could not be sent (code 0). UP resets the failure counter
//!   and stamps `last_up`; DOWN increments it and stamps `last_down` (Kamailio 6.0's order;
//!   5.6 swapped the two stamps).
//! - No hysteresis: one result flips the state.
//! - `delete_counter` (default 5, 0 disables) is checked when a probe is due: with 5, six
//!   failed probes are sent, then none. Adding the same destination again only resets the
//!   counter; it does not restart probing (D10, kept for compatibility); removing and adding
//!   does.
//! - Lookups are by normalised key (D9): `ka_is_alive("192.0.2.5")`,
//!   `ka_is_alive("sip:192.0.2.5:5060")` and `sips:` destinations all work, and adding a
//!   destination without `sip:` twice is a duplicate, not two records.

pub mod destination;
pub mod monitor;

pub use destination::Destination;
pub use monitor::{Added, Config, Dest, Monitor, Outcome, Probe, FIRST_PROBE_DELAY};

/// A monotonic time in milliseconds (the caller's clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millis(pub u64);

/// A destination's state, with Kamailio's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Not probed yet (no result so far).
    Unknown = 0,
    Up = 1,
    Down = 2,
}

impl State {
    /// Kamailio's number for the state.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// Why a destination was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeepaliveError {
    #[error("empty destination")]
    Empty,
    #[error("invalid destination <{uri}>: {reason}")]
    BadUri { uri: String, reason: String },
}
