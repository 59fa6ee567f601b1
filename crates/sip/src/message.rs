//! A SIP message parsed in place (RFC 3261 §7): start line, header index, body.
//!
//! [`Message::parse`] reads the start line and indexes every header value as byte spans into
//! the caller's buffer, in order, splitting comma-separated values of list headers
//! (RFC 3261 §7.3.1) without splitting inside quoted strings or `<...>`. Content-Length is
//! read at once because framing needs it. Everything else is parsed when first asked for; the
//! typed views a proxy needs on every message (top Via, From, To, Call-ID, CSeq, the
//! Request-URI) are cached in the message.
//!
//! [`Message::validate`] parses every header this crate knows and checks the rules of
//! RFC 3261 §8.1.1 / §8.2 a server applies before acting on a request (mandatory headers,
//! single-instance headers, CSeq method), reporting the first fault.

use std::cell::OnceCell;
use std::ops::Range;

use crate::auth::Credentials;
use crate::error::{ParseError, ParseErrorKind, Result};
use crate::find::{find1, find2, find2_near, find3};
use crate::header::{HeaderName, HeaderValue};
use crate::method::Method;
use crate::name_addr::{Contact, NameAddr};
use crate::scan::{is_lws, is_token, is_token_char};
use crate::simd::Chunk;
use crate::uri::Uri;
use crate::values::{self, CSeq, ContentType, Event};
use crate::via::Via;

/// Header values indexed without touching the heap.
pub const INLINE_HEADERS: usize = 32;

/// The most header values a message may have (a bound on work per message).
pub const MAX_HEADERS: usize = 1024;

/// A byte range `[start, end)` into the message buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Span {
    /// First octet.
    pub start: u32,
    /// One past the last octet.
    pub end: u32,
}

impl Span {
    /// A span; the parser guarantees offsets fit in `u32` (it refuses larger buffers).
    #[inline]
    pub fn new(start: usize, end: usize) -> Span {
        // Plain casts: `Message::parse` refuses buffers of 2^32 octets or more, so every
        // offset into one fits (this is on the per-header hot path).
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    /// As a `usize` range.
    #[inline]
    pub fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }

    /// Length in octets.
    #[inline]
    pub fn len(self) -> usize {
        self.end.saturating_sub(self.start) as usize
    }

    /// True when empty.
    #[inline]
    pub fn is_empty(self) -> bool {
        self.end <= self.start
    }
}

/// The first line of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartLine<'a> {
    /// `Method SP Request-URI SP SIP-Version`.
    Request {
        /// Method.
        method: Method<'a>,
        /// Request-URI as written (parsed on demand by [`Message::request_uri`]).
        uri: &'a [u8],
    },
    /// `SIP-Version SP Status-Code SP Reason-Phrase`.
    Response {
        /// Status code, 100..=699.
        code: u16,
        /// Reason phrase, possibly empty, possibly UTF-8.
        reason: &'a [u8],
    },
}

/// A SIP message borrowed from its buffer: what the parse found, and the typed views read
/// from it so far.
#[derive(Debug)]
pub struct Message<'a> {
    p: Parsed<'a>,
    cache: Cache<'a>,
}

/// The header index: up to [`INLINE_HEADERS`] values in place, every value on the heap
/// beyond. A plain array and a count rather than a `SmallVec`: in the parse loop a push is
/// a store and an increment, where `SmallVec::push` stays a call.
#[derive(Debug)]
struct Index {
    inline: [HeaderValue; INLINE_HEADERS],
    /// Values in `inline` (stays at [`INLINE_HEADERS`] once spilled).
    len: usize,
    /// Empty, or every value once there are more than [`INLINE_HEADERS`].
    heap: Vec<HeaderValue>,
}

impl Index {
    #[inline(always)]
    fn new() -> Index {
        Index {
            inline: [HeaderValue::ZEROED; INLINE_HEADERS],
            len: 0,
            heap: Vec::new(),
        }
    }

    #[inline(always)]
    fn push(&mut self, value: HeaderValue) {
        match self.inline.get_mut(self.len) {
            Some(slot) => {
                *slot = value;
                self.len += 1;
            }
            None => self.push_spilled(value),
        }
    }

    /// [`Index::push`] of a line's only value, written field by field into its slot.
    #[inline(always)]
    fn push_one(&mut self, name: HeaderName, name_len: u16, value: Span, line: Span) {
        self.push_piece(name, name_len, value, line, 0);
    }

    /// [`Index::push`] of value `index_in_line` of a list line, written field by field.
    #[inline(always)]
    fn push_piece(
        &mut self,
        name: HeaderName,
        name_len: u16,
        value: Span,
        line: Span,
        index_in_line: u16,
    ) {
        match self.inline.get_mut(self.len) {
            Some(slot) => {
                slot.name = name;
                slot.name_len = name_len;
                slot.value = value;
                slot.line = line;
                slot.index_in_line = index_in_line;
                slot.values_in_line = 1;
                self.len += 1;
            }
            None => self.push_spilled(HeaderValue {
                name,
                name_len,
                value,
                line,
                index_in_line,
                values_in_line: 1,
            }),
        }
    }

    /// Sets `values_in_line` of the values from `first` on.
    #[inline(always)]
    fn set_values_in_line(&mut self, first: usize, count: u16) {
        for h in self.as_mut_slice().iter_mut().skip(first) {
            h.values_in_line = count;
        }
    }

    #[cold]
    #[inline(never)]
    fn push_spilled(&mut self, value: HeaderValue) {
        if self.heap.is_empty() {
            self.heap.reserve(2 * INLINE_HEADERS);
            self.heap.extend_from_slice(&self.inline);
        }
        self.heap.push(value);
    }

    #[inline(always)]
    fn as_slice(&self) -> &[HeaderValue] {
        if self.heap.is_empty() {
            self.inline.get(..self.len).unwrap_or_default()
        } else {
            &self.heap
        }
    }

    #[inline(always)]
    fn as_mut_slice(&mut self) -> &mut [HeaderValue] {
        if self.heap.is_empty() {
            self.inline.get_mut(..self.len).unwrap_or_default()
        } else {
            &mut self.heap
        }
    }

    /// Number of values.
    #[inline(always)]
    fn len(&self) -> usize {
        if self.heap.is_empty() {
            self.len
        } else {
            self.heap.len()
        }
    }

    /// Keeps the first `len` values.
    fn truncate(&mut self, len: usize) {
        if self.heap.is_empty() {
            self.len = self.len.min(len);
        } else {
            self.heap.truncate(len);
            if self.heap.is_empty() {
                self.len = 0;
            }
        }
    }
}

/// Typed views every proxy reads on every message: kept inline, so reading them allocates
/// nothing.
#[derive(Debug, Default)]
struct Cache<'a> {
    uri: OnceCell<Result<Uri<'a>>>,
    top_via: OnceCell<Result<Via<'a>>>,
    from: OnceCell<Result<NameAddr<'a>>>,
    to: OnceCell<Result<NameAddr<'a>>>,
    call_id: OnceCell<Result<&'a [u8]>>,
    cseq: OnceCell<Result<CSeq<'a>>>,
    max_forwards: OnceCell<Option<Result<u8>>>,
    /// The rest, boxed on first use so that a message that never needs them stays small
    /// (moving and dropping it is part of the per-message cost).
    cold: OnceCell<Box<ColdCache<'a>>>,
}

/// Typed views read by some routes only.
#[derive(Debug, Default)]
struct ColdCache<'a> {
    expires: OnceCell<Option<Result<u32>>>,
    min_expires: OnceCell<Option<Result<u32>>>,
    content_type: OnceCell<Option<Result<ContentType<'a>>>>,
    event: OnceCell<Option<Result<Event<'a>>>>,
    vias: OnceCell<Result<Vec<Via<'a>>>>,
    contacts: OnceCell<Result<Vec<Contact<'a>>>>,
    routes: OnceCell<Result<Vec<NameAddr<'a>>>>,
    record_routes: OnceCell<Result<Vec<NameAddr<'a>>>>,
    paths: OnceCell<Result<Vec<NameAddr<'a>>>>,
    /// Authorization, Proxy-Authorization, WWW-Authenticate, Proxy-Authenticate.
    auth: [OnceCell<Result<Vec<Credentials<'a>>>>; 4],
}

/// `(start, end)` of `raw[start..end]` without its leading and trailing LWS.
#[inline(always)]
fn trimmed(raw: &[u8], mut start: usize, mut end: usize) -> (usize, usize) {
    // Most values follow one SP: step over it before the loop.
    if start < end && raw.get(start) == Some(&b' ') {
        start += 1;
    }
    while start < end && raw.get(start).is_some_and(|&b| is_lws(b)) {
        start += 1;
    }
    while end > start && raw.get(end - 1).is_some_and(|&b| is_lws(b)) {
        end -= 1;
    }
    (start, end)
}

