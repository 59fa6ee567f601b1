//! Property tests of the URI model: SIP URIs built from random components parse back to
//! those components, equivalence behaves (RFC 3261 §19.1.4), and no input makes the parser
//! panic.

use proptest::prelude::*;
use sable_sip::uri::{parse_host_port, unescape, Host, SipUri, Uri};
use std::net::{Ipv4Addr, Ipv6Addr};

/// One `%HH` escape of any octet, hex digits in random case.
fn escape() -> impl Strategy<Value = String> {
    (any::<u8>(), any::<bool>()).prop_map(|(b, upper)| {
        if upper {
            format!("%{b:02X}")
        } else {
            format!("%{b:02x}")
        }
    })
}

/// `1*( chars / escaped )`, up to `max` atoms.
fn escaped_text(chars: &'static str, max: usize) -> impl Strategy<Value = String> {
    let plain = proptest::sample::select(chars.chars().collect::<Vec<_>>()).prop_map(String::from);
    prop::collection::vec(prop_oneof![4 => plain, 1 => escape()], 1..=max).prop_map(|v| v.concat())
}

const ALNUM: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const MARK: &str = "-_.!~*'()";

fn user() -> impl Strategy<Value = String> {
    escaped_text(
        concat!(
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
            "-_.!~*'()",
            "&=+$,;?/"
        ),
        12,
    )
}

fn password() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        escaped_text(
            concat!(
                "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
                "-_.!~*'()",
                "&=+$,"
            ),
            8
        ),
    ]
}

fn param_text(max: usize) -> impl Strategy<Value = String> {
    escaped_text(
        concat!(
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
            "-_.!~*'()",
            "[]/:&+$"
        ),
        max,
    )
}

fn header_name() -> impl Strategy<Value = String> {
    escaped_text(
        concat!(
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
            "-_.!~*'()",
            "[]/?:+$"
        ),
        6,
    )
}

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), header_name()]
}

/// A host name label: letters, digits and inner hyphens.
fn label(first: &'static str) -> impl Strategy<Value = String> {
    (
        proptest::sample::select(first.chars().collect::<Vec<_>>()),
        "[a-zA-Z0-9-]{0,6}",
        proptest::sample::select(ALNUM.chars().collect::<Vec<_>>()),
        any::<bool>(),
    )
        .prop_map(|(f, mid, last, long)| {
            if long {
                format!("{f}{mid}{last}")
            } else {
                f.to_string()
            }
        })
}

#[derive(Debug, Clone)]
enum HostSpec {
    Name(String),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl HostSpec {
    fn text(&self) -> String {
        match self {
            HostSpec::Name(n) => n.clone(),
            HostSpec::V4(a) => a.to_string(),
            HostSpec::V6(a) => format!("[{a}]"),
        }
    }
}

fn host() -> impl Strategy<Value = HostSpec> {
    let letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let name = (
        prop::collection::vec(label(ALNUM), 0..3),
        label(letters),
        any::<bool>(),
    )
        .prop_map(|(labels, top, dot)| {
            let mut s = String::new();
            for l in labels {
                s.push_str(&l);
                s.push('.');
            }
            s.push_str(&top);
            if dot {
                s.push('.');
            }
            HostSpec::Name(s)
        });
    prop_oneof![
        3 => name,
        1 => any::<[u8; 4]>().prop_map(|o| HostSpec::V4(Ipv4Addr::from(o))),
        1 => any::<[u16; 8]>().prop_map(|s| HostSpec::V6(Ipv6Addr::from(s))),
        1 => any::<[u8; 4]>().prop_map(|o| HostSpec::V6(Ipv4Addr::from(o).to_ipv6_mapped())),
    ]
}

#[derive(Debug, Clone)]
struct Spec {
    secure: bool,
    userinfo: Option<(String, Option<String>)>,
    host: HostSpec,
    port: Option<u16>,
    params: Vec<(String, Option<String>)>,
    headers: Option<Vec<(String, String)>>,
}

impl Spec {
    fn format_with(&self, host: &str, port: Option<u16>) -> String {
        let mut s = String::from(if self.secure { "sips:" } else { "sip:" });
        if let Some((u, p)) = &self.userinfo {
            s.push_str(u);
            if let Some(p) = p {
                s.push(':');
                s.push_str(p);
            }
            s.push('@');
        }
        s.push_str(host);
        if let Some(p) = port {
            s.push_str(&format!(":{p}"));
        }
        for (n, v) in &self.params {
            s.push(';');
            s.push_str(n);
            if let Some(v) = v {
                s.push('=');
                s.push_str(v);
            }
        }
        if let Some(h) = &self.headers {
            s.push('?');
            let pairs: Vec<String> = h.iter().map(|(n, v)| format!("{n}={v}")).collect();
            s.push_str(&pairs.join("&"));
        }
        s
    }

