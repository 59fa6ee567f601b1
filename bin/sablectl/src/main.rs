//! `sablectl`: the control CLI of Sable (its `kamcmd`).
//!
//! What it does: sends one JSON-RPC call (or a few, for `--help` and the shortcuts) to a
//! running server over its control socket and prints the result for people, kamcmd-style, or
//! as pretty JSON with `--json`. Arguments are typed as kamcmd types them: an argument that
//! reads as an integer is sent as a number, anything else as a string; `s:VALUE` forces a
//! string and `i:VALUE` an integer.
//!
//! It also does the database chores of `kamctl`, without a server: `db init` creates a
//! database file with Kamailio's schema, `subscriber add|list|rm|passwd` manage the accounts
//! of auth_db's `subscriber` table (through [`sable_storage`]).
//!
//! What it does not do: start or configure the server, or know any method: the methods and
//! their help texts come from the server (`system.listMethods`, `system.methodHelp`).
//!
//! The socket is `-s PATH`, else `$SABLE_CTL`, else [`sable_rpc::DEFAULT_SOCKET`]
//! (`/run/sable/sable_ctl`), the server's default too.
//!
//! Exit codes: 0 ok, 1 the method answered an error (or the subscriber to add exists, the
//! one to change or remove does not), 2 bad command line, 3 no server is listening on the
//! socket, 4 any other I/O, protocol or database failure.

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use sable_rpc::{Client, ClientError, Json, DEFAULT_SOCKET};
use sable_storage::{Database, StorageError};
use serde_json::Value;

const USAGE: &str = "\
Usage: sablectl [OPTIONS] COMMAND [ARGS...]

Talks JSON-RPC to a running Sable server over its control socket.

Commands:
  rpc METHOD [ARGS...]   call an RPC method. An argument that reads as an integer is sent as a
                         number, anything else as a string; s:VALUE forces a string (s:123 is
                         \"123\"), i:VALUE forces an integer.
  stats [SELECTOR...]    statistics, one per line (stats.get_statistics); a selector is
                         GROUP:, a statistic NAME or all (the default)
  ps                     the server's processes and threads (core.ps)
  uptime                 how long the server has been running (core.uptime)
  methods                the names of every method the server offers
  help                   this text

Database commands (no server needed; DB is a file path or sqlite:///path/file.db):
  db init PATH           create a new database file with Kamailio's schema (tables
                         version, location, location_attrs, subscriber); refuses to
                         overwrite a non-empty file
  subscriber add USER@DOMAIN PASSWORD --db DB
                         add an account (ha1 and ha1b computed as kamctl does)
  subscriber list --db DB
                         every account, one USER@DOMAIN per line
  subscriber rm USER@DOMAIN --db DB
                         remove an account
  subscriber passwd USER@DOMAIN PASSWORD --db DB
                         set a new password
  (put -- before a password that starts with -)

Options:
  -s, --socket PATH      the control socket (default: $SABLE_CTL if set, else
                         /run/sable/sable_ctl)
      --json             print the result as pretty JSON instead of text
      --timeout SECS     how long to wait for the answer (default 10)
      --db DB            the database of the subscriber commands
  -h, --help             this text, then every method of the running server
  -V, --version          the version of sablectl

Exit codes:
  0  success
  1  the method answered an error (printed as \"error: CODE - MESSAGE\"), or the
     subscriber to add already exists, or the one to remove or change does not
  2  bad command line
  3  no server is listening on the socket
  4  any other I/O or protocol error, or a database error (missing file, not a
     database, corrupt, wrong schema)";

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What went wrong, and so which exit code.
#[derive(Debug)]
enum Failure {
    Usage(String),
    Client(ClientError),
    Output(io::Error),
    Storage(StorageError),
    /// A subscriber command named an account that does not exist.
    NoSuchSubscriber(Account),
}

impl From<StorageError> for Failure {
    fn from(error: StorageError) -> Self {
        Failure::Storage(error)
    }
}

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Self {
        Failure::Client(error)
    }
}

impl From<io::Error> for Failure {
    fn from(error: io::Error) -> Self {
        Failure::Output(error)
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Command {
    Help,
    Version,
    Rpc { method: String, args: Vec<String> },
    Stats(Vec<String>),
    Ps,
    Uptime,
    Methods,
    DbInit(String),
    SubscriberAdd { account: Account, password: String },
    SubscriberList,
    SubscriberRm(Account),
    SubscriberPasswd { account: Account, password: String },
}

/// `USER@DOMAIN` of the subscriber commands.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Account {
    username: String,
    domain: String,
}

impl Account {
    fn parse(text: &str) -> Result<Account, Failure> {
        match text.rsplit_once('@') {
            Some((username, domain)) if !username.is_empty() && !domain.is_empty() => Ok(Account {
                username: username.to_owned(),
                domain: domain.to_owned(),
            }),
            _ => Err(Failure::Usage(format!("{text:?}: expected USER@DOMAIN"))),
        }
    }
}

impl std::fmt::Display for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.username, self.domain)
    }
}

