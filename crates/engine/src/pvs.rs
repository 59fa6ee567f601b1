//! Core pseudo-variables (`$ru`, `$si`, `$hdr(name)`...), expression keywords (`uri`,
//! `method`, `src_ip`...) and the SIP transformation classes (`uri`, `nameaddr`, `tobody`).

use crate::context::{MsgCtx, Sip};
use crate::core_fns::UriParts;
use sable_script::transform::{TransformClass, TransformFn};
use sable_script::{PvAccess, PvDef, Registry, Value};
use sable_sip::{HeaderName, HeaderValue, Message, NameAddr, SipUri, Uri};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

type Getter = for<'a, 'b> fn(&'b mut MsgCtx<'a>) -> Value;
type Setter = for<'a, 'b> fn(&'b mut MsgCtx<'a>, Value) -> bool;

/// A pseudo-variable made of a getter and, when writable, a setter.
struct Simple {
    get: Getter,
    set: Option<Setter>,
}

impl PvAccess<Sip> for Simple {
    fn get(&self, ctx: &mut MsgCtx<'_>) -> Value {
        (self.get)(ctx)
    }

    fn set(&self, ctx: &mut MsgCtx<'_>, value: Value) -> bool {
        self.set.is_some_and(|s| s(ctx, value))
    }
}

fn lossy(b: &[u8]) -> Value {
    Value::Str(String::from_utf8_lossy(b).into_owned())
}

fn opt(b: Option<&[u8]>) -> Value {
    b.map_or(Value::Null, lossy)
}

fn simple(reg: &mut Registry<Sip>, names: &[&str], get: Getter, set: Option<Setter>) {
    for name in names {
        reg.pv(
            name,
            PvDef {
                module: "core",
                writable: set.is_some(),
                make: Box::new(move |inner| {
                    if inner.is_some_and(|i| !i.is_empty()) {
                        return Err("takes no name in parentheses".to_owned());
                    }
                    Ok(Box::new(Simple { get, set }) as Box<dyn PvAccess<Sip>>)
                }),
            },
        );
    }
}

/// A read-only `$name(field)` whose getter `pick` chooses by the field (`known` lists the
/// fields, for the error on another one).
fn read_only_fields(
    reg: &mut Registry<Sip>,
    name: &'static str,
    known: &'static str,
    pick: fn(&str) -> Option<Getter>,
) {
    reg.pv(
        name,
        PvDef {
            module: "core",
            writable: false,
            make: Box::new(move |inner| {
                let field = inner.map_or("", str::trim);
                match pick(field) {
                    Some(get) => Ok(Box::new(Simple { get, set: None }) as Box<dyn PvAccess<Sip>>),
                    None => Err(format!("unknown ${name} field {field:?} ({known})")),
                }
            }),
        },
    );
}

fn keyword(reg: &mut Registry<Sip>, name: &str, get: Getter) {
    reg.keyword(
        name,
        PvDef {
            module: "core",
            writable: false,
            make: Box::new(move |_| {
                Ok(Box::new(Simple { get, set: None }) as Box<dyn PvAccess<Sip>>)
            }),
        },
    );
}

/// The current Request-URI's parts.
fn ruri_part(ctx: &mut MsgCtx<'_>, part: fn(&Uri<'_>) -> Value) -> Value {
    if !ctx.is_request() {
        return Value::Null;
    }
    ctx.with_ruri(part).unwrap_or(Value::Null)
}

fn uri_user(u: &Uri<'_>) -> Value {
    match u {
        Uri::Sip(s) => opt(s.user()),
        Uri::Tel(t) => lossy(t.number()),
        Uri::Other(_) => Value::Null,
    }
}

fn uri_host(u: &Uri<'_>) -> Value {
    match u {
        Uri::Sip(s) => lossy(s.host().as_bytes()),
        _ => Value::Null,
    }
}

fn uri_port(u: &Uri<'_>) -> Value {
    match u {
        Uri::Sip(s) => Value::Int(i64::from(s.port().unwrap_or(if s.secure() {
            5061
        } else {
            5060
        }))),
        _ => Value::Null,
    }
}

