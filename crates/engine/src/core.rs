//! State shared by every worker: the core parameters, the sockets, the transport handle,
//! the statistics, and the "is it me?" knowledge.

use crate::config::CoreConfig;
use crate::stats::{CoreStats, Counter, StatRegistry};
use sable_sip::Uri;
use sable_transport::{
    ConnectionId, LocalSocket, Outbound, Proto, SendError, SendFlags, TransportHandle,
};
use std::net::{IpAddr, SocketAddr};

/// Shared engine state.
/// Whether an HTTP URL is for the script (xhttp's url_match/url_skip).
pub type UrlFilter = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// Applies a log level to the logger.
pub type LevelSetter = Box<dyn Fn(crate::LogLevel) + Send + Sync>;

pub struct Core {
    pub config: CoreConfig,
    pub transport: TransportHandle,
    pub sockets: Vec<LocalSocket>,
    pub stats: CoreStats,
    /// Every statistic (`stats.get_statistics`, Prometheus).
    pub stat_registry: StatRegistry,
    /// `core:rcv_replies_6xx`.
    pub replies_6xx: std::sync::Arc<Counter>,
    /// The log level now (`debug=`, changed by `corex.debug`).
    log_level: std::sync::atomic::AtomicI32,
    /// The RPC methods, for `jsonrpc_dispatch()` (set once the registry is complete).
    pub rpc: std::sync::OnceLock<std::sync::Arc<sable_rpc::Registry>>,
    /// The custom cfg variables (`group.name = value`), shared with the program's
    /// `$sel(cfg_get...)` (replaced on reload).
    pub cfg_vars: parking_lot::RwLock<Option<crate::CfgVars>>,
    /// Where the control socket listens, once it does.
    pub ctl_running: std::sync::OnceLock<std::path::PathBuf>,
    /// The control socket's path and mode when the config sets them (module ctl).
    pub ctl_socket: std::sync::OnceLock<(std::path::PathBuf, u32)>,
    /// Which HTTP URLs `event_route[xhttp:request]` handles (xhttp's url_match/url_skip).
    pub http_filter: std::sync::OnceLock<UrlFilter>,
    /// Applies a new log level to the logger (set by the binary, which owns the logger).
    pub log_level_setter: std::sync::OnceLock<LevelSetter>,
    /// Prefix of the To-tags of stateless replies (one per instance, as Kamailio's sl).
    pub sl_tag_prefix: String,
    /// Shared state modules offer each other (usrloc's tables to registrar...), by type.
    services: parking_lot::RwLock<Vec<std::sync::Arc<dyn std::any::Any + Send + Sync>>>,
    /// Code modules run when `loose_route()` consumed this server's Route (dialog).
    pub rr_hooks: crate::RrHooks,
    /// Code modules run for every reply received, after the core reply_route (dlgs).
    pub reply_hooks: crate::ReplyHooks,
    /// The transaction layer, once module tm starts it.
    pub tm: std::sync::OnceLock<std::sync::Arc<crate::tm::Tm>>,
    /// Start time, seconds since the Unix epoch (`$TS`).
    pub started_at: i64,
    /// The compiled script, set once before the transport starts (modules that run routes
    /// from inside a function, such as `onsend_route` from `forward()`, find it here).
    program: parking_lot::RwLock<Option<std::sync::Arc<sable_script::Program<crate::Sip>>>>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("sockets", &self.sockets)
            .field("started_at", &self.started_at)
            .finish()
    }
}

