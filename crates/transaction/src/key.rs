//! Transaction matching (RFC 3261 §17.1.3, §17.2.3): which transaction a message belongs to.

use sable_sip::uri::Host;
use sable_sip::{Message, Method, Via};

use crate::error::TransactionError;

/// The sent-by of a Via, normalised for comparison: host names lower-cased (they compare
/// case-insensitively, RFC 3261 §19.1.4 via §20.42), addresses in canonical text, the port
/// as written (`None` when absent: RFC 3261 §17.2.3 compares sent-by values, it does not
/// default the port).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SentBy {
    /// Normalised host.
    pub host: String,
    /// Port, if written.
    pub port: Option<u16>,
}

impl SentBy {
    /// The normalised sent-by of a Via.
    pub fn of(via: &Via<'_>) -> SentBy {
        SentBy {
            host: normalise_host(&via.host),
            port: via.port,
        }
    }
}

fn normalise_host(host: &Host<'_>) -> String {
    match host.ip() {
        Some(ip) => ip.to_string(),
        None => String::from_utf8_lossy(host.as_bytes()).to_ascii_lowercase(),
    }
}

/// Identifies a transaction. Owned, so it can key a hash table that outlives the message.
///
/// - [`TransactionKey::Server`]: RFC 3261 §17.2.3 for requests whose top Via branch starts
///   with the magic cookie `z9hG4bK`: branch (case-sensitive, compared as octets), sent-by
///   and method, where ACK takes the method INVITE (an ACK to a non-2xx final matches the
///   INVITE server transaction) and CANCEL keeps its own (a CANCEL is its own transaction;
///   [`TransactionKey::invite_key_of`] finds the INVITE it cancels).
/// - [`TransactionKey::Rfc2543`]: the fallback of §17.2.3 for requests without the cookie.
/// - [`TransactionKey::Client`]: RFC 3261 §17.1.3, a response matched to the request this
///   side sent: top Via branch and CSeq method.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TransactionKey {
    /// Server side, RFC 3261 branch (§17.2.3).
    Server {
        /// The branch, as written (including the cookie).
        branch: Vec<u8>,
        /// The top Via's sent-by, normalised.
        sent_by: SentBy,
        /// The method of the transaction (INVITE for an ACK).
        method: Vec<u8>,
    },
    /// Server side, RFC 2543 fallback (§17.2.3, RFC 2543 §17): the request has no
    /// RFC 3261 branch. Boxed: rare, and five times the size of the other keys.
    Rfc2543(Box<Rfc2543Key>),
    /// Client side (§17.1.3): the branch this side put in its top Via and the CSeq method.
    Client {
        /// The branch, as written.
        branch: Vec<u8>,
        /// The CSeq method (INVITE for an ACK; CANCEL for a CANCEL).
        method: Vec<u8>,
    },
}

/// The key of a request without an RFC 3261 branch (see [`TransactionKey::Rfc2543`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rfc2543Key {
    /// Request-URI as written (an ACK or CANCEL repeats the INVITE's, §9.1, §17.1.1.3).
    pub request_uri: Vec<u8>,
    /// To tag. Only for methods other than INVITE: the ACK of an INVITE carries the tag
    /// of the response, which the INVITE lacked, so INVITE keys leave it out and the
    /// caller compares the ACK's To tag with the one it sent (§17.2.3).
    pub to_tag: Option<Vec<u8>>,
    /// From tag.
    pub from_tag: Option<Vec<u8>>,
    /// Call-ID.
    pub call_id: Vec<u8>,
    /// CSeq number.
    pub cseq_number: u32,
    /// The top Via: transport (upper-cased), sent-by (normalised) and the parameters as
    /// written.
    pub top_via: (String, SentBy, Vec<u8>),
    /// The method of the transaction (INVITE for an ACK).
    pub method: Vec<u8>,
}

fn method_of_transaction(method: Method<'_>) -> Vec<u8> {
    match method {
        Method::Ack => b"INVITE".to_vec(),
        other => other.as_bytes().to_vec(),
    }
}

impl TransactionKey {
    /// The server transaction a received request belongs to (RFC 3261 §17.2.3).
    ///
    /// An ACK gets the key of the INVITE transaction it acknowledges (it matches there when
    /// it acknowledges a non-2xx final; an ACK for a 2xx has a new branch and matches
    /// nothing). A CANCEL gets its own key.
    pub fn of_request(msg: &Message<'_>) -> Result<TransactionKey, TransactionError> {
        let method = msg.method().ok_or(TransactionError::NotARequest)?;
        Self::server_key(msg, method_of_transaction(method))
    }

    /// The INVITE server transaction that an ACK or a CANCEL refers to (RFC 3261 §9.2,
    /// §17.2.3): the key [`TransactionKey::of_request`] gave the INVITE.
    pub fn invite_key_of(msg: &Message<'_>) -> Result<TransactionKey, TransactionError> {
        let method = msg.method().ok_or(TransactionError::NotARequest)?;
        match method {
            Method::Ack | Method::Cancel => Self::server_key(msg, b"INVITE".to_vec()),
            other => Err(TransactionError::NotAckOrCancel {
                method: other.to_string(),
            }),
        }
    }

