//! `registrar`: REGISTER processing (`save`), lookups (`lookup`, `lookup_branches`,
//! `registered`), `unregister`, fetched contact profiles (`reg_fetch_contacts`, `$ulc`),
//! on usrloc's tables. The rules are `sable_location::save`; this module reads the REGISTER,
//! applies them under the AOR's bucket lock, tells usrloc's callbacks and replies as
//! Kamailio's registrar does.

use crate::usrloc::{profiles, unix_now, UlEventKind, Usrloc};
use sable_engine::{
    function, int_param, required, send_reply, str_param, take_arg, Core, Counter, Module, MsgCtx,
    ParamError, Sip,
};
use sable_location::{
    aor_of, save, Contact, ContactData, ContactRequest, Matching, RegisterError, RegisterRequest,
    RegistrarConfig, SaveFlags,
};
use sable_script::ast::Literal;
use sable_script::{Arg, ArgError, PvAccess, PvDef, Registry, RouteMask, StrArg, Value};
use sable_sip::{HeaderName, Method, Uri};
use std::sync::Arc;

/// registrar's parameters beyond those of `RegistrarConfig`.
#[derive(Debug, Clone)]
struct RegParams {
    rules: RegistrarConfig,
    append_branches: bool,
    case_sensitive: bool,
    realm_prefix: String,
    use_path: bool,
    retry_after: u32,
    xavp_cfg: Option<String>,
    received_avp: Option<String>,
}

impl Default for RegParams {
    fn default() -> Self {
        RegParams {
            rules: RegistrarConfig::default(),
            append_branches: true,
            case_sensitive: false,
            realm_prefix: String::new(),
            use_path: false,
            retry_after: 0,
            xavp_cfg: None,
            received_avp: None,
        }
    }
}

#[derive(Debug, Default)]
struct RegStats {
    accepted: Arc<Counter>,
    rejected: Arc<Counter>,
}

#[derive(Debug, Default)]
pub struct Registrar {
    p: RegParams,
    ignored: Vec<String>,
    stats: Arc<RegStats>,
}

const REQ_FAIL: RouteMask = RouteMask(RouteMask::REQUEST.0 | RouteMask::FAILURE.0);
const SAVE_ROUTES: RouteMask =
    RouteMask(RouteMask::REQUEST.0 | RouteMask::FAILURE.0 | RouteMask::TM_ONREPLY.0);

fn usrloc(ctx: &MsgCtx<'_>) -> Option<Arc<Usrloc>> {
    ctx.core.service::<Usrloc>()
}

/// A table named in a function call, found once and kept (usrloc and its tables live as
/// long as the server).
#[derive(Debug)]
struct TableRef {
    name: String,
    found: std::sync::OnceLock<(Arc<Usrloc>, Arc<crate::usrloc::Domain>)>,
}

impl TableRef {
    fn new(name: String) -> TableRef {
        TableRef {
            name,
            found: std::sync::OnceLock::new(),
        }
    }

    fn get(&self, ctx: &MsgCtx<'_>) -> Option<(&Arc<Usrloc>, &Arc<crate::usrloc::Domain>)> {
        if self.found.get().is_none() {
            let ul = usrloc(ctx)?;
            let d = ul.domain(&self.name)?;
            let _ = self.found.set((ul, d));
        }
        self.found.get().map(|(u, d)| (u, d))
    }
}

/// The table named by a constant argument (usrloc creates it at first use).
fn table_arg(args: &mut Vec<Arg<Sip>>) -> Result<String, ArgError> {
    Ok(required(args, 1, "table")?
        .const_str()
        .ok_or_else(|| ArgError::new(1, "the table name must be a constant"))?
        .into_owned())
}