impl Core {
    pub fn new(config: CoreConfig, transport: TransportHandle, sockets: Vec<LocalSocket>) -> Core {
        let seed = format!(
            "{:?}{}{}",
            sockets.iter().map(|s| s.addr).collect::<Vec<_>>(),
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let sl_tag_prefix = format!("{:016x}", crate::sip_util::hash64(seed.as_bytes()));
        let started_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
        let stat_registry = StatRegistry::new();
        let stats = CoreStats::register(&stat_registry);
        let replies_6xx = stat_registry.counter("core", "rcv_replies_6xx");
        let log_level = std::sync::atomic::AtomicI32::new(config.debug.0);
        Core {
            log_level,
            log_level_setter: std::sync::OnceLock::new(),
            rpc: std::sync::OnceLock::new(),
            http_filter: std::sync::OnceLock::new(),
            ctl_socket: std::sync::OnceLock::new(),
            ctl_running: std::sync::OnceLock::new(),
            cfg_vars: parking_lot::RwLock::new(None),
            program: parking_lot::RwLock::new(None),
            tm: std::sync::OnceLock::new(),
            rr_hooks: crate::RrHooks::default(),
            reply_hooks: crate::ReplyHooks::default(),
            services: parking_lot::RwLock::new(Vec::new()),
            started_at,
            config,
            transport,
            sockets,
            stats,
            stat_registry,
            replies_6xx,
            sl_tag_prefix,
        }
    }

    /// Offers a module's shared state to the other modules (one value per type).
    pub fn provide<T: std::any::Any + Send + Sync>(&self, service: std::sync::Arc<T>) {
        let mut all = self.services.write();
        all.retain(|s| !s.is::<T>());
        all.push(service);
    }

    /// The shared state of type `T` a module offered, if any.
    pub fn service<T: std::any::Any + Send + Sync>(&self) -> Option<std::sync::Arc<T>> {
        self.services
            .read()
            .iter()
            .find_map(|s| s.clone().downcast::<T>().ok())
    }

    /// The running program (the compiled config); `None` before start.
    pub fn program(&self) -> Option<std::sync::Arc<sable_script::Program<crate::Sip>>> {
        self.program.read().clone()
    }

    /// Installs a program: at start, and on reload (`cfg.reload`, SIGHUP). Messages already
    /// being routed finish on the program they started with.
    pub fn set_program(&self, program: std::sync::Arc<sable_script::Program<crate::Sip>>) {
        *self.program.write() = Some(program);
    }

    /// The log level now.
    pub fn log_level(&self) -> i32 {
        self.log_level.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Changes the log level at run time.
    pub fn set_log_level(&self, level: crate::LogLevel) {
        self.log_level
            .store(level.0, std::sync::atomic::Ordering::Relaxed);
        if let Some(set) = self.log_level_setter.get() {
            set(level);
        }
    }

    /// Whether `host[:port]` names this server: a listen address (or its advertised
    /// address) with the same port, or an `alias=` (any port when the alias has none). A
    /// missing port means 5060 (5061 for `sips`).
    pub fn is_myself(&self, host: &str, port: Option<u16>, secure: bool) -> bool {
        self.is_myself_port(host, Some(port.unwrap_or(if secure { 5061 } else { 5060 })))
    }

    /// Like [`is_myself`](Core::is_myself); `None` matches any port (`src_ip == myself`).
    pub fn is_myself_port(&self, host: &str, port: Option<u16>) -> bool {
        let port_ok = |p: u16| port.is_none_or(|want| want == p);
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let ip = bare.parse::<IpAddr>().ok();
        for s in &self.sockets {
            if let Some(ip) = ip {
                if s.addr.ip() == ip && port_ok(s.addr.port()) {
                    return true;
                }
            }
            if let Some(a) = &s.advertise {
                let ahost = a.host.trim_start_matches('[').trim_end_matches(']');
                if ahost.eq_ignore_ascii_case(bare) && port_ok(a.port.unwrap_or(s.addr.port())) {
                    return true;
                }
            }
        }
        self.config.aliases.iter().any(|(h, p)| {
            h.trim_start_matches('[')
                .trim_end_matches(']')
                .eq_ignore_ascii_case(bare)
                && p.is_none_or(port_ok)
        })
    }

    /// Whether a URI (text) points at this server.
    pub fn is_myself_uri(&self, text: &str) -> bool {
        match Uri::parse(text.trim().as_bytes()) {
            Ok(Uri::Sip(u)) => {
                let host = String::from_utf8_lossy(u.host().as_bytes());
                self.is_myself(&host, u.port(), u.secure())
            }
            Ok(_) => false,
            // Not a URI: maybe a bare host[:port].
            Err(_) => {
                let t = text.trim();
                match t.rsplit_once(':') {
                    Some((h, p)) if !h.contains(':') || h.ends_with(']') => {
                        self.is_myself_port(h, p.parse().ok())
                    }
                    _ => self.is_myself_port(t, None),
                }
            }
        }
    }

    /// The socket to send from for a protocol and destination family: the one the message
    /// came in on when it fits, else the first listen socket that fits.
    pub fn socket_for(
        &self,
        proto: Proto,
        dst: &SocketAddr,
        prefer: Option<&LocalSocket>,
    ) -> Option<&LocalSocket> {
        let fits = |s: &LocalSocket| s.proto == proto && s.addr.is_ipv6() == dst.is_ipv6();
        if let Some(p) = prefer {
            if let Some(s) = self.sockets.iter().find(|s| s.index == p.index && fits(s)) {
                return Some(s);
            }
        }
        self.sockets.iter().find(|s| fits(s))
    }

    /// Sends bytes.
    pub fn send(
        &self,
        proto: Proto,
        dst: SocketAddr,
        local: Option<usize>,
        conn: Option<ConnectionId>,
        data: &[u8],
    ) -> Result<(), SendError> {
        self.send_with(proto, dst, local, conn, data, SendFlags::default())
    }

    /// Sends bytes with TCP options (close after, no new connection).
    pub fn send_with(
        &self,
        proto: Proto,
        dst: SocketAddr,
        local: Option<usize>,
        conn: Option<ConnectionId>,
        data: &[u8],
        flags: SendFlags,
    ) -> Result<(), SendError> {
        self.transport.send_with(
            Outbound {
                proto,
                dst,
                local,
                conn,
                data,
            },
            flags,
        )
    }
}
