//! RFC 3261 §17.1.3 / §17.2.3 matching, with the RFC 2543 fallback.

use sable_sip::Message;
use sable_transaction::{TransactionError, TransactionKey};

fn request(method: &str, via: &str, to_tag: &str, cseq: &str) -> Vec<u8> {
    format!(
        "{method} sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: {via}\r\n\
Max-Forwards: 70\r\n\
To: <sip:bob@biloxi.example.com>{to_tag}\r\n\
From: <sip:alice@atlanta.example.com>;tag=88sja8x\r\n\
Call-ID: 987asjd97y7atg\r\n\
CSeq: {cseq}\r\n\
Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn response(code: u16, via: &str, cseq: &str) -> Vec<u8> {
    format!(
        "SIP/2.0 {code} Whatever\r\n\
Via: {via}\r\n\
To: <sip:bob@biloxi.example.com>;tag=xyz\r\n\
From: <sip:alice@atlanta.example.com>;tag=88sja8x\r\n\
Call-ID: 987asjd97y7atg\r\n\
CSeq: {cseq}\r\n\
Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

const VIA: &str = "SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds";

fn key(bytes: &[u8]) -> TransactionKey {
    TransactionKey::of_request(&Message::parse(bytes).unwrap()).unwrap()
}

#[test]
fn retransmitted_request_matches_its_transaction() {
    let a = request("INVITE", VIA, "", "1 INVITE");
    assert_eq!(key(&a), key(&a.clone()));
    assert!(!key(&a).is_rfc2543());
}

#[test]
fn ack_to_non_2xx_matches_the_invite_server_transaction() {
    let invite = request("INVITE", VIA, "", "1 INVITE");
    let ack = request("ACK", VIA, ";tag=xyz", "1 ACK");
    assert_eq!(key(&ack), key(&invite));
    let ack = Message::parse(&ack).unwrap();
    assert_eq!(TransactionKey::invite_key_of(&ack).unwrap(), key(&invite));
}

#[test]
fn cancel_is_its_own_transaction_but_refers_to_the_invite() {
    let invite = request("INVITE", VIA, "", "1 INVITE");
    let cancel = request("CANCEL", VIA, "", "1 CANCEL");
    assert_ne!(key(&cancel), key(&invite));
    let cancel = Message::parse(&cancel).unwrap();
    assert_eq!(
        TransactionKey::invite_key_of(&cancel).unwrap(),
        key(&invite)
    );
}

#[test]
fn invite_key_of_refuses_other_methods_and_responses() {
    let bye = request("BYE", VIA, ";tag=xyz", "2 BYE");
    assert!(matches!(
        TransactionKey::invite_key_of(&Message::parse(&bye).unwrap()),
        Err(TransactionError::NotAckOrCancel { method }) if method == "BYE"
    ));
    let resp = response(200, VIA, "1 INVITE");
    assert_eq!(
        TransactionKey::invite_key_of(&Message::parse(&resp).unwrap()),
        Err(TransactionError::NotARequest)
    );
    assert_eq!(
        TransactionKey::of_request(&Message::parse(&resp).unwrap()),
        Err(TransactionError::NotARequest)
    );
}

#[test]
fn different_methods_with_one_branch_are_different_transactions() {
    let a = request("INVITE", VIA, "", "1 INVITE");
    let b = request("OPTIONS", VIA, "", "1 OPTIONS");
    assert_ne!(key(&a), key(&b));
}

#[test]
fn branch_is_case_sensitive() {
    let a = request("OPTIONS", VIA, "", "1 OPTIONS");
    let b = request(
        "OPTIONS",
        "SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776ASDHDS",
        "",
        "1 OPTIONS",
    );
    assert_ne!(key(&a), key(&b));
}

#[test]
fn sent_by_host_is_case_insensitive_but_port_counts() {
    let a = request("OPTIONS", VIA, "", "1 OPTIONS");
    let b = request(
        "OPTIONS",
        "SIP/2.0/UDP PC33.Atlanta.EXAMPLE.com:5060;branch=z9hG4bK776asdhds",
        "",
        "1 OPTIONS",
    );
    assert_eq!(key(&a), key(&b));
    let c = request(
        "OPTIONS",
        "SIP/2.0/UDP pc33.atlanta.example.com:5070;branch=z9hG4bK776asdhds",
        "",
        "1 OPTIONS",
    );
    assert_ne!(key(&a), key(&c));
}

#[test]
fn ipv6_sent_by_compares_as_an_address() {
    let a = request(
        "OPTIONS",
        "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKv6",
        "",
        "1 OPTIONS",
    );
    let b = request(
        "OPTIONS",
        "SIP/2.0/UDP [2001:DB8:0::1]:5060;branch=z9hG4bKv6",
        "",
        "1 OPTIONS",
    );
    assert_eq!(key(&a), key(&b));
}

#[test]
fn response_matches_the_client_transaction_of_its_request() {
    let invite_bytes = request("INVITE", VIA, "", "1 INVITE");
    let invite = Message::parse(&invite_bytes).unwrap();
    let sent = TransactionKey::of_sent_request(&invite).unwrap();
    for code in [100, 180, 200, 486] {
        let resp = response(code, &format!("{VIA};received=192.0.2.4"), "1 INVITE");
        assert_eq!(
            TransactionKey::of_response(&Message::parse(&resp).unwrap()).unwrap(),
            sent
        );
    }
    // A 200 to the CANCEL with the same branch is the CANCEL's transaction, not the INVITE's.
    let resp = response(200, VIA, "1 CANCEL");
    assert_ne!(
        TransactionKey::of_response(&Message::parse(&resp).unwrap()).unwrap(),
        sent
    );
    assert_eq!(
        TransactionKey::of_response(&invite),
        Err(TransactionError::NotAResponse)
    );
}

#[test]
fn response_without_magic_cookie_matches_no_client_transaction() {
    let resp = response(200, "SIP/2.0/UDP host;branch=1234", "1 INVITE");
    assert_eq!(
        TransactionKey::of_response(&Message::parse(&resp).unwrap()),
        Err(TransactionError::NoRfc3261Branch)
    );
}

const OLD_VIA: &str = "SIP/2.0/UDP pc33.atlanta.example.com:5060";

#[test]
fn rfc_2543_fallback_without_magic_cookie() {
    let invite = request("INVITE", OLD_VIA, "", "7 INVITE");
    let k = key(&invite);
    assert!(k.is_rfc2543());
    // A bare cookie is not an RFC 3261 branch either (RFC 4475 §3.2.1).
    let bare = request(
        "INVITE",
        &format!("{OLD_VIA};branch=z9hG4bK"),
        "",
        "7 INVITE",
    );
    assert!(key(&bare).is_rfc2543());
    assert_ne!(key(&bare), k, "the Via parameters differ");
    // ACK with the response's To tag matches the INVITE.
    let ack = request("ACK", OLD_VIA, ";tag=xyz", "7 ACK");
    assert_eq!(key(&ack), k);
    // CANCEL is its own transaction and refers to the INVITE.
    let cancel = request("CANCEL", OLD_VIA, "", "7 CANCEL");
    assert_ne!(key(&cancel), k);
    assert_eq!(
        TransactionKey::invite_key_of(&Message::parse(&cancel).unwrap()).unwrap(),
        k
    );
    // Another CSeq number is another transaction.
    assert_ne!(key(&request("INVITE", OLD_VIA, "", "8 INVITE")), k);
    // Another sent-by too; the host case does not matter.
    assert_ne!(
        key(&request(
            "INVITE",
            "SIP/2.0/UDP pc34.atlanta.example.com:5060",
            "",
            "7 INVITE"
        )),
        k
    );
    assert_eq!(
        key(&request(
            "INVITE",
            "SIP/2.0/UDP PC33.atlanta.example.com:5060",
            "",
            "7 INVITE"
        )),
        k
    );
}

#[test]
fn rfc_2543_non_invite_keys_include_the_to_tag() {
    let a = request("BYE", OLD_VIA, ";tag=one", "9 BYE");
    let b = request("BYE", OLD_VIA, ";tag=two", "9 BYE");
    assert_ne!(key(&a), key(&b));
    assert_eq!(key(&a), key(&a.clone()));
}

#[test]
fn missing_headers_are_errors_with_a_400() {
    let no_via = b"OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    let err = TransactionKey::of_request(&Message::parse(no_via).unwrap()).unwrap_err();
    assert!(matches!(
        err,
        TransactionError::BadHeader { header: "Via", .. }
    ));
    assert_eq!(err.status(), 400);
}
