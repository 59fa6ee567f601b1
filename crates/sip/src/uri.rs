//! URIs parsed in place: `sip:`/`sips:` (RFC 3261 §19.1, §25.1, with the IPv6 rules of
//! RFC 5118), `tel:` (RFC 3966) and any other absolute URI (kept opaque), plus URI
//! equivalence (RFC 3261 §19.1.4, RFC 3966 §4).
//!
//! Parsing never allocates: every component is a slice of the input, validated in one pass.
//! A URI here is exactly the URI text: linear white space, `<` and `>` anywhere in it are
//! errors (RFC 4475 §3.1.2.7, §3.1.2.8); the callers strip the brackets of a `name-addr`.
//!
//! Tolerances, each deliberate:
//! - an IPv6 reference that follows RFC 3261's grammar but is not an RFC 4291 address, such
//!   as `[2001:db8:::192.0.2.1]` (RFC 5118 §4.10), parses with `addr: None`;
//! - `#` is accepted unescaped in the user part (it is a `dtmf-digit` of RFC 2806's
//!   `telephone-subscriber`, which RFC 3261 allows there);
//! - a URI parameter written `name=` (empty value) parses, its value being the empty slice;
//! - a `tel:` local number without `phone-context` parses (RFC 3966 §5.1.5 requires one).

use crate::error::{ParseError, ParseErrorKind, Result};
use crate::scan::{hex_value, skip_lws};
use crate::simd::Chunk;
use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

// ---------------------------------------------------------------------------------------
// Character sets (ASCII only), as 128-bit masks: bit `b` set when byte `b` is in the set.
// ---------------------------------------------------------------------------------------

/// Mask of the bytes of `chars` (all ASCII).
const fn bits(mut chars: &[u8]) -> u128 {
    let mut m = 0u128;
    while let [b, rest @ ..] = chars {
        m |= 1u128 << *b;
        chars = rest;
    }
    m
}

const DIGIT: u128 = bits(b"0123456789");
const ALPHA: u128 = bits(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ");
const ALNUM: u128 = DIGIT | ALPHA;
const HEXDIG: u128 = DIGIT | bits(b"abcdefABCDEF");
/// `mark` (RFC 3261 §25.1).
const MARK: u128 = bits(b"-_.!~*'()");
/// `unreserved = alphanum / mark`.
const UNRESERVED: u128 = ALNUM | MARK;
/// RFC 2396 `reserved`: escaped, these are not equivalent to the plain character.
const RESERVED: u128 = bits(b";/?:@&=+$,");
/// `user` characters besides escapes: `unreserved / user-unreserved`, plus `#` (see the
/// module documentation).
const USER: u128 = UNRESERVED | bits(b"&=+$,;?/#");
/// `password` characters besides escapes.
const PASSWORD: u128 = UNRESERVED | bits(b"&=+$,");
/// `paramchar` besides escapes: `param-unreserved / unreserved`.
const PARAM: u128 = UNRESERVED | bits(b"[]/:&+$");
/// `hname` / `hvalue` characters besides escapes: `hnv-unreserved / unreserved`.
const HNV: u128 = UNRESERVED | bits(b"[]/?:+$");
/// Characters of a `hostname` or an `IPv4address`.
#[cfg(test)]
const HOSTNAME: u128 = ALNUM | bits(b"-.");
/// Characters inside an IPv6 reference.
const IPV6: u128 = HEXDIG | bits(b":.");
/// `scheme` characters after the first (RFC 3986 §3.1).
const SCHEME: u128 = ALNUM | bits(b"+-.");
/// Characters of the opaque part of another scheme's URI: `uric`, plus `[ ]` (RFC 3986 IP
/// literals); `%` is accepted as is.
const OPAQUE: u128 = UNRESERVED | RESERVED | bits(b"[]%");
/// RFC 3966 `visual-separator`.
const VISUAL: u128 = bits(b"-.()");
/// RFC 3966 `pname`.
const TEL_PNAME: u128 = ALNUM | bits(b"-");
/// RFC 3966 `pvalue` characters besides escapes (`paramchar`), plus the other `uric`s an
/// `isub` value may hold (`;` excepted, it separates parameters).
const TEL_PVALUE: u128 = PARAM | bits(b"?@=,");

/// True when `b` is in `set`.
#[inline]
fn in_set(set: u128, b: u8) -> bool {
    // Two 64-bit halves: the sets are constants at every call site, so the halves fold and a
    // test is a compare and a shift (a u128 shift by a variable costs several instructions).
    let (low, high) = (set as u64, (set >> 64) as u64);
    match b {
        0..=63 => (low >> b) & 1 != 0,
        64..=127 => (high >> (b - 64)) & 1 != 0,
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------
// Scanning helpers.
// ---------------------------------------------------------------------------------------

fn bad(what: &'static str, at: usize) -> ParseError {
    ParseError::new(ParseErrorKind::BadUri(what), at)
}

/// The fault for an unexpected byte at `at` (or the end of input): white space and angle
/// brackets get their own message, anything else gets `what`.
fn unexpected(s: &[u8], at: usize, what: &'static str) -> ParseError {
    let what = match s.get(at) {
        Some(b' ' | b'\t' | b'\r' | b'\n') => "white space inside a URI",
        Some(b'<' | b'>') => "angle bracket inside a URI",
        _ => what,
    };
    bad(what, at)
}

/// `s[a..b]`, or empty if out of range (never is, by construction).
#[inline]
fn sub(s: &[u8], a: usize, b: usize) -> &[u8] {
    s.get(a..b).unwrap_or_default()
}

/// Index of the first byte at or after `i` that is not in `set`.
#[inline]
fn scan_plain(s: &[u8], mut i: usize, set: u128) -> usize {
    while let Some(&b) = s.get(i) {
        if !in_set(set, b) {
            break;
        }
        i += 1;
    }
    i
}

/// Index of the first byte at or after `i` that is neither in `set` nor part of an escape
/// `%HH`; a `%` not followed by two hex digits is an error.
#[inline]
fn scan_escaped(s: &[u8], mut i: usize, set: u128) -> Result<usize> {
    while let Some(&b) = s.get(i) {
        if in_set(set, b) {
            i += 1;
        } else if b == b'%' {
            match (s.get(i + 1), s.get(i + 2)) {
                (Some(&h), Some(&l)) if in_set(HEXDIG, h) && in_set(HEXDIG, l) => i += 3,
                _ => return Err(bad("'%' not followed by two hex digits", i)),
            }
        } else {
            break;
        }
    }
    Ok(i)
}

/// Index of the ':' ending the scheme of `s` (RFC 3986
/// `scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`).
fn scheme_end(s: &[u8]) -> Result<usize> {
    match s.first() {
        None => return Err(bad("empty URI", 0)),
        Some(&b) if in_set(ALPHA, b) => {}
        Some(_) => return Err(unexpected(s, 0, "URI does not start with a scheme")),
    }
    let e = scan_plain(s, 1, SCHEME);
    if s.get(e) == Some(&b':') {
        Ok(e)
    } else {
        Err(unexpected(
            s,
            e,
            "illegal character in scheme or no ':' after it",
        ))
    }
}

/// Parses `1*DIGIT` at `i` as a port (0..=65535); returns it and the index after it.
fn parse_port_at(s: &[u8], i: usize) -> Result<(u16, usize)> {
    let e = scan_plain(s, i, DIGIT);
    if e == i {
        return Err(unexpected(s, i, "port is not a number"));
    }
    let mut v: u32 = 0;
    for &d in sub(s, i, e) {
        v = v * 10 + u32::from(d - b'0');
        if v > u32::from(u16::MAX) {
            return Err(bad("port larger than 65535", i));
        }
    }
    let port = u16::try_from(v).map_err(|_| bad("port larger than 65535", i))?;
    Ok((port, e))
}

// ---------------------------------------------------------------------------------------
// Escapes.
// ---------------------------------------------------------------------------------------

/// Iterator over the octets of URI text with `%HH` escapes decoded once (never
/// recursively). Yields `(octet, escaped_reserved)`: the flag is true when the octet was
/// written as an escape and is one of RFC 2396's `reserved` characters
/// (`; / ? : @ & = + $ ,`), which RFC 3261 §19.1.4 does not treat as equivalent to the plain
/// character. A `%` not followed by two hex digits is yielded as a plain `%`.
#[derive(Debug, Clone)]
pub struct Unescaped<'a> {
    rest: &'a [u8],
}

impl<'a> Unescaped<'a> {
    /// Decodes `s`.
    pub fn new(s: &'a [u8]) -> Self {
        Unescaped { rest: s }
    }
}

impl Iterator for Unescaped<'_> {
    type Item = (u8, bool);

    #[inline]
    fn next(&mut self) -> Option<(u8, bool)> {
        let (&first, rest) = self.rest.split_first()?;
        if first == b'%' {
            if let [h, l, tail @ ..] = rest {
                if let (Some(h), Some(l)) = (hex_value(*h), hex_value(*l)) {
                    self.rest = tail;
                    let b = (h << 4) | l;
                    return Some((b, in_set(RESERVED, b)));
                }
            }
        }
        self.rest = rest;
        Some((first, false))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.rest.len().div_ceil(3), Some(self.rest.len()))
    }
}

/// `s` with its `%HH` escapes decoded once; borrowed when there is none.
pub fn unescape(s: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memchr(b'%', s).is_none() {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(Unescaped::new(s).map(|(b, _)| b).collect())
    }
}

/// RFC 3261 §19.1.4 equality of two escaped strings, case-sensitive.
fn eq_escaped(a: &[u8], b: &[u8]) -> bool {
    if a == b {
        return true;
    }
    if memchr::memchr(b'%', a).is_none() && memchr::memchr(b'%', b).is_none() {
        return false;
    }
    Unescaped::new(a).eq(Unescaped::new(b))
}

/// RFC 3261 §19.1.4 equality of two escaped strings, ASCII case-insensitive.
fn eq_escaped_ci(a: &[u8], b: &[u8]) -> bool {
    if a.eq_ignore_ascii_case(b) {
        return true;
    }
    if memchr::memchr(b'%', a).is_none() && memchr::memchr(b'%', b).is_none() {
        return false;
    }
    let lower = |(c, r): (u8, bool)| (c.to_ascii_lowercase(), r);
    Unescaped::new(a)
        .map(lower)
        .eq(Unescaped::new(b).map(lower))
}

