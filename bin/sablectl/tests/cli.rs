//! `sablectl` end to end: the built binary against a [`ControlServer`] serving fake methods on
//! a temporary socket.

// Test code: a panic is a failed assertion.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use sable_rpc::{ControlServer, Json, MethodKind, Params, Registry, RpcError};
use serde_json::json;

struct Fixture {
    server: ControlServer,
    _dir: TempDir,
}

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
        "ctl-{}-{}-{name}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

fn registry() -> Registry {
    let mut registry = Registry::new();
    registry
        .register(
            "core.echo",
            "Returns its parameters as a list.",
            ["any"],
            MethodKind::List,
            |params: &Params| Ok(Json::Array(params.values().to_vec())),
        )
        .unwrap();
    registry
        .register(
            "test.peers",
            "Lists peers.",
            Vec::<String>::new(),
            MethodKind::List,
            |_: &Params| {
                Ok(json!([
                    {"peer": "alice@example.com", "state": "INUSE",
                     "dialog": {"callid": "abc", "count": 1}},
                    {"peer": "bob@example.com", "state": "NOT_INUSE", "dialog": {}}
                ]))
            },
        )
        .unwrap();
    registry
        .register(
            "test.fail",
            "Always fails.",
            Vec::<String>::new(),
            MethodKind::Value,
            |_: &Params| Err(RpcError::new(404, "Peer not found")),
        )
        .unwrap();
    registry
        .register(
            "core.uptime",
            "Uptime.",
            Vec::<String>::new(),
            MethodKind::Value,
            |_: &Params| {
                Ok(json!({"now": "Mon Nov 23 12:00:00 2026",
                          "up_since": "Mon Nov 23 11:00:00 2026", "uptime": 3600}))
            },
        )
        .unwrap();
    registry
        .register(
            "core.ps",
            "Processes.",
            Vec::<String>::new(),
            MethodKind::List,
            |_: &Params| Ok(json!([{"pid": 100, "desc": "main"}, {"pid": 101, "desc": "ctl"}])),
        )
        .unwrap();
    registry
        .register(
            "stats.get_statistics",
            "Statistics: all, GROUP: or NAME.",
            ["string"],
            MethodKind::List,
            |params: &Params| {
                let all = ["core:rcv_requests = 10", "sl:sent_replies = 4"];
                let wanted = params.strings_from(0)?;
                Ok(json!(all
                    .iter()
                    .filter(|stat| wanted.iter().any(|w| *w == "all" || stat.starts_with(w)))
                    .collect::<Vec<_>>()))
            },
        )
        .unwrap();
    registry
}

fn fixture(name: &str) -> Fixture {
    let dir = temp_dir(name);
    let server =
        ControlServer::start(&dir.join("ctl.sock"), 0o660, Arc::new(registry()), 16).unwrap();
    Fixture { server, _dir: dir }
}