#[derive(Debug)]
struct Invocation {
    socket: PathBuf,
    json: bool,
    timeout: Duration,
    db: Option<String>,
    command: Command,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = parse(&args, std::env::var_os("SABLE_CTL")).and_then(|invocation| {
        let mut stdout = io::stdout().lock();
        run(&invocation, &mut stdout).map(|()| invocation)
    });
    match outcome {
        Ok(_) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("sablectl: {message}\nTry 'sablectl --help'.");
            ExitCode::from(2)
        }
        Err(Failure::Client(ClientError::Rpc(error))) => {
            eprintln!("error: {} - {}", error.code, error.message);
            ExitCode::from(1)
        }
        Err(Failure::Client(error @ ClientError::NotRunning { .. })) => {
            eprintln!("error: {error} (is sable running? use -s or $SABLE_CTL for another socket)");
            ExitCode::from(3)
        }
        Err(Failure::Client(error)) => {
            eprintln!("error: {error}");
            ExitCode::from(4)
        }
        // Output piped into `head` and closed: not an error worth reporting.
        Err(Failure::Output(error)) if error.kind() == io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(Failure::Output(error)) => {
            eprintln!("error: cannot write the output: {error}");
            ExitCode::from(4)
        }
        Err(Failure::Storage(error @ StorageError::DuplicateSubscriber { .. })) => {
            eprintln!("error: {error}");
            ExitCode::from(1)
        }
        Err(Failure::NoSuchSubscriber(account)) => {
            eprintln!("error: no subscriber {account}");
            ExitCode::from(1)
        }
        Err(Failure::Storage(error)) => {
            eprintln!("error: {error}");
            ExitCode::from(4)
        }
    }
}

