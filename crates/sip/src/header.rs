//! Header names (RFC 3261 §7.3, §20, compact forms §7.3.3) and the header index entry.

use crate::message::Span;

macro_rules! header_names {
    ($( $variant:ident = $canonical:literal $(, compact $compact:literal)? $(, list $list:literal)? ; )*) => {
        /// A header name this crate knows, or [`HeaderName::Other`]. Names are matched
        /// case-insensitively, compact forms included (`v` is Via, `i` is Call-ID...).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum HeaderName {
            $(
                #[doc = concat!("`", $canonical, "`")]
                $variant,
            )*
            /// Any other (extension) header; the name is in the message.
            Other,
        }

        impl HeaderName {
            /// The canonical long name (`"Other"` for extension headers).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(HeaderName::$variant => $canonical,)*
                    HeaderName::Other => "Other",
                }
            }

            /// The compact form, if the header has one.
            pub fn compact(self) -> Option<u8> {
                match self {
                    $($(HeaderName::$variant => Some($compact),)?)*
                    _ => None,
                }
            }

            /// True when several values may share one header line, separated by commas
            /// (RFC 3261 §7.3.1), and the parser splits them.
            pub fn is_list(self) -> bool {
                match self {
                    $($(HeaderName::$variant => $list,)?)*
                    _ => false,
                }
            }

            /// Every known name, for tables and tests.
            pub const ALL: &'static [HeaderName] = &[$(HeaderName::$variant,)*];
        }
    };
}

header_names! {
    Via = "Via", compact b'v', list true;
    From = "From", compact b'f';
    To = "To", compact b't';
    CallId = "Call-ID", compact b'i';
    CSeq = "CSeq";
    MaxForwards = "Max-Forwards";
    Contact = "Contact", compact b'm', list true;
    Route = "Route", list true;
    RecordRoute = "Record-Route", list true;
    Path = "Path", list true;
    ContentLength = "Content-Length", compact b'l';
    ContentType = "Content-Type", compact b'c';
    ContentEncoding = "Content-Encoding", compact b'e', list true;
    ContentDisposition = "Content-Disposition";
    Expires = "Expires";
    MinExpires = "Min-Expires";
    Authorization = "Authorization";
    ProxyAuthorization = "Proxy-Authorization";
    WwwAuthenticate = "WWW-Authenticate";
    ProxyAuthenticate = "Proxy-Authenticate";
    Supported = "Supported", compact b'k', list true;
    Require = "Require", list true;
    ProxyRequire = "Proxy-Require", list true;
    Unsupported = "Unsupported", list true;
    Allow = "Allow", list true;
    AllowEvents = "Allow-Events", compact b'u', list true;
    Event = "Event", compact b'o';
    Subject = "Subject", compact b's';
    ReferTo = "Refer-To", compact b'r';
    ReferredBy = "Referred-By", compact b'b';
    SessionExpires = "Session-Expires", compact b'x';
    RequestDisposition = "Request-Disposition", compact b'd', list true;
    AcceptContact = "Accept-Contact", compact b'a', list true;
    RejectContact = "Reject-Contact", compact b'j', list true;
    Identity = "Identity", compact b'y';
    UserAgent = "User-Agent";
    Server = "Server";
    Accept = "Accept", list true;
    Date = "Date";
    Timestamp = "Timestamp";
    Warning = "Warning", list true;
    RetryAfter = "Retry-After";
    Organization = "Organization";
    Priority = "Priority";
    Rack = "RAck";
    Rseq = "RSeq";
    SubscriptionState = "Subscription-State";
    PAssertedIdentity = "P-Asserted-Identity", list true;
    PPreferredIdentity = "P-Preferred-Identity", list true;
    Privacy = "Privacy";
    Reason = "Reason", list true;
    Diversion = "Diversion", list true;
}