/// Indexes the values of a list header line, `buf[start..end]`, split at commas outside
/// quoted strings and `<...>` (RFC 3261 §7.3.1) in one pass. A line with an unclosed quote
/// stays one value, whose typed view (and `validate()`) reports the fault.
#[inline(never)]
fn push_pieces(
    values: &mut Index,
    name: HeaderName,
    name_len: u16,
    line: Span,
    buf: &[u8],
    start: usize,
    end: usize,
) {
    let first = values.len();
    // A token list (Allow, Supported...: no quoted string and no '<'): every comma separates
    // two values. The line is read sixteen octets at a time, commas and the octets that make
    // it something else flagged at once; values are indexed as their commas are found.
    let mut piece_start = start;
    let mut count: u16 = 0;
    let mut p = start;
    let mut general = false;
    while p < end {
        let (commas, special) = match buf.get(p..).and_then(<[u8]>::first_chunk::<16>) {
            Some(c) => {
                let v = Chunk::load(c);
                (v.eq(b','), v.eq(b'"') | v.eq(b'<'))
            }
            None => buf.get(p..end).unwrap_or_default().iter().enumerate().fold(
                (0, 0),
                |(c, s), (i, &b)| {
                    (
                        c | u32::from(b == b',') << i,
                        s | u32::from(b == b'"' || b == b'<') << i,
                    )
                },
            ),
        };
        // Only the octets before `end` count.
        let keep = if end - p >= 16 {
            u32::MAX
        } else {
            (1 << (end - p)) - 1
        };
        if special & keep != 0 {
            general = true;
            break;
        }
        let mut commas = commas & keep;
        while commas != 0 {
            let j = p + commas.trailing_zeros() as usize;
            let (s, e) = trimmed_value(buf, piece_start, j);
            values.push_piece(name, name_len, Span::new(s, e), line, count);
            count = count.saturating_add(1);
            piece_start = j + 1;
            commas &= commas - 1;
        }
        p += 16;
    }
    if !general {
        let (s, e) = trimmed_value(buf, piece_start, end);
        values.push_piece(name, name_len, Span::new(s, e), line, count);
        if count > 0 {
            values.set_values_in_line(first, count.saturating_add(1));
        }
        return;
    }
    values.truncate(first);
    let at = start;
    let raw = buf.get(start..end).unwrap_or_default();
    let mut count: u16 = 0;
    let mut push = |piece_start: usize, piece_end: usize| {
        let (s, e) = trimmed_value(buf, at + piece_start, at + piece_end);
        values.push_piece(name, name_len, Span::new(s, e), line, count);
        count = count.saturating_add(1);
    };
    let mut piece_start = 0;
    let mut i = 0;
    while let Some(j) = find3(raw, i, b',', b'"', b'<') {
        match raw.get(j) {
            Some(b',') => {
                push(piece_start, j);
                piece_start = j + 1;
                i = j + 1;
            }
            Some(b'"') => match crate::scan::quoted_string_end(raw, j) {
                Ok(end) => i = end,
                Err(_) => {
                    // An unclosed quote: the line is one value.
                    count = 0;
                    values.truncate(first);
                    piece_start = 0;
                    break;
                }
            },
            // '<': commas up to the matching '>' belong to the URI; an unclosed '<' hides
            // every comma after it.
            _ => match find1(raw, j, b'>') {
                // The usual `<uri>, <uri>`: the comma right after the '>' needs no search.
                Some(q) if raw.get(q + 1) == Some(&b',') => {
                    push(piece_start, q + 1);
                    piece_start = q + 2;
                    i = q + 2;
                }
                Some(q) => i = q + 1,
                None => break,
            },
        }
    }
    let (s, e) = trimmed_value(buf, at + piece_start, end);
    values.push_piece(name, name_len, Span::new(s, e), line, count);
    if count > 0 {
        values.set_values_in_line(first, count.saturating_add(1));
    }
}

/// One header line at `pos` when it is the usual kind (see [`Parsed::index_headers`]):
/// `Ok(Some(next line))`, or `Ok(None)` without any change to the message when the line
/// is not (the empty line, a long name, a line without colon, folding, the buffer's end),
/// for [`Parsed::index_line`] to index or refuse.
#[inline(always)]
fn fast_line(
    buf: &[u8],
    pos: usize,
    lenient: bool,
    headers: &mut Index,
    content_length: &mut Option<u32>,
) -> Result<Option<usize>> {
    let Some(c) = buf.get(pos..).and_then(<[u8]>::first_chunk::<16>) else {
        return Ok(None);
    };
    // CR, LF (the empty line), SP and HT (continuation without a header) and controls.
    if c[0] <= b' ' {
        return Ok(None);
    }
    let v = Chunk::load(c);
    let colons = v.eq(b':');
    let lfs = v.eq(b'\n');
    let k = colons.trailing_zeros();
    // No colon in the chunk, or a line end before it.
    if k >= 16 || lfs & ((1 << k) - 1) != 0 {
        return Ok(None);
    }
    let k = k as usize;
    // The name is what precedes the colon, trailing SP, HT and CR dropped.
    let mut name_len = k;
    while name_len > 0 && matches!(c.get(name_len - 1), Some(b' ' | b'\t' | b'\r')) {
        name_len -= 1;
    }
    let name_bytes = c.get(..name_len).unwrap_or_default();
    // A name that is not a token matches no known name (see `HeaderName::from_bytes`):
    // it is indexed as an extension header, which `validate()` refuses.
    let name = HeaderName::lookup(name_bytes);
    let value_start = pos + k + 1;
    // Line ends after the colon in this chunk (bit 0: the octet after the colon).
    let rest_lfs = lfs >> (k + 1);
    let (lf, may_split) = if name.is_list() {
        // A list line is split only when it has a comma.
        let commas = v.eq(b',') >> (k + 1);
        if rest_lfs != 0 {
            let at = rest_lfs.trailing_zeros();
            (value_start + at as usize, commas & ((1 << at) - 1) != 0)
        } else if commas != 0 {
            match find1(buf, pos + 16, b'\n') {
                Some(lf) => (lf, true),
                None => return Ok(None),
            }
        } else {
            match find2(buf, pos + 16, b',', b'\n') {
                Some(j) if buf.get(j) == Some(&b',') => match find1(buf, j + 1, b'\n') {
                    Some(lf) => (lf, true),
                    None => return Ok(None),
                },
                Some(lf) => (lf, false),
                None => return Ok(None),
            }
        }
    } else if rest_lfs != 0 {
        (value_start + rest_lfs.trailing_zeros() as usize, false)
    } else {
        match find1(buf, pos + 16, b'\n') {
            Some(lf) => (lf, false),
            None => return Ok(None),
        }
    };
    let next = lf + 1;
    // A folded line is left to the general path.
    if matches!(buf.get(next), Some(b' ' | b'\t')) {
        return Ok(None);
    }
    // (The octet before the LF is at least the colon: never out of the line.)
    let content_end = if buf.get(lf - 1) == Some(&b'\r') {
        lf - 1
    } else {
        lf
    };
    if name == HeaderName::ContentLength && !lenient {
        // The usual value, one SP and one to nine digits, read here; anything else (and a
        // second Content-Length) by the general reader, which reports the fault.
        match (
            content_length.is_none(),
            short_number(buf, value_start, content_end),
        ) {
            (true, Some(n)) => *content_length = Some(n),
            _ => read_content_length(
                buf,
                content_length,
                pos,
                name_bytes,
                value_start,
                content_end,
            )?,
        }
    }
    // (`name_len` < 16: it fits.)
    let name_len = name_len as u16;
    let line_span = Span::new(pos, next);
    if may_split {
        push_pieces(
            headers,
            name,
            name_len,
            line_span,
            buf,
            value_start,
            content_end,
        );
        if headers.heap.len() > MAX_HEADERS {
            return Err(ParseError::new(
                ParseErrorKind::TooManyHeaders { limit: MAX_HEADERS },
                pos,
            ));
        }
    } else {
        let (start, end) = trimmed_value(buf, value_start, content_end);
        headers.push_one(name, name_len, Span::new(start, end), line_span);
        if headers.heap.len() > MAX_HEADERS {
            return Err(ParseError::new(
                ParseErrorKind::TooManyHeaders { limit: MAX_HEADERS },
                pos,
            ));
        }
    }
    Ok(Some(next))
}

/// Content-Length read from its line (once: a second one is an error).
#[inline(never)]
fn read_content_length(
    buf: &[u8],
    content_length: &mut Option<u32>,
    line_start: usize,
    name_bytes: &[u8],
    value_start: usize,
    content_end: usize,
) -> Result<()> {
    if content_length.is_some() {
        return Err(
            ParseError::new(ParseErrorKind::MultipleContentLength, line_start)
                .in_header(name_bytes, 0),
        );
    }
    let raw_value = buf.get(value_start..content_end).unwrap_or_default();
    let v = values::parse_number(raw_value, u64::from(u32::MAX)).map_err(|_| {
        ParseError::new(ParseErrorKind::InvalidContentLength, value_start).in_header(name_bytes, 0)
    })?;
    *content_length = u32::try_from(v).ok();
    Ok(())
}

