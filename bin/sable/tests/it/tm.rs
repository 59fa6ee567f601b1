//! Acceptance tests for the transaction module (tm): seed 004's "Adding State", "Failure
//! Routes", "Parallel Forking" and "Serial Forking", timers, retransmissions, record-routing
//! and CANCEL. Each scenario is one Kamailio config (`tests/data/cfg/tm/`) and SIPp
//! scenarios (`tests/sipp/tm/`): a caller (UAC) and one to three callees (UAS), all on
//! loopback. The same run is made against Kamailio 5.6 (`tm_*_kamailio`, the reference) and
//! against Sable (`tm_*_sable`, compared with Kamailio's outcome when Kamailio is installed).
//!
//! A run gives, per leg, the SIP messages that SIPp sent and received, in order (from its
//! `-trace_msg` message file), as method names and status codes, with SIPp's exit codes and
//! the proxy's script log lines (xlog), where the run's port numbers are put back as the
//! config's placeholders (`PROXY_PORT`, `UAS1_PORT`, ...).

use crate::harness::*;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The proxy under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    Kamailio,
    Sable,
}

/// A proxy config and the SIPp scenarios that drive it.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    pub name: &'static str,
    /// Under `tests/data/cfg/tm/`.
    pub cfg: &'static str,
    /// Under `tests/sipp/tm/`: the caller, then each callee (on UAS1_PORT, UAS2_PORT, ...).
    pub uac: &'static str,
    pub uas: &'static [&'static str],
    /// How many callees register first as the AOR `service` (their ports as bindings,
    /// the first with q=1.0, the others q=0.5), through REGISTERs to the proxy.
    pub register_uas: usize,
}

/// One message in a SIPp message trace.
#[derive(Clone, Debug)]
pub struct TracedMsg {
    pub sent: bool,
    /// Seconds since midnight, from the trace's time stamp.
    pub at: f64,
    pub text: String,
}

/// What one SIPp instance saw.
#[derive(Clone, Debug)]
pub struct Leg {
    /// "INVITE", "ACK", ... for requests, "100", "180", ... for replies; sent and received.
    pub flow: Vec<String>,
    pub msgs: Vec<TracedMsg>,
    /// SIPp's exit code (0: the call succeeded); `None` when killed.
    pub exit: Option<i32>,
}

/// The outcome of a scenario run.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub server: ServerKind,
    pub uac: Leg,
    pub uas: Vec<Leg>,
    /// The script's log lines (xlog), ports as placeholders.
    pub script: Vec<String>,
    /// The proxy's whole stderr.
    pub log: String,
    pub dir: PathBuf,
}

impl Outcome {
    fn dump(&self) -> String {
        let mut s = format!(
            "{:?} run in {}\nUAC {:?}: {:?}\n",
            self.server,
            self.dir.display(),
            self.uac.exit,
            self.uac.flow
        );
        for (i, l) in self.uas.iter().enumerate() {
            s.push_str(&format!("UAS{} {:?}: {:?}\n", i + 1, l.exit, l.flow));
        }
        s.push_str(&format!(
            "script: {:#?}\nproxy log:\n{}",
            self.script, self.log
        ));
        s
    }

    /// The script lines, sorted: replies to the same request can be handled by different
    /// Kamailio processes at once, so their lines may come in either order.
    fn script_sorted(&self) -> Vec<String> {
        let mut v = self.script.clone();
        v.sort();
        v
    }
}

pub(crate) fn sipp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/sipp/tm")
}

/// Kills the process (if still running) when dropped, so that a failed assertion leaves no
/// SIPp or proxy behind.
pub(crate) struct Reaper(pub(crate) Option<Child>);

