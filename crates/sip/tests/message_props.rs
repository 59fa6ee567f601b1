//! Property tests of the message parser and the header views: header values built from
//! components come back as those components; the parser never panics, whatever the bytes;
//! serialization without edits reproduces what was parsed.

// Test code: a panic is a failed assertion.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use proptest::prelude::*;
use sable_sip::header::HeaderName;
use sable_sip::{CSeq, Contact, Edits, Message, Method, NameAddr, Via};

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9.!%*_+`'~-]{0,11}"
}

fn hostname() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,8}[a-z0-9](\\.[a-z][a-z0-9]{0,6}){0,3}",
        (0u8..=255, 0u8..=255, 0u8..=255, 1u8..=254)
            .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        (any::<u16>(), any::<u16>()).prop_map(|(a, b)| format!("[2001:db8::{a:x}:{b:x}]")),
    ]
}

/// Optional white space, folded or not, as RFC 3261 allows around separators.
fn lws() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just(""), Just(" "), Just("  "), Just("\r\n "), Just("\t")]
}

fn any_message_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..600),
        // Mostly-textual SIP-looking lines, to reach deeper than the start line.
        proptest::collection::vec(
            prop_oneof![
                Just(b"INVITE sip:a@b SIP/2.0\r\n".to_vec()),
                Just(b"SIP/2.0 200 OK\r\n".to_vec()),
                Just(b"Via: SIP/2.0/UDP h;branch=z9hG4bK1, SIP/2.0/TCP [::1]:5\r\n".to_vec()),
                Just(b"v: x\r\n".to_vec()),
                Just(b"Content-Length: 3\r\n".to_vec()),
                Just(b"l: -1\r\n".to_vec()),
                Just(b"Contact: \"a,b\" <sip:x;a=1,2>;q=0.5, *\r\n".to_vec()),
                Just(b"From: <sip:a@b>;tag=\"\r\n".to_vec()),
                Just(b"To: x\r\n y\r\n".to_vec()),
                Just(b"CSeq: 99999999999999999999 INVITE\r\n".to_vec()),
                Just(b"Authorization: Digest a=\"b\", c=d\r\n".to_vec()),
                Just(b"\r\n".to_vec()),
                Just(b"\r".to_vec()),
                Just(b" ".to_vec()),
                proptest::collection::vec(any::<u8>(), 0..12),
            ],
            0..14,
        )
        .prop_map(|parts| parts.concat()),
    ]
}

/// Touches every view; none may panic.
fn exercise(m: &Message<'_>) {
    let _ = m.validate();
    let _ = m.request_uri();
    let _ = m.top_via();
    let _ = (m.from(), m.to(), m.call_id(), m.cseq());
    let _ = (
        m.max_forwards(),
        m.expires(),
        m.min_expires(),
        m.content_type(),
        m.event(),
    );
    for v in m.vias().unwrap_or_default() {
        let _ = (v.branch(), v.rport(), v.ttl());
    }
    for c in m.contacts().unwrap_or_default() {
        let _ = (
            c.q(),
            c.expires(),
            c.instance().map(|i| i.len()),
            c.reg_id(),
        );
    }
    for name in [HeaderName::Supported, HeaderName::Allow] {
        let _ = m.tokens(name).count();
    }
    for c in m.credentials(HeaderName::Authorization).unwrap_or_default() {
        let _ = (c.username(), c.nc(), c.params().count());
    }
    let _ = (m.routes(), m.record_routes(), m.paths());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parser_never_panics_on_arbitrary_bytes(bytes in any_message_bytes()) {
        if let Ok(m) = Message::parse(&bytes) {
            exercise(&m);
            // Serializing without edits and parsing again gives the same index.
            let out = Edits::new().to_vec(&m);
            let again = Message::parse(&out).expect("serialized message must parse");
            let a: Vec<_> = m.headers().iter().map(|h| (h.name, m.value(h))).collect();
            let b: Vec<_> = again.headers().iter().map(|h| (h.name, again.value(h))).collect();
            prop_assert_eq!(a, b);
            prop_assert_eq!(m.body(), again.body());
        }
    }

    #[test]
    fn edits_never_panic_and_reparse(bytes in any_message_bytes(), pick in any::<usize>()) {
        if let Ok(m) = Message::parse(&bytes) {
            let mut e = Edits::new();
            if let Some(h) = m.headers().get(pick % m.headers().len().max(1)) {
                e.remove_value(h);
            }
            e.add_via(&m, b"SIP/2.0/UDP p;branch=z9hG4bKp").unwrap();
            e.replace_body(b"xyz");
            let out = e.to_vec(&m);
            let again = Message::parse(&out).expect("edited message must parse");
            prop_assert_eq!(again.body(), b"xyz");
            prop_assert_eq!(again.top_via().unwrap().branch(), Some(&b"z9hG4bKp"[..]));
        }
    }

    #[test]
    fn via_round_trip(
        transport in "(UDP|TCP|TLS|SCTP|WS|WSS|udp|Tcp)",
        host in hostname(),
        port in proptest::option::of(1u16..),
        branch in token(),
        rport in proptest::option::of(proptest::option::of(1u16..)),
        (s1, s2, s3) in (lws(), lws(), lws()),
    ) {
        let mut text = format!("SIP{s1}/{s2}2.0{s3}/{transport} {host}");
        if let Some(p) = port {
            text.push_str(&format!(":{p}"));
        }
        text.push_str(&format!("{s1};{s2}branch{s3}={s1}z9hG4bK{branch}"));
        match rport {
            Some(Some(p)) => text.push_str(&format!(";rport={p}")),
            Some(None) => text.push_str(";rport"),
            None => {}
        }
        let v = Via::parse(text.as_bytes()).unwrap();
        prop_assert_eq!(v.transport, transport.as_bytes());
        prop_assert_eq!(v.host.as_bytes(), host.as_bytes());
        prop_assert_eq!(v.port, port);
        let expected_branch = format!("z9hG4bK{branch}");
        prop_assert_eq!(v.branch(), Some(expected_branch.as_bytes()));
        prop_assert_eq!(v.rport(), rport);
    }

    #[test]
    fn name_addr_round_trip(
        display in proptest::option::of("[A-Za-z ,;<>@:]{0,12}"),
        user in "[a-z0-9]{1,8}",
        host in hostname(),
        tag in proptest::option::of(token()),
        extra in proptest::collection::vec((token(), proptest::option::of(token())), 0..3),
        s in lws(),
    ) {
        let mut text = String::new();
        if let Some(d) = &display {
            text.push_str(&format!("\"{d}\"{s}"));
        }
        text.push_str(&format!("<sip:{user}@{host}>"));
        if let Some(t) = &tag {
            text.push_str(&format!("{s};tag={t}"));
        }
        for (n, v) in &extra {
            match v {
                Some(v) => text.push_str(&format!(";{n}{s}={s}{v}")),
                None => text.push_str(&format!(";{n}")),
            }
        }
        let a = NameAddr::parse(text.as_bytes()).unwrap();
        prop_assert_eq!(a.display_name_unquoted().into_owned(), display.unwrap_or_default().into_bytes());
        let expected_uri = format!("sip:{user}@{host}");
        prop_assert_eq!(a.uri.as_bytes(), expected_uri.as_bytes());
        if let Some(t) = &tag {
            prop_assert_eq!(a.tag(), Some(t.as_bytes()));
        }
        prop_assert_eq!(a.params.iter().count(), extra.len() + usize::from(tag.is_some()));
    }

    #[test]
    fn cseq_round_trip(number in any::<u32>(), method in "(INVITE|ACK|BYE|CANCEL|REGISTER|OPTIONS|[A-Z]{3,9})", s in lws()) {
        let text = format!("{number}{s} {method}");
        let c = CSeq::parse(text.as_bytes()).unwrap();
        prop_assert_eq!(c.number, number);
        prop_assert_eq!(c.method, Method::from_token(method.as_bytes()));
    }

    #[test]
    fn contact_lines_split_into_their_values(
        uris in proptest::collection::vec(("[a-z]{1,6}", hostname(), proptest::option::of(0u16..=1000)), 1..6),
        s in lws(),
    ) {
        let values: Vec<String> = uris
            .iter()
            .map(|(u, h, q)| match q {
                Some(q) => format!("\"{u}, {u}\" <sip:{u}@{h};x=1>;q={}.{:03}", q / 1000, q % 1000),
                None => format!("<sip:{u}@{h}>"),
            })
            .collect();
        let msg = format!(
            "REGISTER sip:r SIP/2.0\r\nContact: {}\r\nContent-Length: 0\r\n\r\n",
            values.join(&format!("{s},{s}"))
        );
        let m = Message::parse(msg.as_bytes()).unwrap();
        let parsed: Vec<Contact<'_>> = m.contacts().unwrap().to_vec();
        prop_assert_eq!(parsed.len(), uris.len());
        for (c, (_, _, q)) in parsed.iter().zip(&uris) {
            prop_assert_eq!(c.q(), *q);
        }
    }
}
