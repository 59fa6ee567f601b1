//! Digest hash algorithms and the RFC 7616 §3.4 computations (HA1, the response), in
//! lowercase hex.
//!
//! * `A1 = username ":" realm ":" password`, and for the `-sess` variants
//!   `H(username ":" realm ":" password) ":" nonce ":" cnonce` (RFC 7616 §3.4.2);
//! * `A2 = method ":" digest-uri`, or `method ":" digest-uri ":" H(entity-body)` for
//!   `qop=auth-int` (§3.4.3);
//! * with a qop: `response = KD(H(A1), nonce ":" nc ":" cnonce ":" qop ":" H(A2))`
//!   (§3.4.1); without one (RFC 2069 compatibility, RFC 2617 §3.2.2.1):
//!   `response = KD(H(A1), nonce ":" H(A2))`, where `KD(s, d) = H(s ":" d)`.
//!
//! Every value is hashed as the octets the client sent (quotes removed): no case folding,
//! no normalisation, as Kamailio does.

use md5::Md5;
use sha2::{Digest, Sha256};

/// A digest algorithm (the `algorithm` parameter; MD5 when absent, RFC 7616 §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5` (RFC 2617), the default.
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256` (RFC 7616, RFC 8760 for SIP).
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
}

impl Algorithm {
    /// Every algorithm this crate computes, strongest first.
    pub const ALL: [Algorithm; 4] = [
        Algorithm::Sha256,
        Algorithm::Sha256Sess,
        Algorithm::Md5,
        Algorithm::Md5Sess,
    ];

    /// Reads an `algorithm` token (case-insensitive, RFC 7616 §3.3: "MD5", "SHA-256",
    /// with "-sess" for the session variants). `None` for any other token (SHA-512-256,
    /// AKAv1-MD5...).
    pub fn parse(token: &[u8]) -> Option<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.as_str().as_bytes().eq_ignore_ascii_case(token))
    }

    /// The algorithm named by credentials: MD5 when the parameter is absent.
    pub fn from_param(param: Option<&[u8]>) -> Option<Algorithm> {
        match param {
            None => Some(Algorithm::Md5),
            Some(token) => Algorithm::parse(token),
        }
    }

    /// The token as written in challenges ("MD5", "MD5-sess", "SHA-256", "SHA-256-sess").
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    /// Length of a hash in hex digits (32 for MD5, 64 for SHA-256).
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => 32,
            Algorithm::Sha256 | Algorithm::Sha256Sess => 64,
        }
    }

    /// True for the `-sess` variants.
    pub fn is_session(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }

    /// The same hash without the session variant (what a stored HA1 is computed with).
    pub fn base(self) -> Algorithm {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => Algorithm::Md5,
            Algorithm::Sha256 | Algorithm::Sha256Sess => Algorithm::Sha256,
        }
    }

    /// `H(p1 ":" p2 ":" ...)`: the parts joined with colons, hashed, in lowercase hex.
    pub fn hash_joined(self, parts: &[&[u8]]) -> HexDigest {
        fn run<D: Digest>(mut d: D, parts: &[&[u8]]) -> HexDigest {
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(p);
            }
            HexDigest::from_bytes(&d.finalize())
        }
        match self.base() {
            Algorithm::Sha256 => run(Sha256::new(), parts),
            _ => run(Md5::new(), parts),
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A hash in lowercase hex, on the stack (at most 64 digits).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HexDigest {
    buf: [u8; 64],
    len: u8,
}

impl HexDigest {
    fn from_bytes(bytes: &[u8]) -> HexDigest {
        let mut out = HexDigest {
            buf: [0; 64],
            len: 0,
        };
        let n = hex_encode(bytes, &mut out.buf);
        out.len = n as u8;
        out
    }

    /// The hex digits.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// The hex digits as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written into the buffer.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

impl std::fmt::Debug for HexDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for HexDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Writes `bytes` as lowercase hex into `out`; returns the digits written (stops when
/// `out` is full).
pub(crate) fn hex_encode(bytes: &[u8], out: &mut [u8]) -> usize {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut n = 0;
    for (&b, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        if let [hi, lo] = pair {
            *hi = DIGITS.get(usize::from(b >> 4)).copied().unwrap_or(b'0');
            *lo = DIGITS.get(usize::from(b & 0x0f)).copied().unwrap_or(b'0');
            n += 2;
        }
    }
    n
}

/// The quality of protection (RFC 7616 §3.3 `qop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qop {
    /// `auth`: authentication only.
    Auth,
    /// `auth-int`: authentication with integrity protection of the body.
    AuthInt,
}

