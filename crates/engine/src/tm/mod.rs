//! The transaction layer behind module `tm`: stateful forwarding (RFC 3261 §16 with the
//! §17 machines of `sable-transaction`), parallel and serial forking, reply selection,
//! failure routes, CANCEL, timers.
//!
//! A [`Tx`] is one proxied request: the server machine towards the caller, one
//! [`ClientTransaction`] per branch, the routes armed for it and the script state (AVPs,
//! flags) that lives as long as it. Transactions are found by their server key (requests:
//! retransmissions, ACK, CANCEL) and by the id carried in the branch of the Vias Sable adds
//! (`z9hG4bKtm<id>.<branch>`: replies). The tables are split into buckets, each with its own
//! lock; a transaction's own state has one lock, held while its machines change and its
//! datagrams are handed to the transport (never across a script run: routes run on copies of
//! the state, written back after).

mod reply;
mod script_lock;
mod timer;
mod uac;

pub use uac::{UacCallback, UacRequest};

pub use script_lock::ScriptHold;
use script_lock::ScriptLock;
use timer::{Armed, TICK_MS};
pub use timer::{TimerQueue, TimerWhat};

use crate::context::{Branch, MsgCtx, RecordRoute, RecvInfo, Sip};
use crate::core::Core;
use crate::dispatch::{build_forwarded, forward_request, run_onsend, send_reply};
use crate::sip_util::{
    build_reply, next_hop_of_uri, reply_destination, stateless_to_tag, via_with_received, NextHop,
    ReplySpec,
};
use crate::stats::{Counter, Gauge};
use parking_lot::Mutex;
use sable_script::{AvpStore, Program, RouteId, RouteMask, XavpStore};
use sable_sip::{Edits, HeaderName, Message, Method};
use sable_transaction::{
    ClientAction, ClientKind, ClientTransaction, Millis, ServerAction, ServerKind,
    ServerTransaction, Timers, TransactionKey,
};
use sable_transport::{Proto, SendFlags};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

/// tm's parameters, with Kamailio's names and defaults (milliseconds).
#[derive(Debug, Clone)]
pub struct TmConfig {
    pub fr_timer: u64,
    pub fr_inv_timer: u64,
    pub max_inv_lifetime: u64,
    pub max_noninv_lifetime: u64,
    pub wt_timer: u64,
    pub retr_timer1: u64,
    pub retr_timer2: u64,
    pub restart_fr_on_each_reply: bool,
    pub auto_inv_100: bool,
    pub auto_inv_100_reason: String,
    pub failure_reply_mode: i64,
    pub cancel_b_method: i64,
    pub e2e_cancel_reason: bool,
    pub relay_100: bool,
    pub disable_6xx_block: bool,
    pub contacts_avp: Option<String>,
    pub contact_flows_avp: Option<String>,
}

impl Default for TmConfig {
    fn default() -> Self {
        TmConfig {
            fr_timer: 30_000,
            fr_inv_timer: 120_000,
            max_inv_lifetime: 180_000,
            max_noninv_lifetime: 32_000,
            wt_timer: 5_000,
            retr_timer1: 500,
            retr_timer2: 4_000,
            restart_fr_on_each_reply: true,
            auto_inv_100: true,
            auto_inv_100_reason: "trying -- your call is important to us".to_owned(),
            failure_reply_mode: 3,
            cancel_b_method: 1,
            e2e_cancel_reason: true,
            relay_100: false,
            disable_6xx_block: false,
            contacts_avp: None,
            contact_flows_avp: None,
        }
    }
}

/// tm's statistics, Kamailio's names (group `tm`).
#[derive(Debug, Default)]
pub struct TmStats {
    pub current: Arc<Gauge>,
    pub waiting: Arc<Gauge>,
    pub total: Arc<Counter>,
    pub total_local: Arc<Counter>,
    pub rpl_received: Arc<Counter>,
    pub rpl_generated: Arc<Counter>,
    pub rpl_sent: Arc<Counter>,
    /// Completed transactions by the class of their final reply: 1xx (unused) .. 6xx.
    pub classes: [Arc<Counter>; 6],
    pub created: Arc<Counter>,
    pub freed: Arc<Counter>,
    pub delayed_free: Arc<Counter>,
}

impl TmStats {
    fn publish(&self, reg: &crate::StatRegistry) {
        reg.adopt_gauge("tm", "current", self.current.clone(), false);
        reg.adopt_gauge("tm", "waiting", self.waiting.clone(), false);
        for (name, c) in [
            ("total", &self.total),
            ("total_local", &self.total_local),
            ("rpl_received", &self.rpl_received),
            ("rpl_generated", &self.rpl_generated),
            ("rpl_sent", &self.rpl_sent),
            ("created", &self.created),
            ("freed", &self.freed),
            ("delayed_free", &self.delayed_free),
        ] {
            reg.adopt_counter("tm", name, c.clone());
        }
        for (k, c) in self.classes.iter().enumerate().skip(1) {
            reg.adopt_counter("tm", &format!("{}xx_transactions", k + 1), c.clone());
        }
    }

    fn count_final(&self, code: u16) {
        if let Some(c) = self.classes.get(usize::from(code / 100).wrapping_sub(1)) {
            c.inc();
        }
    }

    /// `tm.stats` (Kamailio's shape).
    pub fn to_json(&self) -> serde_json::Value {
        let c = |k: usize| self.classes.get(k).map_or(0, |c| c.get());
        serde_json::json!({
            "current": self.current.get(),
            "waiting": self.waiting.get(),
            "total": self.total.get(),
            "total_local": self.total_local.get(),
            "rpl_received": self.rpl_received.get(),
            "rpl_generated": self.rpl_generated.get(),
            "rpl_sent": self.rpl_sent.get(),
            "6xx": c(5),
            "5xx": c(4),
            "4xx": c(3),
            "3xx": c(2),
            "2xx": c(1),
            "created": self.created.get(),
            "freed": self.freed.get(),
            "delayed_free": self.delayed_free.get(),
        })
    }
}

/// The tm part of a message's context: routes armed before the transaction exists, the
/// transaction once it does, and in reply/failure routes which branch and reply they see.
#[derive(Debug, Clone, Default)]
pub struct TmMsg {
    pub tx: Option<Arc<Tx>>,
    pub on_reply: Option<RouteId>,
    pub on_failure: Option<RouteId>,
    pub on_branch: Option<RouteId>,
    /// `$T_branch_idx`.
    pub branch: Option<usize>,
    /// The reply being handled (onreply_route) or the winning one (failure_route).
    pub reply_code: u16,
    /// Its octets, for `$T_rpl(...)` (`None` for a reply tm made itself, such as a 408).
    pub reply: Option<Arc<Vec<u8>>>,
    /// `t_set_fr()` before the transaction exists: (INVITE, non-INVITE) ms, 0 = default.
    pub fr: Option<(u64, u64)>,
}

/// How the request route left the message when it relayed it: what every later branch of
/// the transaction (failure route) is built from, as Kamailio keeps the request's lumps.
#[derive(Debug, Clone, Default)]
struct Forwarding {
    edits: Edits,
    record_route: Option<RecordRoute>,
    force_rport: bool,
    local_rport: bool,
    forward_flags: SendFlags,
}

