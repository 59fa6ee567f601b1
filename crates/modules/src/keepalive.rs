//! `keepalive`: monitoring of destinations with SIP OPTIONS (seed 002), on
//! `sable_keepalive`'s destination table.
//!
//! Probes are local requests of tm (`Tm::uac_start`), so tm's timers apply (`fr_timer` gives
//! the 408 of a silent destination) and nothing here waits for an answer: a thread of this
//! module sends what is due (the table spreads the destinations over the interval) and
//! sleeps until the next deadline; results come back through tm's callback, on the thread
//! that received the reply or tm's timer thread. On a change of state it runs
//! `event_route[keepalive:dst-up]` / `[keepalive:dst-down]` with `$ru` the destination, then
//! the owner's state-changed callback; every result then goes to the response callback.
//!
//! Other modules use the [`Keepalive`] service (`core.service::<Keepalive>()`): Kamailio's
//! developer API (`add_destination` with callbacks and a per-destination interval,
//! `del_destination`, `destination_state`) with Rust closures.

use parking_lot::{Condvar, Mutex};
use sable_engine::sip_util::{hex, literal_next_hop_of_uri, next_hop_of_uri, NextHop};
use sable_engine::tm::UacCallback;
use sable_engine::{
    function, int_param, required, str_param, Core, Module, MsgCtx, ParamError, Sip,
};
/// What the API takes and gives, from the table's crate.
pub use sable_keepalive::{Added, KeepaliveError, State};
use sable_keepalive::{Config, Destination, Millis, Monitor};
use sable_rpc::{MethodKind, Params, RpcError};
use sable_script::ast::Literal;
use sable_script::{Arg, ArgError, Registry, RouteMask};
use serde_json::{json, Value as Json};
use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// Kamailio's default `ping_from`.
pub const DEFAULT_PING_FROM: &str = "sip:keepalive@kamailio.org";
/// Owner of the destinations of `modparam("keepalive", "destination", ...)`.
pub const PARAMS_OWNER: &str = "_params";
/// The prober sleeps at least this long between rounds: probes due within it go together.
const MIN_TICK: Duration = Duration::from_millis(50);
/// And at most this long (a new destination wakes it anyway).
const MAX_TICK: Duration = Duration::from_secs(1);

/// Data the owner of a destination gets back in its callbacks (Kamailio's `user_attr`).
pub type UserAttr = Arc<dyn Any + Send + Sync>;
/// Called on every change of a destination's state: its URI, the new state, the user
/// attribute (Kamailio's `ka_statechanged_f`).
pub type StateChangedFn = Arc<dyn Fn(&str, State, Option<&UserAttr>) + Send + Sync>;
/// Called with every probe result: the URI, the reply, the user attribute (Kamailio's
/// `ka_response_f`).
pub type ResponseFn = Arc<dyn Fn(&str, &ProbeReply<'_>, Option<&UserAttr>) + Send + Sync>;

/// The result of one probe, for response callbacks (Kamailio's `tmcb_params`).
#[derive(Debug, Clone, Copy)]
pub struct ProbeReply<'a> {
    /// The final code: the reply's, 408 when nothing answered within `fr_timer`, 0 when the
    /// probe could not be sent at all (no socket for the transport, TLS).
    pub code: u16,
    /// The final reply as received (or as tm made it for a timeout); `None` when not sent.
    pub reply: Option<&'a [u8]>,
}

/// What an owner attached to a destination.
#[derive(Clone, Default)]
pub struct Hooks {
    pub state_changed: Option<StateChangedFn>,
    pub response: Option<ResponseFn>,
    pub user_attr: Option<UserAttr>,
    /// Results of one destination are handled one at a time, so callbacks see its
    /// changes in the order they happened.
    serial: Arc<Mutex<()>>,
    /// The next hop, when the URI names an IP address (resolved once, at the addition);
    /// a host name is resolved for every probe.
    hop: Option<NextHop>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("state_changed", &self.state_changed.is_some())
            .field("response", &self.response.is_some())
            .field("user_attr", &self.user_attr.is_some())
            .finish()
    }
}