/// Equality of two optional parameter values (`None` = flag parameter), case-insensitive.
fn eq_value_ci(a: Option<&[u8]>, b: Option<&[u8]>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => eq_escaped_ci(a, b),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------
// Hosts.
// ---------------------------------------------------------------------------------------

/// The host of a SIP URI or a Via `sent-by` (RFC 3261 §25.1 `host`), as written.
///
/// Names are kept as written (compare with [`Host::eq_ignore_case`]); addresses are also
/// decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host<'a> {
    /// A `hostname` (letters, digits, `-`, `.`; a trailing `.` allowed).
    Name(&'a [u8]),
    /// An `IPv4address`.
    Ipv4 {
        /// The dotted quad as written.
        text: &'a [u8],
        /// The address.
        addr: Ipv4Addr,
    },
    /// An `IPv6reference`.
    Ipv6 {
        /// The address text between the brackets.
        text: &'a [u8],
        /// The whole reference as written, brackets included.
        reference: &'a [u8],
        /// The address; `None` when the text follows RFC 3261's grammar but is not an
        /// RFC 4291 address, e.g. `2001:db8:::192.0.2.1` (RFC 5118 §4.10, tolerated).
        addr: Option<Ipv6Addr>,
    },
}

impl<'a> Host<'a> {
    /// Parses exactly one `host`: a host name, an IPv4 address or a bracketed IPv6 reference.
    pub fn parse(s: &'a [u8]) -> Result<Host<'a>> {
        let (host, end) = parse_host_at(s, 0)?;
        if end == s.len() {
            Ok(host)
        } else {
            Err(unexpected(s, end, "illegal character in host"))
        }
    }

    /// The host as written (brackets included for IPv6).
    pub fn as_bytes(&self) -> &'a [u8] {
        match *self {
            Host::Name(t) => t,
            Host::Ipv4 { text, .. } => text,
            Host::Ipv6 { reference, .. } => reference,
        }
    }

    /// The IP address, when the host is one (and, for IPv6, a valid one).
    pub fn ip(&self) -> Option<IpAddr> {
        match *self {
            Host::Name(_) => None,
            Host::Ipv4 { addr, .. } => Some(IpAddr::V4(addr)),
            Host::Ipv6 { addr, .. } => addr.map(IpAddr::V6),
        }
    }

    /// RFC 3261 §19.1.4 host equality: names compare ASCII case-insensitively, addresses as
    /// addresses (an IPv6 reference that is not an RFC 4291 address compares by text,
    /// case-insensitively). A name never equals an address.
    pub fn eq_ignore_case(&self, other: &Host<'_>) -> bool {
        match (*self, *other) {
            (Host::Name(a), Host::Name(b)) => a.eq_ignore_ascii_case(b),
            (Host::Ipv4 { addr: a, .. }, Host::Ipv4 { addr: b, .. }) => a == b,
            (
                Host::Ipv6 {
                    text: ta, addr: aa, ..
                },
                Host::Ipv6 {
                    text: tb, addr: ab, ..
                },
            ) => match (aa, ab) {
                (Some(a), Some(b)) => a == b,
                _ => ta.eq_ignore_ascii_case(tb),
            },
            _ => false,
        }
    }
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

/// Parses `host [":" port]` as in a Via `sent-by` (RFC 3261 §20.42): a host name, an IPv4
/// address or a bracketed IPv6 reference, then an optional port in 0..=65535. White space
/// (LWS) is accepted around the colon, as `COLON` allows; nowhere else.
pub fn parse_host_port(s: &[u8]) -> Result<(Host<'_>, Option<u16>)> {
    let (host, end) = parse_host_at(s, 0)?;
    if end == s.len() {
        return Ok((host, None));
    }
    let colon = skip_lws(s, end);
    if s.get(colon) != Some(&b':') {
        return Err(unexpected(s, end, "illegal character after host"));
    }
    let (port, pe) = parse_port_at(s, skip_lws(s, colon + 1))?;
    if pe == s.len() {
        Ok((host, Some(port)))
    } else {
        Err(unexpected(s, pe, "illegal character after port"))
    }
}

/// Parses an IP address as a Via `received` or `maddr` value may hold it: an IPv4 address,
/// or an IPv6 address with or without brackets (RFC 5118 §4.5). `None` if it is not one.
pub fn parse_ip(s: &[u8]) -> Option<IpAddr> {
    let inner = match s {
        [b'[', inner @ .., b']'] => inner,
        _ => s,
    };
    let text = std::str::from_utf8(inner).ok()?;
    if let Ok(a) = text.parse::<Ipv6Addr>() {
        return Some(IpAddr::V6(a));
    }
    if inner.len() == s.len() {
        parse_ipv4(s).map(IpAddr::V4)
    } else {
        None
    }
}

/// Parses the `host` starting at `i` in `s`; returns it and the index just after it.
fn parse_host_at(s: &[u8], i: usize) -> Result<(Host<'_>, usize)> {
    if s.get(i) == Some(&b'[') {
        let close = memchr::memchr(b']', sub(s, i, s.len()))
            .map(|p| p + i)
            .ok_or_else(|| bad("IPv6 reference without ']'", i))?;
        let text = sub(s, i + 1, close);
        if text.is_empty() {
            return Err(bad("empty IPv6 reference", i + 1));
        }
        if let Some(p) = text.iter().position(|&b| !in_set(IPV6, b)) {
            return Err(unexpected(
                s,
                i + 1 + p,
                "illegal character in IPv6 reference",
            ));
        }
        let addr = std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse::<Ipv6Addr>().ok());
        if addr.is_none() && !rfc3261_ipv6(text) {
            return Err(bad("malformed IPv6 address", i + 1));
        }
        let reference = sub(s, i, close + 1);
        return Ok((
            Host::Ipv6 {
                text,
                reference,
                addr,
            },
            close + 1,
        ));
    }
    let (end, surely_name) = scan_host_name(s, i);
    if end == i {
        return Err(unexpected(s, i, "empty host"));
    }
    let text = sub(s, i, end);
    if surely_name {
        return Ok((Host::Name(text), end));
    }
    if let Some(addr) = parse_ipv4(text) {
        return Ok((Host::Ipv4 { text, addr }, end));
    }
    match check_hostname(text) {
        Ok(()) => Ok((Host::Name(text), end)),
        Err((what, at)) => {
            if looks_like_bare_ipv6(s, i, end) {
                Err(bad("IPv6 address not enclosed in [ ]", i))
            } else {
                Err(bad(what, i + at))
            }
        }
    }
}

/// Octet classes of a host name, for [`scan_host_name`]: 0 outside the `HOSTNAME` set,
/// then letter, digit, `-`, `.`.
const H_LETTER: u8 = 1;
const H_DASH: u8 = 3;
const H_DOT: u8 = 4;
// Evaluated at compile time: an index out of bounds is a compile error, never a panic.
#[allow(clippy::indexing_slicing)]
static HOST_CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0u8;
    while b < 128 {
        table[b as usize] = if b.is_ascii_alphabetic() {
            H_LETTER
        } else if b.is_ascii_digit() {
            2
        } else if b == b'-' {
            H_DASH
        } else if b == b'.' {
            H_DOT
        } else {
            0
        };
        b += 1;
    }
    table
};

/// One pass over the run of `HOSTNAME` octets at `i`: where it ends, and whether it is
/// certainly a well-formed host name (every label non-empty and without a leading or
/// trailing `-`, the last one, a final `.` aside, starting with a letter), which also rules
/// out an IPv4 address. `false` leaves the verdict (address, name or which fault) to the
/// slower checks.
///
/// Sixteen octets per step from their class masks, the label rules checked on the masks of
/// the whole run; a run of 48 octets or more, or a text shorter than sixteen octets, is
/// scanned an octet at a time ([`scan_host_name_octets`], the same verdict).
#[inline]
pub(crate) fn scan_host_name(s: &[u8], i: usize) -> (usize, bool) {
    // Masks of the run's dots, dashes and letters, bit k for octet i + k.
    let (mut dots, mut dashes, mut letters) = (0u64, 0u64, 0u64);
    let mut n = 0;
    loop {
        let at = i + n;
        let (c, shift) = match s.get(at..).and_then(<[u8]>::first_chunk::<16>) {
            Some(c) => (c, 0),
            // The last one to fifteen octets: the last sixteen of `s`, those before `at`
            // shifted out.
            None => match s.last_chunk::<16>() {
                Some(last) if at < s.len() => (last, 16 - (s.len() - at)),
                Some(_) => break,
                None => return scan_host_name_octets(s, i),
            },
        };
        let classes = Chunk::load(c).host_classes();
        let avail = 16 - shift;
        let host = (classes.host >> shift) | !((1u32 << avail) - 1);
        // Octets of the run in this chunk: up to the first one outside the class (or the
        // end of `s`).
        let k = (!host).trailing_zeros().min(avail as u32) as usize;
        let keep = (1u64 << k) - 1;
        dots |= (u64::from(classes.dots >> shift) & keep) << n;
        dashes |= (u64::from(classes.dashes >> shift) & keep) << n;
        letters |= (u64::from(classes.letters >> shift) & keep) << n;
        n += k;
        if k < 16 {
            break;
        }
        if n >= 48 {
            return scan_host_name_octets(s, i);
        }
    }
    if n == 0 {
        return (i, false);
    }
    // A final '.' is allowed: the labels are what precedes it.
    let body = if dots >> (n - 1) & 1 != 0 { n - 1 } else { n };
    if body == 0 {
        return (i + n, false);
    }
    let in_body = (1u64 << body) - 1;
    let (dots, dashes, letters) = (dots & in_body, dashes & in_body, letters & in_body);
    let last = 1u64 << (body - 1);
    // Label starts: the first octet and every octet after a dot; label ends: every octet
    // before a dot and the last one.
    let starts = (dots << 1) | 1;
    let ends = (dots >> 1) | last;
    let empty_label = dots & (starts | ends) != 0;
    let dash_at_an_edge = dashes & (starts | ends) != 0;
    // The last label starts after the last dot.
    let last_start = if dots == 0 {
        0
    } else {
        64 - dots.leading_zeros() as usize
    };
    let letter_first = letters >> last_start & 1 != 0;
    (i + n, !empty_label && !dash_at_an_edge && letter_first)
}

/// [`scan_host_name`] an octet at a time.
pub(crate) fn scan_host_name_octets(s: &[u8], i: usize) -> (usize, bool) {
    let class = |j: usize| {
        s.get(j)
            .and_then(|&b| HOST_CLASS.get(usize::from(b)))
            .copied()
            .unwrap_or(0)
    };
    let mut j = i;
    let mut ok = true;
    let mut last_label_first = 0;
    // One label per round: its first octet, the rest of it (letters, digits, '-': the tight
    // loop), then the '.' after it, if any.
    loop {
        let first = class(j);
        if first == 0 {
            // The end: an empty host, or a name ending with '.' (allowed).
            break;
        }
        // An empty label, or one starting with '-'.
        ok &= first != H_DOT && first != H_DASH;
        last_label_first = first;
        let mut last = first;
        j += 1;
        loop {
            let c = class(j);
            if c == 0 || c == H_DOT {
                break;
            }
            last = c;
            j += 1;
        }
        // A label ending with '-'.
        ok &= last != H_DASH;
        if class(j) != H_DOT {
            break;
        }
        j += 1;
    }
    (j, ok && last_label_first == H_LETTER)
}

