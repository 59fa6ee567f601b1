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
    /// and a comparison of at most three machine words.
    #[inline]
    pub fn from_bytes(name: &[u8]) -> HeaderName {
        Self::lookup(name)
    }

    /// [`HeaderName::from_bytes`], always inlined: the message parser's copy (a call per
    /// header line there costs more than the lookup's own work).
    #[inline(always)]
    pub(crate) fn lookup(name: &[u8]) -> HeaderName {
        let (first, last) = match name {
            [] => return HeaderName::Other,
            [c] => return Self::from_compact(*c),
            [first, .., last] => (*first, *last),
        };
        let index = LOOKUP
            .get(slot(name.len(), first, last))
            .copied()
            .unwrap_or(0);
        match CANONICAL.get(usize::from(index).wrapping_sub(1)) {
            Some(canon) if canon.matches(name) => canon.name,
            _ => HeaderName::Other,
        }
    }

    /// The header a compact form stands for (RFC 3261 §7.3.3 and extensions).
    #[inline]
    fn from_compact(c: u8) -> HeaderName {
        match c | 0x20 {
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

/// A known name as little-endian words of its canonical spelling in lower case, for a
/// case-insensitive comparison a word at a time: `first` holds octets 0..8 (fewer for a
/// shorter name, zero-padded), `last` the last eight and `mid` octets 8..16 when they are
/// needed. A `fold` word has 0x20 at the letters: OR-ing it into the name's word folds its
/// letters to lower case and leaves every other octet as it is, so the comparison is exact
/// (only the two cases of a letter match a letter; only `-` matches `-`).
#[derive(Debug, Clone, Copy)]
struct Canon {
    first: u64,
    first_fold: u64,
    mid: u64,
    mid_fold: u64,
    last: u64,
    last_fold: u64,
    len: usize,
    name: HeaderName,
}

impl Canon {
    /// Words of octets `at..at + n` of `name` (n <= 8): (lower-cased word, fold word).
    // Evaluated at compile time: an index out of bounds is a compile error, never a panic.
    #[allow(clippy::indexing_slicing)]
    const fn word(name: &[u8], at: usize, n: usize) -> (u64, u64) {
        let (mut word, mut fold) = (0u64, 0u64);
        let mut i = 0;
        while i < n {
            let b = name[at + i];
            let f = if b.is_ascii_alphabetic() { 0x20 } else { 0 };
            word |= ((b | f) as u64) << (8 * i);
            fold |= (f as u64) << (8 * i);
            i += 1;
        }
        (word, fold)
    }

    const fn new(h: HeaderName) -> Canon {
        let name = h.as_str().as_bytes();
        let len = name.len();
        let (first, first_fold) = Self::word(name, 0, if len < 8 { len } else { 8 });
        let (mid, mid_fold) = if len > 16 {
            Self::word(name, 8, 8)
        } else {
            (0, 0)
        };
        let (last, last_fold) = if len > 8 {
            Self::word(name, len - 8, 8)
        } else {
            (first, first_fold)
        };
        Canon {
            first,
            first_fold,
            mid,
            mid_fold,
            last,
            last_fold,
            len,
            name: h,
        }
    }

    /// True when `name` (two octets or more) is this name in any letter case.
    #[inline(always)]
    fn matches(&self, name: &[u8]) -> bool {
        if name.len() != self.len {
            return false;
        }
        if let (Some(first), Some(last)) = (name.first_chunk::<8>(), name.last_chunk::<8>()) {
            (u64::from_le_bytes(*first) | self.first_fold) == self.first
                && (u64::from_le_bytes(*last) | self.last_fold) == self.last
                && (self.len <= 16
                    || name
                        .get(8..)
                        .and_then(<[u8]>::first_chunk::<8>)
                        .is_some_and(|mid| (u64::from_le_bytes(*mid) | self.mid_fold) == self.mid))
        } else {
            // Two to seven octets: two overlapping loads from both ends make the word.
            let short = match (name.first_chunk::<4>(), name.last_chunk::<4>()) {
                (Some(a), Some(b)) => {
                    u64::from(u32::from_le_bytes(*a))
                        | u64::from(u32::from_le_bytes(*b)) << (8 * (name.len() - 4))
                }
                _ => match (name.first_chunk::<2>(), name.last_chunk::<2>()) {
                    (Some(a), Some(b)) => {
                        u64::from(u16::from_le_bytes(*a))
                            | u64::from(u16::from_le_bytes(*b)) << (8 * (name.len() - 2))
                    }
                    _ => return false,
                },
            };
            (short | self.first_fold) == self.first
        }
    }
}

/// Every known name, in [`HeaderName::ALL`] order.
// Evaluated at compile time: an index out of bounds is a compile error, never a panic.
#[allow(clippy::indexing_slicing)]
static CANONICAL: [Canon; HeaderName::ALL.len()] = {
    let mut table = [Canon::new(HeaderName::Other); HeaderName::ALL.len()];
    let mut rest = HeaderName::ALL;
    let mut i = 0;
    while let [h, tail @ ..] = rest {
        table[i] = Canon::new(*h);
        i += 1;
        rest = tail;
    }
    table
};

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
    /// A placeholder for unused slots of the inline index: all zeros, so that filling an
    /// array of them is a memset.
    pub(crate) const ZEROED: HeaderValue = HeaderValue {
        name: HeaderName::Via,
        name_len: 0,
        value: Span { start: 0, end: 0 },
        line: Span { start: 0, end: 0 },
        index_in_line: 0,
        values_in_line: 0,
    };

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
