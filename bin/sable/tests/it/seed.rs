//! Seed 004's "Stateless Proof": a SIPp call through Sable, X-Proxied added both ways, the
//! AVP `<null>` in the reply route.

use crate::harness::*;
use std::time::Duration;

#[test]
fn stateless_proof_call_completes_through_sable() {
    if !have_sipp() {
        eprintln!("note: sipp is not installed: stateless proof test skipped");
        return;
    }
    let uas_port = free_port();
    // The seed's addresses, moved to loopback in the fixture, then to this run's ports.
    let cfg = std::fs::read_to_string(data_dir().join("cfg/stateless_proof.cfg"))
        .unwrap()
        .replace("127.0.0.1:5060", "127.0.0.1:PORT")
        .replace(
            "forward(\"127.0.0.1\", 5090)",
            "forward(\"127.0.0.1\", UAS_PORT)",
        );
    assert!(cfg.contains("UAS_PORT"), "fixture changed: {cfg}");
    let server = Server::start_with("stateless-proof", &cfg, &[("UAS_PORT", uas_port)]);
    let call = sipp_call(&server.dir, server.port, uas_port);
    assert!(
        call.uac_ok,
        "SIPp UAC failed; sable log:\n{}",
        server.log_text()
    );
    assert!(call.uas_ok, "SIPp UAS failed");
    assert!(
        call.uas_trace.contains("X-Proxied: You betcha"),
        "UAS trace:\n{}",
        call.uas_trace
    );
    assert!(
        call.uac_trace.contains("X-Proxied: For the reply"),
        "UAC trace:\n{}",
        call.uac_trace
    );

    server.wait_log("for BYE the value", Duration::from_secs(5));
    let log = server.log_text();
    for line in [
        "for INVITE the value of AVP \"state_test_var\" is I remember",
        "for 180 response the value of AVP \"state_test_var\" is <null>",
        "for 200 response the value of AVP \"state_test_var\" is <null>",
        "for ACK the value of AVP \"state_test_var\" is <null>",
        "for BYE the value of AVP \"state_test_var\" is <null>",
    ] {
        assert!(log.contains(line), "missing log line {line:?}; log:\n{log}");
    }
}
