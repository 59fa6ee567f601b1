//! `tm`: transaction-stateful forwarding. The machinery is the engine's transaction layer
//! (`sable_engine::tm`); this module gives it Kamailio's parameters, script functions and
//! RPC methods.

use sable_engine::sip_util::{next_hop_of_target, NextHop};
use sable_engine::tm::{NewTx, Tm, TmConfig, UacRequest};
use sable_engine::{function, int_param, required, str_param, take_arg, Core, Module, MsgCtx};
use sable_engine::{ParamError, Sip};
use sable_rpc::{MethodKind, Params, RpcError};
use sable_script::ast::{Literal, RouteKind};
use sable_script::{Arg, ArgError, IntArg, Registry, RouteMask, StrArg, Value};
use sable_transport::Proto;
use serde_json::Value as Json;
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct TmModule {
    cfg: TmConfig,
    ignored: Vec<String>,
}

fn the_tm(ctx: &MsgCtx<'_>) -> Option<Arc<Tm>> {
    ctx.core.tm.get().cloned()
}

const REQ_FAIL: RouteMask = RouteMask(RouteMask::REQUEST.0 | RouteMask::FAILURE.0);
const REQ_FAIL_REPLY: RouteMask =
    RouteMask(RouteMask::REQUEST.0 | RouteMask::FAILURE.0 | RouteMask::TM_ONREPLY.0);
const TM_ROUTES: RouteMask = RouteMask(
    RouteMask::REQUEST.0
        | RouteMask::FAILURE.0
        | RouteMask::TM_ONREPLY.0
        | RouteMask::BRANCH.0
        | RouteMask::BRANCH_FAILURE.0,
);

/// A (code, reason) pair of `t_reply` and friends.
fn code_reason(args: &mut Vec<Arg<Sip>>) -> Result<(IntArg<Sip>, StrArg<Sip>), ArgError> {
    let code = required(args, 1, "code")?.into_int(1)?;
    if let Some(c) = code.as_const() {
        if !(100..=699).contains(&c) {
            return Err(ArgError::new(
                1,
                format!("reply code {c} is not in 100..699"),
            ));
        }
    }
    let reason = required(args, 2, "reason")?.into_str();
    Ok((code, reason))
}

fn eval_code(ctx: &mut MsgCtx<'_>, code: &IntArg<Sip>) -> Option<u16> {
    code.eval(ctx)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (100..=699).contains(c))
}

/// The `t_relay` family: `(host, port)` optional, protocol forced or not.
fn relay_fixup(
    proto: Option<Proto>,
) -> impl Fn(
    &mut sable_script::FixupCtx<'_, '_, Sip>,
    Vec<Arg<Sip>>,
) -> Result<sable_script::Action<Sip>, ArgError> {
    move |_, mut args| {
        let host = take_arg(&mut args, 0).map(Arg::into_str);
        let port = match take_arg(&mut args, 0) {
            Some(p) => Some(p.into_int(2)?),
            None => None,
        };
        Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
            let Some(tm) = the_tm(ctx) else {
                return -1;
            };
            let target: Option<NextHop> = match &host {
                None => match proto {
                    // t_relay_to_udp() with no address: the R-URI/$du, over that protocol.
                    Some(p) => {
                        let t = ctx
                            .dst_uri
                            .clone()
                            .unwrap_or_else(|| ctx.ruri_text().into_owned());
                        match sable_engine::sip_util::next_hop_of_uri(&t) {
                            Ok(mut h) => {
                                h.proto = p;
                                Some(h)
                            }
                            Err(e) => {
                                tracing::warn!("t_relay: {e}");
                                return -1;
                            }
                        }
                    }
                    None => None,
                },
                Some(h) => {
                    let h = h.eval(ctx).into_owned();
                    let p = match &port {
                        Some(p) => match p.eval(ctx).and_then(|n| u16::try_from(n).ok()) {
                            Some(p) => Some(p),
                            None => return -1,
                        },
                        None => None,
                    };
                    match next_hop_of_target(&h, p) {
                        Ok(mut hop) => {
                            if let Some(pr) = proto {
                                hop.proto = pr;
                            }
                            Some(hop)
                        }
                        Err(e) => {
                            tracing::warn!("t_relay: {e}");
                            return -1;
                        }
                    }
                }
            };
            tm.relay(ctx, target)
        }) as sable_script::Action<Sip>)
    }
}

