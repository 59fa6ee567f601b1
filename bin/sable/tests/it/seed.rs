//! Seed 004's "Stateless Proof": a SIPp call through Sable, X-Proxied added both ways, the
//! AVP `<null>` in the reply route.

use crate::harness::*;
use std::process::Command;
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
    let dir = server.dir.clone();
    let mut uas = Command::new("sipp")
        .args([
            "-sn",
            "uas",
            "-i",
            "127.0.0.1",
            "-p",
            &uas_port.to_string(),
            "-m",
            "1",
        ])
        .args(["-timeout", "20s", "-trace_msg", "-nostdin"])
        .current_dir(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let uac = Command::new("sipp")
        .args(["-sn", "uac", &format!("127.0.0.1:{}", server.port)])
        .args(["-i", "127.0.0.1", "-p", &free_port().to_string(), "-m", "1"])
        .args(["-timeout", "20s", "-trace_msg", "-nostdin"])
        .current_dir(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    let uas_status = uas.wait().unwrap();
    assert!(
        uac.success(),
        "SIPp UAC failed; sable log:\n{}",
        server.log_text()
    );
    assert!(uas_status.success(), "SIPp UAS failed");

    let trace = |prefix: &str| -> String {
        std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with(prefix) && n.ends_with("_messages.log")
            })
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .collect()
    };
    let uas_trace = trace("uas_");
    let uac_trace = trace("uac_");
    assert!(
        uas_trace.contains("X-Proxied: You betcha"),
        "UAS trace:\n{uas_trace}"
    );
    assert!(
        uac_trace.contains("X-Proxied: For the reply"),
        "UAC trace:\n{uac_trace}"
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
