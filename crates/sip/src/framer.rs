//! Cutting SIP messages out of a byte stream (TCP, TLS): RFC 3261 §18.3, RFC 5626 §3.5.1.
//!
//! On a stream there are no datagram boundaries: a message ends after its header section
//! (terminated by an empty line, `CRLF CRLF`) and exactly `Content-Length` body octets, and
//! Content-Length is therefore mandatory (RFC 3261 §18.3, §20.14). Between messages the peer
//! may send CRLF keep-alives (RFC 5626 §3.5.1, §4.4.1): a double CRLF is a *ping*, which the
//! receiver answers with a single CRLF, the *pong*.
//!
//! [`StreamFramer`] is sans-IO: the caller [`push`](StreamFramer::push)es the octets it read
//! and calls [`next_frame`](StreamFramer::next_frame) until it returns `Ok(None)`. Each
//! [`Frame::Message`] is split off the internal buffer without copying.
//!
//! The framer looks at nothing but what framing needs: where the header section ends and the
//! Content-Length header. Whether the message is otherwise well-formed is for the message
//! parser to decide.
//!
//! # Errors are final
//!
//! Once the framing of a stream is lost (a bad, duplicated or missing Content-Length, a header
//! section or body over the limits) nobody can tell where the next message starts, so the
//! stream cannot be resynchronised (RFC 4475 §3.1.2.3, §3.3.9). After `next_frame` returns an
//! error, the caller should answer if it can (see [`ParseError::status`]) and close the
//! connection. The framer stays failed: later calls to `next_frame` return the same error and
//! [`push`](StreamFramer::push) discards what it is given.

use bytes::{Buf, Bytes, BytesMut};
use memchr::memmem;

use crate::error::{ParseError, ParseErrorKind, Result};
use crate::scan;

/// Size limits and leniency of a [`StreamFramer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramerLimits {
    /// Largest header section accepted, in octets, counting the start line and the empty line
    /// that ends the section (default 16384). A larger one fails with
    /// [`ParseErrorKind::HeadersTooLarge`] (reply 513).
    pub max_header_bytes: usize,
    /// Largest body accepted, in octets (default 65536). A larger Content-Length fails with
    /// [`ParseErrorKind::BodyTooLarge`] (reply 413) as soon as the header is read.
    pub max_body_bytes: usize,
    /// When true, a message without Content-Length is taken to have an empty body instead of
    /// failing with [`ParseErrorKind::MissingContentLength`] (default false). This is
    /// Kamailio's `tcp_accept_no_cl`, for HTTP requests arriving on SIP ports.
    pub accept_no_content_length: bool,
}

impl FramerLimits {
    /// Default [`max_header_bytes`](FramerLimits::max_header_bytes).
    pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
    /// Default [`max_body_bytes`](FramerLimits::max_body_bytes).
    pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
}

impl Default for FramerLimits {
    fn default() -> Self {
        FramerLimits {
            max_header_bytes: Self::DEFAULT_MAX_HEADER_BYTES,
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            accept_no_content_length: false,
        }
    }
}

/// One unit of stream traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One whole message: the start line, the header section including the empty line that
    /// ends it, and exactly Content-Length body octets.
    Message(Bytes),
    /// An RFC 5626 keep-alive ping (`CRLF CRLF` between messages): answer it with a single
    /// CRLF (a pong), RFC 5626 §4.4.1.
    Ping,
    /// A single CRLF between messages that is not part of a ping: the peer's pong to a ping
    /// of ours (RFC 5626 §4.4.1), or a stray CRLF before a start line (RFC 3261 §7.5), which
    /// may be ignored.
    Pong,
}

/// Where the framer is in the stream.
#[derive(Debug)]
enum State {
    /// Between messages: keep-alives and white space are expected.
    Idle,
    /// Inside a header section; the first `scanned` octets of the buffer hold no `CRLF CRLF`.
    Headers { scanned: usize },
    /// The header section is read; the message is the first `total` octets of the buffer.
    Body { total: usize },
    /// Framing is lost; this error is returned for ever.
    Failed(ParseError),
}

/// What the octets at the start of the buffer are, between messages.
enum Idle {
    /// A keep-alive.
    Frame(Frame),
    /// Not enough octets to tell.
    Wait,
    /// A message starts here.
    Message,
}