/// The AOR of a URI text (user and host), as usrloc keys it.
fn aor_of_uri(text: &str, ul: &Usrloc, p: &RegParams) -> Option<String> {
    let uri = Uri::parse(text.trim().as_bytes()).ok()?;
    let sip = uri.as_sip()?;
    let user = String::from_utf8_lossy(sip.user()?).into_owned();
    let host = String::from_utf8_lossy(sip.host().as_bytes()).into_owned();
    Some(aor_of(
        &user,
        &host,
        ul.cfg.use_domain,
        p.case_sensitive,
        &p.realm_prefix,
    ))
}

/// Sends a registrar reply (through the transaction when there is one).
fn reply(ctx: &mut MsgCtx<'_>, code: u16, reason: &str, headers: &str) -> bool {
    if let (Some(tm), Some(_)) = (ctx.core.tm.get().cloned(), &ctx.tm.tx) {
        let saved = ctx.reply_headers.clone();
        ctx.reply_headers.push_str(headers);
        let ok = tm.reply(ctx, code, reason) == 1;
        ctx.reply_headers = saved;
        return ok;
    }
    match send_reply(ctx, code, reason, headers, b"", None) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("registrar: reply {code} not sent: {e}");
            false
        }
    }
}

/// A 400 for a REGISTER that cannot be read, with its P-Registrar-Error.
fn bad_request(ctx: &mut MsgCtx<'_>, stats: &RegStats, why: &str, no_reply: bool) -> i32 {
    stats.rejected.inc();
    if !no_reply {
        reply(
            ctx,
            400,
            "Bad Request",
            &format!("P-Registrar-Error: {why}\r\n"),
        );
    }
    -1
}

/// The REGISTER of `ctx` read into what `save()` needs.
fn register_request(
    ctx: &mut MsgCtx<'_>,
    aor: String,
    p: &RegParams,
) -> Result<RegisterRequest, &'static str> {
    let msg = &ctx.msg;
    let call_id = msg.call_id().map_err(|_| "Call-ID header not found")?;
    let cseq = msg.cseq().map_err(|_| "CSeq header not found")?;
    let expires_header = match msg.expires() {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => return Err("Expires parse error"),
    };
    let mut star = false;
    let mut contacts = Vec::new();
    if msg.header(HeaderName::Contact).is_some() {
        let list = msg.contacts().map_err(|_| "Contact parse error")?;
        for c in list {
            match c.address() {
                None => star = true,
                Some(a) => contacts.push(ContactRequest {
                    uri: String::from_utf8_lossy(a.uri.as_bytes()).into_owned(),
                    expires: c.expires(),
                    q: c.q().map(i32::from),
                    instance: c
                        .instance()
                        .map(|i| String::from_utf8_lossy(&i).into_owned()),
                    reg_id: c.reg_id(),
                    methods: None,
                }),
            }
        }
        if star && !contacts.is_empty() {
            // Kamailio's message for `*` with other contacts.
            return Err("* used in contact and more than 1 contact");
        }
    }
    let path = if p.use_path {
        let v: Vec<String> = msg
            .headers_named(HeaderName::Path)
            .map(|h| String::from_utf8_lossy(msg.value(h)).into_owned())
            .collect();
        (!v.is_empty()).then(|| v.join(","))
    } else {
        None
    };
    let user_agent = msg
        .user_agent()
        .map(|u| String::from_utf8_lossy(u).into_owned())
        .unwrap_or_default();
    let local = &ctx.recv.local;
    let socket = format!("{}:{}", local.proto.as_str(), local.addr);
    let expires_override = p.xavp_cfg.as_ref().and_then(|x| {
        ctx.xavps
            .item(x, 0)
            .and_then(|i| i.field("expires"))
            .and_then(|v| v.first())
            .map(Value::as_int)
            .and_then(|v| u32::try_from(v).ok())
    });
    let received = p.received_avp.as_ref().and_then(|name| {
        let id = ctx.core.program().map(|pr| pr.avp_names().id(name))?;
        ctx.avps
            .get(id)
            .map(|v| v.to_string())
            .filter(|s| !s.is_empty())
    });
    Ok(RegisterRequest {
        aor,
        call_id: String::from_utf8_lossy(call_id).into_owned(),
        cseq: cseq.number,
        expires_header,
        star,
        contacts,
        expires_override,
        user_agent,
        received,
        path,
        socket: Some(socket),
        cflags: ctx.bflags,
        tcpconn_id: ctx
            .recv
            .conn
            .map_or(-1, |c| i64::try_from(c.0).unwrap_or(-1)),
    })
}