/// True when `s[start..end]` is hex digits followed by a run of hex digits and colons that
/// holds another colon: an IPv6 address written without brackets (RFC 5118 §4.2).
fn looks_like_bare_ipv6(s: &[u8], start: usize, end: usize) -> bool {
    if !sub(s, start, end).iter().all(|&b| in_set(HEXDIG, b)) || s.get(end) != Some(&b':') {
        return false;
    }
    let after = sub(s, end + 1, s.len());
    let run = after
        .iter()
        .position(|&b| !in_set(HEXDIG | bits(b":."), b))
        .unwrap_or(after.len());
    sub(after, 0, run).contains(&b':')
}

/// Checks RFC 3261 `hostname = *( domainlabel "." ) toplabel [ "." ]` on text made of
/// letters, digits, `-` and `.`; on failure returns what is wrong and where.
fn check_hostname(t: &[u8]) -> std::result::Result<(), (&'static str, usize)> {
    let body = t.strip_suffix(b".").unwrap_or(t);
    let mut off = 0;
    let mut last: &[u8] = &[];
    for label in body.split(|&b| b == b'.') {
        match (label.first(), label.last()) {
            (None, _) | (_, None) => return Err(("empty label in host name", off)),
            (Some(b'-'), _) | (_, Some(b'-')) => {
                return Err(("host name label starts or ends with '-'", off))
            }
            _ => {}
        }
        last = label;
        off += label.len() + 1;
    }
    match last.first() {
        Some(&b) if in_set(ALPHA, b) => Ok(()),
        _ => Err((
            "host is neither a host name nor an IPv4 address",
            off.saturating_sub(last.len() + 1),
        )),
    }
}

/// Parses a dotted quad `1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT`, each ≤ 255.
fn parse_ipv4(t: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut n = 0;
    for part in t.split(|&b| b == b'.') {
        if part.is_empty() || part.len() > 3 {
            return None;
        }
        let mut v: u16 = 0;
        for &d in part {
            if !d.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u16::from(d - b'0');
        }
        *octets.get_mut(n)? = u8::try_from(v).ok()?;
        n += 1;
    }
    (n == 4).then(|| Ipv4Addr::from(octets))
}

/// RFC 3261's (laxer than RFC 4291) grammar:
/// `IPv6address = hexpart [ ":" IPv4address ]`,
/// `hexpart = hexseq / hexseq "::" [ hexseq ] / "::" [ hexseq ]`,
/// `hexseq = hex4 *( ":" hex4 )`, `hex4 = 1*4HEXDIG`.
fn rfc3261_ipv6(t: &[u8]) -> bool {
    let hexpart = if t.contains(&b'.') {
        let Some(c) = t.iter().rposition(|&b| b == b':') else {
            return false;
        };
        if parse_ipv4(sub(t, c + 1, t.len())).is_none() {
            return false;
        }
        sub(t, 0, c)
    } else {
        t
    };
    let hexseq = |h: &[u8]| {
        !h.is_empty()
            && h.split(|&b| b == b':')
                .all(|g| (1..=4).contains(&g.len()) && g.iter().all(|&b| in_set(HEXDIG, b)))
    };
    match hexpart.windows(2).position(|w| w == b"::") {
        Some(p) => {
            let left = sub(hexpart, 0, p);
            let right = sub(hexpart, p + 2, hexpart.len());
            (left.is_empty() || hexseq(left)) && (right.is_empty() || hexseq(right))
        }
        None => hexseq(hexpart),
    }
}

// ---------------------------------------------------------------------------------------
// Parameters and headers.
// ---------------------------------------------------------------------------------------

/// Iterator over `;name[=value]` parameters, raw (escapes kept), in order: yields
/// `(name, None)` for a flag parameter and `(name, Some(value))` otherwise.
#[derive(Debug, Clone)]
pub struct UriParams<'a> {
    rest: &'a [u8],
}

impl<'a> UriParams<'a> {
    fn new(rest: &'a [u8]) -> Self {
        UriParams { rest }
    }
}

impl<'a> Iterator for UriParams<'a> {
    type Item = (&'a [u8], Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        while !self.rest.is_empty() {
            let body = self.rest.strip_prefix(b";").unwrap_or(self.rest);
            let (piece, tail) = match memchr::memchr(b';', body) {
                Some(p) => body.split_at(p),
                None => (body, &[][..]),
            };
            self.rest = tail;
            if piece.is_empty() {
                continue;
            }
            return Some(match memchr::memchr(b'=', piece) {
                Some(p) => (sub(piece, 0, p), Some(sub(piece, p + 1, piece.len()))),
                None => (piece, None),
            });
        }
        None
    }
}

/// Iterator over the `hname=hvalue` pairs of a SIP URI's headers, raw (escapes kept).
#[derive(Debug, Clone)]
pub struct UriHeaders<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for UriHeaders<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        while !self.rest.is_empty() {
            let (piece, tail) = match memchr::memchr(b'&', self.rest) {
                Some(p) => (sub(self.rest, 0, p), sub(self.rest, p + 1, self.rest.len())),
                None => (self.rest, &[][..]),
            };
            self.rest = tail;
            if piece.is_empty() {
                continue;
            }
            return Some(match memchr::memchr(b'=', piece) {
                Some(p) => (sub(piece, 0, p), sub(piece, p + 1, piece.len())),
                None => (piece, &[][..]),
            });
        }
        None
    }
}

/// First parameter of `params` whose name matches `name` (case-insensitive, escapes
/// decoded).
fn find_param<'a>(params: &'a [u8], name: &[u8]) -> Option<Option<&'a [u8]>> {
    UriParams::new(params)
        .find(|(n, _)| eq_escaped_ci(n, name))
        .map(|(_, v)| v)
}

/// Parses `*( ";" pname [ "=" pvalue ] )` at `i`; returns the index after the last one.
fn parse_params_at(s: &[u8], mut i: usize, name_set: u128, value_set: u128) -> Result<usize> {
    while s.get(i) == Some(&b';') {
        let ns = i + 1;
        let ne = scan_escaped(s, ns, name_set)?;
        if ne == ns {
            return Err(unexpected(s, ns, "empty parameter name"));
        }
        i = ne;
        if s.get(i) == Some(&b'=') {
            i = scan_escaped(s, i + 1, value_set)?;
        }
    }
    Ok(i)
}

// ---------------------------------------------------------------------------------------
// URIs.
// ---------------------------------------------------------------------------------------

/// Any URI this crate meets in a SIP message (Request-URI, `addr-spec`).
///
/// `PartialEq` is structural (same text); URI equivalence is [`Uri::equivalent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri<'a> {
    /// `sip:` or `sips:` (RFC 3261 §19.1).
    Sip(SipUri<'a>),
    /// `tel:` (RFC 3966).
    Tel(TelUri<'a>),
    /// Any other absolute URI, kept opaque.
    Other(OtherUri<'a>),
}

impl<'a> Uri<'a> {
    /// Parses `s`, which must be exactly the URI (no surrounding white space or `<>`).
    /// The scheme is case-insensitive.
    pub fn parse(s: &'a [u8]) -> Result<Uri<'a>> {
        let colon = scheme_end(s)?;
        let scheme = sub(s, 0, colon);
        if scheme.eq_ignore_ascii_case(b"sip") {
            SipUri::parse_rest(s, colon, false).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case(b"sips") {
            SipUri::parse_rest(s, colon, true).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case(b"tel") {
            TelUri::parse_rest(s, colon).map(Uri::Tel)
        } else {
            OtherUri::parse_rest(s, colon).map(Uri::Other)
        }
    }

    /// The exact input slice.
    pub fn as_bytes(&self) -> &'a [u8] {
        match self {
            Uri::Sip(u) => u.raw,
            Uri::Tel(u) => u.raw,
            Uri::Other(u) => u.raw,
        }
    }

    /// The scheme as written (`b"SIP"` stays `b"SIP"`).
    pub fn scheme(&self) -> &'a [u8] {
        match self {
            Uri::Sip(u) => u.scheme(),
            Uri::Tel(u) => u.scheme(),
            Uri::Other(u) => u.scheme(),
        }
    }

    /// The `sip:`/`sips:` URI, if it is one.
    pub fn as_sip(&self) -> Option<&SipUri<'a>> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }

    /// The `tel:` URI, if it is one.
    pub fn as_tel(&self) -> Option<&TelUri<'a>> {
        match self {
            Uri::Tel(u) => Some(u),
            _ => None,
        }
    }

    /// The URI of another scheme, if it is one.
    pub fn as_other(&self) -> Option<&OtherUri<'a>> {
        match self {
            Uri::Other(u) => Some(u),
            _ => None,
        }
    }

    /// URI equivalence: RFC 3261 §19.1.4 for `sip`/`sips`, RFC 3966 §4 for `tel`, and for
    /// other schemes the same scheme (case-insensitive) and byte-identical rest. URIs of
    /// different schemes are never equivalent.
    pub fn equivalent(&self, other: &Uri<'_>) -> bool {
        match (self, other) {
            (Uri::Sip(a), Uri::Sip(b)) => a.equivalent(b),
            (Uri::Tel(a), Uri::Tel(b)) => a.equivalent(b),
            (Uri::Other(a), Uri::Other(b)) => a.equivalent(b),
            _ => false,
        }
    }
}

impl fmt::Display for Uri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

/// A `sip:` or `sips:` URI (RFC 3261 §19.1), every component a slice of the input.
///
/// `PartialEq` is structural (same text); URI equivalence is [`SipUri::equivalent`].
///
/// Kept within 128 octets (moved with a few vector moves, not a `memcpy` call): the scheme
/// length says `sips` (4) or `sip` (3), and the rarer parts are offsets into `raw`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri<'a> {
    raw: &'a [u8],
    /// 3 for `sip`, 4 for `sips`.
    scheme_len: u8,
    user: Option<&'a [u8]>,
    password: Part,
    host: Host<'a>,
    port: Option<u16>,
    /// `*( ";" uri-parameter )`, each with its leading `;`.
    params: &'a [u8],
    /// The text after `?`.
    headers: Part,
}

/// An optional part of a [`SipUri`]'s text as offsets (two words where an optional slice
/// takes four); `start == u32::MAX` for none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Part {
    start: u32,
    end: u32,
}

impl Part {
    const NONE: Part = Part {
        start: u32::MAX,
        end: 0,
    };

    /// `raw[start..end]` (the parser refuses texts of 2^32 - 1 octets or more, so the offsets
    /// fit).
    fn new(start: usize, end: usize) -> Part {
        Part {
            start: start as u32,
            end: end as u32,
        }
    }

    fn get(self, raw: &[u8]) -> Option<&[u8]> {
        if self.start == u32::MAX {
            None
        } else {
            Some(sub(raw, self.start as usize, self.end as usize))
        }
    }
}

