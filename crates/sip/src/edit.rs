//! Edits recorded as lumps and applied by the serializer in one pass.
//!
//! An [`Edits`] belongs to one parsed [`Message`]: every lump is an insertion at, a
//! replacement of, or a deletion of a byte range of that message's buffer. Nothing is applied
//! until [`Edits::serialize`], which walks the message once, copying the untouched octets as
//! they were and emitting the lumps in offset order into a caller-owned, reusable buffer. This
//! is Kamailio's lump model: reads of the message during routing see the original; the edits
//! show only in what is sent.
//!
//! Rules that keep the output well-formed whatever the combination of edits:
//! - at one offset, insertions come first, then replacements, then deletions, each in the
//!   order they were recorded (so "insert before this header" survives removing the header);
//! - text inserted or replaced inside a range another lump deleted is dropped (replacing a
//!   value of a header that is also removed removes it);
//! - replacing the same span twice keeps the later replacement;
//! - nothing is written past the message end (octets after Content-Length in a datagram are
//!   never forwarded);
//! - Content-Length follows the body: set by [`Edits::replace_body`], or adjusted by the net
//!   size change of lumps inside the body (Kamailio does the same when it builds a message).

use smallvec::SmallVec;

use crate::error::{ParseError, ParseErrorKind, Result};
use crate::header::{HeaderName, HeaderValue};
use crate::message::{Message, Span};
use crate::scan::is_token;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Insert(Vec<u8>),
    Replace {
        end: u32,
        bytes: Vec<u8>,
    },
    Delete {
        end: u32,
    },
    /// One value of a comma-separated line; widened to its separator at serialization.
    RemoveValue {
        end: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Lump {
    at: u32,
    /// Order of recording: ties of one kind at one offset keep it.
    seq: u32,
    op: Op,
}

/// A lump as the serializer walks it: offsets and borrowed text, so ordering, widening and
/// the Content-Length fix allocate nothing.
#[derive(Debug, Clone, Copy)]
struct Step<'s> {
    at: u32,
    seq: u32,
    op: StepOp<'s>,
}

#[derive(Debug, Clone, Copy)]
enum StepOp<'s> {
    Insert(&'s [u8]),
    Replace { end: u32, bytes: &'s [u8] },
    Delete { end: u32 },
    RemoveValue { end: u32 },
}

impl StepOp<'_> {
    /// Order of kinds at one offset.
    fn rank(&self) -> u8 {
        match self {
            StepOp::Insert(_) => 0,
            StepOp::Replace { .. } => 1,
            StepOp::Delete { .. } | StepOp::RemoveValue { .. } => 2,
        }
    }

    /// End of the range this step removes, if it removes one.
    fn removes_to(&self) -> Option<u32> {
        match *self {
            StepOp::Insert(_) => None,
            StepOp::Replace { end, .. } | StepOp::Delete { end } | StepOp::RemoveValue { end } => {
                Some(end)
            }
        }
    }
}

impl<'s> From<&'s Lump> for Step<'s> {
    fn from(l: &'s Lump) -> Step<'s> {
        let op = match &l.op {
            Op::Insert(b) => StepOp::Insert(b),
            Op::Replace { end, bytes } => StepOp::Replace { end: *end, bytes },
            Op::Delete { end } => StepOp::Delete { end: *end },
            Op::RemoveValue { end } => StepOp::RemoveValue { end: *end },
        };
        Step {
            at: l.at,
            seq: l.seq,
            op,
        }
    }
}

/// Changes to one message, applied when serializing.
#[derive(Debug, Clone, Default)]
pub struct Edits {
    lumps: SmallVec<[Lump; 8]>,
    body: Option<Vec<u8>>,
    seq: u32,
}

