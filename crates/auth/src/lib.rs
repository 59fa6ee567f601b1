//! Sans-IO digest authentication for SIP: what Kamailio 5.6's `auth` module computes, so
//! that Sable's `auth` and `auth_db` script modules only glue it to messages and to the
//! subscriber table.
//!
//! # What this crate owns
//!
//! * [`algorithm`]: MD5, SHA-256 and their `-sess` variants; HA1 and the response of
//!   RFC 7616 §3.4.1 (with qop `auth`/`auth-int`, or without qop as RFC 2069 clients send);
//!   a constant-time comparison.
//! * [`nonce`]: [`NonceMaker`], nonces carrying their creation time and a nonce-count index
//!   under an HMAC-SHA256 tag keyed by the server secret; [`NonceMaker::check`] says
//!   valid, stale or invalid at a time given by the caller.
//! * [`replay`]: [`NonceTracker`], Kamailio's `nonce_count` (each nonce's nc must grow) and
//!   `one_time_nonce`, lock-free and bounded, shared by every worker thread.
//! * [`verify`]: [`Verifier`], the checks of `www_authorize`, `proxy_authorize`,
//!   `auth_check`, `pv_*_authorize` in Kamailio's order, giving an [`Outcome`] with
//!   Kamailio's return code; [`check_identity`] for `auth_check`'s flag 1.
//! * [`challenge`]: WWW-Authenticate / Proxy-Authenticate values byte for byte as Kamailio
//!   writes them, several algorithms per RFC 8760, Authentication-Info.
//! * [`credentials`]: choosing the credentials for a realm, `has_credentials`,
//!   `realm_prefix`.
//!
//! It does not read clocks (every time is a `now` argument in UNIX seconds), does not touch
//! messages beyond the parsed credentials of `sable-sip`, sends no replies, holds no
//! subscriber data and does not log: the glue does those, and decides the reply.
//!
//! # Kamailio behaviour relied on
//!
//! From the `auth` and `auth_db` module documentation and sources (5.6):
//!
//! **Return codes** (`auth_cfg_result_t`), shared by `www_authorize`/`www_authenticate`,
//! `proxy_authorize`/`proxy_authenticate`, `auth_check` and the `pv_*` functions:
//!
//! | code | meaning | produced here when |
//! |---|---|---|
//! | 1 | authenticated | the response matches; or the method is ACK, CANCEL or PRACK |
//! | -1 | generic error | credentials malformed or incomplete, qop/nc unusable, unknown or unoffered algorithm, response of the wrong length, nonce not ours or altered, empty realm |
//! | -2 | invalid password | the response does not match |
//! | -3 | invalid user | no such subscriber (`auth_db`) |
//! | -4 | nonce expired | nonce older than `nonce_expire`, from before the start or too far in the future; with `nonce_count`: nc replayed, above 255, or the nonce forgotten |
//! | -5 | no credentials | no Digest credentials with the realm |
//! | -6 | nonce reused | a one-time nonce used twice |
//! | -8 | auth user mismatch | `auth_check` flag 1: auth user is not the From/To/R-URI user |
//!
//! (-7, ephemeral username expired, belongs to `auth_ephemeral`.) A nonce that fails its
//! integrity check is -1 in Kamailio, not -4: only a genuine but old nonce is stale. Kamailio
//! checks the response with the hash of its `algorithm` parameter whatever the credentials
//! say; here the credentials' `algorithm` must be one offered ([`Verifier::with_algorithms`])
//! and is used, which gives the same codes for the same exchanges (a mismatch has the
//! wrong response length: -1).
//!
//! **Challenge format** (`get_challenge_hf`): `Digest realm="R", nonce="N"` then, in this
//! order and only when asked, `, qop="auth"` (or `"auth-int"`), `, stale=true`,
//! `, algorithm=A`. `www_challenge`/`proxy_challenge`/`auth_challenge` flags: 1 qop=auth,
//! 2 qop=auth-int, 4 no automatic 500 on failure, 16 stale=true. In 5.6 `stale=true` is
//! never added implicitly: a script challenges with flag 16 after -4. `algorithm=` is
//! written only when the `algorithm` parameter is set ("" by default: MD5, not written).
//! 401 "Unauthorized" with WWW-Authenticate, 407 "Proxy Authentication Required" with
//! Proxy-Authenticate; `auth_challenge` picks 401 for REGISTER, 407 otherwise.
//!
//! **stale=true** (RFC 7616 §3.3): the nonce was ours and the credentials may well be
//! right; the client recomputes with the new nonce without asking the user again.
//!
//! **Nonces**: `nonce_expire` defaults to 300 s; a nonce is stale when its expiry time is
//! in the past; `nonce_auth_max_drift` (3 s) bounds creation times in the future; nonces
//! from before the start are stale. The secret defaults to random at start; servers that
//! must accept each other's nonces share it.
//!
//! **nonce_count** (needs `qop`): the nc of a nonce must be greater than the last one
//! accepted; state for at most `nc_array_size` (2^20) nonces, older ones overwritten; nc
//! at most 255; a failing nc is answered as stale (-4). Without an nc in the credentials
//! the nc check is skipped (and `one_time_nonce`, if on, applies). The nc is recorded before
//! the password is checked unless the `pv_*` flag 32 asks otherwise.
//!
//! **Credentials selection** (`find_credentials`): the first Authorization (or
//! Proxy-Authorization) value whose realm equals the wanted one, case-insensitively;
//! `has_credentials` looks at Proxy-Authorization, then Authorization.
//!
//! # Example
//!
//! ```
//! use sable_auth::{
//!     challenge_value, Algorithm, ChallengeOptions, NonceMaker, Outcome, Request, Stored,
//!     Verifier,
//! };
//! use sable_sip::Credentials;
//!
//! let nonces = NonceMaker::new(b"a long random secret", 300);
//! let now = 1_700_000_000;
//! let nonce = nonces.make(now, 0);
//! let challenge = challenge_value(b"example.com", &nonce, &ChallengeOptions::default());
//! assert!(challenge.starts_with(b"Digest realm=\"example.com\", nonce=\""));
//!
//! // The client's answer (computed here as a client would).
//! let ha1 = sable_auth::ha1(Algorithm::Md5, b"alice", b"example.com", b"secret");
//! let response = sable_auth::response(
//!     Algorithm::Md5,
//!     ha1.as_bytes(),
//!     &sable_auth::ResponseInput {
//!         method: b"REGISTER",
//!         uri: b"sip:example.com",
//!         nonce: nonce.as_bytes(),
//!         qop: None,
//!         body: b"",
//!     },
//! );
//! let header = format!(
//!     "Digest username=\"alice\", realm=\"example.com\", nonce=\"{nonce}\", \
//!      uri=\"sip:example.com\", response=\"{response}\""
//! );
//! let list = [Credentials::parse(header.as_bytes()).unwrap()];
//!
//! let request = Request { method: b"REGISTER", realm: b"example.com", body: b"" };
//! let outcome = Verifier::new(&nonces).verify(request, &list, Some(Stored::Password(b"secret")), now + 5);
//! assert_eq!(outcome, Outcome::Authenticated);
//! assert_eq!(outcome.code(), 1);
//! ```

pub mod algorithm;
pub mod challenge;
pub mod credentials;
pub mod error;
pub mod nonce;
pub mod replay;
pub mod verify;

pub use algorithm::{
    constant_time_eq, ha1, response, Algorithm, HexDigest, Qop, QopInput, ResponseInput,
};
pub use challenge::{
    authentication_info_value, challenge_header, challenge_value, challenge_values, rspauth,
    ChallengeKind, ChallengeOptions,
};
pub use credentials::{
    has_credentials, is_exempt_method, select, split_username, strip_realm_prefix,
};
pub use error::AuthError;
pub use nonce::{NonceCheck, NonceMaker};
pub use replay::{NcCheck, NonceTracker};
pub use verify::{
    check_identity, Identity, IdentityChecks, Outcome, Pending, Precheck, Request, Stored,
    UserHost, Verifier,
};
