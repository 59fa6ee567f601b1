//! `sable-transaction`: the sans-IO SIP transaction layer of Sable (RFC 3261 §17, with the
//! INVITE fixes of RFC 6026).
//!
//! What this crate owns:
//! - [`ClientTransaction`]: the INVITE (§17.1.1) and non-INVITE (§17.1.2) client machines,
//!   including the Accepted state of RFC 6026 and the ACK for non-2xx finals
//!   ([`build_ack`], §17.1.1.3).
//! - [`ServerTransaction`]: the INVITE (§17.2.1) and non-INVITE (§17.2.2) server machines,
//!   including RFC 6026's Accepted state.
//! - [`TransactionKey`]: which transaction a message belongs to (§17.1.3, §17.2.3, with the
//!   RFC 2543 fallback), as an owned hashable key.
//! - [`Timers`], [`Timer`] and [`Millis`]: T1/T2/T4 and the timers derived from them
//!   (Table 4), as data.
//!
//! How it is driven: every machine is a plain value. The caller feeds it events (a response,
//! a timer firing, a transport error, a response from the TU...) together with `now`, and
//! gets back a list of actions: octets to send, timers to arm (`Schedule { timer, at }`),
//! things to tell the TU, and `Terminated` when the caller may drop it. A timer event for a
//! deadline that was superseded or disarmed is ignored, so the caller's timer wheel never
//! has to cancel anything.
//!
//! What it does not do: sockets, clocks, threads or locks (the engine keeps transactions in
//! its bucketed tables and runs the timer wheel); the 100 Trying that tm sends for an INVITE
//! (a TU decision, not a transaction one); proxy Timer C, forking, CANCEL generation, reply
//! selection and failure routes (the tm module); the retransmission of 2xx responses to
//! INVITE (end-to-end, the TU's or the UAS core's job, RFC 3261 §13.3.1.4).

pub mod client;
pub mod error;
pub mod key;
pub mod server;
pub mod timers;

pub use client::{build_ack, ClientAction, ClientKind, ClientState, ClientTransaction};
pub use error::{KeyError, TransactionError};
pub use key::{Rfc2543Key, SentBy, TransactionKey};
pub use server::{ServerAction, ServerKind, ServerState, ServerTransaction};
pub use timers::{Millis, Timer, Timers};

/// Octets a machine sends and keeps to send again (a request, an ACK, a response): shared,
/// so that handing them to the transport or keeping them for a retransmission copies
/// nothing.
pub type Octets = std::sync::Arc<[u8]>;