/// `t_on_reply("name")` and the other route-arming functions.
fn arm_fixup(
    kind: RouteKind,
) -> impl Fn(
    &mut sable_script::FixupCtx<'_, '_, Sip>,
    Vec<Arg<Sip>>,
) -> Result<sable_script::Action<Sip>, ArgError> {
    move |fx, mut args| {
        let name = required(&mut args, 1, "route name")?
            .const_str()
            .ok_or_else(|| ArgError::new(1, "the route name must be a constant"))?
            .into_owned();
        let what = match kind {
            RouteKind::Reply => "onreply_route",
            RouteKind::Failure => "failure_route",
            _ => "branch_route",
        };
        let id = fx
            .route(kind, &name)
            .ok_or_else(|| ArgError::new(1, format!("there is no {what}[{name}]")))?;
        Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
            let (r, f, b) = match kind {
                RouteKind::Reply => (Some(id), None, None),
                RouteKind::Failure => (None, Some(id), None),
                _ => (None, None, Some(id)),
            };
            if r.is_some() {
                ctx.tm.on_reply = r;
            }
            if f.is_some() {
                ctx.tm.on_failure = f;
            }
            if b.is_some() {
                ctx.tm.on_branch = b;
            }
            if let Some(tx) = &ctx.tm.tx {
                tx.arm(r, f, b);
            }
            1
        }))
    }
}

/// A true/false test on the transaction of the message.
fn tx_test(
    reg: &mut Registry<Sip>,
    name: &str,
    mask: RouteMask,
    test: fn(&MsgCtx<'_>, &Tm, &Arc<sable_engine::tm::Tx>) -> bool,
) {
    reg.function(
        name,
        function("tm", 0, 0, mask, move |_, _| {
            Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                let (Some(tm), Some(tx)) = (the_tm(ctx), ctx.tm.tx.clone()) else {
                    return -1;
                };
                if test(ctx, &tm, &tx) {
                    1
                } else {
                    -1
                }
            }))
        }),
    );
}

/// `t_load_contacts([mode])`: the destination set (Request-URI and branches), sorted by q,
/// moved into the `contacts_avp` XAVP; the branches are cleared.
fn load_contacts(ctx: &mut MsgCtx<'_>, avp: &str, mode: i64) -> i32 {
    if ctx.branches.is_empty() {
        // One destination only: nothing to order.
        return 1;
    }
    // q in thousandths; -1 when not given, which Kamailio sorts after every q (a
    // Request-URI without q is tried last).
    let mut all: Vec<(i64, String, Option<String>, u32)> = Vec::new();
    if !ctx.ruri_consumed {
        all.push((
            -1,
            ctx.ruri_text().into_owned(),
            ctx.dst_uri.clone(),
            ctx.bflags,
        ));
    }
    for b in ctx.branches.drain(..) {
        all.push((b.q.map_or(-1, i64::from), b.uri, b.dst_uri, b.flags));
    }
    ctx.ruri_consumed = false;
    if mode == 1 {
        // Weighted random order, proportional to q; q <= 0 last.
        let mut rest = all;
        let mut ordered = Vec::new();
        let mut seed = sable_engine::sip_util::hash64(
            format!("{:?}", std::time::SystemTime::now()).as_bytes(),
        );
        while !rest.is_empty() {
            let weight = |c: &(i64, String, Option<String>, u32)| u64::try_from(c.0).unwrap_or(0);
            let total: u64 = rest.iter().map(weight).sum();
            let pick = if total == 0 {
                0
            } else {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let mut r = (seed >> 33) % total;
                let mut k = 0;
                for (i, c) in rest.iter().enumerate() {
                    if r < weight(c) {
                        k = i;
                        break;
                    }
                    r -= weight(c);
                }
                k
            };
            ordered.push(rest.remove(pick));
        }
        // Serial: one contact per step (distinct q-groups).
        let n = ordered.len();
        all = ordered
            .into_iter()
            .enumerate()
            .map(|(i, mut c)| {
                c.0 = i64::try_from(n - i).unwrap_or(0);
                c
            })
            .collect();
    } else {
        // Higher q first; equal q keep their order (tried in parallel).
        all.sort_by_key(|c| std::cmp::Reverse(c.0));
    }
    ctx.xavps.remove_root(avp);
    // Pushed last-to-first, so the first contact to try is on top.
    for (q, uri, dst, flags) in all.into_iter().rev() {
        ctx.xavps.push_item(avp, "uri", Value::from(uri));
        if let Some(d) = dst {
            ctx.xavps.set_field(avp, 0, "dst_uri", Value::from(d));
        }
        ctx.xavps.set_field(avp, 0, "q", Value::Int(q));
        ctx.xavps
            .set_field(avp, 0, "flags", Value::Int(i64::from(flags)));
    }
    1
}

