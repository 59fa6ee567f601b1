//! `counters`: script counters (`cnt_inc`, `cnt_add`, `cnt_reset`) declared with
//! `modparam("counters", "script_counter", "name[: description]")`.

use sable_engine::Counter;
use sable_engine::{function, required, str_param, take_arg, Module, MsgCtx, ParamError, Sip};
use sable_script::{ArgError, Registry, RouteMask};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// The declared counters: `group.name` → value (group `script` unless
/// `script_cnt_grp_name` says otherwise).
#[derive(Debug, Default)]
pub struct Counters {
    group: String,
    /// Declared counters with their descriptions (shown by the statistics RPC of a later
    /// issue).
    declared: Vec<(String, String)>,
    /// The counters, made when the functions are registered, published at init.
    made: OnceLock<Arc<BTreeMap<String, Arc<Counter>>>>,
}

impl Counters {
    pub fn new() -> Self {
        Counters {
            group: "script".to_owned(),
            declared: Vec::new(),
            made: OnceLock::new(),
        }
    }

    fn full_name(&self, name: &str) -> String {
        if name.contains('.') {
            name.to_owned()
        } else {
            format!("{}.{name}", self.group)
        }
    }
}

impl Module for Counters {
    fn name(&self) -> &'static str {
        "counters"
    }

    fn set_param(
        &mut self,
        name: &str,
        value: &sable_script::ast::Literal,
    ) -> Result<(), ParamError> {
        match name {
            "script_cnt_grp_name" => {
                let g = str_param(value)?;
                if g.is_empty() || g.contains('.') {
                    return Err(ParamError::bad("a group name without '.'"));
                }
                self.group = g;
            }
            "script_counter" => {
                let v = str_param(value)?;
                let (n, desc) = match v.split_once(':') {
                    Some((n, d)) => (n.trim().to_owned(), d.trim().to_owned()),
                    None => (v.trim().to_owned(), String::new()),
                };
                if n.is_empty()
                    || !n
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
                {
                    return Err(ParamError::bad(
                        "a counter name ([A-Za-z0-9_.]) with an optional ': description'",
                    ));
                }
                self.declared.push((n, desc));
            }
            _ => return Err(ParamError::Unknown),
        }
        Ok(())
    }

    fn init(&self, core: &Arc<sable_engine::Core>) -> Result<(), String> {
        if let Some(made) = self.made.get() {
            for (full, c) in made.iter() {
                let (group, name) = full.split_once('.').unwrap_or((&self.group, full));
                core.stat_registry.adopt_counter(group, name, c.clone());
            }
        }
        Ok(())
    }

    fn register(&self, reg: &mut Registry<Sip>) {
        let values: BTreeMap<String, Arc<Counter>> = self
            .declared
            .iter()
            .map(|(n, _)| (self.full_name(n), Arc::default()))
            .collect();
        let values = self.made.get_or_init(|| Arc::new(values)).clone();
        let group = self.group.clone();
        for (fname, kind) in [("cnt_inc", 0), ("cnt_add", 1), ("cnt_reset", 2)] {
            let values = values.clone();
            let group = group.clone();
            let nargs = if kind == 1 { 2 } else { 1 };
            reg.function(
                fname,
                function("counters", nargs, nargs, RouteMask::ANY, move |_, mut a| {
                    let name = required(&mut a, 1, "counter")?
                        .const_str()
                        .ok_or(ArgError::new(1, "the counter name must be a constant"))?
                        .into_owned();
                    let full = if name.contains('.') { name.clone() } else { format!("{group}.{name}") };
                    if !values.contains_key(&full) {
                        return Err(ArgError::new(
                            1,
                            format!("counter '{full}' is not declared (modparam(\"counters\", \"script_counter\", \"{name}\"))"),
                        ));
                    }
                    let amount = match take_arg(&mut a, 0) {
                        Some(x) => Some(x.into_int(2)?),
                        None => None,
                    };
                    let values = values.clone();
                    Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                        let Some(counter) = values.get(&full) else { return -1 };
                        match kind {
                            0 => counter.inc(),
                            1 => {
                                // Counters only grow (a negative amount is refused).
                                let Some(n) = amount
                                    .as_ref()
                                    .and_then(|a| a.eval(ctx))
                                    .and_then(|n| u64::try_from(n).ok())
                                else {
                                    return -1;
                                };
                                counter.add(n);
                            }
                            _ => counter.reset(),
                        }
                        1
                    }))
                }),
            );
        }
    }
}