/// One branch of a transaction (a UAC).
#[derive(Debug)]
struct UacBranch {
    uri: String,
    hop: NextHop,
    local: usize,
    /// The machine of the request sent (it holds the octets, for retransmissions and the
    /// CANCEL); `None` once the branch gave up.
    client: Option<ClientTransaction>,
    cancel: Option<Box<ClientTransaction>>,
    /// A provisional reply arrived.
    provisional: bool,
    /// Any reply arrived.
    replied: bool,
    /// The final code of the branch (0: none yet), received or made locally.
    final_code: u16,
    /// The final reply as it would be relayed (our Via removed); `None` for a local one.
    reply: Option<Arc<Vec<u8>>>,
    timed_out: bool,
    /// CANCEL as soon as a provisional arrives (cancel_b_method 1).
    cancel_pending: Option<String>,
    cancel_sent: bool,
    on_reply: Option<RouteId>,
    fr_gen: u32,
}

/// The state of a transaction that changes.
#[derive(Debug)]
pub struct TxState {
    uas: ServerTransaction,
    /// The final code sent upstream (0: none yet).
    final_code: u16,
    branches: Vec<UacBranch>,
    on_reply: Option<RouteId>,
    on_failure: Option<RouteId>,
    on_branch: Option<RouteId>,
    avps: AvpStore,
    xavps: XavpStore,
    flags: u32,
    /// The Request-URI when the transaction was relayed (`$ru` of failure_route).
    ruri: String,
    forwarding: Option<Box<Forwarding>>,
    canceled: bool,
    /// A failure route runs now (on another copy of the state).
    in_failure: bool,
    /// Branches are being created: the transaction cannot be complete yet.
    adding: bool,
    fr: u64,
    fr_inv: u64,
    /// Freed: no longer in the tables.
    freed: bool,
}

/// One transaction.
pub struct Tx {
    pub id: u64,
    key: TransactionKey,
    pub invite: bool,
    pub method: String,
    /// The request as received (a local one: as sent).
    request: sable_transaction::Octets,
    recv: RecvInfo,
    reply_dst: SocketAddr,
    to_tag: String,
    program: Arc<Program<Sip>>,
    created: Millis,
    lifetime: u64,
    /// A request this server sent on its own (`tm.t_uac_start`, modules): no caller to
    /// answer; the final reply goes to the callback.
    local: Option<Mutex<Option<UacCallback>>>,
    state: Mutex<TxState>,
    /// The timer wheel's slots holding this transaction's distant deadlines, dropped when
    /// it is freed (a lock of its own: timers are armed with `state` held).
    armed: Mutex<Armed>,
    /// Held by every route that runs on the transaction's script state (AVPs, XAVPs, flags:
    /// copied in, and back when the route ends), so that none writes back over what another
    /// did: the request route from the transaction's creation to its end, reply and failure
    /// routes while they run (see [`ScriptLock`]).
    script: ScriptLock,
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("id", &self.id)
            .field("method", &self.method)
            .finish()
    }
}

impl Tx {
    /// Takes what the script left in `ctx` (AVPs, XAVPs, flags) as the transaction's.
    pub fn keep_script_state(&self, ctx: &MsgCtx<'_>) {
        let mut st = self.state.lock();
        st.avps = ctx.avps.clone();
        st.xavps = ctx.xavps.clone();
        st.flags = ctx.flags;
    }

    fn load_script_state(&self, ctx: &mut MsgCtx<'_>) {
        let st = self.state.lock();
        ctx.avps = st.avps.clone();
        ctx.xavps = st.xavps.clone();
        ctx.flags = st.flags;
    }

    /// The message flags kept by the transaction.
    pub fn flags(&self) -> u32 {
        self.state.lock().flags
    }

    /// `t_is_canceled()`.
    pub fn is_canceled(&self) -> bool {
        self.state.lock().canceled
    }

    /// The final code sent upstream (0 when none yet).
    pub fn final_code(&self) -> u16 {
        self.state.lock().final_code
    }

    /// Branch `idx` timed out (`None`: any branch).
    pub fn timed_out(&self, idx: Option<usize>) -> bool {
        let st = self.state.lock();
        match idx {
            Some(i) => st.branches.get(i).is_some_and(|b| b.timed_out),
            None => st.branches.iter().any(|b| b.timed_out),
        }
    }

    /// Branch `idx` got a reply (`None`: any branch).
    pub fn replied(&self, idx: Option<usize>) -> bool {
        let st = self.state.lock();
        match idx {
            Some(i) => st.branches.get(i).is_some_and(|b| b.replied),
            None => st.branches.iter().any(|b| b.replied),
        }
    }

    /// Which routes are armed: (onreply, failure, branch).
    pub fn armed(&self) -> (bool, bool, bool) {
        let st = self.state.lock();
        (
            st.on_reply.is_some(),
            st.on_failure.is_some(),
            st.on_branch.is_some(),
        )
    }

    /// Arms routes on the live transaction (`t_on_*` after it exists).
    pub fn arm(&self, reply: Option<RouteId>, failure: Option<RouteId>, branch: Option<RouteId>) {
        let mut st = self.state.lock();
        if reply.is_some() {
            st.on_reply = reply;
        }
        if failure.is_some() {
            st.on_failure = failure;
        }
        if branch.is_some() {
            st.on_branch = branch;
        }
    }

    /// `t_set_fr()` on the live transaction (0 keeps a value).
    pub fn set_fr(&self, inv: u64, noninv: u64) {
        let mut st = self.state.lock();
        if inv > 0 {
            st.fr_inv = inv;
        }
        if noninv > 0 {
            st.fr = noninv;
        }
    }

    /// Number of branches so far.
    pub fn branch_count(&self) -> usize {
        self.state.lock().branches.len()
    }

    /// Drops the replies stored so far (`t_drop_replies()`): a failure route that adds no
    /// branch then answers with a local 500... as Kamailio does with no reply left.
    pub fn drop_replies(&self) {
        let mut st = self.state.lock();
        for b in &mut st.branches {
            b.reply = None;
            b.final_code = b.final_code.max(1);
        }
    }

    /// The request as received (for `$T_req(...)`).
    pub fn request(&self) -> &[u8] {
        &self.request
    }

    /// Where the request came from.
    pub fn recv(&self) -> &RecvInfo {
        &self.recv
    }

    /// Whether the transaction outlived its max lifetime.
    pub fn expired(&self, now: Millis) -> bool {
        now.0 >= self.created.0 + self.lifetime
    }

    /// One line of `tm.list`.
    pub fn describe(&self) -> serde_json::Value {
        let st = self.state.lock();
        let msg = Message::parse(&self.request).ok();
        let text = |f: &dyn Fn(&Message<'_>) -> Option<String>| {
            msg.as_ref().and_then(f).unwrap_or_default()
        };
        serde_json::json!({
            "tindex": self.id,
            "method": self.method,
            "from": text(&|m| m.header(HeaderName::From).map(|h| String::from_utf8_lossy(m.value(h)).into_owned())),
            "to": text(&|m| m.header(HeaderName::To).map(|h| String::from_utf8_lossy(m.value(h)).into_owned())),
            "callid": text(&|m| m.call_id().ok().map(|c| String::from_utf8_lossy(c).into_owned())),
            "cseq": text(&|m| m.cseq().ok().map(|c| c.number.to_string())),
            "uas_status": st.final_code,
            "branches": st.branches.iter().map(|b| serde_json::json!({
                "uri": b.uri,
                "status": b.final_code,
                "timed_out": b.timed_out,
            })).collect::<Vec<_>>(),
            "canceled": st.canceled,
        })
    }
}