/// Builds `name: value CRLF`, refusing what would break the header section: a name that is not
/// a token, or a CR or LF in the value (header injection from script values).
fn header_line(name: &[u8], value: &[u8]) -> Result<Vec<u8>> {
    if !is_token(name) {
        return Err(ParseError::new(ParseErrorKind::BadHeaderName, 0));
    }
    if let Some(p) = value.iter().position(|&b| b == b'\r' || b == b'\n') {
        return Err(ParseError::new(
            ParseErrorKind::BadHeaderValue("CR or LF in an inserted header value"),
            p,
        ));
    }
    let mut line = Vec::with_capacity(name.len() + value.len() + 4);
    line.extend_from_slice(name);
    line.extend_from_slice(b": ");
    line.extend_from_slice(value);
    line.extend_from_slice(b"\r\n");
    Ok(line)
}

fn offset(at: usize) -> u32 {
    u32::try_from(at).unwrap_or(u32::MAX)
}

impl Edits {
    /// No edits.
    pub fn new() -> Edits {
        Edits::default()
    }

    /// Forgets every edit (to reuse the allocation for the next message).
    pub fn clear(&mut self) {
        self.lumps.clear();
        self.body = None;
        self.seq = 0;
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.lumps.is_empty() && self.body.is_none()
    }

    fn push(&mut self, at: usize, op: Op) {
        self.seq = self.seq.wrapping_add(1);
        self.lumps.push(Lump {
            at: offset(at),
            seq: self.seq,
            op,
        });
    }

    /// Inserts raw octets at an offset of the message buffer (the caller keeps the result
    /// well-formed).
    pub fn insert_raw(&mut self, at: usize, bytes: &[u8]) {
        self.push(at, Op::Insert(bytes.to_vec()));
    }

    /// Deletes a span of the message buffer.
    pub fn delete(&mut self, span: Span) {
        if !span.is_empty() {
            self.push(span.start as usize, Op::Delete { end: span.end });
        }
    }

    /// Replaces a span of the message buffer with `bytes`; a later replacement of the same
    /// span wins.
    pub fn replace(&mut self, span: Span, bytes: &[u8]) {
        self.lumps.retain(|l| {
            !(l.at == span.start && matches!(l.op, Op::Replace { end, .. } if end == span.end))
        });
        self.push(
            span.start as usize,
            Op::Replace {
                end: span.end,
                bytes: bytes.to_vec(),
            },
        );
    }

    /// Inserts the header line `name: value` before the line holding `before`.
    pub fn insert_header_before(
        &mut self,
        before: &HeaderValue,
        name: &[u8],
        value: &[u8],
    ) -> Result<()> {
        let line = header_line(name, value)?;
        self.push(before.line.start as usize, Op::Insert(line));
        Ok(())
    }

    /// Inserts the header line `name: value` after the line holding `after`.
    pub fn insert_header_after(
        &mut self,
        after: &HeaderValue,
        name: &[u8],
        value: &[u8],
    ) -> Result<()> {
        let line = header_line(name, value)?;
        self.push(after.line.end as usize, Op::Insert(line));
        Ok(())
    }

    /// Adds the header line `name: value` as the first header.
    pub fn prepend_header(&mut self, msg: &Message<'_>, name: &[u8], value: &[u8]) -> Result<()> {
        let line = header_line(name, value)?;
        let at = msg
            .headers()
            .first()
            .map_or(msg.headers_end(), |h| h.line.start as usize);
        self.push(at, Op::Insert(line));
        Ok(())
    }

    /// Adds the header line `name: value` after the last header (Kamailio's `append_hf`).
    pub fn append_header(&mut self, msg: &Message<'_>, name: &[u8], value: &[u8]) -> Result<()> {
        let line = header_line(name, value)?;
        self.push(msg.headers_end(), Op::Insert(line));
        Ok(())
    }

    /// Removes the whole header line holding `h` (every value on it).
    pub fn remove_header(&mut self, h: &HeaderValue) {
        self.delete(h.line);
    }

    /// Removes every header line of a known header.
    pub fn remove_headers_named(&mut self, msg: &Message<'_>, name: HeaderName) {
        let mut last_line = None;
        for h in msg.headers_named(name) {
            if last_line != Some(h.line) {
                self.delete(h.line);
                last_line = Some(h.line);
            }
        }
    }

