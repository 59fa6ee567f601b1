//! Byte-level lexical helpers shared by every parser of the crate (RFC 3261 §25.1).
//!
//! Header values are parsed in place, line folding included: inside a header value the
//! only CR and LF octets are those of a fold (`CRLF 1*WSP`), so SP, HT, CR and LF are all
//! treated as linear white space (LWS) here.

use crate::error::{ParseError, ParseErrorKind, Result};

/// `token` characters: `alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~"`,
/// as a table indexed by octet (one load per test; this sits on the hottest path).
// Evaluated at compile time: an index out of bounds is a compile error, never a panic.
#[allow(clippy::indexing_slicing)]
static TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0u8;
    while b < 128 {
        table[b as usize] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        b += 1;
    }
    table
};

/// True for a `token` character.
#[inline]
pub fn is_token_char(b: u8) -> bool {
    // A u8 always indexes a 256-entry table: the compiler drops the bounds check.
    TOKEN.get(usize::from(b)).copied().unwrap_or(false)
}

/// True when `s` is a non-empty `token`.
#[inline]
pub fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_token_char(b))
}

/// True for linear white space inside a header value (SP, HT, or the CR/LF of a fold).
#[inline]
pub fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// `s` without leading and trailing LWS.
#[inline]
pub fn trim_lws(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_lws(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|&b| !is_lws(b)).map_or(start, |p| p + 1);
    s.get(start..end).unwrap_or_default()
}

/// Index of the first non-LWS octet at or after `i` (or `s.len()`).
#[inline]
pub fn skip_lws(s: &[u8], mut i: usize) -> usize {
    while let Some(&b) = s.get(i) {
        if !is_lws(b) {
            break;
        }
        i += 1;
    }
    i
}

/// Given `s[start] == b'"'`, the index just past the closing quote of the `quoted-string`
/// (quoted pairs `\X` skipped).
pub fn quoted_string_end(s: &[u8], start: usize) -> Result<usize> {
    let mut i = start + 1;
    while let Some(&b) = s.get(i) {
        match b {
            b'"' => return Ok(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    Err(ParseError::new(ParseErrorKind::UnterminatedQuote, start))
}

/// Parses `1*DIGIT` into a `u64`, failing on an empty string, a non-digit, or a value above
/// `max`.
pub fn parse_decimal(s: &[u8], max: u64) -> Result<u64> {
    if s.is_empty() {
        return Err(ParseError::new(
            ParseErrorKind::BadHeaderValue("expected a number"),
            0,
        ));
    }
    let mut v: u64 = 0;
    for (i, &b) in s.iter().enumerate() {
        if !b.is_ascii_digit() {
            return Err(ParseError::new(
                ParseErrorKind::BadHeaderValue("expected a number"),
                i,
            ));
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .filter(|&v| v <= max)
            .ok_or_else(|| ParseError::new(ParseErrorKind::NumberOutOfRange, i))?;
    }
    Ok(v)
}

/// Value of an ASCII hex digit.
#[inline]
pub fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The content of a `quoted-string` without its quotes and with quoted pairs resolved; a
/// value that is not quoted comes back as it is (borrowed).
pub fn unquote(s: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let inner = match s {
        [b'"', inner @ .., b'"'] => inner,
        _ => return std::borrow::Cow::Borrowed(s),
    };
    if !inner.contains(&b'\\') {
        return std::borrow::Cow::Borrowed(inner);
    }
    let mut out = Vec::with_capacity(inner.len());
    let mut it = inner.iter();
    while let Some(&b) = it.next() {
        if b == b'\\' {
            if let Some(&n) = it.next() {
                out.push(n);
            }
        } else {
            out.push(b);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_folded_white_space() {
        assert_eq!(trim_lws(b" \r\n\tabc \r\n "), b"abc");
        assert_eq!(trim_lws(b"   "), b"");
    }

    #[test]
    fn quoted_string_end_skips_quoted_pairs() {
        assert_eq!(quoted_string_end(br#""a\"b" x"#, 0).unwrap(), 6);
        assert!(quoted_string_end(br#""abc"#, 0).is_err());
    }

    #[test]
    fn decimal_overflow_is_an_error() {
        assert_eq!(parse_decimal(b"0068", 255).unwrap(), 68);
        assert_eq!(
            parse_decimal(b"256", 255).unwrap_err().kind(),
            ParseErrorKind::NumberOutOfRange
        );
        assert!(parse_decimal(b"99999999999999999999999", u64::MAX).is_err());
        assert!(parse_decimal(b"-1", 10).is_err());
    }

    #[test]
    fn unquote_resolves_pairs() {
        assert_eq!(&*unquote(br#""a\"b""#), b"a\"b");
        assert_eq!(&*unquote(b"tok"), b"tok");
    }
}