fn xavp_str(item: &sable_script::XavpItem, field: &str) -> Option<String> {
    item.field(field)
        .and_then(|v| v.first())
        .map(|v| v.to_string())
        .filter(|s| !s.is_empty())
}

/// `t_next_contacts()`: the contacts of the highest q left become the Request-URI and the
/// branches. -2 when none is left.
fn next_contacts(ctx: &mut MsgCtx<'_>, avp: &str) -> i32 {
    let Some(top) = ctx.xavps.item(avp, 0).cloned() else {
        return -2;
    };
    let q_of = |item: &sable_script::XavpItem| {
        item.field("q")
            .and_then(|v| v.first())
            .map(Value::as_int)
            .unwrap_or(-1)
    };
    let q = q_of(&top);
    let mut first = true;
    while let Some(item) = ctx.xavps.item(avp, 0).cloned() {
        if q_of(&item) != q {
            break;
        }
        ctx.xavps.remove_item(avp, 0);
        let Some(uri) = xavp_str(&item, "uri") else {
            continue;
        };
        let dst = xavp_str(&item, "dst_uri");
        let flags = item
            .field("flags")
            .and_then(|v| v.first())
            .map(Value::as_int)
            .and_then(|f| u32::try_from(f).ok())
            .unwrap_or(0);
        if first {
            ctx.new_uri = Some(uri);
            ctx.dst_uri = dst;
            ctx.bflags = flags;
            first = false;
        } else if ctx.branches.len() < sable_engine::MAX_BRANCHES {
            ctx.branches.push(sable_engine::Branch {
                uri,
                dst_uri: dst,
                q: u16::try_from(q).ok(),
                flags,
                socket: None,
            });
        }
    }
    if first {
        -2
    } else {
        1
    }
}

