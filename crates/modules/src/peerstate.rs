//! `peerstate` (seed 000): the state of each peer (idle, ringing, in use, unavailable) kept
//! from the dialog module's callbacks and usrloc's binding changes, on `sable_peerstate`'s
//! cache. Notifies `event_route[peerstate:state_changed]` and the callbacks other modules
//! register through [`Peerstate::register_callback`] on every real change; `peerstate.*`
//! RPCs; per-state statistics.

use crate::dialog::Dialogs;
use crate::usrloc::{UlEvent, UlEventKind, Usrloc};
use parking_lot::{Mutex, RwLock};
use sable_dialog::{CallbackInfo, CallbackKind, Dialog};
use sable_engine::{avp_param, int_param, Core, Module, MsgCtx, ParamError};
use sable_peerstate::{
    rpc, Cache, Candidate, Change, DialogPeers, EventType, PeerState, Side, EVENT_DIALOG,
    EVENT_REGISTRATION,
};
use sable_rpc::{MethodKind, Params, RpcError};
use sable_script::ast::Literal;
use sable_script::{RouteMask, Value};
use serde_json::Value as Json;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};

/// The event route run on every change.
pub const EVENT_ROUTE: &str = "peerstate:state_changed";

/// Dialog variables holding the peers taken from the AVPs (comma-joined), as Kamailio's.
const CALLER_VAR: &str = "caller_var";
const CALLEE_VAR: &str = "callee_var";

/// What a callback is told (the seed's `peerstate_cb_ctx_t`).
#[derive(Debug, Clone, Copy)]
pub struct PeerstateEvent<'a> {
    pub peer: &'a str,
    pub current_state: PeerState,
    pub previous_state: PeerState,
    pub call_count: u32,
    pub is_registered: bool,
    /// The Call-ID (dialog events) or the binding's ruid (registration events).
    pub uniq_id: &'a str,
    pub event_type: EventType,
}

/// A callback of another module (the seed's `register_peerstate_callback`).
pub type PeerstateCallback = Arc<dyn Fn(&PeerstateEvent<'_>) + Send + Sync>;

#[derive(Debug, Clone)]
struct PsParams {
    hash_size: usize,
    cache_expire: u64,
    cleanup_interval: u64,
    use_avps: bool,
    caller_avp: Option<String>,
    callee_avp: Option<String>,
    reg_avp: Option<String>,
    notify_on_trying: bool,
    caller_flag: Option<u32>,
    callee_flag: Option<u32>,
    reg_events: bool,
    dlg_events: bool,
}

impl Default for PsParams {
    fn default() -> Self {
        PsParams {
            hash_size: 4096,
            cache_expire: 3600,
            cleanup_interval: 300,
            use_avps: false,
            caller_avp: None,
            callee_avp: None,
            reg_avp: None,
            notify_on_trying: false,
            caller_flag: None,
            callee_flag: None,
            reg_events: true,
            dlg_events: true,
        }
    }
}

impl PsParams {
    /// The rules between parameters (each value was checked alone when it was set).
    fn check(&self) -> Result<(), String> {
        if self.cache_expire > 0
            && self.cleanup_interval > 0
            && self.cleanup_interval > self.cache_expire
        {
            return Err(format!(
                "cache_cleanup_interval ({}) must not be greater than cache_expire ({})",
                self.cleanup_interval, self.cache_expire
            ));
        }
        if self.use_avps {
            if self.dlg_events && (self.caller_avp.is_none() || self.callee_avp.is_none()) {
                return Err(
                    "use_avps = 1 needs caller_avp and callee_avp (dialog events are on)".into(),
                );
            }
            if self.reg_events && self.reg_avp.is_none() {
                return Err("use_avps = 1 needs reg_avp (registration events are on)".into());
            }
        }
        Ok(())
    }
}

/// A dialog being followed.
#[derive(Debug)]
struct Tracked {
    peers: DialogPeers,
    mute_caller: bool,
    mute_callee: bool,
    call_id: Box<str>,
}

const DIALOG_SHARDS: usize = 64;

/// The module's state, a core service: the cache, the followed dialogs, the callbacks.
pub struct Peerstate {
    p: PsParams,
    cache: Cache,
    /// Followed dialogs by (h_entry, h_id), sharded by h_entry.
    dialogs: Vec<Mutex<HashMap<(u32, u32), Tracked>>>,
    /// Keys of registered AORs that are not the AOR itself (from the REGISTER's To domain
    /// with `use_domain = 0`, or from `reg_avp`), for removals that come without a message
    /// (expiry, RPC).
    reg_keys: Mutex<HashMap<(String, String), String>>,
    callbacks: RwLock<Vec<(u32, PeerstateCallback)>>,
    core: OnceLock<Weak<Core>>,
}

impl std::fmt::Debug for Peerstate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peerstate")
            .field("peers", &self.cache.len())
            .finish()
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The string values of an AVP in a message's context, as peer keys.
fn avp_keys(ctx: &MsgCtx<'_>, name: &str) -> Vec<Box<str>> {
    let Some(program) = ctx.program.as_ref() else {
        return Vec::new();
    };
    let id = program.avp_names().id(name);
    ctx.avps
        .all(id)
        .map(|v| sable_peerstate::normalize_key(&v.as_str()))
        .filter(|k| !k.is_empty())
        .map(String::into_boxed_str)
        .collect()
}

fn uri_keys(uri: &str) -> Vec<Box<str>> {
    sable_peerstate::key_of_uri(uri)
        .map(String::into_boxed_str)
        .into_iter()
        .collect()
}

/// Peers kept in a dialog variable (comma-joined).
fn var_keys(d: &Dialog, var: &str) -> Option<Vec<Box<str>>> {
    let v = d.var(var)?;
    Some(
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Into::into)
            .collect(),
    )
}

