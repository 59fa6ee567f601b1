//! Core (global) parameters: `debug=`, `listen=`, `children=`, `tcp_*`... with Kamailio's
//! names and defaults. Unknown names are errors; names Kamailio knows but Sable does not
//! implement are accepted with a warning that names them.

use sable_script::ast::ParamValue;
use sable_transport::{Advertise, ListenSpec, Proto};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// Kamailio's log levels (`debug=` values): L_ALERT -5 ... L_ERR -1, L_WARN 0, L_NOTICE 1,
/// L_INFO 2, L_DBG 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogLevel(pub i32);

impl LogLevel {
    pub const ALERT: LogLevel = LogLevel(-5);
    pub const BUG: LogLevel = LogLevel(-4);
    pub const CRIT: LogLevel = LogLevel(-2);
    pub const ERR: LogLevel = LogLevel(-1);
    pub const WARN: LogLevel = LogLevel(0);
    pub const NOTICE: LogLevel = LogLevel(1);
    pub const INFO: LogLevel = LogLevel(2);
    pub const DBG: LogLevel = LogLevel(3);

    /// The `tracing` filter directive this level maps to.
    pub fn filter(self) -> &'static str {
        match self.0 {
            i32::MIN..=-1 => "error",
            0 => "warn",
            1 | 2 => "info",
            3 => "debug",
            _ => "trace",
        }
    }

    /// Parses `L_ERR`, `L_INFO`... (xlog's level names) or a number.
    pub fn parse(s: &str) -> Option<LogLevel> {
        Some(match s.trim() {
            "L_ALERT" => LogLevel::ALERT,
            "L_BUG" => LogLevel::BUG,
            "L_CRIT" => LogLevel::CRIT,
            "L_ERR" => LogLevel::ERR,
            "L_WARN" => LogLevel::WARN,
            "L_NOTICE" => LogLevel::NOTICE,
            "L_INFO" => LogLevel::INFO,
            "L_DBG" => LogLevel::DBG,
            other => LogLevel(other.parse().ok()?),
        })
    }
}

/// A fault in a core parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobalParamError {
    #[error("unknown core parameter '{name}'")]
    Unknown { name: String, hint: Option<String> },
    #[error("core parameter '{name}' expects {expected}")]
    BadValue {
        name: String,
        expected: &'static str,
    },
    #[error("bad listen '{value}': {reason}")]
    BadListen { value: String, reason: String },
}

/// The core parameters, with Kamailio's defaults.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub debug: LogLevel,
    pub log_stderror: bool,
    /// UDP worker threads per listen address (default: the number of cores).
    pub children: usize,
    /// `listen=` entries, in order; each with whether it named its port (those that did
    /// not take `port=`, wherever that line is).
    pub listens: Vec<(ListenSpec, bool)>,
    /// `port=`: the port of listen entries without one (default 5060).
    pub port: u16,
    /// `alias=` host names (with optional port) that also mean this server.
    pub aliases: Vec<(String, Option<u16>)>,
    pub auto_aliases: bool,
    pub disable_tcp: bool,
    pub tcp_connection_lifetime: Duration,
    pub tcp_max_connections: usize,
    pub tcp_accept_no_cl: bool,
    /// `Server:` header of local replies (`server_header=`), `None` with
    /// `server_signature=no`.
    pub server_header: Option<String>,
    /// `User-Agent:` of locally generated requests.
    pub user_agent_header: String,
    pub sip_warning: bool,
    pub max_while_loops: u32,
    /// Stateless replies go to the Via host instead of the source address.
    pub reply_to_via: bool,
    pub onsend_route_reply: bool,
    /// `run_dir=` (alias `rundir`): where the control socket lives by default
    /// (`RUN_DIR/sable_ctl`; default `/run/sable`).
    pub run_dir: std::path::PathBuf,
    /// Known parameters that Sable accepts but does not implement, with where they were.
    pub warnings: Vec<String>,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            debug: LogLevel::WARN,
            log_stderror: false,
            children: std::thread::available_parallelism().map_or(2, |n| n.get()),
            listens: Vec::new(),
            port: 5060,
            aliases: Vec::new(),
            auto_aliases: true,
            disable_tcp: false,
            tcp_connection_lifetime: Duration::from_secs(120),
            tcp_max_connections: 2048,
            tcp_accept_no_cl: false,
            server_header: Some(format!(
                "Server: Sable ({} ({}/{}))",
                env!("CARGO_PKG_VERSION"),
                std::env::consts::ARCH,
                std::env::consts::OS
            )),
            user_agent_header: format!("User-Agent: Sable ({})", env!("CARGO_PKG_VERSION")),
            sip_warning: false,
            max_while_loops: 100,
            reply_to_via: false,
            onsend_route_reply: false,
            run_dir: std::path::PathBuf::from("/run/sable"),
            warnings: Vec::new(),
        }
    }
}