impl HeaderName {
    /// Looks a header name up, case-insensitively, compact forms included.
    pub fn from_bytes(name: &[u8]) -> HeaderName {
        let first = match name {
            [] => return HeaderName::Other,
            [c] => return Self::from_compact(c.to_ascii_lowercase()),
            [first, ..] => first | 0x20,
        };
        // Dispatch on length, then first letter: most lookups compare one candidate.
        use HeaderName as H;
        let candidates: &[HeaderName] = match name.len() {
            2 => &[H::To],
            3 => &[H::Via],
            4 => match first {
                b'f' => &[H::From],
                b'c' => &[H::CSeq],
                b'p' => &[H::Path],
                b'd' => &[H::Date],
                b'r' => &[H::Rack, H::Rseq],
                _ => &[],
            },
            5 => match first {
                b'r' => &[H::Route],
                b'a' => &[H::Allow],
                b'e' => &[H::Event],
                _ => &[],
            },
            6 => match first {
                b's' => &[H::Server],
                b'a' => &[H::Accept],
                b'r' => &[H::Reason],
                _ => &[],
            },
            7 => match first {
                b'c' => &[H::CallId, H::Contact],
                b'e' => &[H::Expires],
                b'r' => &[H::Require],
                b's' => &[H::Subject],
                b'w' => &[H::Warning],
                b'p' => &[H::Privacy],
                _ => &[],
            },
            8 => match first {
                b'r' => &[H::ReferTo],
                b'i' => &[H::Identity],
                b'p' => &[H::Priority],
                _ => &[],
            },
            9 => match first {
                b's' => &[H::Supported],
                b't' => &[H::Timestamp],
                b'd' => &[H::Diversion],
                _ => &[],
            },
            10 => &[H::UserAgent],
            11 => match first {
                b'm' => &[H::MinExpires],
                b'u' => &[H::Unsupported],
                b'r' => &[H::ReferredBy, H::RetryAfter],
                _ => &[],
            },
            12 => match first {
                b'm' => &[H::MaxForwards],
                b'r' => &[H::RecordRoute],
                b'c' => &[H::ContentType],
                b'a' => &[H::AllowEvents],
                b'o' => &[H::Organization],
                _ => &[],
            },
            13 => match first {
                b'a' => &[H::Authorization],
                b'p' => &[H::ProxyRequire],
                _ => &[],
            },
            14 => match first {
                b'c' => &[H::ContentLength],
                b'a' => &[H::AcceptContact],
                b'r' => &[H::RejectContact],
                _ => &[],
            },
            15 => &[H::SessionExpires],
            16 => match first {
                b'c' => &[H::ContentEncoding],
                b'w' => &[H::WwwAuthenticate],
                _ => &[],
            },
            18 => match first {
                b'p' => &[H::ProxyAuthenticate],
                b's' => &[H::SubscriptionState],
                _ => &[],
            },
            19 => match first {
                b'c' => &[H::ContentDisposition],
                b'p' => &[H::ProxyAuthorization, H::PAssertedIdentity],
                b'r' => &[H::RequestDisposition],
                _ => &[],
            },
            20 => &[H::PPreferredIdentity],
            _ => &[],
        };
        candidates
            .iter()
            .copied()
            .find(|h| eq_folded(name, h.as_str().as_bytes()))
            .unwrap_or(HeaderName::Other)
    }

    /// The header a compact form stands for (RFC 3261 §7.3.3 and extensions).
    fn from_compact(c: u8) -> HeaderName {
        match c {
            b'v' => HeaderName::Via,
            b'f' => HeaderName::From,
            b't' => HeaderName::To,
            b'i' => HeaderName::CallId,
            b'm' => HeaderName::Contact,
            b'l' => HeaderName::ContentLength,
            b'c' => HeaderName::ContentType,
            b'e' => HeaderName::ContentEncoding,
            b'k' => HeaderName::Supported,
            b'u' => HeaderName::AllowEvents,
            b'o' => HeaderName::Event,
            b's' => HeaderName::Subject,
            b'r' => HeaderName::ReferTo,
            b'b' => HeaderName::ReferredBy,
            b'x' => HeaderName::SessionExpires,
            b'd' => HeaderName::RequestDisposition,
            b'a' => HeaderName::AcceptContact,
            b'j' => HeaderName::RejectContact,
            b'y' => HeaderName::Identity,
            _ => HeaderName::Other,
        }
    }

    /// True for headers that must appear at most once (RFC 3261 §7.3.1, Table 2).
    pub fn is_single(self) -> bool {
        matches!(
            self,
            HeaderName::From
                | HeaderName::To
                | HeaderName::CallId
                | HeaderName::CSeq
                | HeaderName::MaxForwards
                | HeaderName::ContentLength
                | HeaderName::ContentType
                | HeaderName::Expires
                | HeaderName::MinExpires
        )
    }
}

/// Case-insensitive comparison of a name with a canonical header name (letters and `-`):
/// OR-ing 0x20 folds ASCII letters to lower case, and among octets above 0x20 only letters
/// fold onto letters and only `-` onto `-`, so the fold is exact for such names.
#[inline]
fn eq_folded(name: &[u8], canonical: &[u8]) -> bool {
    name.len() == canonical.len()
        && name
            .iter()
            .zip(canonical)
            .all(|(&a, &b)| a > 0x20 && (a | 0x20) == (b | 0x20))
}

/// One entry of the header index: one value of one header line.
///
/// A line `Via: a, b` gives two entries with the same `line` span; a line of an extension
/// header gives one entry whose value is the whole (possibly folded) value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderValue {
    /// Which header.
    pub name: HeaderName,
    /// The header name as written.
    pub name_span: Span,
    /// This value, without surrounding LWS.
    pub value: Span,
    /// The whole header line, from the first octet of the name to just past its CRLF (folded
    /// continuation lines included).
    pub line: Span,
    /// Position of this value within its line (0 for the first).
    pub index_in_line: u16,
    /// Number of values on the line.
    pub values_in_line: u16,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_long_name_and_compact_form_resolves() {
        for &h in HeaderName::ALL {
            assert_eq!(HeaderName::from_bytes(h.as_str().as_bytes()), h, "{h:?}");
            let upper = h.as_str().to_ascii_uppercase();
            assert_eq!(HeaderName::from_bytes(upper.as_bytes()), h, "{h:?}");
            if let Some(c) = h.compact() {
                assert_eq!(HeaderName::from_bytes(&[c]), h);
                assert_eq!(HeaderName::from_bytes(&[c.to_ascii_uppercase()]), h);
            }
        }
    }

    #[test]
    fn unknown_names_are_other() {
        assert_eq!(HeaderName::from_bytes(b"C%6Fntact"), HeaderName::Other);
        assert_eq!(HeaderName::from_bytes(b"X-Foo"), HeaderName::Other);
        assert_eq!(HeaderName::from_bytes(b"q"), HeaderName::Other);
        assert_eq!(HeaderName::from_bytes(b""), HeaderName::Other);
    }
}
