//! The core's RPC methods, with Kamailio's names and result shapes: `core.*`, `stats.*` and
//! `corex.debug`.

use crate::config::LogLevel;
use crate::core::Core;
use sable_rpc::{Json, MethodKind, Params, Registry, RpcError};
use serde_json::json;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// `Mon Nov 23 11:40:00 2026` (C's `ctime` without the newline), UTC.
pub fn ctime(secs: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let wd = DAYS
        .get(usize::try_from(days.rem_euclid(7)).unwrap_or(0))
        .copied()
        .unwrap_or("Thu");
    let mon = MONTHS
        .get(usize::try_from(month - 1).unwrap_or(0))
        .copied()
        .unwrap_or("Jan");
    format!("{wd} {mon} {d:2} {h:02}:{m:02}:{s:02} {year}")
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// The server's version string, as `core.version` gives it.
pub fn version_string() -> String {
    format!(
        "sable {} ({}/{})",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        std::env::consts::OS
    )
}

/// A kB figure from `/proc/self/status` (`VmRSS`, `VmHWM`), in bytes.
fn proc_status_bytes(field: &str) -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<i64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The threads of the server, as (id, description) pairs: Sable is one process, so the id
/// is the process id for every thread and the description says which thread it is.
fn threads(core: &Core) -> Vec<(u32, String)> {
    let pid = std::process::id();
    let mut out = vec![(pid, "main thread: signals, start and stop".to_owned())];
    for s in &core.sockets {
        match s.proto {
            sable_transport::Proto::Udp => {
                for child in 0..core.config.children.max(1) {
                    out.push((
                        pid,
                        format!("udp receiver child={child} sock={}:{}", s.proto, s.addr),
                    ));
                }
            }
            sable_transport::Proto::Tcp => {
                out.push((pid, format!("tcp listener sock={}:{}", s.proto, s.addr)));
            }
        }
    }
    if core
        .sockets
        .iter()
        .any(|s| s.proto == sable_transport::Proto::Tcp)
    {
        out.push((pid, "tcp connections (2 threads)".to_owned()));
    }
    if let Some(path) = core.ctl_running.get() {
        out.push((pid, format!("control socket (RPC) {}", path.display())));
    }
    out
}

fn selectors(p: &Params) -> Result<Vec<String>, RpcError> {
    let sel: Vec<String> = p.strings_from(0)?.into_iter().map(str::to_owned).collect();
    Ok(if sel.is_empty() {
        vec!["all".to_owned()]
    } else {
        sel
    })
}

fn stat_lines(core: &Core, sel: &[String]) -> Json {
    let mut lines = Vec::new();
    for s in sel {
        for v in core.stat_registry.select(s) {
            lines.push(Json::from(format!("{}:{} = {}", v.group, v.name, v.value)));
        }
    }
    Json::Array(lines)
}

fn reg(
    registry: &mut Registry,
    name: &str,
    help: &str,
    signature: &[&str],
    kind: MethodKind,
    f: impl Fn(&Params) -> Result<Json, RpcError> + Send + Sync + 'static,
) {
    if let Err(e) = registry.register(name, help, signature.iter().copied(), kind, f) {
        tracing::error!("{e}");
    }
}

/// Registers the core methods.
pub fn register(registry: &mut Registry, core: &Arc<Core>) {
    reg(
        registry,
        "core.version",
        "The server's version.",
        &["string"],
        MethodKind::Value,
        |_| Ok(Json::from(version_string())),
    );
    let c = core.clone();
    reg(
        registry,
        "core.uptime",
        "Current time, start time and seconds since the start.",
        &["struct"],
        MethodKind::Value,
        move |_| {
            let now = now_secs();
            Ok(json!({
                "now": ctime(now),
                "up_since": ctime(c.started_at),
                "uptime": now - c.started_at,
            }))
        },
    );
    let c = core.clone();
    reg(
        registry,
        "core.ps",
        "The server's threads: id and description, one after the other.",
        &["array"],
        MethodKind::List,
        move |_| {
            let mut out = Vec::new();
            for (id, d) in threads(&c) {
                out.push(Json::from(id));
                out.push(Json::from(d));
            }
            Ok(Json::Array(out))
        },
    );
    let c = core.clone();
    reg(
        registry,
        "core.psx",
        "The server's threads, one structure each (IDX, PID, DSC).",
        &["array"],
        MethodKind::List,
        move |_| {
            Ok(Json::Array(
                threads(&c)
                    .into_iter()
                    .enumerate()
                    .map(|(k, (id, d))| json!({"IDX": k, "PID": id, "DSC": d}))
                    .collect(),
            ))
        },
    );
    reg(
        registry,
        "core.info",
        "Build information.",
        &["struct"],
        MethodKind::Value,
        |_| {
            Ok(json!({
                "version": version_string(),
                "id": env!("CARGO_PKG_VERSION"),
                "compiler": "rustc",
                "compiled": "",
                "flags": "USE_TCP, USE_SO_REUSEPORT",
            }))
        },
    );
    reg(
        registry,
        "core.shmmem",
        "Memory of the process (Sable has no shared-memory pool: its state lives in the \
         process): total and used are the resident size, max_used its peak, in bytes.",
        &["struct"],
        MethodKind::Value,
        |_| {
            let rss = proc_status_bytes("VmRSS:");
            let peak = proc_status_bytes("VmHWM:");
            Ok(json!({
                "total": rss,
                "free": 0,
                "used": rss,
                "real_used": rss,
                "max_used": peak,
                "fragments": 0,
            }))
        },
    );
    let c = core.clone();
    reg(
        registry,
        "core.sockets_list",
        "The listen sockets.",
        &["struct"],
        MethodKind::Value,
        move |_| {
            let list: Vec<Json> = c
                .sockets
                .iter()
                .map(|s| {
                    let mut v = json!({
                        "proto": s.proto.as_str(),
                        "address": s.addr.ip().to_string(),
                        "port": s.addr.port().to_string(),
                        "mcast": "no",
                        "mhomed": "no",
                    });
                    if let (Some(a), Some(obj)) = (&s.advertise, v.as_object_mut()) {
                        obj.insert(
                            "advertise".to_owned(),
                            Json::from(format!("{}:{}", a.host, a.port.unwrap_or(s.addr.port()))),
                        );
                    }
                    v
                })
                .collect();
            Ok(json!({ "socket": list }))
        },
    );
    let c = core.clone();
    reg(
        registry,
        "core.aliases_list",
        "The names this server answers to besides its addresses (alias=).",
        &["struct"],
        MethodKind::Value,
        move |_| {
            let list: Vec<Json> = c
                .config
                .aliases
                .iter()
                .map(|(h, p)| json!({"address": h, "port": p.map_or("*".to_owned(), |p| p.to_string())}))
                .collect();
            Ok(json!({ "alias": list }))
        },
    );
    reg(
        registry,
        "core.echo",
        "Returns its parameters.",
        &["array"],
        MethodKind::List,
        |p| Ok(Json::Array(p.values().to_vec())),
    );
    let c = core.clone();
    reg(
        registry,
        "stats.get_statistics",
        "Statistics as \"group:name = value\": all, group: (a whole group) or names.",
        &["array", "string"],
        MethodKind::List,
        move |p| Ok(stat_lines(&c, &selectors(p)?)),
    );
    let c = core.clone();
    reg(
        registry,
        "stats.reset_statistics",
        "Resets counters (not gauges): all, group: or names.",
        &["string"],
        MethodKind::Value,
        move |p| {
            for s in selectors(p)? {
                c.stat_registry.reset(&s);
            }
            Ok(json!({}))
        },
    );
    let c = core.clone();
    reg(
        registry,
        "stats.clear_statistics",
        "Returns the selected statistics, then resets the counters among them.",
        &["array", "string"],
        MethodKind::List,
        move |p| {
            let sel = selectors(p)?;
            let out = stat_lines(&c, &sel);
            for s in &sel {
                c.stat_registry.reset(s);
            }
            Ok(out)
        },
    );
    let c = core.clone();
    reg(
        registry,
        "corex.debug",
        "The log level (debug=): without a parameter it is returned; with one it is set.",
        &["int", "int"],
        MethodKind::Value,
        move |p| match p.opt_int(0)? {
            None => Ok(Json::from(c.log_level())),
            Some(level) => {
                let level = i32::try_from(level)
                    .map_err(|_| RpcError::invalid_params("level out of range"))?;
                if !(-5..=4).contains(&level) {
                    return Err(RpcError::invalid_params("level must be in -5..4"));
                }
                c.set_log_level(LogLevel(level));
                Ok(Json::from(level))
            }
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctime_matches_c() {
        assert_eq!(ctime(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(ctime(1_795_432_254), "Mon Nov 23 11:10:54 2026");
        assert_eq!(ctime(951_782_400), "Tue Feb 29 00:00:00 2000");
    }
}
