//! `dialog`: dialog-stateful tracking on `sable_dialog`'s machines. A dialog is created by
//! `dlg_manage()` (or `dlg_flag` on the INVITE's transaction), follows the replies tm sends
//! upstream (tm events) and the in-dialog requests `loose_route()` recognises by the
//! Record-Route `did` parameter (rr hooks), runs `event_route[dialog:start|end|failed]`,
//! keeps profiles, flags and variables, counts, and is listed by `dlg.list`.
//!
//! Tables: `hash_size` slots by Kamailio's `h_entry` of the Call-ID, each a map by `h_id`
//! under its own lock; one sweeper thread fires the dialogs' deadlines every second.

use parking_lot::Mutex;
use sable_dialog::{
    h_entry, Dialog, DialogAction, DialogConfig, HashId, MatchMode, ProfileLink, Profiles,
    RequestKeys,
};
use sable_engine::tm::TmEvent;
use sable_engine::{
    function, int_param, required, str_param, take_arg, Core, Counter, Gauge, Module, MsgCtx,
    ParamError, RecordRoute, Sip,
};
use sable_rpc::{MethodKind, Params, RpcError};
use sable_script::ast::Literal;
use sable_script::{Arg, ArgError, PvAccess, PvDef, Registry, RouteMask, StrArg, Value};
use sable_sip::{Message, Method};
use serde_json::{json, Value as Json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};

#[derive(Debug, Clone)]
struct DlgParams {
    cfg: DialogConfig,
    hash_size: u32,
    rr_param: String,
    dlg_flag: Option<u32>,
    profiles_no_value: String,
    profiles_with_value: String,
    db_mode: i64,
    db_url: Option<String>,
    db_update_period: u64,
    /// The AVP whose value (seconds) is the dialog's lifetime at creation.
    timeout_avp: Option<String>,
    /// `dlg_match_mode`.
    match_mode: MatchMode,
    /// `detect_spirals`.
    detect_spirals: bool,
    /// `ka_timer`: seconds between two keepalive ticks (0: no keepalives).
    ka_timer: u64,
    /// `ka_interval`: seconds between two keepalives of a dialog (0: none).
    ka_interval: u32,
    /// `ka_failed_limit`: failed keepalives in a row that end a dialog.
    ka_failed_limit: u32,
    /// `dlg_extra_hdrs`: header lines added to the requests the module sends.
    extra_hdrs: String,
    /// `dlg_bridge_controller`: the Referred-By of `dlg_refer()`'s REFER.
    bridge_controller: String,
    /// `dlg_bridge_contact`: the Contact of that REFER.
    bridge_contact: String,
}

impl Default for DlgParams {
    fn default() -> Self {
        DlgParams {
            cfg: DialogConfig::default(),
            hash_size: 4096,
            rr_param: "did".to_owned(),
            dlg_flag: None,
            profiles_no_value: String::new(),
            profiles_with_value: String::new(),
            db_mode: 0,
            db_url: None,
            db_update_period: 60,
            timeout_avp: None,
            match_mode: MatchMode::default(),
            detect_spirals: true,
            ka_timer: 0,
            ka_interval: 0,
            ka_failed_limit: 1,
            extra_hdrs: String::new(),
            bridge_controller: "sip:controller@kamailio.org".to_owned(),
            bridge_contact: "sip:controller@kamailio.org:5064".to_owned(),
        }
    }
}

#[derive(Debug, Default)]
struct DlgStats {
    active: Arc<Gauge>,
    early: Arc<Gauge>,
    processed: Arc<Counter>,
    expired: Arc<Counter>,
    failed: Arc<Counter>,
}

struct Slot {
    next_id: AtomicU32,
    dialogs: Mutex<Bucket>,
}

/// The dialogs of one slot (one `h_entry`), in creation order, each boxed: a slot holds a
/// few dialogs (10,000 calls in 4,096 slots: 2.4 on average), so a list of pointers
/// searched by `h_id` costs less memory than a hash map per slot (no buckets kept empty
/// for the load factor) and keeps Kamailio's per-entry list order for `dlg.list`.
#[derive(Default)]
// Boxed on purpose: the list keeps capacity slack, and slack of pointers is cheap.
#[allow(clippy::vec_box)]
struct Bucket(Vec<Box<Dialog>>);

impl Bucket {
    fn position(&self, id: u32) -> Option<usize> {
        self.0.iter().position(|d| d.hash().h_id() == id)
    }

    fn get(&self, id: &u32) -> Option<&Dialog> {
        self.0.iter().find(|d| d.hash().h_id() == *id).map(|d| &**d)
    }

    fn get_mut(&mut self, id: &u32) -> Option<&mut Dialog> {
        self.0
            .iter_mut()
            .find(|d| d.hash().h_id() == *id)
            .map(|d| &mut **d)
    }

    fn remove(&mut self, id: &u32) -> Option<Box<Dialog>> {
        let at = self.position(*id)?;
        let d = self.0.remove(at);
        if self.0.len() * 4 <= self.0.capacity() {
            self.0.shrink_to(self.0.len() * 2);
        }
        Some(d)
    }

    /// Adds a dialog (its `h_id` is the key).
    fn insert(&mut self, d: Dialog) {
        self.0.push(Box::new(d));
    }

    fn values(&self) -> impl Iterator<Item = &Dialog> {
        self.0.iter().map(|d| &**d)
    }

    fn values_mut(&mut self) -> impl Iterator<Item = &mut Dialog> {
        self.0.iter_mut().map(|d| &mut **d)
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    /// Heap bytes of the list itself (pointers, allocator header), not of the dialogs.
    fn table_bytes(&self) -> usize {
        let cap = self.0.capacity();
        if cap == 0 {
            0
        } else {
            cap * std::mem::size_of::<Box<Dialog>>() + 16
        }
    }
}

/// A listener of dialog callbacks (other modules: created, early, confirmed, terminated,
/// failed, expired...), with the dialog's identities. It runs on the thread of the event,
/// with no dialog lock held.
pub type DialogListener =
    Arc<dyn Fn(sable_dialog::CallbackKind, &sable_dialog::CallbackInfo) + Send + Sync>;

/// A hook of another module run inside `dlg_manage()` when a dialog is created, before the
/// created callbacks: it sees the INVITE's context (AVPs, flags) and may set dialog
/// variables. It runs with no dialog lock held (the dialog is not in the tables yet).
pub type DialogCreateHook = Arc<dyn Fn(&mut Dialog, &MsgCtx<'_>) + Send + Sync>;

/// A request the module sends inside a dialog.
struct Within {
    method: &'static str,
    /// Header lines of this request (CRLF-separated), after `dlg_extra_hdrs`.
    headers: String,
    cseq_skip: u32,
}

impl Within {
    fn plain(method: &'static str) -> Within {
        Within {
            method,
            headers: String::new(),
            cseq_skip: 0,
        }
    }
}

/// The bit of a callback kind in a listener's mask.
fn kind_bit(kind: sable_dialog::CallbackKind) -> u32 {
    1 << (kind as u32)
}

/// The dialog tables, shared by the workers, tm's events, the sweeper and the RPCs.
pub struct Dialogs {
    p: DlgParams,
    slots: Vec<Slot>,
    /// Which dialog an INVITE transaction belongs to (tm events carry the transaction).
    by_tx: Mutex<HashMap<u64, HashId>>,
    /// Dialogs with keepalives on (`dlg_set_property("ka-src"|"ka-dst")`).
    ka: Mutex<std::collections::HashSet<HashId>>,
    profiles: Mutex<Profiles>,
    stats: DlgStats,
    /// Listeners with the callback kinds they want (a bit per kind).
    listeners: parking_lot::RwLock<Vec<(u32, DialogListener)>>,
    create_hooks: parking_lot::RwLock<Vec<DialogCreateHook>>,
    store: Option<DlgStore>,
    /// Actions of dialogs restored from the database, run by the first sweep (once the
    /// transport runs).
    restored: Mutex<Vec<(HashId, Vec<DialogAction>)>>,
    core: std::sync::OnceLock<Weak<Core>>,
}

impl std::fmt::Debug for Dialogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialogs").finish()
    }
}

/// The dialog database (db_mode 1 writes at each change, 2 every `db_update_period`).
struct DlgStore {
    db: Mutex<sable_storage::Database>,
    delayed: bool,
    /// db_mode 2: dialogs changed since the last write, by (h_entry, h_id).
    dirty: Mutex<std::collections::HashSet<(u32, u32)>>,
}

