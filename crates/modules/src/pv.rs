//! `pv`: functions on pseudo-variables (`pv_isset`, `pv_unset`, `is_int`). The variables
//! themselves are the core's in Sable (see docs/differences.md).

use sable_engine::{function, take_arg, Module, MsgCtx, Sip};
use sable_script::{Arg, ArgError, Registry, RouteMask, Value};

#[derive(Debug)]
pub struct Pv;

fn pv_arg(a: &mut Vec<Arg<Sip>>) -> Result<sable_script::Pv<Sip>, ArgError> {
    take_arg(a, 0)
        .ok_or(ArgError::new(1, "missing"))?
        .into_pv(1)
}

impl Module for Pv {
    fn name(&self) -> &'static str {
        "pv"
    }

    fn register(&self, reg: &mut Registry<Sip>) {
        reg.function(
            "pv_isset",
            function("pv", 1, 1, RouteMask::ANY, |_, mut a| {
                let p = pv_arg(&mut a)?;
                Ok(Box::new(
                    move |ctx: &mut MsgCtx<'_>| if p.is_defined(ctx) { 1 } else { -1 },
                ))
            }),
        );
        reg.function(
            "pv_unset",
            function("pv", 1, 1, RouteMask::ANY, |_, mut a| {
                let p = pv_arg(&mut a)?;
                if !p.is_writable() {
                    return Err(ArgError::new(1, format!("${} is read-only", p.name())));
                }
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    p.set(ctx, Value::Null);
                    1
                }))
            }),
        );
        reg.function(
            "is_int",
            function("pv", 1, 1, RouteMask::ANY, |_, mut a| {
                let p = pv_arg(&mut a)?;
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| match p.get(ctx) {
                    Value::Int(_) => 1,
                    Value::Str(s) if sable_script::parse_int(&s).is_some() => 1,
                    _ => -1,
                }))
            }),
        );
    }
}