fn sablectl(socket: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sablectl"))
        .env_remove("SABLE_CTL")
        .arg("-s")
        .arg(socket)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn code(output: &Output) -> i32 {
    output.status.code().unwrap()
}

#[test]
fn arguments_are_typed_like_kamcmd() {
    let f = fixture("typing");
    let out = sablectl(
        f.server.path(),
        &["--json", "rpc", "core.echo", "5", "s:5", "abc", "-3", "i:7"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let result: Json = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(result, json!([5, "5", "abc", -3, 7]));
}

#[test]
fn a_bad_forced_integer_is_a_usage_error() {
    let f = fixture("bad-int");
    let out = sablectl(f.server.path(), &["rpc", "core.echo", "i:abc"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("i:abc"), "{}", stderr(&out));
}

#[test]
fn json_output_is_pretty() {
    let f = fixture("pretty");
    let out = sablectl(f.server.path(), &["--json", "uptime"]);
    assert_eq!(code(&out), 0);
    assert_eq!(
        stdout(&out),
        "{\n  \"now\": \"Mon Nov 23 12:00:00 2026\",\n  \"up_since\": \"Mon Nov 23 11:00:00 2026\",\n  \"uptime\": 3600\n}\n"
    );
}

#[test]
fn objects_print_kamcmd_style() {
    let f = fixture("objects");
    let out = sablectl(f.server.path(), &["uptime"]);
    assert_eq!(code(&out), 0);
    assert_eq!(
        stdout(&out),
        "{\n\tnow: Mon Nov 23 12:00:00 2026\n\tup_since: Mon Nov 23 11:00:00 2026\n\tuptime: 3600\n}\n"
    );
}

#[test]
fn lists_print_one_block_per_element() {
    let f = fixture("lists");
    let out = sablectl(f.server.path(), &["rpc", "test.peers"]);
    assert_eq!(code(&out), 0);
    assert_eq!(
        stdout(&out),
        "{\n\tpeer: alice@example.com\n\tstate: INUSE\n\tdialog: {\n\t\tcallid: abc\n\t\tcount: 1\n\t}\n}\n\
         {\n\tpeer: bob@example.com\n\tstate: NOT_INUSE\n\tdialog: {}\n}\n"
    );
    let out = sablectl(f.server.path(), &["rpc", "core.echo", "a", "1"]);
    assert_eq!(stdout(&out), "a\n1\n");
}

#[test]
fn an_rpc_error_prints_code_and_message_and_exits_1() {
    let f = fixture("rpc-error");
    let out = sablectl(f.server.path(), &["rpc", "test.fail"]);
    assert_eq!(code(&out), 1);
    assert_eq!(stderr(&out), "error: 404 - Peer not found\n");
    assert_eq!(stdout(&out), "");
}

#[test]
fn an_unknown_method_exits_1() {
    let f = fixture("unknown");
    let out = sablectl(f.server.path(), &["rpc", "no.such"]);
    assert_eq!(code(&out), 1);
    assert_eq!(stderr(&out), "error: 500 - Method Not Found\n");
}

#[test]
fn no_server_running_exits_3_naming_the_socket() {
    let dir = temp_dir("absent");
    let socket = dir.join("nobody.sock");
    let out = sablectl(&socket, &["rpc", "core.echo"]);
    assert_eq!(code(&out), 3);
    assert!(
        stderr(&out).contains(&format!(
            "no Sable server is listening on {}",
            socket.display()
        )),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_socket_can_come_from_the_environment() {
    let f = fixture("env");
    let out = Command::new(env!("CARGO_BIN_EXE_sablectl"))
        .env("SABLE_CTL", f.server.path())
        .args(["--json", "rpc", "core.echo", "x"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        serde_json::from_str::<Json>(&stdout(&out)).unwrap(),
        json!(["x"])
    );
}

#[test]
fn usage_errors_exit_2() {
    let f = fixture("usage");
    for args in [
        &[][..],
        &["frobnicate"][..],
        &["rpc"][..],
        &["--bogus", "ps"][..],
        &["--timeout", "soon", "ps"][..],
    ] {
        let out = sablectl(f.server.path(), args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("sablectl --help"));
    }
}

#[test]
fn help_lists_the_servers_methods_with_their_help() {
    let f = fixture("help");
    for flag in ["--help", "-h", "help"] {
        let out = sablectl(f.server.path(), &[flag]);
        assert_eq!(code(&out), 0);
        let text = stdout(&out);
        assert!(text.starts_with("Usage: sablectl"), "{text}");
        assert!(text.contains("Exit codes:"));
        assert!(text.contains("3  no server is listening on the socket"));
        assert!(text.contains(&format!(
            "Methods offered by the server on {}:",
            f.server.path().display()
        )));
        for (name, help) in [
            ("core.echo", "Returns its parameters as a list."),
            ("test.fail", "Always fails."),
            ("system.listMethods", "Lists the names of all RPC methods"),
        ] {
            let line = text
                .lines()
                .find(|line| line.trim_start().starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("{name} missing from\n{text}"));
            assert!(line.contains(help), "{line}");
        }
    }
}

#[test]
fn help_without_a_server_says_none_is_running() {
    let dir = temp_dir("help-absent");
    let socket = dir.join("nobody.sock");
    let out = sablectl(&socket, &["--help"]);
    assert_eq!(code(&out), 0);
    let text = stdout(&out);
    assert!(text.starts_with("Usage: sablectl"));
    assert!(
        text.contains(&format!(
            "No Sable server is listening on {}",
            socket.display()
        )),
        "{text}"
    );
}

#[test]
fn stats_print_one_statistic_per_line() {
    let f = fixture("stats");
    let out = sablectl(f.server.path(), &["stats"]);
    assert_eq!(code(&out), 0);
    assert_eq!(
        stdout(&out),
        "core:rcv_requests = 10\nsl:sent_replies = 4\n"
    );
    let out = sablectl(f.server.path(), &["stats", "sl:"]);
    assert_eq!(stdout(&out), "sl:sent_replies = 4\n");
}

#[test]
fn ps_prints_a_table() {
    let f = fixture("ps");
    let out = sablectl(f.server.path(), &["ps"]);
    assert_eq!(code(&out), 0);
    assert_eq!(stdout(&out), "PID\tDESC\n100\tmain\n101\tctl\n");
}

#[test]
fn methods_lists_every_name() {
    let f = fixture("methods");
    let out = sablectl(f.server.path(), &["methods"]);
    assert_eq!(code(&out), 0);
    let text = stdout(&out);
    let names: Vec<&str> = text.lines().collect();
    assert!(names.contains(&"core.echo"));
    assert!(names.contains(&"system.methodSignature"));
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
}

/// `sablectl` for the database commands: no server, so no socket.
fn sablectl_db(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sablectl"))
        .env_remove("SABLE_CTL")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn db_init_creates_a_database_once() {
    let dir = temp_dir("db-init");
    let db = dir.join("sable.db");
    let db_arg = db.to_str().unwrap();
    let out = sablectl_db(&["db", "init", db_arg]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let opened = sable_storage::Database::open_path(&db).unwrap();
    assert!(opened.list_subscribers().unwrap().is_empty());
    drop(opened);
    // Never over an existing database.
    let out = sablectl_db(&["db", "init", db_arg]);
    assert_eq!(code(&out), 4);
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    // The URL form names a file too.
    let other = dir.join("other.db");
    let url = format!("sqlite://{}", other.display());
    let out = sablectl_db(&["db", "init", &url]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(other.is_file());
}

#[test]
fn subscribers_are_added_listed_changed_and_removed() {
    let dir = temp_dir("subscribers");
    let db = dir.join("sable.db");
    let db_arg = db.to_str().unwrap();
    assert_eq!(code(&sablectl_db(&["db", "init", db_arg])), 0);
    let add = |account: &str, password: &str| {
        sablectl_db(&["subscriber", "add", account, password, "--db", db_arg])
    };
    assert_eq!(code(&add("alice@example.com", "secret")), 0);
    assert_eq!(code(&add("bob@example.com", "pw")), 0);
    let duplicate = add("alice@example.com", "again");
    assert_eq!(code(&duplicate), 1);
    assert!(
        stderr(&duplicate).contains("alice@example.com already exists"),
        "{}",
        stderr(&duplicate)
    );
    let list = sablectl_db(&["--db", db_arg, "subscriber", "list"]);
    assert_eq!(code(&list), 0, "{}", stderr(&list));
    assert_eq!(stdout(&list), "alice@example.com\nbob@example.com\n");
    let stored = sable_storage::Database::open_path(&db)
        .unwrap()
        .subscriber("alice", "example.com")
        .unwrap()
        .unwrap();
    // printf 'alice:example.com:secret' | md5sum
    assert_eq!(stored.ha1, "b1726872c344b6dc8365b774f8fd6412");

    // A password that starts with '-' goes after --.
    let out = sablectl_db(&[
        "--db",
        db_arg,
        "subscriber",
        "passwd",
        "--",
        "alice@example.com",
        "-new",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let stored = sable_storage::Database::open_path(&db)
        .unwrap()
        .subscriber("alice", "example.com")
        .unwrap()
        .unwrap();
    assert_eq!(stored.password, "-new");
    let out = sablectl_db(&[
        "subscriber",
        "passwd",
        "carol@example.com",
        "x",
        "--db",
        db_arg,
    ]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("no subscriber carol@example.com"));

    let url = format!("sqlite://{}", db.display());
    let out = sablectl_db(&["subscriber", "rm", "alice@example.com", "--db", &url]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = sablectl_db(&["subscriber", "rm", "alice@example.com", "--db", &url]);
    assert_eq!(code(&out), 1);
    let list = sablectl_db(&["--json", "subscriber", "list", "--db", db_arg]);
    assert_eq!(
        serde_json::from_str::<Json>(&stdout(&list)).unwrap(),
        json!([{"username": "bob", "domain": "example.com"}])
    );
}

#[test]
fn subscriber_commands_need_an_existing_database() {
    let dir = temp_dir("no-db");
    let missing = dir.join("missing.db");
    let out = sablectl_db(&["subscriber", "list", "--db", missing.to_str().unwrap()]);
    assert_eq!(code(&out), 4);
    assert!(
        stderr(&out).contains("sablectl db init"),
        "{}",
        stderr(&out)
    );
    assert!(!missing.exists());
    let garbage = dir.join("garbage.db");
    fs::write(&garbage, vec![0x5a; 4096]).unwrap();
    let out = sablectl_db(&["subscriber", "list", "--db", garbage.to_str().unwrap()]);
    assert_eq!(code(&out), 4);
    assert!(
        stderr(&out).contains("not an SQLite database"),
        "{}",
        stderr(&out)
    );
    for args in [
        &["subscriber", "list"][..],
        &["subscriber", "add", "alice", "pw", "--db", "x.db"],
        &["subscriber", "add", "alice@example.com", "--db", "x.db"],
        &["subscriber", "frob", "--db", "x.db"],
        &["db", "init"],
        &["db", "drop", "x.db"],
        &["subscriber", "list", "--db", "mysql://localhost/kamailio"],
    ] {
        let out = sablectl_db(args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
    }
}