    fn format(&self) -> String {
        self.format_with(&self.host.text(), self.port)
    }
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        any::<bool>(),
        proptest::option::of((user(), proptest::option::of(password()))),
        host(),
        proptest::option::of(any::<u16>()),
        prop::collection::vec((param_text(6), proptest::option::of(param_text(6))), 0..4),
        proptest::option::of(prop::collection::vec((header_name(), header_value()), 1..3)),
    )
        .prop_map(|(secure, userinfo, host, port, params, headers)| Spec {
            secure,
            userinfo,
            host,
            port,
            params,
            headers,
        })
}

/// Escapes every ASCII letter of `s` that is not already part of an escape.
fn escape_letters(s: &str) -> String {
    let mut out = String::new();
    let mut skip = 0;
    for c in s.chars() {
        if skip > 0 {
            skip -= 1;
            out.push(c);
        } else if c == '%' {
            skip = 2;
            out.push(c);
        } else if c.is_ascii_alphabetic() {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

fn parse(s: &str) -> Result<SipUri<'_>, TestCaseError> {
    SipUri::parse(s.as_bytes()).map_err(|e| TestCaseError::fail(format!("{s:?} should parse: {e}")))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn formatted_components_parse_back(spec in spec()) {
        let text = spec.format();
        let u = parse(&text)?;
        prop_assert_eq!(u.as_bytes(), text.as_bytes());
        prop_assert_eq!(u.secure(), spec.secure);
        prop_assert_eq!(u.user(), spec.userinfo.as_ref().map(|(u, _)| u.as_bytes()));
        prop_assert_eq!(
            u.password(),
            spec.userinfo.as_ref().and_then(|(_, p)| p.as_ref()).map(|p| p.as_bytes())
        );
        if let Some((user, _)) = &spec.userinfo {
            prop_assert_eq!(u.user_unescaped(), unescape(user.as_bytes()));
        }
        let host = u.host();
        let host_text = spec.host.text();
        prop_assert_eq!(host.as_bytes(), host_text.as_bytes());
        match (&spec.host, host) {
            (HostSpec::Name(n), Host::Name(t)) => prop_assert_eq!(t, n.as_bytes()),
            (HostSpec::V4(a), Host::Ipv4 { addr, .. }) => prop_assert_eq!(addr, *a),
            (HostSpec::V6(a), Host::Ipv6 { addr, text, .. }) => {
                prop_assert_eq!(addr, Some(*a));
                let a_text = a.to_string();
                prop_assert_eq!(text, a_text.as_bytes());
            }
            (s, h) => prop_assert!(false, "host {:?} parsed as {:?}", s, h),
        }
        prop_assert_eq!(u.port(), spec.port);
        let params: Vec<_> = u.params().collect();
        prop_assert_eq!(params.len(), spec.params.len());
        for ((n, v), (sn, sv)) in params.iter().zip(&spec.params) {
            prop_assert_eq!(*n, sn.as_bytes());
            prop_assert_eq!(*v, sv.as_ref().map(|v| v.as_bytes()));
        }
        match &spec.headers {
            None => prop_assert_eq!(u.headers(), None),
            Some(h) => {
                let fields: Vec<_> = u.header_fields().collect();
                prop_assert_eq!(fields.len(), h.len());
                for ((n, v), (sn, sv)) in fields.iter().zip(h) {
                    prop_assert_eq!(*n, sn.as_bytes());
                    prop_assert_eq!(*v, sv.as_bytes());
                }
            }
        }
        // The same text through Uri::parse.
        let any = Uri::parse(text.as_bytes()).unwrap();
        prop_assert_eq!(any.as_sip(), Some(&u));
    }

    #[test]
    fn equivalence_is_reflexive(spec in spec()) {
        let text = spec.format();
        let u = parse(&text)?;
        prop_assert!(u.equivalent(&u));
        let again = parse(&text)?;
        prop_assert!(Uri::Sip(u).equivalent(&Uri::Sip(again)));
    }

    #[test]
    fn changing_host_case_keeps_equivalence(spec in spec()) {
        let a = spec.format();
        let b = spec.format_with(&spec.host.text().to_ascii_uppercase(), spec.port);
        let (ua, ub) = (parse(&a)?, parse(&b)?);
        prop_assert!(ua.equivalent(&ub));
        prop_assert!(ub.equivalent(&ua));
    }

    #[test]
    fn adding_the_default_port_breaks_equivalence(spec in spec()) {
        let bare = spec.format_with(&spec.host.text(), None);
        let with = spec.format_with(&spec.host.text(), Some(if spec.secure { 5061 } else { 5060 }));
        let (a, b) = (parse(&bare)?, parse(&with)?);
        prop_assert!(!a.equivalent(&b));
        prop_assert!(!b.equivalent(&a));
    }

    #[test]
    fn escaping_user_letters_keeps_equivalence(spec in spec()) {
        let Some((user, pw)) = spec.userinfo.clone() else { return Ok(()); };
        let mut escaped = spec.clone();
        escaped.userinfo = Some((escape_letters(&user), pw));
        let (ta, tb) = (spec.format(), escaped.format());
        let (a, b) = (parse(&ta)?, parse(&tb)?);
        prop_assert!(a.equivalent(&b));
        prop_assert!(b.equivalent(&a));
    }

    #[test]
    fn adding_a_strict_param_breaks_equivalence(spec in spec(), which in 0usize..5) {
        let name = ["user", "ttl", "method", "maddr", "transport"][which];
        let mut plain = spec.clone();
        plain.params.retain(|(n, _)| !unescape(n.as_bytes()).eq_ignore_ascii_case(name.as_bytes()));
        let mut with = plain.clone();
        with.params.push((name.to_string(), Some("x".to_string())));
        let (ta, tb) = (plain.format(), with.format());
        let (a, b) = (parse(&ta)?, parse(&tb)?);
        prop_assert!(!a.equivalent(&b));
        prop_assert!(!b.equivalent(&a));
    }

    /// URIs drawn from a tiny alphabet, so that equal and unequal pairs both occur.
    #[test]
    fn equivalence_is_symmetric(
        a in small_uri(), b in small_uri()
    ) {
        let (ua, ub) = (Uri::parse(a.as_bytes()).unwrap(), Uri::parse(b.as_bytes()).unwrap());
        prop_assert_eq!(ua.equivalent(&ub), ub.equivalent(&ua), "{} vs {}", a, b);
        prop_assert!(ua.equivalent(&ua));
    }

    #[test]
    fn parse_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(u) = Uri::parse(&bytes) {
            prop_assert_eq!(u.as_bytes(), &bytes[..]);
            prop_assert!(u.equivalent(&u));
        }
        let _ = parse_host_port(&bytes);
        let _ = Host::parse(&bytes);
    }

    #[test]
    fn parse_never_panics_on_uri_like_bytes(
        scheme in prop_oneof![Just("sip:"), Just("sips:"), Just("tel:"), Just("x:")],
        tail in prop::collection::vec(
            prop_oneof![
                8 => proptest::sample::select(b"aZ09@:;?=&%[]+-._~!$,/#*()<> \t\r\n\"\x00\xff".to_vec()),
                1 => any::<u8>(),
            ],
            0..48,
        )
    ) {
        let mut bytes = scheme.as_bytes().to_vec();
        bytes.extend_from_slice(&tail);
        if let Ok(u) = Uri::parse(&bytes) {
            prop_assert_eq!(u.as_bytes(), &bytes[..]);
            prop_assert!(u.equivalent(&u));
            if let Some(s) = u.as_sip() {
                let _ = (s.user_unescaped(), s.params().count(), s.header_fields().count());
            }
        }
    }
}

fn small_uri() -> impl Strategy<Value = String> {
    let user = prop_oneof![
        Just(""),
        Just("a@"),
        Just("A@"),
        Just("%61@"),
        Just("a:p@"),
        Just("a%3b@"),
        Just("a;@")
    ];
    let host = prop_oneof![
        Just("h"),
        Just("H"),
        Just("10.0.0.1"),
        Just("[::1]"),
        Just("[0::1]")
    ];
    let port = prop_oneof![Just(""), Just(":5060"), Just(":05060")];
    let param = prop_oneof![
        Just(";lr"),
        Just(";LR"),
        Just(";lr=on"),
        Just(";transport=tcp"),
        Just(";Transport=TCP"),
        Just(";x=1"),
        Just(";x=2"),
        Just(";%78=1"),
        Just(";user=phone")
    ];
    let headers = prop_oneof![
        Just(""),
        Just("?a=1"),
        Just("?A=1"),
        Just("?a=1&b=2"),
        Just("?b=2&a=%31")
    ];
    let scheme = prop_oneof![Just("sip:"), Just("SIP:"), Just("sips:")];
    (
        scheme,
        user,
        host,
        port,
        prop::collection::vec(param, 0..3),
        headers,
    )
        .prop_map(|(s, u, h, p, ps, hs)| format!("{s}{u}{h}{p}{}{hs}", ps.concat()))
}

#[test]
fn mark_and_alnum_tables_match_rfc3261() {
    // Guards the generators above against typos: every generated user character must be
    // accepted by the parser on its own.
    for c in ALNUM.chars().chain(MARK.chars()).chain("&=+$,;?/".chars()) {
        let s = format!("sip:a{c}b@h");
        assert!(SipUri::parse(s.as_bytes()).is_ok(), "{s}");
    }
}
