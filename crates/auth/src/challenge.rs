//! WWW-Authenticate / Proxy-Authenticate values as Kamailio's `get_challenge_hf` writes
//! them, and the Authentication-Info value of `add_authinfo_hdr`.
//!
//! Kamailio's format, parameters always in this order, separated by ", ":
//!
//! ```text
//! Digest realm="<realm>", nonce="<nonce>"[, qop="auth"|"auth-int"][, stale=true][, algorithm=<alg>]
//! ```
//!
//! * `qop` comes from the challenge flags (1: auth, 2: auth-int, 2 winning);
//! * `stale=true` only when asked (flag 16): Kamailio 5.6 does not add it by itself, the
//!   script passes 16 when the check returned -4;
//! * `algorithm` only when the `algorithm` module parameter is set (Kamailio 5.6 leaves it
//!   out by default, which means MD5); no `opaque`, no `domain`.
//!
//! Offering several algorithms (RFC 8760 §2.4, RFC 7616 §3.7) takes one header per
//! algorithm, the preferred (SHA-256) first, each with its own `algorithm` parameter;
//! Kamailio 5.6 offers one only.

use crate::algorithm::{Algorithm, HexDigest, Qop};

/// Which header challenges: 401 with WWW-Authenticate (registrars, `www_challenge`), or 407
/// with Proxy-Authenticate (proxies, `proxy_challenge`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeKind {
    /// 401 Unauthorized, WWW-Authenticate.
    Www,
    /// 407 Proxy Authentication Required, Proxy-Authenticate.
    Proxy,
}

impl ChallengeKind {
    /// `auth_challenge`'s choice: WWW for REGISTER, Proxy for anything else.
    pub fn for_method(method: &[u8]) -> ChallengeKind {
        if method == b"REGISTER" {
            ChallengeKind::Www
        } else {
            ChallengeKind::Proxy
        }
    }

    /// The header name.
    pub fn header_name(self) -> &'static str {
        match self {
            ChallengeKind::Www => "WWW-Authenticate",
            ChallengeKind::Proxy => "Proxy-Authenticate",
        }
    }

    /// The reply status and reason Kamailio sends.
    pub fn status(self) -> (u16, &'static str) {
        match self {
            ChallengeKind::Www => (401, "Unauthorized"),
            ChallengeKind::Proxy => (407, "Proxy Authentication Required"),
        }
    }
}

/// What goes into a challenge besides realm and nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChallengeOptions {
    /// `qop="..."`.
    pub qop: Option<Qop>,
    /// `stale=true`.
    pub stale: bool,
    /// `algorithm=...`; `None` leaves it out (MD5 implied).
    pub algorithm: Option<Algorithm>,
}

impl ChallengeOptions {
    /// From the flags of `www_challenge`, `proxy_challenge`, `auth_challenge`: 1 qop=auth,
    /// 2 qop=auth-int (wins over 1), 16 stale=true (4, "no 500 reply on failure", is the
    /// glue's business). `algorithm` is the module parameter.
    pub fn from_challenge_flags(flags: u32, algorithm: Option<Algorithm>) -> ChallengeOptions {
        let qop = if flags & 2 != 0 {
            Some(Qop::AuthInt)
        } else if flags & 1 != 0 {
            Some(Qop::Auth)
        } else {
            None
        };
        ChallengeOptions {
            qop,
            stale: flags & 16 != 0,
            algorithm,
        }
    }

    /// From the flags of `pv_www_authorize`/`pv_proxy_authorize`/`pv_auth_check`, which
    /// build a challenge (into `$digest_challenge`) on failure only when one of 2 (no qop),
    /// 4 (qop=auth), 8 (qop=auth-int, wins) is set; 16 adds stale=true. `None` when no
    /// challenge is asked for. Kamailio sets stale from the failed credentials, not from
    /// flag 16, here: pass `stale` = the outcome was -4.
    pub fn from_pv_flags(
        flags: u32,
        stale: bool,
        algorithm: Option<Algorithm>,
    ) -> Option<ChallengeOptions> {
        if flags & 14 == 0 {
            return None;
        }
        let qop = if flags & 8 != 0 {
            Some(Qop::AuthInt)
        } else if flags & 4 != 0 {
            Some(Qop::Auth)
        } else {
            None
        };
        Some(ChallengeOptions {
            qop,
            stale,
            algorithm,
        })
    }
}

