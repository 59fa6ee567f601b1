//! `xlog`: log lines with pseudo-variables (`xlog`, `xdbg`, `xinfo`...).

use sable_engine::{
    function, required, script_log, str_param, LogLevel, Module, MsgCtx, ParamError, Sip,
};
use sable_script::{Arg, ArgError, Registry, RouteMask, StrArg};

#[derive(Debug)]
pub struct Xlog;

/// The level argument: a constant level name (`L_INFO`, optionally with a facility prefix
/// `LOG_LOCAL0.L_INFO`), or a pseudo-variable holding a number.
enum Level {
    Fixed(LogLevel),
    Dynamic(StrArg<Sip>),
}

fn level_arg(arg: Arg<Sip>) -> Result<Level, ArgError> {
    // A level held in a variable (`$var(lvl)` or `"$var(lvl)"`) is read per message.
    let Some(text) = arg.const_str().map(|t| t.into_owned()) else {
        return Ok(Level::Dynamic(arg.into_str()));
    };
    let name = text.rsplit('.').next().unwrap_or(&text);
    LogLevel::parse(name)
        .map(Level::Fixed)
        .ok_or_else(|| ArgError::new(1, format!("unknown log level '{text}' (L_ALERT..L_DBG)")))
}

fn log_fixup(
    fixed: Option<LogLevel>,
) -> impl Fn(
    &mut sable_script::FixupCtx<'_, '_, Sip>,
    Vec<Arg<Sip>>,
) -> Result<sable_script::Action<Sip>, ArgError> {
    move |_, mut args| {
        let level = match fixed {
            Some(l) => Level::Fixed(l),
            None if args.len() == 2 => level_arg(required(&mut args, 1, "argument")?)?,
            // xlog(format) logs at L_ERR, as Kamailio's does.
            None => Level::Fixed(LogLevel::ERR),
        };
        let text = required(&mut args, 1, "format")?.into_str();
        Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
            let lvl = match &level {
                Level::Fixed(l) => *l,
                Level::Dynamic(s) => {
                    let v = s.eval(ctx).into_owned();
                    LogLevel::parse(&v).unwrap_or(LogLevel::ERR)
                }
            };
            let line = text.eval(ctx);
            script_log(lvl, &line);
            1
        }))
    }
}

impl Module for Xlog {
    fn name(&self) -> &'static str {
        "xlog"
    }

    fn set_param(
        &mut self,
        name: &str,
        value: &sable_script::ast::Literal,
    ) -> Result<(), ParamError> {
        match name {
            // Formatting knobs of Kamailio's syslog output; Sable logs through tracing.
            "buf_size" | "force_color" | "long_format" | "log_facility" | "log_colors"
            | "prefix" | "prefix_mode" | "methods_filter" => {
                str_param(value)?;
                Ok(())
            }
            _ => Err(ParamError::Unknown),
        }
    }

    fn register(&self, reg: &mut Registry<Sip>) {
        reg.function(
            "xlog",
            function("xlog", 1, 2, RouteMask::ANY, log_fixup(None)),
        );
        reg.function(
            "xlogl",
            function("xlog", 1, 2, RouteMask::ANY, log_fixup(None)),
        );
        for (name, level) in [
            ("xdbg", LogLevel::DBG),
            ("xinfo", LogLevel::INFO),
            ("xnotice", LogLevel::NOTICE),
            ("xwarn", LogLevel::WARN),
            ("xerr", LogLevel::ERR),
            ("xbug", LogLevel::BUG),
            ("xcrit", LogLevel::CRIT),
            ("xalert", LogLevel::ALERT),
        ] {
            reg.function(
                name,
                function("xlog", 1, 1, RouteMask::ANY, log_fixup(Some(level))),
            );
        }
    }
}
