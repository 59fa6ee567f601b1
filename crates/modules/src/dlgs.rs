//! `dlgs`: stateless dialog tracking with tags (seed 001), on `sable_dlgs`'s record store.
//! `dlgs_init()` makes a record for an INVITE, `dlgs_update()` follows ACK/BYE/CANCEL,
//! replies are followed automatically (a received-reply hook, no tm needed), a timer removes
//! records past their lifetime; counts and tag counts are indexed.

use parking_lot::Mutex;
use sable_dlgs::{count_return, tags_return, Config, Field, Filter, Op, Store};
use sable_engine::{function, int_param, required, Core, Module, MsgCtx, ParamError, Sip};
use sable_rpc::{MethodKind, Params, RpcError};
use sable_script::ast::Literal;
use sable_script::{Arg, ArgError, Registry, RouteMask, StrArg};
use sable_sip::Method;
use serde_json::Value as Json;
use std::sync::Arc;

/// The record store, shared by the workers, the reply hook, the timer and the RPCs.
pub struct DlgsState {
    store: Mutex<Store>,
}

impl std::fmt::Debug for DlgsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DlgsState").finish()
    }
}

#[derive(Debug, Default)]
pub struct Dlgs {
    cfg: Config,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn state(ctx: &MsgCtx<'_>) -> Option<Arc<DlgsState>> {
    ctx.core.service::<DlgsState>()
}

fn call_id(ctx: &MsgCtx<'_>) -> Option<String> {
    ctx.msg
        .call_id()
        .ok()
        .map(|c| String::from_utf8_lossy(c).into_owned())
}

/// A field or operator argument: checked at load when constant, at run time otherwise.
enum Named<T> {
    Const(T),
    Dynamic(StrArg<Sip>),
}

fn named<T: Copy>(
    arg: Arg<Sip>,
    index: usize,
    parse: fn(&str) -> Result<T, sable_dlgs::DlgsError>,
) -> Result<Named<T>, ArgError> {
    match arg.const_str() {
        Some(c) => parse(&c)
            .map(Named::Const)
            .map_err(|e| ArgError::new(index, e.to_string())),
        None => Ok(Named::Dynamic(arg.into_str())),
    }
}

fn eval_named<T: Copy>(
    n: &Named<T>,
    ctx: &mut MsgCtx<'_>,
    parse: fn(&str) -> Result<T, sable_dlgs::DlgsError>,
) -> Result<T, sable_dlgs::DlgsError> {
    match n {
        Named::Const(v) => Ok(*v),
        Named::Dynamic(s) => parse(&s.eval(ctx)),
    }
}

fn filter_params(p: &Params) -> Result<Filter, RpcError> {
    Filter::parse(p.str(0)?, p.str(1)?, p.str(2)?).map_err(|e| {
        let (code, text) = e.rpc_fault();
        RpcError::new(code, text)
    })
}

impl Module for Dlgs {
    fn name(&self) -> &'static str {
        "dlgs"
    }

    fn set_param(&mut self, name: &str, value: &Literal) -> Result<(), ParamError> {
        let secs = |v: &Literal| -> Result<u64, ParamError> {
            u64::try_from(int_param(v)?).map_err(|_| ParamError::bad("seconds (>= 0)"))
        };
        match name {
            "active_lifetime" => self.cfg.active_lifetime = secs(value)?,
            "init_lifetime" => self.cfg.init_lifetime = secs(value)?,
            "finish_lifetime" => self.cfg.finish_lifetime = secs(value)?,
            "timer_interval" => {
                self.cfg.timer_interval = Config::timer_interval_from(int_param(value)?);
            }
            "hash_size" => {
                int_param(value)?;
            }
            _ => return Err(ParamError::Unknown),
        }
        Ok(())
    }

