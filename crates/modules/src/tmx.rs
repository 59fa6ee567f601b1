//! `tmx`: extras on top of tm: `t_cancel_branches()`, `t_reply_callid()`,
//! `t_cancel_callid()`, and the
//! transaction pseudo-variables `$T_reply_code`, `$T_reply_reason`, `$T_branch_idx`,
//! `$T(name)`, `$T_req(pv)`, `$T_rpl(pv)`.

use sable_engine::{function, required, Module, MsgCtx, Sip};
use sable_script::{ArgError, PvAccess, PvDef, Registry, RouteMask, Value};
use sable_sip::Message;

#[derive(Debug, Default)]
pub struct Tmx;

/// What `$T_...` reads.
#[derive(Debug, Clone, Copy)]
enum Field {
    ReplyCode,
    ReplyReason,
    BranchIdx,
    IdIndex,
    ReplyType,
}

struct TPv(Field);

/// The standard reason phrase of the local replies tm makes.
fn local_reason(code: u16) -> &'static str {
    match code {
        408 => "Request Timeout",
        487 => "Request Terminated",
        _ => "Server Internal Error",
    }
}

fn reply_code(ctx: &MsgCtx<'_>) -> u16 {
    if ctx.route == RouteMask::TM_ONREPLY {
        return ctx.msg.status_code().unwrap_or(0);
    }
    if ctx.tm.reply_code != 0 {
        return ctx.tm.reply_code;
    }
    ctx.tm.tx.as_ref().map_or(0, |t| t.final_code())
}

impl PvAccess<Sip> for TPv {
    fn get(&self, ctx: &mut MsgCtx<'_>) -> Value {
        match self.0 {
            Field::ReplyCode => match reply_code(ctx) {
                0 => Value::Null,
                c => Value::Int(i64::from(c)),
            },
            Field::ReplyReason => {
                if ctx.route == RouteMask::TM_ONREPLY {
                    return ctx.msg.reason().map_or(Value::Null, |r| {
                        Value::from(String::from_utf8_lossy(r).into_owned())
                    });
                }
                match &ctx.tm.reply {
                    Some(bytes) => Message::parse(bytes)
                        .ok()
                        .and_then(|m| m.reason().map(|r| String::from_utf8_lossy(r).into_owned()))
                        .map_or(Value::Null, Value::from),
                    None => match reply_code(ctx) {
                        0 => Value::Null,
                        c => Value::from(local_reason(c)),
                    },
                }
            }
            Field::BranchIdx => {
                Value::Int(ctx.tm.branch.map_or(0, |b| i64::try_from(b).unwrap_or(0)))
            }
            Field::IdIndex => ctx.tm.tx.as_ref().map_or(Value::Null, |t| {
                Value::Int(i64::try_from(t.id).unwrap_or(0))
            }),
            Field::ReplyType => {
                // 1 when the reply was made locally by tm (a timeout), 0 when received.
                if ctx.route == RouteMask::FAILURE && ctx.tm.reply.is_none() {
                    Value::Int(1)
                } else {
                    Value::Int(0)
                }
            }
        }
    }
}

/// `$T_req(pv)` / `$T_rpl(pv)`: a pseudo-variable read on the transaction's request, or
/// on the reply being handled (onreply_route) or the winning one (failure_route).
struct OnOther {
    inner: sable_script::Pv<Sip>,
    reply: bool,
}

impl PvAccess<Sip> for OnOther {
    fn get(&self, ctx: &mut MsgCtx<'_>) -> Value {
        if self.reply && ctx.route == RouteMask::TM_ONREPLY {
            return self.inner.get(ctx);
        }
        let bytes = if self.reply {
            match &ctx.tm.reply {
                Some(b) => b.clone(),
                None => return Value::Null,
            }
        } else {
            match &ctx.tm.tx {
                Some(tx) => std::sync::Arc::new(tx.request().to_vec()),
                None => return Value::Null,
            }
        };
        let Ok(msg) = Message::parse(&bytes) else {
            return Value::Null;
        };
        let recv = ctx.recv;
        let vars = std::mem::take(&mut ctx.vars);
        let mut other = MsgCtx::new(ctx.core, msg, recv, vars, ctx.route);
        other.tm = ctx.tm.clone();
        let v = self.inner.get(&mut other);
        ctx.vars = std::mem::take(&mut other.vars);
        v
    }
}