/// `buf[start..end]` as a number when it is one SP (or none) and one to nine digits.
#[inline(always)]
fn short_number(buf: &[u8], start: usize, end: usize) -> Option<u32> {
    let start = start + usize::from(buf.get(start) == Some(&b' '));
    let digits = buf.get(start..end)?;
    if digits.is_empty() || digits.len() > 9 {
        return None;
    }
    digits.iter().try_fold(0u32, |n, &b| {
        let d = b.wrapping_sub(b'0');
        (d < 10).then(|| n * 10 + u32::from(d))
    })
}

/// What [`Message::index_line`] found.
#[derive(Debug, Clone, Copy)]
enum Line {
    /// A header line: the next line starts here.
    Next(usize),
    /// The end of the header section: the body starts here.
    End(usize),
}

/// [`trimmed`] for a value that usually follows one SP and has no trailing LWS.
#[inline(always)]
fn trimmed_value(raw: &[u8], start: usize, end: usize) -> (usize, usize) {
    // (`raw[end]` is the line's CR or LF, never SP: the step stays within `..=end`.)
    let start = start + usize::from(raw.get(start) == Some(&b' '));
    match (raw.get(start), raw.get(end.wrapping_sub(1))) {
        (Some(&a), Some(&z)) if start < end && a > b' ' && z > b' ' => (start, end),
        _ => trimmed(raw, start, end),
    }
}

/// How much [`Message::parse_with`] tolerates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strictness {
    /// Everything a message to route must satisfy at the framing level.
    Forward,
    /// Enough to answer a refused message.
    Reply,
    /// An HTTP/1.x request on a SIP port (Kamailio's xhttp): `HTTP/1.0` or `HTTP/1.1` as
    /// the version, SIP framing otherwise.
    Http,
}

fn parse_seconds(v: &[u8]) -> Result<u32> {
    values::parse_number(v, u64::from(u32::MAX)).map(|n| u32::try_from(n).unwrap_or(u32::MAX))
}

fn start_error(what: &'static str, at: usize) -> ParseError {
    ParseError::new(ParseErrorKind::BadStartLine(what), at)
}

/// The end of the line holding `pos`: (content end, next line start). A line ends with CRLF,
/// or with a bare LF (tolerated as many stacks do); the CR counts only when it is at or after
/// `pos`.
#[inline(always)]
fn line_end(buf: &[u8], pos: usize) -> Option<(usize, usize)> {
    find1(buf, pos, b'\n').map(|lf| line_end_at(buf, pos, lf))
}

/// [`line_end`] for the LF at `lf`, the first one at or after `pos`.
#[inline(always)]
fn line_end_at(buf: &[u8], pos: usize, lf: usize) -> (usize, usize) {
    let content_end = if lf > pos && buf.get(lf - 1) == Some(&b'\r') {
        lf - 1
    } else {
        lf
    };
    (content_end, lf + 1)
}

/// Checks `SIP-Version` (case-insensitive `SIP/2.0`): 505 for another well-formed version.
fn check_version(v: &[u8], at: usize) -> Result<()> {
    if v.eq_ignore_ascii_case(b"SIP/2.0") {
        return Ok(());
    }
    let well_formed = v.len() > 4
        && v.get(..4).is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"))
        && v.get(4..).is_some_and(|rest| {
            let mut parts = rest.split(|&b| b == b'.');
            let major = parts.next().unwrap_or_default();
            let minor = parts.next().unwrap_or_default();
            parts.next().is_none()
                && !major.is_empty()
                && !minor.is_empty()
                && major.iter().chain(minor).all(u8::is_ascii_digit)
        });
    if well_formed {
        Err(ParseError::new(ParseErrorKind::UnsupportedVersion, at))
    } else if v.iter().any(|&b| b == b' ' || b == b'\t') {
        Err(start_error(
            "white space inside the Request-URI or after the SIP-Version",
            at,
        ))
    } else {
        Err(start_error("bad SIP-Version", at))
    }
}