impl Reaper {
    /// Waits (bounded) for the exit code; kills the process after `limit`.
    pub(crate) fn wait(&mut self, limit: Duration) -> Option<i32> {
        let mut child = self.0.take()?;
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// SIGTERM, then (after a bounded wait) SIGKILL.
    pub(crate) fn stop(&mut self) {
        if let Some(child) = &self.0 {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
        }
        let _ = self.wait(Duration::from_secs(5));
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits (bounded) until something is bound to UDP `port` on loopback.
pub(crate) fn wait_bound(port: u16, proc: &mut Reaper, what: &str, log: &Path) {
    let start = Instant::now();
    while std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
        let exited = proc.0.as_mut().map(|c| c.try_wait().ok().flatten());
        if let Some(Some(status)) = exited {
            panic!(
                "{what} exited ({status}) before listening on {port}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what} not listening on {port} after 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A SIPp instance on its scenario file, bounded in calls (1) and time, tracing its
/// messages to `NAME.msg` in `dir`.
fn spawn_sipp(dir: &Path, name: &str, xml: &str, port: u16, remote: Option<u16>) -> Reaper {
    // `-d`: the length of uac_call's call.
    spawn_sipp_file(
        dir,
        name,
        &sipp_dir().join(xml),
        port,
        remote,
        &["-d", "200"],
    )
}

/// [`spawn_sipp`] on any scenario file, with more arguments (`-key name value`, `-m N`...;
/// a later `-m` wins over the default 1).
pub(crate) fn spawn_sipp_file(
    dir: &Path,
    name: &str,
    xml: &Path,
    port: u16,
    remote: Option<u16>,
    extra: &[&str],
) -> Reaper {
    let mut cmd = Command::new("sipp");
    cmd.arg("-sf").arg(xml);
    if let Some(r) = remote {
        cmd.arg(format!("127.0.0.1:{r}"));
    }
    cmd.args(["-i", "127.0.0.1", "-p", &port.to_string(), "-m", "1"])
        // Bounds against hanging: a wait for one message (the callee's for the BYE after a
        // call of up to 6 s) must outlast a stall of the machine by several seconds.
        .args(["-timeout", "30s", "-recv_timeout", "15000", "-nostdin"])
        .args(["-trace_msg", "-message_file", &format!("{name}.msg")])
        .args(["-trace_err", "-error_file", &format!("{name}.err")])
        .args(extra)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{name}.stderr"))).unwrap());
    Reaper(Some(cmd.spawn().unwrap()))
}

/// Parses a SIPp `-trace_msg` file: entries after a `-----... DATE TIME` line, then
/// `UDP message sent (N bytes):` or `UDP message received [N] bytes :`, a blank line and
/// the message.
fn parse_trace(text: &str) -> Vec<TracedMsg> {
    let mut out = Vec::new();
    for entry in text
        .split("----------------------------------------------- ")
        .skip(1)
    {
        let mut lines = entry.lines();
        let stamp = lines.next().unwrap_or("");
        let at = stamp
            .split_whitespace()
            .nth(1)
            .and_then(|t| {
                let mut p = t.split(':');
                let h: f64 = p.next()?.parse().ok()?;
                let m: f64 = p.next()?.parse().ok()?;
                let s: f64 = p.next()?.parse().ok()?;
                Some(h * 3600.0 + m * 60.0 + s)
            })
            .unwrap_or(0.0);
        let what = lines.next().unwrap_or("");
        let sent = if what.contains("message sent") {
            true
        } else if what.contains("message received") {
            false
        } else {
            continue;
        };
        let body: Vec<&str> = lines.skip_while(|l| l.trim().is_empty()).collect();
        out.push(TracedMsg {
            sent,
            at,
            text: body.join("\n").replace('\r', ""),
        });
    }
    out
}

/// "INVITE" for a request, "180" for a reply.
fn kind(msg: &TracedMsg) -> String {
    let first = msg.text.lines().next().unwrap_or("");
    match first.strip_prefix("SIP/2.0 ") {
        Some(rest) => rest.chars().take(3).collect(),
        None => first.split(' ').next().unwrap_or("").to_owned(),
    }
}

fn leg(dir: &Path, name: &str, exit: Option<i32>) -> Leg {
    let text = std::fs::read_to_string(dir.join(format!("{name}.msg"))).unwrap_or_default();
    let msgs = parse_trace(&text);
    Leg {
        flow: msgs.iter().map(kind).collect(),
        msgs,
        exit,
    }
}

/// The script's log lines: the text after `<script>: ` (Kamailio: ` 1(123) ERROR: <script>:
/// text`; Sable logs the same marker), ANSI colours removed.
fn script_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.split_once("<script>: ").map(|(_, t)| t))
        .map(|t| {
            let mut s = String::new();
            let mut chars = t.chars();
            while let Some(c) = chars.next() {
                if c == '\u{1b}' {
                    for d in chars.by_ref() {
                        if d.is_ascii_alphabetic() {
                            break;
                        }
                    }
                } else {
                    s.push(c);
                }
            }
            s.trim_end().to_owned()
        })
        .collect()
}

/// Runs `scenario` once through `server`: starts the proxy on the scenario's config, the
/// callees, then the caller; waits (bounded) for all of them; stops the proxy.
pub fn run_scenario(server: ServerKind, scenario: Scenario) -> Outcome {
    let kind = match server {
        ServerKind::Kamailio => "kamailio",
        ServerKind::Sable => "sable",
    };
    let dir = scratch(&format!("tm-{}-{kind}", scenario.name));
    let proxy_port = free_port();
    let uas_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let uac_port = free_port();
    // A second listen port for configs that send out of another socket than they receive
    // on (its workers then take the replies).
    let mut names: Vec<(String, u16)> = vec![
        ("PROXY_PORT".into(), proxy_port),
        ("PROXY2_PORT".into(), free_port()),
    ];
    for (i, p) in uas_ports.iter().enumerate() {
        names.push((format!("UAS{}_PORT", i + 1), *p));
    }
    let mut cfg = std::fs::read_to_string(data_dir().join("cfg/tm").join(scenario.cfg)).unwrap();
    for (name, port) in &names {
        cfg = cfg.replace(name.as_str(), &port.to_string());
    }
    let cfg_path = dir.join("proxy.cfg");
    std::fs::write(&cfg_path, cfg).unwrap();

    let log_path = dir.join("proxy.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let mut cmd = match server {
        ServerKind::Kamailio => {
            let mut c = Command::new("kamailio");
            c.args(["-DD", "-E", "-m", "64", "-M", "8", "-f"]);
            c
        }
        ServerKind::Sable => {
            let mut c = Command::new(sable_bin());
            c.args(["-dd", "-f"]);
            c
        }
    };
    cmd.arg(&cfg_path)
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(log_file);
    let mut proxy = Reaper(Some(cmd.spawn().unwrap()));
    wait_bound(proxy_port, &mut proxy, kind, &log_path);

    for (i, uas_port) in uas_ports.iter().enumerate().take(scenario.register_uas) {
        let c = UdpClient::new();
        let q = if i == 0 { "1.0" } else { "0.5" };
        let reg = format!(
            "REGISTER sip:127.0.0.1:{proxy_port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK-reg{i}\r\nFrom: <sip:service@127.0.0.1>;tag=r{i}\r\nTo: <sip:service@127.0.0.1>\r\nCall-ID: reg-{i}@test\r\nCSeq: 1 REGISTER\r\nContact: <sip:service@127.0.0.1:{p}>;q={q}\r\nExpires: 600\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            me = c.port(),
            p = uas_port,
        );
        c.send(
            SocketAddr::from(([127, 0, 0, 1], proxy_port)),
            reg.as_bytes(),
        );
        let reply = c.recv();
        assert_eq!(
            status(&reply),
            200,
            "{kind}: REGISTER: {}",
            String::from_utf8_lossy(&reply)
        );
    }
    let mut uas: Vec<Reaper> = Vec::new();
    for (i, xml) in scenario.uas.iter().enumerate() {
        let name = format!("uas{}", i + 1);
        let mut r = spawn_sipp(&dir, &name, xml, uas_ports[i], None);
        wait_bound(
            uas_ports[i],
            &mut r,
            &name,
            &dir.join(format!("{name}.stderr")),
        );
        uas.push(r);
    }
    let mut uac = spawn_sipp(&dir, "uac", scenario.uac, uac_port, Some(proxy_port));
    let uac_exit = uac.wait(Duration::from_secs(20));
    let uas_exits: Vec<Option<i32>> = uas
        .iter_mut()
        .map(|r| r.wait(Duration::from_secs(10)))
        .collect();
    // Late log lines (the proxy logs before it sends, so this is only a margin).
    std::thread::sleep(Duration::from_millis(200));
    proxy.stop();

    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let mut script = script_lines(&log);
    for line in &mut script {
        for (name, port) in &names {
            *line = line.replace(&format!(":{port}"), &format!(":{name}"));
        }
    }
    Outcome {
        server,
        uac: leg(&dir, "uac", uac_exit),
        uas: uas_exits
            .into_iter()
            .enumerate()
            .map(|(i, e)| leg(&dir, &format!("uas{}", i + 1), e))
            .collect(),
        script,
        log,
        dir,
    }
}

// ---------------------------------------------------------------------------------------
// Checks shared by the scenarios.

/// Both SIPp sides finished their scenario, and each leg saw exactly `flows` (UAC first).
fn assert_flows(o: &Outcome, uac: &[&str], uas: &[&[&str]]) {
    let dump = o.dump();
    assert_eq!(o.uac.exit, Some(0), "UAC exit code\n{dump}");
    assert_eq!(o.uac.flow, uac, "UAC flow\n{dump}");
    assert_eq!(o.uas.len(), uas.len());
    for (i, (leg, want)) in o.uas.iter().zip(uas).enumerate() {
        assert_eq!(leg.exit, Some(0), "UAS{} exit code\n{dump}", i + 1);
        assert_eq!(&leg.flow, want, "UAS{} flow\n{dump}", i + 1);
    }
}

/// The script logged exactly `lines`, in any order (see `script_sorted`).
fn assert_script(o: &Outcome, lines: &[&str]) {
    let mut want: Vec<String> = lines.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    assert_eq!(o.script_sorted(), want, "script lines\n{}", o.dump());
}

/// `lines` appear in the script log in this order (other lines may come between).
fn assert_script_order(o: &Outcome, lines: &[&str]) {
    let mut it = o.script.iter();
    for want in lines {
        assert!(
            it.any(|l| l == want),
            "{want:?} missing or out of order\n{}",
            o.dump()
        );
    }
}

/// The first message of `leg` whose flow entry is `kind`, and which was sent (or received).
fn first_msg<'a>(leg: &'a Leg, kind_: &str, sent: bool) -> &'a TracedMsg {
    leg.msgs
        .iter()
        .find(|m| m.sent == sent && kind(m) == kind_)
        .unwrap_or_else(|| panic!("no {kind_} (sent: {sent}) in {:?}", leg.flow))
}

/// The value of header `name` (first occurrence) in a traced message.
fn header<'a>(msg: &'a TracedMsg, name: &str) -> Option<&'a str> {
    msg.text.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The reason phrase of a traced reply.
fn reason(msg: &TracedMsg) -> &str {
    let first = msg.text.lines().next().unwrap_or("");
    first.splitn(3, ' ').nth(2).unwrap_or("")
}

/// Sable's outcome must match Kamailio's: the same flows on every leg, the same exit codes,
/// the same script lines.
fn assert_same(k: &Outcome, s: &Outcome) {
    let both = format!(
        "--- Kamailio ---\n{}\n--- Sable ---\n{}",
        k.dump(),
        s.dump()
    );
    assert_eq!(s.uac.flow, k.uac.flow, "UAC flow (left Sable)\n{both}");
    assert_eq!(s.uac.exit, k.uac.exit, "UAC exit (left Sable)\n{both}");
    for (i, (sl, kl)) in s.uas.iter().zip(&k.uas).enumerate() {
        assert_eq!(sl.flow, kl.flow, "UAS{} flow (left Sable)\n{both}", i + 1);
        assert_eq!(sl.exit, kl.exit, "UAS{} exit (left Sable)\n{both}", i + 1);
    }
    assert_eq!(
        s.script_sorted(),
        k.script_sorted(),
        "script lines (left Sable)\n{both}"
    );
}

fn kamailio_test(scenario: Scenario, expect: fn(&Outcome)) {
    if !have_sipp() || !have_kamailio() {
        eprintln!(
            "note: sipp or kamailio missing: tm {} skipped",
            scenario.name
        );
        return;
    }
    let o = run_scenario(ServerKind::Kamailio, scenario);
    expect(&o);
}

fn sable_test(scenario: Scenario, expect: fn(&Outcome)) {
    if !have_sipp() {
        eprintln!("note: sipp missing: tm {} skipped", scenario.name);
        return;
    }
    let s = run_scenario(ServerKind::Sable, scenario);
    expect(&s);
    if have_kamailio() {
        let k = run_scenario(ServerKind::Kamailio, scenario);
        expect(&k);
        assert_same(&k, &s);
    }
}

// ---------------------------------------------------------------------------------------
// A. Seed 004 "Adding State".

const A: Scenario = Scenario {
    name: "a_adding_state",
    cfg: "a_adding_state.cfg",
    uac: "uac_call.xml",
    uas: &["uas_answer.xml"],
    register_uas: 0,
};

// Expected flows (Kamailio 5.6):
//   UAC:  INVITE >, < 100 (tm's own, "trying -- your call is important to us"), < 180,
//         < 200, ACK >, BYE >, < 200
//   UAS1: < INVITE (Record-Route, X-Proxied), 100 >, 180 >, 200 >, < ACK, < BYE, 200 >
// The UAS's 100 stops at the proxy (100 is hop by hop) but runs the reply route. The
// reply route sees the AVP the INVITE set: "I remember" for 100, 180, 200. ACK and BYE
// (and the BYE's 200) are other transactions: <null>.
fn expect_a(o: &Outcome) {
    let call = ["INVITE", "100", "180", "200", "ACK", "BYE", "200"];
    assert_flows(o, &call, &[&call]);
    let avp = "the value of AVP \"state_test_var\" is";
    assert_script(
        o,
        &[
            &format!("for INVITE {avp} I remember"),
            &format!("for 100 response {avp} I remember"),
            &format!("for 180 response {avp} I remember"),
            &format!("for 200 response {avp} I remember"),
            &format!("for ACK {avp} <null>"),
            &format!("for BYE {avp} <null>"),
            &format!("for 200 response {avp} <null>"),
        ],
    );
    assert_script_order(
        o,
        &[
            &format!("for INVITE {avp} I remember"),
            &format!("for 200 response {avp} I remember"),
            &format!("for ACK {avp} <null>"),
            &format!("for BYE {avp} <null>"),
            &format!("for 200 response {avp} <null>"),
        ],
    );
    let invite = first_msg(&o.uas[0], "INVITE", false);
    assert_eq!(
        header(invite, "X-Proxied"),
        Some("You betcha"),
        "{}",
        o.dump()
    );
    for code in ["180", "200"] {
        let reply = first_msg(&o.uac, code, false);
        assert_eq!(
            header(reply, "X-Proxied"),
            Some("For the reply"),
            "{code}\n{}",
            o.dump()
        );
    }
}

#[test]
fn tm_a_adding_state_kamailio() {
    kamailio_test(A, expect_a);
}

#[test]

fn tm_a_adding_state_sable() {
    sable_test(A, expect_a);
}

// ---------------------------------------------------------------------------------------
// B. Seed 004 "Failure Routes": no answer, t_reply("500") from the failure route.

const B: Scenario = Scenario {
    name: "b_failure_route",
    cfg: "b_failure_route.cfg",
    uac: "uac_500.xml",
    uas: &["uas_silent.xml"],
    register_uas: 0,
};

// Expected flows (Kamailio 5.6, fr_timer 2000 ms):
//   UAC:  INVITE >, < 100, < 500 "Remote end never got back to us" (at ~2 s), ACK >
//         (hop by hop; tm takes it: no 500 retransmission follows)
//   UAS1: < INVITE at 0, 0.5 and 1.5 s (tm's retransmissions), nothing else (no CANCEL:
//         the branch never replied)
// The failure route runs with tm's local 408 as the winning reply.
fn expect_b(o: &Outcome) {
    assert_flows(
        o,
        &["INVITE", "100", "500", "ACK"],
        &[&["INVITE", "INVITE", "INVITE"]],
    );
    assert_eq!(
        reason(first_msg(&o.uac, "500", false)),
        "Remote end never got back to us"
    );
    assert_script(
        o,
        &[
            "request INVITE",
            "At failure route: 408",
            "the branch timed out",
            "the branch never replied",
            "request ACK",
        ],
    );
    assert_script_order(
        o,
        &["request INVITE", "At failure route: 408", "request ACK"],
    );
}

#[test]
fn tm_b_failure_route_kamailio() {
    kamailio_test(B, expect_b);
}

#[test]

fn tm_b_failure_route_sable() {
    sable_test(B, expect_b);
}

// ---------------------------------------------------------------------------------------
// C. Seed 004 "Parallel Forking".

const C: Scenario = Scenario {
    name: "c_parallel_forking",
    cfg: "c_parallel_forking.cfg",
    uac: "uac_call.xml",
    uas: &[
        "uas_answer.xml",
        "uas_ring_cancel.xml",
        "uas_ring_cancel.xml",
    ],
    register_uas: 0,
};

// Expected flows (Kamailio 5.6):
//   UAC:  INVITE >, < 100, < 180 (x3, one per branch, each with its own To-tag), < 200
//         (from UAS1), ACK >, BYE >, < 200
//   UAS1: < INVITE, 100 >, 180 >, 200 > (after 0.5 s), < ACK, < BYE, 200 >
//   UAS2, UAS3: < INVITE, 180 >, < CANCEL (from tm once UAS1's 200 is in), 200 >, 487 >,
//         < ACK (tm's, hop by hop)
// The 487s are not relayed to the caller. The branch route runs once per branch
// (index 0 is the Request-URI); the reply route sees each reply with its branch index.
fn expect_c(o: &Outcome) {
    let ringing = ["INVITE", "180", "CANCEL", "200", "487", "ACK"];
    assert_flows(
        o,
        &[
            "INVITE", "100", "180", "180", "180", "200", "ACK", "BYE", "200",
        ],
        &[
            &["INVITE", "100", "180", "200", "ACK", "BYE", "200"],
            &ringing,
            &ringing,
        ],
    );
    assert_script(
        o,
        &[
            "request INVITE",
            "branch 0 to sip:uas1@127.0.0.1:UAS1_PORT",
            "branch 1 to sip:uas2@127.0.0.1:UAS2_PORT",
            "branch 2 to sip:uas3@127.0.0.1:UAS3_PORT",
            "for 100 response on branch 0",
            "for 180 response on branch 0",
            "for 180 response on branch 1",
            "for 180 response on branch 2",
            "for 200 response on branch 0",
            "request ACK",
            "for 487 response on branch 1",
            "for 487 response on branch 2",
            "request BYE",
        ],
    );
    assert_script_order(
        o,
        &[
            "request INVITE",
            "branch 0 to sip:uas1@127.0.0.1:UAS1_PORT",
            "branch 1 to sip:uas2@127.0.0.1:UAS2_PORT",
            "branch 2 to sip:uas3@127.0.0.1:UAS3_PORT",
            "for 200 response on branch 0",
            "request BYE",
        ],
    );
}

#[test]
fn tm_c_parallel_forking_kamailio() {
    kamailio_test(C, expect_c);
}

#[test]

fn tm_c_parallel_forking_sable() {
    sable_test(C, expect_c);
}

// ---------------------------------------------------------------------------------------
// D. Seed 004 "Serial Forking" by q value.

const D: Scenario = Scenario {
    name: "d_serial_forking",
    cfg: "d_serial_forking.cfg",
    uac: "uac_call.xml",
    uas: &["uas_503.xml", "uas_486.xml", "uas_answer.xml"],
    register_uas: 0,
};

// Expected flows (Kamailio 5.6), destinations tried one at a time, q 1.0, 0.5, 0.1:
//   UAC:  INVITE >, < 100, < 180, < 200 (the 503 and 486 are not relayed), ACK >, BYE >,
//         < 200
//   UAS1: < INVITE, 503 >, < ACK (tm's, hop by hop)
//   UAS2: < INVITE, 486 >, < ACK (tm's)
//   UAS3: < INVITE, 100 >, 180 >, 200 >, < ACK, < BYE, 200 >
fn expect_d(o: &Outcome) {
    assert_flows(
        o,
        &["INVITE", "100", "180", "200", "ACK", "BYE", "200"],
        &[
            &["INVITE", "503", "ACK"],
            &["INVITE", "486", "ACK"],
            &["INVITE", "100", "180", "200", "ACK", "BYE", "200"],
        ],
    );
    let steps = [
        "request INVITE",
        "first destination sip:uas1@127.0.0.1:UAS1_PORT",
        "for 503 response",
        "At failure route - 503 from the first destination",
        "At failure route - 503, trying next destination",
        "next destination sip:uas2@127.0.0.1:UAS2_PORT",
        "for 486 response",
        "At failure route - 486, trying next destination",
        "next destination sip:uas3@127.0.0.1:UAS3_PORT",
        "for 200 response",
        "request ACK",
        "request BYE",
    ];
    let mut all = steps.to_vec();
    all.extend(["for 100 response", "for 180 response"]);
    assert_script(o, &all);
    assert_script_order(o, &steps);
}

#[test]
fn tm_d_serial_forking_kamailio() {
    kamailio_test(D, expect_d);
}

#[test]

fn tm_d_serial_forking_sable() {
    sable_test(D, expect_d);
}

/// D again, the failure route busy for a while after its t_relay(): the 486 of the branch
/// it sent runs its onreply_route meanwhile, and the next failure route must still find
/// the contact list as the first one left it (uas3 next, not uas2 again).
const D_BUSY: Scenario = Scenario {
    name: "d_serial_forking_busy",
    cfg: "d_serial_forking_busy.cfg",
    ..D
};

#[test]
fn tm_d_serial_forking_busy_failure_route_kamailio() {
    kamailio_test(D_BUSY, expect_d);
}

#[test]
fn tm_d_serial_forking_busy_failure_route_sable() {
    sable_test(D_BUSY, expect_d);
}

// ---------------------------------------------------------------------------------------
// E. Timers: no answer (408), and INVITE retransmissions.

const E_NO_ANSWER: Scenario = Scenario {
    name: "e_no_answer",
    cfg: "e_timeout.cfg",
    uac: "uac_408.xml",
    uas: &["uas_silent.xml"],
    register_uas: 0,
};

// Expected flows (Kamailio 5.6, t_set_fr(10000, 2500)):
//   UAC:  INVITE >, < 100, < 408 "Request Timeout" (tm's own, at ~2.5 s), ACK > (hop by
//         hop, taken by tm)
//   UAS1: < INVITE at 0, 0.5, 1.5 s; nothing else
fn expect_e_no_answer(o: &Outcome) {
    assert_flows(
        o,
        &["INVITE", "100", "408", "ACK"],
        &[&["INVITE", "INVITE", "INVITE"]],
    );
    assert_script(
        o,
        &[
            "request INVITE",
            "At failure route - no reply, 408",
            "request ACK",
        ],
    );
    assert_script_order(
        o,
        &[
            "request INVITE",
            "At failure route - no reply, 408",
            "request ACK",
        ],
    );
    // The 408 comes after fr_timer (2.5 s), not before.
    let invite = first_msg(&o.uac, "INVITE", true).at;
    let timeout = first_msg(&o.uac, "408", false).at - invite;
    assert!(
        (2.3..4.0).contains(&timeout),
        "408 after {timeout:.3} s\n{}",
        o.dump()
    );
}

#[test]
fn tm_e_no_answer_kamailio() {
    kamailio_test(E_NO_ANSWER, expect_e_no_answer);
}

#[test]

fn tm_e_no_answer_sable() {
    sable_test(E_NO_ANSWER, expect_e_no_answer);
}

const E_RETRANSMISSION: Scenario = Scenario {
    name: "e_retransmission",
    cfg: "e_timeout.cfg",
    uac: "uac_call.xml",
    uas: &["uas_late_answer.xml"],
    register_uas: 0,
};

// Expected flows (Kamailio 5.6, T1 = 500 ms):
//   UAC:  INVITE >, < 100, < 180, < 200, ACK >, BYE >, < 200
//   UAS1: < INVITE (0 s), < INVITE (0.5 s), < INVITE (1.5 s), 180 > and 200 > (1.8 s),
//         < ACK, < BYE, 200 >
// The UAS ignores the first two copies and answers after the third.
fn expect_e_retransmission(o: &Outcome) {
    let call = ["INVITE", "100", "180", "200", "ACK", "BYE", "200"];
    assert_flows(
        o,
        &call,
        &[&[
            "INVITE", "INVITE", "INVITE", "180", "200", "ACK", "BYE", "200",
        ]],
    );
    // The copies are the same request, 0.5 s then 1 s apart.
    let copies: Vec<&TracedMsg> = o.uas[0].msgs.iter().take(3).collect();
    assert!(
        copies.iter().all(|m| m.text == copies[0].text),
        "{}",
        o.dump()
    );
    let gap1 = copies[1].at - copies[0].at;
    let gap2 = copies[2].at - copies[1].at;
    assert!(
        (0.4..0.8).contains(&gap1),
        "first retransmission after {gap1:.3} s"
    );
    assert!(
        (0.9..1.3).contains(&gap2),
        "second retransmission after {gap2:.3} s"
    );
    assert_script(
        o,
        &[
            "request INVITE",
            "for 180 response",
            "for 200 response",
            "request ACK",
            "request BYE",
        ],
    );
}

#[test]
fn tm_e_retransmission_kamailio() {
    kamailio_test(E_RETRANSMISSION, expect_e_retransmission);
}

#[test]

fn tm_e_retransmission_sable() {
    sable_test(E_RETRANSMISSION, expect_e_retransmission);
}

// ---------------------------------------------------------------------------------------
// F. record_route()/loose_route(), and CANCEL.

const F_RECORD_ROUTE: Scenario = Scenario {
    name: "f_record_route",
    cfg: "f_record_route.cfg",
    uac: "uac_call.xml",
    uas: &["uas_answer.xml"],
    register_uas: 0,
};

// Expected flows (Kamailio 5.6):
//   UAC:  INVITE >, < 100, < 180, < 200 (Record-Route: the proxy), ACK > and BYE > (Route:
//         the proxy), < 200
//   UAS1: < INVITE (Record-Route: <sip:127.0.0.1:PROXY_PORT;lr;ftag=...>), 100 >, 180 >,
//         200 >, < ACK, < BYE (both with the proxy's Via on top, the Route consumed), 200 >
fn expect_f_record_route(o: &Outcome) {
    let call = ["INVITE", "100", "180", "200", "ACK", "BYE", "200"];
    assert_flows(o, &call, &[&call]);
    let proxy = {
        let rr = header(first_msg(&o.uas[0], "INVITE", false), "Record-Route")
            .unwrap_or_else(|| panic!("no Record-Route in the INVITE\n{}", o.dump()));
        assert!(
            rr.starts_with("<sip:127.0.0.1:") && rr.contains(";lr"),
            "{rr}"
        );
        rr.trim_start_matches("<sip:")
            .split(';')
            .next()
            .unwrap()
            .to_owned()
    };
    assert!(
        header(first_msg(&o.uac, "200", false), "Record-Route").is_some(),
        "no Record-Route in the 200\n{}",
        o.dump()
    );
    for method in ["ACK", "BYE"] {
        let sent = first_msg(&o.uac, method, true);
        assert!(
            header(sent, "Route").is_some_and(|r| r.contains(&proxy)),
            "{}",
            sent.text
        );
        let got = first_msg(&o.uas[0], method, false);
        let via = header(got, "Via").unwrap();
        assert!(
            via.contains(&proxy),
            "{method} not via the proxy: {}",
            got.text
        );
        assert!(
            header(got, "Route").is_none(),
            "Route not consumed: {}",
            got.text
        );
    }
    assert_script(
        o,
        &[
            "new INVITE",
            "for 100 response",
            "for 180 response",
            "for 200 response",
            "in-dialog ACK by loose_route",
            "in-dialog BYE by loose_route",
        ],
    );
    assert_script_order(
        o,
        &[
            "new INVITE",
            "for 200 response",
            "in-dialog ACK by loose_route",
            "in-dialog BYE by loose_route",
        ],
    );
}

#[test]
fn tm_f_record_route_kamailio() {
    kamailio_test(F_RECORD_ROUTE, expect_f_record_route);
}

#[test]

fn tm_f_record_route_sable() {
    sable_test(F_RECORD_ROUTE, expect_f_record_route);
}

const F_CANCEL: Scenario = Scenario {
    name: "f_cancel",
    cfg: "f_record_route.cfg",
    uac: "uac_cancel.xml",
    uas: &["uas_ring_cancel.xml"],
    register_uas: 0,
};

// Expected flows (Kamailio 5.6):
//   UAC:  INVITE >, < 100, < 180, CANCEL >, < 200 (tm's, "canceling"), < 487 (the UAS's,
//         relayed), ACK > (hop by hop, taken by tm: no 487 retransmission follows)
//   UAS1: < INVITE, 180 >, < CANCEL (tm's own, hop by hop), 200 >, 487 >, < ACK (tm's)
// The failure route runs for the 487 with t_is_canceled() true.
fn expect_f_cancel(o: &Outcome) {
    assert_flows(
        o,
        &["INVITE", "100", "180", "CANCEL", "200", "487", "ACK"],
        &[&["INVITE", "180", "CANCEL", "200", "487", "ACK"]],
    );
    let ok = first_msg(&o.uac, "200", false);
    assert_eq!(header(ok, "CSeq"), Some("1 CANCEL"), "{}", ok.text);
    assert_script(
        o,
        &[
            "new INVITE",
            "for 180 response",
            "CANCEL",
            "for 487 response",
            "At failure route - canceled, 487",
        ],
    );
    assert_script_order(
        o,
        &[
            "new INVITE",
            "for 180 response",
            "CANCEL",
            "for 487 response",
            "At failure route - canceled, 487",
        ],
    );
}

#[test]
fn tm_f_cancel_kamailio() {
    kamailio_test(F_CANCEL, expect_f_cancel);
}

#[test]

fn tm_f_cancel_sable() {
    sable_test(F_CANCEL, expect_f_cancel);
}

// ---------------------------------------------------------------------------------------
// G. A call to an AOR registered through the proxy, forked by lookup() to its two bindings.

const G: Scenario = Scenario {
    name: "g_registered",
    cfg: "g_registered.cfg",
    uac: "uac_call.xml",
    uas: &["uas_answer.xml", "uas_ring_cancel.xml"],
    register_uas: 2,
};

// Expected flows: both bindings ring, the first answers, the second is cancelled.
//   UAC:  INVITE >, < 100, < 180, < 180, < 200, ACK >, BYE >, < 200
//   UAS1: < INVITE, 100 >, 180 >, 200 >, < ACK, < BYE, 200 >
//   UAS2: < INVITE, 180 >, < CANCEL, 200 >, 487 >, < ACK
fn expect_g(o: &Outcome) {
    assert_flows(
        o,
        &["INVITE", "100", "180", "180", "200", "ACK", "BYE", "200"],
        &[
            &["INVITE", "100", "180", "200", "ACK", "BYE", "200"],
            &["INVITE", "180", "CANCEL", "200", "487", "ACK"],
        ],
    );
}

#[test]
fn tm_g_registered_call_forks_kamailio() {
    kamailio_test(G, expect_g);
}

#[test]
fn tm_g_registered_call_forks_sable() {
    sable_test(G, expect_g);
}

// ---------------------------------------------------------------------------------------
// H. A call tracked by the dialog module (dlg_manage, did, event routes, $dlg_var, profile).

const H: Scenario = Scenario {
    name: "h_dialog",
    cfg: "h_dialog.cfg",
    uac: "uac_call.xml",
    uas: &["uas_answer.xml"],
    register_uas: 0,
};

fn expect_h(o: &Outcome) {
    assert_flows(
        o,
        &["INVITE", "100", "180", "200", "ACK", "BYE", "200"],
        &[&["INVITE", "100", "180", "200", "ACK", "BYE", "200"]],
    );
    for line in [
        "calls of sipp: 1",
        "dialog start var=alice-call",
        "ACK belongs to a dialog, var=alice-call",
        "BYE belongs to a dialog, var=alice-call",
        "dialog end var=alice-call",
    ] {
        assert!(
            o.script.iter().any(|l| l == line),
            "{:?}: {line:?} not logged: {:#?}",
            o.server,
            o.script
        );
    }
}

#[test]
fn tm_h_dialog_kamailio() {
    kamailio_test(H, expect_h);
}

#[test]
fn tm_h_dialog_sable() {
    sable_test(H, expect_h);
}

// H2/H3: the dialog of a rejected call and of a cancelled call fails (dialog:failed).

const H_REJECTED: Scenario = Scenario {
    name: "h_dialog_rejected",
    cfg: "h_dialog.cfg",
    uac: "uac_486.xml",
    uas: &["uas_486.xml"],
    register_uas: 0,
};

fn expect_h_rejected(o: &Outcome) {
    assert_flows(
        o,
        &["INVITE", "100", "486", "ACK"],
        &[&["INVITE", "486", "ACK"]],
    );
    assert!(
        o.script.iter().any(|l| l == "dialog failed"),
        "{:?}: {:#?}",
        o.server,
        o.script
    );
    assert!(!o.script.iter().any(|l| l.starts_with("dialog start")));
}

#[test]
fn tm_h_dialog_rejected_kamailio() {
    kamailio_test(H_REJECTED, expect_h_rejected);
}

#[test]
fn tm_h_dialog_rejected_sable() {
    sable_test(H_REJECTED, expect_h_rejected);
}

const H_CANCELLED: Scenario = Scenario {
    name: "h_dialog_cancelled",
    cfg: "h_dialog.cfg",
    uac: "uac_cancel.xml",
    uas: &["uas_ring_cancel.xml"],
    register_uas: 0,
};

fn expect_h_cancelled(o: &Outcome) {
    assert_flows(
        o,
        &["INVITE", "100", "180", "CANCEL", "200", "487", "ACK"],
        &[&["INVITE", "180", "CANCEL", "200", "487", "ACK"]],
    );
    assert!(
        o.script.iter().any(|l| l == "dialog failed"),
        "{:?}: {:#?}",
        o.server,
        o.script
    );
}

#[test]
fn tm_h_dialog_cancelled_kamailio() {
    kamailio_test(H_CANCELLED, expect_h_cancelled);
}

#[test]
fn tm_h_dialog_cancelled_sable() {
    sable_test(H_CANCELLED, expect_h_cancelled);
}

// H4: a call with a re-INVITE stays one dialog (state 4), the re-INVITE is an in-dialog
// request of it.

const H_REINVITE: Scenario = Scenario {
    name: "h_dialog_reinvite",
    cfg: "h_dialog.cfg",
    uac: "uac_reinvite.xml",
    uas: &["uas_reinvite.xml"],
    register_uas: 0,
};

fn expect_h_reinvite(o: &Outcome) {
    assert_flows(
        o,
        &[
            "INVITE", "100", "180", "200", "ACK", "INVITE", "100", "200", "ACK", "BYE", "200",
        ],
        &[&[
            "INVITE", "100", "180", "200", "ACK", "INVITE", "200", "ACK", "BYE", "200",
        ]],
    );
    for line in [
        "dialog start var=alice-call",
        "INVITE belongs to a dialog, var=alice-call",
        "dialog end var=alice-call",
    ] {
        assert!(
            o.script.iter().any(|l| l == line),
            "{:?}: {line:?} not logged: {:#?}",
            o.server,
            o.script
        );
    }
    assert_eq!(
        o.script
            .iter()
            .filter(|l| l.starts_with("dialog start"))
            .count(),
        1,
        "{:#?}",
        o.script
    );
}

#[test]
fn tm_h_dialog_reinvite_kamailio() {
    kamailio_test(H_REINVITE, expect_h_reinvite);
}

#[test]
fn tm_h_dialog_reinvite_sable() {
    sable_test(H_REINVITE, expect_h_reinvite);
}

// ---------------------------------------------------------------------------------------
// acc: the same accounting lines as Kamailio.

/// The `ACC: ...` records of a proxy log, with the values that differ from run to run
/// (time stamp, tags, Call-ID) masked, sorted.
fn acc_records(log: &str) -> Vec<String> {
    let mut v: Vec<String> = log
        .lines()
        .filter_map(|l| l.find("ACC: ").map(|at| &l[at..]))
        .map(|rec| {
            rec.trim_end()
                .split(';')
                .map(|field| match field.split_once('=') {
                    Some((k, _)) if k.ends_with("timestamp") => format!("{k}=T"),
                    Some((k @ ("from_tag" | "to_tag" | "call_id"), v)) if !v.is_empty() => {
                        format!("{k}=X")
                    }
                    _ => field.to_owned(),
                })
                .collect::<Vec<_>>()
                .join(";")
        })
        .collect();
    v.sort();
    v
}

const ACC_ANSWERED: Scenario = Scenario {
    name: "i_acc_answered",
    cfg: "i_acc.cfg",
    uac: "uac_call.xml",
    uas: &["uas_answer.xml"],
    register_uas: 0,
};

const ACC_MISSED: Scenario = Scenario {
    name: "i_acc_missed",
    cfg: "i_acc.cfg",
    uac: "uac_486.xml",
    uas: &["uas_486.xml"],
    register_uas: 0,
};

fn acc_expect_answered(o: &Outcome) {
    assert_flows(
        o,
        &["INVITE", "100", "180", "200", "ACK", "BYE", "200"],
        &[&["INVITE", "100", "180", "200", "ACK", "BYE", "200"]],
    );
    let recs = acc_records(&o.log);
    let want = [
        "ACC: request accounted: timestamp=T;method=INVITE;from_tag=X;to_tag=;call_id=X;code=100;reason=INVITE seen;src_user=sipp;dst_user=service;method_pv=INVITE;nothing=",
        // The BYE's Request-URI is the callee's Contact, which has no user part.
        "ACC: transaction answered: timestamp=T;method=BYE;from_tag=X;to_tag=X;call_id=X;code=200;reason=OK;src_user=sipp;dst_user=;method_pv=BYE;nothing=",
        "ACC: transaction answered: timestamp=T;method=INVITE;from_tag=X;to_tag=X;call_id=X;code=200;reason=OK;src_user=sipp;dst_user=service;method_pv=INVITE;nothing=",
    ];
    assert_eq!(recs, want, "{}", o.dump());
}

fn acc_expect_missed(o: &Outcome) {
    assert_flows(
        o,
        &["INVITE", "100", "486", "ACK"],
        &[&["INVITE", "486", "ACK"]],
    );
    let recs = acc_records(&o.log);
    let want = [
        "ACC: call missed: timestamp=T;method=INVITE;from_tag=X;to_tag=X;call_id=X;code=486;reason=Busy Here;src_user=sipp;dst_user=service;method_pv=INVITE;nothing=",
        "ACC: request accounted: timestamp=T;method=INVITE;from_tag=X;to_tag=;call_id=X;code=100;reason=INVITE seen;src_user=sipp;dst_user=service;method_pv=INVITE;nothing=",
        // failed_transaction_flag: the 486 is accounted as well.
        "ACC: transaction answered: timestamp=T;method=INVITE;from_tag=X;to_tag=X;call_id=X;code=486;reason=Busy Here;src_user=sipp;dst_user=service;method_pv=INVITE;nothing=",
    ];
    assert_eq!(recs, want, "{}", o.dump());
}

#[test]
fn tm_i_acc_answered_kamailio() {
    kamailio_test(ACC_ANSWERED, acc_expect_answered);
}

#[test]
fn tm_i_acc_answered_sable() {
    sable_test(ACC_ANSWERED, acc_expect_answered);
}

#[test]
fn tm_i_acc_missed_kamailio() {
    kamailio_test(ACC_MISSED, acc_expect_missed);
}

#[test]
fn tm_i_acc_missed_sable() {
    sable_test(ACC_MISSED, acc_expect_missed);
}

// ---------------------------------------------------------------------------------------
// J. Replies that arrive while the request route is still running after t_relay().

const J_BUSY_REQUEST: Scenario = Scenario {
    name: "j_busy_request_route",
    cfg: "j_busy_request_route.cfg",
    uac: "uac_call.xml",
    uas: &["uas_answer_after_1s.xml"],
    register_uas: 0,
};

/// Both servers: the call goes through, and the 200's onreply_route sees the AVP the
/// request route set after t_relay() and the one the 180's onreply_route set.
fn expect_j_common(o: &Outcome) {
    let call = ["INVITE", "100", "180", "200", "ACK", "BYE", "200"];
    assert_flows(o, &call, &[&call]);
    assert!(
        o.script
            .iter()
            .any(|l| l == "reply 200: req=after relay rpl=180 seen"),
        "the 200 sees both AVPs\n{}",
        o.dump()
    );
}

/// Sable: a reply route of the transaction waits for the request route to end, so the 100
/// and the 180 (sent at once by the UAS) see what the route set after t_relay() too.
fn expect_j_sable(o: &Outcome) {
    expect_j_common(o);
    assert_script(
        o,
        &[
            "request route done",
            "reply 100: req=after relay rpl=<null>",
            "reply 180: req=after relay rpl=180 seen",
            "reply 200: req=after relay rpl=180 seen",
        ],
    );
    assert_script_order(
        o,
        &[
            "request route done",
            "reply 180: req=after relay rpl=180 seen",
            "reply 200: req=after relay rpl=180 seen",
        ],
    );
}

#[test]
fn tm_j_replies_during_the_request_route_kamailio() {
    // Kamailio runs the 100's and the 180's onreply_route while the request route counts
    // (their req is <null> or set, depending on timing): only the common part is checked.
    kamailio_test(J_BUSY_REQUEST, expect_j_common);
}

#[test]
fn tm_j_replies_during_the_request_route_sable() {
    if !have_sipp() {
        eprintln!("note: sipp missing: tm {} skipped", J_BUSY_REQUEST.name);
        return;
    }
    expect_j_sable(&run_scenario(ServerKind::Sable, J_BUSY_REQUEST));
}
