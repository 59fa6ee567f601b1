//! Edits recorded as lumps and applied by the serializer in one pass.
//!
//! An [`Edits`] belongs to one parsed [`Message`]: every lump is an insertion at, or a
//! deletion of, a byte range of that message's buffer. Nothing is applied until
//! [`Edits::serialize`], which walks the message once, copying the untouched octets as they
//! were and emitting the lumps in offset order into a caller-owned, reusable buffer. This is
//! Kamailio's lump model: reads of the message during routing see the original, the edits show
//! only in what is sent.
//!
//! When the body is replaced or removed the serializer writes the matching Content-Length
//! (rewriting the header's value, or adding the header when there was none).

use smallvec::SmallVec;

use crate::header::{HeaderName, HeaderValue};
use crate::message::{Message, Span};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Insert(Vec<u8>),
    Delete { end: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Lump {
    at: u32,
    /// Order of recording: ties at one offset keep it.
    seq: u32,
    op: Op,
}

/// Changes to one message, applied when serializing.
#[derive(Debug, Clone, Default)]
pub struct Edits {
    lumps: SmallVec<[Lump; 8]>,
    body: Option<Vec<u8>>,
}

fn header_line(name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut line = Vec::with_capacity(name.len() + value.len() + 4);
    line.extend_from_slice(name);
    line.extend_from_slice(b": ");
    line.extend_from_slice(value);
    line.extend_from_slice(b"\r\n");
    line
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
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.lumps.is_empty() && self.body.is_none()
    }

    fn push(&mut self, at: usize, op: Op) {
        let seq = u32::try_from(self.lumps.len()).unwrap_or(u32::MAX);
        self.lumps.push(Lump {
            at: u32::try_from(at).unwrap_or(u32::MAX),
            seq,
            op,
        });
    }

    /// Inserts raw octets at an offset of the message buffer.
    pub fn insert_raw(&mut self, at: usize, bytes: &[u8]) {
        self.push(at, Op::Insert(bytes.to_vec()));
    }

    /// Deletes a span of the message buffer.
    pub fn delete(&mut self, span: Span) {
        if !span.is_empty() {
            self.push(span.start as usize, Op::Delete { end: span.end });
        }
    }

    /// Replaces a span of the message buffer with `bytes`.
    pub fn replace(&mut self, span: Span, bytes: &[u8]) {
        self.delete(span);
        self.insert_raw(span.start as usize, bytes);
    }

    /// Inserts the header line `name: value` before the line holding `before`.
    pub fn insert_header_before(&mut self, before: &HeaderValue, name: &[u8], value: &[u8]) {
        self.push(
            before.line.start as usize,
            Op::Insert(header_line(name, value)),
        );
    }

    /// Inserts the header line `name: value` after the line holding `after`.
    pub fn insert_header_after(&mut self, after: &HeaderValue, name: &[u8], value: &[u8]) {
        self.push(
            after.line.end as usize,
            Op::Insert(header_line(name, value)),
        );
    }

    /// Adds the header line `name: value` as the first header.
    pub fn prepend_header(&mut self, msg: &Message<'_>, name: &[u8], value: &[u8]) {
        let at = msg
            .headers()
            .first()
            .map_or(msg.headers_end(), |h| h.line.start as usize);
        self.push(at, Op::Insert(header_line(name, value)));
    }

    /// Adds the header line `name: value` after the last header (Kamailio's `append_hf`).
    pub fn append_header(&mut self, msg: &Message<'_>, name: &[u8], value: &[u8]) {
        self.push(msg.headers_end(), Op::Insert(header_line(name, value)));
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

    /// Removes one value of a comma-separated header line, with its separating comma; the
    /// whole line when it is the only value.
    pub fn remove_value(&mut self, msg: &Message<'_>, h: &HeaderValue) {
        if h.values_in_line <= 1 {
            self.delete(h.line);
            return;
        }
        let same_line: SmallVec<[&HeaderValue; 8]> =
            msg.headers().iter().filter(|o| o.line == h.line).collect();
        let idx = usize::from(h.index_in_line);
        if let Some(next) = same_line.get(idx + 1) {
            // "a, b" removing a: from a's start to b's start.
            self.delete(Span {
                start: h.value.start,
                end: next.value.start,
            });
        } else if let Some(prev) = idx.checked_sub(1).and_then(|i| same_line.get(i)) {
            // "a, b" removing b: from a's end to b's end.
            self.delete(Span {
                start: prev.value.end,
                end: h.value.end,
            });
        } else {
            self.delete(h.line);
        }
    }

    /// Replaces one header value (e.g. the decremented Max-Forwards).
    pub fn replace_value(&mut self, h: &HeaderValue, value: &[u8]) {
        self.replace(h.value, value);
    }

    /// Replaces the Request-URI.
    pub fn replace_request_uri(&mut self, msg: &Message<'_>, uri: &[u8]) {
        if msg.is_request() {
            self.replace(msg.request_uri_span(), uri);
        }
    }

    /// Adds a Via value on top (a new `Via:` line before the first one).
    pub fn add_via(&mut self, msg: &Message<'_>, value: &[u8]) {
        match msg.header(HeaderName::Via) {
            Some(first) => self.insert_header_before(first, b"Via", value),
            None => self.prepend_header(msg, b"Via", value),
        }
    }

    /// Removes the topmost Via value (a proxy relaying a response, RFC 3261 §16.7 step 3).
    pub fn remove_top_via(&mut self, msg: &Message<'_>) {
        if let Some(first) = msg.header(HeaderName::Via) {
            self.remove_value(msg, first);
        }
    }

    /// Adds a Record-Route value on top (RFC 3261 §16.6 step 4): before the first
    /// Record-Route line, or as the first header.
    pub fn add_record_route(&mut self, msg: &Message<'_>, value: &[u8]) {
        match msg.header(HeaderName::RecordRoute) {
            Some(first) => self.insert_header_before(first, b"Record-Route", value),
            None => self.prepend_header(msg, b"Record-Route", value),
        }
    }

    /// Adds a Route value on top (a pre-loaded route, RFC 3261 §16.6 step 7): before the first
    /// Route line, or after the last header.
    pub fn add_route(&mut self, msg: &Message<'_>, value: &[u8]) {
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
        let headers_end = msg.headers_end();
        let body_start = msg.body_span().start as usize;
        out.reserve(span.len() + self.extra_len());

        // Content-Length follows a body edit: rewrite its value, or add the header.
        let mut synthetic: SmallVec<[Lump; 2]> = SmallVec::new();
        if let Some(body) = &self.body {
            let len = body.len().to_string().into_bytes();
            match msg.header(HeaderName::ContentLength) {
                Some(h) => {
                    synthetic.push(Lump {
                        at: h.value.start,
                        seq: u32::MAX - 1,
                        op: Op::Delete { end: h.value.end },
                    });
                    synthetic.push(Lump {
                        at: h.value.start,
                        seq: u32::MAX,
                        op: Op::Insert(len),
                    });
                }
                None => synthetic.push(Lump {
                    at: u32::try_from(headers_end).unwrap_or(u32::MAX),
                    seq: u32::MAX,
                    op: Op::Insert(header_line(b"Content-Length", &len)),
                }),
            }
        }
        let mut order: SmallVec<[&Lump; 16]> = self
            .lumps
            .iter()
            .chain(synthetic.iter())
            // Lumps inside a replaced body are moot.
            .filter(|l| {
                self.body.is_none() || (l.at as usize) < body_start || body_start == headers_end
            })
            .collect();
        order.sort_by_key(|l| (l.at, l.seq));

        let mut pos = span.start as usize;
        let copy_to = |out: &mut Vec<u8>, pos: &mut usize, to: usize| {
            if to > *pos {
                out.extend_from_slice(buf.get(*pos..to).unwrap_or_default());
                *pos = to;
            }
        };
        for lump in order {
            copy_to(out, &mut pos, lump.at as usize);
            match &lump.op {
                Op::Insert(bytes) => out.extend_from_slice(bytes),
                Op::Delete { end } => pos = pos.max(*end as usize),
            }
        }
        copy_to(out, &mut pos, headers_end);
        match &self.body {
            Some(body) => {
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(body);
            }
            None if msg.has_empty_line() => copy_to(out, &mut pos, span.end as usize),
            None => {
                // A datagram that ended without the empty line: what is sent is well-formed.
                out.extend_from_slice(b"\r\n");
                copy_to(out, &mut pos, span.end as usize);
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
                Op::Insert(b) => b.len(),
                Op::Delete { .. } => 0,
            })
            .sum();
        inserted + self.body.as_ref().map_or(0, |b| b.len() + 32)
    }
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
            e.add_via(m, b"SIP/2.0/UDP proxy.example;branch=z9hG4bKp");
            e.add_record_route(m, b"<sip:proxy.example;lr>");
            let mf = m.header(HeaderName::MaxForwards).unwrap();
            e.replace_value(mf, b"69");
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
            e.remove_value(m, second);
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
            e.insert_header_before(call_id, b"X-Before", b"1");
            e.insert_header_after(call_id, b"X-After", b"2");
            e.append_header(m, b"X-Last", b"3");
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
}
