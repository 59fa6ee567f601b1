//! `sl`: stateless replies (`sl_send_reply`, `send_reply`, `sl_reply_error`) and their
//! statistics.

use sable_engine::Counter;
use sable_engine::{
    function, int_param, required, send_reply, str_param, Module, MsgCtx, ParamError, Sip,
};
use sable_script::{Arg, ArgError, IntArg, Registry, RouteMask, StrArg};
use sable_sip::Method;
use std::sync::Arc;

/// Reply counters with Kamailio's `sl:` names: the codes counted one by one, the other
/// codes of each class, all replies, error replies (>= 300) and failures to send.
#[derive(Debug)]
pub struct SlStats {
    codes: Vec<(u16, Arc<Counter>)>,
    classes: Vec<Arc<Counter>>,
    sent_replies: Arc<Counter>,
    sent_err_replies: Arc<Counter>,
    failures: Arc<Counter>,
}

/// Codes counted one by one (`sl:200_replies`...); the `Nxx_replies` count the others.
const LISTED_CODES: [u16; 13] = [
    200, 202, 300, 301, 302, 400, 401, 403, 404, 407, 408, 483, 500,
];

impl Default for SlStats {
    fn default() -> Self {
        SlStats {
            codes: LISTED_CODES.iter().map(|&c| (c, Arc::default())).collect(),
            // 1xx..6xx, then xxx (anything else).
            classes: (0..7).map(|_| Arc::default()).collect(),
            sent_replies: Arc::default(),
            sent_err_replies: Arc::default(),
            failures: Arc::default(),
        }
    }
}

impl SlStats {
    fn count(&self, code: u16) {
        self.sent_replies.inc();
        if code >= 300 {
            self.sent_err_replies.inc();
        }
        match self.codes.iter().find(|(c, _)| *c == code) {
            Some((_, c)) => c.inc(),
            None => {
                let class = match code / 100 {
                    k @ 1..=6 => usize::from(k - 1),
                    _ => 6,
                };
                if let Some(c) = self.classes.get(class) {
                    c.inc();
                }
            }
        }
    }

    /// Puts the counters in the statistics registry (group `sl`).
    fn publish(&self, reg: &sable_engine::StatRegistry) {
        for (code, c) in &self.codes {
            reg.adopt_counter("sl", &format!("{code}_replies"), c.clone());
        }
        for (k, c) in self.classes.iter().enumerate() {
            let name = if k < 6 {
                format!("{}xx_replies", k + 1)
            } else {
                "xxx_replies".to_owned()
            };
            reg.adopt_counter("sl", &name, c.clone());
        }
        reg.adopt_counter("sl", "sent_replies", self.sent_replies.clone());
        reg.adopt_counter("sl", "sent_err_replies", self.sent_err_replies.clone());
        reg.adopt_counter("sl", "failures", self.failures.clone());
    }
}

#[derive(Debug)]
pub struct Sl {
    default_code: u16,
    default_reason: String,
    stats: Arc<SlStats>,
}

impl Default for Sl {
    fn default() -> Self {
        Sl {
            default_code: 500,
            default_reason: "Internal Server Error".to_owned(),
            stats: Arc::default(),
        }
    }
}

/// Fixes up a (code, reason) pair.
fn code_reason(mut args: Vec<Arg<Sip>>) -> Result<(IntArg<Sip>, StrArg<Sip>), ArgError> {
    let code = required(&mut args, 1, "code")?.into_int(1)?;
    if let Some(c) = code.as_const() {
        if !(100..=699).contains(&c) {
            return Err(ArgError::new(
                1,
                format!("reply code {c} is not in 100..699"),
            ));
        }
    }
    let reason = required(&mut args, 2, "reason")?.into_str();
    Ok((code, reason))
}