/// The table row of a dialog record.
fn row_of(
    r: sable_dialog::DialogRecord,
) -> (sable_storage::DialogRow, Vec<sable_storage::DialogVarRow>) {
    let vars = r
        .vars
        .iter()
        .map(|(k, v)| sable_storage::DialogVarRow {
            hash_entry: r.hash_entry,
            hash_id: r.hash_id,
            dialog_key: k.clone(),
            dialog_value: v.clone(),
        })
        .collect();
    let row = sable_storage::DialogRow {
        hash_entry: r.hash_entry,
        hash_id: r.hash_id,
        callid: r.callid,
        from_uri: r.from_uri,
        from_tag: r.from_tag,
        to_uri: r.to_uri,
        to_tag: r.to_tag,
        caller_cseq: r.caller_cseq,
        callee_cseq: r.callee_cseq,
        caller_route_set: r.caller_route_set,
        callee_route_set: r.callee_route_set,
        caller_contact: r.caller_contact,
        callee_contact: r.callee_contact,
        caller_sock: r.caller_sock,
        callee_sock: r.callee_sock,
        state: i32::from(r.state),
        start_time: i64::try_from(r.start_time).unwrap_or(0),
        timeout: i64::try_from(r.timeout).unwrap_or(0),
        sflags: r.sflags,
        iflags: r.iflags,
        toroute_name: r.toroute_name,
        req_uri: r.req_uri,
        xdata: r.xdata,
    };
    (row, vars)
}

/// The dialog record of a table row.
fn record_of(
    row: sable_storage::DialogRow,
    vars: Vec<sable_storage::DialogVarRow>,
) -> sable_dialog::DialogRecord {
    sable_dialog::DialogRecord {
        hash_entry: row.hash_entry,
        hash_id: row.hash_id,
        callid: row.callid,
        from_uri: row.from_uri,
        from_tag: row.from_tag,
        to_uri: row.to_uri,
        to_tag: row.to_tag,
        caller_cseq: row.caller_cseq,
        callee_cseq: row.callee_cseq,
        caller_route_set: row.caller_route_set,
        callee_route_set: row.callee_route_set,
        caller_contact: row.caller_contact,
        callee_contact: row.callee_contact,
        caller_sock: row.caller_sock,
        callee_sock: row.callee_sock,
        state: u8::try_from(row.state).unwrap_or(0),
        start_time: u64::try_from(row.start_time).unwrap_or(0),
        timeout: u64::try_from(row.timeout).unwrap_or(0),
        sflags: row.sflags,
        iflags: row.iflags,
        toroute_name: row.toroute_name,
        req_uri: row.req_uri,
        xdata: row.xdata,
        vars: vars
            .into_iter()
            .map(|v| (v.dialog_key, v.dialog_value))
            .collect(),
    }
}