impl<'a> Message<'a> {
    /// Parses a whole message: one UDP datagram, or one frame cut by the
    /// [`StreamFramer`](crate::StreamFramer).
    ///
    /// CRLFs before the start line are skipped (RFC 3261 §7.5). A datagram may end right
    /// after its last header line without the empty line. Without Content-Length the body is
    /// the rest of the buffer; with one, the body is that many octets and any octets after it
    /// are ignored (§18.3); a Content-Length larger than what is present is an error.
    #[inline]
    pub fn parse(buf: &'a [u8]) -> Result<Message<'a>> {
        Self::parse_with(buf, Strictness::Forward)
    }

    /// Parses a message that [`Message::parse`] refused, as far as a server needs to answer
    /// it: an unsupported SIP version, a bad, duplicated or too large Content-Length (the body
    /// is then the rest of the buffer) and header lines without a colon (skipped) are
    /// tolerated. Use the result only to build the reply the refusal implies (its Via, From,
    /// To, Call-ID and CSeq); never route or forward it.
    pub fn parse_for_reply(buf: &'a [u8]) -> Result<Message<'a>> {
        Self::parse_with(buf, Strictness::Reply)
    }

    /// Parses an HTTP/1.0 or HTTP/1.1 request that arrived on a SIP stream (Kamailio's xhttp
    /// handles those): the request line's version must be `HTTP/1.0` or `HTTP/1.1`; headers
    /// and Content-Length framing are as for SIP. Responses are refused.
    pub fn parse_http(buf: &'a [u8]) -> Result<Message<'a>> {
        Self::parse_with(buf, Strictness::Http)
    }

    /// Whether `buf` starts (after CRLFs) with an HTTP/1.x request line, so that it should be
    /// parsed with [`Message::parse_http`].
    pub fn looks_like_http(buf: &[u8]) -> bool {
        let start = buf
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .unwrap_or(buf.len());
        let rest = buf.get(start..).unwrap_or_default();
        let line_end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
        let line = rest.get(..line_end).unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        line.ends_with(b" HTTP/1.1") || line.ends_with(b" HTTP/1.0")
    }

    /// The message is parsed into a [`Parsed`] (everything but the typed-view cache) in the
    /// caller's frame and moved into the result with an empty cache: the cache (about half of
    /// the message) is then written in place rather than copied.
    #[inline(always)]
    fn parse_with(buf: &'a [u8], strictness: Strictness) -> Result<Message<'a>> {
        let mut p = Parsed {
            buf,
            start_line: StartLine::Response {
                code: 0,
                reason: &[],
            },
            message: Span::default(),
            start_line_span: Span::default(),
            uri_span: Span::default(),
            headers: Index::new(),
            headers_end: 0,
            has_empty_line: false,
            body: Span::default(),
            content_length: None,
        };
        match p.fill(strictness) {
            Ok(()) => Ok(Message {
                p,
                cache: Cache::default(),
            }),
            Err(e) => Err(e),
        }
    }
}

/// What a parse finds: a [`Message`] without its typed-view cache (parsed apart, so that the
/// result is moved into the message without copying the cache).
#[derive(Debug)]
struct Parsed<'a> {
    buf: &'a [u8],
    start_line: StartLine<'a>,
    /// From the first octet of the start line to the end of the buffer's message (body end).
    message: Span,
    /// The start line, CRLF excluded.
    start_line_span: Span,
    /// Request-URI (empty span for responses).
    uri_span: Span,
    headers: Index,
    /// Offset of the empty line ending the header section (where appended headers go).
    headers_end: usize,
    /// True when the header section was closed by an empty line (a datagram may end without).
    has_empty_line: bool,
    body: Span,
    content_length: Option<u32>,
}

impl<'a> Parsed<'a> {
    /// Parses `self.buf` into `self` (see [`Message::parse_with`]).
    #[inline(never)]
    fn fill(&mut self, strictness: Strictness) -> Result<()> {
        let buf = self.buf;
        let lenient = strictness == Strictness::Reply;
        if u32::try_from(buf.len()).is_err() {
            return Err(ParseError::new(
                ParseErrorKind::BodyTooLarge {
                    limit: u32::MAX as usize,
                },
                0,
            ));
        }
        let mut pos = 0;
        while let Some(&b) = buf.get(pos) {
            if b != b'\r' && b != b'\n' {
                break;
            }
            pos += 1;
        }
        if pos >= buf.len() {
            return Err(ParseError::new(ParseErrorKind::Empty, pos));
        }
        let msg_start = pos;
        let (sl_end, pos) = line_end(buf, msg_start)
            .ok_or(ParseError::new(ParseErrorKind::Truncated, buf.len()))?;
        let line = buf.get(msg_start..sl_end).unwrap_or_default();
        let (start_line, uri_span) = Message::parse_start_line(line, msg_start, strictness)?;
        self.start_line = start_line;
        self.start_line_span = Span::new(msg_start, sl_end);
        self.uri_span = uri_span;
        self.finish(pos, lenient, msg_start)
    }

    /// Indexes the header section from `pos` and frames the body.
    #[inline(always)]
    fn finish(&mut self, pos: usize, lenient: bool, msg_start: usize) -> Result<()> {
        let buf = self.buf;
        let pos = self.index_headers(pos, lenient)?;
        let present = buf.len().saturating_sub(pos);
        let body_len = match self.content_length {
            Some(cl) if !(lenient && cl as usize > present) => {
                let cl = cl as usize;
                if cl > present {
                    return Err(ParseError::new(
                        ParseErrorKind::ContentLengthExceedsBody {
                            declared: cl,
                            present,
                        },
                        pos,
                    ));
                }
                cl
            }
            _ => present,
        };
        self.body = Span::new(pos, pos + body_len);
        self.message = Span::new(msg_start, pos + body_len);
        Ok(())
    }

    /// Indexes the header lines from `pos` (the first octet after the start line) up to and
    /// including the empty line; sets `headers_end`, `has_empty_line` and `content_length`
    /// and returns where the body starts.
    ///
    /// The usual line (a name of fewer than sixteen octets, no folding, sixteen octets left in
    /// the buffer) is indexed by [`Message::fast_line`] from one 16-octet chunk's masks; any
    /// other line, and the empty line, by [`Message::index_line`].
    #[inline(always)]
    fn index_headers(&mut self, mut pos: usize, lenient: bool) -> Result<usize> {
        loop {
            if let Some(next) = fast_line(
                self.buf,
                pos,
                lenient,
                &mut self.headers,
                &mut self.content_length,
            )? {
                pos = next;
                continue;
            }
            match self.index_line(pos, lenient)? {
                Line::Next(next) => pos = next,
                Line::End(body) => return Ok(body),
            }
        }
    }

    /// Any header line at `pos`, or the empty line (see [`Message::index_headers`]).
    #[inline(never)]
    fn index_line(&mut self, mut pos: usize, lenient: bool) -> Result<Line> {
        let buf = self.buf;
        {
            match buf.get(pos) {
                None => {
                    // Datagram that ends after its last header line (RFC 4475 §3.1.2.15 and
                    // RFC 5118 §4.10 archive copies): the datagram end is the message end.
                    self.headers_end = pos;
                    return Ok(Line::End(pos));
                }
                Some(b'\r') if buf.get(pos + 1) == Some(&b'\n') => {
                    self.headers_end = pos;
                    self.has_empty_line = true;
                    return Ok(Line::End(pos + 2));
                }
                Some(b'\n') => {
                    self.headers_end = pos;
                    self.has_empty_line = true;
                    return Ok(Line::End(pos + 1));
                }
                Some(b' ' | b'\t') => {
                    return Err(ParseError::new(
                        ParseErrorKind::BadHeaderValue("continuation line without a header"),
                        pos,
                    ))
                }
                Some(_) => {}
            }
            let line_start = pos;
            // The name ends at the first colon of the line (white space before the colon is
            // not part of it); a line without one is not a header line.
            let colon = match find2_near(buf, line_start, b':', b'\n') {
                Some(c) if buf.get(c) == Some(&b':') => c,
                stop => {
                    if lenient {
                        pos = stop.map_or(buf.len(), |lf| lf + 1);
                        return Ok(Line::Next(pos));
                    }
                    return Err(ParseError::new(
                        ParseErrorKind::HeaderWithoutColon,
                        line_start,
                    ));
                }
            };
            let mut name_bytes = buf.get(line_start..colon).unwrap_or_default();
            while let [name @ .., b' ' | b'\t' | b'\r'] = name_bytes {
                name_bytes = name;
            }
            let name_end = line_start + name_bytes.len();
            // A name that is not a token matches no known name (see `HeaderName::from_bytes`):
            // it is indexed as an extension header, which `validate()` refuses.
            let name = HeaderName::lookup(name_bytes);
            let value_start = colon + 1;
            // The end of this header line, folded continuation lines included. The line end
            // of a list header is searched together with its first comma: a line without any
            // is one value and is not split.
            let mut may_split = false;
            let lf = if name.is_list() {
                match find2(buf, value_start, b',', b'\n') {
                    Some(c) if buf.get(c) == Some(&b',') => {
                        may_split = true;
                        // (A CR right after the comma still ends the line's content.)
                        find1(buf, c + 1, b'\n').map(|lf| (c + 1, lf))
                    }
                    // No comma: the search stopped at the line end.
                    other => other.map(|lf| (value_start, lf)),
                }
            } else {
                find1(buf, value_start, b'\n').map(|lf| (value_start, lf))
            };
            let Some((mut content_end, mut next)) = lf.map(|(from, lf)| line_end_at(buf, from, lf))
            else {
                return self
                    .unterminated_line(line_start, name_end, lenient)
                    .map(Line::End);
            };
            while matches!(buf.get(next), Some(b' ' | b'\t')) {
                // A folded list header is split whatever it holds.
                may_split = true;
                match line_end(buf, next) {
                    Some((ce, nx)) => {
                        content_end = ce;
                        next = nx;
                    }
                    None => return Err(ParseError::new(ParseErrorKind::Truncated, next)),
                }
            }
            // Header names longer than 65535 octets cannot be indexed: refuse them.
            let name_len = u16::try_from(name_bytes.len())
                .map_err(|_| ParseError::new(ParseErrorKind::BadHeaderName, line_start))?;
            let line_span = Span::new(line_start, next);

            if name == HeaderName::ContentLength && !lenient {
                read_content_length(
                    buf,
                    &mut self.content_length,
                    line_start,
                    name_bytes,
                    value_start,
                    content_end,
                )?;
            }

            if may_split {
                push_pieces(
                    &mut self.headers,
                    name,
                    name_len,
                    line_span,
                    buf,
                    value_start,
                    content_end,
                );
            } else {
                let (start, end) = trimmed(buf, value_start, content_end);
                self.headers.push(HeaderValue {
                    name,
                    name_len,
                    value: Span::new(start, end),
                    line: line_span,
                    index_in_line: 0,
                    values_in_line: 1,
                });
            }
            // The bound is checked per line, once the line's values are known: a line that
            // looked like a list and turned out to be one value (an unclosed quote) must not
            // be refused on its tentative split (found by fuzzing). Memory stays bounded by the
            // message size until then.
            // (Only a spilled index can be over the bound.)
            if self.headers.heap.len() > MAX_HEADERS {
                return Err(ParseError::new(
                    ParseErrorKind::TooManyHeaders { limit: MAX_HEADERS },
                    line_start,
                ));
            }
            Ok(Line::Next(next))
        }
    }

    /// A header line whose colon is not followed by any line end: the message is truncated
    /// when the line starts with `token LWS? ":"`; otherwise the line is not a header line
    /// (what was reported before the colon and the line end were searched together).
    #[cold]
    fn unterminated_line(
        &mut self,
        line_start: usize,
        name_end: usize,
        lenient: bool,
    ) -> Result<usize> {
        let buf = self.buf;
        let name = buf.get(line_start..name_end).unwrap_or_default();
        let token_then_blanks = is_token(name)
            && buf
                .get(name_end..)
                .and_then(|rest| rest.iter().find(|&&b| b != b' ' && b != b'\t'))
                == Some(&b':');
        if token_then_blanks {
            return Err(ParseError::new(ParseErrorKind::Truncated, line_start));
        }
        if lenient {
            // The line is skipped, and with it the rest of the buffer.
            self.headers_end = buf.len();
            return Ok(buf.len());
        }
        Err(ParseError::new(
            ParseErrorKind::HeaderWithoutColon,
            line_start,
        ))
    }
}

impl<'a> Message<'a> {
    fn parse_start_line(
        line: &'a [u8],
        base: usize,
        strictness: Strictness,
    ) -> Result<(StartLine<'a>, Span)> {
        let lenient = strictness == Strictness::Reply;
        let http = strictness == Strictness::Http;
        let check_version = |v: &[u8], at: usize| {
            if !http && v == b"SIP/2.0" {
                return Ok(());
            }
            if http {
                return if v == b"HTTP/1.1" || v == b"HTTP/1.0" {
                    Ok(())
                } else {
                    Err(start_error("expected HTTP/1.0 or HTTP/1.1", at))
                };
            }
            match check_version(v, at) {
                Err(e) if lenient && e.kind() == ParseErrorKind::UnsupportedVersion => Ok(()),
                other => other,
            }
        };
        // `SIP/` in any letter case: OR-ing 0x20 into the three letters folds them (and only
        // 's' and 'S' give 's'...); the '/' is compared as it is.
        let is_response = line.len() > 4
            && line.first_chunk::<4>().is_some_and(|p| {
                u32::from_le_bytes(*p) | 0x0020_2020 == u32::from_le_bytes(*b"sip/")
            })
            && line.get(4).is_some_and(u8::is_ascii_digit);
        if is_response && http {
            return Err(start_error("an HTTP response on a SIP port", base));
        }
        if is_response {
            // (The first SP of a line starting with the usual version is the one after it.)
            let sp1 = if line.get(..8) == Some(b"SIP/2.0 ") {
                7
            } else {
                memchr::memchr(b' ', line)
                    .ok_or_else(|| start_error("expected SP after the SIP-Version", base))?
            };
            check_version(line.get(..sp1).unwrap_or_default(), base)?;
            let rest = line.get(sp1 + 1..).unwrap_or_default();
            let (code_text, reason) = match rest.iter().position(|&b| b == b' ') {
                Some(p) => (
                    rest.get(..p).unwrap_or_default(),
                    rest.get(p + 1..).unwrap_or_default(),
                ),
                None => (rest, &b""[..]),
            };
            let code_at = base + sp1 + 1;
            if code_text.len() != 3 || !code_text.iter().all(u8::is_ascii_digit) {
                return Err(ParseError::new(ParseErrorKind::BadStatusCode, code_at));
            }
            let code = code_text
                .iter()
                .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
            if !(100..=699).contains(&code) {
                return Err(ParseError::new(ParseErrorKind::BadStatusCode, code_at));
            }
            if let Some(p) = reason.iter().position(|&b| b < 0x20 && b != b'\t') {
                return Err(start_error(
                    "control octet in the reason phrase",
                    code_at + 4 + p,
                ));
            }
            return Ok((StartLine::Response { code, reason }, Span::default()));
        }

        // The method is read as the run of token octets: followed by SP, it is well formed;
        // anything else is reported as before (first the missing SP, then the method).
        let token_end = line
            .iter()
            .position(|&b| !is_token_char(b))
            .unwrap_or(line.len());
        let sp1 = if token_end > 0 && line.get(token_end) == Some(&b' ') {
            token_end
        } else {
            let sp1 = memchr::memchr(b' ', line)
                .ok_or_else(|| start_error("expected SP after the method", base))?;
            let method = line.get(..sp1).unwrap_or_default();
            if !method.iter().all(|&b| is_token_char(b)) || method.is_empty() {
                return Err(ParseError::new(ParseErrorKind::BadMethod, base));
            }
            sp1
        };
        let method = line.get(..sp1).unwrap_or_default();
        let rest = line.get(sp1 + 1..).unwrap_or_default();
        let sp2 = find1(rest, 0, b' ')
            .ok_or_else(|| start_error("expected SP after the Request-URI", base + sp1 + 1))?;
        let uri = rest.get(..sp2).unwrap_or_default();
        if uri.is_empty() {
            return Err(start_error(
                "empty Request-URI (several SP?)",
                base + sp1 + 1,
            ));
        }
        let version_at = base + sp1 + 1 + sp2 + 1;
        check_version(rest.get(sp2 + 1..).unwrap_or_default(), version_at)?;
        let uri_start = base + sp1 + 1;
        Ok((
            StartLine::Request {
                method: Method::from_token(method),
                uri,
            },
            Span::new(uri_start, uri_start + uri.len()),
        ))
    }

    // ---- raw access -------------------------------------------------------------------

    /// The buffer the message was parsed from.
    pub fn buffer(&self) -> &'a [u8] {
        self.p.buf
    }

    /// The message octets: from the start line to the end of the body (leading CRLFs and
    /// octets beyond Content-Length excluded).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.slice(self.p.message)
    }

    /// The octets of a span of this message.
    #[inline]
    pub fn slice(&self, span: Span) -> &'a [u8] {
        self.p.buf.get(span.range()).unwrap_or_default()
    }

