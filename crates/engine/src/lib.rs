//! `sable-engine`: what turns bytes from the transport into routed SIP.
//!
//! What it owns:
//! - the context a script runs on ([`MsgCtx`], host type [`Sip`]): the received message,
//!   its pending edits (lumps), the rewritten Request-URI and destination URI, flags, AVPs;
//! - the route phases: a request runs `request_route`, a reply runs the core `reply_route`
//!   and is then forwarded statelessly by its Via (RFC 3261 §16.7, §18.2.2);
//! - stateless forwarding of requests (`forward()`, RFC 3261 §16.11) and local replies
//!   (RFC 3261 §8.2.6), `received`/`rport` (RFC 3261 §18.2.1, RFC 3581);
//! - the [`Module`] trait, core parameters ([`CoreConfig`]) and the core script functions
//!   and pseudo-variables;
//! - the core statistics.
//!
//! What it does not own: sockets (`sable-transport`), the language (`sable-script`), or any
//! module's logic (`sable-modules`). The engine never names a module: the binary registers
//! them.

mod config;
mod context;
mod core;
mod core_fns;
mod dispatch;
pub mod http;
mod load;
mod module;
mod pvs;
pub mod rpc;
pub mod sip_util;
mod stats;
pub mod tm;

pub use crate::config::{CoreConfig, GlobalParamError, LogLevel};
pub use crate::core::Core;
pub use context::{Branch, MsgCtx, RecordRoute, RecvInfo, Sip, MAX_BRANCHES};
pub use core_fns::{flag_arg, function, required, take_arg, UriParts};
pub use dispatch::Dispatcher;
pub use dispatch::{forward_request, record_route_value, relay_reply, script_log, send_reply};
pub use load::{load, reload, Loaded, Reloaded, RunningConfig};
pub use module::{avp_param, flag_param, int_param, str_param, Module, ModuleSet, ParamError};

/// Code other modules run at a point of the message flow (a [`Hooks`] list).
pub type RouteHook = std::sync::Arc<dyn Fn(&mut MsgCtx<'_>) + Send + Sync>;

/// Hooks of one point of the message flow, kept by the core (`core.rr_hooks`,
/// `core.reply_hooks`):
/// [`RrHooks`] when `loose_route()` consumed one of this server's Route entries
/// (`ctx.loose_route_uri` holds it; dialog matching by `did`), [`ReplyHooks`] for every
/// reply received, after the core reply_route (dlgs follows replies without tm).
pub struct Hooks<K: 'static> {
    hooks: parking_lot::RwLock<Vec<RouteHook>>,
    _point: std::marker::PhantomData<fn() -> K>,
}

impl<K> Default for Hooks<K> {
    fn default() -> Self {
        Hooks {
            hooks: parking_lot::RwLock::new(Vec::new()),
            _point: std::marker::PhantomData,
        }
    }
}

impl<K> std::fmt::Debug for Hooks<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks").finish()
    }
}

impl<K> Hooks<K> {
    pub fn add(&self, hook: RouteHook) {
        self.hooks.write().push(hook);
    }

    pub fn run(&self, ctx: &mut MsgCtx<'_>) {
        let hooks = self.hooks.read().clone();
        for h in hooks {
            h(ctx);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.hooks.read().is_empty()
    }
}

/// The point "loose_route() consumed our Route".
#[derive(Debug)]
pub enum LooseRoutePoint {}
/// The point "a reply arrived (after the core reply_route)".
#[derive(Debug)]
pub enum ReplyPoint {}
/// `loose_route()` hooks.
pub type RrHooks = Hooks<LooseRoutePoint>;
/// Received-reply hooks.
pub type ReplyHooks = Hooks<ReplyPoint>;

pub use pvs::Header;

/// Registers the core functions, pseudo-variables, keywords and transformation classes.
/// The config's custom variables (`group.name = value`): read by `$sel(cfg_get.group.name)`,
/// changed at run time by the `cfg.set*` RPCs (module cfg_rpc).
pub type CfgVars =
    std::sync::Arc<parking_lot::RwLock<std::collections::BTreeMap<String, sable_script::Value>>>;

/// Registers the core functions, pseudo-variables, keywords and transformation classes.
pub fn register_core(registry: &mut sable_script::Registry<Sip>, cfg_vars: CfgVars) {
    core_fns::register(registry);
    pvs::register(registry, cfg_vars);
}
pub use stats::{CoreStats, Counter, Gauge, StatRegistry, StatSource, StatValue};

/// Runs `tick` every `period` on a thread named `name`, for as long as `owner` (a module's
/// shared state) and the core live: the modules' timers (usrloc expiry, dialog timeouts).
pub fn spawn_ticker<T: Send + Sync + 'static>(
    name: &str,
    period: std::time::Duration,
    owner: &std::sync::Arc<T>,
    core: &std::sync::Arc<Core>,
    mut tick: impl FnMut(&T, &Core) + Send + 'static,
) -> Result<(), String> {
    let owner = std::sync::Arc::downgrade(owner);
    let core = std::sync::Arc::downgrade(core);
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || loop {
            std::thread::sleep(period);
            let (Some(o), Some(c)) = (owner.upgrade(), core.upgrade()) else {
                return;
            };
            tick(&o, &c);
        })
        .map(drop)
        .map_err(|e| format!("cannot start the {name} thread: {e}"))
}

/// Runs route `id` of `program` on a message a module made up (an event route's "faked
/// message"), received on the first listen socket; `prepare` sets the context up first
/// (AVPs, the dialog...). False when there is no socket or the message does not parse.
pub fn run_on_local_message(
    core: &Core,
    program: &std::sync::Arc<sable_script::Program<Sip>>,
    id: sable_script::RouteId,
    mask: sable_script::RouteMask,
    bytes: &[u8],
    prepare: impl FnOnce(&mut MsgCtx<'_>),
) -> bool {
    let Some(local) = core.sockets.first().cloned() else {
        return false;
    };
    let Ok(msg) = sable_sip::Message::parse(bytes) else {
        return false;
    };
    let recv = RecvInfo {
        proto: local.proto,
        src: local.addr,
        local: local.clone(),
        conn: None,
    };
    let mut ctx = MsgCtx::new(core, msg, &recv, Vec::new(), mask);
    ctx.program = Some(program.clone());
    prepare(&mut ctx);
    let _ = program.run(id, &mut ctx);
    true
}

/// The address of the first listen socket (`host:port`), for made-up messages.
pub fn first_socket_addr(core: &Core) -> Option<std::net::SocketAddr> {
    core.sockets.first().map(|s| s.addr)
}