/// What other modules hear of transactions (dialog tracking, accounting).
#[derive(Debug)]
pub enum TmEvent<'e, 'c> {
    /// A transaction was created for the request being routed (before its branches go).
    Created {
        tx: &'e Arc<Tx>,
        ctx: &'e MsgCtx<'c>,
    },
    /// A reply is going upstream (relayed or made here), just before it is sent.
    ReplySent {
        tx: &'e Arc<Tx>,
        code: u16,
        reply: &'e [u8],
    },
    /// The transaction was freed.
    Freed { tx: &'e Arc<Tx> },
}

/// A listener of [`TmEvent`]s. It runs on whichever thread caused the event, with no
/// transaction lock held.
pub type TmListener = Arc<dyn Fn(&TmEvent<'_, '_>) + Send + Sync>;

/// Why no transaction was created.
#[derive(Debug)]
pub enum NewTx {
    /// The request retransmits an existing transaction (its last reply was re-sent).
    Retransmission(Arc<Tx>),
    /// The request cannot start one (no usable Via, an ACK...).
    Refused(String),
}

const BUCKETS: usize = 256;
/// The branch prefix of the Vias tm adds.
const BRANCH_PREFIX: &str = "z9hG4bKtm";

/// The transaction layer.
pub struct Tm {
    pub cfg: TmConfig,
    pub stats: TmStats,
    table: Vec<Mutex<HashMap<TransactionKey, Arc<Tx>, KeyHasher>>>,
    ids: Vec<Mutex<HashMap<u64, Arc<Tx>, KeyHasher>>>,
    /// Picks a key's `table` bucket.
    buckets: KeyHasher,
    timers: TimerQueue,
    epoch: Instant,
    next_id: AtomicU64,
    client_timers: Timers,
    uas_timers: Timers,
    core: std::sync::OnceLock<Weak<Core>>,
    listeners: parking_lot::RwLock<Vec<TmListener>>,
}

impl std::fmt::Debug for Tm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tm").field("cfg", &self.cfg).finish()
    }
}

/// The hasher of the transaction tables. Keys carry branches from the network: a hash
/// seeded at random per process keeps crafted branches from piling up in one bucket, as
/// SipHash did, for a fraction of its cost (a reply, a request and a freed transaction
/// each hash a key).
type KeyHasher = foldhash::fast::RandomState;

impl Tm {
    /// The `table` bucket of `key`.
    fn bucket_of(&self, key: &TransactionKey) -> usize {
        usize::try_from(self.buckets.hash_one(key) % BUCKETS as u64).unwrap_or(0)
    }
}

/// Gives a table bucket's spare capacity back once the transactions of a past peak are
/// gone (a hash map keeps its largest size otherwise).
fn trim_table<K: Eq + Hash, V, S: BuildHasher>(map: &mut HashMap<K, V, S>) {
    const KEEP: usize = 16;
    if map.capacity() > KEEP && map.capacity() > 4 * map.len() {
        map.shrink_to((2 * map.len()).max(KEEP));
    }
}

/// The bucket of a transaction id: ids are consecutive, so their low bits spread them
/// evenly without hashing (a timer entry and every reply look one up).
fn id_bucket(id: u64) -> usize {
    usize::try_from(id % BUCKETS as u64).unwrap_or(0)
}

/// Kamailio's preference among final replies (`get_prio` in t_reply.c): 6xx, then 2xx is
/// handled apart, 3xx, 4xx (401, 407, 415, 420, 484 first), 5xx; lower code within a class.
fn reply_rank(code: u16) -> (u8, u8, u16) {
    let class = match code / 100 {
        2 => 0,
        6 => 1,
        3 => 2,
        4 => 3,
        5 => 4,
        _ => 5,
    };
    let preferred = u8::from(!matches!(code, 401 | 407 | 415 | 420 | 484));
    (class, preferred, code)
}

/// The branch whose reply ends the transaction once every branch has its final code: the
/// best by [`reply_rank`]. None while a branch is still pending, and when a branch got a
/// 2xx: its reply worker sends that 2xx upstream itself (RFC 3261 §16.7 step 5), and in
/// the moment between recording the branch's code and sending, the transaction must not be
/// completed here too (it was: with no reply stored for a 2xx branch, a local 500 went up
/// and the 200 of a BYE was then dropped).
fn branch_to_complete(codes: impl Iterator<Item = u16>) -> Option<usize> {
    let mut best: Option<(usize, u16)> = None;
    for (k, code) in codes.enumerate() {
        if code == 0 || (200..300).contains(&code) {
            return None;
        }
        if best.is_none_or(|(_, b)| reply_rank(code) < reply_rank(b)) {
            best = Some((k, code));
        }
    }
    best.map(|(k, _)| k)
}

/// A CANCEL for a request this side sent (RFC 3261 §9.1): same Request-URI, top Via,
/// Route set, From, To, Call-ID and CSeq number.
fn build_cancel(request: &[u8], reason: &str) -> Option<Vec<u8>> {
    let req = Message::parse(request).ok()?;
    let sable_sip::StartLine::Request { uri, .. } = req.start_line() else {
        return None;
    };
    let mut out = Vec::with_capacity(request.len().min(1024));
    out.extend_from_slice(b"CANCEL ");
    out.extend_from_slice(uri);
    out.extend_from_slice(b" SIP/2.0\r\n");
    let top = req.header(HeaderName::Via)?;
    out.extend_from_slice(b"Via: ");
    out.extend_from_slice(req.value(top));
    out.extend_from_slice(b"\r\n");
    for (name, hn) in [
        ("Route", HeaderName::Route),
        ("From", HeaderName::From),
        ("To", HeaderName::To),
        ("Call-ID", HeaderName::CallId),
    ] {
        for h in req.headers_named(hn) {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(req.value(h));
            out.extend_from_slice(b"\r\n");
        }
    }
    let cseq = req.cseq().ok()?;
    out.extend_from_slice(
        format!("CSeq: {} CANCEL\r\nMax-Forwards: 70\r\n", cseq.number).as_bytes(),
    );
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    Some(out)
}

/// Leaves out Timer F of a new non-INVITE branch whose fr timer (at `fr_at`) runs out no
/// later: tm's fr timer ends such a branch first (with its 408, dropping the machine), so
/// Timer F could never fire on a live machine and its entry would only go stale in the
/// queue. (Timer F still exists in the machine; it is only not waited for. A non-INVITE
/// branch's fr timer never restarts; an INVITE's Timer B is always armed.)
fn drop_shadowed_timer_f(actions: &mut Vec<ClientAction>, invite: bool, fr_at: Millis) {
    if !invite {
        actions.retain(|a| {
            !matches!(a, ClientAction::Schedule { timer: sable_transaction::Timer::TimerF, at } if fr_at <= *at)
        });
    }
}

