//! Why a verification ended in Kamailio's generic error (-1).

use crate::algorithm::Algorithm;

/// The faults behind [`crate::Outcome::Error`]: credentials that cannot be checked. The
/// script sees -1 for all of them; the variant is for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// A parameter RFC 7616 §3.4 requires is absent (`username`, `realm`, `nonce`, `uri`,
    /// `response`; `cnonce` and `nc` with a qop). Kamailio: `check_dig_cred` fails.
    #[error("digest credentials lack the {0} parameter")]
    MissingParameter(&'static str),
    /// A parameter is present but not usable (`nc` not 8 hex digits, an unknown `qop`).
    #[error("digest credentials have a bad {0} parameter")]
    BadParameter(&'static str),
    /// The `algorithm` names a hash this crate does not compute.
    #[error("unsupported digest algorithm")]
    UnsupportedAlgorithm,
    /// The `algorithm` is one we compute but did not offer.
    #[error("digest algorithm {0} was not offered")]
    AlgorithmNotOffered(Algorithm),
    /// The `response` has the wrong length for the algorithm (Kamailio: BAD_CREDENTIALS).
    #[error("digest response has {got} characters, {expected} expected")]
    ResponseLength {
        /// Hex digits the algorithm gives.
        expected: usize,
        /// Characters received.
        got: usize,
    },
    /// The nonce was not made by us or was altered (Kamailio: NOT_AUTHENTICATED, -1).
    #[error("nonce not issued by this server")]
    InvalidNonce,
    /// The realm to check against is empty (Kamailio refuses an empty realm parameter).
    #[error("empty realm")]
    EmptyRealm,
    /// An Authorization/Proxy-Authorization value could not be parsed (Kamailio:
    /// `find_credentials` fails). The glue reports it when `Message::credentials` errs.
    #[error("malformed credentials")]
    MalformedCredentials,
}
