//! Authorization, Proxy-Authorization, WWW-Authenticate and Proxy-Authenticate values
//! (RFC 3261 §20.7, §20.27, §20.28, §20.44, §25.1; digest per RFC 2617 / RFC 8760).
//!
//! One type serves credentials and challenges: both are `auth-scheme LWS auth-param
//! *(COMMA auth-param)`. Parameters are validated once and looked up by walking the text.

use std::borrow::Cow;

use crate::error::{ParseError, ParseErrorKind, Result};
use crate::scan::{is_lws, is_token_char, quoted_string_end, skip_lws, unquote};

/// Credentials or a challenge: the scheme and its comma-separated parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials<'a> {
    /// `Digest`, or any other scheme as written (RFC 4475 §3.3.7 uses an unknown one).
    pub scheme: &'a [u8],
    params: &'a [u8],
}

/// A challenge has the same shape as credentials.
pub type Challenge<'a> = Credentials<'a>;

fn bad(what: &'static str, at: usize) -> ParseError {
    ParseError::new(ParseErrorKind::BadHeaderValue(what), at)
}

/// Reads one `name = value` at `*pos`; `Ok(None)` at the end.
fn scan_param<'a>(s: &'a [u8], pos: &mut usize) -> Result<Option<(&'a [u8], &'a [u8])>> {
    let mut i = skip_lws(s, *pos);
    if i >= s.len() {
        *pos = i;
        return Ok(None);
    }
    let n_start = i;
    while s.get(i).is_some_and(|&b| is_token_char(b)) {
        i += 1;
    }
    if i == n_start {
        return Err(bad("expected an auth parameter name", n_start));
    }
    let name = s.get(n_start..i).unwrap_or_default();
    i = skip_lws(s, i);
    if s.get(i) != Some(&b'=') {
        return Err(bad("expected '=' after an auth parameter name", i));
    }
    let v_start = skip_lws(s, i + 1);
    let v_end = if s.get(v_start) == Some(&b'"') {
        quoted_string_end(s, v_start)?
    } else {
        let mut j = v_start;
        while s.get(j).is_some_and(|&b| b != b',' && !is_lws(b)) {
            j += 1;
        }
        j
    };
    if v_end == v_start {
        return Err(bad("empty auth parameter value", v_start));
    }
    let value = s.get(v_start..v_end).unwrap_or_default();
    let after = skip_lws(s, v_end);
    match s.get(after) {
        None => *pos = after,
        Some(b',') => *pos = after + 1,
        Some(_) => return Err(bad("expected ',' between auth parameters", after)),
    }
    Ok(Some((name, value)))
}

