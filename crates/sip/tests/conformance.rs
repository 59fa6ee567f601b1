//! RFC 4475 and RFC 5118 torture messages, byte-exact, one expectation per file.
//!
//! The files live in `tests/data/conformance/` at the project root (copied from
//! `shared/conformance/`, checked here against the manifests' SHA-256). Every file of the
//! directories must have an entry below, next to what the RFC expects of it.

// Test code: a panic is a failed assertion.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::{Path, PathBuf};

use sable_sip::header::HeaderName;
use sable_sip::{Contact, Edits, Host, Message, Method, ParseError, ParseErrorKind, Uri};
use sha2::{Digest, Sha256};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/conformance")
}

fn read(rel: &str) -> Vec<u8> {
    let p = data_dir().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// What a message must do.
enum Expect {
    /// Parses, validates, serializes back to the same octets, and `check` holds.
    Accept(fn(&Message<'_>)),
    /// Parsing (framing level) fails with a fault `kind` accepts, implying `status`.
    RejectParse(fn(ParseErrorKind) -> bool, u16),
    /// Parses, but `validate()` fails with a fault `kind` accepts, in `header` (if given),
    /// implying `status`.
    RejectValidate(fn(ParseErrorKind) -> bool, Option<&'static str>, u16),
}

use Expect::*;

fn bad_value(k: ParseErrorKind) -> bool {
    matches!(k, ParseErrorKind::BadHeaderValue(_))
}
fn bad_uri(k: ParseErrorKind) -> bool {
    matches!(k, ParseErrorKind::BadUri(_))
}
fn bad_start(k: ParseErrorKind) -> bool {
    matches!(k, ParseErrorKind::BadStartLine(_))
}

fn sip_ruri<'m>(m: &'m Message<'_>) -> &'m sable_sip::SipUri<'m> {
    match m.request_uri().unwrap() {
        Uri::Sip(s) => s,
        other => panic!("not a SIP URI: {other:?}"),
    }
}

fn contacts<'m>(m: &'m Message<'_>) -> Vec<Contact<'m>> {
    m.contacts().unwrap().to_vec()
}

#[rustfmt::skip]
fn expectations() -> Vec<(&'static str, &'static str, Expect)> {
    vec![
        // ---- RFC 4475 §3.1.1: valid messages, a parser must accept every one -------------
        ("rfc4475/valid/wsinv.sip", "§3.1.1.1 well-formed: folding, LWS around separators, empty Subject, short+long names, leading zeros; unknown headers forwarded unchanged",
         Accept(|m| {
             assert_eq!(m.max_forwards().unwrap().unwrap(), 68);
             let cseq = m.cseq().unwrap();
             assert_eq!((cseq.number, cseq.method), (9, Method::Invite));
             assert_eq!(m.to().unwrap().tag(), Some(&b"1918181833n"[..]));
             assert_eq!(m.from().unwrap().tag(), Some(&b"98asjd8"[..]));
             assert_eq!(m.vias().unwrap().len(), 3);
             assert_eq!(m.vias().unwrap()[1].branch(), Some(&b"z9hG4bK9ikj8"[..]));
             assert_eq!(m.vias().unwrap()[2].branch(), Some(&b"z9hG4bK30239"[..]));
             let c = contacts(m);
             assert_eq!(c[0].q(), Some(330));
             let odd = m.headers_by_name(b"UnknownHeaderWithUnusualValue").next().unwrap();
             assert_eq!(m.value(odd), b";;,,;;,;");
             let subject = m.header(HeaderName::Subject).unwrap();
             assert_eq!(m.value(subject), b"");
         })),
        ("rfc4475/valid/intmeth.sip", "§3.1.1.2 well-formed: unknown method of all token characters, odd Request-URI, quoted NUL/BEL/DEL in To, UTF-8 values",
         Accept(|m| {
             assert_eq!(m.method(), Some(Method::Other(b"!interesting-Method0123456789_*+`.%indeed'~")));
             let u = sip_ruri(m);
             assert_eq!(u.user(), Some(&b"1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"[..]));
             assert_eq!(u.password(), Some(&b"&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"[..]));
             assert!(m.to().unwrap().display_name_unquoted().contains(&0u8));
             assert_eq!(m.call_id().unwrap(), &b"intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"[..]);
         })),
        ("rfc4475/valid/esc01.sip", "§3.1.1.3 %-escapes in SIP URIs mean the encoded character, never recursively",
         Accept(|m| {
             assert_eq!(&*sip_ruri(m).user_unescaped(), b"sips:user@example.com");
             let c = contacts(m);
             let uri = c[0].address().unwrap().uri.as_sip().unwrap().clone();
             assert!(uri.lr());
         })),
        ("rfc4475/valid/escnull.sip", "§3.1.1.4 %00 must not truncate: two distinct bindings",
         Accept(|m| {
             let c = contacts(m);
             assert_eq!(c.len(), 2);
             let users: Vec<Vec<u8>> = c.iter()
                 .map(|c| c.address().unwrap().uri.as_sip().unwrap().user_unescaped().into_owned())
                 .collect();
             assert_eq!(users, vec![vec![0u8], vec![0u8, 0u8]]);
             assert!(!c[0].address().unwrap().uri.equivalent(&c[1].address().unwrap().uri));
         })),
        ("rfc4475/valid/esc02.sip", "§3.1.1.5 % that is not an escape: unknown method RE%47IST%45R, literal display name, C%6Fntact is an unknown header (two Contacts, not three)",
         Accept(|m| {
             assert_eq!(m.method(), Some(Method::Other(b"RE%47IST%45R")));
             assert_eq!(m.contacts().unwrap().len(), 2);
             assert_eq!(m.headers_by_name(b"C%6Fntact").count(), 1);
             assert_eq!(&*m.to().unwrap().display_name_unquoted(), b"%Z%45");
         })),
        ("rfc4475/valid/lwsdisp.sip", "§3.1.1.6 no LWS between display name and <: accept",
         Accept(|m| assert_eq!(m.from().unwrap().display_name, Some(&b"caller"[..])))),
        ("rfc4475/valid/longreq.sip", "§3.1.1.7 long values everywhere: accept",
         Accept(|m| {
             assert!(m.vias().unwrap().len() >= 9);
             assert!(m.from().unwrap().tag().unwrap().len() > 100);
         })),
        ("rfc4475/valid/dblreq.sip", "§3.1.1.8 REGISTER with Content-Length 0 then 450 octets: handle the REGISTER, drop the trailing octets",
         Accept(|m| {
             assert_eq!(m.method(), Some(Method::Register));
             assert_eq!(m.body(), b"");
             assert_eq!(m.buffer().len() - m.as_bytes().len(), 450);
         })),
        ("rfc4475/valid/semiuri.sip", "§3.1.1.9 the ; in the user part belongs to the user",
         Accept(|m| {
             let u = sip_ruri(m);
             assert_eq!(u.user(), Some(&b"user;par=u%40example.net"[..]));
             assert_eq!(u.params().count(), 0);
         })),
        ("rfc4475/valid/transports.sip", "§3.1.1.10 Vias with known and unknown transports: accept",
         Accept(|m| {
             let t: Vec<Vec<u8>> = m.vias().unwrap().iter().map(|v| v.transport.to_ascii_uppercase()).collect();
             assert!(t.contains(&b"SCTP".to_vec()) && t.contains(&b"TLS".to_vec()) && t.contains(&b"UNKNOWN".to_vec()));
         })),
        ("rfc4475/valid/mpart01.sip", "§3.1.1.11 multipart body with binary part: frame by Content-Length",
         Accept(|m| {
             assert_eq!(m.body().len(), m.content_length().unwrap() as usize);
             assert!(m.content_type().unwrap().unwrap().is("multipart", "mixed"));
         })),
        ("rfc4475/valid/unreason.sip", "§3.1.1.12 reason phrase with escapes and UTF-8: accept",
         Accept(|m| {
             assert_eq!(m.status_code(), Some(200));
             assert!(std::str::from_utf8(m.reason().unwrap()).unwrap().contains("простое"));
         })),
        ("rfc4475/valid/noreason.sip", "§3.1.1.13 empty reason phrase: accept",
         Accept(|m| assert_eq!(m.reason(), Some(&b""[..])))),

        // ---- RFC 4475 §3.1.2: invalid messages ------------------------------------------
        ("rfc4475/invalid/badinv01.sip", "§3.1.2.1 stray ; and , in Via and Contact: 400",
         RejectValidate(bad_value, Some("Via"), 400)),
        ("rfc4475/invalid/clerr.sip", "§3.1.2.2 Content-Length larger than the datagram: 400",
         RejectParse(|k| matches!(k, ParseErrorKind::ContentLengthExceedsBody { declared: 9999, .. }), 400)),
        ("rfc4475/invalid/ncl.sip", "§3.1.2.3 negative Content-Length: error, never a counter",
         RejectParse(|k| k == ParseErrorKind::InvalidContentLength, 400)),
        ("rfc4475/invalid/scalar02.sip", "§3.1.2.4 overlarge CSeq (and Max-Forwards, Expires): 400 because of CSeq",
         RejectValidate(|k| k == ParseErrorKind::NumberOutOfRange, Some("CSeq"), 400)),
        ("rfc4475/invalid/scalarlg.sip", "§3.1.2.5 response with overlarge CSeq: discard",
         RejectValidate(|k| k == ParseErrorKind::NumberOutOfRange, Some("CSeq"), 400)),
        ("rfc4475/invalid/quotbal.sip", "§3.1.2.6 unterminated quoted display name: 400",
         RejectValidate(|k| k == ParseErrorKind::UnterminatedQuote, Some("To"), 400)),
        ("rfc4475/invalid/ltgtruri.sip", "§3.1.2.7 Request-URI in <>: 400",
         RejectValidate(bad_uri, None, 400)),
        ("rfc4475/invalid/lwsruri.sip", "§3.1.2.8 LWS inside the Request-URI: 400",
         RejectParse(bad_start, 400)),
        ("rfc4475/invalid/lwsstart.sip", "§3.1.2.9 several SP between Request-Line elements: rejecting is acceptable",
         RejectParse(bad_start, 400)),
        ("rfc4475/invalid/trws.sip", "§3.1.2.10 SP after SIP-Version: rejecting is acceptable",
         RejectParse(bad_start, 400)),
        ("rfc4475/invalid/escruri.sip", "§3.1.2.11 escaped headers in the Request-URI: 400 acceptable",
         RejectValidate(bad_uri, None, 400)),
        ("rfc4475/invalid/baddate.sip", "§3.1.2.12 Date in EST, only GMT is legal: may be rejected",
         RejectValidate(bad_value, Some("Date"), 400)),
        ("rfc4475/invalid/regbadct.sip", "§3.1.2.13 name-addr URI with header not in <>: 400 reasonable",
         RejectValidate(bad_value, Some("Contact"), 400)),
        ("rfc4475/invalid/badaspec.sip", "§3.1.2.14 spaces inside <...>: parser must not break, 400 reasonable",
         RejectValidate(bad_uri, Some("To"), 400)),
        ("rfc4475/invalid/baddn.sip", "§3.1.2.15 unquoted display name with comma: 400",
         RejectValidate(bad_value, Some("From"), 400)),
        ("rfc4475/invalid/badvers.sip", "§3.1.2.16 SIP/7.0: 505",
         RejectParse(|k| k == ParseErrorKind::UnsupportedVersion, 505)),
        ("rfc4475/invalid/mismatch01.sip", "§3.1.2.17 OPTIONS with CSeq method INVITE: 400",
         RejectValidate(|k| k == ParseErrorKind::CSeqMethodMismatch { method_known: true }, Some("CSeq"), 400)),
        ("rfc4475/invalid/mismatch02.sip", "§3.1.2.18 unknown method with CSeq INVITE: 501 preferred",
         RejectValidate(|k| k == ParseErrorKind::CSeqMethodMismatch { method_known: false }, Some("CSeq"), 501)),
        ("rfc4475/invalid/bigcode.sip", "§3.1.2.19 status code 4294967301: drop",
         RejectParse(|k| k == ParseErrorKind::BadStatusCode, 400)),

        // ---- RFC 4475 §3.2-§3.4: semantic tests, mostly well-formed ----------------------
        ("rfc4475/invalid/badbranch.sip", "§3.2.1 branch is just the magic cookie: must not break; fall back to RFC 2543 matching",
         Accept(|m| assert!(!m.top_via().unwrap().has_rfc3261_branch()))),
        ("rfc4475/invalid/insuf.sip", "§3.3.1 no Call-ID, From or To: 400",
         RejectValidate(|k| k == ParseErrorKind::MissingHeader, Some("Call-ID"), 400)),
        ("rfc4475/invalid/unkscm.sip", "§3.3.2 unknown Request-URI scheme: well-formed (reply 416)",
         Accept(|m| assert!(matches!(m.request_uri().unwrap(), Uri::Other(_))))),
        ("rfc4475/invalid/novelsc.sip", "§3.3.3 known but atypical scheme: well-formed",
         Accept(|m| assert!(matches!(m.request_uri().unwrap(), Uri::Other(_))))),
        ("rfc4475/invalid/unksm2.sip", "§3.3.4 unknown schemes in To/From/Contact: well-formed",
         Accept(|m| {
             assert!(matches!(m.to().unwrap().uri, Uri::Other(_)));
             assert!(matches!(m.from().unwrap().uri, Uri::Other(_)));
         })),
        ("rfc4475/invalid/bext01.sip", "§3.3.5 unknown Require/Proxy-Require options: well-formed (reply 420)",
         Accept(|m| {
             assert!(m.tokens(HeaderName::ProxyRequire).count() >= 1);
             assert!(m.tokens(HeaderName::Require).count() >= 1);
         })),
        ("rfc4475/invalid/invut.sip", "§3.3.6 unknown Content-Type: well-formed (endpoint replies 415)",
         Accept(|m| assert!(!m.content_type().unwrap().unwrap().is("application", "sdp")))),
        ("rfc4475/invalid/regaut01.sip", "§3.3.7 unknown Authorization scheme: well-formed, forwarded unmodified",
         Accept(|m| {
             let c = m.credentials(HeaderName::Authorization).unwrap()[0];
             assert_eq!(c.scheme, b"NoOneKnowsThisScheme");
         })),
        ("rfc4475/invalid/multi01.sip", "§3.3.8 several Call-ID/To/From/Max-Forwards/CSeq: 400",
         RejectValidate(|k| k == ParseErrorKind::DuplicateHeader, None, 400)),
        ("rfc4475/invalid/mcl01.sip", "§3.3.9 two conflicting Content-Length values: error",
         RejectParse(|k| k == ParseErrorKind::MultipleContentLength, 400)),
        ("rfc4475/invalid/bcast.sip", "§3.3.10 200 OK with a broadcast Via: well-formed (a proxy drops it)",
         Accept(|m| {
             let second = &m.vias().unwrap()[1];
             assert_eq!(second.host.ip(), Some(std::net::IpAddr::V4(std::net::Ipv4Addr::BROADCAST)));
         })),
        ("rfc4475/invalid/zeromf.sip", "§3.3.11 Max-Forwards 0: legal (a proxy answers 483)",
         Accept(|m| assert_eq!(m.max_forwards().unwrap().unwrap(), 0))),
        ("rfc4475/invalid/cparam01.sip", "§3.3.12 addr-spec Contact: ;unknownparam is a contact parameter",
         Accept(|m| {
             let c = contacts(m);
             let a = c[0].address().unwrap();
             assert!(a.params.contains(b"unknownparam"));
             assert_eq!(a.uri.as_sip().unwrap().params().count(), 0);
         })),
        ("rfc4475/invalid/cparam02.sip", "§3.3.13 <...;unknownparam>: a URI parameter",
         Accept(|m| {
             let c = contacts(m);
             let a = c[0].address().unwrap();
             assert!(a.uri.as_sip().unwrap().param(b"unknownparam").is_some());
         })),
        ("rfc4475/invalid/regescrt.sip", "§3.3.14 escaped Route header inside <> in Contact: kept in the URI",
         Accept(|m| {
             let c = contacts(m);
             assert!(c[0].address().unwrap().uri.as_sip().unwrap().headers().is_some());
         })),
        ("rfc4475/invalid/sdp01.sip", "§3.3.15 Accept without application/sdp: well-formed (406 or 400 at a UAS)",
         Accept(|m| assert!(m.header(HeaderName::Accept).is_some()))),
        ("rfc4475/invalid/inv2543.sip", "§3.4.1 RFC 2543 INVITE without Content-Length: accept, body is the rest of the datagram",
         Accept(|m| {
             assert_eq!(m.content_length(), None);
             assert_eq!(m.body().len(), 105);
             assert!(m.top_via().unwrap().branch().is_none());
         })),
        ("rfc4475/unlisted/test.sip", "not in the RFC: grossly malformed; reject, never crash",
         RejectParse(|_| true, 400)),

        // ---- RFC 5118: IPv6 ----------------------------------------------------------------
        ("rfc5118/valid/ipv6-good.sip", "§4.1 IPv6 references in Request-URI, Via, Contact: accept",
         Accept(|m| assert!(matches!(sip_ruri(m).host(), Host::Ipv6 { addr: Some(_), .. })))),
        ("rfc5118/invalid/ipv6-bad.sip", "§4.2 sip:2001:db8::10 without [ ]: 400",
         RejectValidate(bad_uri, None, 400)),
        ("rfc5118/valid/port-ambiguous.sip", "§4.3 [2001:db8::10:5070] is an address without port",
         Accept(|m| {
             let u = sip_ruri(m);
             assert_eq!(u.port(), None);
             assert!(matches!(u.host(), Host::Ipv6 { addr: Some(_), .. }));
         })),
        ("rfc5118/valid/port-unambiguous.sip", "§4.4 [2001:db8::10]:5070",
         Accept(|m| assert_eq!(sip_ruri(m).port(), Some(5070)))),
        ("rfc5118/valid/via-received-param-with-delim.sip", "§4.5 received=[...] tolerated",
         Accept(|m| assert_eq!(m.top_via().unwrap().received(), Some(&b"[2001:db8::9:255]"[..])))),
        ("rfc5118/valid/via-received-param-no-delim.sip", "§4.5 received without [ ]: valid",
         Accept(|m| assert_eq!(m.top_via().unwrap().received(), Some(&b"2001:db8::9:255"[..])))),
        ("rfc5118/valid/ipv6-in-sdp.sip", "§4.6 valid per the RFC, but its printed Content-Length (268) exceeds the 251-octet body: a UDP receiver answers 400 (RFC 3261 §18.3)",
         RejectParse(|k| matches!(k, ParseErrorKind::ContentLengthExceedsBody { declared: 268, present: 251 }), 400)),
        ("rfc5118/valid/mult-ip-in-header.sip", "§4.7 Vias mixing IPv6 and IPv4: parse every hop",
         Accept(|m| assert!(m.vias().unwrap().len() >= 3))),
        ("rfc5118/valid/mult-ip-in-sdp.sip", "§4.8 valid; Content-Length 181 < body: the body is cut at 181",
         Accept(|m| assert_eq!(m.body().len(), 181))),
        ("rfc5118/valid/ipv4-mapped-ipv6.sip", "§4.9 ::ffff:a.b.c.d addresses: accept",
         Accept(|m| {
             let via = m.top_via().unwrap();
             assert_eq!(via.port, Some(19823));
             assert!(matches!(via.host, Host::Ipv6 { addr: Some(_), .. }));
         })),
        ("rfc5118/valid/ipv6-bug-abnf-3-colons.sip", "§4.10 [2001:db8:::192.0.2.1] must be tolerated",
         Accept(|m| assert!(matches!(sip_ruri(m).host(), Host::Ipv6 { .. })))),
        ("rfc5118/valid/ipv6-correct-abnf-2-colons.sip", "§4.10 [2001:db8::192.0.2.1]: accept",
         Accept(|m| assert!(matches!(sip_ruri(m).host(), Host::Ipv6 { addr: Some(_), .. })))),
    ]
}

fn all_files(dir: &str) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["valid", "invalid", "unlisted"] {
        let p = data_dir().join(dir).join(sub);
        if let Ok(rd) = std::fs::read_dir(&p) {
            for e in rd {
                let name = e.unwrap().file_name().into_string().unwrap();
                if name.ends_with(".sip") {
                    out.push(format!("{dir}/{sub}/{name}"));
                }
            }
        }
    }
    out.sort();
    out
}

#[test]
fn files_match_the_manifest_checksums() {
    for dir in ["rfc4475", "rfc5118"] {
        let manifest = String::from_utf8(read(&format!("{dir}/manifest.tsv"))).unwrap();
        let mut lines = manifest.lines();
        let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
        let file_col = header.iter().position(|c| *c == "file").unwrap();
        let sha_col = header.iter().position(|c| *c == "sha256").unwrap();
        for line in lines {
            let cols: Vec<&str> = line.split('\t').collect();
            let rel = cols[file_col].trim_start_matches("conformance/");
            let digest = Sha256::digest(read(rel));
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(hex, cols[sha_col], "{rel} differs from the RFC archive");
        }
    }
}

#[test]
fn every_file_has_an_expectation() {
    let listed: Vec<&str> = expectations().iter().map(|(f, _, _)| *f).collect();
    let mut files = all_files("rfc4475");
    files.extend(all_files("rfc5118"));
    assert_eq!(files.len(), 50 + 12);
    for f in &files {
        assert!(listed.contains(&f.as_str()), "{f} has no expectation");
    }
    assert_eq!(listed.len(), files.len());
}

fn check(file: &str, rfc: &str, expect: &Expect) -> Result<(), String> {
    let bytes = read(file);
    let ctx = |what: String| format!("{file} ({rfc}): {what}");
    let parsed = Message::parse(&bytes);
    match expect {
        Accept(extra) => {
            let m = parsed.map_err(|e| ctx(format!("parse failed: {e}")))?;
            m.validate()
                .map_err(|e| ctx(format!("validate failed: {e}")))?;
            // No edits: the same octets (trailing datagram octets past Content-Length dropped;
            // a header section that lacked its empty line gets one).
            let out = Edits::new().to_vec(&m);
            let mut expected = m.as_bytes().to_vec();
            if !m.has_empty_line() {
                expected.extend_from_slice(b"\r\n");
            }
            if out != expected {
                return Err(ctx("serialize without edits changed the octets".into()));
            }
            if m.has_empty_line() && bytes.len() == m.as_bytes().len() && out != bytes {
                return Err(ctx("round trip is not byte-identical".into()));
            }
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| extra(&m)));
            r.map_err(|e| {
                let why = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                ctx(format!("check failed: {why}"))
            })?;
            edit_round_trip(&m).map_err(ctx)?;
            Ok(())
        }
        RejectParse(kind_ok, status) => match parsed {
            Ok(_) => Err(ctx("parsed, expected a framing-level rejection".into())),
            Err(e) => expect_fault(&e, kind_ok, None, *status).map_err(ctx),
        },
        RejectValidate(kind_ok, header, status) => {
            let m =
                parsed.map_err(|e| ctx(format!("parse failed, expected validate() to: {e}")))?;
            match m.validate() {
                Ok(()) => Err(ctx("validated, expected a fault".into())),
                Err(e) => expect_fault(&e, kind_ok, *header, *status).map_err(ctx),
            }
        }
    }
}

