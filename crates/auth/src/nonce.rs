//! Nonces bound to a server secret: stateless to check, tamper-evident, carrying their
//! creation time and an index for nonce-count tracking.
//!
//! A nonce is 56 lowercase hex digits (token characters, so it needs no escaping in a
//! quoted string):
//!
//! ```text
//! created (8 octets, UNIX seconds, big-endian) | index (4 octets) | tag (16 octets)
//! tag = HMAC-SHA256(secret, "sable-nonce-v1" | created | index), first 16 octets
//! ```
//!
//! HMAC (RFC 2104) is the standard keyed hash: unlike `H(secret | data)` it is not open to
//! length extension, and 128 bits of tag make a forgery a 2^-128 guess. Kamailio binds its
//! nonces the same way in spirit (`MD5(expire, since, secret)` in base64).
//!
//! [`NonceMaker::check`] follows Kamailio's `check_nonce`: a nonce that does not decode is
//! invalid; one made before `up_since` (an earlier run of the server) is stale before the
//! tag is looked at, as Kamailio does; a wrong tag is invalid; a nonce more than `max_drift`
//! seconds in the future is stale; then one older than `expire_secs` is stale (valid from
//! `created` to `created + expire_secs` inclusive). Kamailio checks the drift before the
//! tag; checking the tag first means that any change to a nonce gives invalid, never
//! stale (a forged nonce is not "ours but old"), with no difference for honest clients.
//! Time is always a parameter: this module reads no clock.

use sha2::{Digest, Sha256};

use crate::algorithm::hex_encode;

/// Kamailio's default `nonce_expire`: 300 seconds.
pub const DEFAULT_EXPIRE_SECS: u64 = 300;
/// Kamailio's default `nonce_auth_max_drift`: 3 seconds.
pub const DEFAULT_MAX_DRIFT_SECS: u64 = 3;

const DOMAIN: &[u8] = b"sable-nonce-v1";
const TAG_LEN: usize = 16;
const RAW_LEN: usize = 8 + 4 + TAG_LEN;
/// Length of every nonce this module makes.
pub const NONCE_LEN: usize = RAW_LEN * 2;

/// What [`NonceMaker::check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    /// Made by us with this secret and still fresh.
    Valid {
        /// Creation time (UNIX seconds).
        created: u64,
        /// The index for nonce-count tracking ([`crate::NonceTracker`]).
        index: u32,
    },
    /// Made by us but too old (or from the future, or from before `up_since`): the client
    /// should be challenged again with `stale=true` (Kamailio's -4).
    Stale,
    /// Not made by us, truncated or tampered with (Kamailio's -1).
    Invalid,
}

/// Makes and checks nonces with one secret. Cheap to share between threads (`Sync`, no
/// interior mutability): the keyed hash states are computed once here.
#[derive(Clone)]
pub struct NonceMaker {
    inner: Sha256,
    outer: Sha256,
    expire_secs: u64,
    max_drift_secs: u64,
    up_since: Option<u64>,
}

impl std::fmt::Debug for NonceMaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The keyed states are secret material: never print them.
        f.debug_struct("NonceMaker")
            .field("expire_secs", &self.expire_secs)
            .field("max_drift_secs", &self.max_drift_secs)
            .field("up_since", &self.up_since)
            .finish_non_exhaustive()
    }
}

impl NonceMaker {
    /// A maker keyed with `secret` (Kamailio's `secret` parameter; use at least 16 random
    /// octets, and the same secret on every server that must accept another's nonces),
    /// nonces valid for `expire_secs` (Kamailio's `nonce_expire`), `max_drift`
    /// [`DEFAULT_MAX_DRIFT_SECS`], no `up_since`.
    pub fn new(secret: &[u8], expire_secs: u64) -> NonceMaker {
        // HMAC key schedule (RFC 2104 §2): keys longer than a block are hashed first.
        const BLOCK: usize = 64;
        let mut key = [0u8; BLOCK];
        if secret.len() > BLOCK {
            let digest = Sha256::digest(secret);
            for (k, d) in key.iter_mut().zip(digest.iter()) {
                *k = *d;
            }
        } else {
            for (k, s) in key.iter_mut().zip(secret) {
                *k = *s;
            }
        }
        let mut ipad = [0x36u8; BLOCK];
        let mut opad = [0x5cu8; BLOCK];
        for ((i, o), k) in ipad.iter_mut().zip(opad.iter_mut()).zip(key) {
            *i ^= k;
            *o ^= k;
        }
        let mut inner = Sha256::new();
        inner.update(ipad);
        let mut outer = Sha256::new();
        outer.update(opad);
        NonceMaker {
            inner,
            outer,
            expire_secs,
            max_drift_secs: DEFAULT_MAX_DRIFT_SECS,
            up_since: None,
        }
    }