fn push_quoted(out: &mut Vec<u8>, value: &[u8]) {
    out.push(b'"');
    for &b in value {
        // RFC 3261 quoted-pair: a realm holding '"' or '\' stays one parameter (Kamailio
        // copies the realm as it is).
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// The header value: `Digest realm="...", nonce="..."[, qop="..."][, stale=true][,
/// algorithm=...]`.
pub fn challenge_value(realm: &[u8], nonce: &str, opts: &ChallengeOptions) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + realm.len() + nonce.len());
    out.extend_from_slice(b"Digest realm=");
    push_quoted(&mut out, realm);
    out.extend_from_slice(b", nonce=");
    push_quoted(&mut out, nonce.as_bytes());
    if let Some(q) = opts.qop {
        out.extend_from_slice(b", qop=\"");
        out.extend_from_slice(q.as_str().as_bytes());
        out.push(b'"');
    }
    if opts.stale {
        out.extend_from_slice(b", stale=true");
    }
    if let Some(a) = opts.algorithm {
        out.extend_from_slice(b", algorithm=");
        out.extend_from_slice(a.as_str().as_bytes());
    }
    out
}

/// The whole header line, `Name: value\r\n`, as Kamailio appends it to the reply (and
/// stores it in `$digest_challenge` for the `pv_*` functions).
pub fn challenge_header(
    kind: ChallengeKind,
    realm: &[u8],
    nonce: &str,
    opts: &ChallengeOptions,
) -> Vec<u8> {
    let value = challenge_value(realm, nonce, opts);
    let mut out = Vec::with_capacity(kind.header_name().len() + 4 + value.len());
    out.extend_from_slice(kind.header_name().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(&value);
    out.extend_from_slice(b"\r\n");
    out
}

/// One header value per algorithm, in the order given (put SHA-256 first: RFC 8760 §2.4,
/// clients take the first they support), all with the same nonce, each naming its
/// algorithm.
pub fn challenge_values(
    realm: &[u8],
    nonce: &str,
    algorithms: &[Algorithm],
    qop: Option<Qop>,
    stale: bool,
) -> Vec<Vec<u8>> {
    algorithms
        .iter()
        .map(|&a| {
            challenge_value(
                realm,
                nonce,
                &ChallengeOptions {
                    qop,
                    stale,
                    algorithm: Some(a),
                },
            )
        })
        .collect()
}

/// The Authentication-Info value Kamailio's `add_authinfo_hdr` adds to a 2xx (RFC 7616
/// §3.5): `nextnonce="...", qop=..., rspauth="...", cnonce="...", nc=...`. `rspauth` is
/// [`rspauth`]'s result; without one-time nonces Kamailio passes the current nonce as the
/// next.
pub fn authentication_info_value(
    next_nonce: &str,
    qop: Qop,
    rspauth: &HexDigest,
    cnonce: &[u8],
    nc: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + next_nonce.len() + cnonce.len());
    out.extend_from_slice(b"nextnonce=");
    push_quoted(&mut out, next_nonce.as_bytes());
    out.extend_from_slice(b", qop=");
    out.extend_from_slice(qop.as_str().as_bytes());
    out.extend_from_slice(b", rspauth=\"");
    out.extend_from_slice(rspauth.as_bytes());
    out.extend_from_slice(b"\", cnonce=");
    push_quoted(&mut out, cnonce);
    out.extend_from_slice(b", nc=");
    out.extend_from_slice(nc);
    out
}