fn pv(reg: &mut Registry<Sip>, name: &str, field: Field) {
    reg.pv(
        name,
        PvDef {
            module: "tmx",
            writable: false,
            make: Box::new(move |_| Ok(Box::new(TPv(field)) as Box<dyn PvAccess<Sip>>)),
        },
    );
}

impl Module for Tmx {
    fn name(&self) -> &'static str {
        "tmx"
    }

    fn register(&self, reg: &mut Registry<Sip>) {
        pv(reg, "T_reply_code", Field::ReplyCode);
        pv(reg, "T_reply_reason", Field::ReplyReason);
        pv(reg, "T_branch_idx", Field::BranchIdx);
        for (name, reply) in [("T_req", false), ("T_rpl", true)] {
            reg.nested_pv(
                name,
                sable_script::NestedPvDef {
                    module: "tmx",
                    make: Box::new(move |inner| {
                        Ok(Box::new(OnOther { inner, reply }) as Box<dyn PvAccess<Sip>>)
                    }),
                },
            );
        }
        reg.pv(
            "T",
            PvDef {
                module: "tmx",
                writable: false,
                make: Box::new(|inner| {
                    let field = match inner.map(str::trim) {
                        Some("reply_code") => Field::ReplyCode,
                        Some("reply_reason") => Field::ReplyReason,
                        Some("branch_index") => Field::BranchIdx,
                        Some("id_index") => Field::IdIndex,
                        Some("reply_type") => Field::ReplyType,
                        other => {
                            return Err(format!(
                                "$T({}) is not one of reply_code, reply_reason, branch_index, id_index, reply_type",
                                other.unwrap_or("")
                            ))
                        }
                    };
                    Ok(Box::new(TPv(field)) as Box<dyn PvAccess<Sip>>)
                }),
            },
        );
        reg.function(
            "t_reply_callid",
            function("tmx", 4, 4, RouteMask::ANY, |_, mut args| {
                let callid = required(&mut args, 1, "Call-ID")?.into_str();
                let cseq = required(&mut args, 2, "CSeq")?.into_str();
                let code = required(&mut args, 3, "code")?.into_int(3)?;
                let reason = required(&mut args, 4, "reason")?.into_str();
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let Some(tm) = ctx.core.tm.get().cloned() else {
                        return -1;
                    };
                    let ci = callid.eval(ctx).into_owned();
                    let Ok(n) = cseq.eval(ctx).trim().parse::<u32>() else {
                        return -1;
                    };
                    let Some(c) = code
                        .eval(ctx)
                        .and_then(|c| u16::try_from(c).ok())
                        .filter(|c| (100..=699).contains(c))
                    else {
                        return -1;
                    };
                    let r = reason.eval(ctx).into_owned();
                    if r.contains(['\r', '\n']) {
                        return -1;
                    }
                    match tm.find_by_callid(&ci, n) {
                        Some(tx) if tm.reply_local(ctx.core, &tx, c, &r, "", b"", None) => 1,
                        _ => -1,
                    }
                }))
            }),
        );
        reg.function(
            "t_cancel_callid",
            function("tmx", 3, 4, RouteMask::ANY, |_, mut args| {
                let callid = required(&mut args, 1, "Call-ID")?.into_str();
                let cseq = required(&mut args, 2, "CSeq")?.into_str();
                let _flags = required(&mut args, 3, "flags")?.into_int(3)?;
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let Some(tm) = ctx.core.tm.get().cloned() else {
                        return -1;
                    };
                    let ci = callid.eval(ctx).into_owned();
                    let Ok(n) = cseq.eval(ctx).trim().parse::<u32>() else {
                        return -1;
                    };
                    match tm.find_by_callid(&ci, n) {
                        Some(tx) => {
                            tm.cancel_tx(ctx.core, &tx);
                            1
                        }
                        None => -1,
                    }
                }))
            }),
        );
        reg.function(
            "t_cancel_branches",
            function(
                "tmx",
                1,
                1,
                RouteMask(RouteMask::TM_ONREPLY.0 | RouteMask::FAILURE.0),
                |_, mut args| {
                    let which = required(&mut args, 1, "which")?
                        .const_str()
                        .ok_or_else(|| ArgError::new(1, "must be a constant"))?
                        .into_owned();
                    if !matches!(which.as_str(), "all" | "others" | "this") {
                        return Err(ArgError::new(1, "must be all, others or this"));
                    }
                    Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                        match ctx.core.tm.get().cloned() {
                            Some(tm) => tm.cancel_branches(ctx, &which),
                            None => -1,
                        }
                    }))
                },
            ),
        );
    }
}