/// Parameters Kamailio has that Sable accepts without acting on them.
const ACCEPTED_UNSUPPORTED: &[&str] = &[
    "log_facility",
    "log_prefix",
    "log_name",
    "log_color",
    "memdbg",
    "memlog",
    "mem_summary",
    "mem_join",
    "latency_cfg_log",
    "latency_log",
    "latency_limit_action",
    "latency_limit_db",
    "dns",
    "rev_dns",
    "dns_try_ipv6",
    "dns_cache_init",
    "use_dns_cache",
    "use_dns_failover",
    "dns_srv_lb",
    "dns_try_naptr",
    "tcp_children",
    "tcp_keepalive",
    "tcp_keepidle",
    "tcp_keepintvl",
    "tcp_keepcnt",
    "tcp_async",
    "tcp_conn_wq_max",
    "tcp_wq_max",
    "tcp_rd_buf_size",
    "tcp_send_timeout",
    "tcp_connect_timeout",
    "tls_max_connections",
    "udp_mtu",
    "udp_mtu_try_proto",
    "mhomed",
    "shm_force_alloc",
    "mlock_pages",
    "real_time",
    "rt_prio",
    "rt_policy",
    "statistics",
    "user",
    "group",
    "uid",
    "gid",
    "chroot",
    "workdir",
    "wdir",
    "corelog",
    "sql_buffer_size",
    "stun_refresh_interval",
    "http_reply_parse",
    "sip_parser_log",
    "sip_parser_mode",
    "async_workers",
    "max_recursive_level",
    "maxbuffer",
    "sock_mode",
    "server_id",
];

fn as_int(name: &str, v: &ParamValue) -> Result<i64, GlobalParamError> {
    match v {
        ParamValue::Int(n) => Ok(*n),
        ParamValue::Bool(b) => Ok(i64::from(*b)),
        ParamValue::Str(s) | ParamValue::Raw(s) => {
            s.trim().parse().map_err(|_| GlobalParamError::BadValue {
                name: name.to_owned(),
                expected: "an integer",
            })
        }
    }
}

fn as_bool(name: &str, v: &ParamValue) -> Result<bool, GlobalParamError> {
    match v {
        ParamValue::Bool(b) => Ok(*b),
        ParamValue::Int(n) => Ok(*n != 0),
        ParamValue::Str(s) | ParamValue::Raw(s) => match s.trim().to_ascii_lowercase().as_str() {
            "yes" | "on" | "true" | "1" => Ok(true),
            "no" | "off" | "false" | "0" => Ok(false),
            _ => Err(GlobalParamError::BadValue {
                name: name.to_owned(),
                expected: "yes/no",
            }),
        },
    }
}

fn as_str(name: &str, v: &ParamValue) -> Result<String, GlobalParamError> {
    match v {
        ParamValue::Str(s) | ParamValue::Raw(s) => Ok(s.clone()),
        ParamValue::Int(n) => Ok(n.to_string()),
        ParamValue::Bool(_) => Err(GlobalParamError::BadValue {
            name: name.to_owned(),
            expected: "a string",
        }),
    }
}

fn positive(name: &str, n: i64, expected: &'static str) -> Result<u64, GlobalParamError> {
    u64::try_from(n).map_err(|_| GlobalParamError::BadValue {
        name: name.to_owned(),
        expected,
    })
}