/// `rspauth` (RFC 7616 §3.5): the response computed with an empty method.
pub fn rspauth(
    alg: Algorithm,
    ha1: &[u8],
    nonce: &[u8],
    uri: &[u8],
    qop: crate::algorithm::QopInput<'_>,
) -> HexDigest {
    crate::algorithm::response(
        alg,
        ha1,
        &crate::algorithm::ResponseInput {
            method: b"",
            uri,
            nonce,
            qop: Some(qop),
            body: b"",
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: Vec<u8>) -> String {
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn default_challenge_is_realm_and_nonce_only() {
        let v = challenge_value(b"example.com", "abc", &ChallengeOptions::default());
        assert_eq!(s(v), r#"Digest realm="example.com", nonce="abc""#);
    }

    #[test]
    fn parameters_come_in_kamailio_order() {
        let opts = ChallengeOptions {
            qop: Some(Qop::Auth),
            stale: true,
            algorithm: Some(Algorithm::Sha256),
        };
        assert_eq!(
            s(challenge_value(b"example.com", "abc", &opts)),
            r#"Digest realm="example.com", nonce="abc", qop="auth", stale=true, algorithm=SHA-256"#
        );
    }

    #[test]
    fn header_line_has_name_and_crlf() {
        let opts = ChallengeOptions::from_challenge_flags(1, None);
        assert_eq!(
            s(challenge_header(
                ChallengeKind::Proxy,
                b"a.org",
                "n1",
                &opts
            )),
            "Proxy-Authenticate: Digest realm=\"a.org\", nonce=\"n1\", qop=\"auth\"\r\n"
        );
        assert_eq!(
            s(challenge_header(
                ChallengeKind::Www,
                b"a.org",
                "n1",
                &ChallengeOptions::default()
            )),
            "WWW-Authenticate: Digest realm=\"a.org\", nonce=\"n1\"\r\n"
        );
    }

    #[test]
    fn challenge_flags_map_like_kamailio() {
        let f = ChallengeOptions::from_challenge_flags;
        assert_eq!(f(0, None).qop, None);
        assert_eq!(f(1, None).qop, Some(Qop::Auth));
        assert_eq!(f(2, None).qop, Some(Qop::AuthInt));
        assert_eq!(f(3, None).qop, Some(Qop::AuthInt));
        assert!(!f(1, None).stale);
        assert!(f(17, None).stale);
        assert_eq!(f(4, Some(Algorithm::Md5)).algorithm, Some(Algorithm::Md5));
    }

    #[test]
    fn pv_flags_map_like_kamailio() {
        let f = ChallengeOptions::from_pv_flags;
        assert_eq!(f(0, false, None), None);
        assert_eq!(f(1, false, None), None);
        assert_eq!(f(2, false, None).unwrap().qop, None);
        assert_eq!(f(4, false, None).unwrap().qop, Some(Qop::Auth));
        assert_eq!(f(12, true, None).unwrap().qop, Some(Qop::AuthInt));
        assert!(f(4, true, None).unwrap().stale);
    }

    #[test]
    fn kind_follows_method() {
        assert_eq!(ChallengeKind::for_method(b"REGISTER"), ChallengeKind::Www);
        assert_eq!(ChallengeKind::for_method(b"INVITE"), ChallengeKind::Proxy);
        assert_eq!(ChallengeKind::Www.status(), (401, "Unauthorized"));
        assert_eq!(
            ChallengeKind::Proxy.status(),
            (407, "Proxy Authentication Required")
        );
    }

    #[test]
    fn several_algorithms_give_one_value_each_in_order() {
        let v = challenge_values(
            b"a.org",
            "n",
            &[Algorithm::Sha256, Algorithm::Md5],
            Some(Qop::Auth),
            false,
        );
        assert_eq!(
            v.into_iter().map(s).collect::<Vec<_>>(),
            [
                r#"Digest realm="a.org", nonce="n", qop="auth", algorithm=SHA-256"#,
                r#"Digest realm="a.org", nonce="n", qop="auth", algorithm=MD5"#,
            ]
        );
    }

    #[test]
    fn quotes_in_realm_are_escaped_and_value_parses_back() {
        let v = challenge_value(br#"we "quote""#, "n", &ChallengeOptions::default());
        let c = sable_sip::Credentials::parse(&v).unwrap();
        assert_eq!(&*c.realm().unwrap(), br#"we "quote""#);
        assert_eq!(&*c.nonce().unwrap(), b"n");
    }

    #[test]
    fn authentication_info_format() {
        let ha1 = crate::algorithm::ha1(Algorithm::Md5, b"alice", b"example.com", b"secret");
        let q = crate::algorithm::QopInput {
            qop: Qop::Auth,
            nc: b"00000001",
            cnonce: b"0a4f113b",
        };
        let r = rspauth(
            Algorithm::Md5,
            ha1.as_bytes(),
            b"abc123",
            b"sip:example.com",
            q,
        );
        // HA2 = printf ':sip:example.com' | md5sum, then
        // printf '<HA1>:abc123:00000001:0a4f113b:auth:<HA2>' | md5sum.
        assert_eq!(r.as_str(), "d1f217ca78ef7c92944e1c14ae7112b6");
        let v = s(authentication_info_value(
            "abc123",
            Qop::Auth,
            &r,
            b"0a4f113b",
            b"00000001",
        ));
        assert_eq!(
            v,
            format!(
                r#"nextnonce="abc123", qop=auth, rspauth="{r}", cnonce="0a4f113b", nc=00000001"#
            )
        );
    }
}
