//! `maxfwd`: Max-Forwards processing (RFC 3261 §16.3 item 2, §16.6 item 3).

use sable_engine::{function, int_param, take_arg, Module, MsgCtx, ParamError, Sip};
use sable_script::{ArgError, Registry, RouteMask};
use sable_sip::HeaderName;

#[derive(Debug)]
pub struct Maxfwd {
    /// Upper bound of the value sent on (`max_limit`, default 70).
    max_limit: u8,
}

impl Default for Maxfwd {
    fn default() -> Self {
        Maxfwd { max_limit: 70 }
    }
}

fn max_arg(args: &mut Vec<sable_script::Arg<Sip>>) -> Result<sable_script::IntArg<Sip>, ArgError> {
    let a = take_arg(args, 0)
        .ok_or(ArgError::new(1, "missing value"))?
        .into_int(1)?;
    if let Some(n) = a.as_const() {
        if !(0..=255).contains(&n) {
            return Err(ArgError::new(1, format!("{n} is not in 0..255")));
        }
    }
    Ok(a)
}

impl Module for Maxfwd {
    fn name(&self) -> &'static str {
        "maxfwd"
    }

    fn set_param(
        &mut self,
        name: &str,
        value: &sable_script::ast::Literal,
    ) -> Result<(), ParamError> {
        match name {
            "max_limit" => {
                let n = int_param(value)?;
                self.max_limit = u8::try_from(n)
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| ParamError::bad("a value in 1..255"))?;
            }
            _ => return Err(ParamError::Unknown),
        }
        Ok(())
    }

    fn register(&self, reg: &mut Registry<Sip>) {
        let limit = self.max_limit;
        reg.function(
            "mf_process_maxfwd_header",
            function(
                "maxfwd",
                1,
                1,
                RouteMask(RouteMask::REQUEST.0 | RouteMask::FAILURE.0 | RouteMask::BRANCH.0),
                move |_, mut a| {
                    let max = max_arg(&mut a)?;
                    Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                        if !ctx.is_request() {
                            return -2;
                        }
                        match ctx.msg.max_forwards() {
                            None => {
                                let Some(m) = max.eval(ctx).and_then(|m| u8::try_from(m).ok())
                                else {
                                    return -2;
                                };
                                let value = m.min(limit).to_string();
                                match ctx.edits.append_header(
                                    &ctx.msg,
                                    b"Max-Forwards",
                                    value.as_bytes(),
                                ) {
                                    Ok(()) => 2,
                                    Err(_) => -2,
                                }
                            }
                            Some(Err(_)) => -2,
                            Some(Ok(0)) => -1,
                            Some(Ok(v)) => {
                                let Some(h) = ctx.msg.header(HeaderName::MaxForwards) else {
                                    return -2;
                                };
                                let value = (v - 1).min(limit).to_string();
                                match ctx.edits.replace_value(h, value.as_bytes()) {
                                    Ok(()) => 1,
                                    Err(_) => -2,
                                }
                            }
                        }
                    }))
                },
            ),
        );
        reg.function(
            "is_maxfwd_lt",
            function(
                "maxfwd",
                1,
                1,
                RouteMask(RouteMask::REQUEST.0 | RouteMask::FAILURE.0 | RouteMask::BRANCH.0),
                |_, mut a| {
                    let max = max_arg(&mut a)?;
                    Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                        let Some(m) = max.eval(ctx) else { return -2 };
                        match ctx.msg.max_forwards() {
                            Some(Ok(v)) if i64::from(v) < m => 1,
                            Some(Err(_)) => -2,
                            _ => -1,
                        }
                    }))
                },
            ),
        );
    }
}