/// Whether a dialog in this state is kept in the database (confirmed ones only).
fn stored_state(d: &Dialog) -> bool {
    matches!(d.state().code(), 3 | 4)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Dialogs {
    fn slot(&self, entry: u32) -> Option<&Slot> {
        self.slots.get(entry as usize)
    }

    /// Runs `f` on the dialog `hash`, then acts on what it returned (no lock held then).
    fn with<R>(
        &self,
        core: &Core,
        hash: HashId,
        f: impl FnOnce(&mut Dialog) -> (R, Vec<DialogAction>),
        msg: Option<&[u8]>,
    ) -> Option<R> {
        let slot = self.slot(hash.h_entry())?;
        let (out, actions, snapshot) = {
            let mut m = slot.dialogs.lock();
            let d = m.get_mut(&hash.h_id())?;
            let (out, actions) = f(d);
            let removed = d.is_removed();
            let snapshot = (!actions.is_empty()).then(|| d.clone());
            if removed {
                m.remove(&hash.h_id());
            }
            (out, actions, snapshot)
        };
        if let Some(d) = snapshot {
            self.changed(&d);
            self.act(core, &d, actions, msg);
        }
        Some(out)
    }

    /// A dialog changed: written now (db_mode 1) or marked for the next write (2).
    fn changed(&self, d: &Dialog) {
        let Some(store) = &self.store else {
            return;
        };
        let key = (d.hash().h_entry(), d.hash().h_id());
        if store.delayed {
            store.dirty.lock().insert(key);
            return;
        }
        let db = store.db.lock();
        let done = if stored_state(d) {
            let (row, vars) = row_of(d.to_record());
            db.upsert_dialog(&row, &vars)
        } else {
            db.delete_dialog(key.0, key.1).map(drop)
        };
        if let Err(e) = done {
            tracing::error!("dialog: database write failed: {e}");
        }
    }

    /// db_mode 2: writes the dialogs changed since the last time, in one transaction.
    fn flush(&self) {
        let Some(store) = &self.store else {
            return;
        };
        let keys: Vec<(u32, u32)> = store.dirty.lock().drain().collect();
        if keys.is_empty() {
            return;
        }
        let mut changes = Vec::with_capacity(keys.len());
        for (e, i) in keys {
            let now_there = self.slot(e).and_then(|s| {
                s.dialogs
                    .lock()
                    .get(&i)
                    .filter(|d| stored_state(d))
                    .map(Dialog::to_record)
            });
            changes.push(match now_there {
                Some(r) => {
                    let (row, vars) = row_of(r);
                    sable_storage::DialogChange::Upsert {
                        row: Box::new(row),
                        vars,
                    }
                }
                None => sable_storage::DialogChange::Delete {
                    hash_entry: e,
                    hash_id: i,
                },
            });
        }
        if let Err(e) = store.db.lock().apply_dialog_batch(&changes) {
            tracing::error!(
                "dialog: database write-back of {} dialogs failed: {e}",
                changes.len()
            );
        }
    }

    /// Loads the confirmed dialogs of the database (start-up).
    fn load(&self) -> Result<usize, String> {
        let Some(store) = &self.store else {
            return Ok(0);
        };
        let rows = store.db.lock().load_dialogs().map_err(|e| e.to_string())?;
        let now = unix_now();
        let mut n = 0;
        for (row, vars) in rows {
            let (e, i) = (row.hash_entry, row.hash_id);
            let Some(slot) = self.slot(e) else {
                tracing::warn!(
                    "dialog: stored dialog {e}:{i} does not fit hash_size {}: skipped",
                    self.p.hash_size
                );
                continue;
            };
            let (d, actions) = match Dialog::from_record(record_of(row, vars), now, &self.p.cfg) {
                Ok(x) => x,
                Err(err) => {
                    tracing::warn!("dialog: stored dialog {e}:{i} not restored: {err}");
                    continue;
                }
            };
            {
                let mut profiles = self.profiles.lock();
                for link in d.profiles() {
                    let _ = profiles.add(link);
                }
            }
            if i >= slot.next_id.load(Ordering::Relaxed) {
                slot.next_id.store(i.wrapping_add(1), Ordering::Relaxed);
            }
            self.stats.active.add(1);
            slot.dialogs.lock().insert(d);
            if !actions.is_empty() {
                self.restored.lock().push((HashId(e, i), actions));
            }
            n += 1;
        }
        Ok(n)
    }

    /// Adds a listener of every dialog callback.
    pub fn on_change(&self, listener: DialogListener) {
        self.listeners.write().push((u32::MAX, listener));
    }

    /// Adds a listener of some kinds of callbacks only (the others cost it nothing).
    pub fn on_events(&self, kinds: &[sable_dialog::CallbackKind], listener: DialogListener) {
        let mask = kinds.iter().fold(0, |m, k| m | kind_bit(*k));
        self.listeners.write().push((mask, listener));
    }

    /// Someone listens to `kind`.
    fn listened(&self, kind: sable_dialog::CallbackKind) -> bool {
        let bit = kind_bit(kind);
        self.listeners.read().iter().any(|(m, _)| m & bit != 0)
    }

    /// Adds a hook run on each dialog `dlg_manage()` creates (see [`DialogCreateHook`]).
    pub fn on_create(&self, hook: DialogCreateHook) {
        self.create_hooks.write().push(hook);
    }

    /// Runs `f` on every dialog in the tables (under each slot's lock in turn: `f` must not
    /// call back into the dialog module).
    pub fn for_each(&self, mut f: impl FnMut(&Dialog)) {
        for slot in &self.slots {
            for d in slot.dialogs.lock().values() {
                f(d);
            }
        }
    }

    fn tell(&self, d: &Dialog, kind: sable_dialog::CallbackKind) {
        let bit = kind_bit(kind);
        let listeners: Vec<DialogListener> = self
            .listeners
            .read()
            .iter()
            .filter(|(m, _)| m & bit != 0)
            .map(|(_, l)| l.clone())
            .collect();
        if listeners.is_empty() {
            return;
        }
        let info = d.callback_info(kind);
        for l in listeners {
            l(kind, &info);
        }
    }

    /// What the machine asked for: callbacks, statistics, event routes, profile releases.
    fn act(&self, core: &Core, d: &Dialog, actions: Vec<DialogAction>, msg: Option<&[u8]>) {
        for a in actions {
            if let Some(kind) = a.callback() {
                self.tell(d, kind);
            }
            match a {
                DialogAction::Early { first: true, .. } => self.stats.early.add(1),
                DialogAction::Started { was_early, .. } => {
                    self.stats.active.add(1);
                    if was_early {
                        self.stats.early.sub(1);
                    }
                    run_event(core, "dialog:start", d, msg);
                }
                DialogAction::Failed { was_early, .. } => {
                    self.stats.failed.inc();
                    if was_early {
                        self.stats.early.sub(1);
                    }
                    run_event(core, "dialog:failed", d, msg);
                }
                DialogAction::Ended { .. } => {
                    self.stats.active.sub(1);
                    run_event(core, "dialog:end", d, msg);
                }
                DialogAction::Expired => {
                    self.stats.active.sub(1);
                    self.stats.expired.inc();
                    run_event(core, "dialog:end", d, None);
                }
                DialogAction::SendBye { side } => self.send_bye(core, d, side),
                DialogAction::TimeoutRoute { route } => run_timeout_route(core, &route, d),
                DialogAction::LeftProfiles { links } => {
                    self.profiles.lock().release(&links);
                }
                _ => {}
            }
        }
    }

    /// Sends a BYE to one side of `d` through a tm transaction; its final reply ends the
    /// dialog (`LocalByeDone`).
    fn send_bye(&self, core: &Core, d: &Dialog, side: sable_dialog::Side) {
        self.send_within(
            core,
            d,
            side,
            Within::plain("BYE"),
            |dl, core, hash, _code| {
                let cfg = dl.p.cfg.clone();
                dl.with(
                    core,
                    hash,
                    |d| {
                        let a = d.handle(sable_dialog::DialogEvent::LocalByeDone, unix_now(), &cfg);
                        ((), a)
                    },
                    None,
                );
            },
        );
    }

    /// Sends a keepalive OPTIONS to one side; its final reply (408 on a local timeout)
    /// goes back to the dialog.
    fn send_keepalive(&self, core: &Core, d: &Dialog, side: sable_dialog::Side) {
        let ka = Within::plain("OPTIONS");
        self.send_within(core, d, side, ka, move |dl, core, hash, code| {
            let cfg = dl.p.cfg.clone();
            let limit = dl.p.ka_failed_limit;
            dl.with(
                core,
                hash,
                |d| {
                    let a = d.on_keepalive_reply(side, code, unix_now(), limit, &cfg);
                    ((), a)
                },
                None,
            );
        });
    }

    /// Sends a request inside `d` to one side through a tm transaction (the route set
    /// towards it, else its Contact); `done` runs with the final status.
    fn send_within(
        &self,
        core: &Core,
        d: &Dialog,
        side: sable_dialog::Side,
        req: Within,
        done: impl FnOnce(&Dialogs, &Core, HashId, u16) + Send + 'static,
    ) -> bool {
        let Within {
            method,
            headers,
            cseq_skip,
        } = req;
        let Some(tm) = core.tm.get().cloned() else {
            return false;
        };
        let first_hop = d
            .route_set(side)
            .next()
            .map(|r| {
                r.trim()
                    .trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap_or("")
                    .to_owned()
            })
            .filter(|r| !r.is_empty())
            .or_else(|| d.contact(side).map(str::to_owned));
        let Some(hop) = first_hop else {
            tracing::warn!(
                "dialog {}: no target for a {method} to the {side:?}",
                d.hash().did()
            );
            return false;
        };
        let hash = d.hash();
        let dialog = d.clone();
        let weak = self.core.get().cloned();
        let me = core.service::<Dialogs>().map(|s| Arc::downgrade(&s));
        let callback: sable_engine::tm::UacCallback = Box::new(move |code, _reply| {
            let (Some(dl), Some(core)) =
                (me.and_then(|w| w.upgrade()), weak.and_then(|w| w.upgrade()))
            else {
                return;
            };
            done(&dl, &core, hash, code);
        });
        let extra = self.p.extra_hdrs.clone();
        let sent = tm.uac_start_with(
            core,
            &hop,
            |branch, via| {
                let p = sable_dialog::ByeParams {
                    transport: "UDP",
                    via_host_port: via,
                    branch,
                    extra_headers: &extra,
                    cseq_skip,
                };
                dialog
                    .build_request_with(method, side, &p, &headers)
                    .map_err(|e| e.to_string())
            },
            Some(callback),
        );
        match sent {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(
                    "dialog {}: {method} to the {side:?} not sent: {e}",
                    hash.did()
                );
                false
            }
        }
    }

    /// `dlg_refer(side, to)`, as Kamailio's code does it: `side` is the party that hands
    /// the call over; the other party gets a REFER (Refer-To: `to`, Referred-By the
    /// controller, our Contact) inside the dialog, and a BYE once the REFER has a final
    /// reply, whatever it is. The dialog itself is left as it is.
    fn refer(&self, core: &Core, d: &Dialog, side: sable_dialog::Side, to: &str) -> bool {
        let target = side.other();
        let headers = format!(
            "Referred-By: {}\r\nRefer-To: {to}\r\nContact: <{}>",
            self.p.bridge_controller, self.p.bridge_contact
        );
        let snapshot = d.clone();
        let refer = Within {
            method: "REFER",
            headers,
            cseq_skip: 0,
        };
        self.send_within(core, d, target, refer, move |dl, core, _hash, code| {
            tracing::debug!("dialog: REFER answered {code}, BYE to the {target:?}");
            let bye = Within {
                method: "BYE",
                headers: String::new(),
                cseq_skip: 1,
            };
            dl.send_within(core, &snapshot, target, bye, |_, _, _, _| {});
        })
    }

    /// The keepalive tick (every `ka_timer` seconds): OPTIONS to the sides whose
    /// `ka_interval` ran out, in the dialogs with keepalives on.
    fn keepalives(&self, core: &Core) {
        let interval = self.p.ka_interval;
        let now = unix_now();
        let hashes: Vec<HashId> = self.ka.lock().iter().copied().collect();
        for hash in hashes {
            let Some(slot) = self.slot(hash.h_entry()) else {
                continue;
            };
            let due = {
                let mut m = slot.dialogs.lock();
                match m.get_mut(&hash.h_id()) {
                    Some(d) if d.state().code() != 5 => {
                        let sides = d.keepalives_due(now, interval);
                        (sides != [false, false]).then(|| (sides, d.clone()))
                    }
                    _ => {
                        self.ka.lock().remove(&hash);
                        None
                    }
                }
            };
            if let Some((sides, d)) = due {
                for (on, side) in sides
                    .into_iter()
                    .zip([sable_dialog::Side::Caller, sable_dialog::Side::Callee])
                {
                    if on {
                        self.send_keepalive(core, &d, side);
                    }
                }
            }
        }
    }

    /// Ends a confirmed dialog from here: BYE to both sides (`dlg.terminate_dlg`).
    fn terminate(&self, core: &Core, hash: HashId) -> Result<(), String> {
        let sides = [sable_dialog::Side::Caller, sable_dialog::Side::Callee];
        self.with(
            core,
            hash,
            |d| match d.terminate(&sides) {
                Ok(a) => (Ok(()), a),
                Err(e) => (Err(e.to_string()), Vec::new()),
            },
            None,
        )
        .unwrap_or_else(|| Err("no such dialog".to_owned()))
    }

    /// Creates the dialog of an initial INVITE; gives its id.
    fn create(&self, ctx: &mut MsgCtx<'_>) -> Option<HashId> {
        if let Some((e, i)) = ctx.dialog {
            return Some(HashId(e, i));
        }
        let to_tag = ctx.msg.to().ok()?.tag().is_some_and(|t| !t.is_empty());
        if to_tag {
            // dlg_manage() on an in-dialog request: matched by Call-ID and tags.
            let m = self.find(ctx, MatchMode::TagsOnly, None)?;
            self.within(ctx, m);
            return Some(m.hash);
        }
        if ctx.msg.method() != Some(Method::Invite) {
            return None;
        }
        let call_id = ctx.msg.call_id().ok()?;
        let entry = h_entry(call_id, self.p.hash_size);
        let slot = self.slot(entry)?;
        if self.p.detect_spirals {
            let from_tag = ctx.msg.from().ok()?.tag().unwrap_or_default();
            let spiral = slot
                .dialogs
                .lock()
                .values()
                .find(|d| sable_dialog::is_spiral(d, call_id, from_tag, b""))
                .map(|d| {
                    (
                        d.hash(),
                        self.listened(sable_dialog::CallbackKind::Spiraled)
                            .then(|| d.clone()),
                    )
                });
            if let Some((hash, snapshot)) = spiral {
                // The same INVITE came back through this proxy: the dialog it already has.
                tracing::debug!("dialog {}: spiraled INVITE", hash.did());
                if let Some(d) = snapshot {
                    self.tell(&d, sable_dialog::CallbackKind::Spiraled);
                }
                ctx.dialog = Some((hash.h_entry(), hash.h_id()));
                return Some(hash);
            }
        }
        let id = slot.next_id.fetch_add(1, Ordering::Relaxed);
        let hash = HashId(entry, id);
        let now = unix_now();
        let (mut dialog, _) = match Dialog::from_invite(hash, &ctx.msg, now, &self.p.cfg) {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!("dialog: not created: {e}");
                return None;
            }
        };
        dialog.set_message_flags(ctx.flags);
        if let Some(avp) = &self.p.timeout_avp {
            let secs = ctx
                .program
                .as_ref()
                .map(|p| p.avp_names().id(avp))
                .and_then(|id| ctx.avps.get(id))
                .map(Value::as_int)
                .and_then(|v| u32::try_from(v).ok());
            if let Some(secs) = secs.filter(|s| *s > 0) {
                let _ = dialog.set_timeout(secs, now, &self.p.cfg);
            }
        }
        let hooks = self.create_hooks.read().clone();
        for hook in hooks {
            hook(&mut dialog, ctx);
        }
        let snapshot = self
            .listened(sable_dialog::CallbackKind::Created)
            .then(|| dialog.clone());
        slot.dialogs.lock().insert(dialog);
        // Kamailio counts every dialog created (answered or not) as processed.
        self.stats.processed.inc();
        if let Some(d) = snapshot {
            self.tell(&d, sable_dialog::CallbackKind::Created);
        }
        ctx.dialog = Some((entry, id));
        if self.p.match_mode == MatchMode::TagsOnly {
            // dlg_match_mode 2: nothing in the Record-Route.
            return Some(hash);
        }
        // The Record-Route carries the dialog's id (`;did=...`).
        let param = format!(
            ";{}",
            hash.rr_param(&self.p.rr_param).trim_start_matches(';')
        );
        match &mut ctx.record_route {
            Some(rr) => rr.params.push_str(&param),
            None => {
                ctx.record_route = Some(RecordRoute {
                    params: param,
                    ..RecordRoute::default()
                });
            }
        }
        Some(hash)
    }

    /// tm told something.
    fn on_tm(&self, event: &TmEvent<'_, '_>) {
        let Some(core) = self.core.get().and_then(Weak::upgrade) else {
            return;
        };
        match event {
            TmEvent::Created { tx, ctx } => {
                if !tx.invite {
                    return;
                }
                let hash = ctx.dialog.map(|(e, i)| HashId(e, i));
                if let Some(h) = hash {
                    // Only the first transaction of the dialog (not a spiral's) follows it.
                    let first = self.slot(h.h_entry()).is_some_and(|slot| {
                        slot.dialogs
                            .lock()
                            .get_mut(&h.h_id())
                            .is_some_and(Dialog::bind_transaction)
                    });
                    if first {
                        self.by_tx.lock().insert(tx.id, h);
                    }
                } else if self.p.dlg_flag.is_some_and(|f| ctx.flags & (1 << f) != 0) {
                    // dlg_flag: the dialog of a transaction nobody called dlg_manage() for.
                    tracing::debug!(
                        "dialog: dlg_flag set on a transaction; call dlg_manage() before t_relay()"
                    );
                }
            }
            TmEvent::ReplySent { tx, code, reply } => {
                let Some(h) = self.by_tx.lock().get(&tx.id).copied() else {
                    return;
                };
                if *code < 101 {
                    return;
                }
                let Ok(msg) = Message::parse(reply) else {
                    return;
                };
                let cfg = self.p.cfg.clone();
                self.with(
                    &core,
                    h,
                    |d| {
                        let actions = d.on_reply(&msg, 1, unix_now(), &cfg).unwrap_or_default();
                        ((), actions)
                    },
                    Some(reply),
                );
            }
            TmEvent::Freed { tx } => {
                let h = self.by_tx.lock().remove(&tx.id);
                if let Some(h) = h {
                    let cfg = self.p.cfg.clone();
                    self.with(
                        &core,
                        h,
                        |d| {
                            let a = d.handle(
                                sable_dialog::DialogEvent::TransactionDeleted,
                                unix_now(),
                                &cfg,
                            );
                            ((), a)
                        },
                        None,
                    );
                }
            }
        }
    }

    /// `loose_route()` consumed our Route: match the request to its dialog as
    /// `dlg_match_mode` says (the `did` of that Route, and/or Call-ID and tags), then feed
    /// it to the dialog.
    fn on_route(&self, ctx: &mut MsgCtx<'_>) {
        if ctx.dialog.is_some() {
            return;
        }
        let did = ctx.loose_route_uri.as_deref().and_then(|u| {
            let key = format!(";{}=", self.p.rr_param);
            let at = u.find(&key)? + key.len();
            let rest = u.get(at..)?;
            let end = rest.find([';', '>', '?']).unwrap_or(rest.len());
            rest.get(..end).map(str::to_owned)
        });
        if let Some(m) = self.find(ctx, self.p.match_mode, did.as_deref()) {
            self.within(ctx, m);
        }
    }

    /// The dialog with this Call-ID and these tags (either direction).
    fn by_tags(&self, call_id: &str, ftag: &str, ttag: &str) -> Option<HashId> {
        let entry = h_entry(call_id.as_bytes(), self.p.hash_size);
        self.slot(entry)?
            .dialogs
            .lock()
            .values()
            .find(|d| {
                d.matches(call_id.as_bytes(), ftag.as_bytes(), ttag.as_bytes())
                    .is_some()
            })
            .map(Dialog::hash)
    }

    /// The dialog of an in-dialog request (Kamailio's `dlg_onroute` matching, by
    /// [`sable_dialog::match_request`]'s rules), locking one slot at a time: first the
    /// `did`'s, then the Call-ID's.
    fn find(
        &self,
        ctx: &MsgCtx<'_>,
        mode: MatchMode,
        did: Option<&str>,
    ) -> Option<sable_dialog::Match> {
        let keys = RequestKeys {
            call_id: ctx.msg.call_id().ok()?,
            from_tag: ctx.msg.from().ok()?.tag().unwrap_or_default(),
            to_tag: ctx.msg.to().ok()?.tag().unwrap_or_default(),
            did: did.map(str::as_bytes),
        };
        if mode != MatchMode::TagsOnly {
            if let Some(raw) = keys.did {
                // A did that is not one: no match, whatever the mode (as Kamailio).
                let hash = HashId::parse_did(raw).ok()?;
                let found = self.slot(hash.h_entry()).and_then(|slot| {
                    let m = slot.dialogs.lock();
                    sable_dialog::match_request(
                        MatchMode::DidOnly,
                        &keys,
                        |h| m.get(&h.h_id()),
                        |_| std::iter::empty(),
                    )
                });
                if found.is_some() || mode == MatchMode::DidOnly {
                    return found;
                }
            } else if mode == MatchMode::DidOnly {
                return None;
            }
        }
        let slot = self.slot(h_entry(keys.call_id, self.p.hash_size))?;
        let m = slot.dialogs.lock();
        sable_dialog::match_request(MatchMode::TagsOnly, &keys, |_| None, |_| m.values())
    }

    /// Feeds an in-dialog request to its dialog (matched in `m.direction`) and acts on
    /// what it says; the dialog becomes the message's.
    fn within(&self, ctx: &mut MsgCtx<'_>, m: sable_dialog::Match) {
        let Some(core) = self.core.get().and_then(Weak::upgrade) else {
            return;
        };
        let hash = m.hash;
        ctx.dialog = Some((hash.h_entry(), hash.h_id()));
        let cfg = self.p.cfg.clone();
        let bytes = ctx.msg.buffer().to_vec();
        let msg = &ctx.msg;
        let now = unix_now();
        let result = self.slot(hash.h_entry()).and_then(|slot| {
            let mut g = slot.dialogs.lock();
            let d = g.get_mut(&hash.h_id())?;
            let actions = d
                .on_request(msg, m.direction, now, &cfg)
                .unwrap_or_default();
            let removed = d.is_removed();
            let snapshot = (!actions.is_empty()).then(|| d.clone());
            if removed {
                g.remove(&hash.h_id());
            }
            Some((actions, snapshot))
        });
        if let Some((actions, Some(d))) = result {
            self.changed(&d);
            self.act(&core, &d, actions, Some(&bytes));
        }
    }

    /// The sweeper: deadlines that passed.
    fn sweep(&self, core: &Core) {
        // Dialogs restored at start whose timeout passed while the server was down.
        let restored = std::mem::take(&mut *self.restored.lock());
        for (hash, actions) in restored {
            let snapshot = self
                .slot(hash.h_entry())
                .and_then(|s| s.dialogs.lock().get(&hash.h_id()).cloned());
            if let Some(d) = snapshot {
                self.act(core, &d, actions, None);
            }
        }
        let now = unix_now();
        let cfg = self.p.cfg.clone();
        for (entry, slot) in self.slots.iter().enumerate() {
            let due: Vec<(u32, u64)> = slot
                .dialogs
                .lock()
                .values()
                .filter_map(|d| {
                    d.deadline()
                        .filter(|(at, _)| *at <= now)
                        .map(|_| (d.hash().h_id(), d.timer_generation()))
                })
                .collect();
            for (id, generation) in due {
                let hash = HashId(u32::try_from(entry).unwrap_or(0), id);
                self.with(
                    core,
                    hash,
                    |d| ((), d.on_timer(now, generation, &cfg)),
                    None,
                );
            }
        }
    }

    /// Every dialog (copies).
    fn all(&self) -> Vec<Dialog> {
        self.slots
            .iter()
            .flat_map(|s| s.dialogs.lock().values().cloned().collect::<Vec<_>>())
            .collect()
    }

    fn count(&self) -> usize {
        self.slots.iter().map(|s| s.dialogs.lock().len()).sum()
    }

    /// Own accounting: (dialogs, bytes of the dialogs, bytes of the tables that hold
    /// them: the slots' lists and the transaction map).
    fn memory(&self) -> (usize, usize, usize) {
        let (mut n, mut bytes, mut table) = (0, 0, 0);
        for slot in &self.slots {
            let m = slot.dialogs.lock();
            n += m.len();
            bytes += m.values().map(Dialog::approx_bytes).sum::<usize>();
            table += m.table_bytes();
        }
        let by_tx = self.by_tx.lock().capacity();
        if by_tx > 0 {
            // hashbrown: the entries, one control octet each and a group of 16 more.
            table += (by_tx + 1).next_power_of_two() * (std::mem::size_of::<(u64, HashId)>() + 1)
                + 16
                + 16;
        }
        (n, bytes, table)
    }
}

