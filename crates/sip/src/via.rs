//! The Via header value (RFC 3261 §20.42, §18.2.2; RFC 3581 rport).

use crate::error::{ParseError, ParseErrorKind, Result};
use crate::params::Params;
use crate::scan::{is_lws, is_token_char, skip_lws};
use crate::uri::Host;

/// The branch prefix of RFC 3261 transactions (§8.1.1.7).
pub const MAGIC_COOKIE: &[u8] = b"z9hG4bK";

/// One Via value: `sent-protocol LWS sent-by *( SEMI via-params )`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via<'a> {
    /// `SIP` in `SIP/2.0/UDP`.
    pub protocol_name: &'a [u8],
    /// `2.0`.
    pub protocol_version: &'a [u8],
    /// `UDP`, `TCP`, `TLS`, `SCTP`, `WS`, `WSS` or any other token, as written.
    pub transport: &'a [u8],
    /// Host of sent-by.
    pub host: Host<'a>,
    /// Port of sent-by, if written.
    pub port: Option<u16>,
    /// sent-by as written (host and port).
    pub sent_by: &'a [u8],
    /// The via-params.
    pub params: Params<'a>,
}

/// `s[start..end]` (empty when out of range).
fn sub(s: &[u8], start: usize, end: usize) -> &[u8] {
    s.get(start..end).unwrap_or_default()
}

fn bad(what: &'static str, at: usize) -> ParseError {
    ParseError::new(ParseErrorKind::BadHeaderValue(what), at)
}

/// Reads a token at `i` (after LWS), returns (token, index after it).
fn token_at<'a>(s: &'a [u8], i: usize, what: &'static str) -> Result<(&'a [u8], usize)> {
    let start = skip_lws(s, i);
    let mut end = start;
    while s.get(end).is_some_and(|&b| is_token_char(b)) {
        end += 1;
    }
    if end == start {
        return Err(bad(what, start));
    }
    Ok((s.get(start..end).unwrap_or_default(), end))
}

fn expect(s: &[u8], i: usize, c: u8, what: &'static str) -> Result<usize> {
    let i = skip_lws(s, i);
    if s.get(i) == Some(&c) {
        Ok(i + 1)
    } else {
        Err(bad(what, i))
    }
}

impl<'a> Via<'a> {
    /// Parses one Via value (the header index has already split comma-separated values).
    pub fn parse(s: &'a [u8]) -> Result<Via<'a>> {
        // The usual `SIP/2.0/` is taken as it is; anything else token by token.
        let (protocol_name, protocol_version, i) = match s.get(..8) {
            Some(b"SIP/2.0/") => (sub(s, 0, 3), sub(s, 4, 7), 8),
            _ => {
                let (name, i) = token_at(s, 0, "expected protocol name")?;
                let i = expect(s, i, b'/', "expected '/' after protocol name")?;
                let (version, i) = token_at(s, i, "expected protocol version")?;
                let i = expect(s, i, b'/', "expected '/' after protocol version")?;
                (name, version, i)
            }
        };
        let (transport, i) = token_at(s, i, "expected transport")?;
        if !s.get(i).is_some_and(|&b| is_lws(b)) {
            return Err(bad("expected white space before sent-by", i));
        }
        let host_start = skip_lws(s, i);
        let mut host_end = host_start;
        // A host name the one-pass scan vouches for needs no second look.
        let mut known = None;
        if s.get(host_start) == Some(&b'[') {
            while let Some(&b) = s.get(host_end) {
                host_end += 1;
                if b == b']' {
                    break;
                }
            }
        } else {
            let (end, surely_name) = crate::uri::scan_host_name(s, host_start);
            host_end = end;
            if surely_name {
                known = Some(Host::Name(s.get(host_start..host_end).unwrap_or_default()));
            }
        }
        let host = match known {
            Some(host) => host,
            None => Host::parse(s.get(host_start..host_end).unwrap_or_default())
                .map_err(|e| e.shifted(host_start))?,
        };
        let mut j = skip_lws(s, host_end);
        let mut port = None;
        let mut sent_by_end = host_end;
        if s.get(j) == Some(&b':') {
            let p_start = skip_lws(s, j + 1);
            let mut p_end = p_start;
            while s.get(p_end).is_some_and(u8::is_ascii_digit) {
                p_end += 1;
            }
            let digits = s.get(p_start..p_end).unwrap_or_default();
            let value = crate::scan::parse_decimal(digits, u64::from(u16::MAX))
                .map_err(|e| e.shifted(p_start))?;
            port = u16::try_from(value).ok();
            sent_by_end = p_end;
            j = p_end;
        }
        let params = Params::parse(s.get(j..).unwrap_or_default()).map_err(|e| e.shifted(j))?;
        Ok(Via {
            protocol_name,
            protocol_version,
            transport,
            host,
            port,
            sent_by: s.get(host_start..sent_by_end).unwrap_or_default(),
            params,
        })
    }

    /// The `branch` parameter.
    #[inline]
    pub fn branch(&self) -> Option<&'a [u8]> {
        self.params.get(b"branch").flatten()
    }