    /// Sets how far in the future a creation time may be before the nonce is stale
    /// (Kamailio's `nonce_auth_max_drift`, for clusters whose clocks differ a little).
    pub fn with_max_drift(mut self, secs: u64) -> NonceMaker {
        self.max_drift_secs = secs;
        self
    }

    /// Nonces created before `t` are stale without further checks, as Kamailio treats
    /// nonces from before its start: a client holding one from an earlier run is asked to
    /// recompute silently rather than told its credentials are bad.
    pub fn with_up_since(mut self, t: u64) -> NonceMaker {
        self.up_since = Some(t);
        self
    }

    /// The lifetime of a nonce in seconds.
    pub fn expire_secs(&self) -> u64 {
        self.expire_secs
    }

    fn tag(&self, created: u64, index: u32) -> [u8; 32] {
        let mut inner = self.inner.clone();
        inner.update(DOMAIN);
        inner.update(created.to_be_bytes());
        inner.update(index.to_be_bytes());
        let mut outer = self.outer.clone();
        outer.update(inner.finalize());
        outer.finalize().into()
    }

    /// A nonce created at `now` (UNIX seconds) with nonce-count index `index` (from
    /// [`crate::NonceTracker::issue`], or 0 when nonce counts are not tracked).
    pub fn make(&self, now: u64, index: u32) -> String {
        let mut raw = [0u8; RAW_LEN];
        let tag = self.tag(now, index);
        for (dst, src) in raw.iter_mut().zip(
            now.to_be_bytes()
                .into_iter()
                .chain(index.to_be_bytes())
                .chain(tag.into_iter().take(TAG_LEN)),
        ) {
            *dst = src;
        }
        let mut out = [0u8; NONCE_LEN];
        let n = hex_encode(&raw, &mut out);
        out.get(..n)
            .and_then(|s| std::str::from_utf8(s).ok())
            .unwrap_or_default()
            .to_owned()
    }

    /// Checks a nonce at `now` (UNIX seconds).
    pub fn check(&self, nonce: &[u8], now: u64) -> NonceCheck {
        let Some(raw) = decode(nonce) else {
            return NonceCheck::Invalid;
        };
        let (head, tag) = raw.split_at(12);
        let (created, index) = head.split_at(8);
        let created = u64::from_be_bytes(created.try_into().unwrap_or_default());
        let index = u32::from_be_bytes(index.try_into().unwrap_or_default());
        if self.up_since.is_some_and(|t| created < t && created < now) {
            return NonceCheck::Stale;
        }
        let expected = self.tag(created, index);
        let expected = expected.get(..TAG_LEN).unwrap_or_default();
        if !crate::algorithm::constant_time_eq(expected, tag) {
            return NonceCheck::Invalid;
        }
        if created > now.saturating_add(self.max_drift_secs) {
            return NonceCheck::Stale;
        }
        if now > created.saturating_add(self.expire_secs) {
            return NonceCheck::Stale;
        }
        NonceCheck::Valid { created, index }
    }
}