/// A destination as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationInfo {
    pub uri: String,
    pub owner: String,
    pub flags: u32,
    pub state: State,
    /// Probes failed in a row.
    pub counter: u32,
    /// UNIX seconds, 0 for never.
    pub last_checked: u64,
    pub last_up: u64,
    pub last_down: u64,
    /// Seconds between probes.
    pub ping_interval: u64,
    /// `delete_counter` ran out: no more probes.
    pub stopped: bool,
}

/// The keepalive service: the destination table and the prober. Other modules reach it
/// with `core.service::<Keepalive>()`.
pub struct Keepalive {
    monitor: Mutex<Monitor<Hooks>>,
    wake: Condvar,
    ping_from: String,
    epoch: Instant,
    tags: AtomicU64,
    me: Weak<Keepalive>,
}

impl std::fmt::Debug for Keepalive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keepalive")
            .field("ping_from", &self.ping_from)
            .finish()
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Keepalive {
    fn new(cfg: Config, ping_from: String) -> Arc<Keepalive> {
        Arc::new_cyclic(|me| Keepalive {
            monitor: Mutex::new(Monitor::new(cfg)),
            wake: Condvar::new(),
            ping_from,
            epoch: Instant::now(),
            tags: AtomicU64::new(1),
            me: me.clone(),
        })
    }

    fn now(&self) -> Millis {
        Millis(u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    /// Starts monitoring `uri` (`[sip:|sips:]host[:port][;transport=...]`) for `owner`,
    /// probing every `ping_interval` seconds (0: the module's `ping_interval`). `flags` is
    /// kept and shown, unused (as in Kamailio). Monitoring starts at once: the first probe
    /// leaves within half a second plus the destination's phase in the interval.
    ///
    /// [`Added::Exists`] when (uri, owner) is monitored already: its failure counter is
    /// reset, the callbacks given here are not used (Kamailio's `-2`).
    #[allow(clippy::too_many_arguments)]
    pub fn add_destination(
        &self,
        uri: &str,
        owner: &str,
        flags: u32,
        ping_interval: u64,
        state_changed: Option<StateChangedFn>,
        response: Option<ResponseFn>,
        user_attr: Option<UserAttr>,
    ) -> Result<Added, KeepaliveError> {
        let hooks = Hooks {
            state_changed,
            response,
            user_attr,
            serial: Arc::new(Mutex::new(())),
            hop: Destination::parse(uri)
                .ok()
                .and_then(|d| literal_next_hop_of_uri(&d.uri)),
        };
        let added = {
            let mut m = self.monitor.lock();
            let now = self.now();
            m.add(uri, owner, flags, ping_interval, hooks, now)?
        };
        if let Added::New(id) = added {
            if let Some(d) = self.monitor.lock().by_id(id) {
                if d.tls {
                    tracing::warn!(
                        "keepalive: {} needs TLS, which Sable does not speak yet: it will be DOWN",
                        d.uri
                    );
                }
            }
            self.wake.notify_one();
        }
        Ok(added)
    }

    /// Stops monitoring `uri` for `owner`: true when it was monitored.
    pub fn del_destination(&self, uri: &str, owner: &str) -> Result<bool, KeepaliveError> {
        Ok(self.monitor.lock().remove(uri, owner)?.is_some())
    }

    /// The state of `uri` (whoever monitors it; the newest addition when several owners
    /// do); `None` when it is not monitored.
    pub fn destination_state(&self, uri: &str) -> Result<Option<State>, KeepaliveError> {
        self.monitor.lock().state_of(uri)
    }

    /// The destination of `uri` for `owner`.
    pub fn destination(
        &self,
        uri: &str,
        owner: &str,
    ) -> Result<Option<DestinationInfo>, KeepaliveError> {
        Ok(self.monitor.lock().get(uri, owner)?.map(info))
    }

    /// Every destination, newest first.
    pub fn destinations(&self) -> Vec<DestinationInfo> {
        self.monitor.lock().list().map(info).collect()
    }

    /// Forgets every destination; gives how many there were.
    pub fn flush(&self) -> usize {
        self.monitor.lock().flush()
    }

    /// Sends one probe through tm (to `hop` when the destination's is known already); its
    /// result comes back to [`Keepalive::finish`].
    fn send(&self, core: &Arc<Core>, probe: sable_keepalive::Probe, hop: Option<NextHop>) {
        let Some(tm) = core.tm.get() else {
            return;
        };
        let tag = self.tags.fetch_add(1, Ordering::Relaxed);
        let id = probe.id;
        let (me, wcore) = (self.me.clone(), Arc::downgrade(core));
        let callback: UacCallback = Box::new(move |code, reply| {
            if let (Some(ka), Some(core)) = (me.upgrade(), wcore.upgrade()) {
                ka.finish(Some(&core), id, code, reply);
            }
        });
        let from = &self.ping_from;
        let uri = probe.uri;
        let upper;
        let proto = match &*probe.transport {
            "udp" => "UDP",
            "tcp" => "TCP",
            "tls" => "TLS",
            other => {
                upper = other.to_ascii_uppercase();
                upper.as_str()
            }
        };
        // The request is written here in one piece (tm adds nothing, and trusts it: the
        // destination's URI was parsed when it was added): OPTIONS to the destination,
        // To = the destination, From = ping_from with a tag of ours.
        let sent = match hop.map_or_else(|| next_hop_of_uri(&uri), Ok) {
            Ok(hop) => tm.uac_start_local(
                core,
                hop,
                "OPTIONS",
                &uri,
                |branch, via, out| write_probe(out, &uri, proto, via, branch, from, tag),
                Some(callback),
            ),
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            // Not sent (TLS, no socket of that transport, no address): a failed probe.
            tracing::debug!("keepalive: probe to {uri} not sent: {e}");
            self.finish(Some(core), id, 0, None);
        }
    }

    /// A probe of destination `id` ended with `code` (`core`: where to run the event
    /// routes).
    fn finish(&self, core: Option<&Core>, id: u64, code: u16, reply: Option<&[u8]>) {
        let Some(hooks) = self.monitor.lock().by_id(id).map(|d| d.data.clone()) else {
            return;
        };
        let _one_at_a_time = hooks.serial.lock();
        let Some(outcome) = self.monitor.lock().result(id, code, unix_now()) else {
            return;
        };
        if outcome.changed {
            tracing::debug!(
                "keepalive: {} is now {:?} ({code})",
                outcome.uri,
                outcome.state
            );
            let route = if outcome.state == State::Up {
                "keepalive:dst-up"
            } else {
                "keepalive:dst-down"
            };
            if let Some(core) = core {
                run_event(core, route, &outcome.uri, &self.ping_from);
            }
            if let Some(cb) = &hooks.state_changed {
                cb(&outcome.uri, outcome.state, hooks.user_attr.as_ref());
            }
        }
        if let Some(cb) = &hooks.response {
            cb(
                &outcome.uri,
                &ProbeReply { code, reply },
                hooks.user_attr.as_ref(),
            );
        }
    }

    /// The prober: sends what is due, sleeps until the next deadline (or an addition).
    fn run(ka: Weak<Keepalive>, core: Weak<Core>) {
        loop {
            let (Some(ka), Some(core)) = (ka.upgrade(), core.upgrade()) else {
                return;
            };
            // Probes wait for the config to run and tm to be there (start-up).
            if core.program().is_some() && core.tm.get().is_some() {
                let probes: Vec<_> = {
                    let mut m = ka.monitor.lock();
                    let due = m.due(ka.now(), unix_now());
                    due.into_iter()
                        .map(|p| {
                            let hop = m.by_id(p.id).and_then(|d| d.data.hop.clone());
                            (p, hop)
                        })
                        .collect()
                };
                // The round's UDP probes leave together (sendmmsg): one system call and one
                // switch to the woken destinations per batch, not per probe.
                let _batch = core.transport.udp_batch();
                for (p, hop) in probes {
                    ka.send(&core, p, hop);
                }
            }
            drop(core);
            let mut m = ka.monitor.lock();
            let now = ka.now();
            let wait = m.next_deadline().map_or(MAX_TICK, |at| {
                Duration::from_millis(at.0.saturating_sub(now.0)).clamp(MIN_TICK, MAX_TICK)
            });
            ka.wake.wait_for(&mut m, wait);
        }
    }
}

/// Writes one probe: OPTIONS to `uri` from `from` (tagged with `tag`), its only Via
/// `SIP/2.0/{proto} {via};branch={branch}`.
fn write_probe(
    out: &mut Vec<u8>,
    uri: &str,
    proto: &str,
    via: &str,
    branch: &str,
    from: &str,
    tag: u64,
) {
    // Pieces appended in order (no formatting machinery: this runs for every probe).
    let tag = hex(tag, 0);
    for piece in [
        "OPTIONS ",
        uri,
        " SIP/2.0\r\nVia: SIP/2.0/",
        proto,
        " ",
        via,
        ";branch=",
        branch,
        "\r\nFrom: <",
        from,
        ">;tag=ka",
        tag.as_str(),
        "\r\nTo: <",
        uri,
        ">\r\nCall-ID: ka",
        tag.as_str(),
        "-",
        branch,
        "@",
        via,
        "\r\nCSeq: 10 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
    ] {
        out.extend_from_slice(piece.as_bytes());
    }
}

fn info(d: &sable_keepalive::Dest<Hooks>) -> DestinationInfo {
    DestinationInfo {
        uri: d.uri.to_string(),
        owner: d.owner.clone(),
        flags: d.flags,
        state: d.state,
        counter: d.counter,
        last_checked: d.last_checked,
        last_up: d.last_up,
        last_down: d.last_down,
        ping_interval: d.interval.0 / 1000,
        stopped: d.stopped,
    }
}

/// Runs `event_route[name]` on a made-up OPTIONS to `uri` (so `$ru` is the destination),
/// as Kamailio runs it on a faked request.
fn run_event(core: &Core, name: &str, uri: &str, from: &str) {
    let Some(program) = core.program() else {
        return;
    };
    let Some(route) = program.event_route(name) else {
        return;
    };
    let Some(local) = sable_engine::first_socket_addr(core) else {
        return;
    };
    let fake = format!(
        "OPTIONS {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKkaevent\r\nFrom: <{from}>;tag=kaevent\r\nTo: <{uri}>\r\nCall-ID: kaevent@sable\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    sable_engine::run_on_local_message(
        core,
        &program,
        route,
        RouteMask::EVENT,
        fake.as_bytes(),
        |_| {},
    );
}

/// Module `keepalive`.
#[derive(Debug)]
pub struct KeepaliveModule {
    cfg: Config,
    ping_from: String,
    /// `destination` lines, checked when set.
    destinations: Vec<String>,
}

impl Default for KeepaliveModule {
    fn default() -> Self {
        KeepaliveModule {
            cfg: Config::default(),
            ping_from: DEFAULT_PING_FROM.to_owned(),
            destinations: Vec::new(),
        }
    }
}

fn service(ctx: &MsgCtx<'_>) -> Option<Arc<Keepalive>> {
    ctx.core.service::<Keepalive>()
}

/// A destination argument: a constant one is checked at load.
fn destination_arg(arg: Arg<Sip>, index: usize) -> Result<sable_script::StrArg<Sip>, ArgError> {
    if let Some(c) = arg.const_str() {
        // A constant with pseudo-variables is not constant: const_str is None then.
        Destination::parse(&c).map_err(|e| ArgError::new(index, e.to_string()))?;
    }
    Ok(arg.into_str())
}

/// The two parameters of keepalive.add/del/get, with Kamailio's faults.
fn uri_and_listname(p: &Params) -> Result<(String, String), RpcError> {
    let wrong = || RpcError::new(500, "Not enough parameters or wrong format");
    if p.len() < 2 {
        return Err(wrong());
    }
    let uri = p.str(0).map_err(|_| wrong())?.to_owned();
    let list = p.str(1).map_err(|_| wrong())?.to_owned();
    if uri.is_empty() || list.is_empty() {
        return Err(RpcError::new(500, "parameter is len less than 1"));
    }
    Ok((uri, list))
}

/// C's `ctime()` with its newline, as Kamailio prints the timestamps (UTC here).
fn ctime_nl(secs: u64) -> String {
    format!(
        "{}\n",
        sable_engine::rpc::ctime(i64::try_from(secs).unwrap_or(i64::MAX))
    )
}

impl Module for KeepaliveModule {
    fn name(&self) -> &'static str {
        "keepalive"
    }

    fn set_param(&mut self, name: &str, value: &Literal) -> Result<(), ParamError> {
        match name {
            "ping_interval" => {
                let n = int_param(value)?;
                self.cfg.ping_interval = u64::try_from(n)
                    .ok()
                    .filter(|&n| n >= 1)
                    .ok_or_else(|| ParamError::bad("seconds (>= 1)"))?;
            }
            "delete_counter" => {
                let n = int_param(value)?;
                self.cfg.delete_counter = u32::try_from(n)
                    .map_err(|_| ParamError::bad("a number of failures (>= 0; 0 never stops)"))?;
            }
            "ping_from" => {
                let v = str_param(value)?;
                let v = v.trim();
                if v.is_empty() {
                    self.ping_from = DEFAULT_PING_FROM.to_owned();
                } else {
                    match sable_sip::Uri::parse(v.as_bytes()) {
                        Ok(_) if !v.contains(['<', '>', ' ']) => v.clone_into(&mut self.ping_from),
                        _ => return Err(ParamError::bad("a SIP URI (the From of the probes)")),
                    }
                }
            }
            "destination" => {
                let v = str_param(value)?;
                Destination::parse(&v).map_err(|e| {
                    ParamError::bad(format!(
                        "a destination [sip:|sips:]host[:port][;transport=udp|tcp|tls] ({e})"
                    ))
                })?;
                self.destinations.push(v);
            }
            _ => return Err(ParamError::Unknown),
        }
        Ok(())
    }

    fn init(&self, core: &Arc<Core>) -> Result<(), String> {
        if core.service::<Keepalive>().is_some() {
            return Ok(());
        }
        if core.tm.get().is_none() {
            return Err("needs module tm: load tm.so before keepalive.so".to_owned());
        }
        let ka = Keepalive::new(self.cfg, self.ping_from.clone());
        for d in &self.destinations {
            ka.add_destination(d, PARAMS_OWNER, 0, 0, None, None, None)
                .map_err(|e| e.to_string())?;
        }
        core.provide(ka.clone());
        let reg = &core.stat_registry;
        for (name, want) in [
            ("destinations", None),
            ("up", Some(State::Up)),
            ("down", Some(State::Down)),
        ] {
            let weak = Arc::downgrade(&ka);
            reg.computed("keepalive", name, move || {
                weak.upgrade().map_or(0, |ka| {
                    let m = ka.monitor.lock();
                    let n = m
                        .list()
                        .filter(|d| want.is_none_or(|s| d.state == s))
                        .count();
                    i64::try_from(n).unwrap_or(i64::MAX)
                })
            });
        }
        let (wk, wc) = (Arc::downgrade(&ka), Arc::downgrade(core));
        std::thread::Builder::new()
            .name("keepalive".to_owned())
            .spawn(move || Keepalive::run(wk, wc))
            .map(drop)
            .map_err(|e| format!("cannot start the keepalive thread: {e}"))
    }

    fn rpc(&self, registry: &mut sable_rpc::Registry, core: &Arc<Core>) {
        let the = |c: &Arc<Core>| {
            c.service::<Keepalive>()
                .ok_or_else(|| RpcError::new(500, "keepalive is not running"))
        };
        let c = core.clone();
        let _ = registry.register(
            "keepalive.list",
            "Lists the destinations (newest first).",
            ["array"],
            MethodKind::List,
            move |_: &Params| -> Result<Json, RpcError> {
                let ka = the(&c)?;
                let m = ka.monitor.lock();
                Ok(Json::Array(
                    m.list()
                        .map(|d| {
                            json!({
                                "uri": &*d.uri,
                                "owner": d.owner,
                                "last checked": ctime_nl(d.last_checked),
                                "last up": ctime_nl(d.last_up),
                                "last down": ctime_nl(d.last_down),
                                "state": d.state.code(),
                            })
                        })
                        .collect(),
                ))
            },
        );
        let c = core.clone();
        let _ = registry.register(
            "keepalive.add",
            "Adds a destination: sip_uri listname.",
            ["string", "string", "string"],
            MethodKind::Value,
            move |p: &Params| -> Result<Json, RpcError> {
                let (uri, list) = uri_and_listname(p)?;
                match the(&c)?.add_destination(&uri, &list, 0, 0, None, None, None) {
                    Ok(Added::New(_)) => Ok(json!("Ok. Destination added.")),
                    Ok(Added::Exists(_)) | Err(_) => {
                        Err(RpcError::new(500, "couldn't add data to list"))
                    }
                }
            },
        );
        let c = core.clone();
        let _ = registry.register(
            "keepalive.del",
            "Removes a destination: sip_uri listname.",
            ["string", "string", "string"],
            MethodKind::Value,
            move |p: &Params| -> Result<Json, RpcError> {
                let (uri, list) = uri_and_listname(p)?;
                match the(&c)?.del_destination(&uri, &list) {
                    Ok(true) => Ok(json!("Ok. Destination removed.")),
                    _ => Err(RpcError::new(500, "couldn't delete data from list")),
                }
            },
        );
        let c = core.clone();
        let _ = registry.register(
            "keepalive.get",
            "One destination: sip_uri listname.",
            ["struct", "string", "string"],
            MethodKind::Value,
            move |p: &Params| -> Result<Json, RpcError> {
                let (uri, list) = uri_and_listname(p)?;
                match the(&c)?.destination(&uri, &list) {
                    Ok(Some(d)) => Ok(json!({
                        "uri": d.uri,
                        "owner": d.owner,
                        "state": d.state.code(),
                    })),
                    _ => Err(RpcError::new(500, "couldn't get data from list")),
                }
            },
        );
        let c = core.clone();
        let _ = registry.register(
            "keepalive.flush",
            "Removes every destination.",
            ["string"],
            MethodKind::Value,
            move |_: &Params| -> Result<Json, RpcError> {
                the(&c)?.flush();
                Ok(json!("Ok. Destination list flushed."))
            },
        );
    }

    fn register(&self, reg: &mut Registry<Sip>) {
        reg.function(
            "ka_is_alive",
            function("keepalive", 1, 1, RouteMask::ANY, |_, mut args| {
                let dest = destination_arg(required(&mut args, 1, "destination")?, 1)?;
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let Some(ka) = service(ctx) else {
                        return -1;
                    };
                    let d = dest.eval(ctx);
                    match ka.destination_state(&d) {
                        // Unknown (not probed yet) is 1, never 0: 0 would end the script.
                        Ok(Some(State::Up | State::Unknown)) => 1,
                        Ok(Some(State::Down)) => 2,
                        Ok(None) => -1,
                        Err(e) => {
                            tracing::warn!("ka_is_alive: {e}");
                            -1
                        }
                    }
                }))
            }),
        );
        let add_routes = RouteMask::REQUEST
            .union(RouteMask::BRANCH)
            .union(RouteMask::ONREPLY);
        reg.function(
            "ka_add_destination",
            function("keepalive", 2, 2, add_routes, |_, mut args| {
                let uri = destination_arg(required(&mut args, 1, "sip_uri")?, 1)?;
                let owner = required(&mut args, 2, "owner")?.into_str();
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let Some(ka) = service(ctx) else {
                        return -1;
                    };
                    let u = uri.eval(ctx).into_owned();
                    let o = owner.eval(ctx).into_owned();
                    match ka.add_destination(&u, &o, 0, 0, None, None, None) {
                        Ok(Added::New(_)) => 1,
                        Ok(Added::Exists(_)) => {
                            tracing::info!("ka_add_destination: {u} ({o}) is monitored already");
                            -2
                        }
                        Err(e) => {
                            tracing::error!("ka_add_destination: {e}");
                            -1
                        }
                    }
                }))
            }),
        );
        reg.function(
            "ka_del_destination",
            function("keepalive", 2, 2, RouteMask::ANY, |_, mut args| {
                let uri = destination_arg(required(&mut args, 1, "sip_uri")?, 1)?;
                let owner = required(&mut args, 2, "owner")?.into_str();
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let Some(ka) = service(ctx) else {
                        return -1;
                    };
                    let u = uri.eval(ctx).into_owned();
                    let o = owner.eval(ctx).into_owned();
                    match ka.del_destination(&u, &o) {
                        Ok(true) => 1,
                        Ok(false) => {
                            tracing::error!("ka_del_destination: {u} ({o}) is not monitored");
                            -1
                        }
                        Err(e) => {
                            tracing::error!("ka_del_destination: {e}");
                            -1
                        }
                    }
                }))
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    type Log = Arc<Mutex<Vec<String>>>;

    #[test]
    fn the_probe_tm_trusts_is_a_valid_request() {
        for (uri, proto) in [
            ("sip:gw1@127.0.0.1:5071", "UDP"),
            ("sip:[2001:db8::1]:5080;transport=tcp", "TCP"),
        ] {
            let mut out = Vec::new();
            let branch = "z9hG4bKtm1f.0";
            let via = "127.0.0.1:5060";
            write_probe(&mut out, uri, proto, via, branch, DEFAULT_PING_FROM, 0x2a);
            let msg = sable_sip::Message::parse(&out).unwrap();
            msg.validate().unwrap();
            assert_eq!(
                msg.method().map(|m| m.to_string()).as_deref(),
                Some("OPTIONS")
            );
            assert_eq!(msg.slice(msg.request_uri_span()), uri.as_bytes());
            let top = msg.top_via().unwrap();
            assert_eq!(top.branch(), Some(branch.as_bytes()));
            let key = sable_transaction::TransactionKey::of_sent_request(&msg).unwrap();
            assert_eq!(
                key,
                sable_transaction::TransactionKey::Client {
                    branch: branch.as_bytes().to_vec(),
                    method: b"OPTIONS".to_vec(),
                }
            );
        }
    }

    fn ka() -> Arc<Keepalive> {
        Keepalive::new(Config::default(), DEFAULT_PING_FROM.to_owned())
    }

    /// A destination with both callbacks, logging into the returned vector.
    fn watched(ka: &Keepalive, uri: &str, attr: &str) -> (u64, Log) {
        let log: Log = Arc::default();
        let (l1, l2) = (log.clone(), log.clone());
        let changed: StateChangedFn = Arc::new(move |uri, state, attr| {
            let a = attr.and_then(|a| a.downcast_ref::<String>()).unwrap();
            l1.lock().push(format!("state {uri} {} {a}", state.code()));
        });
        let response: ResponseFn = Arc::new(move |uri, r, attr| {
            let a = attr.and_then(|a| a.downcast_ref::<String>()).unwrap();
            l2.lock().push(format!(
                "response {uri} {} {} {a}",
                r.code,
                r.reply.map_or(0, <[u8]>::len)
            ));
        });
        let attr: UserAttr = Arc::new(attr.to_owned());
        let added = ka
            .add_destination(
                uri,
                "mymod",
                0,
                60,
                Some(changed),
                Some(response),
                Some(attr),
            )
            .unwrap();
        let Added::New(id) = added else {
            panic!("{added:?}")
        };
        (id, log)
    }

    #[test]
    fn callbacks_run_once_per_change_and_on_every_response() {
        let ka = ka();
        let (id, log) = watched(&ka, "127.0.0.1:5070", "gw1");
        let d = ka
            .destination("sip:127.0.0.1:5070", "mymod")
            .unwrap()
            .unwrap();
        assert_eq!(
            (d.state, d.ping_interval, d.owner.as_str()),
            (State::Unknown, 60, "mymod")
        );
        for (code, reply) in [
            (200, Some(&b"SIP/2.0 200 OK\r\n\r\n"[..])),
            (200, Some(&b"SIP/2.0 200 OK\r\n\r\n"[..])),
            (408, None),
            (503, None),
            (200, None),
        ] {
            ka.finish(None, id, code, reply);
        }
        assert_eq!(
            *log.lock(),
            [
                "state sip:127.0.0.1:5070 1 gw1",
                "response sip:127.0.0.1:5070 200 18 gw1",
                "response sip:127.0.0.1:5070 200 18 gw1",
                "state sip:127.0.0.1:5070 2 gw1",
                "response sip:127.0.0.1:5070 408 0 gw1",
                "response sip:127.0.0.1:5070 503 0 gw1",
                "state sip:127.0.0.1:5070 1 gw1",
                "response sip:127.0.0.1:5070 200 0 gw1",
            ]
        );
        assert_eq!(
            ka.destination_state("127.0.0.1:5070").unwrap(),
            Some(State::Up)
        );
    }

    #[test]
    fn a_duplicate_keeps_the_first_callbacks_and_a_removed_destination_is_silent() {
        let ka = ka();
        let (id, log) = watched(&ka, "sip:127.0.0.1:5070", "first");
        let again = ka
            .add_destination(
                "127.0.0.1:5070;transport=udp",
                "mymod",
                0,
                0,
                None,
                None,
                None,
            )
            .unwrap();
        assert_eq!(again, Added::Exists(id));
        ka.finish(None, id, 503, None);
        assert_eq!(log.lock().len(), 2, "{:?}", log.lock());
        assert!(ka.del_destination("127.0.0.1:5070", "mymod").unwrap());
        assert!(!ka.del_destination("127.0.0.1:5070", "mymod").unwrap());
        ka.finish(None, id, 200, None);
        assert_eq!(
            log.lock().len(),
            2,
            "a late result of a removed destination is dropped"
        );
        assert!(ka.destinations().is_empty());
        assert!(ka
            .add_destination("sip:", "x", 0, 0, None, None, None)
            .is_err());
    }

    #[test]
    fn two_owners_have_two_states() {
        let ka = ka();
        let (a, _) = watched(&ka, "127.0.0.1:5070", "a");
        let Added::New(b) = ka
            .add_destination("127.0.0.1:5070", "other", 0, 0, None, None, None)
            .unwrap()
        else {
            panic!()
        };
        ka.finish(None, a, 200, None);
        ka.finish(None, b, 404, None);
        let all = ka.destinations();
        assert_eq!(all.len(), 2);
        assert_eq!(
            (all[0].owner.as_str(), all[0].state),
            ("other", State::Down)
        );
        assert_eq!((all[1].owner.as_str(), all[1].state), ("mymod", State::Up));
        assert_eq!(
            all[0].ping_interval, 30,
            "0 means the module's ping_interval"
        );
        assert_eq!(ka.flush(), 2);
    }
}
