//! Destinations as operators write them (`[sip:|sips:]host[:port][;params]`) and the key
//! under which two spellings of the same destination are one.

use crate::KeepaliveError;
use sable_sip::{Host, Uri};

/// A destination accepted for monitoring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The URI probed and shown (`keepalive.list`): the text given, trimmed, with `sip:`
    /// put in front when it had no scheme (as Kamailio stores it).
    pub uri: String,
    /// The identity of the destination: scheme, user, host (lower case; IP addresses in
    /// their canonical form), port (5060, or 5061 for `sips:`/TLS, when absent), transport
    /// (lower case; `udp` or `tls` when absent) and the other parameters (names in lower
    /// case, sorted). `sip:192.0.2.5`, `SIP:192.0.2.5:5060` and `192.0.2.5;transport=UDP`
    /// have the same key.
    pub key: String,
    /// Whether probes need TLS (`sips:` or `transport=tls`).
    pub tls: bool,
    /// The transport of the probes, lower case (`udp` when the URI names none, `tls` for
    /// `sips:`).
    pub transport: String,
}

impl Destination {
    /// Parses a destination. Errors: empty text, not a SIP/SIPS URI, a URI that does not
    /// parse.
    pub fn parse(text: &str) -> Result<Destination, KeepaliveError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(KeepaliveError::Empty);
        }
        let has_scheme = |s: &str| {
            text.get(..s.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(s))
        };
        let uri = if has_scheme("sip:") || has_scheme("sips:") {
            text.to_owned()
        } else {
            format!("sip:{text}")
        };
        let bad = |reason: String| KeepaliveError::BadUri {
            uri: uri.clone(),
            reason,
        };
        let parsed = Uri::parse(uri.as_bytes()).map_err(|e| bad(e.to_string()))?;
        let Uri::Sip(sip) = parsed else {
            return Err(bad("not a SIP URI".to_owned()));
        };
        if sip.headers().is_some() {
            return Err(bad("a destination has no URI headers".to_owned()));
        }
        let secure = sip.secure();
        let transport = sip
            .transport()
            .map(|t| String::from_utf8_lossy(t).to_ascii_lowercase())
            .unwrap_or_else(|| if secure { "tls" } else { "udp" }.to_owned());
        let tls = secure || transport == "tls";
        let port = sip.port().unwrap_or(if tls { 5061 } else { 5060 });
        let host = match sip.host() {
            Host::Ipv4 { addr, .. } => addr.to_string(),
            Host::Ipv6 {
                addr: Some(addr), ..
            } => format!("[{addr}]"),
            h => String::from_utf8_lossy(h.as_bytes()).to_ascii_lowercase(),
        };
        let host = host.trim_end_matches('.').to_owned();
        let mut params: Vec<String> = sip
            .params()
            .filter(|(n, _)| !n.eq_ignore_ascii_case(b"transport"))
            .map(|(n, v)| {
                let n = String::from_utf8_lossy(n).to_ascii_lowercase();
                match v {
                    Some(v) => format!(";{n}={}", String::from_utf8_lossy(v)),
                    None => format!(";{n}"),
                }
            })
            .collect();
        params.sort();
        let user = sip
            .user()
            .map(|u| format!("{}@", String::from_utf8_lossy(u)))
            .unwrap_or_default();
        let scheme = if secure { "sips" } else { "sip" };
        let key = format!(
            "{scheme}:{user}{host}:{port};transport={transport}{}",
            params.concat()
        );
        Ok(Destination {
            uri,
            key,
            tls,
            transport,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key(s: &str) -> String {
        Destination::parse(s).unwrap().key
    }

    #[test]
    fn the_scheme_is_added_when_missing() {
        let d = Destination::parse(" 192.0.2.5:5070 ").unwrap();
        assert_eq!(d.uri, "sip:192.0.2.5:5070");
        assert_eq!(d.key, "sip:192.0.2.5:5070;transport=udp");
        assert!(!d.tls);
        assert_eq!(
            Destination::parse("sip:192.0.2.5").unwrap().uri,
            "sip:192.0.2.5"
        );
    }

    #[test]
    fn spellings_of_one_destination_share_a_key() {
        let k = key("sip:192.0.2.5:5060");
        for s in [
            "192.0.2.5",
            "SIP:192.0.2.5",
            "sip:192.0.2.5;transport=UDP",
            "192.0.2.5:5060;transport=udp",
        ] {
            assert_eq!(key(s), k, "{s}");
        }
        assert_ne!(key("192.0.2.5;transport=tcp"), k);
        assert_ne!(key("192.0.2.5:5070"), k);
        assert_ne!(key("gw@192.0.2.5"), k);
        assert_eq!(key("GW.Example.COM"), key("sip:gw.example.com:5060"));
    }

    #[test]
    fn default_ports_follow_the_scheme_and_transport() {
        assert_eq!(key("sips:192.0.2.5"), "sips:192.0.2.5:5061;transport=tls");
        assert_eq!(
            key("192.0.2.5;transport=tls"),
            "sip:192.0.2.5:5061;transport=tls"
        );
        assert!(Destination::parse("sips:192.0.2.5").unwrap().tls);
        assert_eq!(
            key("192.0.2.5;transport=tcp"),
            "sip:192.0.2.5:5060;transport=tcp"
        );
    }

    #[test]
    fn ipv6_references_are_canonical() {
        assert_eq!(key("[::1]:5070"), "sip:[::1]:5070;transport=udp");
        assert_eq!(key("sip:[0:0::1]:5070"), key("[::1]:5070"));
        assert_eq!(
            Destination::parse("[2001:DB8::5]").unwrap().uri,
            "sip:[2001:DB8::5]"
        );
    }

    #[test]
    fn other_parameters_are_part_of_the_key_in_any_order() {
        assert_eq!(key("192.0.2.5;a=1;B=2"), key("192.0.2.5;b=2;a=1"));
        assert_ne!(key("192.0.2.5;a=1"), key("192.0.2.5;a=2"));
    }

    #[test]
    fn bad_destinations_are_errors() {
        assert_eq!(Destination::parse("  "), Err(KeepaliveError::Empty));
        for s in [
            "sip:",
            "sip:192.0.2.5:notaport",
            "192.0.2.5:99999",
            "tel:+123",
            "sip:a b",
            "sip:192.0.2.5?subject=x",
        ] {
            assert!(
                matches!(Destination::parse(s), Err(KeepaliveError::BadUri { .. })),
                "{s}"
            );
        }
    }
}