impl<'a> SipUri<'a> {
    /// Parses `s`, which must be exactly a `sip:` or `sips:` URI (scheme case-insensitive).
    pub fn parse(s: &'a [u8]) -> Result<SipUri<'a>> {
        let colon = scheme_end(s)?;
        let scheme = sub(s, 0, colon);
        if scheme.eq_ignore_ascii_case(b"sip") {
            Self::parse_rest(s, colon, false)
        } else if scheme.eq_ignore_ascii_case(b"sips") {
            Self::parse_rest(s, colon, true)
        } else {
            Err(bad("not a sip or sips URI", 0))
        }
    }

    /// Parses what follows the scheme's `:` at `colon`.
    #[inline(always)]
    fn parse_rest(s: &'a [u8], colon: usize, secure: bool) -> Result<SipUri<'a>> {
        if u32::try_from(s.len()).is_err() {
            return Err(bad("URI too long", 0));
        }
        let mut i = colon + 1;
        let mut user = None;
        let mut password = Part::NONE;
        // userinfo: present iff there is an '@' (nothing else in a SIP URI may hold one).
        if let Some(at) = crate::find::find1(s, i, b'@') {
            let ue = scan_escaped(s, i, USER)?;
            if ue == i {
                return Err(unexpected(s, i, "empty user"));
            }
            user = Some(sub(s, i, ue));
            match s.get(ue) {
                Some(b'@') => {}
                Some(b':') => {
                    let pe = scan_escaped(s, ue + 1, PASSWORD)?;
                    if pe != at {
                        return Err(unexpected(s, pe, "illegal character in password"));
                    }
                    password = Part::new(ue + 1, pe);
                }
                _ => return Err(unexpected(s, ue, "illegal character in user")),
            }
            i = at + 1;
        }
        let host_start = i;
        let (host, mut i) = parse_host_at(s, i)?;
        let mut port = None;
        if s.get(i) == Some(&b':') {
            let (p, e) = parse_port_at(s, i + 1).map_err(|e| {
                if looks_like_bare_ipv6(s, host_start, i) {
                    bad("IPv6 address not enclosed in [ ]", host_start)
                } else {
                    e
                }
            })?;
            port = Some(p);
            i = e;
        }
        let ps = i;
        i = parse_params_at(s, i, PARAM, PARAM)?;
        let params = sub(s, ps, i);
        let mut headers = Part::NONE;
        if s.get(i) == Some(&b'?') {
            let hs = i + 1;
            loop {
                let ns = i + 1;
                let ne = scan_escaped(s, ns, HNV)?;
                if ne == ns {
                    return Err(unexpected(s, ns, "empty header name"));
                }
                if s.get(ne) != Some(&b'=') {
                    return Err(unexpected(s, ne, "URI header without '='"));
                }
                i = scan_escaped(s, ne + 1, HNV)?;
                if s.get(i) != Some(&b'&') {
                    break;
                }
            }
            headers = Part::new(hs, i);
        }
        if i != s.len() {
            let what = match s.get(i) {
                Some(b'@') => "second '@' in URI",
                _ if port.is_none() && ps == i => "illegal character after host",
                _ => "illegal character in URI",
            };
            return Err(unexpected(s, i, what));
        }
        Ok(SipUri {
            raw: s,
            scheme_len: if secure { 4 } else { 3 },
            user,
            password,
            host,
            port,
            params,
            headers,
        })
    }

    /// The scheme as written.
    pub fn scheme(&self) -> &'a [u8] {
        sub(self.raw, 0, usize::from(self.scheme_len))
    }

    /// True for `sips:`.
    pub fn secure(&self) -> bool {
        self.scheme_len == 4
    }

    /// The user part, raw (escapes kept) as written; `None` without userinfo.
    pub fn user(&self) -> Option<&'a [u8]> {
        self.user
    }

    /// The user part with `%HH` escapes decoded once; empty without userinfo. Allocates only
    /// when there is an escape.
    pub fn user_unescaped(&self) -> Cow<'a, [u8]> {
        match self.user {
            Some(u) => unescape(u),
            None => Cow::Borrowed(&[]),
        }
    }

    /// The password (after the first `:` of the userinfo), raw; `None` without one.
    pub fn password(&self) -> Option<&'a [u8]> {
        self.password.get(self.raw)
    }

    /// The host.
    pub fn host(&self) -> Host<'a> {
        self.host
    }

    /// The port, if written.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The URI parameters, raw, in order.
    pub fn params(&self) -> UriParams<'a> {
        UriParams::new(self.params)
    }

    /// The parameter text as written: `*( ";" uri-parameter )`, leading `;` included; empty
    /// when there is none.
    pub fn params_bytes(&self) -> &'a [u8] {
        self.params
    }

    /// The first parameter named `name` (ASCII case-insensitive, escapes in the written name
    /// decoded): `None` when absent, `Some(None)` for a flag parameter, `Some(Some(value))`
    /// otherwise (value raw).
    pub fn param(&self, name: &[u8]) -> Option<Option<&'a [u8]>> {
        find_param(self.params, name)
    }

    /// `transport=` value, raw.
    pub fn transport(&self) -> Option<&'a [u8]> {
        self.param(b"transport").flatten()
    }

    /// True when the `lr` parameter is present (with or without a value).
    pub fn lr(&self) -> bool {
        self.param(b"lr").is_some()
    }

    /// `maddr=` value, raw.
    pub fn maddr(&self) -> Option<&'a [u8]> {
        self.param(b"maddr").flatten()
    }

    /// `user=` value, raw.
    pub fn user_param(&self) -> Option<&'a [u8]> {
        self.param(b"user").flatten()
    }

    /// `ttl=` value, raw.
    pub fn ttl(&self) -> Option<&'a [u8]> {
        self.param(b"ttl").flatten()
    }

    /// `method=` value, raw.
    pub fn method(&self) -> Option<&'a [u8]> {
        self.param(b"method").flatten()
    }

    /// The raw text after `?`, without the `?`.
    pub fn headers(&self) -> Option<&'a [u8]> {
        self.headers.get(self.raw)
    }

    /// The `hname=hvalue` pairs of the headers, raw, in order.
    pub fn header_fields(&self) -> UriHeaders<'a> {
        UriHeaders {
            rest: self.headers().unwrap_or_default(),
        }
    }

    /// The exact input slice.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }

    /// RFC 3261 §19.1.4 equivalence.
    ///
    /// `sip` never equals `sips`; the userinfo compares case-sensitively, the host
    /// case-insensitively (addresses as addresses); a component present in one URI only
    /// (port, userinfo, password) makes them differ. The `user`, `ttl`, `method`, `maddr`
    /// and `transport` parameters must be in both or neither and then match; other
    /// parameters are compared only when in both. Every header must be in both and match
    /// (name case-insensitive, value case-sensitive). Escaped characters equal their plain
    /// form, except the `reserved` ones.
    pub fn equivalent(&self, other: &SipUri<'_>) -> bool {
        self.secure() == other.secure()
            && match (self.user, other.user) {
                (None, None) => true,
                (Some(a), Some(b)) => eq_escaped(a, b),
                _ => false,
            }
            && match (self.password(), other.password()) {
                (None, None) => true,
                (Some(a), Some(b)) => eq_escaped(a, b),
                _ => false,
            }
            && self.host.eq_ignore_case(&other.host)
            && self.port == other.port
            && params_equivalent(self.params, other.params)
            && headers_equivalent(self.headers(), other.headers())
    }
}

impl fmt::Display for SipUri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.raw))
    }
}

/// Parameters that, present in one URI, must be present and equal in the other
/// (RFC 3261 §19.1.4).
const STRICT_PARAMS: [&[u8]; 5] = [b"user", b"ttl", b"method", b"maddr", b"transport"];

fn params_equivalent(a: &[u8], b: &[u8]) -> bool {
    if a == b {
        return true;
    }
    for name in STRICT_PARAMS {
        match (find_param(a, name), find_param(b, name)) {
            (None, None) => {}
            (Some(x), Some(y)) if eq_value_ci(x, y) => {}
            _ => return false,
        }
    }
    other_params_agree(a, b) && other_params_agree(b, a)
}

/// True when every parameter of `a` other than the strict ones, if `b` has parameters of
/// that name, equals one of them (checked both ways, this keeps equivalence symmetric when
/// a name is repeated).
fn other_params_agree(a: &[u8], b: &[u8]) -> bool {
    UriParams::new(a).all(|(name, value)| {
        if STRICT_PARAMS.iter().any(|s| eq_escaped_ci(name, s)) {
            return true;
        }
        let mut named = false;
        for (m, w) in UriParams::new(b) {
            if eq_escaped_ci(name, m) {
                if eq_value_ci(value, w) {
                    return true;
                }
                named = true;
            }
        }
        !named
    })
}

fn headers_equivalent(a: Option<&[u8]>, b: Option<&[u8]>) -> bool {
    let (a, b) = match (a, b) {
        (None, None) => return true,
        (Some(a), Some(b)) => (a, b),
        _ => return false,
    };
    if a == b {
        return true;
    }
    let contains = |set: &[u8], (n, v): (&[u8], &[u8])| {
        UriHeaders { rest: set }.any(|(m, w)| eq_escaped_ci(n, m) && eq_escaped(v, w))
    };
    UriHeaders { rest: a }.all(|h| contains(b, h)) && UriHeaders { rest: b }.all(|h| contains(a, h))
}

/// A `tel:` URI (RFC 3966): a global (`+...`) or local number, then parameters.
///
/// `PartialEq` is structural (same text); URI equivalence is [`TelUri::equivalent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelUri<'a> {
    raw: &'a [u8],
    scheme_len: usize,
    number: &'a [u8],
    params: &'a [u8],
}

impl<'a> TelUri<'a> {
    /// Parses `s`, which must be exactly a `tel:` URI (scheme case-insensitive).
    pub fn parse(s: &'a [u8]) -> Result<TelUri<'a>> {
        let colon = scheme_end(s)?;
        if sub(s, 0, colon).eq_ignore_ascii_case(b"tel") {
            Self::parse_rest(s, colon)
        } else {
            Err(bad("not a tel URI", 0))
        }
    }

    fn parse_rest(s: &'a [u8], colon: usize) -> Result<TelUri<'a>> {
        let ns = colon + 1;
        let global = s.get(ns) == Some(&b'+');
        let (digits_start, chars, digits) = if global {
            (ns + 1, DIGIT | VISUAL, DIGIT)
        } else {
            (ns, HEXDIG | VISUAL | bits(b"*#"), HEXDIG | bits(b"*#"))
        };
        let ne = scan_plain(s, digits_start, chars);
        let number = sub(s, ns, ne);
        if !number.iter().any(|&b| in_set(digits, b)) {
            return Err(unexpected(s, ns, "tel URI number without a digit"));
        }
        let end = parse_params_at(s, ne, TEL_PNAME, TEL_PVALUE)?;
        if end != s.len() {
            return Err(unexpected(s, end, "illegal character in tel URI"));
        }
        Ok(TelUri {
            raw: s,
            scheme_len: colon,
            number,
            params: sub(s, ne, end),
        })
    }

    /// The scheme as written.
    pub fn scheme(&self) -> &'a [u8] {
        sub(self.raw, 0, self.scheme_len)
    }

    /// The number as written, `+` and visual separators included.
    pub fn number(&self) -> &'a [u8] {
        self.number
    }