impl CoreConfig {
    /// Applies one `name = value` line.
    pub fn set(&mut self, name: &str, value: &ParamValue) -> Result<(), GlobalParamError> {
        match name {
            "debug" => self.debug = LogLevel(clamp_i32(as_int(name, value)?)),
            "log_stderror" => self.log_stderror = as_bool(name, value)?,
            "children" => {
                let n = positive(name, as_int(name, value)?, "a positive integer")?;
                if n == 0 {
                    return Err(GlobalParamError::BadValue {
                        name: name.to_owned(),
                        expected: "a positive integer",
                    });
                }
                self.children = usize::try_from(n).unwrap_or(1);
            }
            "listen" => {
                let text = as_str(name, value)?;
                self.listens.extend(parse_listen(&text)?);
            }
            "port" => {
                let n = as_int(name, value)?;
                self.port = u16::try_from(n).map_err(|_| GlobalParamError::BadValue {
                    name: name.to_owned(),
                    expected: "a port number (0-65535)",
                })?;
            }
            "alias" => {
                let text = as_str(name, value)?;
                let t = text.trim();
                // An optional protocol prefix (`udp:`, `tcp:`...) does not restrict an alias.
                let t = match t.split_once(':') {
                    Some((p, rest))
                        if matches!(
                            p.to_ascii_lowercase().as_str(),
                            "udp" | "tcp" | "tls" | "sctp" | "ws" | "wss"
                        ) =>
                    {
                        rest
                    }
                    _ => t,
                };
                let (host, port) =
                    split_host_port(t).map_err(|reason| GlobalParamError::BadListen {
                        value: text.clone(),
                        reason,
                    })?;
                self.aliases.push((host.to_ascii_lowercase(), port));
            }
            // Sable adds no aliases from reverse DNS of its addresses either way.
            "auto_aliases" => {
                self.auto_aliases = as_bool(name, value)?;
                self.warnings
                    .push("auto_aliases: Sable never adds aliases from DNS; use alias=".to_owned());
            }
            "disable_tcp" => self.disable_tcp = as_bool(name, value)?,
            "tcp_connection_lifetime" => {
                let n = positive(name, as_int(name, value)?, "seconds (>= 0)")?;
                self.tcp_connection_lifetime = Duration::from_secs(n);
            }
            "tcp_max_connections" => {
                let n = positive(name, as_int(name, value)?, "a count (>= 0)")?;
                self.tcp_max_connections = usize::try_from(n).unwrap_or(usize::MAX);
            }
            "tcp_accept_no_cl" => self.tcp_accept_no_cl = as_bool(name, value)?,
            "server_header" => self.server_header = Some(as_str(name, value)?),
            "server_signature" => {
                if !as_bool(name, value)? {
                    self.server_header = None;
                }
            }
            "user_agent_header" => {
                self.user_agent_header = as_str(name, value)?;
                self.warnings.push(
                    "user_agent_header: Sable sends no locally generated requests yet".to_owned(),
                );
            }
            "sip_warning" => {
                self.sip_warning = as_bool(name, value)?;
                if self.sip_warning {
                    self.warnings
                        .push("sip_warning=yes: Sable adds no Warning header yet".to_owned());
                }
            }
            "max_while_loops" => {
                let n = positive(name, as_int(name, value)?, "a count (>= 0)")?;
                self.max_while_loops = u32::try_from(n).unwrap_or(u32::MAX);
            }
            "reply_to_via" => self.reply_to_via = as_bool(name, value)?,
            "run_dir" | "rundir" => {
                let dir = as_str(name, value)?;
                if dir.trim().is_empty() {
                    return Err(GlobalParamError::BadValue {
                        name: name.to_owned(),
                        expected: "a directory",
                    });
                }
                self.run_dir = std::path::PathBuf::from(dir.trim());
            }
            "onsend_route_reply" => {
                self.onsend_route_reply = as_bool(name, value)?;
                if self.onsend_route_reply {
                    self.warnings.push(
                        "onsend_route_reply=yes: onsend_route runs for requests only in Sable"
                            .to_owned(),
                    );
                }
            }
            // Modules are compiled in: where they would be loaded from does not matter.
            "mpath" | "loadpath" => {
                as_str(name, value)?;
            }
            "fork" => {
                if as_bool(name, value)? {
                    self.warnings.push(
                        "fork=yes: Sable always runs in the foreground (use a service manager)"
                            .to_owned(),
                    );
                }
            }
            "enable_tls" | "enable_sctp" => {
                if as_bool(name, value)? {
                    self.warnings
                        .push(format!("{name}=yes: not supported yet, ignored"));
                }
            }
            other if ACCEPTED_UNSUPPORTED.contains(&other) => {
                self.warnings.push(format!(
                    "core parameter '{other}' is accepted but has no effect in Sable"
                ));
            }
            other => {
                return Err(GlobalParamError::Unknown {
                    name: other.to_owned(),
                    hint: None,
                })
            }
        }
        Ok(())
    }

