//! A REGISTER challenged and answered end to end through `sable-sip`'s parser, as the
//! `auth`/`auth_db` glue will do it: no credentials (-5), 401 with the challenge, the
//! client's answer parsed back from the challenge, success (1), replay (-4 with
//! nonce_count), expiry (-4, then stale=true), and a proxy-authorized INVITE.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use sable_auth::{
    challenge_header, ha1, has_credentials, response, Algorithm, ChallengeKind, ChallengeOptions,
    NonceMaker, NonceTracker, Outcome, Precheck, Qop, QopInput, Request, ResponseInput, Stored,
    Verifier,
};
use sable_sip::{Credentials, HeaderName, Message};

const T0: u64 = 1_700_000_000;

fn register(extra: &str) -> Vec<u8> {
    format!(
        "REGISTER sip:example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds\r\n\
         Max-Forwards: 70\r\n\
         To: <sip:alice@example.com>\r\n\
         From: <sip:alice@example.com>;tag=456248\r\n\
         Call-ID: 843817637684230@998sdasdh09\r\n\
         CSeq: 1826 REGISTER\r\n\
         Contact: <sip:alice@192.0.2.10>\r\n\
         {extra}\
         Expires: 7200\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// What a UA does with a challenge: picks realm, nonce, qop, algorithm from it and answers.
fn answer(challenge_value: &[u8], method: &str, uri: &str, nc: u32, header: &str) -> String {
    let ch = Credentials::parse(challenge_value).unwrap();
    let realm = ch.realm().unwrap().into_owned();
    let nonce = ch.nonce().unwrap().into_owned();
    let alg = Algorithm::from_param(ch.algorithm().as_deref()).unwrap();
    let qop = ch.qop().map(|q| Qop::parse(&q).unwrap());
    let nc = format!("{nc:08x}");
    let h = ha1(alg, b"alice", &realm, b"wonderland");
    let r = response(
        alg,
        h.as_bytes(),
        &ResponseInput {
            method: method.as_bytes(),
            uri: uri.as_bytes(),
            nonce: &nonce,
            qop: qop.map(|qop| QopInput {
                qop,
                nc: nc.as_bytes(),
                cnonce: b"e79e26e0",
            }),
            body: b"",
        },
    );
    let mut s = format!(
        "{header}: Digest username=\"alice\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{r}\", algorithm={alg}",
        String::from_utf8(realm).unwrap(),
        String::from_utf8(nonce).unwrap(),
    );
    if qop.is_some() {
        s.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"e79e26e0\""));
    }
    s.push_str("\r\n");
    s
}

fn value_of(header_line: &[u8]) -> &[u8] {
    let colon = header_line.iter().position(|&b| b == b':').unwrap();
    header_line[colon + 1..].trim_ascii()
}

