//! Single-value headers with a small grammar: CSeq (RFC 3261 §20.16), Call-ID (§20.8),
//! Max-Forwards (§20.22), Content-Length (§20.14), Expires / Min-Expires (§20.19, §20.23),
//! Content-Type (§20.15), Event (RFC 6665 §8.2.1), and token lists (Supported, Require,
//! Proxy-Require, Unsupported, Allow).

use crate::error::{ParseError, ParseErrorKind, Result};
use crate::method::Method;
use crate::params::Params;
use crate::scan::{is_lws, is_token, is_token_char, parse_decimal, skip_lws, trim_lws};

fn bad(what: &'static str, at: usize) -> ParseError {
    ParseError::new(ParseErrorKind::BadHeaderValue(what), at)
}

/// `CSeq: 1*DIGIT LWS Method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    /// Sequence number (< 2^31 per RFC 3261 §8.1.1.5 when generated; up to 2^32-1 accepted).
    pub number: u32,
    /// Method.
    pub method: Method<'a>,
}

impl<'a> CSeq<'a> {
    /// Parses a CSeq value; a number above 2^32-1 is [`ParseErrorKind::NumberOutOfRange`].
    pub fn parse(s: &'a [u8]) -> Result<CSeq<'a>> {
        match Self::parse_usual(s) {
            Some(cseq) => Ok(cseq),
            None => Self::parse_general(s),
        }
    }

    /// [`CSeq::parse`] of any form.
    fn parse_general(s: &'a [u8]) -> Result<CSeq<'a>> {
        let start = skip_lws(s, 0);
        let mut i = start;
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let number = parse_decimal(s.get(start..i).unwrap_or_default(), u64::from(u32::MAX))
            .map_err(|e| e.shifted(start))?;
        if !s.get(i).is_some_and(|&b| is_lws(b)) {
            return Err(bad("expected white space after the CSeq number", i));
        }
        let m_start = skip_lws(s, i);
        let method = trim_lws(s.get(m_start..).unwrap_or_default());
        if !is_token(method) {
            return Err(bad("CSeq method is not a token", m_start));
        }
        Ok(CSeq {
            number: u32::try_from(number).unwrap_or(u32::MAX),
            method: Method::from_token(method),
        })
    }
}

impl<'a> CSeq<'a> {
    /// The usual form, one to nine digits, one SP and the method with nothing after it, read
    /// in one pass; `None` for anything else (which [`CSeq::parse`] reads the full way).
    #[inline(always)]
    fn parse_usual(s: &'a [u8]) -> Option<CSeq<'a>> {
        let mut i = 0;
        let mut number = 0u32;
        while let Some(d) = s.get(i).map(|b| b.wrapping_sub(b'0')).filter(|&d| d < 10) {
            number = number.wrapping_mul(10).wrapping_add(u32::from(d));
            i += 1;
        }
        // (Nine digits cannot overflow.)
        if i == 0 || i > 9 || s.get(i) != Some(&b' ') {
            return None;
        }
        let method = s.get(i + 1..)?;
        if !is_token(method) {
            return None;
        }
        Some(CSeq {
            number,
            method: Method::from_token(method),
        })
    }
}

/// A Call-ID: `word [ "@" word ]`, any printable octets but LWS. Returns the trimmed value.
pub fn parse_call_id(s: &[u8]) -> Result<&[u8]> {
    // The index has trimmed the value already: trim again only when an end is LWS.
    let v = match (s.first(), s.last()) {
        (Some(&a), Some(&z)) if a > b' ' && z > b' ' => s,
        _ => trim_lws(s),
    };
    if v.is_empty() {
        return Err(bad("empty Call-ID", 0));
    }
    // (LWS octets are all below 0x21.) Sixteen octets are tested per step, as one vector
    // compare where the target has them; the position is looked for only on a fault.
    let faulty = |b: u8| b < 0x21 || b == 0x7f;
    let mut chunks = v.chunks_exact(16);
    let clean = chunks.by_ref().all(|c| {
        <&[u8; 16]>::try_from(c).is_ok_and(|c| !c.iter().fold(false, |acc, &b| acc | faulty(b)))
    }) && !chunks.remainder().iter().any(|&b| faulty(b));
    if !clean {
        let p = v.iter().position(|&b| faulty(b)).unwrap_or(0);
        return Err(bad("Call-ID contains white space or control octets", p));
    }
    Ok(v)
}

/// A non-negative integer header bounded by `max` (Max-Forwards: 255; Content-Length,
/// Expires, Min-Expires: 2^32-1).
pub fn parse_number(s: &[u8], max: u64) -> Result<u64> {
    // The usual form, one SP and a few digits (Content-Length on every message), without the
    // trimming and the checked arithmetic; anything else, or a value over `max`, goes the
    // full way (and gets its error there).
    let digits = match s {
        [b' ', rest @ ..] => rest,
        _ => s,
    };
    if (1..=9).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit) {
        let v = digits
            .iter()
            .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
        if v <= max {
            return Ok(v);
        }
    }
    let start = skip_lws(s, 0);
    let v = trim_lws(s);
    parse_decimal(v, max).map_err(|e| e.shifted(start))
}

/// `Content-Type: type "/" subtype *( SEMI m-parameter )`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentType<'a> {
    /// `application` in `application/sdp`, as written.
    pub media_type: &'a [u8],
    /// `sdp`, as written.
    pub subtype: &'a [u8],
    /// Parameters (`boundary`, `charset`...).
    pub params: Params<'a>,
}

fn token_run(s: &[u8], start: usize) -> usize {
    let mut i = start;
    while s.get(i).is_some_and(|&b| is_token_char(b)) {
        i += 1;
    }
    i
}

impl<'a> ContentType<'a> {
    /// Parses a media type.
    pub fn parse(s: &'a [u8]) -> Result<ContentType<'a>> {
        let t_start = skip_lws(s, 0);
        let t_end = token_run(s, t_start);
        if t_end == t_start {
            return Err(bad("expected a media type", t_start));
        }
        let slash = skip_lws(s, t_end);
        if s.get(slash) != Some(&b'/') {
            return Err(bad("expected '/' in the media type", slash));
        }
        let st_start = skip_lws(s, slash + 1);
        let st_end = token_run(s, st_start);
        if st_end == st_start {
            return Err(bad("expected a media subtype", st_start));
        }
        let params =
            Params::parse(s.get(st_end..).unwrap_or_default()).map_err(|e| e.shifted(st_end))?;
        Ok(ContentType {
            media_type: s.get(t_start..t_end).unwrap_or_default(),
            subtype: s.get(st_start..st_end).unwrap_or_default(),
            params,
        })
    }

    /// True when this is `type/subtype`, compared case-insensitively.
    pub fn is(&self, media_type: &str, subtype: &str) -> bool {
        self.media_type.eq_ignore_ascii_case(media_type.as_bytes())
            && self.subtype.eq_ignore_ascii_case(subtype.as_bytes())
    }
}

/// `Event: event-type *( SEMI event-param )` (RFC 6665 §8.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    /// Event package with template (`presence`, `dialog`, `message-summary`, `presence.winfo`).
    pub package: &'a [u8],
    /// Parameters (`id`...).
    pub params: Params<'a>,
}

impl<'a> Event<'a> {
    /// Parses an Event value.
    pub fn parse(s: &'a [u8]) -> Result<Event<'a>> {
        let start = skip_lws(s, 0);
        let end = token_run(s, start);
        if end == start {
            return Err(bad("expected an event package", start));
        }
        let params = Params::parse(s.get(end..).unwrap_or_default()).map_err(|e| e.shifted(end))?;
        Ok(Event {
            package: s.get(start..end).unwrap_or_default(),
            params,
        })
    }

    /// The `id` parameter.
    pub fn id(&self) -> Option<&'a [u8]> {
        self.params.get(b"id").flatten()
    }
}

/// One value of a token list (option tags, methods): the trimmed token.
pub fn parse_token(s: &[u8]) -> Result<&[u8]> {
    let v = trim_lws(s);
    if is_token(v) {
        Ok(v)
    } else {
        Err(bad("expected a token", skip_lws(s, 0)))
    }
}

/// Checks the one rule of a SIP Date a proxy may enforce (RFC 3261 §20.17, RFC 4475
/// §3.1.2.12): the zone is GMT. The rest of the RFC 1123 form is not checked: a proxy has no
/// use for the date.
pub fn check_date(s: &[u8]) -> Result<()> {
    let v = trim_lws(s);
    let zone = v.rsplit(|&b| b == b' ').next().unwrap_or_default();
    if zone.eq_ignore_ascii_case(b"GMT") {
        Ok(())
    } else {
        Err(bad("Date is not in GMT", 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cseq_usual_form_reads_as_the_general_path() {
        for text in [
            &b"1 INVITE"[..],
            b"314159 INVITE",
            b"999999999 X-CUSTOM",
            b"1234567890 INVITE",
            b"4294967296 INVITE",
            b"1  INVITE",
            b"1 INVITE ",
            b"1 IN VITE",
            b"1 ",
            b"1",
            b" 1 ACK",
            b"0 BYE",
            b"1\tACK",
            b"1 A@B",
        ] {
            let general = CSeq::parse_general(text);
            match CSeq::parse_usual(text) {
                Some(usual) => assert_eq!(Ok(usual), general, "{text:?}"),
                None => assert_eq!(CSeq::parse(text), general, "{text:?}"),
            }
        }
    }

    #[test]
    fn cseq_with_leading_zeros_and_fold() {
        let c = CSeq::parse(b"0009\r\n  INVITE").unwrap();
        assert_eq!(c.number, 9);
        assert_eq!(c.method, Method::Invite);
    }

    #[test]
    fn cseq_overflow_is_out_of_range() {
        let e = CSeq::parse(b"36893488147419103232 REGISTER").unwrap_err();
        assert_eq!(e.kind(), ParseErrorKind::NumberOutOfRange);
        assert!(CSeq::parse(b"4294967296 INVITE").is_err());
        assert_eq!(CSeq::parse(b"4294967295 INVITE").unwrap().number, u32::MAX);
        assert!(CSeq::parse(b"INVITE").is_err());
        assert!(CSeq::parse(b"1INVITE").is_err());
    }

    #[test]
    fn call_id_keeps_odd_word_characters() {
        assert_eq!(
            parse_call_id(b" intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{ ").unwrap(),
            b"intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
        );
        assert!(parse_call_id(b"a b").is_err());
        assert!(parse_call_id(b"  ").is_err());
    }

    #[test]
    fn numbers_are_bounded() {
        assert_eq!(parse_number(b" 0068 ", 255).unwrap(), 68);
        assert!(parse_number(b"300", 255).is_err());
        assert!(parse_number(b"-999", u64::from(u32::MAX)).is_err());
    }

    #[test]
    fn content_type_and_event() {
        let c = ContentType::parse(b"multipart/mixed;boundary=7a9cbec02ceef655").unwrap();
        assert!(c.is("Multipart", "MIXED"));
        assert_eq!(
            c.params.get(b"boundary"),
            Some(Some(&b"7a9cbec02ceef655"[..]))
        );
        let e = Event::parse(b"presence;id=7").unwrap();
        assert_eq!(e.package, b"presence");
        assert_eq!(e.id(), Some(&b"7"[..]));
    }

    #[test]
    fn date_must_be_gmt() {
        assert!(check_date(b"Sat, 13 Nov 2010 23:29:00 GMT").is_ok());
        assert!(check_date(b"Sat, 3 Nov 2010 23:29:00 gmt").is_ok());
        assert!(check_date(b"Fri, 01 Jan 2010 16:00:00 EST").is_err());
    }
}