fn reply(ctx: &mut MsgCtx<'_>, stats: &SlStats, code: &IntArg<Sip>, reason: &StrArg<Sip>) -> i32 {
    if !ctx.is_request() {
        return -1;
    }
    // ACKs are never answered.
    if ctx.msg.method() == Some(Method::Ack) {
        return -1;
    }
    let Some(code) = code
        .eval(ctx)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (100..=699).contains(c))
    else {
        tracing::warn!("sl: bad reply code");
        return -1;
    };
    let reason = reason.eval(ctx).into_owned();
    // A redirect carries the destination set as its Contact (RFC 3261 §21.3).
    let contact = if (300..400).contains(&code) && !ctx.branches.is_empty() {
        let list: Vec<String> = ctx
            .branches
            .iter()
            .map(sable_engine::Branch::contact)
            .collect();
        format!("Contact: {}\r\n", list.join(", "))
    } else {
        String::new()
    };
    match send_reply(ctx, code, &reason, &contact, b"", None) {
        Ok(()) => {
            stats.count(code);
            1
        }
        Err(e) => {
            stats.failures.inc();
            tracing::warn!("sl: reply {code} not sent: {e}");
            -1
        }
    }
}

impl Module for Sl {
    fn name(&self) -> &'static str {
        "sl"
    }

    fn set_param(
        &mut self,
        name: &str,
        value: &sable_script::ast::Literal,
    ) -> Result<(), ParamError> {
        match name {
            "default_code" => {
                let c = int_param(value)?;
                self.default_code = u16::try_from(c)
                    .ok()
                    .filter(|c| (300..=699).contains(c))
                    .ok_or_else(|| ParamError::bad("a reply code in 300..699"))?;
            }
            "default_reason" => self.default_reason = str_param(value)?,
            // send_reply() goes through tm whenever a transaction exists.
            "bind_tm" | "rich_redirect" => {
                int_param(value)?;
            }
            "event_callback_fl_ack" | "event_callback_lres_sent" => {
                str_param(value)?;
            }
            _ => return Err(ParamError::Unknown),
        }
        Ok(())
    }

    fn init(&self, core: &Arc<sable_engine::Core>) -> Result<(), String> {
        self.stats.publish(&core.stat_registry);
        Ok(())
    }

    fn register(&self, reg: &mut Registry<Sip>) {
        for name in ["sl_send_reply", "sl_reply"] {
            let stats = self.stats.clone();
            reg.function(
                name,
                function("sl", 2, 2, RouteMask::REQUEST, move |_, args| {
                    let (code, reason) = code_reason(args)?;
                    let stats = stats.clone();
                    Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                        reply(ctx, &stats, &code, &reason)
                    }))
                }),
            );
        }
        let stats = self.stats.clone();
        reg.function(
            "send_reply",
            function(
                "sl",
                2,
                2,
                RouteMask(
                    RouteMask::REQUEST.0
                        | RouteMask::ONREPLY.0
                        | RouteMask::FAILURE.0
                        | RouteMask::BRANCH.0,
                ),
                move |_, args| {
                    let (code, reason) = code_reason(args)?;
                    let stats = stats.clone();
                    Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                        // With a transaction, the reply goes through it (Kamailio's
                        // send_reply uses tm when the transaction exists).
                        if let (Some(tm), Some(_)) = (ctx.core.tm.get().cloned(), &ctx.tm.tx) {
                            let Some(c) = code
                                .eval(ctx)
                                .and_then(|c| u16::try_from(c).ok())
                                .filter(|c| (100..=699).contains(c))
                            else {
                                return -1;
                            };
                            let r = reason.eval(ctx).into_owned();
                            return tm.reply(ctx, c, &r);
                        }
                        reply(ctx, &stats, &code, &reason)
                    }))
                },
            ),
        );
        for name in ["sl_reply_error", "send_reply_error"] {
            let stats = self.stats.clone();
            let (dcode, dreason) = (self.default_code, self.default_reason.clone());
            reg.function(
                name,
                function("sl", 0, 0, RouteMask::REQUEST, move |_, _| {
                    let stats = stats.clone();
                    // Sable records no "last internal error" yet: the reply is the module's
                    // default_code and default_reason.
                    let code: IntArg<Sip> = IntArg::Const(i64::from(dcode));
                    let reason: StrArg<Sip> = StrArg::Const(dreason.clone());
                    Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                        if ctx.replied {
                            return -2;
                        }
                        reply(ctx, &stats, &code, &reason)
                    }))
                }),
            );
        }
    }
}