    /// The client transaction a received response belongs to (RFC 3261 §17.1.3): the branch
    /// of its top Via and the method of its CSeq.
    pub fn of_response(msg: &Message<'_>) -> Result<TransactionKey, TransactionError> {
        if msg.is_request() {
            return Err(TransactionError::NotAResponse);
        }
        let cseq = msg.cseq().map_err(TransactionError::bad("CSeq"))?;
        Self::client_key(msg, cseq.method)
    }

    /// The key under which a request this side sends waits for its responses: the same
    /// key [`TransactionKey::of_response`] gives them (§17.1.3).
    pub fn of_sent_request(msg: &Message<'_>) -> Result<TransactionKey, TransactionError> {
        let method = msg.method().ok_or(TransactionError::NotARequest)?;
        Self::client_key(msg, method)
    }

    fn client_key(
        msg: &Message<'_>,
        method: Method<'_>,
    ) -> Result<TransactionKey, TransactionError> {
        let via = msg.top_via().map_err(TransactionError::bad("Via"))?;
        if !via.has_rfc3261_branch() {
            return Err(TransactionError::NoRfc3261Branch);
        }
        Ok(TransactionKey::Client {
            branch: via.branch().unwrap_or_default().to_vec(),
            method: method_of_transaction(method),
        })
    }

    fn server_key(
        msg: &Message<'_>,
        key_method: Vec<u8>,
    ) -> Result<TransactionKey, TransactionError> {
        let via = msg.top_via().map_err(TransactionError::bad("Via"))?;
        if via.has_rfc3261_branch() {
            return Ok(TransactionKey::Server {
                branch: via.branch().unwrap_or_default().to_vec(),
                sent_by: SentBy::of(via),
                method: key_method,
            });
        }
        let request_uri = match msg.start_line() {
            sable_sip::StartLine::Request { uri, .. } => uri.to_vec(),
            sable_sip::StartLine::Response { .. } => return Err(TransactionError::NotARequest),
        };
        let to_tag = if key_method == b"INVITE" {
            None
        } else {
            msg.to()
                .map_err(TransactionError::bad("To"))?
                .tag()
                .map(<[u8]>::to_vec)
        };
        let from_tag = msg
            .from()
            .map_err(TransactionError::bad("From"))?
            .tag()
            .map(<[u8]>::to_vec);
        let call_id = msg
            .call_id()
            .map_err(TransactionError::bad("Call-ID"))?
            .to_vec();
        let cseq = msg.cseq().map_err(TransactionError::bad("CSeq"))?;
        let transport = String::from_utf8_lossy(via.transport).to_ascii_uppercase();
        Ok(TransactionKey::Rfc2543(Box::new(Rfc2543Key {
            request_uri,
            to_tag,
            from_tag,
            call_id,
            cseq_number: cseq.number,
            top_via: (transport, SentBy::of(via), via.params.as_bytes().to_vec()),
            method: key_method,
        })))
    }

    /// True for a key of the RFC 2543 fallback.
    pub fn is_rfc2543(&self) -> bool {
        matches!(self, TransactionKey::Rfc2543(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn via_key(via: &str) -> TransactionKey {
        let bytes = format!(
            "OPTIONS sip:x@example.com SIP/2.0\r\nVia: {via}\r\nFrom: <sip:a@b>;tag=1\r\n\
To: <sip:x@example.com>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        TransactionKey::of_request(&Message::parse(bytes.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn server_key_holds_branch_normalised_sent_by_and_method() {
        assert_eq!(
            via_key("SIP/2.0/UDP Host.Example.COM:5070;branch=z9hG4bKAbC"),
            TransactionKey::Server {
                branch: b"z9hG4bKAbC".to_vec(),
                sent_by: SentBy {
                    host: "host.example.com".into(),
                    port: Some(5070),
                },
                method: b"OPTIONS".to_vec(),
            }
        );
    }

    #[test]
    fn missing_port_is_not_defaulted() {
        assert_ne!(
            via_key("SIP/2.0/UDP h;branch=z9hG4bK1"),
            via_key("SIP/2.0/UDP h:5060;branch=z9hG4bK1")
        );
    }

    #[test]
    fn magic_cookie_is_case_sensitive() {
        assert!(via_key("SIP/2.0/UDP h;branch=Z9HG4BK1").is_rfc2543());
        assert!(!via_key("SIP/2.0/UDP h;branch=z9hG4bK1").is_rfc2543());
    }

    #[test]
    fn rfc_2543_transport_compares_case_insensitively() {
        assert_eq!(
            via_key("SIP/2.0/udp h:5060;x=1"),
            via_key("SIP/2.0/UDP H:5060;x=1")
        );
    }
}