fn uri_transport(u: &Uri<'_>) -> Value {
    match u {
        Uri::Sip(s) => match s.transport() {
            Some(t) => Value::Str(String::from_utf8_lossy(t).to_ascii_lowercase()),
            None if s.secure() => Value::Str("tls".to_owned()),
            None => Value::Str("udp".to_owned()),
        },
        _ => Value::Null,
    }
}

fn uri_scheme(u: &Uri<'_>) -> Value {
    Value::Str(String::from_utf8_lossy(u.scheme()).to_ascii_lowercase())
}

/// Rewrites one part of the Request-URI.
fn set_ruri_part(ctx: &mut MsgCtx<'_>, apply: impl FnOnce(&mut UriParts)) -> bool {
    if !ctx.is_request() {
        return false;
    }
    let current = ctx.ruri_text().into_owned();
    match UriParts::of(&current) {
        Some(mut p) => {
            apply(&mut p);
            ctx.new_uri = Some(p.render());
            true
        }
        None => false,
    }
}

fn addr_part(ctx: &mut MsgCtx<'_>, to: bool, part: fn(&NameAddr<'_>) -> Value) -> Value {
    let r = if to { ctx.msg.to() } else { ctx.msg.from() };
    r.map(part).unwrap_or(Value::Null)
}

/// The body of a header field (the whole line value, as Kamailio's `$hdr` gives it).
fn field_value<'a>(msg: &Message<'a>, h: &HeaderValue) -> &'a [u8] {
    let line = msg.slice(h.line);
    let after = line
        .iter()
        .position(|&b| b == b':')
        .and_then(|k| line.get(k + 1..))
        .unwrap_or_default();
    let start = after
        .iter()
        .position(|b| !b" \t".contains(b))
        .unwrap_or(after.len());
    let trimmed = after.get(start..).unwrap_or_default();
    let end = trimmed
        .iter()
        .rposition(|b| !b" \t\r\n".contains(b))
        .map_or(0, |k| k + 1);
    trimmed.get(..end).unwrap_or_default()
}

/// Header fields (lines) with a name, in order.
fn fields<'m, 'a>(
    msg: &'m Message<'a>,
    name: &'m Header,
) -> impl Iterator<Item = &'m HeaderValue> + use<'m, 'a> {
    msg.headers()
        .iter()
        .filter(move |h| h.index_in_line == 0 && name.matches(msg, h))
}

/// A header name given to `$hdr(...)`: a known header (compact forms resolved) or another
/// name compared case-insensitively.
#[derive(Debug, Clone)]
pub struct Header {
    known: HeaderName,
    text: Vec<u8>,
}

impl Header {
    pub fn new(name: &str) -> Header {
        Header {
            known: HeaderName::from_bytes(name.trim().as_bytes()),
            text: name.trim().as_bytes().to_vec(),
        }
    }

    pub fn matches(&self, msg: &Message<'_>, h: &HeaderValue) -> bool {
        if self.known != HeaderName::Other {
            h.name == self.known
        } else {
            h.name == HeaderName::Other && msg.name(h).eq_ignore_ascii_case(&self.text)
        }
    }
}

/// A part of the From (or To) header: `$fu`, `$tU`...
struct AddrPv {
    to: bool,
    part: for<'x> fn(&NameAddr<'x>) -> Value,
}

impl PvAccess<Sip> for AddrPv {
    fn get(&self, ctx: &mut MsgCtx<'_>) -> Value {
        addr_part(ctx, self.to, self.part)
    }
}

struct HdrPv(Header);

impl PvAccess<Sip> for HdrPv {
    fn get(&self, ctx: &mut MsgCtx<'_>) -> Value {
        let msg = &ctx.msg;
        fields(msg, &self.0)
            .next()
            .map_or(Value::Null, |h| lossy(field_value(msg, h)))
    }