    /// True for a global number (`+` followed by digits).
    pub fn is_global(&self) -> bool {
        self.number.first() == Some(&b'+')
    }

    /// The parameters, raw, in order.
    pub fn params(&self) -> UriParams<'a> {
        UriParams::new(self.params)
    }

    /// The first parameter named `name` (ASCII case-insensitive): `None` when absent,
    /// `Some(None)` for a flag parameter.
    pub fn param(&self, name: &[u8]) -> Option<Option<&'a [u8]>> {
        find_param(self.params, name)
    }

    /// `phone-context=` value, raw.
    pub fn phone_context(&self) -> Option<&'a [u8]> {
        self.param(b"phone-context").flatten()
    }

    /// `ext=` value, raw.
    pub fn ext(&self) -> Option<&'a [u8]> {
        self.param(b"ext").flatten()
    }

    /// `isub=` value, raw.
    pub fn isub(&self) -> Option<&'a [u8]> {
        self.param(b"isub").flatten()
    }

    /// The exact input slice.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }

    /// RFC 3966 §4 equivalence: both global or both local, the same digits once visual
    /// separators are removed, and the same set of parameters (order ignored) with equal
    /// values; `phone-context` compares as digits when it is a global number and as a host
    /// name otherwise, `ext` as digits. Everything is case-insensitive.
    pub fn equivalent(&self, other: &TelUri<'_>) -> bool {
        self.is_global() == other.is_global()
            && eq_phone_digits(self.number, other.number)
            && tel_params_included(self.params, other.params)
            && tel_params_included(other.params, self.params)
    }
}

impl fmt::Display for TelUri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.raw))
    }
}

/// Equality of phone digits, visual separators ignored, case-insensitive.
fn eq_phone_digits(a: &[u8], b: &[u8]) -> bool {
    fn clean(s: &[u8]) -> impl Iterator<Item = u8> + '_ {
        s.iter()
            .filter(|&&c| !in_set(VISUAL, c))
            .map(u8::to_ascii_lowercase)
    }
    clean(a).eq(clean(b))
}

/// True when every parameter of `a` is in `b` with an equal value (RFC 3966 §4).
fn tel_params_included(a: &[u8], b: &[u8]) -> bool {
    UriParams::new(a).all(|(name, value)| {
        UriParams::new(b).any(|(m, w)| {
            if !eq_escaped_ci(name, m) {
                return false;
            }
            match (value, w) {
                (None, None) => true,
                (Some(x), Some(y)) => {
                    let digits = name.eq_ignore_ascii_case(b"ext")
                        || (name.eq_ignore_ascii_case(b"phone-context")
                            && x.first() == Some(&b'+'));
                    if digits {
                        eq_phone_digits(x, y)
                    } else {
                        eq_escaped_ci(x, y)
                    }
                }
                _ => false,
            }
        })
    })
}

/// An absolute URI of a scheme other than `sip`, `sips` and `tel`: `scheme ":" rest`, the
/// rest kept opaque (RFC 3986 characters checked, nothing else).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherUri<'a> {
    raw: &'a [u8],
    scheme_len: usize,
}

impl<'a> OtherUri<'a> {
    /// Parses `s` as `scheme ":" 1*uric` without interpreting the scheme.
    pub fn parse(s: &'a [u8]) -> Result<OtherUri<'a>> {
        let colon = scheme_end(s)?;
        Self::parse_rest(s, colon)
    }

    fn parse_rest(s: &'a [u8], colon: usize) -> Result<OtherUri<'a>> {
        let start = colon + 1;
        let end = scan_plain(s, start, OPAQUE);
        if end == start {
            return Err(unexpected(s, start, "empty URI after the scheme"));
        }
        if end != s.len() {
            return Err(unexpected(s, end, "illegal character in URI"));
        }
        Ok(OtherUri {
            raw: s,
            scheme_len: colon,
        })
    }

    /// The scheme as written.
    pub fn scheme(&self) -> &'a [u8] {
        sub(self.raw, 0, self.scheme_len)
    }

    /// Everything after the scheme's `:`.
    pub fn rest(&self) -> &'a [u8] {
        sub(self.raw, self.scheme_len + 1, self.raw.len())
    }

    /// The exact input slice.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }

    /// Same scheme (ASCII case-insensitive) and byte-identical rest.
    pub fn equivalent(&self, other: &OtherUri<'_>) -> bool {
        self.scheme().eq_ignore_ascii_case(other.scheme()) && self.rest() == other.rest()
    }
}

impl fmt::Display for OtherUri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uri_stays_within_128_octets() {
        // Larger, every move of one (into a NameAddr, a cache cell) becomes a memcpy call.
        assert!(std::mem::size_of::<Uri<'_>>() <= 128);
    }

