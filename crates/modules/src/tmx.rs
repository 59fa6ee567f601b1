//! `tmx`: extras on top of tm: `t_cancel_branches()`, `t_reply_callid()`, and the
//! transaction pseudo-variables `$T_reply_code`, `$T_reply_reason`, `$T_branch_idx`,
//! `$T(name)`.

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
