//! Message parser: no input may panic; what parses must serialize and reparse to the same
//! header index and body; edits applied to it must reparse with the edited values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sable_sip::message::MAX_HEADERS;
use sable_sip::{Edits, HeaderName, Message, ParseErrorKind};

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Message::parse(data) else {
        return;
    };
    // Every view, on whatever the parser accepted.
    let _ = m.validate();
    let _ = m.request_uri().map(|u| u.equivalent(u));
    let _ = (m.top_via(), m.from(), m.to(), m.call_id(), m.cseq());
    let _ = (m.max_forwards(), m.expires(), m.content_type(), m.event());
    for v in m.vias().unwrap_or_default() {
        let _ = (v.branch(), v.rport(), v.received(), v.ttl());
    }
    for c in m.contacts().unwrap_or_default() {
        let _ = (c.q(), c.expires(), c.instance(), c.reg_id());
    }
    for a in m
        .routes()
        .unwrap_or_default()
        .iter()
        .chain(m.record_routes().unwrap_or_default())
    {
        let _ = (
            a.display_name_unquoted(),
            a.uri.as_sip().map(|s| s.user_unescaped()),
        );
    }
    for c in m.credentials(HeaderName::Authorization).unwrap_or_default() {
        let _ = (c.username(), c.response(), c.nc());
    }

    // Parse -> serialize (no edits) -> parse agrees.
    let out = Edits::new().to_vec(&m);
    let again = Message::parse(&out).expect("serialized message must parse");
    assert_eq!(m.headers().len(), again.headers().len());
    for (a, b) in m.headers().iter().zip(again.headers()) {
        assert_eq!(a.name, b.name);
        assert_eq!(m.value(a), again.value(b));
    }
    assert_eq!(m.body(), again.body());
    assert_eq!(m.start_line(), again.start_line());

    // Proxy edits -> parse shows them.
    let mut e = Edits::new();
    e.add_via(&m, b"SIP/2.0/UDP fuzz.invalid;branch=z9hG4bKfuzz")
        .expect("valid header");
    e.add_record_route(&m, b"<sip:fuzz.invalid;lr>")
        .expect("valid header");
    if let Some(mf) = m.header(HeaderName::MaxForwards) {
        e.replace_value(mf, b"69").expect("valid header");
    }
    if m.is_request() {
        e.replace_request_uri(&m, b"sip:fuzz@192.0.2.1");
    }
    e.replace_body(b"fuzz");
    let out = e.to_vec(&m);
    let edited = match Message::parse(&out) {
        Ok(edited) => edited,
        // Up to three more header lines (Via, Record-Route, Content-Length when the body is
        // replaced and there was none) can push a message near the index limit over it: the
        // one refusal an edited message may meet.
        Err(err)
            if matches!(err.kind(), ParseErrorKind::TooManyHeaders { .. })
                && m.headers().len() + 3 > MAX_HEADERS =>
        {
            return;
        }
        Err(err) => panic!("edited message must parse: {err}"),
    };
    assert_eq!(
        edited.top_via().expect("added Via must parse").branch(),
        Some(&b"z9hG4bKfuzz"[..])
    );
    assert_eq!(edited.body(), b"fuzz");
    if m.is_request() {
        assert_eq!(
            edited
                .request_uri()
                .expect("new Request-URI must parse")
                .as_bytes(),
            b"sip:fuzz@192.0.2.1"
        );
    }
});
