//! The one error type of this crate: what went wrong, where, and which reply it implies.

use std::fmt;

/// What is wrong with a message, a header value, a URI or a byte stream.
///
/// Variants carry the data needed to explain the fault; the header the fault was found in and
/// the byte offset live in [`ParseError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// Nothing but whitespace was received.
    #[error("empty message")]
    Empty,
    /// The header section does not end (no empty line, and the buffer does not end after a
    /// complete header line).
    #[error("header section is not terminated")]
    Truncated,
    /// The first line is neither a Request-Line nor a Status-Line (RFC 3261 §7.1, §7.2).
    #[error("malformed start line: {0}")]
    BadStartLine(&'static str),
    /// The method is not a token (RFC 3261 §25.1).
    #[error("method is not a token")]
    BadMethod,
    /// `SIP-Version` is well-formed but not `SIP/2.0` (RFC 3261 §7.1, reply 505).
    #[error("unsupported SIP version")]
    UnsupportedVersion,
    /// The Status-Code is not three digits in 100..=699 (RFC 3261 §7.2).
    #[error("bad status code")]
    BadStatusCode,
    /// A header line has no colon.
    #[error("header line without a colon")]
    HeaderWithoutColon,
    /// A header name is not a token.
    #[error("header name is not a token")]
    BadHeaderName,
    /// A header value does not follow its grammar; the text says which part.
    #[error("malformed value: {0}")]
    BadHeaderValue(&'static str),
    /// A URI does not follow RFC 3261 §19.1 / §25.1 (or RFC 3966 for tel); the text says which
    /// part.
    #[error("malformed URI: {0}")]
    BadUri(&'static str),
    /// A quoted string has no closing quote.
    #[error("unterminated quoted string")]
    UnterminatedQuote,
    /// A number is larger than its field allows (CSeq > 2^32-1, Max-Forwards > 255...).
    #[error("number out of range")]
    NumberOutOfRange,
    /// A header the message must have is missing (RFC 3261 §8.1.1).
    #[error("missing mandatory header")]
    MissingHeader,
    /// A header that may appear once appears several times (RFC 3261 §7.3.1).
    #[error("header appears more than once")]
    DuplicateHeader,
    /// Content-Length is not a non-negative integer.
    #[error("invalid Content-Length")]
    InvalidContentLength,
    /// Several Content-Length values (RFC 4475 §3.3.9).
    #[error("several Content-Length values")]
    MultipleContentLength,
    /// Content-Length announces more octets than the datagram holds (RFC 3261 §18.3).
    #[error("Content-Length {declared} exceeds the {present} body octets present")]
    ContentLengthExceedsBody {
        /// Declared length.
        declared: usize,
        /// Octets present after the header section.
        present: usize,
    },
    /// The CSeq method differs from the Request-Line method (RFC 3261 §8.1.1.5).
    #[error("CSeq method does not match the request method")]
    CSeqMethodMismatch {
        /// Whether the Request-Line method is one this crate knows (else 501 is the better reply).
        method_known: bool,
    },
    /// A stream message has no Content-Length (RFC 3261 §18.3: mandatory on streams).
    #[error("stream message without Content-Length")]
    MissingContentLength,
    /// The header section is larger than the configured limit.
    #[error("header section larger than {limit} octets")]
    HeadersTooLarge {
        /// The limit that was hit.
        limit: usize,
    },
    /// The body is larger than the configured limit.
    #[error("body larger than {limit} octets")]
    BodyTooLarge {
        /// The limit that was hit.
        limit: usize,
    },
    /// The message has more header values than the parser indexes.
    #[error("more than {limit} header values")]
    TooManyHeaders {
        /// The limit that was hit.
        limit: usize,
    },
}

/// A parse failure: what ([`ParseErrorKind`]), where (byte offset from the start of the
/// buffer that was parsed) and in which header, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    kind: ParseErrorKind,
    offset: usize,
    header: Option<Box<str>>,
}

impl ParseError {
    /// A fault of `kind` at `offset`, outside any header.
    pub fn new(kind: ParseErrorKind, offset: usize) -> Self {
        ParseError {
            kind,
            offset,
            header: None,
        }
    }

    /// What is wrong.
    pub fn kind(&self) -> ParseErrorKind {
        self.kind
    }

    /// Byte offset of the fault from the start of the parsed buffer.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Name of the header the fault is in (as written in the message), if any.
    pub fn header(&self) -> Option<&str> {
        self.header.as_deref()
    }

    /// Attaches the header name, and moves the offset from "relative to the header value" to
    /// "relative to the message" by adding `base`.
    pub fn in_header(mut self, name: &[u8], base: usize) -> Self {
        self.offset += base;
        if self.header.is_none() {
            // Known headers by their full name (a compact `l` reads as Content-Length).
            let known = crate::header::HeaderName::from_bytes(name);
            self.header = Some(match known {
                crate::header::HeaderName::Other => String::from_utf8_lossy(name).into(),
                known => known.as_str().into(),
            });
        }
        self
    }

    /// Adds `base` to the offset (for errors found in a sub-slice of the message).
    pub fn shifted(mut self, base: usize) -> Self {
        self.offset += base;
        self
    }

    /// The status code of the reply this fault implies, when a reply is possible
    /// (RFC 3261 §21): 505 for an unsupported version, 513 for an oversized header section,
    /// 413 for an oversized body, 501 for a CSeq mismatch on an unknown method, 400 otherwise.
    pub fn status(&self) -> u16 {
        match self.kind {
            ParseErrorKind::UnsupportedVersion => 505,
            ParseErrorKind::HeadersTooLarge { .. } | ParseErrorKind::TooManyHeaders { .. } => 513,
            ParseErrorKind::BodyTooLarge { .. } => 413,
            ParseErrorKind::CSeqMethodMismatch {
                method_known: false,
            } => 501,
            _ => 400,
        }
    }

    /// A reason phrase for the implied reply that names the fault, e.g.
    /// `Bad Request - malformed CSeq`.
    pub fn reason_phrase(&self) -> String {
        let base = match self.status() {
            505 => "Version Not Supported",
            513 => "Message Too Large",
            413 => "Request Entity Too Large",
            501 => "Not Implemented",
            _ => "Bad Request",
        };
        match (&self.header, self.kind) {
            (_, ParseErrorKind::UnsupportedVersion) => base.to_string(),
            (_, ParseErrorKind::MultipleContentLength) => {
                format!("{base} - several Content-Length values")
            }
            (_, ParseErrorKind::InvalidContentLength) => format!("{base} - invalid Content-Length"),
            (Some(h), ParseErrorKind::MissingHeader) => format!("{base} - missing {h}"),
            (Some(h), ParseErrorKind::DuplicateHeader) => format!("{base} - several {h} headers"),
            (Some(h), _) => format!("{base} - malformed {h}"),
            (None, kind) => format!("{base} - {kind}"),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.header {
            Some(h) => write!(f, "{} in header {} at byte {}", self.kind, h, self.offset),
            None => write!(f, "{} at byte {}", self.kind, self.offset),
        }
    }
}

impl std::error::Error for ParseError {}

impl From<ParseErrorKind> for ParseError {
    fn from(kind: ParseErrorKind) -> Self {
        ParseError::new(kind, 0)
    }
}

/// Shorthand used by the parsers of this crate.
pub type Result<T> = std::result::Result<T, ParseError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_fault_implies_505() {
        let e = ParseError::new(ParseErrorKind::UnsupportedVersion, 12);
        assert_eq!(e.status(), 505);
        assert_eq!(e.reason_phrase(), "Version Not Supported");
    }

    #[test]
    fn header_fault_names_the_header_and_moves_the_offset() {
        let e = ParseError::new(ParseErrorKind::NumberOutOfRange, 3).in_header(b"CSeq", 100);
        assert_eq!(e.offset(), 103);
        assert_eq!(e.header(), Some("CSeq"));
        assert_eq!(e.status(), 400);
        assert_eq!(e.reason_phrase(), "Bad Request - malformed CSeq");
        assert_eq!(
            e.to_string(),
            "number out of range in header CSeq at byte 103"
        );
    }

    #[test]
    fn size_limits_imply_513_and_413() {
        assert_eq!(
            ParseError::new(ParseErrorKind::HeadersTooLarge { limit: 10 }, 0).status(),
            513
        );
        assert_eq!(
            ParseError::new(ParseErrorKind::BodyTooLarge { limit: 10 }, 0).status(),
            413
        );
    }
}