fn decode(nonce: &[u8]) -> Option<[u8; RAW_LEN]> {
    if nonce.len() != NONCE_LEN {
        return None;
    }
    // Lowercase only: every nonce we make is lowercase, so any other spelling is not ours.
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let mut raw = [0u8; RAW_LEN];
    for (dst, pair) in raw.iter_mut().zip(nonce.chunks_exact(2)) {
        let [hi, lo] = pair else { return None };
        *dst = (nibble(*hi)? << 4) | nibble(*lo)?;
    }
    Some(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: u64 = 1_700_000_000;

    fn maker() -> NonceMaker {
        NonceMaker::new(b"0123456789abcdef-test-secret", DEFAULT_EXPIRE_SECS)
    }

    #[test]
    fn nonce_is_printable_token_text_of_fixed_length() {
        let n = maker().make(T0, 7);
        assert_eq!(n.len(), NONCE_LEN);
        assert!(n
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    }

    #[test]
    fn fresh_nonce_is_valid_with_its_time_and_index() {
        let m = maker();
        let n = m.make(T0, 42);
        assert_eq!(
            m.check(n.as_bytes(), T0),
            NonceCheck::Valid {
                created: T0,
                index: 42
            }
        );
    }

    #[test]
    fn nonce_is_valid_until_expire_then_stale() {
        let m = maker();
        let n = m.make(T0, 1);
        assert!(matches!(
            m.check(n.as_bytes(), T0 + DEFAULT_EXPIRE_SECS),
            NonceCheck::Valid { .. }
        ));
        assert_eq!(
            m.check(n.as_bytes(), T0 + DEFAULT_EXPIRE_SECS + 1),
            NonceCheck::Stale
        );
    }

    #[test]
    fn nonce_from_the_future_beyond_drift_is_stale() {
        let m = maker();
        let n = m.make(T0 + 3, 1);
        assert!(matches!(
            m.check(n.as_bytes(), T0),
            NonceCheck::Valid { .. }
        ));
        let n = m.make(T0 + 4, 1);
        assert_eq!(m.check(n.as_bytes(), T0), NonceCheck::Stale);
    }

    #[test]
    fn nonce_from_before_up_since_is_stale() {
        let m = maker().with_up_since(T0 + 10);
        let n = m.make(T0, 1);
        assert_eq!(m.check(n.as_bytes(), T0 + 20), NonceCheck::Stale);
        let n = m.make(T0 + 10, 1);
        assert!(matches!(
            m.check(n.as_bytes(), T0 + 20),
            NonceCheck::Valid { .. }
        ));
    }

    #[test]
    fn nonce_of_another_secret_is_invalid() {
        let other = NonceMaker::new(b"another secret", DEFAULT_EXPIRE_SECS);
        let n = other.make(T0, 1);
        assert_eq!(maker().check(n.as_bytes(), T0), NonceCheck::Invalid);
    }

    #[test]
    fn garbage_and_truncated_nonces_are_invalid() {
        let m = maker();
        let n = m.make(T0, 1);
        assert_eq!(m.check(b"", T0), NonceCheck::Invalid);
        assert_eq!(m.check(b"abc", T0), NonceCheck::Invalid);
        assert_eq!(
            m.check(&n.as_bytes()[..NONCE_LEN - 2], T0),
            NonceCheck::Invalid
        );
        assert_eq!(
            m.check(n.to_ascii_uppercase().as_bytes(), T0),
            NonceCheck::Invalid
        );
        let mut long = n.clone();
        long.push_str("00");
        assert_eq!(m.check(long.as_bytes(), T0), NonceCheck::Invalid);
    }

    #[test]
    fn changing_time_or_index_invalidates_the_tag() {
        let m = maker();
        let n = m.make(T0, 1);
        // Claim a later creation time (to extend the lifetime): digit 15 is the low nibble
        // of the last octet of `created`.
        let mut b = n.into_bytes();
        b[15] = if b[15] == b'9' { b'8' } else { b'9' };
        assert_eq!(m.check(&b, T0), NonceCheck::Invalid);
    }

    #[test]
    fn long_secrets_are_hashed_first_like_hmac() {
        let long = [7u8; 100];
        let m = NonceMaker::new(&long, 60);
        let n = m.make(T0, 0);
        assert!(matches!(
            m.check(n.as_bytes(), T0),
            NonceCheck::Valid { .. }
        ));
    }

    #[test]
    fn hmac_matches_rfc4231_test_case_2() {
        // RFC 4231 §4.3: key "Jefe", data "what do ya want for nothing?".
        let m = NonceMaker::new(b"Jefe", 0);
        let mut inner = m.inner.clone();
        inner.update(b"what do ya want for nothing?");
        let mut outer = m.outer.clone();
        outer.update(inner.finalize());
        let mut hex = [0u8; 64];
        hex_encode(&outer.finalize(), &mut hex);
        assert_eq!(
            &hex[..],
            b"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn debug_does_not_print_key_material() {
        let s = format!("{:?}", maker());
        assert!(s.contains("expire_secs"));
        assert!(!s.contains("inner"));
    }

    proptest! {
        #[test]
        fn valid_through_expiry_then_stale(t in 1_000u64..4_000_000_000, index: u32, dt in 0u64..1_000) {
            let m = maker();
            let n = m.make(t, index);
            let at = t + dt;
            let got = m.check(n.as_bytes(), at);
            if dt <= DEFAULT_EXPIRE_SECS {
                prop_assert_eq!(got, NonceCheck::Valid { created: t, index });
            } else {
                prop_assert_eq!(got, NonceCheck::Stale);
            }
        }

        #[test]
        fn any_single_byte_change_is_invalid(t in 1_000u64..4_000_000_000, index: u32, pos in 0usize..NONCE_LEN, byte: u8) {
            let m = maker();
            let n = m.make(t, index);
            let mut b = n.into_bytes();
            prop_assume!(b[pos] != byte);
            b[pos] = byte;
            prop_assert_eq!(m.check(&b, t), NonceCheck::Invalid);
        }
    }
}