/// Runs `event_route[name]` on the message that caused it (or a made-up BYE).
fn run_event(core: &Core, name: &str, d: &Dialog, msg: Option<&[u8]>) {
    let Some(program) = core.program() else {
        return;
    };
    if let Some(id) = program.event_route(name) {
        run_route(core, &program, id, RouteMask::EVENT, d, msg);
    }
}

/// Runs `route[NAME]`, the dialog's timeout route, on a made-up BYE of the dialog.
fn run_timeout_route(core: &Core, name: &str, d: &Dialog) {
    let Some(program) = core.program() else {
        return;
    };
    match program.route(sable_script::ast::RouteKind::Request, name) {
        Some(id) => run_route(core, &program, id, RouteMask::REQUEST, d, None),
        None => tracing::warn!("dialog: timeout route {name} is not in the config"),
    }
}

/// Runs a route with `d` as the message's dialog, on `msg` or on a BYE made from `d`.
fn run_route(
    core: &Core,
    program: &Arc<sable_script::Program<Sip>>,
    id: sable_script::RouteId,
    mask: RouteMask,
    d: &Dialog,
    msg: Option<&[u8]>,
) {
    let Some(local) = sable_engine::first_socket_addr(core) else {
        return;
    };
    let fake;
    let bytes: &[u8] = match msg {
        Some(b) => b,
        None => {
            fake = format!(
                "BYE {} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKdlgev\r\nFrom: <{}>;tag={}\r\nTo: <{}>\r\nCall-ID: {}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
                d.request_uri(),
                d.from_uri(),
                d.from_tag(),
                d.to_uri(),
                d.call_id()
            );
            fake.as_bytes()
        }
    };
    let hash = d.hash();
    sable_engine::run_on_local_message(core, program, id, mask, bytes, |ctx| {
        ctx.dialog = Some((hash.h_entry(), hash.h_id()));
    });
}