/// Cuts SIP messages and CRLF keep-alives out of a TCP/TLS byte stream.
///
/// # Keep-alives and split delivery
///
/// Between messages, `CRLF CRLF` is a [`Frame::Ping`] and a single CRLF is a [`Frame::Pong`].
/// A ping may arrive in two reads (`CRLF`, then `CRLF`), so when the buffer holds exactly one
/// CRLF (or `CRLF CR`) and nothing else, `next_frame` waits (`Ok(None)`) instead of reporting
/// a pong: it is reported as soon as the next octet shows it is not the first half of a ping.
/// A caller that has sent a ping and is waiting for the pong can settle the question early
/// with [`take_lone_crlf`](StreamFramer::take_lone_crlf).
///
/// Other white space between messages (SP, HT, a CR or LF that is not part of a CRLF) is
/// skipped silently (RFC 3261 §7.5: CRLFs before a start line should be ignored).
///
/// # Cost
///
/// Each pushed octet is examined a bounded number of times: the search for the end of the
/// header section resumes where the previous one stopped, the Content-Length is looked up
/// once per message, and messages are split off without copying.
///
/// # Errors
///
/// See the [module documentation](self): after an error the connection must be closed.
/// Error offsets count from the first octet of the message being framed.
#[derive(Debug)]
pub struct StreamFramer {
    buf: BytesMut,
    limits: FramerLimits,
    state: State,
}

impl Default for StreamFramer {
    fn default() -> Self {
        StreamFramer::new(FramerLimits::default())
    }
}

impl StreamFramer {
    /// An empty framer with these limits.
    pub fn new(limits: FramerLimits) -> Self {
        StreamFramer {
            buf: BytesMut::new(),
            limits,
            state: State::Idle,
        }
    }

    /// Appends octets read from the stream. Once the framer has failed, they are discarded.
    pub fn push(&mut self, data: &[u8]) {
        if !matches!(self.state, State::Failed(_)) {
            self.buf.extend_from_slice(data);
        }
    }

    /// The next frame, `Ok(None)` when more octets are needed. Call it in a loop after each
    /// [`push`](StreamFramer::push) until it returns `Ok(None)`.
    ///
    /// # Errors
    ///
    /// [`ParseErrorKind::MissingContentLength`], [`ParseErrorKind::InvalidContentLength`],
    /// [`ParseErrorKind::MultipleContentLength`], [`ParseErrorKind::HeadersTooLarge`] or
    /// [`ParseErrorKind::BodyTooLarge`]; the offset counts from the start of the message.
    /// Every error is final: close the connection.
    pub fn next_frame(&mut self) -> Result<Option<Frame>> {
        loop {
            match self.state {
                State::Failed(ref e) => return Err(e.clone()),
                State::Idle => match self.idle() {
                    Idle::Frame(f) => return Ok(Some(f)),
                    Idle::Wait => return Ok(None),
                    Idle::Message => self.state = State::Headers { scanned: 0 },
                },
                State::Headers { scanned } => match self.headers(scanned) {
                    Ok(Some(total)) => self.state = State::Body { total },
                    Ok(None) => return Ok(None),
                    Err(e) => {
                        self.state = State::Failed(e.clone());
                        self.buf = BytesMut::new();
                        return Err(e);
                    }
                },
                State::Body { total } => {
                    if self.buf.len() < total {
                        return Ok(None);
                    }
                    let message = self.buf.split_to(total).freeze();
                    self.state = State::Idle;
                    return Ok(Some(Frame::Message(message)));
                }
            }
        }
    }

    /// When the framer is between messages and holds exactly one CRLF, consumes it and
    /// returns [`Frame::Pong`]; otherwise does nothing and returns `None`.
    ///
    /// `next_frame` holds a lone CRLF back because it may be the first half of a ping. A
    /// caller that has sent a ping of its own and sees nothing else arrive may decide it was
    /// the pong (RFC 5626 §4.4.1) by calling this.
    pub fn take_lone_crlf(&mut self) -> Option<Frame> {
        if matches!(self.state, State::Idle) && self.buf.as_ref() == b"\r\n" {
            self.buf.advance(2);
            Some(Frame::Pong)
        } else {
            None
        }
    }

    /// Octets received and not yet returned as frames or skipped.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The limits this framer applies.
    pub fn limits(&self) -> FramerLimits {
        self.limits
    }

    /// True when part of a message has been received but not the whole of it (a stream that
    /// ends now ends in the middle of a message).
    pub fn is_mid_message(&self) -> bool {
        matches!(self.state, State::Headers { .. } | State::Body { .. })
    }