    #[test]
    fn host_name_scan_by_chunks_agrees_with_the_octet_scan() {
        let alphabet = [b'a', b'Z', b'7', b'-', b'.', b';', b'/', b'\xc3'];
        let mut next = crate::test_rng::xorshift(0x2545_f491_4f6c_dd1du64);
        for round in 0..200_000 {
            let len = (next() % 70) as usize;
            // Mostly host octets, so that long runs occur.
            let text: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if round % 3 == 0 || r % 16 != 0 {
                        alphabet[(r % 5) as usize]
                    } else {
                        alphabet[(r % 8) as usize]
                    }
                })
                .collect();
            for start in [0, 1, 5, 16].into_iter().filter(|&s| s <= len) {
                assert_eq!(
                    scan_host_name(&text, start),
                    scan_host_name_octets(&text, start),
                    "{:?} {start}",
                    String::from_utf8_lossy(&text)
                );
            }
        }
    }

    #[test]
    fn host_name_scan_agrees_with_the_slow_checks() {
        for b in 0..=255u8 {
            assert_eq!(HOST_CLASS[usize::from(b)] != 0, in_set(HOSTNAME, b), "{b}");
        }
        // Every text of up to six octets over letter, digit, '-', '.', plus an octet that
        // ends the run: a host the one-pass scan calls a name is one for the full checks.
        let alphabet = [b'a', b'7', b'-', b'.'];
        let mut count = 0;
        for len in 1..=6u32 {
            for mut k in 0..4usize.pow(len) {
                let mut text = Vec::new();
                for _ in 0..len {
                    text.push(alphabet[k % 4]);
                    k /= 4;
                }
                text.push(b';');
                let (end, surely) = scan_host_name(&text, 0);
                assert_eq!(end, text.len() - 1);
                let host = &text[..end];
                let slow = parse_ipv4(host).is_none() && check_hostname(host).is_ok();
                if surely {
                    assert!(slow, "{:?}", String::from_utf8_lossy(host));
                    count += 1;
                } else {
                    // (The scan's verdict is exact here: the full checks refuse it too, or
                    // find an IPv4 address.)
                    assert!(!slow, "{:?}", String::from_utf8_lossy(host));
                }
            }
        }
        assert!(count > 100);
    }

    fn sip(s: &str) -> SipUri<'_> {
        match SipUri::parse(s.as_bytes()) {
            Ok(u) => u,
            Err(e) => panic!("{s:?} should parse: {e}"),
        }
    }

    fn uri(s: &str) -> Uri<'_> {
        match Uri::parse(s.as_bytes()) {
            Ok(u) => u,
            Err(e) => panic!("{s:?} should parse: {e}"),
        }
    }

    /// The error of a URI that must not parse: (offset, message).
    fn fails(s: &[u8]) -> (usize, &'static str) {
        match Uri::parse(s) {
            Ok(u) => panic!(
                "{:?} should not parse, got {u:?}",
                String::from_utf8_lossy(s)
            ),
            Err(e) => match e.kind() {
                ParseErrorKind::BadUri(what) => (e.offset(), what),
                k => panic!("unexpected error kind {k:?}"),
            },
        }
    }

    fn equiv(a: &str, b: &str) -> bool {
        let (a, b) = (uri(a), uri(b));
        let ab = a.equivalent(&b);
        assert_eq!(ab, b.equivalent(&a), "equivalence must be symmetric");
        ab
    }

    fn params<'a>(u: &SipUri<'a>) -> Vec<(&'a [u8], Option<&'a [u8]>)> {
        u.params().collect()
    }

    // --- components -----------------------------------------------------------------------

    #[test]
    fn parses_every_component_of_a_full_sip_uri() {
        let u = sip(
            "sip:alice:secret@atlanta.com:5061;transport=tcp;lr;maddr=239.255.255.1;\
                     ttl=15;user=phone;method=INVITE?subject=project%20x&priority=urgent",
        );
        assert!(!u.secure());
        assert_eq!(u.scheme(), b"sip");
        assert_eq!(u.user(), Some(&b"alice"[..]));
        assert_eq!(u.password(), Some(&b"secret"[..]));
        assert_eq!(u.host(), Host::Name(b"atlanta.com"));
        assert_eq!(u.port(), Some(5061));
        assert_eq!(u.transport(), Some(&b"tcp"[..]));
        assert!(u.lr());
        assert_eq!(u.maddr(), Some(&b"239.255.255.1"[..]));
        assert_eq!(u.ttl(), Some(&b"15"[..]));
        assert_eq!(u.user_param(), Some(&b"phone"[..]));
        assert_eq!(u.method(), Some(&b"INVITE"[..]));
        assert_eq!(
            u.headers(),
            Some(&b"subject=project%20x&priority=urgent"[..])
        );
        let h: Vec<_> = u.header_fields().collect();
        assert_eq!(
            h,
            vec![
                (&b"subject"[..], &b"project%20x"[..]),
                (&b"priority"[..], &b"urgent"[..])
            ]
        );
        assert_eq!(params(&u).len(), 6);
        assert_eq!(
            u.params_bytes(),
            b";transport=tcp;lr;maddr=239.255.255.1;ttl=15;user=phone;method=INVITE"
        );
    }

    #[test]
    fn rfc3261_19_1_3_examples_parse() {
        let u = sip("sip:+1-212-555-1212:1234@gateway.com;user=phone");
        assert_eq!(u.user(), Some(&b"+1-212-555-1212"[..]));
        assert_eq!(u.password(), Some(&b"1234"[..]));
        assert_eq!(u.user_param(), Some(&b"phone"[..]));
        let u = sip("sips:1212@gateway.com");
        assert!(u.secure());
        assert_eq!(u.user(), Some(&b"1212"[..]));
        let u = sip("sip:alice;day=tuesday@atlanta.com");
        assert_eq!(u.user(), Some(&b"alice;day=tuesday"[..]));
        assert_eq!(u.params().count(), 0);
        let u = sip("sip:alice@192.0.2.4");
        assert_eq!(u.host().ip(), Some("192.0.2.4".parse().unwrap()));
    }

    #[test]
    fn uri_without_at_has_no_userinfo() {
        let u = sip("sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com");
        assert_eq!(u.user(), None);
        assert_eq!(u.password(), None);
        assert_eq!(&*u.user_unescaped(), b"");
        assert_eq!(u.host(), Host::Name(b"atlanta.com"));
        assert_eq!(u.method(), Some(&b"REGISTER"[..]));
        assert_eq!(u.headers(), Some(&b"to=alice%40atlanta.com"[..]));
    }

    #[test]
    fn scheme_is_case_insensitive_and_kept_as_written() {
        let u = uri("SIP:alice@example.com");
        assert_eq!(u.scheme(), b"SIP");
        assert!(!u.as_sip().unwrap().secure());
        let u = uri("Sips:alice@example.com");
        assert_eq!(u.scheme(), b"Sips");
        assert!(u.as_sip().unwrap().secure());
        assert!(matches!(uri("TeL:+1234"), Uri::Tel(_)));
        assert_eq!(uri("SIP:a@b").as_bytes(), b"SIP:a@b");
    }

    #[test]
    fn flag_params_and_param_lookup_are_case_insensitive() {
        let u = sip("sip:h;LR;Transport=UDP;foo=");
        assert!(u.lr());
        assert_eq!(u.param(b"lr"), Some(None));
        assert_eq!(u.param(b"TRANSPORT"), Some(Some(&b"UDP"[..])));
        assert_eq!(u.transport(), Some(&b"UDP"[..]));
        assert_eq!(u.param(b"foo"), Some(Some(&b""[..])));
        assert_eq!(u.param(b"bar"), None);
        assert_eq!(u.maddr(), None);
    }

    #[test]
    fn display_writes_the_uri_as_written() {
        assert_eq!(uri("sip:A@b;c").to_string(), "sip:A@b;c");
        assert_eq!(Host::parse(b"[::1]").unwrap().to_string(), "[::1]");
    }

    // --- RFC 4475 -----------------------------------------------------------------------------

    #[test]
    fn rfc4475_intmeth_user_and_password_hold_unusual_characters() {
        // §3.1.1.2
        let u = sip("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com");
        assert_eq!(
            u.user(),
            Some(&b"1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"[..])
        );
        assert_eq!(
            u.password(),
            Some(&b"&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"[..])
        );
        assert_eq!(u.host(), Host::Name(b"example.com"));
        assert_eq!(u.params().count(), 0);
        assert_eq!(u.headers(), None);
        let to = sip("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com");
        assert_eq!(
            to.user(),
            Some(&b"1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"[..])
        );
        assert_eq!(to.password(), None);
    }

    #[test]
    fn rfc4475_esc01_request_uri_user_unescapes_to_a_sips_uri() {
        // §3.1.1.3
        let u = sip("sip:sips%3Auser%40example.com@example.net");
        assert_eq!(u.user(), Some(&b"sips%3Auser%40example.com"[..]));
        assert_eq!(&*u.user_unescaped(), b"sips:user@example.com");
        assert_eq!(u.host(), Host::Name(b"example.net"));
        let to = sip("sip:%75se%72@example.com");
        assert_eq!(&*to.user_unescaped(), b"user");
        assert!(equiv("sip:%75se%72@example.com", "sip:user@example.com"));
        let from = sip("sip:I%20have%20spaces@example.net");
        assert_eq!(&*from.user_unescaped(), b"I have spaces");
    }

    #[test]
    fn rfc4475_esc01_contact_params_unescape_once_to_lr_and_name_value41() {
        // §3.1.1.3: unescaping is never recursive.
        let u = sip("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31");
        assert_eq!(&*u.user_unescaped(), b"caller");
        let p = params(&u);
        assert_eq!(p.len(), 2);
        assert_eq!(&*unescape(p[0].0), b"lr");
        assert_eq!(p[0].1, None);
        assert_eq!(&*unescape(p[1].0), b"name");
        assert_eq!(&*unescape(p[1].1.unwrap()), b"value%41");
        assert!(u.lr());
        assert_eq!(u.param(b"name"), Some(Some(&b"v%61lue%25%34%31"[..])));
        assert!(equiv(
            "sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31",
            "sip:caller@host5.example.net;lr;name=value%2541"
        ));
        assert!(!equiv(
            "sip:caller@host5.example.net;name=v%61lue%25%34%31",
            "sip:caller@host5.example.net;name=valueA"
        ));
    }

    #[test]
    fn rfc4475_escnull_users_are_distinct_and_nul_does_not_truncate() {
        // §3.1.1.4
        let one = sip("sip:%00@host5.example.com");
        let two = sip("sip:%00%00@host5.example.com");
        assert_eq!(&*one.user_unescaped(), b"\0");
        assert_eq!(&*two.user_unescaped(), b"\0\0");
        assert!(!one.equivalent(&two));
        let to = sip("sip:null-%00-null@example.com");
        assert_eq!(&*to.user_unescaped(), b"null-\0-null");
        assert!(!equiv(
            "sip:null-%00-null@example.com",
            "sip:null-@example.com"
        ));
    }

    #[test]
    fn rfc4475_semiuri_semicolon_belongs_to_the_user_part() {
        // §3.1.1.9
        let u = sip("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user(), Some(&b"user;par=u%40example.net"[..]));
        assert_eq!(&*u.user_unescaped(), b"user;par=u@example.net");
        assert_eq!(u.host(), Host::Name(b"example.com"));
        assert_eq!(u.params().count(), 0);
    }

    #[test]
    fn rfc4475_wsinv_and_longreq_uris_parse() {
        let u = sip("sip:vivekg@chair-dnrc.example.com;unknownparam");
        assert_eq!(u.param(b"unknownparam"), Some(None));
        let long = "sip:user@example.com:6000;unknownparam1=verylonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglongvalue;longparamnamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamename=shortvalue;verylonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglongParameterNameWithNoValue";
        let u = sip(long);
        assert_eq!(u.port(), Some(6000));
        assert_eq!(u.params().count(), 3);
        assert_eq!(
            u.param(b"verylonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglongparameternamewithnovalue"),
            Some(None)
        );
    }

    #[test]
    fn rfc4475_inv2543_and_cparam_uris_parse() {
        let u = sip("sip:+13035551111@ift.client.example.net;user=phone");
        assert_eq!(u.user(), Some(&b"+13035551111"[..]));
        assert_eq!(u.user_param(), Some(&b"phone"[..]));
        let rr = sip("sip:UserB@example.com;maddr=ss1.example.com");
        assert_eq!(rr.maddr(), Some(&b"ss1.example.com"[..]));
        let c = sip("sip:+19725552222@gw1.example.net;unknownparam");
        assert_eq!(c.param(b"unknownparam"), Some(None));
    }

    #[test]
    fn rfc4475_escruri_and_regescrt_headers_are_kept_raw() {
        // §3.1.2.11 / §3.3.x: syntactically these are valid URIs with headers.
        let u = sip("sip:user@example.com?Route=%3Csip:example.com%3E");
        assert_eq!(u.headers(), Some(&b"Route=%3Csip:example.com%3E"[..]));
        let h: Vec<_> = u.header_fields().collect();
        assert_eq!(h, vec![(&b"Route"[..], &b"%3Csip:example.com%3E"[..])]);
        let u = sip("sip:user@example.com?Route=%3Csip:sip.example.com%3E");
        assert_eq!(
            &*unescape(u.headers().unwrap()),
            b"Route=<sip:sip.example.com>"
        );
    }

    #[test]
    fn rfc4475_ltgtruri_angle_brackets_are_rejected() {
        // §3.1.2.7
        assert_eq!(
            fails(b"<sip:user@example.com>"),
            (0, "angle bracket inside a URI")
        );
        assert_eq!(
            fails(b"sip:user@example.com>"),
            (20, "angle bracket inside a URI")
        );
    }

    #[test]
    fn rfc4475_lwsruri_white_space_is_rejected() {
        // §3.1.2.8
        assert_eq!(
            fails(b"sip:user@example.com; lr"),
            (21, "white space inside a URI")
        );
        assert_eq!(
            fails(b"sip:us er@example.com"),
            (6, "white space inside a URI")
        );
        assert_eq!(
            fails(b"sip:user@example.com "),
            (20, "white space inside a URI")
        );
        assert_eq!(
            fails(b" sip:user@example.com"),
            (0, "white space inside a URI")
        );
        assert_eq!(
            fails(b"sip:user@exa\tmple.com"),
            (12, "white space inside a URI")
        );
    }

    #[test]
    fn rfc4475_unknown_schemes_parse_as_opaque_uris() {
        for s in [
            "nobodyKnowsThisScheme:totallyopaquecontent",
            "isbn:2983792873",
            "http://www.example.com",
            "name:John_Smith",
            "im:user@example.com",
            "soap.beep://192.0.2.103:3002",
            "urn:service:sos",
        ] {
            let u = uri(s);
            let o = u
                .as_other()
                .unwrap_or_else(|| panic!("{s} should be Other"));
            assert_eq!(o.as_bytes(), s.as_bytes());
            let colon = s.find(':').unwrap();
            assert_eq!(o.scheme(), &s.as_bytes()[..colon]);
            assert_eq!(o.rest(), &s.as_bytes()[colon + 1..]);
            assert_eq!(u.scheme(), &s.as_bytes()[..colon]);
            assert!(u.as_sip().is_none());
        }
    }

    // --- RFC 5118 -----------------------------------------------------------------------------

    #[test]
    fn rfc5118_ipv6_reference_in_request_uri() {
        // §4.1
        let u = sip("sip:[2001:db8::10]");
        assert_eq!(
            u.host(),
            Host::Ipv6 {
                text: b"2001:db8::10",
                reference: b"[2001:db8::10]",
                addr: Some("2001:db8::10".parse().unwrap()),
            }
        );
        assert_eq!(u.host().as_bytes(), b"[2001:db8::10]");
        assert_eq!(u.port(), None);
        let c = sip("sip:caller@[2001:db8::1]");
        assert_eq!(c.user(), Some(&b"caller"[..]));
    }

    #[test]
    fn rfc5118_ipv6_without_brackets_is_rejected() {
        // §4.2
        assert_eq!(
            fails(b"sip:2001:db8::10"),
            (4, "IPv6 address not enclosed in [ ]")
        );
        assert_eq!(
            fails(b"sip:user@fe80::1"),
            (9, "IPv6 address not enclosed in [ ]")
        );
        assert_eq!(fails(b"sip:abc:def"), (8, "port is not a number"));
    }

    #[test]
    fn rfc5118_port_inside_brackets_is_part_of_the_address() {
        // §4.3
        let u = sip("sip:[2001:db8::10:5070]");
        assert_eq!(u.port(), None);
        match u.host() {
            Host::Ipv6 { text, addr, .. } => {
                assert_eq!(text, b"2001:db8::10:5070");
                assert_eq!(addr, Some("2001:db8::10:5070".parse().unwrap()));
            }
            h => panic!("{h:?}"),
        }
    }

    #[test]
    fn rfc5118_port_after_brackets() {
        // §4.4
        let u = sip("sip:[2001:db8::10]:5070");
        assert_eq!(u.port(), Some(5070));
        assert_eq!(u.host().ip(), Some("2001:db8::10".parse().unwrap()));
    }

    #[test]
    fn rfc5118_ipv4_mapped_ipv6_is_valid() {
        // §4.9
        let u = sip("sip:ted@[::ffff:192.0.2.2]");
        assert_eq!(u.host().ip(), Some("::ffff:192.0.2.2".parse().unwrap()));
    }

    #[test]
    fn rfc5118_three_colons_tolerated_without_an_address() {
        // §4.10
        let u = sip("sip:user@[2001:db8:::192.0.2.1]");
        assert_eq!(
            u.host(),
            Host::Ipv6 {
                text: b"2001:db8:::192.0.2.1",
                reference: b"[2001:db8:::192.0.2.1]",
                addr: None
            }
        );
        let ok = sip("sip:user@[2001:db8::192.0.2.1]");
        assert_eq!(ok.host().ip(), Some("2001:db8::192.0.2.1".parse().unwrap()));
        assert!(!u.equivalent(&ok));
        assert!(u.equivalent(&sip("sip:user@[2001:DB8:::192.0.2.1]")));
    }

    #[test]
    fn malformed_ipv6_references_are_rejected() {
        assert_eq!(fails(b"sip:[]"), (5, "empty IPv6 reference"));
        assert_eq!(fails(b"sip:[::1"), (4, "IPv6 reference without ']'"));
        assert_eq!(
            fails(b"sip:[::g]"),
            (7, "illegal character in IPv6 reference")
        );
        assert_eq!(fails(b"sip:[1:::2]"), (5, "malformed IPv6 address"));
        assert_eq!(fails(b"sip:[12345::1]"), (5, "malformed IPv6 address"));
        assert_eq!(fails(b"sip:[::1]x"), (9, "illegal character after host"));
        assert_eq!(fails(b"sip:[::1]:"), (10, "port is not a number"));
    }

    // --- hosts and ports ---------------------------------------------------------------------

    #[test]
    fn host_names_and_ipv4_addresses() {
        assert_eq!(sip("sip:example.com.").host(), Host::Name(b"example.com."));
        assert_eq!(sip("sip:a-b.c0m").host(), Host::Name(b"a-b.c0m"));
        assert_eq!(
            sip("sip:123.example.com").host(),
            Host::Name(b"123.example.com")
        );
        assert_eq!(
            sip("sip:u@192.0.2.4").host(),
            Host::Ipv4 {
                text: b"192.0.2.4",
                addr: Ipv4Addr::new(192, 0, 2, 4)
            }
        );
        let z = sip("sip:010.000.0.1");
        assert_eq!(z.host().ip(), Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
        assert_eq!(z.host().as_bytes(), b"010.000.0.1");
    }

    #[test]
    fn malformed_hosts_are_rejected_with_their_offset() {
        assert_eq!(fails(b"sip:"), (4, "empty host"));
        assert_eq!(fails(b"sip:user@"), (9, "empty host"));
        assert_eq!(fails(b"sip:user@;lr"), (9, "empty host"));
        assert_eq!(fails(b"sip:user@:5060"), (9, "empty host"));
        assert_eq!(
            fails(b"sip:-a.com"),
            (4, "host name label starts or ends with '-'")
        );
        assert_eq!(
            fails(b"sip:a.b-.com"),
            (6, "host name label starts or ends with '-'")
        );
        assert_eq!(fails(b"sip:a..com"), (6, "empty label in host name"));
        assert_eq!(fails(b"sip:.a.com"), (4, "empty label in host name"));
        assert_eq!(
            fails(b"sip:256.1.1.1"),
            (12, "host is neither a host name nor an IPv4 address")
        );
        assert_eq!(
            fails(b"sip:1.2.3"),
            (8, "host is neither a host name nor an IPv4 address")
        );
        assert_eq!(fails(b"sip:host_name"), (8, "illegal character after host"));
    }

    #[test]
    fn ports_are_digits_up_to_65535() {
        assert_eq!(sip("sip:h:0").port(), Some(0));
        assert_eq!(sip("sip:h:65535").port(), Some(65535));
        assert_eq!(sip("sip:h:0005060").port(), Some(5060));
        assert_eq!(fails(b"sip:h:65536"), (6, "port larger than 65535"));
        assert_eq!(
            fails(b"sip:h:99999999999999999999"),
            (6, "port larger than 65535")
        );
        assert_eq!(fails(b"sip:h:"), (6, "port is not a number"));
        assert_eq!(fails(b"sip:h:;lr"), (6, "port is not a number"));
        assert_eq!(fails(b"sip:h:50x"), (8, "illegal character in URI"));
    }

    #[test]
    fn host_parse_and_host_port_parse() {
        assert_eq!(
            Host::parse(b"Example.COM").unwrap(),
            Host::Name(b"Example.COM")
        );
        assert!(Host::parse(b"example.com:5060").is_err());
        assert!(Host::parse(b"").is_err());
        assert!(Host::parse(b"2001:db8::1").is_err());
        assert_eq!(
            parse_host_port(b"example.com:5060").unwrap(),
            (Host::Name(b"example.com"), Some(5060))
        );
        assert_eq!(
            parse_host_port(b"192.0.2.1").unwrap(),
            (
                Host::Ipv4 {
                    text: b"192.0.2.1",
                    addr: Ipv4Addr::new(192, 0, 2, 1)
                },
                None
            )
        );
        let (h, p) = parse_host_port(b"[2001:db8::9:1]:5070").unwrap();
        assert_eq!(h.as_bytes(), b"[2001:db8::9:1]");
        assert_eq!(p, Some(5070));
        assert_eq!(
            parse_host_port(b"host : 5060").unwrap(),
            (Host::Name(b"host"), Some(5060))
        );
        assert_eq!(parse_host_port(b"h:0").unwrap().1, Some(0));
        assert!(parse_host_port(b"h:65536").is_err());
        assert!(parse_host_port(b"h:").is_err());
        assert!(parse_host_port(b"h:1 ").is_err());
        assert!(parse_host_port(b"2001:db8::1").is_err());
        assert_eq!(
            parse_host_port(b"h;x").unwrap_err().kind(),
            ParseErrorKind::BadUri("illegal character after host")
        );
    }

    #[test]
    fn parse_ip_accepts_ipv6_with_or_without_brackets() {
        let v6: IpAddr = "2001:db8::9:255".parse().unwrap();
        assert_eq!(parse_ip(b"2001:db8::9:255"), Some(v6));
        assert_eq!(parse_ip(b"[2001:db8::9:255]"), Some(v6));
        assert_eq!(parse_ip(b"192.0.2.1"), Some("192.0.2.1".parse().unwrap()));
        assert_eq!(parse_ip(b"[192.0.2.1]"), None);
        assert_eq!(parse_ip(b"example.com"), None);
    }

    #[test]
    fn host_equality_ignores_case_and_compares_addresses() {
        let h = |s: &'static [u8]| Host::parse(s).unwrap();
        assert!(h(b"AtLanTa.CoM").eq_ignore_case(&h(b"atlanta.com")));
        assert!(h(b"[2001:DB8::10]").eq_ignore_case(&h(b"[2001:db8:0:0::10]")));
        assert!(h(b"010.0.0.1").eq_ignore_case(&h(b"10.0.0.1")));
        assert!(!h(b"example.com").eq_ignore_case(&h(b"example.com.")));
        assert!(!h(b"[::ffff:192.0.2.4]").eq_ignore_case(&h(b"192.0.2.4")));
    }

    // --- userinfo, params, headers: syntax errors ----------------------------------------------

    #[test]
    fn bad_escapes_are_rejected_where_escapes_are_allowed() {
        let e = "'%' not followed by two hex digits";
        assert_eq!(fails(b"sip:a%2@h"), (5, e));
        assert_eq!(fails(b"sip:a%zz@h"), (5, e));
        assert_eq!(fails(b"sip:a:p%@h"), (7, e));
        assert_eq!(fails(b"sip:h;a=%g1"), (8, e));
        assert_eq!(fails(b"sip:h;%"), (6, e));
        assert_eq!(fails(b"sip:h?a=%4"), (8, e));
        assert_eq!(fails(b"sip:h?%41=1&b%=2"), (13, e));
    }

    #[test]
    fn userinfo_syntax_errors() {
        assert_eq!(fails(b"sip:@h"), (4, "empty user"));
        assert_eq!(fails(b"sip::pw@h"), (4, "empty user"));
        assert_eq!(fails(b"sip:a\"b@h"), (5, "illegal character in user"));
        assert_eq!(fails(b"sip:a:p:q@h"), (7, "illegal character in password"));
        assert_eq!(fails(b"sip:a:p;q@h"), (7, "illegal character in password"));
        assert_eq!(fails(b"sip:a@b@c"), (7, "second '@' in URI"));
        assert_eq!(fails(b"sip:a\0b@h"), (5, "illegal character in user"));
        // An empty password is allowed (password = *( ... )).
        let u = sip("sip:a:@h");
        assert_eq!(u.password(), Some(&b""[..]));
        // '#' is tolerated in a telephone-subscriber user part.
        assert_eq!(sip("sip:*97#@h").user(), Some(&b"*97#"[..]));
    }

    #[test]
    fn param_and_header_syntax_errors() {
        assert_eq!(fails(b"sip:h;"), (6, "empty parameter name"));
        assert_eq!(fails(b"sip:h;;lr"), (6, "empty parameter name"));
        assert_eq!(fails(b"sip:h;=x"), (6, "empty parameter name"));
        assert_eq!(fails(b"sip:h;a=b=c"), (9, "illegal character in URI"));
        assert_eq!(fails(b"sip:h;a\"b"), (7, "illegal character in URI"));
        assert_eq!(fails(b"sip:h?"), (6, "empty header name"));
        assert_eq!(fails(b"sip:h?a"), (7, "URI header without '='"));
        assert_eq!(fails(b"sip:h?a=1&"), (10, "empty header name"));
        assert_eq!(fails(b"sip:h?a=1&&b=2"), (10, "empty header name"));
        assert_eq!(fails(b"sip:h?a=1;b=2"), (9, "illegal character in URI"));
        // '?' is allowed in a header value: the second '=' is the fault.
        assert_eq!(fails(b"sip:h?a=1?b=2"), (11, "illegal character in URI"));
        // hvalue may be empty and may hold '?' and ':'.
        assert_eq!(sip("sip:h?a=&b=x?y:z").headers(), Some(&b"a=&b=x?y:z"[..]));
        // paramchar allows [ ] / : & + $
        assert_eq!(
            sip("sip:h;a=[x]/:&+$").param(b"a"),
            Some(Some(&b"[x]/:&+$"[..]))
        );
    }

    #[test]
    fn scheme_errors() {
        assert_eq!(fails(b""), (0, "empty URI"));
        assert_eq!(fails(b":x"), (0, "URI does not start with a scheme"));
        assert_eq!(fails(b"1sip:x"), (0, "URI does not start with a scheme"));
        assert_eq!(
            fails(b"sip"),
            (3, "illegal character in scheme or no ':' after it")
        );
        assert_eq!(
            fails(b"user@example.com"),
            (4, "illegal character in scheme or no ':' after it")
        );
        assert_eq!(fails(b"si p:x"), (2, "white space inside a URI"));
        assert_eq!(fails(b"foo:"), (4, "empty URI after the scheme"));
        assert_eq!(fails(b"foo:a b"), (5, "white space inside a URI"));
        assert_eq!(fails(b"foo:a\"b"), (5, "illegal character in URI"));
        assert!(SipUri::parse(b"tel:+1").is_err());
        assert!(TelUri::parse(b"sip:h").is_err());
        assert!(OtherUri::parse(b"sip:h").is_ok());
    }

    // --- unescaping --------------------------------------------------------------------------

    #[test]
    fn unescaping_is_never_recursive() {
        assert_eq!(&*unescape(b"v%61lue%25%34%31"), b"value%41");
        assert!(matches!(unescape(b"plain"), Cow::Borrowed(b"plain")));
        let d: Vec<_> = Unescaped::new(b"a%3b%41%").collect();
        assert_eq!(
            d,
            vec![(b'a', false), (b';', true), (b'A', false), (b'%', false)]
        );
    }

    // --- RFC 3261 §19.1.4 equivalence ----------------------------------------------------------

    #[test]
    fn rfc3261_equivalent_examples() {
        assert!(equiv(
            "sip:%61lice@atlanta.com;transport=TCP",
            "sip:alice@AtLanTa.CoM;Transport=tcp"
        ));
        assert!(equiv(
            "sip:carol@chicago.com",
            "sip:carol@chicago.com;newparam=5"
        ));
        assert!(equiv(
            "sip:carol@chicago.com",
            "sip:carol@chicago.com;security=on"
        ));
        assert!(equiv(
            "sip:carol@chicago.com;newparam=5",
            "sip:carol@chicago.com;security=on"
        ));
        assert!(equiv(
            "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
            "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"
        ));
        assert!(equiv(
            "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
            "sip:alice@atlanta.com?priority=urgent&subject=project%20x"
        ));
    }

    #[test]
    fn rfc3261_not_equivalent_examples() {
        assert!(!equiv(
            "SIP:ALICE@AtLanTa.CoM;Transport=udp",
            "sip:alice@AtLanTa.CoM;Transport=UDP"
        ));
        assert!(!equiv("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"));
        assert!(!equiv(
            "sip:bob@biloxi.com",
            "sip:bob@biloxi.com;transport=udp"
        ));
        assert!(!equiv(
            "sip:bob@biloxi.com",
            "sip:bob@biloxi.com:6000;transport=tcp"
        ));
        assert!(!equiv(
            "sip:carol@chicago.com",
            "sip:carol@chicago.com?Subject=next%20meeting"
        ));
        assert!(!equiv(
            "sip:bob@phone21.boxesbybob.com",
            "sip:bob@192.0.2.4"
        ));
        assert!(!equiv(
            "sip:carol@chicago.com;security=on",
            "sip:carol@chicago.com;security=off"
        ));
    }

    #[test]
    fn equivalence_is_reflexive_on_every_test_uri() {
        for s in [
            "sip:%61lice@atlanta.com;transport=TCP",
            "sips:a:b@[2001:db8:::192.0.2.1]:5061;lr;x=%25?h=%3C&g=",
            "sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31",
            "tel:+1-201-555-0123;ext=12",
            "urn:service:sos",
        ] {
            assert!(equiv(s, s), "{s}");
        }
    }

    #[test]
    fn sip_and_sips_never_equivalent() {
        assert!(!equiv("sip:a@h", "sips:a@h"));
        assert!(equiv("SIPS:a@h", "sips:a@h"));
    }

    #[test]
    fn escaped_reserved_characters_differ_from_plain_ones() {
        assert!(equiv("sip:%61@h", "sip:a@h"));
        assert!(equiv("sip:a%3bb@h", "sip:a%3Bb@h"));
        assert!(!equiv("sip:a%3Bb@h", "sip:a;b@h"));
        assert!(!equiv("sip:a%2Cb@h", "sip:a,b@h"));
        assert!(equiv("sip:a%7Eb@h", "sip:a~b@h"));
        assert!(!equiv("sip:h;x=a%3Ab", "sip:h;x=a:b"));
        assert!(equiv("sip:h;x=a%5Bb", "sip:h;x=a[b"));
        assert!(!equiv("sip:h?x=a%3Fb", "sip:h?x=a?b"));
    }

    #[test]
    fn userinfo_compares_case_sensitively_and_must_match_in_presence() {
        assert!(!equiv("sip:Alice@h", "sip:alice@h"));
        assert!(!equiv("sip:%41lice@h", "sip:alice@h"));
        assert!(!equiv("sip:alice@h", "sip:h"));
        assert!(!equiv("sip:a:@h", "sip:a@h"));
        assert!(!equiv("sip:a:pw@h", "sip:a:PW@h"));
        assert!(equiv("sip:a:p%77@h", "sip:a:pw@h"));
    }

    #[test]
    fn strict_params_must_be_in_both_uris() {
        for p in [
            "user=phone",
            "ttl=1",
            "method=INVITE",
            "maddr=1.2.3.4",
            "transport=udp",
        ] {
            assert!(!equiv("sip:a@h", &format!("sip:a@h;{p}")), "{p}");
            assert!(equiv(
                &format!("sip:a@h;{p}"),
                &format!("sip:a@h;{}", p.to_uppercase())
            ));
        }
        assert!(equiv("sip:a@h;%75ser=phone", "sip:a@h;user=phone"));
        assert!(!equiv("sip:a@h;maddr=1.2.3.4", "sip:a@h;maddr=1.2.3.5"));
        assert!(!equiv("sip:a@h;transport", "sip:a@h;transport=udp"));
        // lr is an ordinary parameter: ignored when in one URI only.
        assert!(equiv("sip:a@h;lr", "sip:a@h"));
        assert!(!equiv("sip:a@h;lr", "sip:a@h;lr=on"));
    }

    #[test]
    fn repeated_params_keep_equivalence_symmetric() {
        assert!(!equiv("sip:a@h;x=1;x=2", "sip:a@h;x=1"));
        assert!(equiv("sip:a@h;x=1;x=2", "sip:a@h;X=2;x=1"));
        assert!(equiv("tel:+1;x=1;x=2", "tel:+1;X=2;x=1"));
        assert!(!equiv("tel:+1;x=1;x=2", "tel:+1;x=1"));
    }

    #[test]
    fn headers_must_all_match() {
        assert!(!equiv("sip:h?a=1", "sip:h?a=2"));
        assert!(!equiv("sip:h?a=1", "sip:h?a=1&b=2"));
        assert!(equiv("sip:h?A=1&b=%32", "sip:h?b=2&a=1"));
        assert!(!equiv("sip:h?a=x", "sip:h?a=X"));
    }

    #[test]
    fn ports_and_hosts_in_equivalence() {
        assert!(equiv(
            "sip:a@[2001:db8::10]:5070",
            "sip:a@[2001:DB8:0::10]:5070"
        ));
        assert!(!equiv("sip:a@[2001:db8::10]", "sip:a@[2001:db8::10]:5060"));
        assert!(!equiv("sip:a@h:5060", "sip:a@h:5061"));
        assert!(equiv("sip:a@h:5060", "sip:a@H:05060"));
    }

    #[test]
    fn schemes_must_match_for_equivalence() {
        assert!(!equiv("sip:+1234@h", "tel:+1234"));
        assert!(equiv("HTTP://www.example.com", "http://www.example.com"));
        assert!(!equiv("http://www.example.com", "http://WWW.example.com"));
        assert!(!equiv("im:a@b", "pres:a@b"));
    }

    // --- tel -----------------------------------------------------------------------------------

    #[test]
    fn tel_global_and_local_numbers() {
        let t = uri("tel:+1-201-555-0123");
        let t = t.as_tel().unwrap();
        assert!(t.is_global());
        assert_eq!(t.number(), b"+1-201-555-0123");
        assert_eq!(t.params().count(), 0);
        let l = TelUri::parse(b"tel:7042;phone-context=example.com").unwrap();
        assert!(!l.is_global());
        assert_eq!(l.number(), b"7042");
        assert_eq!(l.phone_context(), Some(&b"example.com"[..]));
        let x = TelUri::parse(b"tel:+1-(201)-555.0123;ext=1234;isub=12%41;foo;Bar=x").unwrap();
        assert_eq!(x.ext(), Some(&b"1234"[..]));
        assert_eq!(x.isub(), Some(&b"12%41"[..]));
        assert_eq!(x.param(b"foo"), Some(None));
        assert_eq!(x.param(b"bar"), Some(Some(&b"x"[..])));
        assert_eq!(x.scheme(), b"tel");
        let star = TelUri::parse(b"tel:*69#;phone-context=+1-914").unwrap();
        assert_eq!(star.number(), b"*69#");
    }

    #[test]
    fn tel_syntax_errors() {
        assert_eq!(fails(b"tel:"), (4, "tel URI number without a digit"));
        assert_eq!(fails(b"tel:+"), (4, "tel URI number without a digit"));
        assert_eq!(fails(b"tel:+--"), (4, "tel URI number without a digit"));
        assert_eq!(fails(b"tel:;x=1"), (4, "tel URI number without a digit"));
        assert_eq!(fails(b"tel:+12a"), (7, "illegal character in tel URI"));
        assert_eq!(fails(b"tel:+1 2"), (6, "white space inside a URI"));
        assert_eq!(fails(b"tel:+12;"), (8, "empty parameter name"));
        assert_eq!(fails(b"tel:+12;a_b=1"), (9, "illegal character in tel URI"));
        assert_eq!(
            fails(b"tel:+12;a=%4"),
            (10, "'%' not followed by two hex digits")
        );
    }

    #[test]
    fn tel_equivalence_rfc3966() {
        assert!(equiv("tel:+1-201-555-0123", "tel:+12015550123"));
        assert!(equiv("tel:+1-201-555-0123", "TEL:+1(201)555.0123"));
        assert!(!equiv(
            "tel:+12015550123",
            "tel:12015550123;phone-context=example.com"
        ));
        assert!(equiv(
            "tel:7042;phone-context=example.com",
            "tel:7042;PHONE-CONTEXT=Example.COM"
        ));
        assert!(!equiv(
            "tel:7042;phone-context=example.com",
            "tel:7042;phone-context=example.org"
        ));
        assert!(equiv(
            "tel:863-1234;phone-context=+1-914-555",
            "tel:8631234;phone-context=+1914555"
        ));
        assert!(equiv("tel:+1234;ext=1-2;foo=a", "tel:+1234;FOO=A;ext=12"));
        assert!(!equiv("tel:+1234;foo=a", "tel:+1234"));
        assert!(!equiv("tel:+1234;foo", "tel:+1234;foo=a"));
        assert!(equiv(
            "tel:12ab;phone-context=x.com",
            "tel:12AB;phone-context=x.com"
        ));
    }
}