impl<'a> Credentials<'a> {
    /// Parses credentials or a challenge.
    pub fn parse(s: &'a [u8]) -> Result<Credentials<'a>> {
        let start = skip_lws(s, 0);
        let mut i = start;
        while s.get(i).is_some_and(|&b| is_token_char(b)) {
            i += 1;
        }
        if i == start {
            return Err(bad("expected an auth scheme", start));
        }
        let scheme = s.get(start..i).unwrap_or_default();
        let params = s.get(i..).unwrap_or_default();
        if !params.is_empty() && !params.first().is_some_and(|&b| is_lws(b)) {
            return Err(bad("expected white space after the auth scheme", i));
        }
        let mut pos = 0;
        while scan_param(params, &mut pos)
            .map_err(|e| e.shifted(i))?
            .is_some()
        {}
        Ok(Credentials { scheme, params })
    }

    /// True for the Digest scheme (case-insensitive).
    pub fn is_digest(&self) -> bool {
        self.scheme.eq_ignore_ascii_case(b"Digest")
    }

    /// The parameters in order, values as written (quotes kept).
    pub fn params(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        let s = self.params;
        let mut pos = 0;
        std::iter::from_fn(move || scan_param(s, &mut pos).ok().flatten())
    }

    /// A parameter's raw value (quotes kept), by case-insensitive name.
    pub fn param_raw(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.params()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// A parameter's value with quotes removed.
    pub fn param(&self, name: &[u8]) -> Option<Cow<'a, [u8]>> {
        self.param_raw(name).map(unquote)
    }

    /// `username`.
    pub fn username(&self) -> Option<Cow<'a, [u8]>> {
        self.param(b"username")
    }
    /// `realm`.
    pub fn realm(&self) -> Option<Cow<'a, [u8]>> {
        self.param(b"realm")
    }
    /// `nonce`.
    pub fn nonce(&self) -> Option<Cow<'a, [u8]>> {
        self.param(b"nonce")
    }
    /// `uri` (digest-uri).
    pub fn uri(&self) -> Option<Cow<'a, [u8]>> {
        self.param(b"uri")
    }
    /// `response`.
    pub fn response(&self) -> Option<Cow<'a, [u8]>> {
        self.param(b"response")
    }
    /// `algorithm` (MD5 when absent, per RFC 2617).
    pub fn algorithm(&self) -> Option<Cow<'a, [u8]>> {
        self.param(b"algorithm")
    }
    /// `cnonce`.
    pub fn cnonce(&self) -> Option<Cow<'a, [u8]>> {
        self.param(b"cnonce")
    }
    /// `opaque`.
    pub fn opaque(&self) -> Option<Cow<'a, [u8]>> {
        self.param(b"opaque")
    }
    /// `qop` (a single value in credentials, a quoted list in challenges).
    pub fn qop(&self) -> Option<Cow<'a, [u8]>> {
        self.param(b"qop")
    }
    /// `nc`, the nonce count (8 hex digits).
    pub fn nc(&self) -> Option<u32> {
        let v = self.param_raw(b"nc")?;
        if v.len() != 8 {
            return None;
        }
        u32::from_str_radix(std::str::from_utf8(v).ok()?, 16).ok()
    }
    /// `stale` (challenges).
    pub fn stale(&self) -> bool {
        self.param(b"stale")
            .is_some_and(|v| v.eq_ignore_ascii_case(b"true"))
    }
    /// `domain` (challenges).
    pub fn domain(&self) -> Option<Cow<'a, [u8]>> {
        self.param(b"domain")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_credentials() {
        let c = Credentials::parse(
            b"Digest username=\"bob\", realm=\"biloxi.com\",\r\n nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"sip:bob@biloxi.com\", qop=auth, nc=00000001, cnonce=\"0a4f113b\", response=\"6629fae49393a05397450978507c4ef1\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\", algorithm=MD5",
        )
        .unwrap();
        assert!(c.is_digest());
        assert_eq!(&*c.username().unwrap(), b"bob");
        assert_eq!(&*c.realm().unwrap(), b"biloxi.com");
        assert_eq!(&*c.uri().unwrap(), b"sip:bob@biloxi.com");
        assert_eq!(&*c.qop().unwrap(), b"auth");
        assert_eq!(c.nc(), Some(1));
        assert_eq!(&*c.algorithm().unwrap(), b"MD5");
        assert_eq!(c.params().count(), 10);
    }

    #[test]
    fn unknown_scheme_is_well_formed() {
        let c = Credentials::parse(b"NoOneKnowsThisScheme opaque-data=here").unwrap();
        assert_eq!(c.scheme, b"NoOneKnowsThisScheme");
        assert!(!c.is_digest());
        assert_eq!(c.param_raw(b"opaque-data"), Some(&b"here"[..]));
    }

    #[test]
    fn stale_challenge() {
        let c = Credentials::parse(b"Digest realm=\"a\", nonce=\"n\", stale=TRUE").unwrap();
        assert!(c.stale());
    }

    #[test]
    fn malformed_credentials_are_rejected() {
        assert!(Credentials::parse(b"").is_err());
        assert!(Credentials::parse(b"Digest username").is_err());
        assert!(Credentials::parse(b"Digest username=\"open").is_err());
        assert!(Credentials::parse(b"Digest a=b c=d").is_err());
    }
}
