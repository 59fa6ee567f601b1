//! The crate's one error type.

use sable_sip::ParseError;

/// What can go wrong when a transaction key or an ACK is derived from a message.
///
/// Every variant is a fault of the message, so each knows the reply a server would send
/// for it ([`TransactionError::status`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransactionError {
    /// A header the matching rules need is missing or malformed (RFC 3261 §17.1.3, §17.2.3).
    #[error("bad or missing {header}: {source}")]
    BadHeader {
        /// The header, by its canonical name (`Via`, `CSeq`, `Call-ID`, ...).
        header: &'static str,
        /// The parser's diagnosis.
        #[source]
        source: ParseError,
    },
    /// A request was needed (e.g. [`crate::TransactionKey::of_request`] on a response).
    #[error("expected a request, got a response")]
    NotARequest,
    /// A response was needed (e.g. [`crate::TransactionKey::of_response`] on a request).
    #[error("expected a response, got a request")]
    NotAResponse,
    /// Client-side matching (RFC 3261 §17.1.3) needs an RFC 3261 branch in the top Via:
    /// Sable always sends one, so a response without it belongs to no client transaction.
    #[error("the top Via has no RFC 3261 branch (z9hG4bK...)")]
    NoRfc3261Branch,
    /// [`crate::TransactionKey::invite_key_of`] was given a request that is neither ACK nor
    /// CANCEL.
    #[error("{method} does not refer to an INVITE transaction (only ACK and CANCEL do)")]
    NotAckOrCancel {
        /// The method as written.
        method: String,
    },
}

/// The key-derivation errors are the crate's errors.
pub type KeyError = TransactionError;

impl TransactionError {
    /// The SIP status a server answers a request with when this error concerns it: 400 for a
    /// malformed request (RFC 3261 §8.2.2), 500 for a misuse by the caller (which is a bug of
    /// ours, not of the peer).
    pub fn status(&self) -> u16 {
        match self {
            TransactionError::BadHeader { source, .. } => source.status(),
            TransactionError::NoRfc3261Branch => 400,
            TransactionError::NotARequest
            | TransactionError::NotAResponse
            | TransactionError::NotAckOrCancel { .. } => 500,
        }
    }

    pub(crate) fn bad(header: &'static str) -> impl FnOnce(ParseError) -> TransactionError {
        move |source| TransactionError::BadHeader { header, source }
    }
}