    /// Removes one value of a comma-separated header line with one separating comma; the
    /// whole line once every value of it is removed. Several values of one line may be
    /// removed: the separators deleted are worked out at serialization from all of them.
    pub fn remove_value(&mut self, h: &HeaderValue) {
        if h.values_in_line <= 1 {
            self.delete(h.line);
            return;
        }
        self.push(h.value.start as usize, Op::RemoveValue { end: h.value.end });
    }

    /// Replaces one header value (e.g. the decremented Max-Forwards).
    pub fn replace_value(&mut self, h: &HeaderValue, value: &[u8]) -> Result<()> {
        if value.iter().any(|&b| b == b'\r' || b == b'\n') {
            return Err(ParseError::new(
                ParseErrorKind::BadHeaderValue("CR or LF in a header value"),
                0,
            ));
        }
        self.replace(h.value, value);
        Ok(())
    }

    /// Replaces the Request-URI.
    pub fn replace_request_uri(&mut self, msg: &Message<'_>, uri: &[u8]) {
        if msg.is_request() {
            self.replace(msg.request_uri_span(), uri);
        }
    }

    /// Adds a Via value on top (a new `Via:` line before the first one).
    pub fn add_via(&mut self, msg: &Message<'_>, value: &[u8]) -> Result<()> {
        match msg.header(HeaderName::Via) {
            Some(first) => self.insert_header_before(first, b"Via", value),
            None => self.prepend_header(msg, b"Via", value),
        }
    }

    /// Removes the topmost Via value (a proxy relaying a response, RFC 3261 §16.7 step 3).
    pub fn remove_top_via(&mut self, msg: &Message<'_>) {
        if let Some(first) = msg.header(HeaderName::Via) {
            self.remove_value(first);
        }
    }

    /// Adds a Record-Route value on top (RFC 3261 §16.6 step 4): before the first
    /// Record-Route line, or as the first header.
    pub fn add_record_route(&mut self, msg: &Message<'_>, value: &[u8]) -> Result<()> {
        match msg.header(HeaderName::RecordRoute) {
            Some(first) => self.insert_header_before(first, b"Record-Route", value),
            None => self.prepend_header(msg, b"Record-Route", value),
        }
    }

    /// Adds a Route value on top (a pre-loaded route, RFC 3261 §16.6 step 7): before the first
    /// Route line, or after the last header.
    pub fn add_route(&mut self, msg: &Message<'_>, value: &[u8]) -> Result<()> {
        match msg.header(HeaderName::Route) {
            Some(first) => self.insert_header_before(first, b"Route", value),
            None => self.append_header(msg, b"Route", value),
        }
    }

    /// Replaces the body; Content-Length follows.
    pub fn replace_body(&mut self, body: &[u8]) {
        self.body = Some(body.to_vec());
    }

    /// Removes the body; Content-Length becomes 0.
    pub fn remove_body(&mut self) {
        self.body = Some(Vec::new());
    }