/// The `(transaction id, branch)` of a branch tm wrote.
/// Read digit by digit (every reply comes through here).
fn parse_branch(branch: &[u8]) -> Option<(u64, usize)> {
    let rest = branch.strip_prefix(BRANCH_PREFIX.as_bytes())?;
    let dot = rest.iter().position(|&b| b == b'.')?;
    let (id, idx) = rest.split_at(dot);
    let idx = idx.get(1..)?;
    if id.is_empty() || id.len() > 16 || idx.is_empty() {
        return None;
    }
    let mut tx = 0u64;
    for &b in id {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => return None,
        };
        tx = (tx << 4) | u64::from(digit);
    }
    let mut branch_idx = 0usize;
    for &b in idx {
        if !b.is_ascii_digit() {
            return None;
        }
        branch_idx = branch_idx
            .checked_mul(10)?
            .checked_add(usize::from(b - b'0'))?;
    }
    Some((tx, branch_idx))
}

thread_local! {
    /// `$var` values for routes tm runs on its timer thread.
    static TIMER_VARS: std::cell::RefCell<Vec<sable_script::Value>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

impl Tm {
    /// The transaction layer for `core`, with its timer thread started.
    pub fn start(cfg: TmConfig, core: &Arc<Core>) -> Result<Arc<Tm>, String> {
        let seed = crate::sip_util::hash64(core.sl_tag_prefix.as_bytes());
        let t1 = Millis(cfg.retr_timer1.max(1));
        let t2 = Millis(cfg.retr_timer2.max(cfg.retr_timer1).max(1));
        let client_timers = Timers {
            t1,
            t2,
            t4: Millis(5_000),
            // Kamailio caps INVITE retransmissions at T2 too.
            cap_timer_a: true,
        };
        let uas_timers = Timers {
            t1,
            t2,
            t4: Millis(cfg.wt_timer),
            cap_timer_a: true,
        };
        let tm = Arc::new(Tm {
            stats: TmStats::default(),
            table: (0..BUCKETS).map(|_| Mutex::default()).collect(),
            ids: (0..BUCKETS).map(|_| Mutex::default()).collect(),
            buckets: KeyHasher::default(),
            timers: TimerQueue::default(),
            epoch: Instant::now(),
            next_id: AtomicU64::new(seed & 0x0000_ffff_ffff_0000),
            client_timers,
            uas_timers,
            core: std::sync::OnceLock::new(),
            listeners: parking_lot::RwLock::new(Vec::new()),
            cfg,
        });
        let _ = tm.core.set(Arc::downgrade(core));
        tm.stats.publish(&core.stat_registry);
        let weak = Arc::downgrade(&tm);
        std::thread::Builder::new()
            .name("tm-timer".to_owned())
            .spawn(move || timer_loop(&weak))
            .map_err(|e| format!("tm: cannot start the timer thread: {e}"))?;
        Ok(tm)
    }

    /// Adds a listener of transaction events.
    pub fn subscribe(&self, listener: TmListener) {
        self.listeners.write().push(listener);
    }

    fn emit(&self, event: &TmEvent<'_, '_>) {
        let listeners = self.listeners.read().clone();
        for l in listeners {
            l(event);
        }
    }

    fn has_listeners(&self) -> bool {
        !self.listeners.read().is_empty()
    }

    /// The state of a new transaction: its server machine, no branch yet, Kamailio's timer
    /// values unless `fr` (INVITE, non-INVITE ms; 0 = default) overrides them.
    fn fresh_state(
        &self,
        invite: bool,
        reliable: bool,
        now: Millis,
        ruri: String,
        fr: (u64, u64),
    ) -> TxState {
        TxState {
            uas: ServerTransaction::new(
                if invite {
                    ServerKind::Invite
                } else {
                    ServerKind::NonInvite
                },
                reliable,
                &self.uas_timers,
                now,
            ),
            final_code: 0,
            // Most transactions have one branch (a local one, always).
            branches: Vec::with_capacity(1),
            on_reply: None,
            on_failure: None,
            on_branch: None,
            avps: AvpStore::new(),
            xavps: XavpStore::new(),
            flags: 0,
            ruri,
            forwarding: None,
            canceled: false,
            in_failure: false,
            adding: false,
            fr: if fr.1 > 0 { fr.1 } else { self.cfg.fr_timer },
            fr_inv: if fr.0 > 0 {
                fr.0
            } else {
                self.cfg.fr_inv_timer
            },
            freed: false,
        }
    }

    /// max_inv_lifetime or max_noninv_lifetime.
    fn lifetime_of(&self, invite: bool) -> u64 {
        if invite {
            self.cfg.max_inv_lifetime
        } else {
            self.cfg.max_noninv_lifetime
        }
    }

    /// Milliseconds since start (the transactions' clock).
    pub fn now(&self) -> Millis {
        Millis(u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    /// How many transactions exist.
    pub fn count(&self) -> usize {
        self.ids.iter().map(|b| b.lock().len()).sum()
    }

    /// The layer's own accounting (`tm.memory`): transactions, timer entries waiting, and
    /// the room the tables and the timer wheel hold (in entries).
    pub fn memory(&self) -> serde_json::Value {
        let (mut by_key, mut by_id) = (0, 0);
        for b in &self.table {
            by_key += b.lock().capacity();
        }
        for b in &self.ids {
            by_id += b.lock().capacity();
        }
        let (entries, room) = self.timers.sizes();
        serde_json::json!({
            "transactions": self.count(),
            "timer_entries": entries,
            "timer_capacity": room,
            "table_capacity": by_key,
            "id_table_capacity": by_id,
        })
    }

    /// Every transaction (`tm.list`).
    pub fn all(&self) -> Vec<Arc<Tx>> {
        self.ids
            .iter()
            .flat_map(|b| b.lock().values().cloned().collect::<Vec<_>>())
            .collect()
    }

    /// The transaction a request belongs to (`t_lookup_request`).
    pub fn lookup(&self, key: &TransactionKey) -> Option<Arc<Tx>> {
        self.table
            .get(self.bucket_of(key))
            .and_then(|b| b.lock().get(key).cloned())
    }

    fn by_id(&self, id: u64) -> Option<Arc<Tx>> {
        self.ids
            .get(id_bucket(id))
            .and_then(|b| b.lock().get(&id).cloned())
    }

    /// Removes a transaction from the tables.
    fn free(&self, tx: &Arc<Tx>) {
        let had_final = {
            let mut st = tx.state.lock();
            if st.freed {
                return;
            }
            st.freed = true;
            st.final_code >= 200
        };
        if had_final {
            self.stats.waiting.sub(1);
        }
        if let Some(b) = self.table.get(self.bucket_of(&tx.key)) {
            let mut b = b.lock();
            b.remove(&tx.key);
            trim_table(&mut b);
        }
        if let Some(b) = self.ids.get(id_bucket(tx.id)) {
            let mut b = b.lock();
            b.remove(&tx.id);
            trim_table(&mut b);
        }
        let armed = std::mem::take(&mut *tx.armed.lock());
        self.timers.forget(tx.id, armed.slots());
        self.stats.current.sub(1);
        self.stats.freed.inc();
        if self.has_listeners() {
            self.emit(&TmEvent::Freed { tx });
        }
    }

    /// When a transaction that completed at `now` is freed: `wt_timer` later, rounded up
    /// to a tenth of a second, so that the timer thread frees the transactions of a busy
    /// tenth together instead of waking every tick for a few (the wait timer only has to
    /// outlast late retransmissions; Kamailio runs it on a coarse timer as well).
    fn wait_deadline(&self, now: Millis) -> Millis {
        const GRAIN_MS: u64 = 100;
        Millis((now.0 + self.cfg.wt_timer).div_ceil(GRAIN_MS) * GRAIN_MS)
    }

    /// Arms `what` of `tx` at `at`, noting the slot of a distant deadline so that freeing
    /// the transaction takes it out of the wheel.
    fn arm(&self, tx: &Tx, at: Millis, what: TimerWhat) {
        if let Some(slot) = self.timers.push(at, tx.id, what) {
            tx.armed.lock().note(slot);
        }
    }

    /// Releases a transaction now (`t_release`).
    pub fn release(&self, tx: &Arc<Tx>) {
        self.free(tx);
    }

    /// `t_newtran()`: the transaction of the request in `ctx`, created now. A retransmission
    /// gets its last reply again.
    pub fn new_tx(&self, ctx: &mut MsgCtx<'_>) -> Result<Arc<Tx>, NewTx> {
        if let Some(tx) = &ctx.tm.tx {
            return Ok(tx.clone());
        }
        let method = ctx
            .msg
            .method()
            .ok_or_else(|| NewTx::Refused("not a request".to_owned()))?;
        if method == Method::Ack {
            return Err(NewTx::Refused("an ACK starts no transaction".to_owned()));
        }
        let key =
            TransactionKey::of_request(&ctx.msg).map_err(|e| NewTx::Refused(e.to_string()))?;
        let via = ctx
            .msg
            .top_via()
            .map_err(|e| NewTx::Refused(format!("no usable Via: {e}")))?;
        let core = ctx.core;
        let Some(program) = ctx.program.clone().or_else(|| core.program()) else {
            return Err(NewTx::Refused("no program".to_owned()));
        };
        let now = self.now();
        let invite = method == Method::Invite;
        let reliable = ctx.recv.proto != Proto::Udp;
        let reply_dst =
            reply_destination(via, ctx.recv.src, ctx.force_rport, core.config.reply_to_via);
        let (fr_inv, fr) = ctx.tm.fr.unwrap_or((0, 0));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let tx = Arc::new(Tx {
            id,
            key: key.clone(),
            invite,
            method: method.to_string(),
            request: ctx.msg.buffer().into(),
            recv: ctx.recv.clone(),
            reply_dst,
            to_tag: stateless_to_tag(&core.sl_tag_prefix, &ctx.msg),
            program,
            created: now,
            lifetime: self.lifetime_of(invite),
            local: None,
            armed: Mutex::default(),
            script: ScriptLock::default(),
            state: Mutex::new(TxState {
                on_reply: ctx.tm.on_reply,
                on_failure: ctx.tm.on_failure,
                on_branch: ctx.tm.on_branch,
                avps: ctx.avps.clone(),
                xavps: ctx.xavps.clone(),
                flags: ctx.flags,
                ..self.fresh_state(
                    invite,
                    reliable,
                    now,
                    ctx.ruri_text().into_owned(),
                    (fr_inv, fr),
                )
            }),
        });
        // The request route holds the transaction's script state until it ends: taken before
        // the transaction can be found, so that no reply route runs on it first.
        let hold = ScriptHold::new(tx.clone());
        {
            let Some(bucket) = self.table.get(self.bucket_of(&key)) else {
                return Err(NewTx::Refused("no table".to_owned()));
            };
            let mut b = bucket.lock();
            if let Some(old) = b.get(&key).cloned() {
                drop(b);
                self.retransmission(core, &old);
                return Err(NewTx::Retransmission(old));
            }
            b.insert(key, tx.clone());
        }
        if let Some(b) = self.ids.get(id_bucket(id)) {
            b.lock().insert(id, tx.clone());
        }
        self.stats.created.inc();
        self.stats.total.inc();
        self.stats.current.add(1);
        self.arm(&tx, Millis(now.0 + tx.lifetime), TimerWhat::Lifetime);
        ctx.tm.tx = Some(tx.clone());
        ctx.tx_hold = Some(hold);
        if self.has_listeners() {
            self.emit(&TmEvent::Created { tx: &tx, ctx });
        }
        if invite && self.cfg.auto_inv_100 {
            let reason = self.cfg.auto_inv_100_reason.clone();
            self.reply_local(core, &tx, 100, &reason, "", b"", None);
        }
        Ok(tx)
    }

    /// A retransmitted request: the last reply again.
    fn retransmission(&self, core: &Core, tx: &Arc<Tx>) {
        let now = self.now();
        let mut st = tx.state.lock();
        let actions = st.uas.on_request_retransmission(now);
        self.run_uas(core, tx, &mut st, actions);
    }

    /// `t_check_trans()`-style lookup of the request of `ctx`: the transaction it belongs to.
    pub fn find(&self, ctx: &MsgCtx<'_>) -> Option<Arc<Tx>> {
        let key = match ctx.msg.method() {
            Some(Method::Cancel) => TransactionKey::invite_key_of(&ctx.msg),
            _ => TransactionKey::of_request(&ctx.msg),
        }
        .ok()?;
        self.lookup(&key)
    }

    /// `t_check_trans()`: 1 when the request belongs to a transaction, -1 when not; 0 (the
    /// script stops) when tm handled it: a retransmission answered, an ACK to a negative
    /// reply absorbed.
    pub fn check_trans(&self, ctx: &mut MsgCtx<'_>) -> i32 {
        if !ctx.is_request() {
            // A reply: whether it is for one of our transactions.
            let ours = ctx
                .msg
                .top_via()
                .ok()
                .and_then(|v| v.branch())
                .and_then(parse_branch)
                .and_then(|(id, _)| self.by_id(id))
                .is_some();
            return if ours { 1 } else { -1 };
        }
        let Some(tx) = self.find(ctx) else {
            return -1;
        };
        match ctx.msg.method() {
            Some(Method::Cancel) => 1,
            Some(Method::Ack) => {
                if self.absorb_ack(ctx.core, &tx) {
                    0
                } else {
                    1
                }
            }
            _ => {
                self.retransmission(ctx.core, &tx);
                0
            }
        }
    }

    /// An ACK for a negative final reply of `tx`: absorbed (true).
    fn absorb_ack(&self, core: &Core, tx: &Arc<Tx>) -> bool {
        let now = self.now();
        let mut st = tx.state.lock();
        if st.final_code < 300 {
            return false;
        }
        let actions = st.uas.on_ack(now);
        self.run_uas(core, tx, &mut st, actions);
        true
    }

    /// `t_relay()` (`target`: the host/port forms) in request and failure routes.
    pub fn relay(&self, ctx: &mut MsgCtx<'_>, target: Option<NextHop>) -> i32 {
        if !ctx.is_request() {
            return -1;
        }
        if ctx.route == RouteMask::FAILURE {
            let Some(tx) = ctx.tm.tx.clone() else {
                return -1;
            };
            return if self.add_branches(ctx, &tx, target.as_ref()) > 0 {
                1
            } else {
                -1
            };
        }
        match ctx.msg.method() {
            Some(Method::Ack) => return self.relay_ack(ctx, target.as_ref()),
            Some(Method::Cancel) => {
                if let Some(code) = self.relay_cancel(ctx) {
                    return code;
                }
            }
            _ => {}
        }
        let tx = match self.new_tx(ctx) {
            Ok(tx) => tx,
            Err(NewTx::Retransmission(_)) => return 1,
            Err(NewTx::Refused(e)) => {
                tracing::warn!("t_relay: no transaction: {e}");
                return -1;
            }
        };
        {
            let mut st = tx.state.lock();
            st.forwarding = Some(Box::new(Forwarding {
                edits: ctx.edits.clone(),
                record_route: ctx.record_route.clone(),
                force_rport: ctx.force_rport,
                local_rport: ctx.local_rport,
                forward_flags: ctx.forward_flags,
            }));
            st.ruri = ctx.ruri_text().into_owned();
        }
        if self.add_branches(ctx, &tx, target.as_ref()) > 0 {
            return 1;
        }
        // Nothing could be sent: the caller gets an error reply now (Kamailio's
        // kill_transaction), and the script sees -1.
        let (code, reason) = (500, "I'm terribly sorry, server error occurred (1/TM)");
        if tx.final_code() == 0 {
            self.reply_local(ctx.core, &tx, code, reason, "", b"", None);
            ctx.replied = true;
        }
        -1
    }

    /// An ACK: absorbed when it acknowledges a negative reply of a transaction, else
    /// forwarded statelessly (an ACK for a 2xx is end-to-end).
    fn relay_ack(&self, ctx: &mut MsgCtx<'_>, target: Option<&NextHop>) -> i32 {
        if let Some(tx) = self.find(ctx) {
            if self.absorb_ack(ctx.core, &tx) {
                return 1;
            }
        }
        let hop = match target {
            Some(h) => Ok(h.clone()),
            None => {
                let t = ctx
                    .dst_uri
                    .clone()
                    .unwrap_or_else(|| ctx.ruri_text().into_owned());
                next_hop_of_uri(&t)
            }
        };
        match hop.and_then(|h| forward_request(ctx, &h)) {
            Ok(()) => 1,
            Err(e) => {
                tracing::warn!("t_relay: ACK not forwarded: {e}");
                -1
            }
        }
    }

    /// A CANCEL for a pending INVITE transaction: answered 200 here and sent on the
    /// branches (RFC 3261 §16.10). `None` when there is no such transaction (the CANCEL is
    /// then relayed as a request of its own).
    fn relay_cancel(&self, ctx: &mut MsgCtx<'_>) -> Option<i32> {
        let tx = self.find(ctx)?;
        let core = ctx.core;
        if let Err(e) = send_reply(ctx, 200, "canceling", "", b"", None) {
            tracing::debug!("tm: 200 for CANCEL not sent: {e}");
        }
        let reason = if self.cfg.e2e_cancel_reason {
            ctx.msg
                .headers_named(HeaderName::Reason)
                .map(|h| format!("Reason: {}\r\n", String::from_utf8_lossy(ctx.msg.value(h))))
                .collect::<String>()
        } else {
            String::new()
        };
        let now = self.now();
        let mut st = tx.state.lock();
        st.canceled = true;
        if st.final_code < 200 {
            for idx in 0..st.branches.len() {
                self.cancel_branch(core, &tx, &mut st, idx, &reason, now);
            }
        }
        Some(1)
    }

    /// Cancels branch `idx` (or arms the CANCEL for its first provisional reply).
    fn cancel_branch(
        &self,
        core: &Core,
        tx: &Arc<Tx>,
        st: &mut TxState,
        idx: usize,
        reason: &str,
        now: Millis,
    ) {
        let method = self.cfg.cancel_b_method;
        let Some(br) = st.branches.get_mut(idx) else {
            return;
        };
        if br.final_code != 0 || br.cancel_sent || !tx.invite {
            return;
        }
        if !br.provisional {
            match method {
                // Reply 487 locally for the branch now, stop retransmitting.
                0 => {
                    br.final_code = 487;
                    br.client = None;
                    return;
                }
                2 => {}
                _ => {
                    br.cancel_pending = Some(reason.to_owned());
                    return;
                }
            }
        }
        self.send_cancel(core, tx, br, idx, reason, now);
    }

    fn send_cancel(
        &self,
        core: &Core,
        tx: &Arc<Tx>,
        br: &mut UacBranch,
        idx: usize,
        reason: &str,
        now: Millis,
    ) {
        br.cancel_pending = None;
        let Some(cancel) = br
            .client
            .as_ref()
            .and_then(|c| build_cancel(c.request(), reason))
        else {
            return;
        };
        br.cancel_sent = true;
        let (client, actions) = ClientTransaction::new(
            ClientKind::NonInvite,
            cancel,
            br.hop.proto != Proto::Udp,
            &self.client_timers,
            now,
        );
        br.cancel = Some(Box::new(client));
        self.run_client(core, tx, (&br.hop, br.local), idx, true, actions);
    }

    /// Creates and sends the branches of the destination set of `ctx` (the Request-URI
    /// unless consumed, then the appended branches), running branch_route for each.
    /// Gives how many were sent.
    fn add_branches(&self, ctx: &mut MsgCtx<'_>, tx: &Arc<Tx>, target: Option<&NextHop>) -> usize {
        let mut dests: Vec<Branch> = Vec::new();
        if !ctx.ruri_consumed {
            dests.push(Branch {
                uri: ctx.ruri_text().into_owned(),
                dst_uri: ctx.dst_uri.clone(),
                q: None,
                flags: ctx.bflags,
                socket: ctx.force_socket,
            });
        }
        dests.append(&mut ctx.branches);
        ctx.ruri_consumed = false;
        let on_branch = {
            let mut st = tx.state.lock();
            if st.canceled || st.final_code >= 200 {
                return 0;
            }
            st.adding = true;
            st.on_branch.take()
        };
        ctx.tm.on_branch = None;
        let saved = (
            ctx.new_uri.clone(),
            ctx.dst_uri.clone(),
            ctx.edits.clone(),
            ctx.bflags,
            ctx.force_socket,
            ctx.route,
        );
        let mut sent = 0;
        for d in dests {
            ctx.new_uri = Some(d.uri.clone());
            ctx.dst_uri = d.dst_uri.clone();
            ctx.bflags = d.flags;
            ctx.force_socket = d.socket.or(saved.4);
            ctx.edits = saved.2.clone();
            let idx = tx.state.lock().branches.len();
            if let Some(route) = on_branch {
                ctx.route = RouteMask::BRANCH;
                ctx.tm.branch = Some(idx);
                let result = tx.program.run(route, ctx);
                ctx.route = saved.5;
                ctx.tm.branch = None;
                if result.dropped {
                    continue;
                }
            }
            let hop = match target {
                Some(h) => Ok(h.clone()),
                None => {
                    let t = ctx
                        .dst_uri
                        .clone()
                        .unwrap_or_else(|| ctx.ruri_text().into_owned());
                    next_hop_of_uri(&t)
                }
            };
            let hop = match hop {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!("t_relay: branch {} not sent: {e}", d.uri);
                    continue;
                }
            };
            let branch = format!("{BRANCH_PREFIX}{:x}.{idx}", tx.id);
            let (bytes, local) = match build_forwarded(ctx, &hop, &branch) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!("t_relay: branch {} not sent: {e}", d.uri);
                    continue;
                }
            };
            if !run_onsend(ctx, &hop) {
                continue;
            }
            let now = self.now();
            let mut st = tx.state.lock();
            let (client, mut actions) = ClientTransaction::new(
                if tx.invite {
                    ClientKind::Invite
                } else {
                    ClientKind::NonInvite
                },
                bytes,
                hop.proto != Proto::Udp,
                &self.client_timers,
                now,
            );
            let fr = st.fr;
            drop_shadowed_timer_f(&mut actions, tx.invite, Millis(now.0 + fr));
            let on_reply = st.on_reply;
            st.branches.push(UacBranch {
                uri: ctx.ruri_text().into_owned(),
                hop: hop.clone(),
                local,
                client: Some(client),
                cancel: None,
                provisional: false,
                replied: false,
                final_code: 0,
                reply: None,
                timed_out: false,
                cancel_pending: None,
                cancel_sent: false,
                on_reply,
                fr_gen: 0,
            });
            drop(st);
            self.run_client(ctx.core, tx, (&hop, local), idx, false, actions);
            self.arm(tx, Millis(now.0 + fr), TimerWhat::Fr(idx, 0));
            ctx.core.stats.fwd_requests.inc();
            sent += 1;
        }
        ctx.new_uri = saved.0;
        ctx.dst_uri = saved.1;
        ctx.edits = saved.2;
        ctx.bflags = saved.3;
        ctx.force_socket = saved.4;
        tx.state.lock().adding = false;
        // Branches that all ended while the others were being sent.
        let mut vars = std::mem::take(&mut ctx.vars);
        self.maybe_complete(ctx.core, tx, &mut vars);
        ctx.vars = vars;
        sent
    }

    /// Sends what a client machine asked for and arms its timers; gives what it tells the
    /// TU (a delivered code, or 0 for a timeout).
    fn run_client(
        &self,
        core: &Core,
        tx: &Arc<Tx>,
        dest: (&NextHop, usize),
        idx: usize,
        cancel: bool,
        actions: Vec<ClientAction>,
    ) -> Vec<u16> {
        let mut delivered = Vec::new();
        for a in actions {
            match a {
                ClientAction::Send(bytes) => {
                    if let Err(e) = core.send_with(
                        dest.0.proto,
                        dest.0.addr,
                        Some(dest.1),
                        None,
                        &bytes,
                        SendFlags::default(),
                    ) {
                        tracing::debug!("tm: send to {}: {e}", dest.0.addr);
                    }
                }
                // Timer K only takes a completed non-INVITE machine to Terminated, which
                // tm cannot tell apart (both absorb a retransmitted reply, neither acts):
                // the transaction's own wait timer frees it and the machine with it, so K
                // is not waited for (one timer entry fewer per non-INVITE branch).
                ClientAction::Schedule {
                    timer: sable_transaction::Timer::TimerK,
                    ..
                } => {}
                ClientAction::Schedule { timer, at } => {
                    let what = if cancel {
                        TimerWhat::Cancel(idx, timer)
                    } else {
                        TimerWhat::Client(idx, timer)
                    };
                    self.arm(tx, at, what);
                }
                ClientAction::Deliver { code } => delivered.push(code),
                ClientAction::SendAck { code } => {
                    tracing::debug!("tm: no ACK could be built for a {code}");
                }
                ClientAction::TimedOut | ClientAction::TransportError => delivered.push(0),
                ClientAction::Terminated => {}
            }
        }
        delivered
    }

    /// Sends what the server machine asked for, arms its timers; frees the transaction when
    /// the machine ends.
    fn run_uas(&self, core: &Core, tx: &Arc<Tx>, _st: &mut TxState, actions: Vec<ServerAction>) {
        for a in actions {
            match a {
                ServerAction::Send(bytes) => {
                    if let Err(e) = core.send_with(
                        tx.recv.proto,
                        tx.reply_dst,
                        Some(tx.recv.local.index),
                        tx.recv.conn,
                        &bytes,
                        SendFlags::default(),
                    ) {
                        tracing::debug!("tm: reply to {}: {e}", tx.reply_dst);
                    }
                }
                ServerAction::Schedule { timer, at } => {
                    self.arm(tx, at, TimerWhat::Uas(timer));
                }
                ServerAction::TimedOut | ServerAction::TransportError => {}
                ServerAction::Terminated => {
                    self.arm(tx, self.now(), TimerWhat::Delete);
                }
            }
        }
    }

    /// A reply made here, sent upstream through the server machine.
    #[allow(clippy::too_many_arguments)]
    pub fn reply_local(
        &self,
        core: &Core,
        tx: &Arc<Tx>,
        code: u16,
        reason: &str,
        extra_headers: &str,
        body: &[u8],
        content_type: Option<&str>,
    ) -> bool {
        let Ok(req) = Message::parse(&tx.request) else {
            return false;
        };
        let Ok(via) = req.top_via() else {
            return false;
        };
        let force_rport = tx
            .state
            .lock()
            .forwarding
            .as_ref()
            .is_some_and(|f| f.force_rport);
        let top_via = via_with_received(via, tx.recv.src, force_rport);
        let bytes = build_reply(
            &req,
            &ReplySpec {
                code,
                reason,
                to_tag: (code > 100).then_some(tx.to_tag.as_str()),
                top_via: top_via.as_deref(),
                extra_headers,
                server_header: core.config.server_header.as_deref(),
                body,
                content_type,
            },
        );
        self.stats.rpl_generated.inc();
        self.send_upstream(core, tx, code, bytes)
    }

    /// Sends a reply upstream (relayed or local) through the server machine: false when the
    /// machine refused it (a final was already sent).
    fn send_upstream(&self, core: &Core, tx: &Arc<Tx>, code: u16, bytes: Vec<u8>) -> bool {
        let now = self.now();
        let mut st = tx.state.lock();
        if st.final_code >= 200 && !(tx.invite && (200..300).contains(&code)) {
            return false;
        }
        if let Some(callback) = &tx.local {
            // A local request: the final reply ends it; nothing goes upstream.
            if code >= 200 && st.final_code < 200 {
                st.final_code = code;
                self.stats.count_final(code);
                self.stats.waiting.add(1);
                let reply_seen = (!bytes.is_empty()).then_some(bytes);
                drop(st);
                if let Some(cb) = callback.lock().take() {
                    cb(code, reply_seen.as_deref());
                }
                self.arm(tx, self.wait_deadline(now), TimerWhat::Delete);
            }
            return true;
        }
        // Listeners (dialog tracking) see the reply before it leaves, as Kamailio's
        // TMCB_RESPONSE_FWDED: an ACK answering it must find them up to date.
        if self.has_listeners() {
            drop(st);
            self.emit(&TmEvent::ReplySent {
                tx,
                code,
                reply: &bytes,
            });
            st = tx.state.lock();
            if st.final_code >= 200 && !(tx.invite && (200..300).contains(&code)) {
                return false;
            }
        }
        let actions = st.uas.on_tu_response(code, bytes, now);
        if actions.is_empty() {
            return false;
        }
        self.stats.rpl_sent.inc();
        if code >= 200 && st.final_code < 200 {
            st.final_code = code;
            self.stats.count_final(code);
            self.stats.waiting.add(1);
            // Cancel what is still pending: a final answer ends the search.
            let reason = if (200..300).contains(&code) {
                "Reason: SIP;cause=200;text=\"Call completed elsewhere\"\r\n"
            } else {
                ""
            };
            for idx in 0..st.branches.len() {
                self.cancel_branch(core, tx, &mut st, idx, reason, now);
            }
            // Kamailio frees a transaction wt_timer after its final reply (an INVITE with a
            // negative one waits for the ACK first, through the server machine's timers).
            if !(tx.invite && code >= 300) {
                self.arm(tx, self.wait_deadline(now), TimerWhat::Delete);
            }
        }
        self.run_uas(core, tx, &mut st, actions);
        true
    }

    /// `t_reply()` / `t_send_reply()`: a local reply to the transaction's request.
    pub fn reply(&self, ctx: &mut MsgCtx<'_>, code: u16, reason: &str) -> i32 {
        let Some(tx) = ctx.tm.tx.clone() else {
            return -1;
        };
        if reason.contains(['\r', '\n']) {
            return -1;
        }
        let mut headers = ctx.reply_headers.clone();
        if (300..400).contains(&code) && !ctx.branches.is_empty() {
            let list: Vec<String> = ctx.branches.iter().map(Branch::contact).collect();
            headers.push_str(&format!("Contact: {}\r\n", list.join(", ")));
        }
        if self.reply_local(ctx.core, &tx, code, reason, &headers, b"", None) {
            if code >= 200 {
                ctx.replied = true;
            }
            1
        } else {
            -1
        }
    }

    /// `t_cancel_branches()`: "all", "others" (than the branch of the reply being handled),
    /// "this".
    pub fn cancel_branches(&self, ctx: &MsgCtx<'_>, which: &str) -> i32 {
        let Some(tx) = ctx.tm.tx.clone() else {
            return -1;
        };
        let now = self.now();
        let mut st = tx.state.lock();
        for idx in 0..st.branches.len() {
            let this = ctx.tm.branch == Some(idx);
            let pick = match which {
                "this" => this,
                "others" => !this,
                _ => true,
            };
            if pick {
                self.cancel_branch(ctx.core, &tx, &mut st, idx, "", now);
            }
        }
        1
    }
}

