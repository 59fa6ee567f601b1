//! The control socket end to end: a [`ControlServer`] on a temporary unix socket, driven by
//! the crate's own client and by raw connections.

// Test code: a panic is a failed assertion.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::Shutdown;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use sable_rpc::{
    call, call_raw, Client, ClientError, ControlServer, Json, Limits, MethodKind, Params, Registry,
    RpcError,
};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(20);

/// A fresh directory for one test's socket.
/// A test's own directory, removed when the test ends.
struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(name: &str) -> TempDir {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "rpc-{}-{}-{name}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

fn registry() -> Arc<Registry> {
    let mut registry = Registry::new();
    registry
        .register(
            "core.echo",
            "Returns its parameters.",
            ["any"],
            MethodKind::List,
            |params: &Params| Ok(Json::Array(params.values().to_vec())),
        )
        .unwrap();
    registry
        .register(
            "test.square",
            "Squares an integer.",
            ["int"],
            MethodKind::Value,
            |params: &Params| {
                let n = params.int(0)?;
                Ok(json!(n * n))
            },
        )
        .unwrap();
    registry
        .register(
            "test.sleep",
            "Sleeps for the given milliseconds.",
            ["int"],
            MethodKind::Value,
            |params: &Params| {
                let ms = u64::try_from(params.int(0)?).unwrap_or(0);
                thread::sleep(Duration::from_millis(ms));
                Ok(json!("awake"))
            },
        )
        .unwrap();
    registry
        .register(
            "test.panic",
            "Panics.",
            Vec::<String>::new(),
            MethodKind::Value,
            |_: &Params| panic!("handler bug"),
        )
        .unwrap();
    Arc::new(registry)
}

fn start(dir: &Path) -> ControlServer {
    ControlServer::start(&dir.join("ctl.sock"), 0o660, registry(), 64).unwrap()
}

/// Sends raw lines on one connection and reads `answers` lines back.
fn raw_exchange(path: &Path, sent: &[u8], answers: usize) -> Vec<Json> {
    let mut stream = UnixStream::connect(path).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.write_all(sent).unwrap();
    // End of input: a last line without a newline is then answered too.
    stream.shutdown(Shutdown::Write).unwrap();
    let mut reader = BufReader::new(stream);
    (0..answers)
        .map(|_| {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert!(line.ends_with('\n'), "{line:?}");
            serde_json::from_str(&line).unwrap()
        })
        .collect()
}

#[test]
fn round_trip_with_the_client() {
    let dir = temp_dir("round-trip");
    let server = start(&dir);
    let result = call(
        server.path(),
        "core.echo",
        vec![json!(5), json!("five")],
        TIMEOUT,
    )
    .unwrap();
    assert_eq!(result, json!([5, "five"]));
    let methods = call(server.path(), "system.listMethods", Vec::new(), TIMEOUT).unwrap();
    assert!(methods.as_array().unwrap().contains(&json!("test.square")));
    let help = call(
        server.path(),
        "system.methodHelp",
        vec![json!("test.square")],
        TIMEOUT,
    )
    .unwrap();
    assert_eq!(help, json!("Squares an integer."));
}

#[test]
fn errors_survive_the_round_trip() {
    let dir = temp_dir("errors");
    let server = start(&dir);
    match call(server.path(), "no.such", Vec::new(), TIMEOUT) {
        Err(ClientError::Rpc(error)) => assert_eq!(error, RpcError::not_found()),
        other => panic!("{other:?}"),
    }
    match call(server.path(), "test.square", vec![json!("x")], TIMEOUT) {
        Err(ClientError::Rpc(error)) => {
            assert_eq!(error.code, -32602);
            assert!(error.message.starts_with("parameter 1"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    match call(server.path(), "test.panic", Vec::new(), TIMEOUT) {
        Err(ClientError::Rpc(error)) => assert_eq!(error.code, -32603),
        other => panic!("{other:?}"),
    }
    // The server survived the panic.
    assert_eq!(
        call(server.path(), "test.square", vec![json!(3)], TIMEOUT).unwrap(),
        json!(9)
    );
}

#[test]
fn one_connection_carries_many_calls_and_batches() {
    let dir = temp_dir("many");
    let server = start(&dir);
    let mut client = Client::connect(server.path(), TIMEOUT).unwrap();
    for n in 0..20 {
        assert_eq!(
            client.call("test.square", vec![json!(n)]).unwrap(),
            json!(n * n)
        );
    }
    let batch = client
        .call_raw(&json!([
            {"jsonrpc": "2.0", "method": "test.square", "params": [2], "id": 1},
            {"jsonrpc": "2.0", "method": "test.square", "params": [3]}
        ]))
        .unwrap();
    assert_eq!(
        batch,
        json!([{"jsonrpc": "2.0", "result": 4, "id": 1}, {"jsonrpc": "2.0", "result": 9}])
    );
    let whole = call_raw(
        server.path(),
        &json!({"jsonrpc": "2.0", "method": "core.echo", "params": {"b": 1, "a": 2}, "id": "x"}),
        TIMEOUT,
    )
    .unwrap();
    assert_eq!(
        whole,
        json!({"jsonrpc": "2.0", "result": [1, 2], "id": "x"})
    );
}

#[test]
fn lines_are_answered_in_order_and_blank_lines_ignored() {
    let dir = temp_dir("lines");
    let server = start(&dir);
    let answers = raw_exchange(
        server.path(),
        b"{\"jsonrpc\":\"2.0\",\"method\":\"test.square\",\"params\":[4],\"id\":1}\r\n\
          \n   \n\
          not json\n\
          {\"method\":\"test.square\",\"id\":3}\n\
          {\"jsonrpc\":\"2.0\",\"method\":\"test.square\",\"params\":[5],\"id\":4}",
        4,
    );
    assert_eq!(answers[0], json!({"jsonrpc": "2.0", "result": 16, "id": 1}));
    assert_eq!(answers[1]["error"]["code"], -32700);
    assert_eq!(answers[2], json!({"jsonrpc": "2.0", "result": {}, "id": 3}));
    assert_eq!(answers[3], json!({"jsonrpc": "2.0", "result": 25, "id": 4}));
}

#[test]
fn an_overlong_line_is_refused_and_the_connection_closed() {
    let dir = temp_dir("overlong");
    let path = dir.join("ctl.sock");
    let server =
        ControlServer::start_with_limits(&path, 0o600, registry(), 4, Limits { max_body: 64 })
            .unwrap();
    let mut stream = UnixStream::connect(server.path()).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut long = vec![b'x'; 200];
    long.push(b'\n');
    stream.write_all(&long).unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let answer: Json = serde_json::from_str(&line).unwrap();
    assert_eq!(answer["error"]["code"], -32600);
    assert_eq!(answer["error"]["data"], "Request too large");
    line.clear();
    assert_eq!(reader.read_line(&mut line).unwrap(), 0, "closed after");
    // A line exactly at the limit is fine.
    let request = r#"{"jsonrpc":"2.0","method":"test.square","params":[7]}"#;
    let padded = format!("{request:<64}\n");
    assert_eq!(padded.len(), 65);
    let answers = raw_exchange(server.path(), padded.as_bytes(), 1);
    assert_eq!(answers[0]["result"], 49);
}

#[test]
fn thousand_concurrent_calls_from_twenty_threads() {
    let dir = temp_dir("concurrent");
    let server = start(&dir);
    let path = server.path().to_owned();
    let threads: Vec<_> = (0..20)
        .map(|t| {
            let path = path.clone();
            thread::spawn(move || {
                let mut answered = 0;
                // Half the threads open a connection per call, half reuse one.
                let mut client = (t % 2 == 0).then(|| Client::connect(&path, TIMEOUT).unwrap());
                for i in 0..50_i64 {
                    let n = t * 1000 + i;
                    let result = match client.as_mut() {
                        Some(client) => client.call("test.square", vec![json!(n)]),
                        None => call(&path, "test.square", vec![json!(n)], TIMEOUT),
                    }
                    .unwrap();
                    assert_eq!(result, json!(n * n));
                    answered += 1;
                }
                answered
            })
        })
        .collect();
    let total: i32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(total, 1000);
}

#[test]
fn connections_beyond_the_limit_get_an_error_line() {
    let dir = temp_dir("limit");
    let path = dir.join("ctl.sock");
    let server = ControlServer::start(&path, 0o660, registry(), 1).unwrap();
    // Hold the only slot, and make sure the server has accepted it.
    let mut holder = Client::connect(&path, TIMEOUT).unwrap();
    assert_eq!(holder.call("test.square", vec![json!(2)]).unwrap(), 4);
    match call(&path, "test.square", vec![json!(2)], TIMEOUT) {
        Err(ClientError::Rpc(error)) => {
            assert_eq!(error.code, -32000);
            assert_eq!(error.message, "too many connections");
        }
        other => panic!("{other:?}"),
    }
    drop(holder);
    // The slot frees once the server sees the close; retry until then (bounded).
    let mut freed = false;
    for _ in 0..200 {
        if call(&path, "test.square", vec![json!(3)], TIMEOUT).is_ok() {
            freed = true;
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    assert!(freed);
    server.stop();
}

#[test]
fn socket_mode_and_parent_directory() {
    let dir = temp_dir("mode");
    let path = dir.join("run").join("sable").join("ctl.sock");
    let server = ControlServer::start(&path, 0o600, registry(), 4).unwrap();
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    drop(server);
}

#[test]
fn stop_and_drop_remove_the_socket_file() {
    let dir = temp_dir("stop");
    let path = dir.join("ctl.sock");
    let server = ControlServer::start(&path, 0o660, registry(), 4).unwrap();
    // An idle open connection must not keep stop from finishing.
    let _idle = UnixStream::connect(&path).unwrap();
    server.stop();
    assert!(!path.exists());
    assert!(matches!(
        call(&path, "core.echo", Vec::new(), TIMEOUT),
        Err(ClientError::NotRunning { .. })
    ));
    let server = ControlServer::start(&path, 0o660, registry(), 4).unwrap();
    drop(server);
    assert!(!path.exists());
}

#[test]
fn a_stale_socket_file_is_replaced() {
    let dir = temp_dir("stale");
    let path = dir.join("ctl.sock");
    // A server that died: its socket file stays, nothing accepts on it.
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    assert!(matches!(
        call(&path, "core.echo", Vec::new(), TIMEOUT),
        Err(ClientError::NotRunning { .. })
    ));
    let server = ControlServer::start(&path, 0o660, registry(), 4).unwrap();
    assert_eq!(
        call(&path, "core.echo", vec![json!(1)], TIMEOUT).unwrap(),
        json!([1])
    );
    drop(server);
}

#[test]
fn a_second_server_on_the_same_path_is_refused() {
    let dir = temp_dir("second");
    let path = dir.join("ctl.sock");
    let first = ControlServer::start(&path, 0o660, registry(), 4).unwrap();
    let error = ControlServer::start(&path, 0o660, registry(), 4).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse);
    assert!(error.to_string().contains("already listening"), "{error}");
    // The first one still serves.
    assert_eq!(
        call(&path, "test.square", vec![json!(6)], TIMEOUT).unwrap(),
        json!(36)
    );
    drop(first);
}

#[test]
fn a_path_that_is_not_a_socket_is_left_alone() {
    let dir = temp_dir("notsock");
    let path = dir.join("ctl.sock");
    fs::write(&path, "precious").unwrap();
    let error = ControlServer::start(&path, 0o660, registry(), 4).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(fs::read_to_string(&path).unwrap(), "precious");
}

#[test]
fn a_client_without_server_says_so() {
    let dir = temp_dir("absent");
    let path = dir.join("nobody.sock");
    let error = call(&path, "core.echo", Vec::new(), TIMEOUT).unwrap_err();
    assert!(matches!(&error, ClientError::NotRunning { path: p } if *p == path));
    assert_eq!(
        error.to_string(),
        format!("no Sable server is listening on {}", path.display())
    );
}

#[test]
fn a_slow_method_times_the_client_out() {
    let dir = temp_dir("timeout");
    let server = start(&dir);
    let error = call(
        server.path(),
        "test.sleep",
        vec![json!(1000)],
        Duration::from_millis(100),
    )
    .unwrap_err();
    assert!(matches!(error, ClientError::Timeout(_)), "{error:?}");
    drop(server);
}