    /// The start line.
    pub fn start_line(&self) -> &StartLine<'a> {
        &self.p.start_line
    }

    /// Span of the start line (CRLF excluded).
    pub fn start_line_span(&self) -> Span {
        self.p.start_line_span
    }

    /// Span of the whole message (start line to body end).
    pub fn message_span(&self) -> Span {
        self.p.message
    }

    /// Span of the Request-URI (empty for a response).
    pub fn request_uri_span(&self) -> Span {
        self.p.uri_span
    }

    /// Offset of the empty line that ends the header section.
    pub fn headers_end(&self) -> usize {
        self.p.headers_end
    }

    /// False when the header section was not closed by an empty line (datagram end).
    pub fn has_empty_line(&self) -> bool {
        self.p.has_empty_line
    }

    /// True for a request.
    pub fn is_request(&self) -> bool {
        matches!(self.p.start_line, StartLine::Request { .. })
    }

    /// The method of a request, or `None` for a response (see [`Message::cseq`]).
    pub fn method(&self) -> Option<Method<'a>> {
        match self.p.start_line {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code of a response.
    pub fn status_code(&self) -> Option<u16> {
        match self.p.start_line {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// The reason phrase of a response.
    pub fn reason(&self) -> Option<&'a [u8]> {
        match self.p.start_line {
            StartLine::Response { reason, .. } => Some(reason),
            StartLine::Request { .. } => None,
        }
    }

    /// The body (exactly Content-Length octets when the header is present).
    pub fn body(&self) -> &'a [u8] {
        self.slice(self.p.body)
    }

    /// Span of the body.
    pub fn body_span(&self) -> Span {
        self.p.body
    }

    /// The Content-Length value, if the header is present.
    pub fn content_length(&self) -> Option<u32> {
        self.p.content_length
    }

    /// Every header value in message order.
    pub fn headers(&self) -> &[HeaderValue] {
        self.p.headers.as_slice()
    }

    /// True when the header index lives on the heap (more than [`INLINE_HEADERS`] values).
    pub fn headers_spilled(&self) -> bool {
        !self.p.headers.heap.is_empty()
    }

    /// The value octets of an index entry.
    #[inline]
    pub fn value(&self, h: &HeaderValue) -> &'a [u8] {
        self.slice(h.value)
    }

    /// The name of an index entry as written.
    #[inline]
    pub fn name(&self, h: &HeaderValue) -> &'a [u8] {
        self.slice(h.name_span())
    }

    /// The first value of a known header.
    pub fn header(&self, name: HeaderName) -> Option<&HeaderValue> {
        self.headers().iter().find(|h| h.name == name)
    }

    /// Every value of a known header, in order.
    pub fn headers_named(&self, name: HeaderName) -> impl Iterator<Item = &HeaderValue> + '_ {
        self.headers().iter().filter(move |h| h.name == name)
    }

    /// Every value of a header given by name as a script would (case-insensitive, compact
    /// forms resolved, extension headers by exact name).
    pub fn headers_by_name<'s>(
        &'s self,
        name: &'s [u8],
    ) -> impl Iterator<Item = &'s HeaderValue> + use<'s, 'a> {
        let kind = HeaderName::from_bytes(name);
        self.headers().iter().filter(move |h| {
            h.name == kind && (kind != HeaderName::Other || self.name(h).eq_ignore_ascii_case(name))
        })
    }

    fn single(&self, name: HeaderName) -> Result<(&HeaderValue, &'a [u8])> {
        let h = self.header(name).ok_or_else(|| {
            ParseError::new(ParseErrorKind::MissingHeader, self.p.headers_end)
                .in_header(name.as_str().as_bytes(), 0)
        })?;
        Ok((h, self.value(h)))
    }

    fn typed<T>(&self, h: &HeaderValue, f: impl FnOnce(&'a [u8]) -> Result<T>) -> Result<T> {
        f(self.value(h)).map_err(|e| e.in_header(self.name(h), h.value.start as usize))
    }

    fn cold(&self) -> &ColdCache<'a> {
        self.cache.cold.get_or_init(Box::default)
    }

    /// The first value of `name`, parsed with `parse` once and kept in `cell`.
    fn cached<'s, T>(
        &'s self,
        cell: &'s OnceCell<Result<T>>,
        name: HeaderName,
        parse: impl FnOnce(&'a [u8]) -> Result<T>,
    ) -> Result<&'s T> {
        cell.get_or_init(|| {
            let (h, _) = self.single(name)?;
            self.typed(h, parse)
        })
        .as_ref()
        .map_err(Clone::clone)
    }

    // ---- typed views ------------------------------------------------------------------

    /// The Request-URI, parsed (cached). `Err` for a response.
    pub fn request_uri(&self) -> Result<&Uri<'a>> {
        self.cache
            .uri
            .get_or_init(|| match self.p.start_line {
                StartLine::Request { uri, .. } => {
                    Uri::parse(uri).map_err(|e| e.shifted(self.p.uri_span.start as usize))
                }
                StartLine::Response { .. } => Err(start_error(
                    "a response has no Request-URI",
                    self.p.start_line_span.start as usize,
                )),
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The topmost Via value (cached).
    pub fn top_via(&self) -> Result<&Via<'a>> {
        self.cached(&self.cache.top_via, HeaderName::Via, Via::parse)
    }

    /// Every Via value, top first (parsed once, cached).
    pub fn vias(&self) -> Result<&[Via<'a>]> {
        self.cached_list(&self.cold().vias, HeaderName::Via, Via::parse)
    }

    /// From (cached).
    pub fn from(&self) -> Result<&NameAddr<'a>> {
        self.cached(&self.cache.from, HeaderName::From, NameAddr::parse)
    }

    /// To (cached).
    pub fn to(&self) -> Result<&NameAddr<'a>> {
        self.cached(&self.cache.to, HeaderName::To, NameAddr::parse)
    }

    /// Call-ID, trimmed (cached).
    pub fn call_id(&self) -> Result<&'a [u8]> {
        self.cached(
            &self.cache.call_id,
            HeaderName::CallId,
            values::parse_call_id,
        )
        .copied()
    }

    /// CSeq (cached).
    pub fn cseq(&self) -> Result<CSeq<'a>> {
        self.cached(&self.cache.cseq, HeaderName::CSeq, CSeq::parse)
            .copied()
    }

    /// The first value of an optional header, parsed once and kept in `cell`; `None` when
    /// the header is absent.
    fn cached_optional<T: Clone>(
        &self,
        cell: &OnceCell<Option<Result<T>>>,
        name: HeaderName,
        parse: impl FnOnce(&'a [u8]) -> Result<T>,
    ) -> Option<Result<T>> {
        cell.get_or_init(|| self.header(name).map(|h| self.typed(h, parse)))
            .clone()
    }

    /// Every value of `name`, parsed once and kept in `cell`; the first fault fails the list.
    fn cached_list<'s, T>(
        &'s self,
        cell: &'s OnceCell<Result<Vec<T>>>,
        name: HeaderName,
        parse: impl Fn(&'a [u8]) -> Result<T>,
    ) -> Result<&'s [T]> {
        cell.get_or_init(|| {
            self.headers_named(name)
                .map(|h| self.typed(h, &parse))
                .collect()
        })
        .as_ref()
        .map(Vec::as_slice)
        .map_err(Clone::clone)
    }

    /// Max-Forwards (0..=255), `None` when absent (cached).
    pub fn max_forwards(&self) -> Option<Result<u8>> {
        self.cached_optional(&self.cache.max_forwards, HeaderName::MaxForwards, |v| {
            values::parse_number(v, 255).map(|n| u8::try_from(n).unwrap_or(u8::MAX))
        })
    }

    /// Expires in seconds, `None` when absent (cached).
    pub fn expires(&self) -> Option<Result<u32>> {
        self.cached_optional(&self.cold().expires, HeaderName::Expires, parse_seconds)
    }

    /// Min-Expires in seconds, `None` when absent (cached).
    pub fn min_expires(&self) -> Option<Result<u32>> {
        self.cached_optional(
            &self.cold().min_expires,
            HeaderName::MinExpires,
            parse_seconds,
        )
    }

    /// Content-Type, `None` when absent (cached).
    pub fn content_type(&self) -> Option<Result<ContentType<'a>>> {
        self.cached_optional(
            &self.cold().content_type,
            HeaderName::ContentType,
            ContentType::parse,
        )
    }

    /// Event, `None` when absent (cached).
    pub fn event(&self) -> Option<Result<Event<'a>>> {
        self.cached_optional(&self.cold().event, HeaderName::Event, Event::parse)
    }

    /// User-Agent text, trimmed, `None` when absent.
    pub fn user_agent(&self) -> Option<&'a [u8]> {
        self.header(HeaderName::UserAgent).map(|h| self.value(h))
    }

    /// Every Contact value, in order (cached).
    pub fn contacts(&self) -> Result<&[Contact<'a>]> {
        self.cached_list(&self.cold().contacts, HeaderName::Contact, Contact::parse)
    }

    /// Every value of any name-addr header (Refer-To, P-Asserted-Identity...), parsed on each
    /// call; Route, Record-Route and Path have cached accessors.
    pub fn addresses(&self, name: HeaderName) -> impl Iterator<Item = Result<NameAddr<'a>>> + '_ {
        self.headers_named(name)
            .map(|h| self.typed(h, NameAddr::parse))
    }

    /// Every Route value, top first (cached).
    pub fn routes(&self) -> Result<&[NameAddr<'a>]> {
        self.cached_list(&self.cold().routes, HeaderName::Route, NameAddr::parse)
    }

    /// Every Record-Route value, top first (cached).
    pub fn record_routes(&self) -> Result<&[NameAddr<'a>]> {
        self.cached_list(
            &self.cold().record_routes,
            HeaderName::RecordRoute,
            NameAddr::parse,
        )
    }

    /// Every Path value (RFC 3327), top first (cached).
    pub fn paths(&self) -> Result<&[NameAddr<'a>]> {
        self.cached_list(&self.cold().paths, HeaderName::Path, NameAddr::parse)
    }

    /// Tokens of a token-list header (Supported, Require, Proxy-Require, Unsupported, Allow,
    /// Allow-Events), across every line of it; an empty header gives no token.
    pub fn tokens(&self, name: HeaderName) -> impl Iterator<Item = Result<&'a [u8]>> + '_ {
        self.headers_named(name)
            .filter(|h| !(h.value.is_empty() && h.values_in_line == 1))
            .map(|h| self.typed(h, values::parse_token))
    }

    /// Credentials or challenges of one of the four auth headers, in order (cached); an empty
    /// list for any other header name.
    pub fn credentials(&self, name: HeaderName) -> Result<&[Credentials<'a>]> {
        let slot = match name {
            HeaderName::Authorization => 0,
            HeaderName::ProxyAuthorization => 1,
            HeaderName::WwwAuthenticate => 2,
            HeaderName::ProxyAuthenticate => 3,
            _ => return Ok(&[]),
        };
        match self.cold().auth.get(slot) {
            Some(cell) => self.cached_list(cell, name, Credentials::parse),
            None => Ok(&[]),
        }
    }

    // ---- validation ---------------------------------------------------------------------

    /// Parses every header this crate knows and checks what a server checks before acting on
    /// a message (RFC 3261 §8.1.1, §8.2, §16.3): Request-URI syntax (no escaped headers in
    /// it, RFC 4475 §3.1.2.11), the mandatory To, From, CSeq, Call-ID and Via, one instance
    /// of each single-instance header, the CSeq method equal to the request method. Returns
    /// the first fault; its [`ParseError::status`] is the reply to send.
    pub fn validate(&self) -> Result<()> {
        if self.is_request() {
            let uri = self.request_uri()?;
            if let Uri::Sip(sip) = uri {
                if sip.headers().is_some() {
                    return Err(ParseError::new(
                        ParseErrorKind::BadUri("headers are not allowed in a Request-URI"),
                        self.p.uri_span.start as usize,
                    ));
                }
            }
        }
        for name in [
            HeaderName::CSeq,
            HeaderName::CallId,
            HeaderName::From,
            HeaderName::To,
            HeaderName::Via,
        ] {
            self.single(name)?;
        }
        for name in [
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
            HeaderName::CSeq,
            HeaderName::MaxForwards,
            HeaderName::ContentType,
            HeaderName::Expires,
            HeaderName::MinExpires,
        ] {
            if let Some(second) = self.headers_named(name).nth(1) {
                return Err(ParseError::new(ParseErrorKind::DuplicateHeader, 0)
                    .in_header(self.name(second), second.line.start as usize));
            }
        }
        let cseq = self.cseq()?;
        if let Some(method) = self.method() {
            if cseq.method != method {
                let h = self.header(HeaderName::CSeq);
                return Err(ParseError::new(
                    ParseErrorKind::CSeqMethodMismatch {
                        method_known: method.is_known(),
                    },
                    h.map_or(0, |h| h.value.start as usize),
                )
                .in_header(b"CSeq", 0));
            }
        }
        self.call_id()?;
        self.from()?;
        self.to()?;
        // Every Via must parse. The top one is kept (the transaction layer reads it); the
        // others are checked without building the cached list, which `vias()` makes for
        // whoever asks (it would parse the top one a second time).
        self.top_via()?;
        for h in self.headers_named(HeaderName::Via).skip(1) {
            self.typed(h, Via::parse)?;
        }
        for h in self.headers() {
            if h.name == HeaderName::Other && !is_token(self.name(h)) {
                return Err(ParseError::new(
                    ParseErrorKind::BadHeaderName,
                    h.line.start as usize,
                ));
            }
            let value = self.value(h);
            let checked = match h.name {
                HeaderName::MaxForwards => values::parse_number(value, 255).map(drop),
                HeaderName::Expires | HeaderName::MinExpires => {
                    values::parse_number(value, u64::from(u32::MAX)).map(drop)
                }
                HeaderName::Contact => Contact::parse(value).map(drop),
                HeaderName::Route
                | HeaderName::RecordRoute
                | HeaderName::Path
                | HeaderName::ReferTo
                | HeaderName::ReferredBy
                | HeaderName::PAssertedIdentity
                | HeaderName::PPreferredIdentity => NameAddr::parse(value).map(drop),
                HeaderName::ContentType => ContentType::parse(value).map(drop),
                HeaderName::Event => Event::parse(value).map(drop),
                HeaderName::Authorization
                | HeaderName::ProxyAuthorization
                | HeaderName::WwwAuthenticate
                | HeaderName::ProxyAuthenticate => Credentials::parse(value).map(drop),
                HeaderName::Supported
                | HeaderName::Require
                | HeaderName::ProxyRequire
                | HeaderName::Unsupported
                | HeaderName::Allow
                | HeaderName::AllowEvents => {
                    if value.is_empty() && h.values_in_line == 1 {
                        Ok(())
                    } else {
                        values::parse_token(value).map(drop)
                    }
                }
                HeaderName::Date => values::check_date(value),
                _ => Ok(()),
            };
            checked.map_err(|e| e.in_header(self.name(h), h.value.start as usize))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:bob@biloxi.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds, SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.com>\r\n\
From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.com>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

    #[test]
    fn indexes_start_line_headers_and_body() {
        let m = Message::parse(INVITE).unwrap();
        assert_eq!(m.method(), Some(Method::Invite));
        assert_eq!(m.request_uri().unwrap().as_bytes(), b"sip:bob@biloxi.com");
        assert_eq!(m.headers().len(), 10);
        assert!(!m.headers_spilled());
        let vias: Vec<_> = m
            .headers_named(HeaderName::Via)
            .map(|h| m.value(h))
            .collect();
        assert_eq!(
            vias,
            vec![
                &b"SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds"[..],
                b"SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx"
            ]
        );
        assert_eq!(
            m.top_via().unwrap().branch(),
            Some(&b"z9hG4bK776asdhds"[..])
        );
        assert_eq!(m.call_id().unwrap(), b"a84b4c76e66710@pc33.atlanta.com");
        assert_eq!(m.cseq().unwrap().number, 314159);
        assert_eq!(m.from().unwrap().tag(), Some(&b"1928301774"[..]));
        assert_eq!(m.to().unwrap().tag(), None);
        assert_eq!(m.max_forwards().unwrap().unwrap(), 70);
        assert_eq!(m.body(), b"v=0\n");
        assert_eq!(m.as_bytes(), INVITE);
        m.validate().unwrap();
    }

    #[test]
    fn typed_views_are_parsed_once_and_cached() {
        let m = Message::parse(INVITE).unwrap();
        assert!(std::ptr::eq(m.top_via().unwrap(), m.top_via().unwrap()));
        assert!(std::ptr::eq(m.from().unwrap(), m.from().unwrap()));
        assert!(std::ptr::eq(
            m.vias().unwrap().as_ptr(),
            m.vias().unwrap().as_ptr()
        ));
        assert!(std::ptr::eq(
            m.contacts().unwrap().as_ptr(),
            m.contacts().unwrap().as_ptr()
        ));
        assert_eq!(m.contacts().unwrap().len(), 1);
        assert!(m.routes().unwrap().is_empty());
        assert!(m.credentials(HeaderName::Authorization).unwrap().is_empty());
        assert!(m.credentials(HeaderName::Via).unwrap().is_empty());
    }

    #[test]
    fn less_common_views_parse_and_report_absence() {
        let text = format!(
            "{BASE}Path: <sip:edge1;lr>, <sip:edge2;lr>\r\nUser-Agent: Sable Test/1.0\r\nExpires: 3600\r\nMin-Expires: 60\r\nEvent: dialog;id=9\r\nWWW-Authenticate: Digest realm=\"r\", nonce=\"n\", stale=true\r\nSupported: path, outbound\r\n\r\n"
        );
        let m = Message::parse(text.as_bytes()).unwrap();
        m.validate().unwrap();
        let paths: Vec<&[u8]> = m
            .paths()
            .unwrap()
            .iter()
            .map(|p| p.uri.as_bytes())
            .collect();
        assert_eq!(paths, vec![&b"sip:edge1;lr"[..], b"sip:edge2;lr"]);
        assert_eq!(m.user_agent(), Some(&b"Sable Test/1.0"[..]));
        assert_eq!(m.expires().unwrap().unwrap(), 3600);
        assert_eq!(m.min_expires().unwrap().unwrap(), 60);
        assert_eq!(m.event().unwrap().unwrap().id(), Some(&b"9"[..]));
        let challenge = m.credentials(HeaderName::WwwAuthenticate).unwrap()[0];
        assert!(challenge.stale());
        let tags: Vec<&[u8]> = m
            .tokens(HeaderName::Supported)
            .map(|t| t.unwrap())
            .collect();
        assert_eq!(tags, vec![&b"path"[..], b"outbound"]);

        let bare_text = format!("{BASE}\r\n");
        let bare = Message::parse(bare_text.as_bytes()).unwrap();
        assert!(bare.expires().is_none() && bare.event().is_none() && bare.user_agent().is_none());
        assert!(bare.paths().unwrap().is_empty());
    }

    #[test]
    fn response_with_empty_reason() {
        let m =
            Message::parse(b"SIP/2.0 100 \r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n").unwrap();
        assert_eq!(m.status_code(), Some(100));
        assert_eq!(m.reason(), Some(&b""[..]));
        assert!(m.request_uri().is_err());
    }

    #[test]
    fn start_line_faults() {
        let cases: &[(&[u8], ParseErrorKind)] = &[
            (
                b"INVITE sip:a@b SIP/7.0\r\n\r\n",
                ParseErrorKind::UnsupportedVersion,
            ),
            (
                b"SIP/2.0 4294967301 Huge\r\n\r\n",
                ParseErrorKind::BadStatusCode,
            ),
            (b"SIP/2.0 099 Low\r\n\r\n", ParseErrorKind::BadStatusCode),
            (b"INV@TE sip:a@b SIP/2.0\r\n\r\n", ParseErrorKind::BadMethod),
            (b"\r\n\r\n", ParseErrorKind::Empty),
            (b"INVITE sip:a@b SIP/2.0", ParseErrorKind::Truncated),
        ];
        for (bytes, kind) in cases {
            assert_eq!(
                Message::parse(bytes).unwrap_err().kind(),
                *kind,
                "{bytes:?}"
            );
        }
        assert!(matches!(
            Message::parse(b"INVITE  sip:a@b SIP/2.0\r\n\r\n")
                .unwrap_err()
                .kind(),
            ParseErrorKind::BadStartLine(_)
        ));
        assert!(matches!(
            Message::parse(b"OPTIONS sip:a@b SIP/2.0  \r\n\r\n")
                .unwrap_err()
                .kind(),
            ParseErrorKind::BadStartLine(_)
        ));
    }

    #[test]
    fn content_length_framing() {
        let e = Message::parse(b"OPTIONS sip:a@b SIP/2.0\r\nl: 10\r\n\r\nabc").unwrap_err();
        assert_eq!(
            e.kind(),
            ParseErrorKind::ContentLengthExceedsBody {
                declared: 10,
                present: 3
            }
        );
        let e = Message::parse(b"OPTIONS sip:a@b SIP/2.0\r\nl: -1\r\n\r\n").unwrap_err();
        assert_eq!(e.kind(), ParseErrorKind::InvalidContentLength);
        assert_eq!(e.header(), Some("Content-Length"));
        let e = Message::parse(b"OPTIONS sip:a@b SIP/2.0\r\nl: 1\r\nContent-Length: 1\r\n\r\na")
            .unwrap_err();
        assert_eq!(e.kind(), ParseErrorKind::MultipleContentLength);
        let m = Message::parse(b"OPTIONS sip:a@b SIP/2.0\r\nl: 1\r\n\r\nabc").unwrap();
        assert_eq!(m.body(), b"a");
        let m = Message::parse(b"OPTIONS sip:a@b SIP/2.0\r\nX: y\r\n\r\nabc").unwrap();
        assert_eq!(m.body(), b"abc");
    }

    #[test]
    fn short_numbers_read_as_parse_number_reads_them() {
        for text in [
            &b" 0"[..],
            b"0",
            b" 149",
            b" 999999999",
            b" 1234567890",
            b"  1",
            b" 1 ",
            b" ",
            b"",
            b" -1",
            b" 1a",
            b" /",
            b" :",
        ] {
            let mut buf = text.to_vec();
            buf.extend_from_slice(b"\r\n");
            if let Some(n) = short_number(&buf, 0, text.len()) {
                assert_eq!(
                    values::parse_number(text, u64::from(u32::MAX)).ok(),
                    Some(u64::from(n)),
                    "{text:?}"
                );
            }
        }
        assert_eq!(short_number(b" 149\r\n", 0, 4), Some(149));
        assert_eq!(short_number(b" 1234567890\r\n", 0, 11), None);
    }

    #[test]
    fn folded_values_and_names_with_space_before_colon() {
        let m = Message::parse(
            b"OPTIONS sip:a@b SIP/2.0\r\nTO :\r\n sip:a@b ;   tag    = 1918\r\nNew: a\r\n b\r\n\r\n",
        )
        .unwrap();
        assert_eq!(m.to().unwrap().tag(), Some(&b"1918"[..]));
        let h = m.headers_by_name(b"new").next().unwrap();
        assert_eq!(m.value(h), b"a\r\n b");
    }

    #[test]
    fn header_line_without_colon_is_rejected() {
        let e = Message::parse(b"OPTIONS sip:a@b SIP/2.0\r\nNoColonHere\r\n\r\n").unwrap_err();
        assert_eq!(e.kind(), ParseErrorKind::HeaderWithoutColon);
        assert_eq!(e.offset(), 25);
    }

    #[test]
    fn more_than_inline_headers_spill_and_still_parse() {
        let mut m = b"OPTIONS sip:a@b SIP/2.0\r\n".to_vec();
        for i in 0..40 {
            m.extend_from_slice(format!("X-H{i}: {i}\r\n").as_bytes());
        }
        m.extend_from_slice(b"\r\n");
        let msg = Message::parse(&m).unwrap();
        assert_eq!(msg.headers().len(), 40);
        assert!(msg.headers_spilled());
    }

    #[test]
    fn the_header_index_is_bounded() {
        let mut m = b"OPTIONS sip:a@b SIP/2.0\r\nAllow: A".to_vec();
        for _ in 1..MAX_HEADERS {
            m.extend_from_slice(b",A");
        }
        m.extend_from_slice(b"\r\n\r\n");
        let msg = Message::parse(&m).unwrap();
        assert_eq!(msg.headers().len(), MAX_HEADERS);
        // A proxy's added Via takes it over the bound: the edited message is refused, not
        // indexed without limit (found by fuzzing).
        let mut e = crate::Edits::new();
        e.add_via(&msg, b"SIP/2.0/UDP p;branch=z9hG4bK1").unwrap();
        let out = e.to_vec(&msg);
        assert_eq!(
            Message::parse(&out).unwrap_err().kind(),
            ParseErrorKind::TooManyHeaders { limit: MAX_HEADERS }
        );
    }

    #[test]
    fn a_line_that_collapses_to_one_value_is_counted_once() {
        // 1023 values, then a Contact line with many commas inside an unclosed quote: the
        // line is one value (its fault is reported by validate), so 1024 values in all.
        let mut m = b"OPTIONS sip:a@b SIP/2.0\r\nAllow: A".to_vec();
        for _ in 1..MAX_HEADERS - 1 {
            m.extend_from_slice(b",A");
        }
        m.extend_from_slice(b"\r\nContact: a,b,c,d,\"e,f\r\n\r\n");
        let msg = Message::parse(&m).unwrap();
        assert_eq!(msg.headers().len(), MAX_HEADERS);
        assert!(msg.contacts().is_err());
    }

    #[test]
    fn validate_names_the_missing_header() {
        let m = Message::parse(
            b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nCSeq: 1 OPTIONS\r\n\r\n",
        )
        .unwrap();
        let e = m.validate().unwrap_err();
        assert_eq!(e.kind(), ParseErrorKind::MissingHeader);
        assert_eq!(e.header(), Some("Call-ID"));
        assert_eq!(e.reason_phrase(), "Bad Request - missing Call-ID");
    }

    #[test]
    fn validate_checks_every_via_not_only_the_top_one() {
        let msg = |vias: &str| {
            format!(
                "SIP/2.0 200 OK\r\n{vias}From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\n\
                 Call-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            )
        };
        let good =
            msg("Via: SIP/2.0/UDP a;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP b, SIP/2.0/TCP c\r\n");
        let m = Message::parse(good.as_bytes()).unwrap();
        m.validate().unwrap();
        assert_eq!(m.vias().unwrap().len(), 3);
        for bad in [
            "Via: SIP/2.0/UDP a\r\nVia: SIP/2.0/UDP b, junk\r\n",
            "Via: SIP/2.0/UDP a, SIP/2.0/UDP\r\n",
            "Via: bad\r\nVia: SIP/2.0/UDP b\r\n",
        ] {
            let text = msg(bad);
            let m = Message::parse(text.as_bytes()).unwrap();
            let e = m.validate().unwrap_err();
            assert_eq!(e.header(), Some("Via"), "{bad}");
            assert!(m.vias().is_err(), "{bad}");
        }
    }

    #[test]
    fn list_special_search_finds_the_first_special_octet() {
        for text in [
            &b""[..],
            b"abc",
            b"abcdefgh,",
            b"a,b",
            b"abcdefghijklmnop\"",
            b"<abcdefgh",
            b"abcdefg\x01,",
            b"\x80\x81\x82\x83\x84\x85\x86\x87\x88<",
            b",,,,,,,,,",
            b"\x2b\x2d\x2c",
        ] {
            let expected = text.iter().position(|&b| matches!(b, b',' | b'"' | b'<'));
            assert_eq!(find3(text, 0, b',', b'"', b'<'), expected, "{text:?}");
        }
    }

    #[test]
    fn identity_and_diversion_headers_are_lists() {
        let m = Message::parse(
            b"INVITE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:b@h>\r\nFrom: <sip:a@h>;tag=1\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nP-Asserted-Identity: \"Cullen Jennings\" <sip:fluffy@cisco.com>, <tel:+14083264000>\r\n\r\n",
        )
        .unwrap();
        m.validate().unwrap();
        assert_eq!(m.addresses(HeaderName::PAssertedIdentity).count(), 2);
    }

    const BASE: &str = "OPTIONS sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:b@h>\r\nFrom: <sip:a@h>;tag=1\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n";

    #[test]
    fn a_fault_in_one_header_still_leaves_a_message_to_answer() {
        let text = format!("{BASE}Contact: \"Bob <sip:b@h>\r\n\r\n");
        let m = Message::parse(text.as_bytes()).unwrap();
        assert_eq!(m.call_id().unwrap(), b"c");
        let e = m.validate().unwrap_err();
        assert_eq!(e.kind(), ParseErrorKind::UnterminatedQuote);
        assert_eq!(e.header(), Some("Contact"));

        let text = format!("{BASE}X/Y: 1\r\n\r\n");
        let m = Message::parse(text.as_bytes()).unwrap();
        assert_eq!(
            m.validate().unwrap_err().kind(),
            ParseErrorKind::BadHeaderName
        );
    }

    #[test]
    fn refused_messages_can_still_be_answered() {
        let version = BASE.replace("SIP/2.0\r\nVia", "SIP/3.0\r\nVia") + "\r\n";
        assert_eq!(
            Message::parse(version.as_bytes()).unwrap_err().kind(),
            ParseErrorKind::UnsupportedVersion
        );
        let m = Message::parse_for_reply(version.as_bytes()).unwrap();
        assert_eq!(m.top_via().unwrap().branch(), Some(&b"z9hG4bK1"[..]));

        for extra in [
            "l: 99\r\n\r\nabc",
            "l: 1\r\nl: 2\r\n\r\nab",
            "l: -1\r\n\r\n",
            "NoColon\r\n\r\n",
        ] {
            let text = format!("{BASE}{extra}");
            assert!(Message::parse(text.as_bytes()).is_err(), "{extra}");
            let m = Message::parse_for_reply(text.as_bytes()).unwrap();
            assert_eq!(m.cseq().unwrap().number, 1, "{extra}");
            assert_eq!(m.from().unwrap().tag(), Some(&b"1"[..]));
        }
    }

    #[test]
    fn reason_phrases_use_the_full_header_name() {
        let text = format!("{BASE}l: 0\r\nContent-Length: 0\r\n\r\n");
        let e = Message::parse(text.as_bytes()).unwrap_err();
        assert_eq!(
            e.reason_phrase(),
            "Bad Request - several Content-Length values"
        );
        let text = format!("{BASE}f: <sip:x@h>;tag=2\r\n\r\n");
        let e = Message::parse(text.as_bytes())
            .unwrap()
            .validate()
            .unwrap_err();
        assert_eq!(e.reason_phrase(), "Bad Request - several From headers");
    }

    #[test]
    fn http_requests_parse_with_parse_http_only() {
        let get = b"GET /RPC?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: curl\r\n\r\n";
        assert!(Message::looks_like_http(get));
        assert!(Message::parse(get).is_err());
        let m = Message::parse_http(get).unwrap();
        assert_eq!(m.method().map(|x| x.as_bytes()), Some(&b"GET"[..]));
        assert_eq!(m.slice(m.request_uri_span()), b"/RPC?x=1");
        assert_eq!(m.user_agent(), Some(&b"curl"[..]));
        assert!(m.body().is_empty());
        let post = b"POST /RPC HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(Message::parse_http(post).unwrap().body(), b"{}");
        assert!(Message::parse_http(b"GET / HTTP/2.0\r\n\r\n").is_err());
        assert!(Message::parse_http(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(!Message::looks_like_http(b"OPTIONS sip:a SIP/2.0\r\n\r\n"));
    }
}