    fn get_at(&self, ctx: &mut MsgCtx<'_>, index: i64) -> Value {
        let msg = &ctx.msg;
        let all: Vec<&HeaderValue> = fields(msg, &self.0).collect();
        let k = if index < 0 {
            i64::try_from(all.len()).unwrap_or(0) + index
        } else {
            index
        };
        usize::try_from(k)
            .ok()
            .and_then(|k| all.get(k))
            .map_or(Value::Null, |h| lossy(field_value(msg, h)))
    }

    fn get_all(&self, ctx: &mut MsgCtx<'_>) -> Vec<Value> {
        let msg = &ctx.msg;
        fields(msg, &self.0)
            .map(|h| lossy(field_value(msg, h)))
            .collect()
    }
}

struct HdrCount(Header);

impl PvAccess<Sip> for HdrCount {
    fn get(&self, ctx: &mut MsgCtx<'_>) -> Value {
        Value::Int(i64::try_from(fields(&ctx.msg, &self.0).count()).unwrap_or(0))
    }
}

/// The index of the listen socket written `proto:host:port` (or `host:port`, any protocol).
fn find_socket(c: &MsgCtx<'_>, text: &str) -> Option<usize> {
    let t = text.trim();
    let (proto, rest) = match t.split_once(':') {
        Some((p, r)) if p.eq_ignore_ascii_case("udp") || p.eq_ignore_ascii_case("tcp") => {
            (Some(p.to_ascii_lowercase()), r)
        }
        _ => (None, t),
    };
    let addr: std::net::SocketAddr = rest.parse().ok()?;
    c.core
        .sockets
        .iter()
        .find(|s| s.addr == addr && proto.as_deref().is_none_or(|p| p == s.proto.as_str()))
        .map(|s| s.index)
}

/// The current time: (seconds, microseconds) since 1970.
fn now_tv() -> (i64, i64) {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or((0, 0), |d| {
            (
                i64::try_from(d.as_secs()).unwrap_or(0),
                i64::from(d.subsec_micros()),
            )
        })
}

/// The message's time (see `MsgCtx::time`): taken on the first read, kept after.
fn message_tv(c: &MsgCtx<'_>) -> (i64, i64) {
    match c.time.get() {
        Some(tv) => tv,
        None => {
            let tv = now_tv();
            c.time.set(Some(tv));
            tv
        }
    }
}

fn ip_text(ip: std::net::IpAddr) -> Value {
    Value::Str(ip.to_string())
}

/// `$sel(cfg_get.group.name)`: a custom cfg variable, as it is now (cfg.set changes it).
struct CfgGet(crate::CfgVars, String);

impl PvAccess<Sip> for CfgGet {
    fn get(&self, _ctx: &mut MsgCtx<'_>) -> Value {
        self.0.read().get(&self.1).cloned().unwrap_or_default()
    }
}