/// `save(table[, flags[, uri]])`.
fn do_save(
    ctx: &mut MsgCtx<'_>,
    table: &TableRef,
    flags: i64,
    uri: Option<String>,
    p: &RegParams,
    stats: &RegStats,
) -> i32 {
    let no_reply = flags & 0x02 != 0;
    if ctx.msg.method() != Some(Method::Register) && ctx.route != RouteMask::TM_ONREPLY {
        return -1;
    }
    let Some((ul, domain)) = table.get(ctx) else {
        return -1;
    };
    let (ul, domain) = (ul.clone(), domain.clone());
    let to_uri = match uri {
        Some(u) => u,
        None => match ctx.msg.to() {
            Ok(t) => String::from_utf8_lossy(t.uri.as_bytes()).into_owned(),
            Err(_) => return bad_request(ctx, stats, "Error while parsing To header", no_reply),
        },
    };
    let Some(aor) = aor_of_uri(&to_uri, &ul, p) else {
        return bad_request(
            ctx,
            stats,
            "Error while extracting Address Of Record",
            no_reply,
        );
    };
    let req = match register_request(ctx, aor.clone(), p) {
        Ok(r) => r,
        Err(why) => return bad_request(ctx, stats, why, no_reply),
    };
    let mut rules = p.rules.clone();
    rules.matching = Matching::from_mode(ul.cfg.matching_mode).unwrap_or_default();
    rules.cseq_delay = ul.cfg.cseq_delay;
    let save_flags = SaveFlags {
        single_contact: flags & 0x04 != 0,
        no_randomize: flags & 0x08 != 0,
    };
    let now = unix_now();
    let mut seed: Option<u64> = None;
    let outcome = domain.modify(&aor, |rec| {
        let saved = save(
            rec,
            &req,
            &rules,
            save_flags,
            now,
            &mut || {
                let s = seed.get_or_insert_with(|| {
                    sable_engine::sip_util::hash64(
                        format!("{aor}{now}{:?}", std::thread::current().id()).as_bytes(),
                    )
                });
                *s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                u32::try_from(*s >> 33).unwrap_or(0)
            },
            &mut || ul.new_ruid(),
        );
        match saved {
            Ok(mut s) => {
                // The reply's list now, the record itself moves into the table.
                let contacts = s.record.reply_contacts(now);
                let record = std::mem::take(&mut s.record);
                Ok((Some(record), Ok((s, contacts))))
            }
            // Refused: the record stays as it was.
            Err(e) => Ok::<_, ()>((None, Err(e))),
        }
    });
    let outcome = match outcome {
        Ok(o) => o,
        Err(()) => return -1,
    };
    match outcome {
        Ok((saved, contacts)) => {
            for c in &saved.deleted {
                ul.notify_from(UlEventKind::Delete, &domain.name, &aor, c, Some(ctx));
            }
            for c in &saved.inserted {
                ul.notify_from(UlEventKind::Insert, &domain.name, &aor, c, Some(ctx));
            }
            for c in &saved.updated {
                ul.notify_from(UlEventKind::Update, &domain.name, &aor, c, Some(ctx));
            }
            stats.accepted.inc();
            if !no_reply {
                let headers = if contacts.is_empty() {
                    String::new()
                } else {
                    format!("Contact: {contacts}\r\n")
                };
                reply(ctx, 200, "OK", &headers);
            }
            saved.result.code()
        }
        Err(e) => {
            stats.rejected.inc();
            if !no_reply {
                let (code, reason) = e.status();
                // Kamailio lists the current bindings in its error replies too.
                let mut headers = String::new();
                if let Some(rec) = domain.get(&aor) {
                    let list = rec.reply_contacts(now);
                    if !list.is_empty() {
                        headers.push_str(&format!("Contact: {list}\r\n"));
                    }
                }
                headers.push_str(&format!("P-Registrar-Error: {e}\r\n"));
                match &e {
                    RegisterError::IntervalTooBrief { min_expires } => {
                        headers.push_str(&format!("Min-Expires: {min_expires}\r\n"));
                    }
                    RegisterError::TooManyContacts if p.retry_after > 0 => {
                        headers.push_str(&format!("Retry-After: {}\r\n", p.retry_after));
                    }
                    _ => {}
                }
                reply(ctx, code, reason, &headers);
            }
            e.code()
        }
    }
}

