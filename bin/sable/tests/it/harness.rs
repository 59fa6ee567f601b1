//! Starting the server on a config and talking SIP to it.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The `sable` binary under test.
pub fn sable_bin() -> &'static str {
    env!("CARGO_BIN_EXE_sable")
}

/// The project's `tests/data` directory.
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data")
}

/// A port free on 127.0.0.1 for both UDP and TCP.
///
/// Taken below the kernel's ephemeral range (32768-60999 by default), from a per-process
/// sequence: a port the kernel hands out for `bind(0)` (our clients', SIPp's, the servers'
/// own sockets) can then never be one picked here, released, and taken by another socket
/// before the server under test binds it (seen once: "kamailio exited before listening").
/// Test binaries of one `cargo test` run one after another; the start is spread by process
/// id for concurrent runs, and a port found taken is skipped.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7_919) % SPAN,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..SPAN {
        let port = (LOW + NEXT.fetch_add(1, Ordering::Relaxed) % SPAN) as u16;
        if UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
    panic!("no free port in {LOW}..{}", LOW + SPAN);
}

/// Polls `f` (every 20 ms) until it holds or `limit` has passed: whether it held.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// [`eventually`], or the test fails naming `what`.
pub fn wait_until(what: &str, limit: Duration, f: impl FnMut() -> bool) {
    assert!(eventually(limit, f), "{what}: not within {limit:?}");
}