/// Registers the core pseudo-variables, keywords and SIP transformation classes.
pub fn register(reg: &mut Registry<Sip>, cfg_vars: crate::CfgVars) {
    reg.pv(
        "sel",
        PvDef {
            module: "core",
            writable: false,
            make: Box::new(move |inner| {
                let sel = inner.map(str::trim).unwrap_or("");
                match sel.strip_prefix("cfg_get.") {
                    Some(var) if cfg_vars.read().contains_key(var) => {
                        Ok(Box::new(CfgGet(cfg_vars.clone(), var.to_owned()))
                            as Box<dyn PvAccess<Sip>>)
                    }
                    Some(var) => Err(format!(
                        "no cfg variable '{var}' (declare it as `{var} = value`)"
                    )),
                    None => Err(format!(
                        "select '{sel}' is not supported (only cfg_get.GROUP.NAME)"
                    )),
                }
            }),
        },
    );

    simple(
        reg,
        &["ru"],
        |c| {
            if c.is_request() {
                Value::Str(c.ruri_text().into_owned())
            } else {
                Value::Null
            }
        },
        Some(|c, v| {
            if !c.is_request() || v.is_null() {
                return false;
            }
            c.new_uri = Some(v.into_string());
            true
        }),
    );
    simple(
        reg,
        &["rU"],
        |c| ruri_part(c, uri_user),
        Some(|c, v| {
            let user = v.into_string();
            set_ruri_part(c, |p| {
                p.user = if user.is_empty() { None } else { Some(user) }
            })
        }),
    );
    simple(
        reg,
        &["rd"],
        |c| ruri_part(c, uri_host),
        Some(|c, v| {
            let host = v.into_string();
            !host.is_empty() && set_ruri_part(c, |p| p.host = host)
        }),
    );
    simple(
        reg,
        &["rp"],
        |c| ruri_part(c, uri_port),
        Some(|c, v| {
            let port = match v {
                Value::Null => None,
                other => match u16::try_from(other.as_int()) {
                    Ok(0) | Err(_) => None,
                    Ok(p) => Some(p),
                },
            };
            set_ruri_part(c, |p| p.port = port)
        }),
    );
    simple(reg, &["rP"], |c| ruri_part(c, uri_transport), None);
    simple(reg, &["rz"], |c| ruri_part(c, uri_scheme), None);
    simple(
        reg,
        &["ou"],
        |c| match c.msg.start_line() {
            sable_sip::StartLine::Request { uri, .. } => lossy(uri),
            _ => Value::Null,
        },
        None,
    );
    simple(
        reg,
        &["oU"],
        |c| c.msg.request_uri().map(uri_user).unwrap_or(Value::Null),
        None,
    );
    simple(
        reg,
        &["du"],
        |c| c.dst_uri.clone().map_or(Value::Null, Value::Str),
        Some(|c, v| {
            c.dst_uri = match v {
                Value::Null => None,
                other => {
                    let s = other.into_string();
                    if s.is_empty() {
                        None
                    } else {
                        Some(s)
                    }
                }
            };
            true
        }),
    );
    simple(
        reg,
        &["fs"],
        |c| {
            let k = c.force_socket;
            c.core
                .sockets
                .iter()
                .find(|s| Some(s.index) == k)
                .map_or(Value::Null, |s| {
                    Value::Str(format!("{}:{}", s.proto, s.addr))
                })
        },
        Some(|c, v| {
            if v.is_null() {
                c.force_socket = None;
                return true;
            }
            let text = v.into_string();
            match find_socket(c, &text) {
                Some(k) => {
                    c.force_socket = Some(k);
                    true
                }
                None => {
                    tracing::warn!("$fs: no listen socket '{text}'");
                    false
                }
            }
        }),
    );
    // From and To: $fu $fU $fd $fn $ft, $tu $tU $td $tn $tt.
    type Part = for<'x> fn(&NameAddr<'x>) -> Value;
    let parts: [(&str, Part); 5] = [
        ("u", |a| lossy(a.uri.as_bytes())),
        ("U", |a| uri_user(&a.uri)),
        ("d", |a| uri_host(&a.uri)),
        ("n", |a| opt(a.display_name)),
        ("t", |a| opt(a.tag())),
    ];
    for (prefix, to) in [("f", false), ("t", true)] {
        for (suffix, part) in parts {
            reg.pv(
                &format!("{prefix}{suffix}"),
                PvDef {
                    module: "core",
                    writable: false,
                    make: Box::new(move |inner| {
                        if inner.is_some_and(|i| !i.is_empty()) {
                            return Err("takes no name in parentheses".to_owned());
                        }
                        Ok(Box::new(AddrPv { to, part }) as Box<dyn PvAccess<Sip>>)
                    }),
                },
            );
        }
    }
    simple(
        reg,
        &["ci"],
        |c| c.msg.call_id().map_or(Value::Null, lossy),
        None,
    );
    simple(
        reg,
        &["cs"],
        |c| {
            c.msg
                .cseq()
                .map_or(Value::Null, |s| Value::Int(i64::from(s.number)))
        },
        None,
    );
    simple(reg, &["rm"], |c| lossy(c.method_bytes()), None);
    simple(
        reg,
        &["rs"],
        |c| {
            c.msg
                .status_code()
                .map_or(Value::Null, |s| Value::Int(i64::from(s)))
        },
        None,
    );
    simple(reg, &["rr"], |c| opt(c.msg.reason()), None);
    simple(reg, &["rv"], |_| Value::Str("SIP/2.0".to_owned()), None);
    simple(reg, &["si"], |c| ip_text(c.recv.src.ip()), None);
    simple(
        reg,
        &["sp"],
        |c| Value::Int(i64::from(c.recv.src.port())),
        None,
    );
    simple(reg, &["Ri"], |c| ip_text(c.recv.local.addr.ip()), None);
    simple(
        reg,
        &["Rp"],
        |c| Value::Int(i64::from(c.recv.local.addr.port())),
        None,
    );
    simple(
        reg,
        &["pr", "proto"],
        |c| Value::Str(c.recv.proto.as_str().to_owned()),
        None,
    );
    simple(reg, &["ua"], |c| opt(c.msg.user_agent()), None);
    simple(reg, &["mb"], |c| lossy(c.msg.as_bytes()), None);
    simple(
        reg,
        &["ml"],
        |c| Value::Int(i64::try_from(c.msg.as_bytes().len()).unwrap_or(0)),
        None,
    );
    simple(
        reg,
        &["mt"],
        |c| Value::Int(if c.is_request() { 1 } else { 2 }),
        None,
    );
    simple(reg, &["rb"], |c| lossy(c.msg.body()), None);
    simple(
        reg,
        &["cl"],
        |c| Value::Int(i64::from(c.msg.content_length().unwrap_or(0))),
        None,
    );
    simple(
        reg,
        &["ct"],
        |c| {
            let msg = &c.msg;
            fields(msg, &Header::new("Contact"))
                .next()
                .map_or(Value::Null, |h| lossy(field_value(msg, h)))
        },
        None,
    );
    simple(reg, &["Ts"], |c| Value::Int(message_tv(c).0), None);
    // $TV(s|u): the message's time (as $Ts); $TV(sn|un|Sn): the time now, at every read.
    read_only_fields(reg, "TV", "s, u, sn, un, Sn", |field| {
        Some(match field {
            "s" => |c| Value::Int(message_tv(c).0),
            "u" => |c| Value::Int(message_tv(c).1),
            "sn" => |_| Value::Int(now_tv().0),
            "un" => |_| Value::Int(now_tv().1),
            "Sn" => |_| {
                let (s, u) = now_tv();
                Value::Str(format!("{s}.{u:06}"))
            },
            _ => return None,
        })
    });
    simple(reg, &["TS"], |c| Value::Int(c.core.started_at), None);
    simple(
        reg,
        &["pp"],
        |_| Value::Int(i64::from(std::process::id())),
        None,
    );
    simple(
        reg,
        &["af"],
        |c| {
            Value::Str(
                if c.recv.src.is_ipv6() {
                    "INET6"
                } else {
                    "INET"
                }
                .to_owned(),
            )
        },
        None,
    );

    // $snd(ip|port|proto|af): where the request is being sent (onsend_route).
    read_only_fields(reg, "snd", "ip, port, proto, af", |field| {
        Some(match field {
            "ip" => |c| c.send_to.map_or(Value::Null, |(_, a)| ip_text(a.ip())),
            "port" => |c| {
                c.send_to
                    .map_or(Value::Null, |(_, a)| Value::Int(i64::from(a.port())))
            },
            "proto" => |c| {
                c.send_to
                    .map_or(Value::Null, |(p, _)| Value::Str(p.as_str().to_owned()))
            },
            "af" => |c| {
                c.send_to.map_or(Value::Null, |(_, a)| {
                    Value::Str(if a.is_ipv6() { "INET6" } else { "INET" }.to_owned())
                })
            },
            _ => return None,
        })
    });

    // The destination set: first branch, all branches, as a Contact list.
    simple(
        reg,
        &["br"],
        |c| {
            c.branches
                .first()
                .map_or(Value::Null, |b| Value::Str(b.uri.clone()))
        },
        None,
    );
    simple(
        reg,
        &["bR"],
        |c| {
            if c.branches.is_empty() {
                Value::Null
            } else {
                Value::Str(
                    c.branches
                        .iter()
                        .map(|b| b.uri.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                )
            }
        },
        None,
    );
    simple(
        reg,
        &["ds"],
        |c| {
            if c.branches.is_empty() {
                Value::Null
            } else {
                Value::Str(
                    c.branches
                        .iter()
                        .map(crate::context::Branch::contact)
                        .collect::<Vec<_>>()
                        .join(", "),
                )
            }
        },
        None,
    );

    for (name, count) in [("hdr", false), ("hdrc", true)] {
        reg.pv(
            name,
            PvDef {
                module: "core",
                writable: false,
                make: Box::new(move |inner| {
                    let Some(n) = inner.filter(|n| !n.trim().is_empty()) else {
                        return Err("needs a header name: $hdr(Name)".to_owned());
                    };
                    let h = Header::new(n);
                    Ok(if count {
                        Box::new(HdrCount(h)) as Box<dyn PvAccess<Sip>>
                    } else {
                        Box::new(HdrPv(h))
                    })
                }),
            },
        );
    }

    // Keywords of core expressions.
    keyword(reg, "uri", |c| {
        if c.is_request() {
            Value::Str(c.ruri_text().into_owned())
        } else {
            Value::Null
        }
    });
    keyword(reg, "from_uri", |c| {
        addr_part(c, false, |a| lossy(a.uri.as_bytes()))
    });
    keyword(reg, "to_uri", |c| {
        addr_part(c, true, |a| lossy(a.uri.as_bytes()))
    });
    keyword(reg, "method", |c| lossy(c.method_bytes()));
    keyword(reg, "status", |c| {
        c.msg
            .status_code()
            .map_or(Value::Null, |s| Value::Int(i64::from(s)))
    });
    keyword(reg, "src_ip", |c| ip_text(c.recv.src.ip()));
    keyword(reg, "src_port", |c| {
        Value::Int(i64::from(c.recv.src.port()))
    });
    keyword(reg, "dst_ip", |c| ip_text(c.recv.local.addr.ip()));
    keyword(reg, "dst_port", |c| {
        Value::Int(i64::from(c.recv.local.addr.port()))
    });
    keyword(reg, "proto", |c| {
        Value::Str(c.recv.proto.via_name().to_owned())
    });
    keyword(reg, "af", |c| {
        Value::Str(
            if c.recv.src.is_ipv6() {
                "INET6"
            } else {
                "INET"
            }
            .to_owned(),
        )
    });

    reg.set_myself(Box::new(|ctx: &mut MsgCtx<'_>, value: &str| {
        ctx.core.is_myself_uri(value)
    }));

    reg.transform_class("uri", uri_class());
    reg.transform_class("nameaddr", nameaddr_class());
    reg.transform_class("tobody", tobody_class());
}