    /// The listen sockets to open: the `listen=` lines (those without a port on `port=`),
    /// or (without any) UDP and TCP on 127.0.0.1 at `port=`. TCP ones are left out with
    /// `disable_tcp=yes`.
    pub fn effective_listens(&self) -> Vec<ListenSpec> {
        let mut out: Vec<ListenSpec> = if self.listens.is_empty() {
            let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), self.port);
            vec![
                ListenSpec {
                    proto: Proto::Udp,
                    addr,
                    advertise: None,
                },
                ListenSpec {
                    proto: Proto::Tcp,
                    addr,
                    advertise: None,
                },
            ]
        } else {
            self.listens
                .iter()
                .map(|(spec, port_given)| {
                    let mut spec = spec.clone();
                    if !port_given {
                        spec.addr.set_port(self.port);
                    }
                    spec
                })
                .collect()
        };
        if self.disable_tcp {
            out.retain(|l| l.proto != Proto::Tcp);
        }
        out
    }
}

fn clamp_i32(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(if n < 0 { i32::MIN } else { i32::MAX })
}

/// Splits `host[:port]`, `[v6][:port]`.
fn split_host_port(s: &str) -> Result<(String, Option<u16>), String> {
    if let Some(rest) = s.strip_prefix('[') {
        let (v6, after) = rest
            .split_once(']')
            .ok_or_else(|| "unclosed '[' in an IPv6 address".to_owned())?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse::<u16>().map_err(|_| format!("bad port '{p}'"))?),
            None if after.is_empty() => None,
            None => return Err(format!("unexpected '{after}' after the IPv6 address")),
        };
        return Ok((format!("[{v6}]"), port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => {
            let port = p.parse::<u16>().map_err(|_| format!("bad port '{p}'"))?;
            Ok((h.to_owned(), Some(port)))
        }
        Some(_) => Err("an IPv6 address must be written in brackets: [addr]:port".to_owned()),
        None => Ok((s.to_owned(), None)),
    }
}

/// Resolves a listen host to an address: an IP literal, or a name resolved once at start.
fn resolve_host(host: &str) -> Result<IpAddr, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ip);
    }
    if bare.is_empty() {
        return Err("no address".to_owned());
    }
    (bare, 0)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve '{bare}': {e}"))?
        .next()
        .map(|a| a.ip())
        .ok_or_else(|| format!("'{bare}' resolves to no address"))
}