    /// Writes the edited message into `out` (cleared first). Octets before the start line and
    /// after the body are not written; a header section that lacked its empty line gets one.
    pub fn serialize(&self, msg: &Message<'_>, out: &mut Vec<u8>) {
        out.clear();
        let buf = msg.buffer();
        let span = msg.message_span();
        let msg_end = span.end as usize;
        let headers_end = msg.headers_end();
        let body = msg.body_span();
        out.reserve(span.len() + self.extra_len());

        // Declared before `order`, which may borrow it.
        let mut cl_line: SmallVec<[u8; 40]> = SmallVec::new();
        let mut order: SmallVec<[Step<'_>; 16]> = SmallVec::new();
        for l in &self.lumps {
            // Lumps inside a replaced body are moot; nothing lands past the message end.
            if self.body.is_some() && l.at as usize > headers_end {
                continue;
            }
            let mut step = Step::from(l);
            step.at = step.at.min(span.end);
            order.push(step);
        }
        widen_value_removals(msg, &mut order);
        order.sort_by_key(|l| (l.at, l.op.rank(), l.seq));

        // Content-Length follows the body: the new body's length, or the old one plus the net
        // change of the lumps applied inside it.
        let new_len = match &self.body {
            Some(b) => Some(b.len()),
            None => {
                let delta = body_delta(
                    &order,
                    span.start as usize,
                    headers_end,
                    body.start as usize,
                );
                (delta != 0).then(|| (body.len() as i64 + delta).max(0) as usize)
            }
        };
        if let Some(len) = new_len {
            cl_line.extend_from_slice(b"Content-Length: ");
            let digits_at = cl_line.len();
            cl_line.extend_from_slice(len.to_string().as_bytes());
            cl_line.extend_from_slice(b"\r\n");
            let digits_end = cl_line.len() - 2;
            // A Content-Length line the edits delete is written anew after the headers.
            let kept_cl = msg.header(HeaderName::ContentLength).filter(|h| {
                !order.iter().any(|l| {
                    matches!(l.op, StepOp::Delete { end } | StepOp::RemoveValue { end }
                        if l.at <= h.value.start && end >= h.value.end)
                })
            });
            match kept_cl {
                Some(h) => order.push(Step {
                    at: h.value.start,
                    seq: u32::MAX,
                    op: StepOp::Replace {
                        end: h.value.end,
                        bytes: cl_line.get(digits_at..digits_end).unwrap_or_default(),
                    },
                }),
                None => order.push(Step {
                    at: offset(headers_end),
                    seq: u32::MAX,
                    op: StepOp::Insert(&cl_line),
                }),
            }
            order.sort_by_key(|l| (l.at, l.op.rank(), l.seq));
        }

        let mut pos = span.start as usize;
        let copy_to = |out: &mut Vec<u8>, pos: &mut usize, to: usize| {
            let to = to.min(msg_end);
            if to > *pos {
                out.extend_from_slice(buf.get(*pos..to).unwrap_or_default());
                *pos = to;
            }
        };
        let body_replaced = self.body.is_some();
        for step in &order {
            let at = step.at as usize;
            if body_replaced && at > headers_end {
                break;
            }
            if at < pos {
                // Inside a range already deleted: drop insertions, keep deletions going.
                if let Some(end) = step.op.removes_to() {
                    pos = pos.max(end as usize);
                }
                continue;
            }
            copy_to(out, &mut pos, at);
            match step.op {
                StepOp::Insert(bytes) => out.extend_from_slice(bytes),
                StepOp::Replace { end, bytes } => {
                    out.extend_from_slice(bytes);
                    pos = pos.max(end as usize);
                }
                StepOp::Delete { end } | StepOp::RemoveValue { end } => pos = pos.max(end as usize),
            }
        }
        copy_to(out, &mut pos, headers_end);
        match &self.body {
            Some(new_body) => {
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(new_body);
            }
            None if msg.has_empty_line() => copy_to(out, &mut pos, msg_end),
            None => {
                // A datagram that ended without the empty line: what is sent is well-formed.
                out.extend_from_slice(b"\r\n");
                copy_to(out, &mut pos, msg_end);
            }
        }
    }

    /// Serializes into a new vector.
    pub fn to_vec(&self, msg: &Message<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        self.serialize(msg, &mut out);
        out
    }

    fn extra_len(&self) -> usize {
        let inserted: usize = self
            .lumps
            .iter()
            .map(|l| match &l.op {
                Op::Insert(b) | Op::Replace { bytes: b, .. } => b.len(),
                Op::Delete { .. } | Op::RemoveValue { .. } => 0,
            })
            .sum();
        inserted + self.body.as_ref().map_or(0, |b| b.len() + 32)
    }
}

/// Turns value removals into deletions that keep their line well-formed: each run of removed
/// values takes the separator after it (or, at the end of the line, the one before it), and a
/// line whose every value is removed goes whole.
fn widen_value_removals(msg: &Message<'_>, order: &mut SmallVec<[Step<'_>; 16]>) {
    if !order
        .iter()
        .any(|l| matches!(l.op, StepOp::RemoveValue { .. }))
    {
        return;
    }
    let headers = msg.headers();
    let removed = |h: &HeaderValue| {
        order.iter().any(|l| {
            l.at == h.value.start
                && matches!(l.op, StepOp::RemoveValue { end } if end == h.value.end)
        })
    };
    let mut replacement: SmallVec<[Step<'_>; 8]> = SmallVec::new();
    let mut i = 0;
    while let Some(first) = headers.get(i) {
        let line = first.line;
        let count = usize::from(first.values_in_line.max(1));
        let values = headers.get(i..i + count).unwrap_or_default();
        i += count;
        let gone: SmallVec<[bool; 8]> = values.iter().map(&removed).collect();
        if !gone.iter().any(|&g| g) {
            continue;
        }
        let seq = order
            .iter()
            .filter(|l| values.iter().any(|h| h.value.start == l.at))
            .map(|l| l.seq)
            .min()
            .unwrap_or(0);
        if gone.iter().all(|&g| g) {
            replacement.push(Step {
                at: line.start,
                seq,
                op: StepOp::Delete { end: line.end },
            });
            continue;
        }
        // Keep the kept values and the separators between them: delete from the end of the
        // previous kept value (or the first value's start) to the start of the next kept value
        // (or the last value's end).
        let mut k = 0;
        while k < values.len() {
            if !gone.get(k).copied().unwrap_or(false) {
                k += 1;
                continue;
            }
            let run_start = k;
            while gone.get(k).copied().unwrap_or(false) {
                k += 1;
            }
            let prev_kept = run_start.checked_sub(1).and_then(|p| values.get(p));
            let next_kept = values.get(k);
            let (start, end) = match (prev_kept, next_kept) {
                (_, Some(next)) => (
                    values
                        .get(run_start)
                        .map_or(next.value.start, |v| v.value.start),
                    next.value.start,
                ),
                (Some(prev), None) => (
                    prev.value.end,
                    values.last().map_or(prev.value.end, |v| v.value.end),
                ),
                (None, None) => (line.start, line.end),
            };
            replacement.push(Step {
                at: start,
                seq,
                op: StepOp::Delete { end },
            });
        }
    }
    order.retain(|l| !matches!(l.op, StepOp::RemoveValue { .. }));
    order.extend(replacement);
}

/// Net size change of the lumps that apply inside the body (from `body_start` on, past the
/// header section), skipping those that fall inside a range another lump deleted.
fn body_delta(
    order: &[Step<'_>],
    message_start: usize,
    headers_end: usize,
    body_start: usize,
) -> i64 {
    let mut pos = message_start;
    let mut delta: i64 = 0;
    for l in order {
        let at = l.at as usize;
        if at < pos {
            if let Some(end) = l.op.removes_to() {
                pos = pos.max(end as usize);
            }
            continue;
        }
        pos = at;
        let change = match l.op {
            StepOp::Insert(b) => b.len() as i64,
            StepOp::Replace { end, bytes } => {
                let removed = (end as usize).saturating_sub(pos);
                pos = end as usize;
                bytes.len() as i64 - removed as i64
            }
            StepOp::Delete { end } | StepOp::RemoveValue { end } => {
                let removed = (end as usize).saturating_sub(pos);
                pos = end as usize;
                -(removed as i64)
            }
        };
        if at >= body_start && at > headers_end {
            delta += change;
        }
    }
    delta
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: &[u8] = b"INVITE sip:bob@biloxi.com SIP/2.0\r\n\
Via: SIP/2.0/UDP a.example;branch=z9hG4bK1, SIP/2.0/UDP b.example;branch=z9hG4bK2\r\n\
Max-Forwards: 70\r\n\
To: <sip:bob@biloxi.com>\r\n\
From: <sip:alice@atlanta.com>;tag=1\r\n\
Call-ID: c1\r\n\
CSeq: 1 INVITE\r\n\
Content-Length: 3\r\n\
\r\n\
abc";

    fn edited(f: impl FnOnce(&Message<'_>, &mut Edits)) -> Vec<u8> {
        let m = Message::parse(REQ).unwrap();
        let mut e = Edits::new();
        f(&m, &mut e);
        e.to_vec(&m)
    }

    #[test]
    fn no_edits_give_the_same_bytes() {
        assert_eq!(edited(|_, _| {}), REQ);
    }

    #[test]
    fn proxy_edits_in_one_pass() {
        let out = edited(|m, e| {
            e.add_via(m, b"SIP/2.0/UDP proxy.example;branch=z9hG4bKp")
                .unwrap();
            e.add_record_route(m, b"<sip:proxy.example;lr>").unwrap();
            let mf = m.header(HeaderName::MaxForwards).unwrap();
            e.replace_value(mf, b"69").unwrap();
            e.replace_request_uri(m, b"sip:bob@192.0.2.4:5070");
        });
        let m = Message::parse(&out).unwrap();
        assert_eq!(
            m.request_uri().unwrap().as_bytes(),
            b"sip:bob@192.0.2.4:5070"
        );
        assert_eq!(m.top_via().unwrap().branch(), Some(&b"z9hG4bKp"[..]));
        assert_eq!(m.vias().unwrap().len(), 3);
        assert_eq!(m.max_forwards().unwrap().unwrap(), 69);
        let rr: Vec<_> = m
            .record_routes()
            .unwrap()
            .iter()
            .map(|r| r.uri.as_bytes().to_vec())
            .collect();
        assert_eq!(rr, vec![b"sip:proxy.example;lr".to_vec()]);
        assert_eq!(m.body(), b"abc");
        m.validate().unwrap();
    }

    #[test]
    fn removing_first_and_last_value_of_a_line() {
        let out = edited(|m, e| e.remove_top_via(m));
        let m = Message::parse(&out).unwrap();
        assert_eq!(
            m.value(m.header(HeaderName::Via).unwrap()),
            b"SIP/2.0/UDP b.example;branch=z9hG4bK2"
        );
        let out = edited(|m, e| {
            let second = m.headers_named(HeaderName::Via).nth(1).unwrap();
            e.remove_value(second);
        });
        let m = Message::parse(&out).unwrap();
        assert_eq!(m.vias().unwrap().len(), 1);
        assert!(out.starts_with(
            b"INVITE sip:bob@biloxi.com SIP/2.0\r\nVia: SIP/2.0/UDP a.example;branch=z9hG4bK1\r\n"
        ));
    }

    #[test]
    fn body_replacement_fixes_content_length() {
        let out = edited(|_, e| e.replace_body(b"hello world"));
        let m = Message::parse(&out).unwrap();
        assert_eq!(m.body(), b"hello world");
        assert_eq!(m.content_length(), Some(11));
        let out = edited(|_, e| e.remove_body());
        let m = Message::parse(&out).unwrap();
        assert_eq!(m.body(), b"");
        assert_eq!(m.content_length(), Some(0));
    }

    #[test]
    fn body_replacement_adds_content_length_when_missing() {
        let src = b"MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n\r\nold";
        let m = Message::parse(src).unwrap();
        let mut e = Edits::new();
        e.replace_body(b"new!");
        let out = e.to_vec(&m);
        assert_eq!(
            out,
            b"MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nContent-Length: 4\r\n\r\nnew!"
        );
    }

    #[test]
    fn insert_remove_append_headers() {
        let out = edited(|m, e| {
            let call_id = m.header(HeaderName::CallId).unwrap();
            e.insert_header_before(call_id, b"X-Before", b"1").unwrap();
            e.insert_header_after(call_id, b"X-After", b"2").unwrap();
            e.append_header(m, b"X-Last", b"3").unwrap();
            e.remove_header(m.header(HeaderName::MaxForwards).unwrap());
        });
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("X-Before: 1\r\nCall-ID: c1\r\nX-After: 2\r\n"));
        assert!(text.contains("Content-Length: 3\r\nX-Last: 3\r\n\r\nabc"));
        assert!(!text.contains("Max-Forwards"));
    }

    #[test]
    fn trailing_datagram_octets_are_not_forwarded() {
        let src = b"OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\n\r\nJUNK";
        let m = Message::parse(src).unwrap();
        assert_eq!(
            Edits::new().to_vec(&m),
            b"OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\n\r\n"
        );
    }

    #[test]
    fn missing_empty_line_is_added() {
        let src = b"OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\n";
        let m = Message::parse(src).unwrap();
        assert_eq!(
            Edits::new().to_vec(&m),
            b"OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\n\r\n"
        );
    }

    const LISTS: &[u8] = b"INVITE sip:b@h SIP/2.0\r\n\
Via: SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2, SIP/2.0/UDP c;branch=z9hG4bK3\r\n\
Route: <sip:p1;lr>, <sip:p1;lr;r2=on>\r\n\
Max-Forwards: 70\r\n\
To: <sip:b@h>\r\n\
From: <sip:a@h>;tag=1\r\n\
Call-ID: c\r\n\
CSeq: 1 INVITE\r\n\
Content-Length: 24\r\n\
\r\n\
c=IN IP4 10.0.0.1\r\nm=x\r\n";

    fn edit_lists(f: impl FnOnce(&Message<'_>, &mut Edits)) -> (Vec<u8>, Vec<Vec<u8>>) {
        let m = Message::parse(LISTS).unwrap();
        let mut e = Edits::new();
        f(&m, &mut e);
        let out = e.to_vec(&m);
        let vias = {
            let m2 = Message::parse(&out).unwrap();
            m2.validate().unwrap();
            m2.headers_named(HeaderName::Via)
                .map(|h| m2.value(h).to_vec())
                .collect()
        };
        (out, vias)
    }

    #[test]
    fn removing_several_values_of_one_line_keeps_it_well_formed() {
        let (_, vias) = edit_lists(|m, e| {
            let v: Vec<_> = m.headers_named(HeaderName::Via).copied().collect();
            e.remove_value(&v[1]);
            e.remove_value(&v[2]);
        });
        assert_eq!(vias, vec![b"SIP/2.0/UDP a;branch=z9hG4bK1".to_vec()]);
        let (_, vias) = edit_lists(|m, e| {
            let v: Vec<_> = m.headers_named(HeaderName::Via).copied().collect();
            e.remove_value(&v[0]);
            e.remove_value(&v[2]);
        });
        assert_eq!(vias, vec![b"SIP/2.0/UDP b;branch=z9hG4bK2".to_vec()]);
        let (_, vias) = edit_lists(|m, e| {
            let v: Vec<_> = m.headers_named(HeaderName::Via).copied().collect();
            e.remove_value(&v[0]);
            e.remove_value(&v[1]);
        });
        assert_eq!(vias, vec![b"SIP/2.0/UDP c;branch=z9hG4bK3".to_vec()]);
    }

    #[test]
    fn removing_every_value_of_a_line_removes_the_line() {
        let (out, _) = edit_lists(|m, e| {
            for r in m.headers_named(HeaderName::Route) {
                e.remove_value(r);
            }
        });
        assert!(!String::from_utf8_lossy(&out).contains("Route"));
    }

    #[test]
    fn replacing_a_value_of_a_removed_header_leaves_nothing_behind() {
        let (out, _) = edit_lists(|m, e| {
            let mf = m.header(HeaderName::MaxForwards).unwrap();
            e.replace_value(mf, b"69").unwrap();
            e.remove_header(mf);
        });
        let text = String::from_utf8_lossy(&out);
        assert!(!text.contains("69") && !text.contains("Max-Forwards"));
        assert!(text.contains("\r\nTo: <sip:b@h>\r\n"));
    }

    #[test]
    fn the_later_replacement_of_a_value_wins() {
        let m = Message::parse(LISTS).unwrap();
        let mut e = Edits::new();
        let mf = m.header(HeaderName::MaxForwards).unwrap();
        e.replace_value(mf, b"69").unwrap();
        e.replace_value(mf, b"10").unwrap();
        let out = e.to_vec(&m);
        let m2 = Message::parse(&out).unwrap();
        assert_eq!(m2.max_forwards().unwrap().unwrap(), 10);
    }

    #[test]
    fn a_removed_content_length_comes_back_with_a_new_body() {
        let m = Message::parse(LISTS).unwrap();
        let mut e = Edits::new();
        e.remove_header(m.header(HeaderName::ContentLength).unwrap());
        e.replace_body(b"hello");
        let out = e.to_vec(&m);
        let m2 = Message::parse(&out).unwrap();
        assert_eq!(m2.content_length(), Some(5));
        assert_eq!(m2.body(), b"hello");
        assert_eq!(m2.headers_named(HeaderName::ContentLength).count(), 1);
    }

    #[test]
    fn edits_inside_the_body_adjust_content_length() {
        let m = Message::parse(LISTS).unwrap();
        let at = m.body_span().start as usize + 9;
        let mut e = Edits::new();
        e.replace(Span::new(at, at + 8), b"203.0.113.200");
        let out = e.to_vec(&m);
        let m2 = Message::parse(&out).unwrap();
        assert_eq!(m2.body(), b"c=IN IP4 203.0.113.200\r\nm=x\r\n");
        assert_eq!(m2.content_length(), Some(29));
    }

    #[test]
    fn nothing_is_written_past_the_message_end() {
        let src = b"OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\n\r\nJUNKJUNK";
        let m = Message::parse(src).unwrap();
        let mut e = Edits::new();
        e.insert_raw(src.len(), b"");
        e.insert_raw(src.len() + 10, b"");
        assert_eq!(e.to_vec(&m), b"OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\n\r\n");
    }

    #[test]
    fn route_goes_on_top_of_an_existing_route_set_or_after_the_headers() {
        let (out, _) = edit_lists(|m, e| e.add_route(m, b"<sip:outbound;lr>").unwrap());
        let m = Message::parse(&out).unwrap();
        let routes: Vec<&[u8]> = m
            .routes()
            .unwrap()
            .iter()
            .map(|r| r.uri.as_bytes())
            .collect();
        assert_eq!(
            routes,
            vec![&b"sip:outbound;lr"[..], b"sip:p1;lr", b"sip:p1;lr;r2=on"]
        );

        let m = Message::parse(REQ).unwrap();
        let mut e = Edits::new();
        e.add_route(&m, b"<sip:outbound;lr>").unwrap();
        let out = e.to_vec(&m);
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("Content-Length: 3\r\nRoute: <sip:outbound;lr>\r\n\r\nabc"));
    }

    #[test]
    fn every_line_of_a_header_can_be_removed_and_headers_prepended() {
        let src =
            b"OPTIONS sip:a@b SIP/2.0\r\nX-A: 1\r\nVia: SIP/2.0/UDP a\r\nX-A: 2, 3\r\nl: 0\r\n\r\n";
        let m = Message::parse(src).unwrap();
        let mut e = Edits::new();
        e.remove_headers_named(&m, HeaderName::Via);
        e.prepend_header(&m, b"Max-Forwards", b"70").unwrap();
        let out = e.to_vec(&m);
        assert_eq!(
            out,
            b"OPTIONS sip:a@b SIP/2.0\r\nMax-Forwards: 70\r\nX-A: 1\r\nX-A: 2, 3\r\nl: 0\r\n\r\n"
        );
        let m = Message::parse(src).unwrap();
        let mut e = Edits::new();
        e.remove_headers_named(&m, HeaderName::Other);
        let text = String::from_utf8(e.to_vec(&m)).unwrap();
        assert!(!text.contains("X-A"));
    }

    #[test]
    fn header_injection_is_refused() {
        let m = Message::parse(LISTS).unwrap();
        let mut e = Edits::new();
        assert!(e
            .append_header(&m, b"X-A", b"1\r\nVia: SIP/2.0/UDP evil")
            .is_err());
        assert!(e.append_header(&m, b"X A", b"1").is_err());
        let mf = m.header(HeaderName::MaxForwards).unwrap();
        assert!(e.replace_value(mf, b"1\nX: y").is_err());
        assert!(e.is_empty());
    }
}