fn expect_fault(
    e: &ParseError,
    kind_ok: &fn(ParseErrorKind) -> bool,
    header: Option<&str>,
    status: u16,
) -> Result<(), String> {
    if !kind_ok(e.kind()) {
        return Err(format!("unexpected fault: {e}"));
    }
    if let Some(h) = header {
        if !e.header().is_some_and(|eh| eh.eq_ignore_ascii_case(h)) {
            return Err(format!("fault in {:?}, expected {h}: {e}", e.header()));
        }
    }
    if e.status() != status {
        return Err(format!("implies {}, expected {status}: {e}", e.status()));
    }
    Ok(())
}

/// Edits a valid message the way a proxy does, reparses, and checks the edited values.
fn edit_round_trip(m: &Message<'_>) -> Result<(), String> {
    let mut e = Edits::new();
    e.add_via(m, b"SIP/2.0/UDP proxy.sable.test;branch=z9hG4bKsable1")
        .unwrap();
    e.add_record_route(m, b"<sip:proxy.sable.test;lr>").unwrap();
    e.append_header(m, b"X-Sable", b"edited").unwrap();
    if m.is_request() {
        e.replace_request_uri(m, b"sip:target@192.0.2.99:5080");
    }
    e.replace_body(b"new body");
    let out = e.to_vec(m);
    let m2 = Message::parse(&out).map_err(|e| format!("reparse after edits failed: {e}"))?;
    if m2.top_via().map_err(|e| e.to_string())?.branch() != Some(b"z9hG4bKsable1") {
        return Err("top Via is not the added one".into());
    }
    if m2.vias().map_err(|e| e.to_string())?.len() != m.vias().unwrap().len() + 1 {
        return Err("Via count after adding one".into());
    }
    let rrs = m2.record_routes().map_err(|e| e.to_string())?;
    let rr = rrs.first().ok_or("no Record-Route")?;
    if rr.uri.as_bytes() != b"sip:proxy.sable.test;lr" {
        return Err("top Record-Route is not the added one".into());
    }
    if m2.headers_by_name(b"x-sable").map(|h| m2.value(h)).next() != Some(b"edited") {
        return Err("appended header missing".into());
    }
    if m.is_request()
        && m2.request_uri().map_err(|e| e.to_string())?.as_bytes() != b"sip:target@192.0.2.99:5080"
    {
        return Err("Request-URI not replaced".into());
    }
    if m2.body() != b"new body" || m2.content_length() != Some(8) {
        return Err("body or Content-Length not replaced".into());
    }
    m2.validate()
        .map_err(|e| format!("edited message does not validate: {e}"))?;
    // Remove the added Via again: the Via list is back to the original.
    let mut e2 = Edits::new();
    e2.remove_top_via(&m2);
    let out3 = e2.to_vec(&m2);
    let m3 = Message::parse(&out3).map_err(|e| e.to_string())?;
    let orig: Vec<&[u8]> = m
        .headers_named(HeaderName::Via)
        .map(|h| m.value(h))
        .collect();
    let back: Vec<&[u8]> = m3
        .headers_named(HeaderName::Via)
        .map(|h| m3.value(h))
        .collect();
    if orig != back {
        return Err("removing the added Via did not restore the Via list".into());
    }
    Ok(())
}

#[test]
fn every_torture_message_meets_its_expectation() {
    let failures: Vec<String> = expectations()
        .iter()
        .filter_map(|(file, rfc, expect)| check(file, rfc, expect).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
