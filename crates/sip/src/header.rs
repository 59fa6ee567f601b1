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
    RequestDisposition = "Request-Disposition", compact b'd';
    AcceptContact = "Accept-Contact", compact b'a';
    RejectContact = "Reject-Contact", compact b'j';
    Identity = "Identity", compact b'y';
    UserAgent = "User-Agent";
    Server = "Server";
    Accept = "Accept", list true;
    Date = "Date";
    Timestamp = "Timestamp";
    Warning = "Warning";
    RetryAfter = "Retry-After";
    Organization = "Organization";
    Priority = "Priority";
    Rack = "RAck";
    Rseq = "RSeq";
    SubscriptionState = "Subscription-State";
    PAssertedIdentity = "P-Asserted-Identity";
    PPreferredIdentity = "P-Preferred-Identity";
    Privacy = "Privacy";
    Reason = "Reason";
    Diversion = "Diversion";
}

impl HeaderName {
    /// Looks a header name up, case-insensitively, compact forms included.
    pub fn from_bytes(name: &[u8]) -> HeaderName {
        if let [c] = name {
            return Self::from_compact(c.to_ascii_lowercase());
        }
        // Dispatch on length and first letter first: most lookups then compare one or two
        // candidates.
        let first = match name.first() {
            Some(b) => b.to_ascii_lowercase(),
            None => return HeaderName::Other,
        };
        let candidates: &[HeaderName] = match (name.len(), first) {
            (3, b'v') => &[HeaderName::Via],
            (4, b'f') => &[HeaderName::From],
            (2, b't') => &[HeaderName::To],
            (7, b'c') => &[HeaderName::CallId, HeaderName::Contact],
            (4, b'c') => &[HeaderName::CSeq],
            (12, b'm') => &[HeaderName::MaxForwards],
            (5, b'r') => &[HeaderName::Route],
            (12, b'r') => &[HeaderName::RecordRoute],
            (4, b'p') => &[HeaderName::Path],
            (14, b'c') => &[HeaderName::ContentLength],
            (12, b'c') => &[HeaderName::ContentType],
            (16, b'c') => &[HeaderName::ContentEncoding],
            (19, b'c') => &[HeaderName::ContentDisposition],
            (7, b'e') => &[HeaderName::Expires],
            (11, b'm') => &[HeaderName::MinExpires],
            (13, b'a') => &[HeaderName::Authorization],
            (19, b'p') => &[
                HeaderName::ProxyAuthorization,
                HeaderName::PAssertedIdentity,
            ],
            (16, b'w') => &[HeaderName::WwwAuthenticate],
            (18, b'p') => &[HeaderName::ProxyAuthenticate],
            (9, b's') => &[HeaderName::Supported],
            (7, b'r') => &[HeaderName::Require],
            (13, b'p') => &[HeaderName::ProxyRequire],
            (11, b'u') => &[HeaderName::Unsupported],
            (5, b'a') => &[HeaderName::Allow],
            (12, b'a') => &[HeaderName::AllowEvents],
            (5, b'e') => &[HeaderName::Event],
            (7, b's') => &[HeaderName::Subject],
            (8, b'r') => &[HeaderName::ReferTo],
            (11, b'r') => &[HeaderName::ReferredBy, HeaderName::RetryAfter],
            (15, b's') => &[HeaderName::SessionExpires],
            (19, b'r') => &[HeaderName::RequestDisposition],
            (14, b'a') => &[HeaderName::AcceptContact],
            (14, b'r') => &[HeaderName::RejectContact],
            (8, b'i') => &[HeaderName::Identity],
            (10, b'u') => &[HeaderName::UserAgent],
            (6, b's') => &[HeaderName::Server],
            (6, b'a') => &[HeaderName::Accept],
            (4, b'd') => &[HeaderName::Date],
            (9, b't') => &[HeaderName::Timestamp],
            (7, b'w') => &[HeaderName::Warning],
            (12, b'o') => &[HeaderName::Organization],
            (8, b'p') => &[HeaderName::Priority],
            (4, b'r') => &[HeaderName::Rack, HeaderName::Rseq],
            (18, b's') => &[HeaderName::SubscriptionState],
            (20, b'p') => &[HeaderName::PPreferredIdentity],
            (7, b'p') => &[HeaderName::Privacy],
            (6, b'r') => &[HeaderName::Reason],
            (9, b'd') => &[HeaderName::Diversion],
            _ => &[],
        };
        candidates
            .iter()
            .copied()
            .find(|h| h.as_str().as_bytes().eq_ignore_ascii_case(name))
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