fn the(ctx: &MsgCtx<'_>) -> Option<Arc<Dialogs>> {
    ctx.core.service::<Dialogs>()
}

/// Reads the message's dialog.
fn with_current<R>(ctx: &MsgCtx<'_>, f: impl FnOnce(&Dialog) -> R) -> Option<R> {
    let dl = the(ctx)?;
    let (e, i) = ctx.dialog?;
    let slot = dl.slot(e)?;
    let m = slot.dialogs.lock();
    m.get(&i).map(f)
}

/// Changes the message's dialog.
fn with_current_mut<R>(ctx: &MsgCtx<'_>, f: impl FnOnce(&mut Dialog, &Dialogs) -> R) -> Option<R> {
    let dl = the(ctx)?;
    let (e, i) = ctx.dialog?;
    let slot = dl.slot(e)?;
    let mut m = slot.dialogs.lock();
    m.get_mut(&i).map(|d| f(d, &dl))
}

#[derive(Debug, Default)]
pub struct DialogModule {
    p: DlgParams,
    ignored: Vec<String>,
}

/// `$dlg(name)`, `$DLG_status`, `$DLG_lifetime`, `$DLG_count`.
#[derive(Debug, Clone, Copy)]
enum Attr {
    HEntry,
    HId,
    State,
    CallId,
    FromUri,
    ToUri,
    FromTag,
    ToTag,
    Lifetime,
    StartTs,
    Count,
}

struct DlgPv(Attr);

impl PvAccess<Sip> for DlgPv {
    fn get(&self, ctx: &mut MsgCtx<'_>) -> Value {
        if let Attr::Count = self.0 {
            return the(ctx).map_or(Value::Null, |d| {
                Value::Int(i64::try_from(d.count()).unwrap_or(0))
            });
        }
        let a = self.0;
        with_current(ctx, |d| match a {
            Attr::HEntry => Value::Int(i64::from(d.hash().h_entry())),
            Attr::HId => Value::Int(i64::from(d.hash().h_id())),
            Attr::State => Value::Int(i64::from(d.state().code())),
            Attr::CallId => Value::from(d.call_id().to_owned()),
            Attr::FromUri => Value::from(d.from_uri().to_owned()),
            Attr::ToUri => Value::from(d.to_uri().to_owned()),
            Attr::FromTag => Value::from(d.from_tag().to_owned()),
            Attr::ToTag => d
                .to_tag()
                .map_or(Value::Null, |t| Value::from(t.to_owned())),
            Attr::Lifetime => {
                let start = d.start_ts();
                if start == 0 {
                    Value::Int(0)
                } else {
                    Value::Int(i64::try_from(unix_now().saturating_sub(start)).unwrap_or(0))
                }
            }
            Attr::StartTs => Value::Int(i64::try_from(d.start_ts()).unwrap_or(0)),
            Attr::Count => Value::Null,
        })
        .unwrap_or(Value::Null)
    }
}

/// `$dlg_ctx(name)` on the message's dialog: `on`, `timeout_route`, `timeout_bye`,
/// `timeout_noreset`, `timeout` (writable but `on`).
struct DlgCtxPv(String);

impl PvAccess<Sip> for DlgCtxPv {
    fn get(&self, ctx: &mut MsgCtx<'_>) -> Value {
        if self.0 == "on" {
            return Value::Int(i64::from(with_current(ctx, |_| ()).is_some()));
        }
        with_current(ctx, |d| match self.0.as_str() {
            "timeout_route" => d
                .timeout_route()
                .map_or(Value::Null, |r| Value::from(r.to_owned())),
            "timeout_bye" => {
                Value::Int(i64::from(d.iflags() & sable_dialog::IFLAG_TIMEOUTBYE != 0))
            }
            "timeout_noreset" => Value::Int(i64::from(
                d.iflags() & sable_dialog::IFLAG_TIMER_NORESET != 0,
            )),
            "timeout" => Value::Int(i64::from(d.lifetime())),
            _ => Value::Null,
        })
        .unwrap_or(Value::Null)
    }

    fn set(&self, ctx: &mut MsgCtx<'_>, value: Value) -> bool {
        let name = self.0.clone();
        with_current_mut(ctx, |d, dl| {
            match name.as_str() {
                "timeout_route" => d.set_timeout_route(match &value {
                    Value::Null => None,
                    v => Some(v.to_string()),
                }),
                "timeout_bye" => d.set_timeout_bye(value.as_int() != 0),
                "timeout_noreset" => d.set_timeout_noreset(value.as_int() != 0),
                "timeout" => {
                    if let Ok(secs) = u32::try_from(value.as_int()) {
                        let _ = d.set_timeout(secs, unix_now(), &dl.p.cfg);
                    }
                }
                _ => return false,
            }
            dl.changed(d);
            true
        })
        .unwrap_or(false)
    }
}

/// `$dlg_var(key)`.
struct DlgVar(String);

impl PvAccess<Sip> for DlgVar {
    fn get(&self, ctx: &mut MsgCtx<'_>) -> Value {
        with_current(ctx, |d| d.var(&self.0).map(|v| Value::from(v.to_owned())))
            .flatten()
            .unwrap_or(Value::Null)
    }

    fn set(&self, ctx: &mut MsgCtx<'_>, value: Value) -> bool {
        let text = match &value {
            Value::Null => None,
            v => Some(v.to_string()),
        };
        with_current_mut(ctx, |d, dl| {
            d.set_var(&self.0, text.as_deref());
            dl.changed(d);
        })
        .is_some()
    }
}

fn pv(reg: &mut Registry<Sip>, name: &str, attr: Attr) {
    reg.pv(
        name,
        PvDef {
            module: "dialog",
            writable: false,
            make: Box::new(move |_| Ok(Box::new(DlgPv(attr)) as Box<dyn PvAccess<Sip>>)),
        },
    );
}

fn profile_args(args: &mut Vec<Arg<Sip>>) -> Result<(String, Option<StrArg<Sip>>), ArgError> {
    let name = required(args, 1, "profile")?
        .const_str()
        .ok_or_else(|| ArgError::new(1, "the profile name must be a constant"))?
        .into_owned();
    let value = take_arg(args, 0).map(Arg::into_str);
    Ok((name, value))
}