impl Qop {
    /// Reads a qop token (case-insensitive).
    pub fn parse(token: &[u8]) -> Option<Qop> {
        if token.eq_ignore_ascii_case(b"auth") {
            Some(Qop::Auth)
        } else if token.eq_ignore_ascii_case(b"auth-int") {
            Some(Qop::AuthInt)
        } else {
            None
        }
    }

    /// The token ("auth" or "auth-int").
    pub fn as_str(self) -> &'static str {
        match self {
            Qop::Auth => "auth",
            Qop::AuthInt => "auth-int",
        }
    }
}

/// The qop part of a response computation: the qop the client chose, its nonce count (the
/// 8 hex digits as written) and its cnonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QopInput<'a> {
    /// `qop`.
    pub qop: Qop,
    /// `nc`, as written (8 hex digits).
    pub nc: &'a [u8],
    /// `cnonce`.
    pub cnonce: &'a [u8],
}

/// What a response is computed over, besides HA1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseInput<'a> {
    /// The request method (the empty string for `rspauth`, RFC 7616 §3.5).
    pub method: &'a [u8],
    /// `uri` (digest-uri) as the client sent it.
    pub uri: &'a [u8],
    /// `nonce`.
    pub nonce: &'a [u8],
    /// `qop`, `nc`, `cnonce`; `None` for the RFC 2069 form.
    pub qop: Option<QopInput<'a>>,
    /// The message body (hashed into A2 for `qop=auth-int` only).
    pub body: &'a [u8],
}

/// `H(username ":" realm ":" password)` in hex: the HA1 a subscriber table stores (for a
/// `-sess` algorithm, the base hash; the session key is derived per response).
pub fn ha1(alg: Algorithm, username: &[u8], realm: &[u8], password: &[u8]) -> HexDigest {
    alg.hash_joined(&[username, realm, password])
}

/// The `response` (RFC 7616 §3.4.1) from a stored HA1 (hex, as [`ha1`] gives it).
pub fn response(alg: Algorithm, ha1: &[u8], input: &ResponseInput<'_>) -> HexDigest {
    let session;
    let key: &[u8] = if alg.is_session() {
        let cnonce = input.qop.map(|q| q.cnonce).unwrap_or_default();
        session = alg.hash_joined(&[ha1, input.nonce, cnonce]);
        session.as_bytes()
    } else {
        ha1
    };
    let body_hash;
    let ha2 = match input.qop {
        Some(QopInput {
            qop: Qop::AuthInt, ..
        }) => {
            body_hash = alg.hash_joined(&[input.body]);
            alg.hash_joined(&[input.method, input.uri, body_hash.as_bytes()])
        }
        _ => alg.hash_joined(&[input.method, input.uri]),
    };
    match input.qop {
        Some(q) => alg.hash_joined(&[
            key,
            input.nonce,
            q.nc,
            q.cnonce,
            q.qop.as_str().as_bytes(),
            ha2.as_bytes(),
        ]),
        None => alg.hash_joined(&[key, input.nonce, ha2.as_bytes()]),
    }
}