fn parse(args: &[String], env_socket: Option<OsString>) -> Result<Invocation, Failure> {
    let mut socket = env_socket
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
    let mut json = false;
    let mut timeout = DEFAULT_TIMEOUT;
    let mut db = None;
    let mut words: Vec<String> = Vec::new();
    let mut options_done = false;
    let mut tokens = args.iter();
    while let Some(token) = tokens.next() {
        // Options may come before the command and, except for `rpc METHOD ARGS` whose
        // arguments are taken literally, after it.
        let literal =
            options_done || (words.first().map(String::as_str) == Some("rpc") && words.len() >= 2);
        if literal || !token.starts_with('-') || token == "-" {
            words.push(token.clone());
            continue;
        }
        let (name, inline) = match token.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name, Some(value.to_owned())),
            _ => (token.as_str(), None),
        };
        let mut value = |what: &str| -> Result<String, Failure> {
            inline
                .clone()
                .or_else(|| tokens.next().cloned())
                .ok_or_else(|| Failure::Usage(format!("{name} needs {what}")))
        };
        match name {
            "--" => options_done = true,
            "-s" | "--socket" => socket = PathBuf::from(value("a socket path")?),
            "--json" => json = true,
            "--timeout" => timeout = parse_timeout(&value("a number of seconds")?)?,
            "--db" => db = Some(value("a database path or URL")?),
            "-h" | "--help" => words = vec!["help".to_owned()],
            "-V" | "--version" => words = vec!["version".to_owned()],
            _ => return Err(Failure::Usage(format!("unknown option {token}"))),
        }
        if matches!(name, "-h" | "--help" | "-V" | "--version") {
            break;
        }
    }
    let mut words = words.into_iter();
    let command = match words.next().as_deref() {
        None => return Err(Failure::Usage("no command given".to_owned())),
        Some("help") => Command::Help,
        Some("version") => Command::Version,
        Some("rpc") => {
            let method = words
                .next()
                .ok_or_else(|| Failure::Usage("rpc needs a METHOD".to_owned()))?;
            Command::Rpc {
                method,
                args: words.collect(),
            }
        }
        Some("stats") => Command::Stats(words.collect()),
        Some(shortcut @ ("ps" | "uptime" | "methods")) => {
            if let Some(extra) = words.next() {
                return Err(Failure::Usage(format!(
                    "{shortcut} takes no arguments (got {extra})"
                )));
            }
            match shortcut {
                "ps" => Command::Ps,
                "uptime" => Command::Uptime,
                _ => Command::Methods,
            }
        }
        Some("db") => match (words.next().as_deref(), words.next(), words.next()) {
            (Some("init"), Some(path), None) => Command::DbInit(path),
            (Some("init"), None, _) => {
                return Err(Failure::Usage("db init needs a PATH".to_owned()))
            }
            (Some("init"), Some(_), Some(extra)) => {
                return Err(Failure::Usage(format!(
                    "db init takes one PATH (got {extra})"
                )))
            }
            (Some(other), _, _) => {
                return Err(Failure::Usage(format!("unknown db command {other}")))
            }
            (None, _, _) => return Err(Failure::Usage("db needs a command: init".to_owned())),
        },
        Some("subscriber") => {
            let action = words.next();
            let rest: Vec<String> = words.collect();
            let command = match (action.as_deref(), rest.as_slice()) {
                (Some("add"), [account, password]) => Command::SubscriberAdd {
                    account: Account::parse(account)?,
                    password: password.clone(),
                },
                (Some("list"), []) => Command::SubscriberList,
                (Some("rm"), [account]) => Command::SubscriberRm(Account::parse(account)?),
                (Some("passwd"), [account, password]) => Command::SubscriberPasswd {
                    account: Account::parse(account)?,
                    password: password.clone(),
                },
                (Some(action @ ("add" | "passwd")), _) => {
                    return Err(Failure::Usage(format!(
                        "subscriber {action} needs USER@DOMAIN PASSWORD"
                    )))
                }
                (Some("list"), _) => {
                    return Err(Failure::Usage(
                        "subscriber list takes no arguments".to_owned(),
                    ))
                }
                (Some("rm"), _) => {
                    return Err(Failure::Usage("subscriber rm needs USER@DOMAIN".to_owned()))
                }
                (Some(other), _) => {
                    return Err(Failure::Usage(format!(
                        "unknown subscriber command {other}"
                    )))
                }
                (None, _) => {
                    return Err(Failure::Usage(
                        "subscriber needs a command: add, list, rm, passwd".to_owned(),
                    ))
                }
            };
            if db.is_none() {
                return Err(Failure::Usage(
                    "subscriber commands need --db PATH_OR_URL".to_owned(),
                ));
            }
            command
        }
        Some(other) => return Err(Failure::Usage(format!("unknown command {other}"))),
    };
    Ok(Invocation {
        socket,
        json,
        timeout,
        db,
        command,
    })
}

fn parse_timeout(text: &str) -> Result<Duration, Failure> {
    text.parse::<f64>()
        .ok()
        .filter(|seconds| seconds.is_finite() && *seconds > 0.0)
        .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
        .ok_or_else(|| Failure::Usage(format!("bad --timeout {text:?}: expected seconds > 0")))
}

/// Types one command-line argument the way kamcmd does.
fn typed_argument(argument: &str) -> Result<Json, Failure> {
    if let Some(text) = argument.strip_prefix("s:") {
        return Ok(Value::from(text));
    }
    if let Some(text) = argument.strip_prefix("i:") {
        return text
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| Failure::Usage(format!("{argument}: i: needs an integer, got {text:?}")));
    }
    let digits = argument.strip_prefix('-').unwrap_or(argument);
    if !digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit()) {
        if let Ok(number) = argument.parse::<i64>() {
            return Ok(Value::from(number));
        }
    }
    Ok(Value::from(argument))
}

