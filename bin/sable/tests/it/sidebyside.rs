//! The same config on Kamailio 5.6 and on Sable, the same SIPp call through each: the script
//! must log the same lines and the peers must see the same added headers.

use crate::harness::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The texts logged by the script, in order. Kamailio's xlog writes no newline of its own
/// (the seed's formats end with a space, not `\n`), so one stderr line may hold several
/// entries, each after its `N(PID) ERROR: <script>: ` prefix: cut at the next prefix.
fn script_lines(log: &str) -> Vec<String> {
    let mut out = Vec::new();
    for piece in log.split("<script>: ").skip(1) {
        let piece = piece.split('\n').next().unwrap_or("");
        // A Kamailio prefix looks like ` 3(26686) ERROR: `: digits, '(', digits, ') '.
        let bytes = piece.as_bytes();
        let mut end = piece.len();
        for (k, _) in piece.match_indices(") ") {
            let before = &bytes[..k];
            let open = before.iter().rposition(|&b| b == b'(');
            if let Some(o) = open {
                let pid = &before[o + 1..];
                let idx_start = before[..o]
                    .iter()
                    .rposition(|&b| !b.is_ascii_digit())
                    .map_or(0, |p| p + 1);
                if !pid.is_empty() && pid.iter().all(u8::is_ascii_digit) && idx_start < o {
                    end = idx_start;
                    break;
                }
            }
        }
        out.push(piece[..end].trim().to_owned());
    }
    out
}

#[test]
fn stateless_proof_logs_and_headers_match_kamailio() {
    if !have_sipp() || !have_kamailio() {
        eprintln!("note: sipp or kamailio missing: side-by-side test skipped");
        return;
    }
    let fixture = std::fs::read_to_string(data_dir().join("cfg/stateless_proof.cfg")).unwrap();
    let mut results = Vec::new();
    for server_kind in ["kamailio", "sable"] {
        let port = free_port();
        let uas_port = free_port();
        let cfg = fixture
            .replace("127.0.0.1:5060", &format!("127.0.0.1:{port}"))
            .replace(
                "forward(\"127.0.0.1\", 5090)",
                &format!("forward(\"127.0.0.1\", {uas_port})"),
            );
        let dir = scratch(&format!("side-{server_kind}"));
        let path = dir.join("proxy.cfg");
        std::fs::write(&path, &cfg).unwrap();
        let log_path = dir.join("proxy.log");
        let log_file = std::fs::File::create(&log_path).unwrap();
        let mut child = if server_kind == "kamailio" {
            Command::new("kamailio")
                .args(["-DD", "-E", "-m", "64", "-M", "8", "-f"])
                .arg(&path)
                .current_dir(&dir)
                .stdout(Stdio::null())
                .stderr(log_file)
                .spawn()
                .unwrap()
        } else {
            Command::new(sable_bin())
                .args(["-dd", "-f"])
                .arg(&path)
                .current_dir(&dir)
                .stdout(Stdio::null())
                .stderr(log_file)
                .spawn()
                .unwrap()
        };
        // Ready when the port answers: wait (bounded) for the socket to be bound.
        let start = Instant::now();
        while std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && start.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        let call = sipp_call(&dir, port, uas_port);
        std::thread::sleep(Duration::from_millis(300));
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let _ = child.wait();
        let log = std::fs::read_to_string(&log_path).unwrap();
        assert!(
            call.uac_ok && call.uas_ok,
            "{server_kind}: the call failed; log:\n{log}"
        );
        results.push((server_kind, script_lines(&log), call));
    }
    let (_, k_lines, k_call) = &results[0];
    let (_, s_lines, s_call) = &results[1];
    assert_eq!(
        s_lines, k_lines,
        "script log lines differ (left Sable, right Kamailio)"
    );
    let needle = "X-Proxied: You betcha";
    assert_eq!(
        s_call.uas_trace.contains(needle),
        k_call.uas_trace.contains(needle),
        "{needle}"
    );
    for needle in ["X-Proxied: For the reply", "Record-Route:"] {
        assert_eq!(
            s_call.uac_trace.contains(needle),
            k_call.uac_trace.contains(needle),
            "{needle}"
        );
    }
}