    /// True once framing has failed (the connection should be closed).
    pub fn is_failed(&self) -> bool {
        matches!(self.state, State::Failed(_))
    }

    /// Between messages: consumes white space, reports keep-alives, or finds a start line.
    fn idle(&mut self) -> Idle {
        loop {
            let b = self.buf.as_ref();
            match b {
                [] => return Idle::Wait,
                [b'\r', b'\n', b'\r', b'\n', ..] => {
                    self.buf.advance(4);
                    return Idle::Frame(Frame::Ping);
                }
                // Perhaps the first part of a ping split across reads.
                [b'\r'] | [b'\r', b'\n'] | [b'\r', b'\n', b'\r'] => return Idle::Wait,
                [b'\r', b'\n', ..] => {
                    self.buf.advance(2);
                    return Idle::Frame(Frame::Pong);
                }
                _ => {}
            }
            // Skip white space that is not a CRLF: SP, HT, bare LF, a CR not followed by LF.
            let mut skip = 0;
            let mut rest = b;
            loop {
                match rest {
                    [b' ' | b'\t' | b'\n', tail @ ..] | [b'\r', tail @ ..]
                        if !rest.starts_with(b"\r\n") && rest != b"\r" =>
                    {
                        skip += 1;
                        rest = tail;
                    }
                    _ => break,
                }
            }
            if skip == 0 {
                return Idle::Message;
            }
            self.buf.advance(skip);
        }
    }

    /// Inside a header section: looks for its end and, once found, for the Content-Length.
    /// Returns the length of the whole message when known.
    fn headers(&mut self, scanned: usize) -> Result<Option<usize>> {
        let limits = self.limits;
        let window_end = self.buf.len().min(limits.max_header_bytes);
        // A CRLF CRLF may straddle the previous scan position.
        let from = scanned.saturating_sub(3).min(window_end);
        let window = self.buf.get(from..window_end).unwrap_or_default();
        let Some(found) = memmem::find(window, b"\r\n\r\n") else {
            if self.buf.len() >= limits.max_header_bytes {
                // The end of the header section is not within the limit.
                return Err(ParseError::new(
                    ParseErrorKind::HeadersTooLarge {
                        limit: limits.max_header_bytes,
                    },
                    limits.max_header_bytes,
                ));
            }
            self.state = State::Headers {
                scanned: window_end,
            };
            return Ok(None);
        };
        // `empty_line` is where the CRLF of the empty line starts.
        let empty_line = from + found + 2;
        let header_len = empty_line + 2;
        let head = self.buf.get(..empty_line).unwrap_or_default();
        let body_len = match content_length(head)? {
            Some((len, offset)) => {
                if len > limits.max_body_bytes {
                    return Err(ParseError::new(
                        ParseErrorKind::BodyTooLarge {
                            limit: limits.max_body_bytes,
                        },
                        offset,
                    ));
                }
                len
            }
            None if limits.accept_no_content_length => 0,
            None => {
                return Err(ParseError::new(
                    ParseErrorKind::MissingContentLength,
                    empty_line,
                ))
            }
        };
        header_len.checked_add(body_len).map(Some).ok_or_else(|| {
            ParseError::new(
                ParseErrorKind::BodyTooLarge {
                    limit: limits.max_body_bytes,
                },
                empty_line,
            )
        })
    }
}

/// The Content-Length of a header section (`head`: the start line and the header lines, each
/// with its CRLF, without the empty line), with the offset of its value; `None` when there is
/// no Content-Length header (RFC 3261 §20.14; compact form `l`, §7.3.3).
fn content_length(head: &[u8]) -> Result<Option<(usize, usize)>> {
    let mut found: Option<(usize, &[u8])> = None;
    // The first logical line is the start line, which is not a header.
    for (start, line) in logical_lines(head).skip(1) {
        let Some(colon) = memchr::memchr(b':', line) else {
            // Not a header line; the message parser will reject it.
            continue;
        };
        let name = scan::trim_lws(line.get(..colon).unwrap_or_default());
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        if found.is_some() {
            // RFC 4475 §3.3.9: framing is ambiguous, even when the values agree.
            return Err(ParseError::new(
                ParseErrorKind::MultipleContentLength,
                start,
            ));
        }
        let value_start = scan::skip_lws(line, colon + 1);
        found = Some((
            start + value_start,
            line.get(colon + 1..).unwrap_or_default(),
        ));
    }
    let Some((offset, value)) = found else {
        return Ok(None);
    };
    // Content-Length = 1*DIGIT, with LWS (folds included) around it.
    let invalid = || ParseError::new(ParseErrorKind::InvalidContentLength, offset);
    let len = scan::parse_decimal(scan::trim_lws(value), u64::MAX).map_err(|_| invalid())?;
    let len = usize::try_from(len).map_err(|_| invalid())?;
    Ok(Some((len, offset)))
}

