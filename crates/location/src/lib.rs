//! `sable-location`: who is where, as plain data and pure functions.
//!
//! What it owns: the binding set of one address-of-record ([`Record`] of [`Contact`]s, each
//! binding packed in one heap block, see [`contact`]), and
//! the rules a registrar applies to a REGISTER (RFC 3261 §10.3) the way Kamailio's
//! `registrar` + `usrloc` apply them ([`save`]): `Contact: *` with `Expires: 0`, Call-ID/CSeq
//! ordering (a lower CSeq for the same Call-ID is refused, an equal one within `cseq_delay`
//! is a retransmission), expiry from the Contact parameter / Expires header / default with
//! the `expires_range` randomisation, `min_expires`/`max_expires`, `max_contacts`, q
//! ordering, `+sip.instance`/reg-id matching (RFC 5626), Path (RFC 3327); which contacts are
//! valid at `now`, which expired ([`Record::expire`]), the order `lookup()` forks them in,
//! the Contact list of a 200, the AOR of a URI.
//!
//! What it does not do: parse SIP (the caller hands over a [`RegisterRequest`] made from
//! the message), keep tables, read clocks or random numbers (`now` and a random source are
//! parameters), or store anything. Times are UNIX seconds.

pub mod contact;
pub mod record;
pub mod save;

pub use contact::{intern, Contact, ContactData, Ruid, UNSPECIFIED_Q};
pub use record::{aor_of, q_text, Record};
pub use save::{
    save, ContactRequest, Matching, RegisterError, RegisterRequest, RegistrarConfig, SaveFlags,
    SaveResult, Saved,
};
