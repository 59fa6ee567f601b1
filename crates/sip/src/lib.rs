//! `sable-sip`: the sans-IO SIP message core of Sable.
//!
//! What this crate owns:
//! - [`Message`]: a SIP request or response parsed in place from one buffer (RFC 3261 §7):
//!   the start line and an index of every header value as byte spans, in order, with compact
//!   names resolved and multi-value lines split where the grammar allows. Typed views
//!   ([`Via`], [`NameAddr`], [`CSeq`], ...) are parsed on first use and cached.
//! - [`Uri`]: `sip:`/`sips:` (RFC 3261 §19.1), `tel:` (RFC 3966) and any other absolute URI,
//!   with RFC 3261 §19.1.4 equality.
//! - [`Edits`]: changes recorded as lumps against the original buffer and applied in one pass
//!   by the serializer, which copies untouched bytes as they were.
//! - [`StreamFramer`]: cuts messages out of a TCP/TLS byte stream (RFC 3261 §18.3) and
//!   recognises RFC 5626 CRLF keep-alives.
//!
//! What it does not do: sockets, clocks, threads, transactions or routing. Time and I/O belong
//! to the callers (see `ARCHITECTURE.md`).
//!
//! Nothing here panics on input: every fault is a [`ParseError`] that says what and where and
//! which reply it implies.

pub mod error;
mod find;
pub mod scan;
mod simd;
#[cfg(test)]
mod test_rng;

pub mod auth;
pub mod edit;
pub mod framer;
pub mod header;
pub mod message;
pub mod method;
pub mod name_addr;
pub mod params;
pub mod uri;
pub mod values;
pub mod via;

pub use auth::Credentials;
pub use edit::Edits;
pub use error::{ParseError, ParseErrorKind};
pub use framer::{Frame, FramerLimits, StreamFramer};
pub use header::{HeaderName, HeaderValue};
pub use message::{Message, StartLine};
pub use method::Method;
pub use name_addr::{Contact, NameAddr};
pub use params::Params;
pub use uri::{Host, SipUri, TelUri, Uri};
pub use values::{CSeq, ContentType, Event};
pub use via::Via;
