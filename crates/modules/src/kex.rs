//! `kex`: Kamailio core extensions (branch and script flags, `$du` helpers, `is_myself`,
//! `pv_printf`).

use sable_engine::{flag_arg, function, required, take_arg, Module, MsgCtx, Sip};
use sable_script::{ArgError, IntArg, Registry, RouteMask};

#[derive(Debug)]
pub struct Kex;

fn bit(ctx: &mut MsgCtx<'_>, f: &IntArg<Sip>) -> Option<u32> {
    f.eval(ctx)
        .filter(|n| (0..=31).contains(n))
        .map(|n| 1u32 << n)
}

/// The branch index argument: only branch 0 (the Request-URI's) exists until tm.
fn branch_ok(ctx: &mut MsgCtx<'_>, b: &Option<IntArg<Sip>>) -> bool {
    b.as_ref().is_none_or(|b| b.eval(ctx) == Some(0))
}

type FlagOp = fn(&mut u32, u32) -> i32;

impl Module for Kex {
    fn name(&self) -> &'static str {
        "kex"
    }

    fn register(&self, reg: &mut Registry<Sip>) {
        let ops: [(&str, FlagOp); 3] = [
            ("set", |f, b| {
                *f |= b;
                1
            }),
            ("reset", |f, b| {
                *f &= !b;
                1
            }),
            ("is", |f, b| if *f & b != 0 { 1 } else { -1 }),
        ];
        for (prefix, op) in ops {
            let suffix = if prefix == "is" { "set" } else { "" };
            reg.function(
                &format!("{prefix}bflag{suffix}"),
                function("kex", 1, 2, RouteMask::ANY, move |_, mut a| {
                    let f = flag_arg(required(&mut a, 1, "argument")?, 1)?;
                    let b = take_arg(&mut a, 0).map(|x| x.into_int(2)).transpose()?;
                    Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                        if !branch_ok(ctx, &b) {
                            return -1;
                        }
                        match bit(ctx, &f) {
                            Some(bit) => op(&mut ctx.bflags, bit),
                            None => -1,
                        }
                    }))
                }),
            );
            reg.function(
                &format!("{prefix}sflag{suffix}"),
                function("kex", 1, 1, RouteMask::ANY, move |_, mut a| {
                    let f = flag_arg(required(&mut a, 1, "argument")?, 1)?;
                    Ok(Box::new(move |ctx: &mut MsgCtx<'_>| match bit(ctx, &f) {
                        Some(bit) => op(&mut ctx.sflags, bit),
                        None => -1,
                    }))
                }),
            );
        }
        reg.function(
            "setdsturi",
            function("kex", 1, 1, RouteMask::ANY, |_, mut a| {
                let u = required(&mut a, 1, "argument")?.into_str();
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let v = u.eval(ctx).into_owned();
                    if v.is_empty() {
                        return -1;
                    }
                    ctx.dst_uri = Some(v);
                    1
                }))
            }),
        );
        reg.function(
            "resetdsturi",
            function("kex", 0, 0, RouteMask::ANY, |_, _| {
                Ok(Box::new(|ctx: &mut MsgCtx<'_>| {
                    ctx.dst_uri = None;
                    1
                }))
            }),
        );
        reg.function(
            "isdsturiset",
            function("kex", 0, 0, RouteMask::ANY, |_, _| {
                Ok(Box::new(
                    |ctx: &mut MsgCtx<'_>| if ctx.dst_uri.is_some() { 1 } else { -1 },
                ))
            }),
        );
        reg.function(
            "is_myself",
            function("kex", 1, 1, RouteMask::ANY, |_, mut a| {
                let u = required(&mut a, 1, "argument")?.into_str();
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let v = u.eval(ctx).into_owned();
                    if ctx.core.is_myself_uri(&v) {
                        1
                    } else {
                        -1
                    }
                }))
            }),
        );
        for name in ["pv_printf", "avp_printf"] {
            reg.function(
                name,
                function("kex", 2, 2, RouteMask::ANY, |_, mut a| {
                    let target = required(&mut a, 1, "argument")?.into_pv(1)?;
                    if !target.is_writable() {
                        return Err(ArgError::new(1, format!("${} is read-only", target.name())));
                    }
                    let fmt = required(&mut a, 2, "argument")?.into_str();
                    Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                        let v = fmt.eval(ctx).into_owned();
                        if target.set(ctx, sable_script::Value::Str(v)) {
                            1
                        } else {
                            -1
                        }
                    }))
                }),
            );
        }
    }
}