/// The logical lines of `head` with their offsets: lines end at CRLF, and a line that starts
/// with SP or HT continues the one before it (a fold, RFC 3261 §7.3.1). The returned lines
/// keep the CRLFs of their folds but not their final CRLF.
fn logical_lines(head: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let finder = memmem::Finder::new(b"\r\n");
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= head.len() {
            return None;
        }
        let start = pos;
        let mut end = pos;
        loop {
            match finder.find(head.get(end..).unwrap_or_default()) {
                None => {
                    end = head.len();
                    pos = head.len();
                    break;
                }
                Some(i) => {
                    end += i;
                    if matches!(head.get(end + 2), Some(b' ' | b'\t')) {
                        end += 2;
                        continue;
                    }
                    pos = end + 2;
                    break;
                }
            }
        }
        Some((start, head.get(start..end).unwrap_or_default()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const INVITE: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\n\
        Via: SIP/2.0/TCP host.example.com;branch=z9hG4bK776asdhds\r\n\
        To: <sip:bob@example.com>\r\n\
        From: <sip:alice@example.com>;tag=1928301774\r\n\
        Call-ID: a84b4c76e66710\r\n\
        CSeq: 314159 INVITE\r\n\
        Content-Length: 4\r\n\
        \r\n\
        v=0\n";

    const OPTIONS: &[u8] = b"OPTIONS sip:bob@example.com SIP/2.0\r\n\
        Via: SIP/2.0/TCP host.example.com;branch=z9hG4bK776asdhdt\r\n\
        CSeq: 2 OPTIONS\r\n\
        l: 0\r\n\
        \r\n";

    fn message(m: &[u8]) -> Frame {
        Frame::Message(Bytes::copy_from_slice(m))
    }

    /// Every frame until `Ok(None)`, or the first error.
    fn drain(f: &mut StreamFramer) -> std::result::Result<Vec<Frame>, ParseError> {
        let mut out = Vec::new();
        while let Some(frame) = f.next_frame()? {
            out.push(frame);
        }
        Ok(out)
    }

    fn frames_of(
        input: &[u8],
        limits: FramerLimits,
    ) -> std::result::Result<Vec<Frame>, ParseError> {
        let mut f = StreamFramer::new(limits);
        f.push(input);
        drain(&mut f)
    }

    fn error_of(input: &[u8], limits: FramerLimits) -> ParseError {
        frames_of(input, limits).unwrap_err()
    }

    fn with_headers(headers: &str, body: &str) -> Vec<u8> {
        format!("MESSAGE sip:a@b SIP/2.0\r\nCall-ID: x\r\n{headers}\r\n{body}").into_bytes()
    }

    #[test]
    fn two_messages_in_one_push_come_out_in_order() {
        let mut input = INVITE.to_vec();
        input.extend_from_slice(OPTIONS);
        let mut f = StreamFramer::default();
        f.push(&input);
        assert_eq!(
            drain(&mut f).unwrap(),
            vec![message(INVITE), message(OPTIONS)]
        );
        assert_eq!(f.buffered(), 0);
        assert!(!f.is_mid_message());
    }

    #[test]
    fn message_delivered_byte_by_byte_comes_out_once_complete() {
        let mut f = StreamFramer::default();
        let mut frames = Vec::new();
        for (i, b) in INVITE.iter().enumerate() {
            f.push(std::slice::from_ref(b));
            let got = drain(&mut f).unwrap();
            if i + 1 < INVITE.len() {
                assert!(got.is_empty(), "frame before the last octet at {i}");
                assert!(f.is_mid_message());
            }
            frames.extend(got);
        }
        assert_eq!(frames, vec![message(INVITE)]);
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn double_crlf_is_a_ping_and_single_crlf_before_a_message_is_a_pong() {
        let mut input = b"\r\n\r\n".to_vec();
        input.extend_from_slice(b"\r\n");
        input.extend_from_slice(OPTIONS);
        input.extend_from_slice(b"\r\n\r\n");
        assert_eq!(
            frames_of(&input, FramerLimits::default()).unwrap(),
            vec![Frame::Ping, Frame::Pong, message(OPTIONS), Frame::Ping]
        );
    }

    #[test]
    fn ping_split_across_pushes_is_still_one_ping() {
        let mut f = StreamFramer::default();
        f.push(b"\r\n");
        assert_eq!(f.next_frame().unwrap(), None, "a lone CRLF waits");
        f.push(b"\r");
        assert_eq!(f.next_frame().unwrap(), None, "CRLF CR waits");
        f.push(b"\n");
        assert_eq!(f.next_frame().unwrap(), Some(Frame::Ping));
        assert_eq!(f.next_frame().unwrap(), None);
        f.push(b"\r");
        assert_eq!(f.next_frame().unwrap(), None);
        f.push(b"\n");
        assert_eq!(f.next_frame().unwrap(), None);
        f.push(b"\r\n");
        assert_eq!(f.next_frame().unwrap(), Some(Frame::Ping));
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn lone_crlf_is_a_pong_once_the_next_octet_shows_it() {
        let mut f = StreamFramer::default();
        f.push(b"\r\n");
        assert_eq!(f.next_frame().unwrap(), None);
        f.push(b"O");
        assert_eq!(f.next_frame().unwrap(), Some(Frame::Pong));
        assert_eq!(f.next_frame().unwrap(), None);
        f.push(OPTIONS.get(1..).unwrap());
        assert_eq!(drain(&mut f).unwrap(), vec![message(OPTIONS)]);
    }

    #[test]
    fn take_lone_crlf_settles_a_held_back_pong() {
        let mut f = StreamFramer::default();
        f.push(b"\r\n");
        assert_eq!(f.next_frame().unwrap(), None);
        assert_eq!(f.take_lone_crlf(), Some(Frame::Pong));
        assert_eq!(f.buffered(), 0);
        assert_eq!(f.take_lone_crlf(), None);
        f.push(b"\r\n\r");
        assert_eq!(f.take_lone_crlf(), None, "CRLF CR is not a lone CRLF");
    }

    #[test]
    fn crlf_followed_by_cr_and_other_octet_is_a_pong_then_skipped_white_space() {
        let mut input = b"\r\n\r \t\n".to_vec();
        input.extend_from_slice(OPTIONS);
        assert_eq!(
            frames_of(&input, FramerLimits::default()).unwrap(),
            vec![Frame::Pong, message(OPTIONS)]
        );
    }

    #[test]
    fn white_space_before_a_start_line_is_skipped() {
        let mut input = b"  \t\n\r".to_vec();
        input.extend_from_slice(OPTIONS);
        assert_eq!(
            frames_of(&input, FramerLimits::default()).unwrap(),
            vec![message(OPTIONS)]
        );
    }

    #[test]
    fn body_split_across_pushes_waits_for_every_octet() {
        let split = INVITE.len() - 2;
        let mut f = StreamFramer::default();
        f.push(INVITE.get(..split).unwrap());
        assert_eq!(f.next_frame().unwrap(), None);
        assert!(f.is_mid_message());
        f.push(INVITE.get(split..split + 1).unwrap());
        assert_eq!(f.next_frame().unwrap(), None);
        f.push(INVITE.get(split + 1..).unwrap());
        assert_eq!(f.next_frame().unwrap(), Some(message(INVITE)));
    }

    #[test]
    fn body_octets_that_look_like_crlf_or_headers_belong_to_the_body() {
        let m = with_headers("Content-Length: 8\r\n", "\r\n\r\nl: 1");
        assert_eq!(
            frames_of(&m, FramerLimits::default()).unwrap(),
            vec![message(&m)]
        );
    }

    #[test]
    fn missing_content_length_is_an_error_at_the_empty_line() {
        let m = with_headers("Subject: hi\r\n", "");
        let e = error_of(&m, FramerLimits::default());
        assert_eq!(e.kind(), ParseErrorKind::MissingContentLength);
        assert_eq!(e.offset(), m.len() - 2);
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn content_length_in_the_start_line_does_not_count() {
        let m = b"Content-Length: 0 sip:a SIP/2.0\r\nVia: x\r\n\r\n";
        assert_eq!(
            error_of(m, FramerLimits::default()).kind(),
            ParseErrorKind::MissingContentLength
        );
    }

    #[test]
    fn content_length_compact_name_with_lws_and_folding_is_read() {
        for header in [
            "l: 3\r\n",
            "L:3\r\n",
            "CONTENT-length \t:   3  \r\n",
            "Content-Length:\r\n 3\r\n",
            "Content-Length :\r\n\t\r\n  3\r\n \r\n",
            "Content-Length: 0003\r\n",
        ] {
            let m = with_headers(header, "abc");
            assert_eq!(
                frames_of(&m, FramerLimits::default()).unwrap(),
                vec![message(&m)],
                "{header:?}"
            );
        }
    }

    #[test]
    fn folded_lines_are_part_of_the_header_before_them() {
        // "l: 9" is a continuation of Subject, not a header: the real length is 3.
        let m = with_headers("Subject: a\r\n l: 9\r\nContent-Length: 3\r\n", "abc");
        assert_eq!(
            frames_of(&m, FramerLimits::default()).unwrap(),
            vec![message(&m)]
        );
    }

    #[test]
    fn headers_that_only_start_like_content_length_are_ignored() {
        let m = with_headers("Content-Length-X: 9\r\nlx: 9\r\nContent-Length: 1\r\n", "a");
        assert_eq!(
            frames_of(&m, FramerLimits::default()).unwrap(),
            vec![message(&m)]
        );
    }

    #[test]
    fn multiple_content_length_is_an_error_even_when_equal() {
        for headers in [
            "Content-Length: 3\r\nContent-Length: 3\r\n",
            "Content-Length: 3\r\nl: 4\r\n",
            "l: abc\r\nContent-Length: 3\r\n",
        ] {
            let m = with_headers(headers, "abc");
            let e = error_of(&m, FramerLimits::default());
            assert_eq!(
                e.kind(),
                ParseErrorKind::MultipleContentLength,
                "{headers:?}"
            );
            let second = m.len() - 3 - 2 - headers.split("\r\n").nth(1).unwrap().len() - 2;
            assert_eq!(e.offset(), second, "{headers:?}");
        }
    }

    #[test]
    fn negative_or_non_numeric_content_length_is_invalid() {
        for value in [
            "-1", "-999", "abc", "", "1 2", "+3", "3;x", "3,3", "0x10", "½",
        ] {
            let m = with_headers(&format!("Content-Length: {value}\r\n"), "");
            let e = error_of(&m, FramerLimits::default());
            assert_eq!(e.kind(), ParseErrorKind::InvalidContentLength, "{value:?}");
        }
        let m = with_headers("Content-Length:  -1\r\n", "");
        let e = error_of(&m, FramerLimits::default());
        assert_eq!(m.get(e.offset()..e.offset() + 2), Some(&b"-1"[..]));
    }

    #[test]
    fn overflowing_content_length_is_invalid() {
        let m = with_headers("Content-Length: 99999999999999999999999999\r\n", "");
        let e = error_of(&m, FramerLimits::default());
        assert_eq!(e.kind(), ParseErrorKind::InvalidContentLength);
    }

    #[test]
    fn header_section_over_the_limit_is_an_error_before_it_ends() {
        let limits = FramerLimits {
            max_header_bytes: 64,
            ..FramerLimits::default()
        };
        let mut f = StreamFramer::new(limits);
        f.push(b"OPTIONS sip:a SIP/2.0\r\n");
        assert_eq!(f.next_frame().unwrap(), None);
        f.push(&[b'X'; 41]);
        let e = f.next_frame().unwrap_err();
        assert_eq!(e.kind(), ParseErrorKind::HeadersTooLarge { limit: 64 });
        assert_eq!(e.status(), 513);
        // The error is final.
        f.push(b"\r\n\r\n");
        assert_eq!(f.next_frame().unwrap_err(), e);
        assert!(f.is_failed());
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn header_section_exactly_at_the_limit_is_accepted() {
        let limits = FramerLimits {
            max_header_bytes: OPTIONS.len(),
            ..FramerLimits::default()
        };
        assert_eq!(frames_of(OPTIONS, limits).unwrap(), vec![message(OPTIONS)]);
        let limits = FramerLimits {
            max_header_bytes: OPTIONS.len() - 1,
            ..FramerLimits::default()
        };
        assert_eq!(
            error_of(OPTIONS, limits).kind(),
            ParseErrorKind::HeadersTooLarge {
                limit: OPTIONS.len() - 1
            }
        );
    }

    #[test]
    fn body_over_the_limit_is_an_error_as_soon_as_content_length_is_read() {
        let limits = FramerLimits {
            max_body_bytes: 100,
            ..FramerLimits::default()
        };
        let mut f = StreamFramer::new(limits);
        f.push(&with_headers("Content-Length: 101\r\n", ""));
        let e = f.next_frame().unwrap_err();
        assert_eq!(e.kind(), ParseErrorKind::BodyTooLarge { limit: 100 });
        assert_eq!(e.status(), 413);
        let m = with_headers("Content-Length: 100\r\n", &"b".repeat(100));
        assert_eq!(frames_of(&m, limits).unwrap(), vec![message(&m)]);
    }

    #[test]
    fn accept_no_content_length_means_an_empty_body() {
        let limits = FramerLimits {
            accept_no_content_length: true,
            ..FramerLimits::default()
        };
        let get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut input = get.to_vec();
        input.extend_from_slice(OPTIONS);
        assert_eq!(
            frames_of(&input, limits).unwrap(),
            vec![message(get), message(OPTIONS)]
        );
    }

    #[test]
    fn a_bare_lf_blank_line_does_not_end_the_header_section() {
        let mut f = StreamFramer::default();
        f.push(b"OPTIONS sip:a SIP/2.0\nl: 0\n\n");
        assert_eq!(f.next_frame().unwrap(), None);
        assert!(f.is_mid_message());
    }

    #[test]
    fn error_offsets_count_from_the_start_of_the_current_message() {
        let bad = with_headers("Content-Length: -5\r\n", "");
        let mut input = b"\r\n\r\n".to_vec();
        input.extend_from_slice(OPTIONS);
        input.extend_from_slice(&bad);
        let mut f = StreamFramer::default();
        f.push(&input);
        assert_eq!(f.next_frame().unwrap(), Some(Frame::Ping));
        assert_eq!(f.next_frame().unwrap(), Some(message(OPTIONS)));
        let e = f.next_frame().unwrap_err();
        assert_eq!(e.kind(), ParseErrorKind::InvalidContentLength);
        assert_eq!(bad.get(e.offset()..e.offset() + 2), Some(&b"-5"[..]));
    }

    // ---- RFC 4475 / RFC 5118 torture messages ----

    fn conformance_dir() -> PathBuf {
        std::env::var_os("SABLE_CONFORMANCE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/conformance")
            })
    }

    fn read(rel: &str) -> Vec<u8> {
        let path = conformance_dir().join(rel);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// `(file, declared Content-Length)` of the RFC 4475 valid messages, from `manifest.tsv`.
    fn rfc4475_valid() -> Vec<(String, usize)> {
        let manifest = String::from_utf8(read("rfc4475/manifest.tsv")).unwrap();
        let rows: Vec<_> = manifest
            .lines()
            .skip(1)
            .map(|l| l.split('\t').collect::<Vec<_>>())
            .filter(|c| c[3] == "valid")
            .map(|c| {
                let file = c[0].trim_start_matches("conformance/").to_string();
                (file, c[7].parse().unwrap())
            })
            .collect();
        assert_eq!(rows.len(), 13);
        rows
    }

    /// Pushes `input` in chunks of `chunk` octets, draining after each: the frames, then the
    /// error that stopped the stream, if any.
    fn chunked(input: &[u8], chunk: usize) -> (Vec<Frame>, Option<ParseError>) {
        let mut f = StreamFramer::default();
        let mut frames = Vec::new();
        for c in input.chunks(chunk) {
            f.push(c);
            loop {
                match f.next_frame() {
                    Ok(Some(frame)) => frames.push(frame),
                    Ok(None) => break,
                    Err(e) => return (frames, Some(e)),
                }
            }
        }
        (frames, None)
    }

    #[test]
    fn rfc4475_valid_messages_are_framed_by_their_content_length() {
        for (file, cl) in rfc4475_valid() {
            let bytes = read(&file);
            let header_len = memmem::find(&bytes, b"\r\n\r\n").unwrap() + 4;
            let expected = &bytes[..header_len + cl];
            let mut f = StreamFramer::default();
            f.push(&bytes);
            assert_eq!(f.next_frame(), Ok(Some(message(expected))), "{file}");
            let rest = &bytes[header_len + cl..];
            if file.ends_with("dblreq.sip") {
                // Over a stream, the 450 octets after the REGISTER are a CRLF (a pong), an
                // INVITE with a 150-octet body, and 5 octets that start a message without
                // Content-Length ("C" CRLF CRLF).
                assert_eq!(rest.len(), 450);
                assert_eq!(f.next_frame(), Ok(Some(Frame::Pong)), "{file}");
                let invite = &rest[2..rest.len() - 5];
                assert!(invite.starts_with(b"INVITE "));
                assert_eq!(f.next_frame(), Ok(Some(message(invite))), "{file}");
                let e = f.next_frame().unwrap_err();
                assert_eq!(e.kind(), ParseErrorKind::MissingContentLength);
                assert_eq!(e.offset(), 3);
            } else {
                assert!(rest.is_empty(), "{file}");
                assert_eq!(f.next_frame(), Ok(None), "{file}");
                assert!(!f.is_mid_message());
            }
        }
    }

    #[test]
    fn rfc4475_valid_messages_framed_byte_by_byte_match_one_push() {
        for (file, _) in rfc4475_valid() {
            let bytes = read(&file);
            let whole = chunked(&bytes, bytes.len());
            assert!(!whole.0.is_empty(), "{file}");
            assert_eq!(chunked(&bytes, 1), whole, "{file}");
        }
    }

    #[test]
    fn rfc4475_valid_messages_back_to_back_with_pings() {
        let mut input = Vec::new();
        let mut expected = Vec::new();
        for (file, cl) in rfc4475_valid() {
            if file.ends_with("dblreq.sip") {
                continue;
            }
            let bytes = read(&file);
            assert_eq!(
                bytes.len(),
                memmem::find(&bytes, b"\r\n\r\n").unwrap() + 4 + cl
            );
            input.extend_from_slice(&bytes);
            input.extend_from_slice(b"\r\n\r\n");
            expected.push(message(&bytes));
            expected.push(Frame::Ping);
        }
        for chunk in [1, 7, 100, 4096] {
            let mut f = StreamFramer::default();
            let mut got = Vec::new();
            for c in input.chunks(chunk) {
                f.push(c);
                got.extend(drain(&mut f).unwrap());
            }
            assert_eq!(got, expected, "chunk {chunk}");
        }
    }

    #[test]
    fn rfc4475_mcl01_is_multiple_content_length() {
        let e = error_of(&read("rfc4475/invalid/mcl01.sip"), FramerLimits::default());
        assert_eq!(e.kind(), ParseErrorKind::MultipleContentLength);
    }

    #[test]
    fn rfc4475_ncl_is_invalid_content_length() {
        let bytes = read("rfc4475/invalid/ncl.sip");
        let e = error_of(&bytes, FramerLimits::default());
        assert_eq!(e.kind(), ParseErrorKind::InvalidContentLength);
        assert_eq!(bytes.get(e.offset()..e.offset() + 4), Some(&b"-999"[..]));
    }

    #[test]
    fn rfc4475_inv2543_without_content_length_is_missing_content_length() {
        let bytes = read("rfc4475/invalid/inv2543.sip");
        let e = error_of(&bytes, FramerLimits::default());
        assert_eq!(e.kind(), ParseErrorKind::MissingContentLength);
        let limits = FramerLimits {
            accept_no_content_length: true,
            ..FramerLimits::default()
        };
        let frames = frames_of(&bytes, limits).unwrap();
        let header_len = memmem::find(&bytes, b"\r\n\r\n").unwrap() + 4;
        assert_eq!(frames.first(), Some(&message(&bytes[..header_len])));
    }

    #[test]
    fn rfc4475_clerr_waits_for_the_announced_body() {
        let bytes = read("rfc4475/invalid/clerr.sip");
        let mut f = StreamFramer::default();
        f.push(&bytes);
        assert_eq!(f.next_frame(), Ok(None));
        assert!(f.is_mid_message());
    }

    #[test]
    fn every_conformance_file_frames_without_panicking_in_any_chunking() {
        let mut files = Vec::new();
        for dir in [
            "rfc4475/valid",
            "rfc4475/invalid",
            "rfc4475/unlisted",
            "rfc5118/valid",
            "rfc5118/invalid",
        ] {
            for entry in std::fs::read_dir(conformance_dir().join(dir)).unwrap() {
                files.push(entry.unwrap().path());
            }
        }
        assert!(files.len() >= 60, "{}", files.len());
        for path in files {
            let bytes = std::fs::read(&path).unwrap();
            let whole = chunked(&bytes, bytes.len().max(1));
            for chunk in [1, 3, 64] {
                assert_eq!(chunked(&bytes, chunk), whole, "{}", path.display());
            }
        }
    }
}