/// The timer thread: fires due deadlines until the layer is dropped.
fn timer_loop(tm: &Weak<Tm>) {
    loop {
        let Some(t) = tm.upgrade() else {
            return;
        };
        let now = t.now();
        let due = t.timers.due(now);
        if due.is_empty() {
            t.timers.wait(now, TICK_MS, 1000);
            continue;
        }
        let Some(core) = t.core.get().and_then(Weak::upgrade) else {
            return;
        };
        let mut vars = TIMER_VARS.with(|v| v.take());
        for e in due {
            if let Some(tx) = t.by_id(e.tx) {
                t.on_timer(&core, &tx, e.what, &mut vars);
            }
        }
        TIMER_VARS.with(|v| v.replace(vars));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_ids_round_trip() {
        let b = format!("{BRANCH_PREFIX}{:x}.{}", 0xdead_beef_u64, 3);
        assert_eq!(parse_branch(b.as_bytes()), Some((0xdead_beef, 3)));
        assert_eq!(parse_branch(b"z9hG4bKsl0123"), None);
        assert_eq!(parse_branch(b"z9hG4bKtmzz.1"), None);
        for (text, want) in [
            ("z9hG4bKtmffffffffffffffff.0", Some((u64::MAX, 0))),
            ("z9hG4bKtm1ffffffffffffffff.0", None),
            ("z9hG4bKtmAbC.12", Some((0xabc, 12))),
            ("z9hG4bKtm.1", None),
            ("z9hG4bKtm1.", None),
            ("z9hG4bKtm1.2.3", None),
            ("z9hG4bKtm1.x", None),
            ("z9hG4bKtm1.99999999999999999999999", None),
        ] {
            assert_eq!(parse_branch(text.as_bytes()), want, "{text}");
        }
    }

    #[test]
    fn reply_preference_follows_kamailio() {
        let best = |codes: &[u16]| codes.iter().copied().min_by_key(|c| reply_rank(*c));
        assert_eq!(best(&[503, 486, 408]), Some(408));
        assert_eq!(best(&[503, 486, 407]), Some(407));
        assert_eq!(best(&[503, 603, 486]), Some(603));
        assert_eq!(best(&[503, 302]), Some(302));
        assert_eq!(best(&[500, 503]), Some(500));
    }

    #[test]
    fn a_transaction_completes_when_every_branch_ended_without_a_2xx() {
        let pick = |codes: &[u16]| branch_to_complete(codes.iter().copied());
        assert_eq!(pick(&[]), None);
        assert_eq!(pick(&[486, 0]), None, "a branch still pending");
        assert_eq!(pick(&[486, 503]), Some(0));
        assert_eq!(pick(&[503, 408, 486]), Some(1));
        assert_eq!(pick(&[503, 302]), Some(1));
        // A 2xx branch: its own reply worker sends the 2xx (a BYE's 200 answered at once
        // got a local 500 ahead of it when the request route's t_relay() ended meanwhile).
        assert_eq!(pick(&[200]), None);
        assert_eq!(pick(&[486, 202]), None);
    }

    #[test]
    fn cancel_copies_the_request_identity() {
        let req = b"INVITE sip:b@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKtm1.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKa\r\nRoute: <sip:x;lr>\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: c1\r\nCSeq: 7 INVITE\r\nMax-Forwards: 69\r\nContent-Length: 0\r\n\r\n";
        let c = build_cancel(req, "Reason: SIP;cause=200\r\n").unwrap();
        let text = String::from_utf8(c).unwrap();
        assert!(text.starts_with("CANCEL sip:b@127.0.0.1:5070 SIP/2.0\r\n"));
        assert!(text.contains("Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKtm1.0\r\n"));
        assert!(!text.contains("5080"));
        assert!(text.contains("CSeq: 7 CANCEL\r\n"));
        assert!(text.contains("Route: <sip:x;lr>\r\n"));
        assert!(text.contains("Reason: SIP;cause=200\r\n"));
        let m = Message::parse(text.as_bytes()).unwrap();
        m.validate().unwrap();
    }
}
#[cfg(all(test, target_pointer_width = "64"))]
mod size_tests {
    /// A transaction is allocated for every request and freed seconds later on another
    /// thread: under 1 KiB, glibc serves it from its per-thread caches and small bins
    /// instead of the large-bin path (which first consolidates the fast bins).
    #[test]
    fn a_transaction_is_a_small_allocation() {
        // The Arc's two counters, then the transaction.
        let tx = 2 * std::mem::size_of::<usize>() + std::mem::size_of::<super::Tx>();
        assert!(tx <= 1000, "Tx is {tx} bytes");
        assert!(std::mem::size_of::<super::UacBranch>() <= 512);
        assert!(std::mem::size_of::<sable_transaction::TransactionKey>() <= 96);
    }
}