    fn init(&self, core: &Arc<Core>) -> Result<(), String> {
        if core.service::<DlgsState>().is_some() {
            return Ok(());
        }
        let mut cfg = self.cfg.clone();
        cfg.pid = std::process::id();
        let st = Arc::new(DlgsState {
            store: Mutex::new(Store::new(cfg.clone())),
        });
        core.provide(st.clone());
        // Replies are followed without tm.
        let weak = Arc::downgrade(&st);
        core.reply_hooks.add(Arc::new(move |ctx: &mut MsgCtx<'_>| {
            let Some(st) = weak.upgrade() else {
                return;
            };
            let (Some(code), Ok(cseq), Some(ci)) =
                (ctx.msg.status_code(), ctx.msg.cseq(), call_id(ctx))
            else {
                return;
            };
            let to_tag = ctx
                .msg
                .to()
                .ok()
                .and_then(|t| t.tag().map(|t| String::from_utf8_lossy(t).into_owned()))
                .unwrap_or_default();
            let method = cseq.method.as_bytes();
            let method = String::from_utf8_lossy(method);
            st.store
                .lock()
                .update_reply(code, &method, &ci, &to_tag, unix_now());
        }));
        let reg = &core.stat_registry;
        for (k, name) in ["init", "progress", "answered", "confirmed"]
            .iter()
            .enumerate()
        {
            let weak = Arc::downgrade(&st);
            let state = match k {
                0 => sable_dlgs::State::Init,
                1 => sable_dlgs::State::Progress,
                2 => sable_dlgs::State::Answered,
                _ => sable_dlgs::State::Confirmed,
            };
            reg.computed("dlgs", &format!("active_{name}"), move || {
                weak.upgrade().map_or(0, |s| {
                    i64::try_from(s.store.lock().stats().active(state)).unwrap_or(0)
                })
            });
        }
        let weak = Arc::downgrade(&st);
        reg.computed("dlgs", "records", move || {
            weak.upgrade()
                .map_or(0, |s| i64::try_from(s.store.lock().len()).unwrap_or(0))
        });
        sable_engine::spawn_ticker(
            "dlgs-timer",
            std::time::Duration::from_secs(cfg.timer_interval.max(1)),
            &st,
            core,
            |st, _| {
                st.store.lock().expire(unix_now());
            },
        )
        .map_err(|e| format!("dlgs: {e}"))
    }

    fn rpc(&self, registry: &mut sable_rpc::Registry, core: &Arc<Core>) {
        type Render = fn(&Store, &Params) -> Result<Json, RpcError>;
        let methods: [(&str, &str, Render); 6] = [
            ("dlgs.list", "Lists the records.", |s, _| {
                Ok(sable_dlgs::rpc::list(s))
            }),
            (
                "dlgs.briefing",
                "Lists the records, fewer attributes.",
                |s, _| Ok(sable_dlgs::rpc::briefing(s)),
            ),
            (
                "dlgs.get",
                "The first record matching: field op data.",
                |s, p| Ok(sable_dlgs::rpc::get(s, &filter_params(p)?)),
            ),
            (
                "dlgs.getall",
                "Every record matching: field op data.",
                |s, p| Ok(sable_dlgs::rpc::getall(s, &filter_params(p)?)),
            ),
            ("dlgs.stats", "Records per state.", |s, _| {
                Ok(sable_dlgs::rpc::stats(&s.stats()))
            }),
            (
                "dlgs.memory",
                "Memory the records and indexes take (Sable only).",
                |s, _| {
                    Ok(serde_json::json!({
                        "records": s.len(),
                        "bytes": s.memory_bytes(),
                        "bytes_per_record": s.bytes_per_record(),
                    }))
                },
            ),
        ];
        for (name, help, render) in methods {
            let c = core.clone();
            let kind = if matches!(name, "dlgs.stats" | "dlgs.get" | "dlgs.memory") {
                MethodKind::Value
            } else {
                MethodKind::List
            };
            let _ = registry.register(
                name,
                help,
                ["struct", "string", "string", "string"],
                kind,
                move |p: &Params| -> Result<Json, RpcError> {
                    let st = c
                        .service::<DlgsState>()
                        .ok_or_else(|| RpcError::new(500, "dlgs is not running"))?;
                    let store = st.store.lock();
                    render(&store, p)
                },
            );
        }
    }

    fn register(&self, reg: &mut Registry<Sip>) {
        let init_routes = RouteMask(
            RouteMask::REQUEST.0
                | RouteMask::BRANCH.0
                | RouteMask::TM_ONREPLY.0
                | RouteMask::CORE_ONREPLY.0
                | RouteMask::ONSEND.0,
        );
        reg.function(
            "dlgs_init",
            function("dlgs", 3, 3, init_routes, |_, mut args| {
                let src = required(&mut args, 1, "src")?.into_str();
                let dst = required(&mut args, 2, "dst")?.into_str();
                let data = required(&mut args, 3, "data")?.into_str();
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let invite = ctx.msg.method() == Some(Method::Invite)
                        || ctx
                            .msg
                            .cseq()
                            .is_ok_and(|c| c.method == Method::Invite && !ctx.is_request());
                    if !invite {
                        return -1;
                    }
                    let Some(st) = state(ctx) else {
                        return -1;
                    };
                    let (s, d, x) = (
                        src.eval(ctx).into_owned(),
                        dst.eval(ctx).into_owned(),
                        data.eval(ctx).into_owned(),
                    );
                    let Some(ci) = call_id(ctx) else {
                        return -1;
                    };
                    let ftag = ctx
                        .msg
                        .from()
                        .ok()
                        .and_then(|f| f.tag().map(|t| String::from_utf8_lossy(t).into_owned()))
                        .unwrap_or_default();
                    let branch = ctx
                        .msg
                        .top_via()
                        .ok()
                        .and_then(|v| v.branch().map(|b| String::from_utf8_lossy(b).into_owned()))
                        .unwrap_or_default();
                    let new = sable_dlgs::NewRecord {
                        src: &s,
                        dst: &d,
                        data: &x,
                        call_id: &ci,
                        from_tag: &ftag,
                        branch: &branch,
                        ..sable_dlgs::NewRecord::default()
                    };
                    let r = st.store.lock().insert(&new, unix_now()).map(|_| ());
                    match r {
                        Ok(()) => 1,
                        Err(e) => {
                            tracing::debug!("dlgs_init: {e}");
                            -1
                        }
                    }
                }))
            }),
        );
        reg.function(
            "dlgs_update",
            function("dlgs", 0, 0, init_routes, |_, _| {
                Ok(Box::new(|ctx: &mut MsgCtx<'_>| {
                    if !ctx.is_request() {
                        return -1;
                    }
                    let method = match ctx.msg.method() {
                        Some(m @ (Method::Ack | Method::Bye | Method::Cancel)) => m.to_string(),
                        _ => return -1,
                    };
                    let (Some(st), Some(ci)) = (state(ctx), call_id(ctx)) else {
                        return -1;
                    };
                    let update = st.store.lock().update_request(&method, &ci, unix_now());
                    match update {
                        sable_dlgs::Update::NoRecord => -1,
                        _ => 1,
                    }
                }))
            }),
        );
        reg.function(
            "dlgs_count",
            function("dlgs", 3, 3, RouteMask::ANY, |_, mut args| {
                let field = named(required(&mut args, 1, "field")?, 1, Field::parse)?;
                let op = named(required(&mut args, 2, "op")?, 2, Op::parse)?;
                let data_arg = required(&mut args, 3, "data")?;
                // A constant regular expression is checked at load.
                if let (Named::Const(Op::Re), Some(d)) = (&op, data_arg.const_str()) {
                    Filter::new(Field::Src, Op::Re, &d)
                        .map_err(|e| ArgError::new(3, e.to_string()))?;
                }
                let data = data_arg.into_str();
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let Some(st) = state(ctx) else {
                        return -1;
                    };
                    let f = eval_named(&field, ctx, Field::parse);
                    let o = eval_named(&op, ctx, Op::parse);
                    let d = data.eval(ctx).into_owned();
                    let result = match (f, o) {
                        (Ok(f), Ok(o)) => st.store.lock().count(f, o, &d),
                        (Err(e), _) | (_, Err(e)) => Err(e),
                    };
                    if let Err(e) = &result {
                        tracing::warn!("dlgs_count: {e}");
                    }
                    count_return(result)
                }))
            }),
        );
        for (name, what) in [
            ("dlgs_tags_add", 0u8),
            ("dlgs_tags_rm", 1),
            ("dlgs_tags_count", 2),
        ] {
            reg.function(
                name,
                function("dlgs", 1, 1, RouteMask::ANY, move |_, mut args| {
                    let tag = required(&mut args, 1, "tag")?.into_str();
                    Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                        let Some(st) = state(ctx) else {
                            return -1;
                        };
                        let t = tag.eval(ctx).into_owned();
                        if what == 2 {
                            return count_return(Ok(st.store.lock().tags_count(&t)));
                        }
                        let Some(ci) = call_id(ctx) else {
                            return -1;
                        };
                        let mut store = st.store.lock();
                        if what == 0 {
                            tags_return(store.tags_add(&ci, &t))
                        } else {
                            tags_return(store.tags_rm(&ci, &t))
                        }
                    }))
                }),
            );
        }
    }
}