/// Parses a `listen=` value: `[proto:]host[:port] [advertise host[:port]] [name "x"]`.
/// Without a protocol the address is opened for UDP and TCP, as Kamailio opens it for every
/// enabled transport.
pub fn parse_listen(text: &str) -> Result<Vec<(ListenSpec, bool)>, GlobalParamError> {
    let bad = |reason: String| GlobalParamError::BadListen {
        value: text.to_owned(),
        reason,
    };
    let mut words = text.split_whitespace();
    let addr_text = words.next().ok_or_else(|| bad("empty value".to_owned()))?;
    let mut advertise = None;
    while let Some(w) = words.next() {
        match w.to_ascii_lowercase().as_str() {
            "advertise" | "as" => {
                let a = words
                    .next()
                    .ok_or_else(|| bad("'advertise' needs an address".to_owned()))?;
                let (host, port) = split_host_port(a).map_err(&bad)?;
                advertise = Some(Advertise { host, port });
            }
            "name" => {
                words
                    .next()
                    .ok_or_else(|| bad("'name' needs a value".to_owned()))?;
            }
            other => return Err(bad(format!("unexpected '{other}'"))),
        }
    }
    let (proto, rest) = match addr_text.split_once(':') {
        Some((p, rest))
            if matches!(
                p.to_ascii_lowercase().as_str(),
                "udp" | "tcp" | "tls" | "sctp" | "ws" | "wss"
            ) =>
        {
            let proto = match p.to_ascii_lowercase().as_str() {
                "udp" => Proto::Udp,
                "tcp" => Proto::Tcp,
                other => {
                    return Err(bad(format!(
                        "transport '{other}' is not supported yet (udp and tcp are)"
                    )))
                }
            };
            (Some(proto), rest)
        }
        _ => (None, addr_text),
    };
    let (host, port) = split_host_port(rest).map_err(&bad)?;
    let ip = resolve_host(&host).map_err(&bad)?;
    if ip.is_unspecified() {
        return Err(bad(
            "a wildcard address: Sable does not enumerate interfaces yet; listen on each \
             address (a Via needs a real one)"
                .to_owned(),
        ));
    }
    let addr = SocketAddr::new(ip, port.unwrap_or(0));
    let protos: &[Proto] = match proto {
        Some(Proto::Tcp) => &[Proto::Tcp],
        Some(_) => &[Proto::Udp],
        None => &[Proto::Udp, Proto::Tcp],
    };
    Ok(protos
        .iter()
        .map(|&proto| {
            (
                ListenSpec {
                    proto,
                    addr,
                    advertise: advertise.clone(),
                },
                port.is_some(),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_forms() {
        let l = parse_listen("udp:127.0.0.1:5070").unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(
            (l[0].0.proto, l[0].0.addr.to_string(), l[0].1),
            (Proto::Udp, "127.0.0.1:5070".to_owned(), true)
        );
        let l = parse_listen("tcp:[::1]:5080 advertise 192.0.2.1:5090").unwrap();
        assert_eq!(
            (l[0].0.proto, l[0].0.addr.to_string()),
            (Proto::Tcp, "[::1]:5080".to_owned())
        );
        let a = l[0].0.advertise.clone().unwrap();
        assert_eq!((a.host.as_str(), a.port), ("192.0.2.1", Some(5090)));
        let l = parse_listen("127.0.0.1").unwrap();
        assert_eq!(
            l.iter().map(|x| x.0.proto).collect::<Vec<_>>(),
            [Proto::Udp, Proto::Tcp]
        );
        assert!(!l[0].1, "no port given");
        assert!(parse_listen("udp:127.0.0.1:99999").is_err());
        assert!(parse_listen("tls:127.0.0.1:5061").is_err());
        assert!(parse_listen("udp:::1:5060").is_err());
        assert!(parse_listen("udp:127.0.0.1:5060 bogus").is_err());
        assert!(parse_listen("udp:0.0.0.0:5060").is_err());
    }

    #[test]
    fn params_are_checked() {
        let mut c = CoreConfig::default();
        c.set("debug", &ParamValue::Int(3)).unwrap();
        assert_eq!(c.debug, LogLevel::DBG);
        c.set("log_stderror", &ParamValue::Bool(true)).unwrap();
        assert!(c.log_stderror);
        assert!(c.set("children", &ParamValue::Int(0)).is_err());
        assert!(c
            .set("tcp_max_connections", &ParamValue::Str("x".into()))
            .is_err());
        assert!(matches!(
            c.set("no_such_param", &ParamValue::Int(1)),
            Err(GlobalParamError::Unknown { .. })
        ));
        // A port= after the listen line still applies to it.
        c.set("listen", &ParamValue::Raw("udp:127.0.0.1".into()))
            .unwrap();
        c.set("port", &ParamValue::Int(5070)).unwrap();
        assert_eq!(c.effective_listens()[0].addr.port(), 5070);
        c.set("memdbg", &ParamValue::Int(5)).unwrap();
        assert_eq!(c.warnings.len(), 1);
        c.set("alias", &ParamValue::Str("udp:example.com:5060".into()))
            .unwrap();
        assert_eq!(c.aliases, vec![("example.com".to_owned(), Some(5060))]);
    }
}