/// The next hop of a binding: its `received` (NAT), else the first Path entry.
fn next_hop_of(c: &ContactData<'_>) -> Option<String> {
    if let Some(r) = c.received {
        return Some(r.to_owned());
    }
    c.path.and_then(|p| {
        let first = p.split(',').next()?.trim();
        let inner = first
            .strip_prefix('<')
            .and_then(|s| s.split('>').next())
            .unwrap_or(first);
        (!inner.is_empty()).then(|| inner.to_owned())
    })
}

/// `lookup(table[, uri])` (and `lookup_branches`): the bindings of the AOR become the
/// destination set.
fn do_lookup(
    ctx: &mut MsgCtx<'_>,
    table: &TableRef,
    uri: Option<String>,
    p: &RegParams,
    keep_ruri: bool,
) -> i32 {
    let Some((ul, domain)) = table.get(ctx) else {
        return -3;
    };
    let (ul, domain) = (ul.clone(), domain.clone());
    let target = uri.unwrap_or_else(|| ctx.ruri_text().into_owned());
    let Some(aor) = aor_of_uri(&target, &ul, p) else {
        return -1;
    };
    let now = unix_now();
    let Some(rec) = domain.get(&aor) else {
        return -1;
    };
    let valid: Vec<ContactData<'_>> = rec
        .contacts
        .iter()
        .map(Contact::data)
        .filter(|c| c.is_valid(now))
        .collect();
    let Some(first) = valid.first() else {
        return -1;
    };
    let skip = usize::from(!keep_ruri);
    let rest = valid.iter().skip(skip);
    if !keep_ruri {
        ctx.new_uri = Some(first.uri.to_owned());
        ctx.dst_uri = next_hop_of(first);
        ctx.bflags = first.cflags;
    }
    if p.append_branches || keep_ruri {
        for c in rest {
            if ctx.branches.len() >= sable_engine::MAX_BRANCHES {
                break;
            }
            ctx.branches.push(sable_engine::Branch {
                uri: c.uri.to_owned(),
                dst_uri: next_hop_of(c),
                q: u16::try_from(c.q).ok(),
                flags: c.cflags,
                socket: None,
            });
        }
    }
    1
}

/// `$ulc(profile=>attr)`: a contact of a fetched profile.
struct Ulc {
    profile: String,
    attr: String,
}

impl Ulc {
    fn value(&self, k: usize) -> Value {
        profiles::with(&self.profile, |f| {
            let Some(f) = f else {
                return Value::Null;
            };
            let c = f.contacts.get(k).map(Contact::data);
            let text = |v: Option<&str>| v.map_or(Value::Null, Value::from);
            match self.attr.as_str() {
                "aor" => Value::from(f.aor.clone()),
                "domain" => Value::from(f.domain.clone()),
                "aorhash" => Value::Int(i64::from(crate::usrloc::aor_hash(&f.aor))),
                "count" => Value::Int(i64::try_from(f.contacts.len()).unwrap_or(0)),
                _ => match c {
                    None => Value::Null,
                    Some(c) => match self.attr.as_str() {
                        "addr" => Value::from(c.uri),
                        "path" => text(c.path),
                        "received" => text(c.received),
                        "expires" => Value::Int(i64::try_from(c.expires).unwrap_or(0)),
                        "callid" => Value::from(c.call_id),
                        "q" => Value::Int(i64::from(c.q)),
                        "cseq" => Value::Int(i64::from(c.cseq)),
                        "flags" => Value::Int(i64::from(c.flags)),
                        "cflags" => Value::Int(i64::from(c.cflags)),
                        "user_agent" => Value::from(c.user_agent),
                        "socket" => text(c.socket),
                        "modified" => Value::Int(i64::try_from(c.last_modified).unwrap_or(0)),
                        "methods" => Value::Int(i64::from(c.methods)),
                        "ruid" => Value::from(c.ruid.to_string()),
                        "instance" => text(c.instance),
                        "regid" => Value::Int(i64::from(c.reg_id)),
                        "conid" => Value::Int(c.tcpconn_id),
                        _ => Value::Null,
                    },
                },
            }
        })
    }
}