impl Peerstate {
    fn new(p: PsParams) -> Peerstate {
        Peerstate {
            cache: Cache::new(p.hash_size),
            p,
            dialogs: (0..DIALOG_SHARDS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
            reg_keys: Mutex::new(HashMap::new()),
            callbacks: RwLock::new(Vec::new()),
            core: OnceLock::new(),
        }
    }

    /// The cache (read it for a peer's state).
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Registers a callback for state changes caused by the events of `event_types`
    /// ([`EVENT_DIALOG`] | [`EVENT_REGISTRATION`]). An empty or unknown mask is an error.
    pub fn register_callback(&self, event_types: u32, cb: PeerstateCallback) -> Result<(), String> {
        if event_types == 0 || event_types & !(EVENT_DIALOG | EVENT_REGISTRATION) != 0 {
            return Err(format!("peerstate: bad event type mask {event_types}"));
        }
        self.callbacks.write().push((event_types, cb));
        Ok(())
    }

    // There are DIALOG_SHARDS shards: the index is taken modulo that.
    #[allow(clippy::indexing_slicing)]
    fn shard(&self, hash: (u32, u32)) -> &Mutex<HashMap<(u32, u32), Tracked>> {
        &self.dialogs[hash.0 as usize % DIALOG_SHARDS]
    }

    /// Tells the event route and the callbacks about a change (nothing for a non-change).
    fn notify(&self, c: &Change, uniq_id: &str, event_type: EventType) {
        if !c.is_change() {
            return;
        }
        if let Some(core) = self.core.get().and_then(Weak::upgrade) {
            run_event_route(&core, c, uniq_id);
        }
        let cbs = self.callbacks.read().clone();
        let ev = PeerstateEvent {
            peer: &c.peer,
            current_state: c.current,
            previous_state: c.previous,
            call_count: c.call_count,
            is_registered: c.registered,
            uniq_id,
            event_type,
        };
        for (mask, cb) in cbs {
            if mask & event_type.bit() != 0 {
                cb(&ev);
            }
        }
    }

    fn notify_dialog(&self, changes: &[(Side, Change)], mute: (bool, bool), call_id: &str) {
        for (side, c) in changes {
            let muted = match side {
                Side::Caller => mute.0,
                Side::Callee => mute.1,
            };
            if !muted {
                self.notify(c, call_id, EventType::Dialog);
            }
        }
    }

    /// `dlg_manage()` made a dialog: decide its peers (AVPs or From/To) and follow it.
    fn dialog_created(&self, d: &mut Dialog, ctx: &MsgCtx<'_>) {
        let mut callers = Vec::new();
        let mut callees = Vec::new();
        if self.p.use_avps {
            if let Some(a) = &self.p.caller_avp {
                callers = avp_keys(ctx, a);
            }
            if let Some(a) = &self.p.callee_avp {
                callees = avp_keys(ctx, a);
            }
            // Kept in the dialog (and its database row) for a restart.
            let join = |v: &[Box<str>]| v.join(",");
            if !callers.is_empty() {
                d.set_var(CALLER_VAR, Some(&join(&callers)));
            }
            if !callees.is_empty() {
                d.set_var(CALLEE_VAR, Some(&join(&callees)));
            }
        }
        if callers.is_empty() {
            callers = uri_keys(d.from_uri());
        }
        if callees.is_empty() {
            callees = uri_keys(d.to_uri());
        }
        if callers.is_empty() && callees.is_empty() {
            tracing::warn!(
                "peerstate: dialog {} has no peer (From and To without a user part)",
                d.id().call_id
            );
            return;
        }
        let flag = |f: Option<u32>| f.is_some_and(|f| ctx.flags & (1 << f) != 0);
        let mut t = Tracked {
            peers: DialogPeers::new(callers, callees),
            mute_caller: flag(self.p.caller_flag),
            mute_callee: flag(self.p.callee_flag),
            call_id: d.id().call_id.as_str().into(),
        };
        let changes = if self.p.notify_on_trying {
            self.cache
                .dialog_event(&mut t.peers, Candidate::Ringing, unix_now())
        } else {
            Vec::new()
        };
        let mute = (t.mute_caller, t.mute_callee);
        self.follow((d.hash().h_entry(), d.hash().h_id()), t);
        self.notify_dialog(&changes, mute, d.id().call_id.as_str());
    }

    /// Follows a dialog (its peers decided) from now on.
    fn follow(&self, hash: (u32, u32), t: Tracked) {
        self.shard(hash).lock().insert(hash, t);
    }

    /// A dialog callback.
    fn dialog_event(&self, kind: CallbackKind, info: &CallbackInfo) {
        let cand = match kind {
            CallbackKind::Early => Candidate::Ringing,
            CallbackKind::Confirmed => Candidate::InUse,
            CallbackKind::Failed
            | CallbackKind::Terminated
            | CallbackKind::Expired
            | CallbackKind::Destroy => Candidate::Ended,
            _ => return,
        };
        self.dialog_candidate((info.hash.h_entry(), info.hash.h_id()), cand);
    }

    /// A followed dialog rang, was confirmed or ended.
    fn dialog_candidate(&self, hash: (u32, u32), cand: Candidate) {
        let (changes, mute, call_id) = {
            let mut shard = self.shard(hash).lock();
            let Some(t) = shard.get_mut(&hash) else {
                return;
            };
            let changes = self.cache.dialog_event(&mut t.peers, cand, unix_now());
            let mute = (t.mute_caller, t.mute_callee);
            let call_id = if cand == Candidate::Ended {
                shard.remove(&hash).map(|t| t.call_id)
            } else {
                Some(t.call_id.clone())
            };
            (changes, mute, call_id.unwrap_or_default())
        };
        self.notify_dialog(&changes, mute, &call_id);
    }

    /// The key of a registration event's peer, and whether it must be remembered.
    fn reg_key(&self, ev: &UlEvent<'_, '_>) -> String {
        let remembered = || {
            self.reg_keys
                .lock()
                .get(&(ev.domain.to_owned(), ev.aor.to_owned()))
                .cloned()
        };
        if self.p.use_avps {
            let from_avp = ev.ctx.and_then(|ctx| {
                self.p
                    .reg_avp
                    .as_deref()
                    .and_then(|a| avp_keys(ctx, a).into_iter().next())
            });
            if let Some(k) = from_avp {
                return k.into_string();
            }
            if let Some(k) = remembered() {
                return k;
            }
        }
        if ev.aor.contains('@') {
            return sable_peerstate::normalize_key(ev.aor);
        }
        // usrloc without domains: the domain of the REGISTER's To URI.
        let to_domain = ev.ctx.and_then(|ctx| {
            let to = ctx.msg.to().ok()?;
            let uri = to.uri.as_sip()?;
            Some(String::from_utf8_lossy(uri.host().as_bytes()).into_owned())
        });
        match to_domain {
            Some(d) => sable_peerstate::join_key(ev.aor, &d),
            None => remembered().unwrap_or_else(|| sable_peerstate::normalize_key(ev.aor)),
        }
    }

    /// A binding changed: the peer is registered while it has at least one valid binding.
    fn registration_event(&self, ul: &Usrloc, ev: &UlEvent<'_, '_>) {
        let now = unix_now();
        let ruid = ev.contact.ruid();
        let others = ul.domain(ev.domain).map_or(0, |d| {
            d.with_record(ev.aor, |r| {
                r.map_or(0, |r| {
                    r.contacts
                        .iter()
                        .filter(|c| c.ruid() != ruid && c.is_valid(now))
                        .count()
                })
            })
        });
        let registered = match ev.kind {
            UlEventKind::Insert | UlEventKind::Update => {
                if !ev.contact.is_valid(now) && others == 0 {
                    false
                } else if others > 0 {
                    return;
                } else {
                    true
                }
            }
            UlEventKind::Delete | UlEventKind::Expire => {
                if others > 0 {
                    return;
                }
                false
            }
        };
        let key = self.reg_key(ev);
        {
            let id = (ev.domain.to_owned(), ev.aor.to_owned());
            let mut keys = self.reg_keys.lock();
            if registered && key != sable_peerstate::normalize_key(ev.aor) {
                keys.insert(id, key.clone());
            } else if !registered {
                keys.remove(&id);
            }
        }
        self.registration_change(&key, registered, &ruid.to_string());
    }

    /// A peer's first binding came (`registered`) or its last one went.
    fn registration_change(&self, key: &str, registered: bool, ruid: &str) {
        let c = self.cache.registration(key, registered, unix_now());
        self.notify(&c, ruid, EventType::Registration);
    }

    /// At start: registrations and dialogs restored from the databases give the peers'
    /// states back (no notifications).
    fn rebuild(&self, dialogs: Option<&Dialogs>, ul: Option<&Usrloc>) -> (usize, usize) {
        let now = unix_now();
        let mut regs = 0;
        if let Some(ul) = ul {
            for d in ul.domains() {
                let (records, _) = d.snapshot();
                for r in records.iter().filter(|r| r.valid_count(now) > 0) {
                    let aor = r.aor().unwrap_or_default();
                    self.cache
                        .registration(&sable_peerstate::normalize_key(aor), true, now);
                    regs += 1;
                }
            }
        }
        let mut calls = Vec::new();
        if let Some(dl) = dialogs {
            dl.for_each(|d| {
                let cand = match d.state().code() {
                    2 => Some(Candidate::Ringing),
                    3 | 4 => Some(Candidate::InUse),
                    1 if self.p.notify_on_trying => Some(Candidate::Ringing),
                    1 => None,
                    _ => return,
                };
                let callers = var_keys(d, CALLER_VAR).unwrap_or_else(|| uri_keys(d.from_uri()));
                let callees = var_keys(d, CALLEE_VAR).unwrap_or_else(|| uri_keys(d.to_uri()));
                let hash = (d.hash().h_entry(), d.hash().h_id());
                calls.push((
                    hash,
                    cand,
                    Tracked {
                        peers: DialogPeers::new(callers, callees),
                        mute_caller: false,
                        mute_callee: false,
                        call_id: d.id().call_id.as_str().into(),
                    },
                ));
            });
        }
        let n = calls.len();
        for (hash, cand, mut t) in calls {
            if let Some(c) = cand {
                self.cache.dialog_event(&mut t.peers, c, now);
            }
            self.follow(hash, t);
        }
        (regs, n)
    }

    /// Number of dialogs followed.
    pub fn dialogs_followed(&self) -> usize {
        self.dialogs.iter().map(|s| s.lock().len()).sum()
    }
}

/// Runs `event_route[peerstate:state_changed]` with this run's four `$avp(ps_*)` only.
fn run_event_route(core: &Core, c: &Change, uniq_id: &str) {
    let Some(program) = core.program() else {
        return;
    };
    let Some(id) = program.event_route(EVENT_ROUTE) else {
        return;
    };
    let Some(local) = sable_engine::first_socket_addr(core) else {
        return;
    };
    // The Call-ID of the made-up request is the event's id when it is a valid one.
    let call_id = if !uniq_id.is_empty() && uniq_id.bytes().all(|b| b.is_ascii_graphic()) {
        uniq_id
    } else {
        "peerstate-event"
    };
    let fake = format!(
        "OPTIONS sip:peerstate@{local} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKpsev\r\nFrom: <sip:peerstate@{local}>;tag=psev\r\nTo: <sip:peerstate@{local}>\r\nCall-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    let names = program.avp_names();
    let avps = [
        (names.id("ps_peer"), c.peer.as_str()),
        (names.id("ps_state"), c.current.name()),
        (names.id("ps_prev_state"), c.previous.name()),
        (names.id("ps_uniq_id"), uniq_id),
    ];
    sable_engine::run_on_local_message(
        core,
        &program,
        id,
        RouteMask::EVENT,
        fake.as_bytes(),
        |ctx| {
            for (id, v) in avps {
                ctx.avps.push(id, Value::from(v));
            }
        },
    );
}

/// The module.
#[derive(Debug, Default)]
pub struct PeerstateModule {
    p: PsParams,
}

fn the(core: &Core) -> Result<Arc<Peerstate>, RpcError> {
    core.service::<Peerstate>()
        .ok_or_else(|| RpcError::new(500, "peerstate is not running"))
}

fn fault((code, text): rpc::Fault) -> RpcError {
    RpcError::new(code, text)
}

impl Module for PeerstateModule {
    fn name(&self) -> &'static str {
        "peerstate"
    }

    fn set_param(&mut self, name: &str, value: &Literal) -> Result<(), ParamError> {
        let p = &mut self.p;
        match name {
            "cache_hash_size" => {
                p.hash_size =
                    sable_peerstate::check_hash_size(int_param(value)?).map_err(ParamError::bad)?;
            }
            "cache_expire" => {
                p.cache_expire = match int_param(value)? {
                    0 => 0,
                    n @ 60.. => n.unsigned_abs(),
                    n => {
                        return Err(ParamError::bad(format!(
                            "0 (never) or at least 60 seconds (got {n})"
                        )))
                    }
                };
            }
            "cache_cleanup_interval" => {
                p.cleanup_interval = match int_param(value)? {
                    0 => 0,
                    n @ 10.. => n.unsigned_abs(),
                    n => {
                        return Err(ParamError::bad(format!(
                            "0 (never) or at least 10 seconds (got {n})"
                        )))
                    }
                };
            }
            "use_avps" => p.use_avps = int_param(value)? != 0,
            "caller_avp" => p.caller_avp = Some(avp_param(value)?),
            "callee_avp" => p.callee_avp = Some(avp_param(value)?),
            "reg_avp" => p.reg_avp = Some(avp_param(value)?),
            "enable_notify_on_trying" => p.notify_on_trying = int_param(value)? != 0,
            "disable_caller_notify_flag" => {
                p.caller_flag = sable_engine::flag_param(value)?;
            }
            "disable_callee_notify_flag" => {
                p.callee_flag = sable_engine::flag_param(value)?;
            }
            // Kamailio's rule: only a value > 0 disables (0 and -1 both leave it on).
            "disable_reg_notify" => p.reg_events = int_param(value)? <= 0,
            "disable_dlg_notify" => p.dlg_events = int_param(value)? <= 0,
            _ => return Err(ParamError::Unknown),
        }
        Ok(())
    }

    fn init(&self, core: &Arc<Core>) -> Result<(), String> {
        if core.service::<Peerstate>().is_some() {
            return Ok(());
        }
        self.p.check()?;
        let dialogs = if self.p.dlg_events {
            Some(core.service::<Dialogs>().ok_or(
                "the dialog module must be loaded (or set disable_dlg_notify to 1)".to_owned(),
            )?)
        } else {
            None
        };
        let ul = if self.p.reg_events {
            Some(core.service::<Usrloc>().ok_or(
                "the usrloc module must be loaded (or set disable_reg_notify to 1)".to_owned(),
            )?)
        } else {
            None
        };
        let ps = Arc::new(Peerstate::new(self.p.clone()));
        let _ = ps.core.set(Arc::downgrade(core));
        let (regs, calls) = ps.rebuild(dialogs.as_deref(), ul.as_deref());
        if regs + calls > 0 {
            tracing::info!(
                "peerstate: {regs} registered peers and {calls} dialogs taken from the restored tables"
            );
        }
        if let Some(dl) = &dialogs {
            let weak = Arc::downgrade(&ps);
            dl.on_create(Arc::new(move |d: &mut Dialog, ctx: &MsgCtx<'_>| {
                if let Some(ps) = weak.upgrade() {
                    ps.dialog_created(d, ctx);
                }
            }));
            let weak = Arc::downgrade(&ps);
            let kinds = [
                CallbackKind::Early,
                CallbackKind::Confirmed,
                CallbackKind::Failed,
                CallbackKind::Terminated,
                CallbackKind::Expired,
                CallbackKind::Destroy,
            ];
            dl.on_events(
                &kinds,
                Arc::new(move |kind, info: &CallbackInfo| {
                    if let Some(ps) = weak.upgrade() {
                        ps.dialog_event(kind, info);
                    }
                }),
            );
        }
        if let Some(ul) = &ul {
            let weak = Arc::downgrade(&ps);
            let weak_ul = Arc::downgrade(ul);
            ul.on_change(Arc::new(move |ev: &UlEvent<'_, '_>| {
                if let (Some(ps), Some(ul)) = (weak.upgrade(), weak_ul.upgrade()) {
                    ps.registration_event(&ul, ev);
                }
            }));
        }
        let reg = &core.stat_registry;
        for state in PeerState::STORED {
            let weak = Arc::downgrade(&ps);
            let name = format!("{}_peers", state.name().to_ascii_lowercase());
            reg.computed("peerstate", &name, move || {
                weak.upgrade().map_or(0, |ps| ps.cache.count_in(state))
            });
        }
        let weak = Arc::downgrade(&ps);
        reg.computed("peerstate", "total_peers", move || {
            weak.upgrade().map_or(0, |ps| ps.cache.stats().total_peers)
        });
        if self.p.cache_expire > 0 && self.p.cleanup_interval > 0 {
            let max_age = self.p.cache_expire;
            sable_engine::spawn_ticker(
                "peerstate-clean",
                std::time::Duration::from_secs(self.p.cleanup_interval),
                &ps,
                core,
                move |ps, _| {
                    let n = ps.cache.expire(unix_now(), max_age);
                    if n > 0 {
                        tracing::debug!("peerstate: {n} idle peers expired from the cache");
                    }
                },
            )
            .map_err(|e| format!("peerstate: {e}"))?;
        }
        core.provide(ps);
        Ok(())
    }