fn tf(func: impl Fn(Value, &[Value]) -> Option<Value> + Send + Sync + 'static) -> TransformFn {
    Arc::new(func)
}

/// Parses a value as a URI (angle brackets allowed) and runs `f` on it.
fn on_uri<R>(v: Value, f: impl FnOnce(&Uri<'_>) -> Option<R>) -> Option<R> {
    let text = v.into_string();
    let t = text.trim().trim_start_matches('<').trim_end_matches('>');
    let uri = Uri::parse(t.as_bytes()).ok()?;
    f(&uri)
}

fn no_params(name: &str, n: usize) -> Result<(), String> {
    if n == 0 {
        Ok(())
    } else {
        Err(format!("{name} takes no parameter"))
    }
}

/// `{uri.user}`, `{uri.host}`, `{uri.port}`, `{uri.params}`, `{uri.param,name}`,
/// `{uri.headers}`, `{uri.transport}`, `{uri.ttl}`, `{uri.uparam}`, `{uri.maddr}`,
/// `{uri.method}`, `{uri.lr}`, `{uri.r2}`, `{uri.scheme}`, `{uri.saor}`, `{uri.suri}`.
fn uri_class() -> TransformClass {
    /// Optional parts of a SIP URI: the text, or the empty string when absent.
    type Part = for<'s> fn(&SipUri<'s>) -> Option<&'s [u8]>;
    const OPTIONAL: [(&str, Part); 6] = [
        ("headers", |s| s.headers()),
        ("transport", |s| s.transport()),
        ("ttl", |s| s.ttl()),
        ("uparam", |s| s.user_param()),
        ("maddr", |s| s.maddr()),
        ("method", |s| s.method()),
    ];
    Box::new(|name, n| {
        if let Some((_, get)) = OPTIONAL.iter().find(|(k, _)| *k == name) {
            no_params(name, n)?;
            let get: Part = *get;
            return Ok(tf(move |v, _| {
                on_uri(v, |uri| {
                    Some(
                        uri.as_sip()
                            .and_then(get)
                            .map_or(Value::Str(String::new()), lossy),
                    )
                })
            }));
        }
        let part: fn(&Uri<'_>, &[Value]) -> Option<Value> = match name {
            "user" => |u, _| Some(uri_user(u)),
            "host" | "domain" => |u, _| Some(uri_host(u)),
            "port" => |u, _| {
                Some(
                    u.as_sip()
                        .and_then(|s| s.port())
                        .map_or(Value::Str(String::new()), |p| Value::Int(i64::from(p))),
                )
            },
            "params" => |u, _| {
                Some(u.as_sip().map_or(Value::Str(String::new()), |s| {
                    lossy(
                        s.params_bytes()
                            .strip_prefix(b";")
                            .unwrap_or(s.params_bytes()),
                    )
                }))
            },
            "param" => |u, p| {
                let want = p.first()?.as_str().into_owned();
                let v = u.as_sip()?.param(want.as_bytes());
                Some(match v {
                    Some(Some(v)) => lossy(v),
                    Some(None) | None => Value::Str(String::new()),
                })
            },
            "lr" => |u, _| {
                Some(Value::Str(if u.as_sip().is_some_and(|s| s.lr()) {
                    "lr".to_owned()
                } else {
                    String::new()
                }))
            },
            "r2" => |u, _| {
                Some(
                    u.as_sip()
                        .and_then(|s| s.param(b"r2"))
                        .map_or(Value::Str(String::new()), |v| {
                            v.map_or(Value::Str(String::new()), lossy)
                        }),
                )
            },
            "scheme" => |u, _| Some(uri_scheme(u)),
            "saor" => |u, _| {
                let s = u.as_sip()?;
                let mut out = format!(
                    "{}:",
                    String::from_utf8_lossy(s.scheme()).to_ascii_lowercase()
                );
                if let Some(user) = s.user() {
                    out.push_str(&String::from_utf8_lossy(user));
                    out.push('@');
                }
                out.push_str(&String::from_utf8_lossy(s.host().as_bytes()));
                Some(Value::Str(out))
            },
            "suri" => |u, _| {
                let s = u.as_sip()?;
                let mut out = format!(
                    "{}:",
                    String::from_utf8_lossy(s.scheme()).to_ascii_lowercase()
                );
                if let Some(user) = s.user() {
                    out.push_str(&String::from_utf8_lossy(user));
                    out.push('@');
                }
                out.push_str(&String::from_utf8_lossy(s.host().as_bytes()));
                if let Some(p) = s.port() {
                    out.push_str(&format!(":{p}"));
                }
                Some(Value::Str(out))
            },
            _ => return Err(format!("unknown transformation uri.{name}")),
        };
        if name == "param" {
            if n != 1 {
                return Err("uri.param takes 1 parameter".to_owned());
            }
        } else {
            no_params(name, n)?;
        }
        Ok(tf(move |v, p| on_uri(v, |uri| part(uri, p))))
    })
}