impl Module for DialogModule {
    fn name(&self) -> &'static str {
        "dialog"
    }

    fn set_param(&mut self, name: &str, value: &Literal) -> Result<(), ParamError> {
        let secs = |v: &Literal| -> Result<u32, ParamError> {
            u32::try_from(int_param(v)?).map_err(|_| ParamError::bad("seconds (>= 0)"))
        };
        let p = &mut self.p;
        match name {
            "default_timeout" => p.cfg.default_timeout = secs(value)?,
            "early_timeout" => p.cfg.early_timeout = secs(value)?,
            "noack_timeout" => p.cfg.noack_timeout = secs(value)?,
            "end_timeout" => p.cfg.end_timeout = secs(value)?,
            "send_bye" => p.cfg.send_bye = int_param(value)? != 0,
            "timeout_noreset" => p.cfg.timeout_noreset = int_param(value)? != 0,
            "hash_size" => {
                let n = u32::try_from(int_param(value)?)
                    .ok()
                    .filter(|n| (1..=1 << 20).contains(n))
                    .ok_or_else(|| ParamError::bad("1..1048576"))?;
                p.hash_size = n.next_power_of_two();
            }
            "rr_param" => {
                let r = str_param(value)?;
                if r.is_empty() || !r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    return Err(ParamError::bad("a parameter name"));
                }
                p.rr_param = r;
            }
            "dlg_flag" => {
                let f = int_param(value)?;
                p.dlg_flag = u32::try_from(f).ok().filter(|f| *f < 32);
            }
            "profiles_no_value" => p.profiles_no_value = str_param(value)?,
            "profiles_with_value" => p.profiles_with_value = str_param(value)?,
            "db_mode" => {
                let m = int_param(value)?;
                if !(0..=3).contains(&m) {
                    return Err(ParamError::bad("0, 1, 2 or 3"));
                }
                p.db_mode = m;
            }
            "db_url" => p.db_url = Some(str_param(value)?),
            "db_update_period" => {
                p.db_update_period = u64::try_from(int_param(value)?)
                    .ok()
                    .filter(|v| *v > 0)
                    .ok_or_else(|| ParamError::bad("seconds (> 0)"))?;
            }
            "timeout_avp" => p.timeout_avp = Some(sable_engine::avp_param(value)?),
            "dlg_match_mode" => {
                p.match_mode = MatchMode::from_param(int_param(value)?)
                    .ok_or_else(|| ParamError::bad("0, 1 or 2"))?;
            }
            "detect_spirals" => p.detect_spirals = int_param(value)? != 0,
            "ka_timer" => p.ka_timer = u64::from(secs(value)?),
            "ka_interval" => {
                p.ka_interval = secs(value)?;
                if p.ka_interval > 0 && p.ka_interval < 30 {
                    self.ignored.push(format!(
                        "dialog: ka_interval {} is below 30 s: Kamailio refuses to start with it, Sable uses it",
                        p.ka_interval
                    ));
                }
            }
            "ka_failed_limit" => {
                p.ka_failed_limit = secs(value)?.max(1);
            }
            "dlg_bridge_controller" => p.bridge_controller = str_param(value)?.trim().to_owned(),
            "dlg_bridge_contact" => p.bridge_contact = str_param(value)?.trim().to_owned(),
            "dlg_extra_hdrs" => {
                let h = str_param(value)?;
                p.extra_hdrs = h.trim_end_matches(['\r', '\n']).to_owned();
            }
            "event_callback" => {
                if !str_param(value)?.trim().is_empty() {
                    return Err(ParamError::bad(
                        "empty: event_callback names a KEMI function, and Sable has no KEMI; use event_route[dialog:start|end|failed]",
                    ));
                }
            }
            "table_name" | "enable_stats" | "bye_early_code" | "bye_early_reason" | "wait_ack"
            | "track_cseq_updates" | "timer_procs" | "h_id_start" | "h_id_step"
            | "keep_proxy_rr" => {
                self.ignored.push(format!(
                    "dialog: parameter {name} has no effect in Sable yet"
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
        if core.service::<Dialogs>().is_some() {
            return Ok(());
        }
        let profiles =
            Profiles::from_params(&self.p.profiles_no_value, &self.p.profiles_with_value)
                .map_err(|e| format!("dialog: profiles: {e}"))?;
        let n = self.p.hash_size.max(1);
        let store = if self.p.db_mode > 0 {
            let url = self
                .p
                .db_url
                .as_deref()
                .ok_or("dialog: db_mode > 0 needs db_url (sqlite:///path/file.db)")?;
            let db = sable_storage::Database::open(url).map_err(|e| format!("dialog: {e}"))?;
            db.check_dialog_tables()
                .map_err(|e| format!("dialog: {e}"))?;
            Some(DlgStore {
                db: Mutex::new(db),
                delayed: self.p.db_mode >= 2,
                dirty: Mutex::new(std::collections::HashSet::new()),
            })
        } else {
            None
        };
        let dl = Arc::new(Dialogs {
            p: self.p.clone(),
            slots: (0..n)
                .map(|_| Slot {
                    next_id: AtomicU32::new(1),
                    dialogs: Mutex::new(Bucket::default()),
                })
                .collect(),
            by_tx: Mutex::new(HashMap::new()),
            ka: Mutex::new(std::collections::HashSet::new()),
            profiles: Mutex::new(profiles),
            stats: DlgStats::default(),
            listeners: parking_lot::RwLock::new(Vec::new()),
            create_hooks: parking_lot::RwLock::new(Vec::new()),
            store,
            restored: Mutex::new(Vec::new()),
            core: std::sync::OnceLock::new(),
        });
        let _ = dl.core.set(Arc::downgrade(core));
        let reg = &core.stat_registry;
        reg.adopt_gauge("dialog", "active_dialogs", dl.stats.active.clone(), false);
        reg.adopt_gauge("dialog", "early_dialogs", dl.stats.early.clone(), false);
        reg.adopt_counter("dialog", "processed_dialogs", dl.stats.processed.clone());
        reg.adopt_counter("dialog", "expired_dialogs", dl.stats.expired.clone());
        reg.adopt_counter("dialog", "failed_dialogs", dl.stats.failed.clone());
        let loaded = dl
            .load()
            .map_err(|e| format!("dialog: loading the dialogs: {e}"))?;
        if loaded > 0 {
            tracing::info!("dialog: {loaded} dialogs restored from the database");
        }
        core.provide(dl.clone());
        let tm = core
            .tm
            .get()
            .cloned()
            .ok_or("dialog: needs tm (loadmodule \"tm.so\" before \"dialog.so\")")?;
        let weak = Arc::downgrade(&dl);
        tm.subscribe(Arc::new(move |ev: &TmEvent<'_, '_>| {
            if let Some(dl) = weak.upgrade() {
                dl.on_tm(ev);
            }
        }));
        let weak = Arc::downgrade(&dl);
        core.rr_hooks.add(Arc::new(move |ctx: &mut MsgCtx<'_>| {
            if let Some(dl) = weak.upgrade() {
                dl.on_route(ctx);
            }
        }));
        let period = self.p.db_update_period;
        let ka_timer = self.p.ka_timer;
        let ka_on = ka_timer > 0 && self.p.ka_interval > 0;
        let mut ticks: u64 = 0;
        sable_engine::spawn_ticker(
            "dialog-timer",
            std::time::Duration::from_secs(1),
            &dl,
            core,
            move |dl, core| {
                dl.sweep(core);
                ticks += 1;
                if ticks % period == 0 {
                    dl.flush();
                }
                if ka_on && ticks % ka_timer == 0 {
                    dl.keepalives(core);
                }
            },
        )
        .map_err(|e| format!("dialog: {e}"))?;
        Ok(())
    }

    fn stop(&self, core: &Arc<Core>) {
        // db_mode 2 and 3: the dialogs changed since the last write (Kamailio writes them
        // on exit too); a no-op in the other modes.
        if let Some(dl) = core.service::<Dialogs>() {
            dl.flush();
        }
    }

    fn rpc(&self, registry: &mut sable_rpc::Registry, core: &Arc<Core>) {
        let c = core.clone();
        let _ = registry.register(
            "dlg.list",
            "Lists the dialogs.",
            ["array"],
            MethodKind::List,
            move |_: &Params| -> Result<Json, RpcError> {
                let dl = c
                    .service::<Dialogs>()
                    .ok_or_else(|| RpcError::new(500, "dialog is not running"))?;
                let now = unix_now();
                Ok(Json::Array(
                    dl.all().iter().map(|d| d.info(now).to_json()).collect(),
                ))
            },
        );
        for name in ["dlg.terminate_dlg", "dlg.end_dlg"] {
            let c = core.clone();
            let help = if name == "dlg.terminate_dlg" {
                "Ends a dialog with a BYE to both sides: callid from_tag to_tag (or h_entry h_id)."
            } else {
                "Ends a dialog with a BYE to both sides: h_entry h_id."
            };
            let _ = registry.register(
                name,
                help,
                ["struct", "string", "string", "string"],
                MethodKind::Value,
                move |p: &Params| -> Result<Json, RpcError> {
                    let dl = c
                        .service::<Dialogs>()
                        .ok_or_else(|| RpcError::new(500, "dialog is not running"))?;
                    // Kamailio's dlg.terminate_dlg names the dialog by Call-ID and tags;
                    // dlg.end_dlg (and Sable's older form of both) by h_entry h_id.
                    let hash = if p.len() >= 3 {
                        let (ci, ft, tt) = (p.str(0)?, p.str(1)?, p.str(2)?);
                        dl.by_tags(ci, ft, tt)
                            .ok_or_else(|| RpcError::new(404, "Requested Dialog not found"))?
                    } else {
                        let e = u32::try_from(p.int(0)?)
                            .map_err(|_| RpcError::invalid_params("h_entry"))?;
                        let i = u32::try_from(p.int(1)?)
                            .map_err(|_| RpcError::invalid_params("h_id"))?;
                        HashId(e, i)
                    };
                    dl.terminate(&c, hash).map_err(|e| {
                        RpcError::new(404, format!("Requested Dialog not found: {e}"))
                    })?;
                    Ok(json!({}))
                },
            );
        }
        let c = core.clone();
        let _ = registry.register(
            "dlg.briefing",
            "Short list of the dialogs: [format] (f from_uri, t to_uri, c call-id, F from_tag, T to_tag, I init_ts, S start_ts, s state).",
            ["array", "string"],
            MethodKind::List,
            move |p: &Params| -> Result<Json, RpcError> {
                let dl = c
                    .service::<Dialogs>()
                    .ok_or_else(|| RpcError::new(500, "dialog is not running"))?;
                let fmt = p.opt_str(0)?.unwrap_or("ftcFTIS");
                let now = unix_now();
                Ok(Json::Array(
                    dl.all().iter().map(|d| d.info(now).briefing_json(fmt)).collect(),
                ))
            },
        );
        for name in ["dlg.dlg_list", "dlg.list_ctx", "dlg.dlg_list_ctx"] {
            let c = core.clone();
            let by_id = name.starts_with("dlg.dlg_list");
            let _ = registry.register(
                name,
                "Lists the dialogs (dlg.dlg_list: of a Call-ID [from_tag]).",
                ["array", "string", "string"],
                MethodKind::List,
                move |p: &Params| -> Result<Json, RpcError> {
                    let dl = c
                        .service::<Dialogs>()
                        .ok_or_else(|| RpcError::new(500, "dialog is not running"))?;
                    let now = unix_now();
                    let (callid, ftag) = if by_id {
                        (Some(p.str(0)?.to_owned()), p.opt_str(1)?.map(str::to_owned))
                    } else {
                        (None, None)
                    };
                    Ok(Json::Array(
                        dl.all()
                            .iter()
                            .filter(|d| callid.as_ref().is_none_or(|c| d.call_id() == c))
                            .filter(|d| ftag.as_ref().is_none_or(|f| d.from_tag() == f))
                            .map(|d| d.info(now).to_json())
                            .collect(),
                    ))
                },
            );
        }
        let c = core.clone();
        let _ = registry.register(
            "dlg.memory",
            "Sable's own accounting of the dialog tables: dialogs and the bytes they hold.",
            ["struct"],
            MethodKind::Value,
            move |_: &Params| -> Result<Json, RpcError> {
                let dl = c
                    .service::<Dialogs>()
                    .ok_or_else(|| RpcError::new(500, "dialog is not running"))?;
                let (n, dialogs, tables) = dl.memory();
                let per = |b: usize| b.checked_div(n).unwrap_or(0);
                Ok(json!({
                    "dialogs": n,
                    "bytes": dialogs + tables,
                    "bytes_per_dialog": per(dialogs + tables),
                    "dialog_bytes_per_dialog": per(dialogs),
                    "table_bytes_per_dialog": per(tables),
                }))
            },
        );
        let c = core.clone();
        let _ = registry.register(
            "dlg.stats_active",
            "Counts the dialogs per state.",
            ["struct"],
            MethodKind::Value,
            move |_: &Params| -> Result<Json, RpcError> {
                let dl = c
                    .service::<Dialogs>()
                    .ok_or_else(|| RpcError::new(500, "dialog is not running"))?;
                let mut counts = sable_dialog::ActiveCounts::default();
                for d in dl.all() {
                    counts.add(d.state());
                }
                Ok(counts.to_json())
            },
        );
        let c = core.clone();
        let _ = registry.register(
            "dlg.profile_list",
            "The dialogs in a profile: profile [value].",
            ["array", "string", "string"],
            MethodKind::List,
            move |p: &Params| -> Result<Json, RpcError> {
                let dl = c
                    .service::<Dialogs>()
                    .ok_or_else(|| RpcError::new(500, "dialog is not running"))?;
                let name = p.str(0)?;
                let value = p.opt_str(1)?;
                let now = unix_now();
                Ok(Json::Array(
                    dl.all()
                        .iter()
                        .filter(|d| d.is_in_profile(name, value))
                        .map(|d| d.info(now).to_json())
                        .collect(),
                ))
            },
        );
        let c = core.clone();
        let _ = registry.register(
            "dlg.profile_get_size",
            "Dialogs in a profile: profile [value].",
            ["struct", "string", "string"],
            MethodKind::Value,
            move |p: &Params| -> Result<Json, RpcError> {
                let dl = c
                    .service::<Dialogs>()
                    .ok_or_else(|| RpcError::new(500, "dialog is not running"))?;
                let name = p.str(0)?;
                let value = p.opt_str(1)?;
                let n = dl
                    .profiles
                    .lock()
                    .size(name, value)
                    .map_err(|e| RpcError::new(500, e.to_string()))?;
                Ok(json!({"profile": name, "value": value.unwrap_or(""), "count": n}))
            },
        );
    }

    fn register(&self, reg: &mut Registry<Sip>) {
        reg.function(
            "dlg_manage",
            function("dialog", 0, 0, RouteMask::REQUEST, |_, _| {
                Ok(Box::new(|ctx: &mut MsgCtx<'_>| match the(ctx) {
                    Some(dl) => match dl.create(ctx) {
                        Some(_) => 1,
                        None => -1,
                    },
                    None => -1,
                }))
            }),
        );
        reg.function(
            "is_known_dlg",
            function("dialog", 0, 0, RouteMask::ANY, |_, _| {
                Ok(Box::new(|ctx: &mut MsgCtx<'_>| {
                    if with_current(ctx, |_| ()).is_some() {
                        1
                    } else {
                        -1
                    }
                }))
            }),
        );
        for (name, what) in [
            ("dlg_setflag", 0u8),
            ("dlg_resetflag", 1),
            ("dlg_isflagset", 2),
        ] {
            reg.function(
                name,
                function("dialog", 1, 1, RouteMask::ANY, move |_, mut args| {
                    let flag = required(&mut args, 1, "flag")?.into_int(1)?;
                    Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                        let Some(n) = flag.eval(ctx).and_then(|n| u32::try_from(n).ok()) else {
                            return -1;
                        };
                        with_current_mut(ctx, |d, _| match what {
                            0 => d.set_flag(n).map_or(-1, |()| 1),
                            1 => d.reset_flag(n).map_or(-1, |()| 1),
                            _ => match d.is_flag_set(n) {
                                Ok(true) => 1,
                                _ => -1,
                            },
                        })
                        .unwrap_or(-1)
                    }))
                }),
            );
        }
        reg.function(
            "dlg_bye",
            function("dialog", 1, 1, RouteMask::ANY, |_, mut args| {
                let side = required(&mut args, 1, "side")?
                    .const_str()
                    .ok_or_else(|| ArgError::new(1, "caller, callee or all"))?
                    .into_owned();
                let sides: Vec<sable_dialog::Side> = match side.as_str() {
                    "caller" => vec![sable_dialog::Side::Caller],
                    "callee" => vec![sable_dialog::Side::Callee],
                    "all" => vec![sable_dialog::Side::Caller, sable_dialog::Side::Callee],
                    _ => return Err(ArgError::new(1, "caller, callee or all")),
                };
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let (Some(dl), Some((e, i))) = (the(ctx), ctx.dialog) else {
                        return -1;
                    };
                    let done = dl.with(
                        ctx.core,
                        HashId(e, i),
                        |d| match d.terminate(&sides) {
                            Ok(a) => (1, a),
                            Err(_) => (-1, Vec::new()),
                        },
                        None,
                    );
                    done.unwrap_or(-1)
                }))
            }),
        );
        reg.function(
            "dlg_refer",
            function("dialog", 2, 2, RouteMask::ANY, |_, mut args| {
                let side = required(&mut args, 1, "side")?
                    .const_str()
                    .ok_or_else(|| ArgError::new(1, "caller or callee"))?
                    .into_owned();
                let side = match side.as_str() {
                    "caller" => sable_dialog::Side::Caller,
                    "callee" => sable_dialog::Side::Callee,
                    _ => return Err(ArgError::new(1, "caller or callee")),
                };
                let to = required(&mut args, 2, "address")?.into_str();
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let to = to.eval(ctx);
                    if to.trim().is_empty() {
                        return -1;
                    }
                    let (Some(dl), Some(d)) = (the(ctx), with_current(ctx, Dialog::clone)) else {
                        return -1;
                    };
                    if dl.refer(ctx.core, &d, side, to.trim()) {
                        1
                    } else {
                        -1
                    }
                }))
            }),
        );
        reg.function(
            "dlg_set_timeout",
            function("dialog", 1, 1, RouteMask::ANY, |_, mut args| {
                let secs = required(&mut args, 1, "timeout")?.into_int(1)?;
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let Some(s) = secs.eval(ctx).and_then(|n| u32::try_from(n).ok()) else {
                        return -1;
                    };
                    with_current_mut(ctx, |d, dl| {
                        let _ = d.set_timeout(s, unix_now(), &dl.p.cfg);
                        1
                    })
                    .unwrap_or(-1)
                }))
            }),
        );
        for (name, set) in [("set_dlg_profile", true), ("unset_dlg_profile", false)] {
            reg.function(
                name,
                function("dialog", 1, 2, RouteMask::ANY, move |_, mut args| {
                    let (name, value) = profile_args(&mut args)?;
                    Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                        let link = ProfileLink {
                            profile: name.clone(),
                            value: value.as_ref().map(|v| v.eval(ctx).into_owned()),
                        };
                        with_current_mut(ctx, |d, dl| {
                            let done = if set {
                                dl.profiles.lock().set(d, link).is_ok()
                            } else {
                                matches!(dl.profiles.lock().unset(d, &link), Ok(true))
                            };
                            // The stored dialog (db_mode) follows both ways.
                            dl.changed(d);
                            if done {
                                1
                            } else {
                                -1
                            }
                        })
                        .unwrap_or(-1)
                    }))
                }),
            );
        }
        reg.function(
            "is_in_profile",
            function("dialog", 1, 2, RouteMask::ANY, |_, mut args| {
                let (name, value) = profile_args(&mut args)?;
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let v = value.as_ref().map(|v| v.eval(ctx).into_owned());
                    with_current(ctx, |d| d.is_in_profile(&name, v.as_deref())).map_or(-1, |yes| {
                        if yes {
                            1
                        } else {
                            -1
                        }
                    })
                }))
            }),
        );
        reg.function(
            "get_profile_size",
            function("dialog", 2, 3, RouteMask::ANY, |fx, mut args| {
                let name = required(&mut args, 1, "profile")?
                    .const_str()
                    .ok_or_else(|| ArgError::new(1, "the profile name must be a constant"))?
                    .into_owned();
                let (value, out) = match args.len() {
                    2 => {
                        let v = take_arg(&mut args, 0).map(Arg::into_str);
                        let o =
                            take_arg(&mut args, 0).ok_or_else(|| ArgError::new(3, "a variable"))?;
                        (v, o)
                    }
                    _ => (
                        None,
                        take_arg(&mut args, 0).ok_or_else(|| ArgError::new(2, "a variable"))?,
                    ),
                };
                let out = out.into_pv(args.len() + 2)?;
                if !out.is_writable() {
                    return Err(ArgError::new(2, "the result variable must be writable"));
                }
                let _ = fx;
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let Some(dl) = the(ctx) else {
                        return -1;
                    };
                    let v = value.as_ref().map(|v| v.eval(ctx).into_owned());
                    let n = dl.profiles.lock().size(&name, v.as_deref());
                    match n {
                        Ok(n) => {
                            out.set(ctx, Value::Int(i64::try_from(n).unwrap_or(0)));
                            1
                        }
                        Err(_) => -1,
                    }
                }))
            }),
        );
        for (name, attr) in [
            ("DLG_status", Attr::State),
            ("DLG_lifetime", Attr::Lifetime),
            ("DLG_count", Attr::Count),
        ] {
            pv(reg, name, attr);
        }
        reg.pv(
            "dlg",
            PvDef {
                module: "dialog",
                writable: false,
                make: Box::new(|inner| {
                    let attr = match inner.map(str::trim).unwrap_or("") {
                        "h_entry" => Attr::HEntry,
                        "h_id" => Attr::HId,
                        "state" => Attr::State,
                        "callid" => Attr::CallId,
                        "from_uri" => Attr::FromUri,
                        "to_uri" => Attr::ToUri,
                        "from_tag" => Attr::FromTag,
                        "to_tag" => Attr::ToTag,
                        "lifetime" => Attr::Lifetime,
                        "start_ts" => Attr::StartTs,
                        other => return Err(format!("$dlg({other}) is not known")),
                    };
                    Ok(Box::new(DlgPv(attr)) as Box<dyn PvAccess<Sip>>)
                }),
            },
        );
        reg.pv(
            "dlg_ctx",
            PvDef {
                module: "dialog",
                writable: true,
                make: Box::new(|inner| match inner.map(str::trim) {
                    Some(
                        k @ ("on" | "timeout_route" | "timeout_bye" | "timeout_noreset"
                        | "timeout"),
                    ) => Ok(Box::new(DlgCtxPv(k.to_owned())) as Box<dyn PvAccess<Sip>>),
                    other => Err(format!(
                        "$dlg_ctx({}) is not one of on, timeout_route, timeout_bye, timeout_noreset, timeout",
                        other.unwrap_or("")
                    )),
                }),
            },
        );
        reg.function(
            "dlg_get",
            function("dialog", 3, 3, RouteMask::ANY, |_, mut args| {
                let callid = required(&mut args, 1, "Call-ID")?.into_str();
                let ftag = required(&mut args, 2, "From tag")?.into_str();
                let ttag = required(&mut args, 3, "To tag")?.into_str();
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let Some(dl) = the(ctx) else {
                        return -1;
                    };
                    let (c, f, t) = (
                        callid.eval(ctx).into_owned(),
                        ftag.eval(ctx).into_owned(),
                        ttag.eval(ctx).into_owned(),
                    );
                    match dl.by_tags(&c, &f, &t) {
                        Some(h) => {
                            ctx.dialog = Some((h.h_entry(), h.h_id()));
                            1
                        }
                        None => -1,
                    }
                }))
            }),
        );
        reg.function(
            "dlg_set_property",
            function("dialog", 1, 1, RouteMask::ANY, |_, mut args| {
                let name = required(&mut args, 1, "property")?
                    .const_str()
                    .ok_or_else(|| ArgError::new(1, "must be a constant"))?
                    .into_owned();
                let side = match name.as_str() {
                    "ka-src" => Some(sable_dialog::Side::Caller),
                    "ka-dst" => Some(sable_dialog::Side::Callee),
                    "timeout-noreset" => None,
                    _ => {
                        return Err(ArgError::new(
                            1,
                            format!("'{name}' is not ka-src, ka-dst or timeout-noreset"),
                        ))
                    }
                };
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    with_current_mut(ctx, |d, dl| {
                        match side {
                            Some(side) => {
                                d.set_keepalive(side, true);
                                dl.ka.lock().insert(d.hash());
                            }
                            None => d.set_timeout_noreset(true),
                        }
                        dl.changed(d);
                        1
                    })
                    .unwrap_or(-1)
                }))
            }),
        );
        reg.function(
            "dlg_set_timeout_by_profile",
            function("dialog", 2, 3, RouteMask::ANY, |_, mut args| {
                let (name, mut value) = profile_args(&mut args)?;
                // Two arguments: (profile, timeout); three: (profile, value, timeout).
                let secs = match take_arg(&mut args, 0) {
                    Some(t) => t.into_int(3)?,
                    None => value
                        .take()
                        .map(
                            |v| match v.as_const().and_then(|c| c.trim().parse::<i64>().ok()) {
                                Some(n) => sable_script::IntArg::Const(n),
                                None => sable_script::IntArg::Const(-1),
                            },
                        )
                        .ok_or_else(|| ArgError::new(2, "a timeout"))?,
                };
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let Some(dl) = the(ctx) else {
                        return -1;
                    };
                    let Some(t) = secs.eval(ctx).and_then(|n| u32::try_from(n).ok()) else {
                        return -1;
                    };
                    let v = value.as_ref().map(|v| v.eval(ctx).into_owned());
                    let now = unix_now();
                    let mut n = 0;
                    for slot in &dl.slots {
                        let mut m = slot.dialogs.lock();
                        for d in m.values_mut() {
                            if d.is_in_profile(&name, v.as_deref()) {
                                let _ = d.set_timeout(t, now, &dl.p.cfg);
                                n += 1;
                            }
                        }
                    }
                    if n > 0 {
                        1
                    } else {
                        -1
                    }
                }))
            }),
        );
        reg.pv(
            "dlg_var",
            PvDef {
                module: "dialog",
                writable: true,
                make: Box::new(
                    |inner| match inner.map(str::trim).filter(|s| !s.is_empty()) {
                        Some(k) => Ok(Box::new(DlgVar(k.to_owned())) as Box<dyn PvAccess<Sip>>),
                        None => Err("needs a key: $dlg_var(key)".to_owned()),
                    },
                ),
            },
        );
    }
}
