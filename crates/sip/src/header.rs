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
            pub const fn as_str(self) -> &'static str {
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
    /// Looks a header name up, case-insensitively, compact forms included: one table load
    /// and one comparison.
    #[inline]
    pub fn from_bytes(name: &[u8]) -> HeaderName {
        let (first, last) = match name {
            [] => return HeaderName::Other,
            [c] => return Self::from_compact(c.to_ascii_lowercase()),
            [first, .., last] => (*first, *last),
        };
        let index = LOOKUP
            .get(slot(name.len(), first, last))
            .copied()
            .unwrap_or(0);
        match CANONICAL.get(usize::from(index).wrapping_sub(1)) {
            Some(&(canonical, h)) if eq_folded(name, canonical) => h,
            _ => HeaderName::Other,
        }
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

/// Slot of a name in [`LOOKUP`]: from its length and its first and last letters, folded to
/// lower case. The multipliers were chosen so that every known name has a slot of its own
/// (`lookup_table_has_no_collision` keeps it so).
const fn slot(len: usize, first: u8, last: u8) -> usize {
    (len + (first | 0x20) as usize * 9 + (last | 0x20) as usize * 14) % 256
}

/// Known header names by [`slot`]: 1 + index in [`HeaderName::ALL`], 0 for none, `u8::MAX`
/// where two names would collide (then neither is found, which the test forbids).
// Evaluated at compile time: an index out of bounds is a compile error, never a panic.
#[allow(clippy::indexing_slicing)]
static LOOKUP: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < HeaderName::ALL.len() {
        let name = HeaderName::ALL[i].as_str().as_bytes();
        if let (Some(&first), Some(&last)) = (name.first(), name.last()) {
            let s = slot(name.len(), first, last);
            table[s] = if table[s] == 0 { i as u8 + 1 } else { u8::MAX };
        }
        i += 1;
    }
    table
};

/// Every known name with its canonical spelling, in [`HeaderName::ALL`] order.
// Evaluated at compile time: an index out of bounds is a compile error, never a panic.
#[allow(clippy::indexing_slicing)]
static CANONICAL: [(&[u8], HeaderName); HeaderName::ALL.len()] = {
    let mut table: [(&[u8], HeaderName); HeaderName::ALL.len()] =
        [(b"", HeaderName::Other); HeaderName::ALL.len()];
    let mut rest = HeaderName::ALL;
    let mut i = 0;
    while let [h, tail @ ..] = rest {
        table[i] = (h.as_str().as_bytes(), *h);
        i += 1;
        rest = tail;
    }
    table
};

/// Case-insensitive comparison of a name with a canonical header name (letters and `-`) of
/// the same length, a machine word at a time (overlapping loads from both ends cover any
/// length). OR-ing 0x20 folds ASCII letters to lower case; among all octets only letters fold
/// onto letters, and only `-` and CR fold onto `-`, so the fold is exact once octets below
/// 0x21 are refused.
#[inline]
fn eq_folded(name: &[u8], canonical: &[u8]) -> bool {
    macro_rules! words_equal {
        ($t:ty, $a:expr, $b:expr) => {{
            const ONES: $t = <$t>::MAX / 0xFF;
            let (x, y) = (<$t>::from_le_bytes(*$a), <$t>::from_le_bytes(*$b));
            // "Has an octet below 0x21" (the classic SWAR test), then the folded comparison.
            x.wrapping_sub(ONES * 0x21) & !x & (ONES * 0x80) == 0
                && x | (ONES * 0x20) == y | (ONES * 0x20)
        }};
    }
    // Two words of $n octets, one at each end, overlapping when the length is below 2 * $n.
    macro_rules! ends_equal {
        ($t:ty, $n:literal) => {
            match (
                name.first_chunk::<$n>(),
                canonical.first_chunk::<$n>(),
                name.last_chunk::<$n>(),
                canonical.last_chunk::<$n>(),
            ) {
                (Some(a), Some(b), Some(c), Some(d)) => {
                    words_equal!($t, a, b) && words_equal!($t, c, d)
                }
                _ => false,
            }
        };
    }
    if name.len() != canonical.len() {
        return false;
    }
    match name.len() {
        0 => true,
        1 => matches!((name, canonical), ([x], [y]) if *x > 0x20 && x | 0x20 == y | 0x20),
        2..=3 => ends_equal!(u16, 2),
        4..=7 => ends_equal!(u32, 4),
        _ => {
            let (mut a, mut b) = (name, canonical);
            while a.len() > 8 {
                match (a.split_first_chunk::<8>(), b.split_first_chunk::<8>()) {
                    (Some((x, ra)), Some((y, rb))) if words_equal!(u64, x, y) => {
                        a = ra;
                        b = rb;
                    }
                    _ => return false,
                }
            }
            match (name.last_chunk::<8>(), canonical.last_chunk::<8>()) {
                (Some(x), Some(y)) => words_equal!(u64, x, y),
                _ => false,
            }
        }
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
    /// Length of the header name as written (it starts the line).
    pub name_len: u16,
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

impl HeaderValue {
    /// Span of the header name as written.
    #[inline]
    pub fn name_span(&self) -> Span {
        Span {
            start: self.line.start,
            end: self.line.start + u32::from(self.name_len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_table_has_no_collision() {
        assert!(HeaderName::ALL.len() < usize::from(u8::MAX));
        for (i, h) in HeaderName::ALL.iter().enumerate() {
            let name = h.as_str().as_bytes();
            let s = slot(name.len(), name[0], name[name.len() - 1]);
            assert_eq!(usize::from(LOOKUP[s]), i + 1, "{h:?} collides");
        }
    }

    #[test]
    fn carriage_return_never_folds_onto_a_dash() {
        assert_eq!(HeaderName::from_bytes(b"Call\rID"), HeaderName::Other);
        assert_eq!(HeaderName::from_bytes(b"cALL-id"), HeaderName::CallId);
        assert_eq!(
            HeaderName::from_bytes(b"proxy-authorizatioN"),
            HeaderName::ProxyAuthorization
        );
    }

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
