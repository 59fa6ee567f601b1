//! Choosing the credentials to check among a request's Authorization or
//! Proxy-Authorization values, as Kamailio's `find_credentials` does.
//!
//! The values come parsed from `sable_sip::Message::credentials` (which fails when any value
//! of the header is malformed: Kamailio answers -1 then, see
//! [`crate::AuthError::MalformedCredentials`]). The first Digest value whose `realm` equals
//! the wanted realm, compared case-insensitively, is chosen; values of other schemes or
//! realms are skipped (they may be for a proxy further on).

use sable_sip::Credentials;

/// Methods Kamailio never authenticates: ACK (no reply to challenge it with), CANCEL
/// (it must carry the CSeq of the request it cancels) and PRACK. `www_authorize`,
/// `proxy_authorize`, `auth_check` return 1 for them without looking at credentials.
pub fn is_exempt_method(method: &[u8]) -> bool {
    method == b"ACK" || method == b"CANCEL" || method == b"PRACK"
}

/// The first Digest credentials for `realm` and their position in `list` (the position is
/// what `consume_credentials` removes later).
pub fn select<'c, 'a>(
    list: &'c [Credentials<'a>],
    realm: &[u8],
) -> Option<(usize, &'c Credentials<'a>)> {
    list.iter().enumerate().find(|(_, c)| {
        c.is_digest()
            && c.realm()
                .is_some_and(|r| r.as_ref().eq_ignore_ascii_case(realm))
    })
}

/// Kamailio's `has_credentials(realm)`: true when Proxy-Authorization (looked at first) or
/// Authorization holds credentials for `realm`.
pub fn has_credentials(
    authorization: &[Credentials<'_>],
    proxy_authorization: &[Credentials<'_>],
    realm: &[u8],
) -> bool {
    select(proxy_authorization, realm).is_some() || select(authorization, realm).is_some()
}

/// Kamailio's `realm_prefix`: `prefix` removed from the front of `realm` when it is there
/// (case-sensitive, as Kamailio's `memcmp`), so that "sip.example.com" authenticates as
/// "example.com". Applied to the realm the script names, before challenging or checking.
pub fn strip_realm_prefix<'r>(realm: &'r [u8], prefix: &[u8]) -> &'r [u8] {
    if prefix.is_empty() {
        return realm;
    }
    realm.strip_prefix(prefix).unwrap_or(realm)
}

/// Splits a digest `username` at its first '@' into user and domain, as Kamailio's digest
/// parser does (`username.user`, `username.domain`); HA1 is still computed over the whole
/// username.
pub fn split_username(username: &[u8]) -> (&[u8], Option<&[u8]>) {
    match username.iter().position(|&b| b == b'@') {
        Some(at) => (
            username.get(..at).unwrap_or_default(),
            username.get(at + 1..),
        ),
        None => (username, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Credentials<'_> {
        Credentials::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn first_digest_value_of_the_realm_is_chosen_case_insensitively() {
        let list = [
            parse("Basic realm=\"example.com\""),
            parse("Digest username=\"a\", realm=\"other.org\", nonce=\"n\""),
            parse("Digest username=\"b\", realm=\"EXAMPLE.com\", nonce=\"n\""),
            parse("Digest username=\"c\", realm=\"example.com\", nonce=\"n\""),
        ];
        let (pos, c) = select(&list, b"example.com").unwrap();
        assert_eq!(pos, 2);
        assert_eq!(&*c.username().unwrap(), b"b");
        assert!(select(&list, b"nowhere.net").is_none());
        assert!(select(&[], b"example.com").is_none());
    }

    #[test]
    fn has_credentials_looks_at_both_headers() {
        let www = [parse("Digest username=\"a\", realm=\"a.org\"")];
        let proxy = [parse("Digest username=\"b\", realm=\"b.org\"")];
        assert!(has_credentials(&www, &proxy, b"a.org"));
        assert!(has_credentials(&www, &proxy, b"b.org"));
        assert!(has_credentials(&[], &proxy, b"B.ORG"));
        assert!(!has_credentials(&www, &proxy, b"c.org"));
    }

    #[test]
    fn realm_prefix_is_stripped_only_when_present() {
        assert_eq!(
            strip_realm_prefix(b"sip.example.com", b"sip."),
            b"example.com"
        );
        assert_eq!(strip_realm_prefix(b"example.com", b"sip."), b"example.com");
        assert_eq!(strip_realm_prefix(b"sip.", b"sip."), b"");
        assert_eq!(
            strip_realm_prefix(b"sip.example.com", b""),
            b"sip.example.com"
        );
    }

    #[test]
    fn username_splits_at_first_at_sign() {
        assert_eq!(split_username(b"alice"), (&b"alice"[..], None));
        assert_eq!(
            split_username(b"alice@example.com"),
            (&b"alice"[..], Some(&b"example.com"[..]))
        );
    }

    #[test]
    fn exempt_methods_are_ack_cancel_prack() {
        assert!(is_exempt_method(b"ACK"));
        assert!(is_exempt_method(b"CANCEL"));
        assert!(is_exempt_method(b"PRACK"));
        assert!(!is_exempt_method(b"INVITE"));
        assert!(!is_exempt_method(b"REGISTER"));
    }
}
