//! `statistics`: script-declared statistics (`modparam("statistics", "variable",
//! "[group:]name[/no_reset]")`), `update_stat(name, value)`, `reset_stat(name)`, and
//! `$stat(name)` to read any statistic of the server.

use sable_engine::{function, required, str_param, Gauge, Module, MsgCtx, ParamError, Sip};
use sable_script::{ArgError, PvAccess, PvDef, Registry, RouteMask, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// The declared statistics by `group:name`: the value and whether `reset_stat` may reset it.
type Declared = BTreeMap<String, (Arc<Gauge>, bool)>;

#[derive(Debug, Default)]
pub struct Statistics {
    /// Declared `group:name` with whether `reset_stat` may reset it.
    declared: Vec<(String, String, bool)>,
    made: OnceLock<Arc<Declared>>,
}

/// `$stat(name)`: the value of a statistic (`group:name` or a bare name).
struct StatPv(String);

impl PvAccess<Sip> for StatPv {
    fn get(&self, ctx: &mut MsgCtx<'_>) -> Value {
        ctx.core
            .stat_registry
            .select(&self.0)
            .first()
            .map_or(Value::Null, |v| Value::Int(v.value))
    }
}

fn split_name(s: &str) -> (String, String) {
    match s.split_once(':') {
        Some((g, n)) => (g.to_owned(), n.to_owned()),
        None => ("script".to_owned(), s.to_owned()),
    }
}

impl Module for Statistics {
    fn name(&self) -> &'static str {
        "statistics"
    }

    fn set_param(
        &mut self,
        name: &str,
        value: &sable_script::ast::Literal,
    ) -> Result<(), ParamError> {
        match name {
            "variable" => {
                let v = str_param(value)?;
                let (spec, no_reset) = match v.strip_suffix("/no_reset") {
                    Some(s) => (s.to_owned(), true),
                    None => (v.clone(), false),
                };
                let (group, n) = split_name(spec.trim());
                let ok = |x: &str| {
                    !x.is_empty()
                        && x.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                };
                if !ok(&group) || !ok(&n) {
                    return Err(ParamError::bad(
                        "[group:]name[/no_reset] with letters, digits, '_' or '-'",
                    ));
                }
                self.declared.push((group, n, !no_reset));
            }
            _ => return Err(ParamError::Unknown),
        }
        Ok(())
    }

    fn register(&self, reg: &mut Registry<Sip>) {
        let made: Declared = self
            .declared
            .iter()
            .map(|(g, n, resettable)| (format!("{g}:{n}"), (Arc::default(), *resettable)))
            .collect();
        let made = self.made.get_or_init(|| Arc::new(made)).clone();
        let lookup = move |name: &str| -> Result<(Arc<Gauge>, bool), ArgError> {
            let (g, n) = split_name(name);
            made.get(&format!("{g}:{n}")).cloned().ok_or_else(|| {
                ArgError::new(1, format!("statistic '{g}:{n}' is not declared (modparam(\"statistics\", \"variable\", \"{g}:{n}\"))"))
            })
        };
        let lookup = Arc::new(lookup);
        let l = lookup.clone();
        reg.function(
            "update_stat",
            function("statistics", 2, 2, RouteMask::ANY, move |_, mut a| {
                let name = required(&mut a, 1, "statistic")?
                    .const_str()
                    .ok_or(ArgError::new(1, "the statistic name must be a constant"))?
                    .into_owned();
                let (gauge, _) = l(&name)?;
                let delta = required(&mut a, 2, "value")?.into_int(2)?;
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    match delta.eval(ctx) {
                        Some(d) => {
                            gauge.add(d);
                            1
                        }
                        None => -1,
                    }
                }))
            }),
        );
        let l = lookup;
        reg.function(
            "reset_stat",
            function("statistics", 1, 1, RouteMask::ANY, move |_, mut a| {
                let name = required(&mut a, 1, "statistic")?
                    .const_str()
                    .ok_or(ArgError::new(1, "the statistic name must be a constant"))?
                    .into_owned();
                let (gauge, resettable) = l(&name)?;
                Ok(Box::new(move |_: &mut MsgCtx<'_>| {
                    if !resettable {
                        return -1;
                    }
                    gauge.set(0);
                    1
                }))
            }),
        );
        reg.pv(
            "stat",
            PvDef {
                module: "statistics",
                writable: false,
                make: Box::new(
                    |inner| match inner.map(str::trim).filter(|s| !s.is_empty()) {
                        Some(n) => Ok(Box::new(StatPv(n.to_owned())) as Box<dyn PvAccess<Sip>>),
                        None => Err("needs a statistic name: $stat(name)".to_owned()),
                    },
                ),
            },
        );
    }

    fn init(&self, core: &Arc<sable_engine::Core>) -> Result<(), String> {
        if let Some(made) = self.made.get() {
            for (full, (gauge, resettable)) in made.iter() {
                let (g, n) = split_name(full);
                core.stat_registry
                    .adopt_gauge(&g, &n, gauge.clone(), *resettable);
            }
        }
        Ok(())
    }
}