/// `{nameaddr.name}`, `{nameaddr.uri}`, `{nameaddr.len}`.
fn nameaddr_class() -> TransformClass {
    Box::new(|name, n| {
        no_params(name, n)?;
        let part: fn(&NameAddr<'_>, usize) -> Value = match name {
            "name" => |a, _| opt(a.display_name),
            "uri" => |a, _| lossy(a.uri.as_bytes()),
            "len" => |_, len| Value::Int(i64::try_from(len).unwrap_or(0)),
            "params" => |a, _| lossy(a.params.as_bytes()),
            _ => return Err(format!("unknown transformation nameaddr.{name}")),
        };
        Ok(tf(move |v, _| {
            let text = v.into_string();
            let a = NameAddr::parse(text.trim().as_bytes()).ok()?;
            Some(part(&a, text.len()))
        }))
    })
}

/// `{tobody.uri}`, `{tobody.user}`, `{tobody.host}`, `{tobody.display}`, `{tobody.tag}`,
/// `{tobody.params}`.
fn tobody_class() -> TransformClass {
    Box::new(|name, n| {
        no_params(name, n)?;
        let part: fn(&NameAddr<'_>) -> Value = match name {
            "uri" => |a| lossy(a.uri.as_bytes()),
            "user" => |a| uri_user(&a.uri),
            "host" => |a| uri_host(&a.uri),
            "display" => |a| opt(a.display_name),
            "tag" => |a| opt(a.tag()),
            "params" => |a| lossy(a.params.as_bytes()),
            _ => return Err(format!("unknown transformation tobody.{name}")),
        };
        Ok(tf(move |v, _| {
            let text = v.into_string();
            let a = NameAddr::parse(text.trim().as_bytes()).ok()?;
            Some(part(&a))
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri_tf(name: &str, input: &str, params: &[Value]) -> Option<Value> {
        let t = uri_class()(name, params.len()).unwrap();
        t(Value::from(input), params)
    }

    #[test]
    fn uri_transformations() {
        let u = "<sip:alice:pw@example.com:5070;transport=TCP;maddr=10.0.0.1;lr?subject=x>";
        assert_eq!(uri_tf("user", u, &[]), Some("alice".into()));
        assert_eq!(uri_tf("host", u, &[]), Some("example.com".into()));
        assert_eq!(uri_tf("port", u, &[]), Some(Value::Int(5070)));
        assert_eq!(uri_tf("transport", u, &[]), Some("TCP".into()));
        assert_eq!(uri_tf("maddr", u, &[]), Some("10.0.0.1".into()));
        assert_eq!(uri_tf("headers", u, &[]), Some("subject=x".into()));
        assert_eq!(uri_tf("ttl", u, &[]), Some("".into()));
        assert_eq!(uri_tf("lr", u, &[]), Some("lr".into()));
        assert_eq!(
            uri_tf("param", u, &["maddr".into()]),
            Some("10.0.0.1".into())
        );
        assert_eq!(uri_tf("saor", u, &[]), Some("sip:alice@example.com".into()));
        assert_eq!(
            uri_tf("suri", u, &[]),
            Some("sip:alice@example.com:5070".into())
        );
        assert_eq!(uri_tf("user", "not a uri", &[]), None);
        assert!(uri_class()("nope", 0).is_err());
        assert!(uri_class()("user", 1).is_err());
    }

    #[test]
    fn nameaddr_and_tobody_transformations() {
        let t = nameaddr_class()("name", 0).unwrap();
        assert_eq!(
            t(Value::from("\"Bob\" <sip:bob@b>;tag=1"), &[]),
            Some("\"Bob\"".into())
        );
        let t = nameaddr_class()("uri", 0).unwrap();
        assert_eq!(
            t(Value::from("\"Bob\" <sip:bob@b>;tag=1"), &[]),
            Some("sip:bob@b".into())
        );
        let t = tobody_class()("tag", 0).unwrap();
        assert_eq!(
            t(Value::from("<sip:bob@b>;tag=xyz"), &[]),
            Some("xyz".into())
        );
        let t = tobody_class()("user", 0).unwrap();
        assert_eq!(
            t(Value::from("<sip:bob@b>;tag=xyz"), &[]),
            Some("bob".into())
        );
    }
}