    /// No script functions: RPC, an event route and the callback API only.
    fn register(&self, _reg: &mut sable_script::Registry<sable_engine::Sip>) {}

    fn rpc(&self, registry: &mut sable_rpc::Registry, core: &Arc<Core>) {
        type Render = fn(&Cache, &Params) -> Result<Json, RpcError>;
        let methods: [(&str, &str, Render); 4] = [
            (
                "peerstate.get_peer",
                "The state of one peer: peer@domain.",
                |c, p| rpc::get_peer(c, p.opt_str(0)?).map_err(fault),
            ),
            (
                "peerstate.stats",
                "Peers in the cache, in a call, registered.",
                |c, _| Ok(rpc::stats(c)),
            ),
            (
                "peerstate.list",
                "The peers in one state: NOT_INUSE, INUSE, RINGING or UNAVAILABLE.",
                |c, p| rpc::list(c, p.opt_str(0)?).map_err(fault),
            ),
            ("peerstate.dump", "Every peer.", |c, _| Ok(rpc::dump(c))),
        ];
        for (name, help, render) in methods {
            let c = core.clone();
            let _ = registry.register(
                name,
                help,
                ["struct", "string"],
                MethodKind::Value,
                move |p: &Params| -> Result<Json, RpcError> { render(&the(&c)?.cache, p) },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(m: &mut PeerstateModule, name: &str, v: Literal) -> Result<(), String> {
        m.set_param(name, &v).map_err(|e| e.to_string())
    }

    #[test]
    fn parameters_follow_the_seed_rules() {
        let mut m = PeerstateModule::default();
        assert_eq!(m.p.hash_size, 4096);
        assert_eq!((m.p.cache_expire, m.p.cleanup_interval), (3600, 300));
        assert!(set(&mut m, "cache_hash_size", Literal::Int(8192)).is_ok());
        let e = set(&mut m, "cache_hash_size", Literal::Int(1000)).unwrap_err();
        assert!(e.contains("power of two"), "{e}");
        assert!(set(&mut m, "cache_hash_size", Literal::Int(0)).is_err());
        let e = set(&mut m, "cache_expire", Literal::Int(30)).unwrap_err();
        assert!(e.contains("at least 60"), "{e}");
        assert!(set(&mut m, "cache_expire", Literal::Int(-1)).is_err());
        assert!(set(&mut m, "cache_expire", Literal::Int(0)).is_ok());
        let e = set(&mut m, "cache_cleanup_interval", Literal::Int(5)).unwrap_err();
        assert!(e.contains("at least 10"), "{e}");
        assert!(set(&mut m, "disable_caller_notify_flag", Literal::Int(32)).is_err());
        assert!(set(&mut m, "disable_caller_notify_flag", Literal::Int(10)).is_ok());
        assert_eq!(m.p.caller_flag, Some(10));
        assert!(set(&mut m, "caller_avp", Literal::Str("caller".into())).is_err());
        assert!(set(&mut m, "caller_avp", Literal::Str("$avp(caller)".into())).is_ok());
        assert!(set(&mut m, "no_such", Literal::Int(1)).is_err());
        // Cross rules.
        let mut m = PeerstateModule::default();
        set(&mut m, "cache_expire", Literal::Int(120)).unwrap();
        set(&mut m, "cache_cleanup_interval", Literal::Int(300)).unwrap();
        assert!(m.p.check().unwrap_err().contains("not be greater"));
        set(&mut m, "cache_expire", Literal::Int(0)).unwrap();
        assert!(
            m.p.check().is_ok(),
            "no expiry: the interval does not matter"
        );
        let mut m = PeerstateModule::default();
        set(&mut m, "use_avps", Literal::Int(1)).unwrap();
        assert!(m.p.check().unwrap_err().contains("caller_avp"));
        set(&mut m, "caller_avp", Literal::Str("$avp(a)".into())).unwrap();
        set(&mut m, "callee_avp", Literal::Str("$avp(b)".into())).unwrap();
        assert!(m.p.check().unwrap_err().contains("reg_avp"));
        set(&mut m, "disable_reg_notify", Literal::Int(1)).unwrap();
        assert!(m.p.check().is_ok());
        set(&mut m, "disable_reg_notify", Literal::Int(0)).unwrap();
        assert!(m.p.reg_events, "0 leaves registration events on");
    }

    fn tracked(caller: &str, callee: &str, mute_callee: bool) -> Tracked {
        Tracked {
            peers: DialogPeers::new(vec![caller.into()], vec![callee.into()]),
            mute_caller: false,
            mute_callee,
            call_id: "call-1".into(),
        }
    }

    type Seen = Arc<
        Mutex<
            Vec<(
                String,
                &'static str,
                &'static str,
                u32,
                bool,
                String,
                EventType,
            )>,
        >,
    >;

    fn recorder(ps: &Peerstate, mask: u32) -> Seen {
        let seen: Seen = Arc::default();
        let s = seen.clone();
        ps.register_callback(
            mask,
            Arc::new(move |e: &PeerstateEvent<'_>| {
                s.lock().push((
                    e.peer.to_owned(),
                    e.previous_state.name(),
                    e.current_state.name(),
                    e.call_count,
                    e.is_registered,
                    e.uniq_id.to_owned(),
                    e.event_type,
                ));
            }),
        )
        .unwrap();
        seen
    }

    #[test]
    fn callbacks_see_each_change_once_with_their_mask() {
        let ps = Peerstate::new(PsParams::default());
        let all = recorder(&ps, EVENT_DIALOG | EVENT_REGISTRATION);
        let regs = recorder(&ps, EVENT_REGISTRATION);
        ps.registration_change("b@x", true, "ruid-1");
        ps.registration_change("b@x", true, "ruid-2");
        ps.follow((1, 2), tracked("a@x", "b@x", false));
        ps.dialog_candidate((1, 2), Candidate::Ringing);
        ps.dialog_candidate((1, 2), Candidate::Ringing);
        ps.dialog_candidate((1, 2), Candidate::InUse);
        ps.dialog_candidate((1, 2), Candidate::Ended);
        ps.dialog_candidate((1, 2), Candidate::Ended);
        assert_eq!(ps.dialogs_followed(), 0);
        let all = all.lock().clone();
        let want = [
            (
                "b@x",
                "UNAVAILABLE",
                "NOT_INUSE",
                0,
                true,
                "ruid-1",
                EventType::Registration,
            ),
            (
                "a@x",
                "NOT_INUSE",
                "RINGING",
                1,
                false,
                "call-1",
                EventType::Dialog,
            ),
            (
                "b@x",
                "NOT_INUSE",
                "RINGING",
                1,
                true,
                "call-1",
                EventType::Dialog,
            ),
            (
                "a@x",
                "RINGING",
                "INUSE",
                1,
                false,
                "call-1",
                EventType::Dialog,
            ),
            (
                "b@x",
                "RINGING",
                "INUSE",
                1,
                true,
                "call-1",
                EventType::Dialog,
            ),
            (
                "a@x",
                "INUSE",
                "UNAVAILABLE",
                0,
                false,
                "call-1",
                EventType::Dialog,
            ),
            (
                "b@x",
                "INUSE",
                "NOT_INUSE",
                0,
                true,
                "call-1",
                EventType::Dialog,
            ),
        ];
        let got: Vec<_> = all
            .iter()
            .map(|(p, a, b, n, r, u, t)| (p.as_str(), *a, *b, *n, *r, u.as_str(), *t))
            .collect();
        assert_eq!(got, want);
        assert_eq!(
            regs.lock().len(),
            1,
            "the registration mask sees registrations only"
        );
    }

    #[test]
    fn a_muted_side_is_tracked_but_not_notified() {
        let ps = Peerstate::new(PsParams::default());
        let seen = recorder(&ps, EVENT_DIALOG);
        ps.follow((0, 1), tracked("a@x", "quiet@x", true));
        ps.dialog_candidate((0, 1), Candidate::InUse);
        let peers: Vec<String> = seen.lock().iter().map(|e| e.0.clone()).collect();
        assert_eq!(peers, vec!["a@x".to_owned()]);
        let e = ps.cache().get("quiet@x").unwrap();
        assert_eq!((e.state, e.call_count), (PeerState::InUse, 1));
    }

    fn info(kind: CallbackKind, hash: (u32, u32)) -> CallbackInfo {
        CallbackInfo {
            kind,
            hash: sable_dialog::HashId(hash.0, hash.1),
            id: sable_dialog::DialogId {
                call_id: "call-1".into(),
                from_tag: "f".into(),
                to_tag: None,
            },
            state: sable_dialog::DialogState::Early,
            from_uri: "sip:a@x".into(),
            to_uri: "sip:b@x".into(),
            request_uri: "sip:b@x".into(),
            caller_contact: None,
            callee_contact: None,
            message_flags: 0,
        }
    }

    /// The dialog callbacks peerstate maps: early and confirmed count, a destroy without an
    /// end event takes the count back, kinds it does not use change nothing, and a dialog it
    /// does not follow is ignored.
    #[test]
    fn dialog_callbacks_map_to_candidates() {
        let ps = Peerstate::new(PsParams::default());
        ps.follow((3, 4), tracked("a@x", "b@x", false));
        ps.dialog_event(CallbackKind::Early, &info(CallbackKind::Early, (3, 4)));
        ps.dialog_event(
            CallbackKind::ConfirmedNotAcked,
            &info(CallbackKind::ConfirmedNotAcked, (3, 4)),
        );
        ps.dialog_event(CallbackKind::Early, &info(CallbackKind::Early, (9, 9)));
        let e = ps.cache().get("b@x").unwrap();
        assert_eq!((e.state, e.call_count), (PeerState::Ringing, 1));
        ps.dialog_event(CallbackKind::Destroy, &info(CallbackKind::Destroy, (3, 4)));
        let e = ps.cache().get("b@x").unwrap();
        assert_eq!((e.state, e.call_count), (PeerState::Unavailable, 0));
        assert_eq!(ps.dialogs_followed(), 0);
    }

    #[test]
    fn callback_masks() {
        let ps = Peerstate::new(PsParams::default());
        let cb: PeerstateCallback = Arc::new(|_| {});
        assert!(ps.register_callback(0, cb.clone()).is_err());
        assert!(ps.register_callback(4, cb.clone()).is_err());
        assert!(ps
            .register_callback(EVENT_DIALOG | EVENT_REGISTRATION, cb)
            .is_ok());
    }
}