#[test]
fn register_is_challenged_then_authenticated_then_replay_is_stale() {
    let nonces = NonceMaker::new(b"registrar secret, random in life", 300);
    let tracker = NonceTracker::new(10, 1);
    let verifier = Verifier::new(&nonces)
        .with_algorithms(&[Algorithm::Sha256, Algorithm::Md5])
        .with_nonce_count(&tracker);
    let request = Request {
        method: b"REGISTER",
        realm: b"example.com",
        body: b"",
    };
    let subscriber = |user: &[u8]| (user == b"alice").then_some(Stored::Password(b"wonderland"));

    // 1. No credentials: -5, and the script challenges (auth_challenge("$td", "1")).
    let first = register("");
    let m = Message::parse(&first).unwrap();
    let list = m.credentials(HeaderName::Authorization).unwrap();
    let outcome = verifier.verify(request, list, None, T0);
    assert_eq!(outcome.code(), -5);
    let kind = ChallengeKind::for_method(b"REGISTER");
    assert_eq!(kind.status(), (401, "Unauthorized"));
    let nonce = nonces.make(T0, tracker.issue());
    let opts = ChallengeOptions::from_challenge_flags(1, Some(Algorithm::Sha256));
    let line = challenge_header(kind, b"example.com", &nonce, &opts);
    let line_text = String::from_utf8(line.clone()).unwrap();
    assert_eq!(
        line_text,
        format!("WWW-Authenticate: Digest realm=\"example.com\", nonce=\"{nonce}\", qop=\"auth\", algorithm=SHA-256\r\n")
    );

    // 2. The UA answers; two-step verification with the subscriber lookup in between.
    let auth = answer(
        value_of(&line),
        "REGISTER",
        "sip:example.com",
        1,
        "Authorization",
    );
    let second = register(&auth);
    let m = Message::parse(&second).unwrap();
    let www = m.credentials(HeaderName::Authorization).unwrap();
    let proxy = m.credentials(HeaderName::ProxyAuthorization).unwrap();
    assert!(has_credentials(www, proxy, b"example.com"));
    let Precheck::Lookup(pending) = verifier.precheck(request, www, T0 + 2) else {
        panic!("credentials should pass the precheck");
    };
    let (user, _) = pending.user_and_domain();
    assert_eq!(pending.algorithm(), Algorithm::Sha256);
    let outcome = pending.finish(subscriber(&user));
    assert_eq!((outcome, outcome.code()), (Outcome::Authenticated, 1));

    // 3. The same message again (a replay, not a retransmission absorbed by tm): stale.
    let outcome = verifier.verify(request, www, subscriber(b"alice"), T0 + 3);
    assert_eq!(outcome.code(), -4);

    // 4. The next REGISTER reuses the nonce with nc=2: accepted.
    let auth = answer(
        value_of(&line),
        "REGISTER",
        "sip:example.com",
        2,
        "Authorization",
    );
    let third = register(&auth);
    let m = Message::parse(&third).unwrap();
    let www = m.credentials(HeaderName::Authorization).unwrap();
    assert_eq!(
        verifier.verify(request, www, subscriber(b"alice"), T0 + 60),
        Outcome::Authenticated
    );

    // 5. After nonce_expire: -4; the script re-challenges with flag 16 (stale=true).
    let auth = answer(
        value_of(&line),
        "REGISTER",
        "sip:example.com",
        3,
        "Authorization",
    );
    let late = register(&auth);
    let m = Message::parse(&late).unwrap();
    let www = m.credentials(HeaderName::Authorization).unwrap();
    let outcome = verifier.verify(request, www, subscriber(b"alice"), T0 + 301);
    assert!(outcome.is_stale());
    let opts = ChallengeOptions::from_challenge_flags(1 | 16, Some(Algorithm::Sha256));
    let again = challenge_header(
        kind,
        b"example.com",
        &nonces.make(T0 + 301, tracker.issue()),
        &opts,
    );
    let ch = Credentials::parse(value_of(&again)).unwrap();
    assert!(ch.stale());

    // 6. Unknown user and wrong password differ only in the code the script sees.
    let auth = answer(
        value_of(&line),
        "REGISTER",
        "sip:example.com",
        9,
        "Authorization",
    );
    let msg = register(&auth.replace("username=\"alice\"", "username=\"mallory\""));
    let m = Message::parse(&msg).unwrap();
    let www = m.credentials(HeaderName::Authorization).unwrap();
    let Precheck::Lookup(pending) = verifier.precheck(request, www, T0 + 10) else {
        panic!("precheck");
    };
    let (user, _) = pending.user_and_domain();
    assert_eq!(pending.finish(subscriber(&user)).code(), -3);
}

#[test]
fn invite_is_proxy_authorized_with_md5_rfc2069_credentials() {
    let nonces = NonceMaker::new(b"proxy secret", 300);
    let verifier = Verifier::new(&nonces);
    let nonce = nonces.make(T0, 0);
    let kind = ChallengeKind::for_method(b"INVITE");
    assert_eq!(kind, ChallengeKind::Proxy);
    let line = challenge_header(kind, b"example.com", &nonce, &ChallengeOptions::default());
    assert!(line.starts_with(b"Proxy-Authenticate: Digest realm=\"example.com\", nonce=\""));
    let auth = answer(
        value_of(&line),
        "INVITE",
        "sip:bob@example.com",
        1,
        "Proxy-Authorization",
    );
    let invite = format!(
        "INVITE sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKnashds8\r\n\
         Max-Forwards: 70\r\n\
         To: <sip:bob@example.com>\r\n\
         From: <sip:alice@example.com>;tag=1928301774\r\n\
         Call-ID: a84b4c76e66710\r\n\
         CSeq: 2 INVITE\r\n\
         {auth}\
         Content-Length: 0\r\n\r\n"
    );
    let m = Message::parse(invite.as_bytes()).unwrap();
    let list = m.credentials(HeaderName::ProxyAuthorization).unwrap();
    let request = Request {
        method: b"INVITE",
        realm: b"example.com",
        body: b"",
    };
    let stored = ha1(Algorithm::Md5, b"alice", b"example.com", b"wonderland");
    assert_eq!(
        verifier.verify(request, list, Some(Stored::Ha1(stored.as_bytes())), T0 + 1),
        Outcome::Authenticated
    );
    // WWW credentials are not looked at by proxy_authorize.
    let www = m.credentials(HeaderName::Authorization).unwrap();
    assert_eq!(
        verifier.verify(request, www, None, T0),
        Outcome::NoCredentials
    );
}