fn run(invocation: &Invocation, out: &mut impl Write) -> Result<(), Failure> {
    let call = |method: &str, params: Vec<Json>| -> Result<Json, Failure> {
        let mut client = Client::connect(&invocation.socket, invocation.timeout)?;
        Ok(client.call(method, params)?)
    };
    let (result, style) = match &invocation.command {
        Command::Help => return help(invocation, out),
        Command::Version => {
            writeln!(out, "sablectl {}", env!("CARGO_PKG_VERSION"))?;
            return Ok(());
        }
        Command::Rpc { method, args } => {
            let params = args
                .iter()
                .map(|argument| typed_argument(argument))
                .collect::<Result<Vec<_>, _>>()?;
            (call(method, params)?, Style::Generic)
        }
        Command::Stats(selectors) => {
            let params = if selectors.is_empty() {
                vec![Value::from("all")]
            } else {
                selectors
                    .iter()
                    .map(|selector| Value::from(selector.as_str()))
                    .collect()
            };
            (call("stats.get_statistics", params)?, Style::Stats)
        }
        Command::Ps => (call("core.ps", Vec::new())?, Style::Table),
        Command::Uptime => (call("core.uptime", Vec::new())?, Style::Generic),
        Command::Methods => (call("system.listMethods", Vec::new())?, Style::Generic),
        Command::DbInit(_)
        | Command::SubscriberAdd { .. }
        | Command::SubscriberList
        | Command::SubscriberRm(_)
        | Command::SubscriberPasswd { .. } => return database_command(invocation, out),
    };
    let text = if invocation.json {
        let mut text = serde_json::to_string_pretty(&result)
            .map_err(|error| Failure::Output(io::Error::other(error)))?;
        text.push('\n');
        text
    } else {
        match style {
            Style::Generic => render(&result),
            Style::Stats => render_stats(&result),
            Style::Table => render_table(&result),
        }
    };
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// A file path, or a `sqlite://` URL as in Kamailio's `db_url` (any other URL is a usage
/// error, not a file name).
fn database_path(text: &str) -> Result<PathBuf, Failure> {
    if text.contains("://") {
        sable_storage::parse_url(text).map_err(|error| Failure::Usage(error.to_string()))
    } else {
        Ok(PathBuf::from(text))
    }
}

/// `db init` and the subscriber commands: no server involved.
fn database_command(invocation: &Invocation, out: &mut impl Write) -> Result<(), Failure> {
    let open = || -> Result<Database, Failure> {
        let db = invocation
            .db
            .as_deref()
            .ok_or_else(|| Failure::Usage("--db PATH_OR_URL is needed".to_owned()))?;
        Ok(Database::open_path(database_path(db)?)?)
    };
    // The account named that turned out not to exist, if any.
    let missing = match &invocation.command {
        Command::DbInit(path) => {
            Database::create(database_path(path)?)?;
            None
        }
        Command::SubscriberAdd { account, password } => {
            open()?.add_subscriber(&account.username, &account.domain, password)?;
            None
        }
        Command::SubscriberList => {
            let subscribers = open()?.list_subscribers()?;
            let text = if invocation.json {
                let list: Vec<Json> = subscribers
                    .iter()
                    .map(|s| serde_json::json!({"username": s.username, "domain": s.domain}))
                    .collect();
                let mut text = serde_json::to_string_pretty(&list)
                    .map_err(|error| Failure::Output(io::Error::other(error)))?;
                text.push('\n');
                text
            } else {
                let mut text = String::new();
                for subscriber in &subscribers {
                    line(
                        &mut text,
                        0,
                        &format!("{}@{}", subscriber.username, subscriber.domain),
                    );
                }
                text
            };
            out.write_all(text.as_bytes())?;
            out.flush()?;
            None
        }
        Command::SubscriberRm(account) => {
            (!open()?.remove_subscriber(&account.username, &account.domain)?).then_some(account)
        }
        Command::SubscriberPasswd { account, password } => {
            (!open()?.set_password(&account.username, &account.domain, password)?)
                .then_some(account)
        }
        _ => None,
    };
    if let Some(account) = missing {
        return Err(Failure::NoSuchSubscriber(account.clone()));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Style {
    Generic,
    Stats,
    Table,
}

fn help(invocation: &Invocation, out: &mut impl Write) -> Result<(), Failure> {
    writeln!(out, "{USAGE}")?;
    writeln!(out)?;
    let socket = invocation.socket.display();
    match describe_methods(invocation) {
        Ok(methods) => {
            writeln!(out, "Methods offered by the server on {socket}:")?;
            let width = methods
                .iter()
                .map(|(name, _)| name.len())
                .max()
                .unwrap_or(0)
                .min(40);
            for (name, help) in methods {
                let help = help.replace('\n', " ");
                writeln!(out, "  {name:<width$}  {help}")?;
            }
        }
        Err(ClientError::NotRunning { .. }) => writeln!(
            out,
            "No Sable server is listening on {socket}: start one (or use -s) to list its methods."
        )?,
        Err(error) => writeln!(
            out,
            "Cannot list the methods of the server on {socket}: {error}"
        )?,
    }
    out.flush()?;
    Ok(())
}

fn describe_methods(invocation: &Invocation) -> Result<Vec<(String, String)>, ClientError> {
    let mut client = Client::connect(&invocation.socket, invocation.timeout)?;
    let names = client.call("system.listMethods", Vec::new())?;
    let names: Vec<String> = names
        .as_array()
        .map(|names| {
            names
                .iter()
                .filter_map(|name| name.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut methods = Vec::with_capacity(names.len());
    for name in names {
        let help = match client.call("system.methodHelp", vec![Value::from(name.as_str())]) {
            Ok(Value::String(help)) => help,
            Ok(other) => scalar(&other),
            Err(ClientError::Rpc(_)) => String::new(),
            Err(error) => return Err(error),
        };
        methods.push((name, help));
    }
    Ok(methods)
}

/// kamcmd-like text: scalars as themselves, objects as `{` / `key: value` lines / `}`,
/// the elements of a top-level array one after another, nesting indented with tabs.
fn render(value: &Json) -> String {
    let mut text = String::new();
    match value {
        Value::Array(items) => {
            for item in items {
                render_item(item, 0, &mut text);
            }
        }
        other => render_item(other, 0, &mut text),
    }
    text
}

fn render_item(value: &Json, depth: usize, text: &mut String) {
    match value {
        Value::Object(members) => {
            line(text, depth, "{");
            render_members(members, depth + 1, text);
            line(text, depth, "}");
        }
        Value::Array(items) => {
            for item in items {
                render_item(item, depth, text);
            }
        }
        scalar_value => line(text, depth, &scalar(scalar_value)),
    }
}

fn render_members(members: &serde_json::Map<String, Json>, depth: usize, text: &mut String) {
    for (key, value) in members {
        match value {
            Value::Object(inner) if inner.is_empty() => line(text, depth, &format!("{key}: {{}}")),
            Value::Object(inner) => {
                line(text, depth, &format!("{key}: {{"));
                render_members(inner, depth + 1, text);
                line(text, depth, "}");
            }
            Value::Array(items) if items.is_empty() => line(text, depth, &format!("{key}: []")),
            Value::Array(items) => {
                line(text, depth, &format!("{key}: ["));
                for item in items {
                    render_item(item, depth + 1, text);
                }
                line(text, depth, "]");
            }
            scalar_value => line(text, depth, &format!("{key}: {}", scalar(scalar_value))),
        }
    }
}

fn line(text: &mut String, depth: usize, content: &str) {
    for _ in 0..depth {
        text.push('\t');
    }
    text.push_str(content);
    text.push('\n');
}

fn scalar(value: &Json) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Statistics, one per line: Kamailio answers strings `"group:name = value"`; an object of
/// `name: value` members prints as `name = value`.
fn render_stats(value: &Json) -> String {
    match value {
        Value::Array(items)
            if items
                .iter()
                .all(|item| !item.is_object() && !item.is_array()) =>
        {
            let mut text = String::new();
            for item in items {
                line(&mut text, 0, &scalar(item));
            }
            text
        }
        Value::Object(members) if members.values().all(|v| !v.is_object() && !v.is_array()) => {
            let mut text = String::new();
            for (name, value) in members {
                line(&mut text, 0, &format!("{name} = {}", scalar(value)));
            }
            text
        }
        other => render(other),
    }
}

/// `core.ps` as a table: an array of objects prints one row per object under a header of
/// the member names; Kamailio's flat `[pid, "description", pid, ...]` prints one
/// `pid<TAB>description` pair per line.
fn render_table(value: &Json) -> String {
    let Value::Array(items) = value else {
        return render(value);
    };
    let mut text = String::new();
    if !items.is_empty() && items.iter().all(Value::is_object) {
        let mut columns: Vec<&str> = Vec::new();
        for item in items {
            if let Value::Object(members) = item {
                for key in members.keys() {
                    if !columns.contains(&key.as_str()) {
                        columns.push(key);
                    }
                }
            }
        }
        let header: Vec<String> = columns.iter().map(|c| c.to_uppercase()).collect();
        line(&mut text, 0, &header.join("\t"));
        for item in items {
            let row: Vec<String> = columns
                .iter()
                .map(|column| item.get(*column).map(scalar).unwrap_or_default())
                .collect();
            line(&mut text, 0, &row.join("\t"));
        }
        return text;
    }
    if items.len() % 2 == 0
        && items
            .iter()
            .all(|item| item.is_number() || item.is_string())
    {
        for pair in items.chunks(2) {
            if let [pid, description] = pair {
                line(
                    &mut text,
                    0,
                    &format!("{}\t{}", scalar(pid), scalar(description)),
                );
            }
        }
        return text;
    }
    render(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn arguments_are_typed_like_kamcmd() {
        assert_eq!(typed_argument("5").unwrap(), json!(5));
        assert_eq!(typed_argument("-5").unwrap(), json!(-5));
        assert_eq!(typed_argument("s:5").unwrap(), json!("5"));
        assert_eq!(typed_argument("abc").unwrap(), json!("abc"));
        assert_eq!(typed_argument("i:42").unwrap(), json!(42));
        assert_eq!(typed_argument("+5").unwrap(), json!("+5"));
        assert_eq!(typed_argument("1.5").unwrap(), json!("1.5"));
        assert_eq!(typed_argument("-").unwrap(), json!("-"));
        assert_eq!(
            typed_argument("99999999999999999999").unwrap(),
            json!("99999999999999999999")
        );
        assert_eq!(typed_argument("s:").unwrap(), json!(""));
        assert!(matches!(typed_argument("i:x"), Err(Failure::Usage(_))));
    }

    #[test]
    fn options_before_and_after_shortcuts() {
        let invocation = parse(&args("-s /tmp/x --json stats core:"), None).unwrap();
        assert_eq!(invocation.socket, PathBuf::from("/tmp/x"));
        assert!(invocation.json);
        assert_eq!(invocation.command, Command::Stats(vec!["core:".to_owned()]));
        let invocation = parse(&args("uptime --json --timeout 2.5"), None).unwrap();
        assert!(invocation.json);
        assert_eq!(invocation.timeout, Duration::from_millis(2500));
    }

    #[test]
    fn rpc_arguments_are_literal_after_the_method() {
        let invocation = parse(&args("--json rpc m -s --json -5"), None).unwrap();
        assert_eq!(
            invocation.command,
            Command::Rpc {
                method: "m".to_owned(),
                args: args("-s --json -5"),
            }
        );
    }

    #[test]
    fn socket_comes_from_option_then_environment_then_default() {
        let env = Some(OsString::from("/env/sock"));
        assert_eq!(
            parse(&args("ps"), env.clone()).unwrap().socket,
            PathBuf::from("/env/sock")
        );
        assert_eq!(
            parse(&args("-s /opt ps"), env).unwrap().socket,
            PathBuf::from("/opt")
        );
        assert_eq!(
            parse(&args("--socket=/eq ps"), None).unwrap().socket,
            PathBuf::from("/eq")
        );
        assert_eq!(
            parse(&args("ps"), None).unwrap().socket,
            PathBuf::from(DEFAULT_SOCKET)
        );
    }

    #[test]
    fn usage_errors() {
        for line in [
            "",
            "frobnicate",
            "rpc",
            "--bogus ps",
            "-s",
            "--timeout 0 ps",
            "--timeout x ps",
            "ps extra",
            "db",
            "db init",
            "db init a b",
            "db drop x",
            "subscriber",
            "subscriber list",
            "subscriber list x --db d",
            "subscriber add alice@example.com --db d",
            "subscriber add alice pw --db d",
            "subscriber add @example.com pw --db d",
            "subscriber add alice@ pw --db d",
            "subscriber rm --db d",
            "subscriber passwd alice@example.com --db d",
            "subscriber frob --db d",
            "--db",
        ] {
            assert!(
                matches!(parse(&args(line), None), Err(Failure::Usage(_))),
                "{line:?}"
            );
        }
    }

    #[test]
    fn database_commands() {
        let invocation = parse(&args("subscriber add a@b.example pw --db /x.db"), None).unwrap();
        assert_eq!(invocation.db.as_deref(), Some("/x.db"));
        assert_eq!(
            invocation.command,
            Command::SubscriberAdd {
                account: Account {
                    username: "a".to_owned(),
                    domain: "b.example".to_owned()
                },
                password: "pw".to_owned()
            }
        );
        // The domain is after the last @.
        let invocation = parse(&args("--db d subscriber rm a@x@b.example"), None).unwrap();
        assert_eq!(
            invocation.command,
            Command::SubscriberRm(Account {
                username: "a@x".to_owned(),
                domain: "b.example".to_owned()
            })
        );
        assert_eq!(
            parse(&args("db init /var/lib/sable/sable.db"), None)
                .unwrap()
                .command,
            Command::DbInit("/var/lib/sable/sable.db".to_owned())
        );
        assert_eq!(
            database_path("sqlite:///var/x.db").unwrap(),
            PathBuf::from("/var/x.db")
        );
        assert_eq!(database_path("x.db").unwrap(), PathBuf::from("x.db"));
        assert!(matches!(
            database_path("mysql://h/db"),
            Err(Failure::Usage(_))
        ));
    }

    #[test]
    fn render_nests_with_tabs() {
        let value = json!({"a": 1, "b": "x y", "c": {"d": true, "e": null}, "f": [1, {"g": 2}],
                           "h": [], "i": {}});
        assert_eq!(
            render(&value),
            "{\n\ta: 1\n\tb: x y\n\tc: {\n\t\td: true\n\t\te: null\n\t}\n\tf: [\n\t\t1\n\t\t{\n\t\t\tg: 2\n\t\t}\n\t]\n\th: []\n\ti: {}\n}\n"
        );
        assert_eq!(render(&json!("text")), "text\n");
        assert_eq!(render(&json!(7)), "7\n");
        assert_eq!(render(&json!([])), "");
        assert_eq!(
            render(&json!([{"a": 1}, {"a": 2}, "s"])),
            "{\n\ta: 1\n}\n{\n\ta: 2\n}\ns\n"
        );
    }

    #[test]
    fn tables_and_stats() {
        assert_eq!(
            render_table(&json!([{"pid": 1, "desc": "main"}, {"pid": 2, "desc": "udp"}])),
            "PID\tDESC\n1\tmain\n2\tudp\n"
        );
        assert_eq!(
            render_table(&json!([10, "main", 11, "ctl"])),
            "10\tmain\n11\tctl\n"
        );
        assert_eq!(
            render_stats(&json!(["core:rcv_requests = 5", "sl:sent_replies = 2"])),
            "core:rcv_requests = 5\nsl:sent_replies = 2\n"
        );
        assert_eq!(render_stats(&json!({"a:b": 1})), "a:b = 1\n");
    }
}