/// Compares two octet strings in time that depends only on their lengths (the length of a
/// digest is public), so that a forged response learns nothing from timing.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc7616_input(qop: Qop) -> ResponseInput<'static> {
        ResponseInput {
            method: b"GET",
            uri: b"/dir/index.html",
            nonce: b"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            qop: Some(QopInput {
                qop,
                nc: b"00000001",
                cnonce: b"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            }),
            body: b"",
        }
    }

    #[test]
    fn rfc7616_section_3_9_1_sha256_example() {
        let h = ha1(
            Algorithm::Sha256,
            b"Mufasa",
            b"http-auth@example.org",
            b"Circle of Life",
        );
        let r = response(Algorithm::Sha256, h.as_bytes(), &rfc7616_input(Qop::Auth));
        assert_eq!(
            r.as_str(),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn rfc7616_section_3_9_1_md5_example() {
        let h = ha1(
            Algorithm::Md5,
            b"Mufasa",
            b"http-auth@example.org",
            b"Circle of Life",
        );
        let r = response(Algorithm::Md5, h.as_bytes(), &rfc7616_input(Qop::Auth));
        assert_eq!(r.as_str(), "8ca523f5e9506fed4657c9700eebdbec");
    }

    #[test]
    fn rfc2617_section_3_5_example() {
        let h = ha1(
            Algorithm::Md5,
            b"Mufasa",
            b"testrealm@host.com",
            b"Circle Of Life",
        );
        let input = ResponseInput {
            method: b"GET",
            uri: b"/dir/index.html",
            nonce: b"dcd98b7102dd2f0e8b11d0f600bfb0c093",
            qop: Some(QopInput {
                qop: Qop::Auth,
                nc: b"00000001",
                cnonce: b"0a4f113b",
            }),
            body: b"",
        };
        assert_eq!(
            response(Algorithm::Md5, h.as_bytes(), &input).as_str(),
            "6629fae49393a05397450978507c4ef1"
        );
    }

    // Hand-computed with coreutils (`h() { printf '%s' "$1" | md5sum; }`, sha256sum alike):
    //   HA1 = h 'alice:example.com:secret', HA2 = h 'REGISTER:sip:example.com',
    //   no qop: h "$HA1:abc123:$HA2"; qop=auth: h "$HA1:abc123:00000001:0a4f113b:auth:$HA2";
    //   MD5-sess: S = h "$HA1:abc123:0a4f113b", then h "$S:abc123:00000001:0a4f113b:auth:$HA2";
    //   auth-int: HB = h 'v=0', HA2 = h "INVITE:sip:bob@example.com:$HB", nc 00000002.
    const SIP_HA1_MD5: &str = "b1726872c344b6dc8365b774f8fd6412";
    const SIP_HA1_SHA256: &str = "ed8925b20f9a77b8f8f8d5f8e4467fe32b866f7208ab9e4b20595e9821a0fdee";

    fn register(qop: Option<Qop>) -> ResponseInput<'static> {
        ResponseInput {
            method: b"REGISTER",
            uri: b"sip:example.com",
            nonce: b"abc123",
            qop: qop.map(|qop| QopInput {
                qop,
                nc: b"00000001",
                cnonce: b"0a4f113b",
            }),
            body: b"",
        }
    }

    #[test]
    fn sip_register_ha1_by_hand() {
        let md5 = ha1(Algorithm::Md5, b"alice", b"example.com", b"secret");
        assert_eq!(md5.as_str(), SIP_HA1_MD5);
        let sha = ha1(Algorithm::Sha256, b"alice", b"example.com", b"secret");
        assert_eq!(sha.as_str(), SIP_HA1_SHA256);
        // A session variant stores the same HA1 as its base.
        let sess = ha1(Algorithm::Md5Sess, b"alice", b"example.com", b"secret");
        assert_eq!(sess.as_str(), SIP_HA1_MD5);
    }

    #[test]
    fn sip_register_without_qop_is_rfc2069_form() {
        let r = response(Algorithm::Md5, SIP_HA1_MD5.as_bytes(), &register(None));
        assert_eq!(r.as_str(), "d1d211daa2e0d7f43de25792410f5057");
    }

    #[test]
    fn sip_register_qop_auth_md5_and_sha256() {
        let r = response(
            Algorithm::Md5,
            SIP_HA1_MD5.as_bytes(),
            &register(Some(Qop::Auth)),
        );
        assert_eq!(r.as_str(), "d21918bd99c83d069e6d288be2db2e3c");
        let r = response(
            Algorithm::Sha256,
            SIP_HA1_SHA256.as_bytes(),
            &register(Some(Qop::Auth)),
        );
        assert_eq!(
            r.as_str(),
            "cc10d19d2fd4ed912cd152ce2f1a6034e418cfeb65b6cbc5902a0a25cd08b328"
        );
    }

    #[test]
    fn sip_register_md5_sess() {
        let r = response(
            Algorithm::Md5Sess,
            SIP_HA1_MD5.as_bytes(),
            &register(Some(Qop::Auth)),
        );
        assert_eq!(r.as_str(), "a1e3d79684932c7d62f1ce20bfc13594");
    }

    #[test]
    fn sip_invite_auth_int_hashes_the_body() {
        let input = ResponseInput {
            method: b"INVITE",
            uri: b"sip:bob@example.com",
            nonce: b"abc123",
            qop: Some(QopInput {
                qop: Qop::AuthInt,
                nc: b"00000002",
                cnonce: b"0a4f113b",
            }),
            body: b"v=0",
        };
        let r = response(Algorithm::Md5, SIP_HA1_MD5.as_bytes(), &input);
        assert_eq!(r.as_str(), "16a43499ed4a07e7600b3df3766a7fcf");
    }

    #[test]
    fn algorithm_tokens_round_trip_case_insensitively() {
        for a in Algorithm::ALL {
            assert_eq!(Algorithm::parse(a.as_str().as_bytes()), Some(a));
            assert_eq!(
                Algorithm::parse(a.as_str().to_ascii_lowercase().as_bytes()),
                Some(a)
            );
        }
        assert_eq!(Algorithm::from_param(None), Some(Algorithm::Md5));
        assert_eq!(Algorithm::parse(b"SHA-512-256"), None);
        assert_eq!(Algorithm::parse(b"AKAv1-MD5"), None);
    }

    #[test]
    fn constant_time_eq_matches_slice_equality() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"bbc"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"abc", b"ABC"));
    }
}