impl PvAccess<Sip> for Ulc {
    fn get(&self, _ctx: &mut MsgCtx<'_>) -> Value {
        self.value(0)
    }

    fn get_at(&self, _ctx: &mut MsgCtx<'_>, index: i64) -> Value {
        match usize::try_from(index) {
            Ok(k) => self.value(k),
            Err(_) => Value::Null,
        }
    }
}

const ULC_ATTRS: [&str; 21] = [
    "aor",
    "domain",
    "aorhash",
    "count",
    "addr",
    "path",
    "received",
    "expires",
    "callid",
    "q",
    "cseq",
    "flags",
    "cflags",
    "user_agent",
    "socket",
    "modified",
    "methods",
    "ruid",
    "instance",
    "regid",
    "conid",
];

impl Module for Registrar {
    fn name(&self) -> &'static str {
        "registrar"
    }

    fn set_param(&mut self, name: &str, value: &Literal) -> Result<(), ParamError> {
        let secs = |v: &Literal| -> Result<u32, ParamError> {
            u32::try_from(int_param(v)?).map_err(|_| ParamError::bad("seconds (>= 0)"))
        };
        let pct = |v: &Literal| -> Result<u32, ParamError> {
            u32::try_from(int_param(v)?)
                .ok()
                .filter(|v| *v <= 100)
                .ok_or_else(|| ParamError::bad("a percentage 0..100"))
        };
        let p = &mut self.p;
        match name {
            "default_expires" => p.rules.default_expires = secs(value)?,
            "default_expires_range" => p.rules.default_expires_range = pct(value)?,
            "expires_range" => p.rules.expires_range = pct(value)?,
            "min_expires" => p.rules.min_expires = secs(value)?,
            "min_expires_mode" => p.rules.min_expires_mode = int_param(value)? != 0,
            "max_expires" => p.rules.max_expires = secs(value)?,
            "max_contacts" => p.rules.max_contacts = secs(value)?,
            "default_q" => {
                let q = int_param(value)?;
                p.rules.default_q = if q < 0 {
                    -1
                } else {
                    i32::try_from(q.min(1000)).unwrap_or(1000)
                };
            }
            "append_branches" => p.append_branches = int_param(value)? != 0,
            "case_sensitive" => p.case_sensitive = int_param(value)? != 0,
            "realm_prefix" => p.realm_prefix = str_param(value)?,
            "use_path" => p.use_path = int_param(value)? != 0,
            "retry_after" => p.retry_after = secs(value)?,
            "xavp_cfg" => p.xavp_cfg = Some(str_param(value)?),
            "received_avp" => {
                let v = str_param(value)?;
                let name = v
                    .trim()
                    .strip_prefix("$avp(")
                    .and_then(|s| s.strip_suffix(')'))
                    .unwrap_or(v.trim())
                    .trim_start_matches("s:")
                    .to_owned();
                p.received_avp = Some(name);
            }
            "received_param"
            | "path_mode"
            | "path_use_received"
            | "path_check_local"
            | "method_filtering"
            | "xavp_rcd"
            | "gruu_enabled"
            | "outbound_mode"
            | "regid_mode"
            | "flow_timer"
            | "contact_max_size"
            | "lookup_filter_mode"
            | "use_expired_contacts"
            | "sock_flag"
            | "sock_hdr_name"
            | "event_callback"
            | "reg_callid_avp"
            | "max_expires_mode"
            | "xavp_cfg_expires" => {
                self.ignored.push(format!(
                    "registrar: parameter {name} has no effect in Sable"
                ));
            }
            _ => return Err(ParamError::Unknown),
        }
        Ok(())
    }

    fn warnings(&self) -> Vec<String> {
        self.ignored.clone()
    }

    fn init(&self, core: &Arc<Core>) -> Result<(), String> {
        let reg = &core.stat_registry;
        reg.adopt_counter("registrar", "accepted_regs", self.stats.accepted.clone());
        reg.adopt_counter("registrar", "rejected_regs", self.stats.rejected.clone());
        for (name, v) in [
            ("default_expire", self.p.rules.default_expires),
            ("default_expires_range", self.p.rules.default_expires_range),
            ("expires_range", self.p.rules.expires_range),
            ("max_contacts", self.p.rules.max_contacts),
            ("max_expires", self.p.rules.max_expires),
        ] {
            reg.computed("registrar", name, move || i64::from(v));
        }
        Ok(())
    }

    fn register(&self, reg: &mut Registry<Sip>) {
        let (p, stats) = (self.p.clone(), self.stats.clone());
        reg.function(
            "save",
            function("registrar", 1, 3, SAVE_ROUTES, move |_, mut args| {
                let table = TableRef::new(table_arg(&mut args)?);
                let flags = match take_arg(&mut args, 0) {
                    Some(a) => Some(a.into_int(2)?),
                    None => None,
                };
                let uri = take_arg(&mut args, 0).map(Arg::into_str);
                let (p, stats) = (p.clone(), stats.clone());
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let f = flags.as_ref().and_then(|f| f.eval(ctx)).unwrap_or(0);
                    let u = uri.as_ref().map(|u| u.eval(ctx).into_owned());
                    do_save(ctx, &table, f, u, &p, &stats)
                }))
            }),
        );
        for (name, keep) in [
            ("lookup", false),
            ("lookup_branches", true),
            ("lookup_to_dset", true),
        ] {
            let p = self.p.clone();
            reg.function(
                name,
                function("registrar", 1, 2, REQ_FAIL, move |_, mut args| {
                    let table = TableRef::new(table_arg(&mut args)?);
                    let uri: Option<StrArg<Sip>> = take_arg(&mut args, 0).map(Arg::into_str);
                    let p = p.clone();
                    Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                        let u = uri.as_ref().map(|u| u.eval(ctx).into_owned());
                        do_lookup(ctx, &table, u, &p, keep)
                    }))
                }),
            );
        }
        let p = self.p.clone();
        reg.function(
            "registered",
            function("registrar", 1, 4, RouteMask::ANY, move |_, mut args| {
                let table = table_arg(&mut args)?;
                let uri: Option<StrArg<Sip>> = take_arg(&mut args, 0).map(Arg::into_str);
                let p = p.clone();
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let Some(ul) = usrloc(ctx) else {
                        return -1;
                    };
                    let target = match &uri {
                        Some(u) => u.eval(ctx).into_owned(),
                        None => ctx.ruri_text().into_owned(),
                    };
                    let (Some(d), Some(aor)) = (ul.domain(&table), aor_of_uri(&target, &ul, &p))
                    else {
                        return -1;
                    };
                    match d.get(&aor) {
                        Some(r) if r.valid_count(unix_now()) > 0 => 1,
                        _ => -1,
                    }
                }))
            }),
        );
        let p = self.p.clone();
        reg.function(
            "unregister",
            function("registrar", 2, 3, RouteMask::ANY, move |_, mut args| {
                let table = table_arg(&mut args)?;
                let uri = required(&mut args, 2, "uri")?.into_str();
                let ruid: Option<StrArg<Sip>> = take_arg(&mut args, 0).map(Arg::into_str);
                let p = p.clone();
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let Some(ul) = usrloc(ctx) else {
                        return -2;
                    };
                    let target = uri.eval(ctx).into_owned();
                    let (Some(d), Some(aor)) = (ul.domain(&table), aor_of_uri(&target, &ul, &p))
                    else {
                        return -1;
                    };
                    match &ruid {
                        None => {
                            ul.remove_aor(&d, &aor);
                            1
                        }
                        Some(r) => {
                            let r = r.eval(ctx).into_owned();
                            if ul.remove_contact(&d, &aor, |c| c.ruid().is(&r)) {
                                1
                            } else {
                                -3
                            }
                        }
                    }
                }))
            }),
        );
        let p = self.p.clone();
        reg.function(
            "reg_fetch_contacts",
            function("registrar", 3, 3, RouteMask::ANY, move |_, mut args| {
                let table = table_arg(&mut args)?;
                let uri = required(&mut args, 2, "uri")?.into_str();
                let profile = required(&mut args, 3, "profile")?
                    .const_str()
                    .ok_or_else(|| ArgError::new(3, "the profile name must be a constant"))?
                    .into_owned();
                let p = p.clone();
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let Some(ul) = usrloc(ctx) else {
                        return -1;
                    };
                    let target = uri.eval(ctx).into_owned();
                    let (Some(d), Some(aor)) = (ul.domain(&table), aor_of_uri(&target, &ul, &p))
                    else {
                        return -1;
                    };
                    let now = unix_now();
                    let contacts: Vec<Contact> = d
                        .get(&aor)
                        .map(|r| r.valid(now).cloned().collect())
                        .unwrap_or_default();
                    let found = !contacts.is_empty();
                    profiles::set(
                        &profile,
                        profiles::Fetched {
                            aor,
                            domain: d.name.clone(),
                            contacts,
                        },
                    );
                    if found {
                        1
                    } else {
                        -1
                    }
                }))
            }),
        );
        reg.function(
            "reg_free_contacts",
            function("registrar", 1, 1, RouteMask::ANY, |_, mut args| {
                let profile = required(&mut args, 1, "profile")?
                    .const_str()
                    .ok_or_else(|| ArgError::new(1, "the profile name must be a constant"))?
                    .into_owned();
                Ok(Box::new(move |_ctx: &mut MsgCtx<'_>| {
                    profiles::clear(&profile);
                    1
                }))
            }),
        );
        reg.function(
            "add_sock_hdr",
            function("registrar", 1, 1, RouteMask::REQUEST, |_, mut args| {
                let name = required(&mut args, 1, "header name")?
                    .const_str()
                    .ok_or_else(|| ArgError::new(1, "the header name must be a constant"))?
                    .into_owned();
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                {
                    return Err(ArgError::new(1, "not a header name"));
                }
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let local = ctx.recv.local.clone();
                    let value = format!("{}:{}", local.proto.as_str(), local.addr);
                    match ctx
                        .edits
                        .append_header(&ctx.msg, name.as_bytes(), value.as_bytes())
                    {
                        Ok(()) => 1,
                        Err(_) => -1,
                    }
                }))
            }),
        );
        reg.pv(
            "ulc",
            PvDef {
                module: "registrar",
                writable: false,
                make: Box::new(|inner| {
                    let inner = inner.map(str::trim).unwrap_or("");
                    let Some((profile, attr)) = inner.split_once("=>") else {
                        return Err("expects $ulc(profile=>attribute)".to_owned());
                    };
                    let attr = attr.trim().to_owned();
                    if !ULC_ATTRS.contains(&attr.as_str()) {
                        return Err(format!("unknown attribute '{attr}'"));
                    }
                    Ok(Box::new(Ulc {
                        profile: profile.trim().to_owned(),
                        attr,
                    }) as Box<dyn PvAccess<Sip>>)
                }),
            },
        );
    }
}