/// A CSeq number given as a string or an integer.
fn cseq_param(p: &Params, k: usize) -> Result<u32, RpcError> {
    let v = match p.raw(k) {
        Some(Json::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Some(Json::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    v.ok_or_else(|| RpcError::invalid_params(format!("parameter {}: a CSeq number", k + 1)))
}

/// The transaction layer, for an RPC method (500 when tm did not start).
fn running_tm(core: &Core) -> Result<&Arc<Tm>, RpcError> {
    core.tm
        .get()
        .ok_or_else(|| RpcError::new(500, "tm is not running"))
}

impl Module for TmModule {
    fn name(&self) -> &'static str {
        "tm"
    }

    fn set_param(&mut self, name: &str, value: &Literal) -> Result<(), ParamError> {
        let ms = |v: &Literal| -> Result<u64, ParamError> {
            u64::try_from(int_param(v)?).map_err(|_| ParamError::bad("milliseconds (>= 0)"))
        };
        let flag = |v: &Literal| -> Result<bool, ParamError> { Ok(int_param(v)? != 0) };
        let c = &mut self.cfg;
        match name {
            "fr_timer" => c.fr_timer = ms(value)?,
            "fr_inv_timer" => c.fr_inv_timer = ms(value)?,
            "max_inv_lifetime" => c.max_inv_lifetime = ms(value)?,
            "max_noninv_lifetime" => c.max_noninv_lifetime = ms(value)?,
            "wt_timer" => c.wt_timer = ms(value)?,
            "retr_timer1" => c.retr_timer1 = ms(value)?,
            "retr_timer2" => c.retr_timer2 = ms(value)?,
            "restart_fr_on_each_reply" => c.restart_fr_on_each_reply = flag(value)?,
            "auto_inv_100" => c.auto_inv_100 = flag(value)?,
            "auto_inv_100_reason" => {
                let r = str_param(value)?;
                if r.contains(['\r', '\n']) {
                    return Err(ParamError::bad("a reason phrase without CR/LF"));
                }
                c.auto_inv_100_reason = r;
            }
            "failure_reply_mode" => c.failure_reply_mode = int_param(value)?,
            "cancel_b_method" => {
                let m = int_param(value)?;
                if !(0..=2).contains(&m) {
                    return Err(ParamError::bad("0, 1 or 2"));
                }
                c.cancel_b_method = m;
            }
            "e2e_cancel_reason" => c.e2e_cancel_reason = flag(value)?,
            "relay_100" => c.relay_100 = flag(value)?,
            "disable_6xx_block" => c.disable_6xx_block = flag(value)?,
            "contacts_avp" => c.contacts_avp = Some(str_param(value)?),
            "contact_flows_avp" => c.contact_flows_avp = Some(str_param(value)?),
            // Accepted; no effect in Sable (said by `sable -c`).
            "via1_matching"
            | "ruri_matching"
            | "callid_matching"
            | "callid_cseq_matching"
            | "unix_tx_timeout"
            | "reparse_on_dns_failure"
            | "noisy_ctimer"
            | "aggregate_challenges"
            | "faked_reply_prio"
            | "local_cancel_reason"
            | "unmatched_cancel"
            | "fr_inv_timer_next"
            | "blst_503"
            | "blst_methods_add"
            | "blst_methods_lookup"
            | "cancel_b_method_reply"
            | "enable_stats"
            | "pass_provisional_replies"
            | "default_code"
            | "default_reason"
            | "reply_relay_mode"
            | "local_ack_mode"
            | "xavp_contact" => {
                self.ignored
                    .push(format!("tm: parameter {name} has no effect in Sable"));
            }
            "fr_timer_avp" | "fr_inv_timer_avp" => {
                str_param(value)?;
                self.ignored
                    .push(format!("tm: parameter {name} has no effect in Sable"));
            }
            _ => return Err(ParamError::Unknown),
        }
        Ok(())
    }

    fn warnings(&self) -> Vec<String> {
        self.ignored.clone()
    }

    fn init(&self, core: &Arc<Core>) -> Result<(), String> {
        if core.tm.get().is_some() {
            return Ok(());
        }
        let tm = Tm::start(self.cfg.clone(), core)?;
        let _ = core.tm.set(tm);
        Ok(())
    }

    fn rpc(&self, registry: &mut sable_rpc::Registry, core: &Arc<Core>) {
        let c = core.clone();
        let _ = registry.register(
            "tm.stats",
            "Transaction statistics.",
            ["struct"],
            MethodKind::Value,
            move |_: &Params| -> Result<Json, RpcError> {
                let tm = running_tm(&c)?;
                Ok(tm.stats.to_json())
            },
        );
        let c = core.clone();
        let _ = registry.register(
            "tm.memory",
            "Sable's own accounting of the transaction layer: transactions, timer entries waiting, the room of its tables and timer wheel.",
            ["struct"],
            MethodKind::Value,
            move |_: &Params| -> Result<Json, RpcError> {
                let tm = running_tm(&c)?;
                Ok(tm.memory())
            },
        );
        let c = core.clone();
        let _ = registry.register(
            "tm.list",
            "Lists the transactions.",
            ["array"],
            MethodKind::List,
            move |_: &Params| -> Result<Json, RpcError> {
                let tm = running_tm(&c)?;
                Ok(Json::Array(tm.all().iter().map(|t| t.describe()).collect()))
            },
        );
        let c = core.clone();
        let _ = registry.register(
            "tm.t_uac_start",
            "Sends a request statefully: method ruri nexthop socket headers [body] (\".\" for none).",
            ["string", "string", "string", "string", "string", "string"],
            MethodKind::Value,
            move |p: &Params| -> Result<Json, RpcError> {
                let tm = running_tm(&c)?;
                let dot = |v: Option<&str>| v.map(str::trim).filter(|v| !v.is_empty() && *v != ".").map(str::to_owned);
                let req = UacRequest {
                    method: p.str(0)?.to_owned(),
                    ruri: p.str(1)?.to_owned(),
                    next_hop: dot(p.opt_str(2)?),
                    headers: dot(p.opt_str(4)?).unwrap_or_default(),
                    body: dot(p.opt_str(5)?).unwrap_or_default().into_bytes(),
                    callback: None,
                };
                tm.uac_start(&c, req)
                    .map_err(|e| RpcError::new(500, e))?;
                Ok(Json::Object(serde_json::Map::new()))
            },
        );
        let c = core.clone();
        let _ = registry.register(
            "tm.cancel",
            "Cancels the pending branches of a transaction: callid cseq.",
            ["string", "string", "string"],
            MethodKind::Value,
            move |p: &Params| -> Result<Json, RpcError> {
                let tm = running_tm(&c)?;
                let cseq = cseq_param(p, 1)?;
                let tx = tm
                    .find_by_callid(p.str(0)?, cseq)
                    .ok_or_else(|| RpcError::new(481, "No such transaction"))?;
                tm.cancel_tx(&c, &tx);
                Ok(Json::Object(serde_json::Map::new()))
            },
        );
        let c = core.clone();
        let _ = registry.register(
            "tm.reply",
            "Replies to a transaction: code reason trans_id (the tindex of tm.list) to_tag new_headers [body].",
            ["string", "int", "string", "string", "string", "string", "string"],
            MethodKind::Value,
            move |p: &Params| -> Result<Json, RpcError> {
                let tm = running_tm(&c)?;
                let code = u16::try_from(p.int(0)?)
                    .ok()
                    .filter(|c| (100..=699).contains(c))
                    .ok_or_else(|| RpcError::invalid_params("the code must be 100..699"))?;
                let reason = p.str(1)?;
                if reason.contains(['\r', '\n']) {
                    return Err(RpcError::invalid_params("the reason must be one line"));
                }
                let tid = p.str(2)?;
                let id: u64 = tid
                    .split(':')
                    .next()
                    .and_then(|t| t.trim().parse().ok())
                    .ok_or_else(|| RpcError::invalid_params("trans_id: the tindex from tm.list"))?;
                let tx = tm
                    .find_by_id(id)
                    .ok_or_else(|| RpcError::new(481, "No such transaction"))?;
                let mut headers = p
                    .opt_str(4)?
                    .map(str::trim)
                    .filter(|h| !h.is_empty() && *h != ".")
                    .unwrap_or("")
                    .replace("\r\n", "\n")
                    .replace('\n', "\r\n");
                if !headers.is_empty() && !headers.ends_with("\r\n") {
                    headers.push_str("\r\n");
                }
                if headers.contains("\r\n\r\n") {
                    return Err(RpcError::invalid_params("empty line in the headers"));
                }
                let body = p.opt_str(5)?.filter(|b| *b != ".").unwrap_or("");
                if tm.reply_local(&c, &tx, code, reason, &headers, body.as_bytes(), None) {
                    Ok(Json::Object(serde_json::Map::new()))
                } else {
                    Err(RpcError::new(500, "Reply failed (already replied?)"))
                }
            },
        );
    }

    fn register(&self, reg: &mut Registry<Sip>) {
        for (name, proto) in [
            ("t_relay", None),
            ("t_relay_to_udp", Some(Proto::Udp)),
            ("t_relay_to_tcp", Some(Proto::Tcp)),
        ] {
            reg.function(name, function("tm", 0, 2, REQ_FAIL, relay_fixup(proto)));
        }
        for (name, kind) in [
            ("t_on_reply", RouteKind::Reply),
            ("t_on_failure", RouteKind::Failure),
            ("t_on_branch", RouteKind::Branch),
        ] {
            reg.function(name, function("tm", 1, 1, TM_ROUTES, arm_fixup(kind)));
        }
        reg.function(
            "t_newtran",
            function("tm", 0, 0, RouteMask::REQUEST, |_, _| {
                Ok(Box::new(|ctx: &mut MsgCtx<'_>| {
                    let Some(tm) = the_tm(ctx) else {
                        return -1;
                    };
                    match tm.new_tx(ctx) {
                        Ok(_) => 1,
                        Err(NewTx::Retransmission(_)) => 0,
                        Err(NewTx::Refused(e)) => {
                            tracing::warn!("t_newtran: {e}");
                            -1
                        }
                    }
                }))
            }),
        );
        for (name, create) in [("t_reply", false), ("t_send_reply", true)] {
            reg.function(
                name,
                function("tm", 2, 2, REQ_FAIL_REPLY, move |_, mut args| {
                    let (code, reason) = code_reason(&mut args)?;
                    Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                        let Some(tm) = the_tm(ctx) else {
                            return -1;
                        };
                        let Some(c) = eval_code(ctx, &code) else {
                            return -1;
                        };
                        let reason = reason.eval(ctx).into_owned();
                        if ctx.route == RouteMask::REQUEST && ctx.tm.tx.is_none() {
                            if !create {
                                tracing::warn!(
                                    "{}: no transaction (call t_newtran() first)",
                                    "t_reply"
                                );
                                return -1;
                            }
                            match tm.new_tx(ctx) {
                                Ok(_) => {}
                                Err(NewTx::Retransmission(_)) => return 0,
                                Err(NewTx::Refused(e)) => {
                                    tracing::warn!("t_send_reply: {e}");
                                    return -1;
                                }
                            }
                        }
                        tm.reply(ctx, c, &reason)
                    }))
                }),
            );
        }
        reg.function(
            "t_check_trans",
            function(
                "tm",
                0,
                0,
                RouteMask(RouteMask::REQUEST.0 | RouteMask::ONREPLY.0 | RouteMask::BRANCH.0),
                |_, _| {
                    Ok(Box::new(|ctx: &mut MsgCtx<'_>| match the_tm(ctx) {
                        Some(tm) => tm.check_trans(ctx),
                        None => -1,
                    }))
                },
            ),
        );
        for name in ["t_precheck_trans", "t_lookup_request"] {
            reg.function(
                name,
                function("tm", 0, 0, RouteMask::REQUEST, |_, _| {
                    Ok(Box::new(|ctx: &mut MsgCtx<'_>| {
                        match the_tm(ctx).and_then(|tm| tm.find(ctx)) {
                            Some(_) => 1,
                            None => -1,
                        }
                    }))
                }),
            );
        }
        reg.function(
            "t_release",
            function("tm", 0, 0, RouteMask::REQUEST, |_, _| {
                Ok(Box::new(|ctx: &mut MsgCtx<'_>| {
                    let Some(tm) = the_tm(ctx) else {
                        return -1;
                    };
                    let tx = ctx.tm.tx.take().or_else(|| tm.find(ctx));
                    match tx {
                        Some(tx) => {
                            tm.release(&tx);
                            1
                        }
                        None => -1,
                    }
                }))
            }),
        );
        tx_test(reg, "t_is_canceled", TM_ROUTES, |_, _, tx| tx.is_canceled());
        tx_test(reg, "t_is_expired", TM_ROUTES, |_, tm, tx| {
            tx.expired(tm.now())
        });
        tx_test(
            reg,
            "t_branch_timeout",
            RouteMask(RouteMask::FAILURE.0 | RouteMask::BRANCH_FAILURE.0),
            |ctx, _, tx| tx.timed_out(ctx.tm.branch),
        );
        tx_test(
            reg,
            "t_branch_replied",
            RouteMask(RouteMask::FAILURE.0 | RouteMask::BRANCH_FAILURE.0),
            |ctx, _, tx| tx.replied(ctx.tm.branch),
        );
        tx_test(reg, "t_any_timeout", TM_ROUTES, |_, _, tx| {
            tx.timed_out(None)
        });
        tx_test(reg, "t_any_replied", TM_ROUTES, |_, _, tx| tx.replied(None));
        reg.function(
            "t_is_set",
            function("tm", 1, 1, TM_ROUTES, |_, mut args| {
                let target = required(&mut args, 1, "target")?
                    .const_str()
                    .ok_or_else(|| ArgError::new(1, "must be a constant"))?
                    .into_owned();
                let which = match target.as_str() {
                    "onreply_route" => 0,
                    "failure_route" => 1,
                    "branch_route" => 2,
                    other => {
                        return Err(ArgError::new(
                            1,
                            format!(
                                "'{other}' is not branch_route, failure_route or onreply_route"
                            ),
                        ))
                    }
                };
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let pending = [ctx.tm.on_reply, ctx.tm.on_failure, ctx.tm.on_branch];
                    let mut set = pending.get(which).is_some_and(Option::is_some);
                    if let Some(tx) = &ctx.tm.tx {
                        let (r, f, b) = tx.armed();
                        set = [r, f, b].get(which).copied().unwrap_or(false);
                    }
                    if set {
                        1
                    } else {
                        -1
                    }
                }))
            }),
        );
        reg.function(
            "t_check_status",
            function("tm", 1, 1, TM_ROUTES, |_, mut args| {
                let arg = required(&mut args, 1, "regular expression")?;
                let fixed =
                    match arg.const_str() {
                        Some(t) => Some(regex::Regex::new(&t).map_err(|e| {
                            ArgError::new(1, format!("bad regular expression: {e}"))
                        })?),
                        None => None,
                    };
                let text = arg.into_str();
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let code = if ctx.route == RouteMask::TM_ONREPLY {
                        ctx.msg.status_code().unwrap_or(0)
                    } else if ctx.tm.reply_code != 0 {
                        ctx.tm.reply_code
                    } else {
                        ctx.tm.tx.as_ref().map_or(0, |t| t.final_code())
                    };
                    if code == 0 {
                        return -1;
                    }
                    let code = code.to_string();
                    let hit = match &fixed {
                        Some(re) => re.is_match(&code),
                        None => {
                            regex::Regex::new(&text.eval(ctx)).is_ok_and(|re| re.is_match(&code))
                        }
                    };
                    if hit {
                        1
                    } else {
                        -1
                    }
                }))
            }),
        );
        let defaults = (self.cfg.fr_inv_timer, self.cfg.fr_timer);
        reg.function(
            "t_set_fr",
            function("tm", 1, 2, TM_ROUTES, |_, mut args| {
                let inv = required(&mut args, 1, "fr_inv_timer")?.into_int(1)?;
                let noninv = match take_arg(&mut args, 0) {
                    Some(a) => Some(a.into_int(2)?),
                    None => None,
                };
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let i = inv
                        .eval(ctx)
                        .and_then(|v| u64::try_from(v).ok())
                        .unwrap_or(0);
                    let n = noninv
                        .as_ref()
                        .and_then(|a| a.eval(ctx))
                        .and_then(|v| u64::try_from(v).ok())
                        .unwrap_or(0);
                    match &ctx.tm.tx {
                        Some(tx) => tx.set_fr(i, n),
                        None => ctx.tm.fr = Some((i, n)),
                    }
                    1
                }))
            }),
        );
        reg.function(
            "t_reset_fr",
            function("tm", 0, 0, TM_ROUTES, move |_, _| {
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    match &ctx.tm.tx {
                        Some(tx) => tx.set_fr(defaults.0, defaults.1),
                        None => ctx.tm.fr = None,
                    }
                    1
                }))
            }),
        );
        reg.function(
            "t_drop_replies",
            function("tm", 0, 1, RouteMask::FAILURE, |_, _| {
                Ok(Box::new(|ctx: &mut MsgCtx<'_>| match &ctx.tm.tx {
                    Some(tx) => {
                        tx.drop_replies();
                        1
                    }
                    None => -1,
                }))
            }),
        );
        let contacts = self.cfg.contacts_avp.clone();
        let flows = self.cfg.contact_flows_avp.clone();
        reg.function(
            "t_load_contacts",
            function("tm", 0, 1, REQ_FAIL, move |_, mut args| {
                let mode = match take_arg(&mut args, 0) {
                    Some(a) => a.into_int(1)?,
                    None => IntArg::Const(0),
                };
                let avp = contacts.clone();
                let ok = flows.is_some();
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let (Some(avp), true) = (&avp, ok) else {
                        tracing::error!("t_load_contacts: set the tm parameters contacts_avp and contact_flows_avp");
                        return -1;
                    };
                    let mode = mode.eval(ctx).unwrap_or(0);
                    load_contacts(ctx, avp, mode)
                }))
            }),
        );
        let contacts = self.cfg.contacts_avp.clone();
        reg.function(
            "t_next_contacts",
            function("tm", 0, 0, REQ_FAIL, move |_, _| {
                let avp = contacts.clone();
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let Some(avp) = &avp else {
                        tracing::error!("t_next_contacts: set the tm parameter contacts_avp");
                        return -1;
                    };
                    next_contacts(ctx, avp)
                }))
            }),
        );
    }
}