/// A private scratch directory under the target dir, new at each call: two tests that
/// use the same name at once (a Kamailio scenario run by its own test and by the Sable
/// test that compares with it) each get their own, instead of removing the other's files.
pub fn scratch(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running server; stopped (SIGTERM, then kill) when dropped.
pub struct Server {
    pub child: Option<Child>,
    pub port: u16,
    pub log: Arc<Mutex<String>>,
    pub dir: PathBuf,
}

impl Server {
    /// Starts `sable -f` on `cfg`, where `PORT` is replaced by a free port, and waits for
    /// it to say it started.
    pub fn start(name: &str, cfg: &str) -> Server {
        Self::start_with(name, cfg, &[])
    }

    pub fn start_with(name: &str, cfg: &str, extra_ports: &[(&str, u16)]) -> Server {
        let port = free_port();
        let dir = scratch(name);
        // Named placeholders first (`UAS_PORT` contains `PORT`).
        let mut text = cfg.to_owned();
        for (k, v) in extra_ports {
            text = text.replace(k, &v.to_string());
        }
        let text = text.replace("PORT", &port.to_string());
        let path = dir.join("sable.cfg");
        std::fs::write(&path, text).unwrap();
        let path = path.to_string_lossy().into_owned();
        Self::spawn(dir, port, &["-f", &path])
    }

    /// The embedded default config (no `-f`), listening on a free port.
    pub fn start_default(name: &str) -> Server {
        let port = free_port();
        let listen = format!("SABLE_LISTEN=udp:127.0.0.1:{port}");
        Self::spawn(scratch(name), port, &["-A", &listen])
    }

    fn spawn(dir: PathBuf, port: u16, args: &[&str]) -> Server {
        // -dd: at least L_INFO, so that the start line is logged whatever `debug=` says.
        let mut child = Command::new(sable_bin())
            .arg("-dd")
            .args(args)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stderr);
            let mut line = String::new();
            while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let s = Server {
            child: Some(child),
            port,
            log,
            dir,
        };
        s.wait_log("started", Duration::from_secs(20));
        s
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits (bounded) until the log holds `needle`; panics with the log otherwise.
    pub fn wait_log(&self, needle: &str, limit: Duration) {
        if eventually(limit, || self.log_text().contains(needle)) {
            return;
        }
        panic!(
            "'{needle}' not logged within {limit:?}; log:\n{}",
            self.log_text()
        );
    }

    /// Sends SIGTERM and waits for the exit status (bounded).
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // A failed test shows what the server logged (the last lines).
            let log = self.log_text();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines
                .get(lines.len().saturating_sub(200)..)
                .unwrap_or_default();
            eprintln!(
                "--- server on port {} ({}), its log:\n{}\n--- end of its log",
                self.port,
                self.dir.display(),
                tail.join("\n")
            );
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A UDP client on an ephemeral loopback port.
pub struct UdpClient {
    pub sock: UdpSocket,
}

impl UdpClient {
    pub fn new() -> UdpClient {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        UdpClient { sock }
    }

    pub fn port(&self) -> u16 {
        self.sock.local_addr().unwrap().port()
    }

    pub fn send(&self, to: SocketAddr, data: &[u8]) {
        self.sock.send_to(data, to).unwrap();
    }

    /// The next datagram, or `None` after `wait`.
    pub fn recv_within(&self, wait: Duration) -> Option<Vec<u8>> {
        self.recv_until(wait).ok()
    }

    /// The next datagram, or after `wait` what the last receive said (a receive that
    /// returns early without a datagram, interrupted, is tried again until then).
    fn recv_until(&self, wait: Duration) -> Result<Vec<u8>, std::io::Error> {
        let start = Instant::now();
        let mut buf = vec![0u8; 65536];
        loop {
            let left = wait.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(std::io::ErrorKind::TimedOut.into());
            }
            self.sock.set_read_timeout(Some(left)).unwrap();
            match self.sock.recv_from(&mut buf) {
                Ok((n, _)) => {
                    buf.truncate(n);
                    return Ok(buf);
                }
                Err(e) if start.elapsed() >= wait => return Err(e),
                Err(_) => {}
            }
        }
    }

    /// The next datagram; panics when none comes within [`RECV_BOUND`] (a bound against
    /// hanging, far above what any answer takes).
    pub fn recv(&self) -> Vec<u8> {
        match self.recv_until(RECV_BOUND) {
            Ok(d) => d,
            Err(e) => panic!(
                "no datagram on port {} within {RECV_BOUND:?} ({e})",
                self.port()
            ),
        }
    }
}

/// How long [`UdpClient::recv`] waits before the test fails.
pub const RECV_BOUND: Duration = Duration::from_secs(10);

/// The status code of a reply.
pub fn status(reply: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(reply);
    let first = text.lines().next().unwrap_or("");
    assert!(first.starts_with("SIP/2.0 "), "not a reply: {first}");
    first[8..11].parse().unwrap()
}

/// A minimal OPTIONS request from a client port.
pub fn options(port: u16, to_port: u16, call_id: &str) -> Vec<u8> {
    format!(
        "OPTIONS sip:127.0.0.1:{to_port} SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{call_id};rport\r\n\
From: <sip:probe@127.0.0.1>;tag=t{call_id}\r\n\
To: <sip:127.0.0.1:{to_port}>\r\n\
Call-ID: {call_id}\r\n\
CSeq: 1 OPTIONS\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// Reads from a TCP stream until `n` bytes or EOF or the timeout.
pub fn read_some(stream: &mut std::net::TcpStream, wait: Duration) -> Vec<u8> {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    out
}

/// Whether `sipp` is installed.
pub fn have_sipp() -> bool {
    Command::new("sipp").arg("-v").output().is_ok()
}

/// What a SIPp call through a proxy gave.
pub struct SippCall {
    pub uac_ok: bool,
    pub uas_ok: bool,
    pub uac_trace: String,
    pub uas_trace: String,
}

/// One SIPp `uac` call to the proxy at `proxy_port`, answered by a SIPp `uas` on
/// `uas_port`, both on 127.0.0.1, run in `dir` (where their message traces land).
pub fn sipp_call(dir: &Path, proxy_port: u16, uas_port: u16) -> SippCall {
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
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let uac = Command::new("sipp")
        .args(["-sn", "uac", &format!("127.0.0.1:{proxy_port}")])
        .args(["-i", "127.0.0.1", "-p", &free_port().to_string(), "-m", "1"])
        .args(["-timeout", "20s", "-trace_msg", "-nostdin"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let uas_ok = uas.wait().unwrap().success();
    let trace = |prefix: &str| -> String {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with(prefix) && n.ends_with("_messages.log")
            })
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .collect()
    };
    SippCall {
        uac_ok: uac.success(),
        uas_ok,
        uac_trace: trace("uac_"),
        uas_trace: trace("uas_"),
    }
}

/// Whether Kamailio is installed.
pub fn have_kamailio() -> bool {
    Command::new("kamailio").arg("-v").output().is_ok()
}

/// A reply a UAS would send to a forwarded request: the status line, then the request's
/// Via, From, To, Call-ID and CSeq lines as they are.
pub fn reply_to(request: &str, status_line: &str) -> String {
    let mut reply = format!("{status_line}\r\n");
    for l in request.lines() {
        if ["Via:", "From:", "To:", "Call-ID:", "CSeq:"]
            .iter()
            .any(|h| l.starts_with(h))
        {
            reply.push_str(l);
            reply.push_str("\r\n");
        }
    }
    reply.push_str("Content-Length: 0\r\n\r\n");
    reply
}

/// A SIPp UAS answering calls on `port` (until killed), run in `dir`.
pub fn sipp_uas(dir: &Path, port: u16) -> Child {
    Command::new("sipp")
        .args([
            "-sn",
            "uas",
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-nostdin",
        ])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// A SIPp UAC placing `calls` calls at `rate` per second to the proxy on `proxy_port`.
pub fn sipp_uac(dir: &Path, proxy_port: u16, rate: u32, calls: u32) -> Child {
    Command::new("sipp")
        .args(["-sn", "uac", &format!("127.0.0.1:{proxy_port}")])
        .args(["-i", "127.0.0.1", "-p", &free_port().to_string()])
        .args(["-r", &rate.to_string(), "-m", &calls.to_string()])
        .args(["-timeout", "60s", "-nostdin"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}