    /// True when the branch starts with the RFC 3261 magic cookie and has something after it
    /// (RFC 4475 §3.2.1: a bare cookie falls back to RFC 2543 matching).
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.len() > MAGIC_COOKIE.len() && b.starts_with(MAGIC_COOKIE))
    }

    /// The `received` parameter (RFC 3261 §18.2.1), as written (brackets kept if the sender
    /// used them, RFC 5118 §4.5).
    pub fn received(&self) -> Option<&'a [u8]> {
        self.params.get(b"received").flatten()
    }

    /// The `rport` parameter (RFC 3581): `None` when absent, `Some(None)` when present without
    /// a value (the request asks for it), `Some(Some(port))` when filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params.get(b"rport").map(|v| {
            v.and_then(|v| crate::scan::parse_decimal(v, u64::from(u16::MAX)).ok())
                .and_then(|p| u16::try_from(p).ok())
        })
    }

    /// The `maddr` parameter.
    pub fn maddr(&self) -> Option<&'a [u8]> {
        self.params.get(b"maddr").flatten()
    }

    /// The `ttl` parameter (0..=255).
    pub fn ttl(&self) -> Option<u8> {
        self.params
            .get(b"ttl")
            .flatten()
            .and_then(|v| crate::scan::parse_decimal(v, 255).ok())
            .and_then(|v| u8::try_from(v).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_protocol_sent_by_and_params() {
        let v =
            Via::parse(b"SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK74bf9;rport;received=10.0.0.1")
                .unwrap();
        assert_eq!(v.protocol_name, b"SIP");
        assert_eq!(v.protocol_version, b"2.0");
        assert_eq!(v.transport, b"UDP");
        assert_eq!(v.port, Some(5060));
        assert_eq!(v.sent_by, b"192.0.2.1:5060");
        assert_eq!(v.branch(), Some(&b"z9hG4bK74bf9"[..]));
        assert!(v.has_rfc3261_branch());
        assert_eq!(v.rport(), Some(None));
        assert_eq!(v.received(), Some(&b"10.0.0.1"[..]));
    }

    #[test]
    fn tolerates_lws_around_separators_and_folds() {
        let v = Via::parse(b"SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(v.transport, b"UDP");
        assert_eq!(v.port, None);
        assert!(!v.has_rfc3261_branch());
        let v = Via::parse(
            b"SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8",
        )
        .unwrap();
        assert_eq!(v.sent_by, b"spindle.example.com");
        assert_eq!(v.branch(), Some(&b"z9hG4bK9ikj8"[..]));
    }

    #[test]
    fn rport_with_value_and_ttl_and_maddr() {
        let v = Via::parse(b"SIP/2.0/UDP h;rport=5070;ttl=16;maddr=224.0.0.1").unwrap();
        assert_eq!(v.rport(), Some(Some(5070)));
        assert_eq!(v.ttl(), Some(16));
        assert_eq!(v.maddr(), Some(&b"224.0.0.1"[..]));
    }

    #[test]
    fn ipv6_sent_by_with_port() {
        let v = Via::parse(b"SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKas3-111").unwrap();
        assert_eq!(v.port, Some(6050));
        assert_eq!(v.sent_by, b"[2001:db8::9:1]:6050");
    }

    #[test]
    fn bare_magic_cookie_is_not_an_rfc3261_branch() {
        let v = Via::parse(b"SIP/2.0/UDP host;branch=z9hG4bK").unwrap();
        assert!(!v.has_rfc3261_branch());
    }

    #[test]
    fn stray_separators_are_rejected() {
        assert!(Via::parse(b"SIP/2.0/UDP 192.0.2.15;;").is_err());
        assert!(Via::parse(b";").is_err());
        assert!(Via::parse(b"").is_err());
        assert!(Via::parse(b"SIP/2.0/UDP").is_err());
        assert!(Via::parse(b"SIP/2.0/UDP host:99999").is_err());
    }
}
