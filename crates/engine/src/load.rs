//! From a parsed config to a runnable program: core parameters, `loadmodule`, `modparam`,
//! then the compile step against the registry of the loaded modules.

use crate::config::{CoreConfig, GlobalParamError};
use crate::context::Sip;
use crate::module::{ModuleSet, ParamError};
use sable_script::ast::{Config, Item, ParamValue, Pos};
use sable_script::{compile, CompileOptions, ErrorKind, Program, Registry, ScriptError, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The value of a custom cfg variable (`group.name = value`), as `$sel(cfg_get...)` gives it.
fn cfg_var_value(value: &ParamValue) -> Value {
    match value {
        ParamValue::Int(n) => Value::Int(*n),
        ParamValue::Bool(b) => Value::Int(i64::from(*b)),
        ParamValue::Str(s) | ParamValue::Raw(s) => Value::Str(s.clone()),
    }
}

/// A loaded config, ready to start.
#[derive(Debug)]
pub struct Loaded {
    pub core: CoreConfig,
    pub modules: ModuleSet,
    pub program: Program<Sip>,
    /// The custom cfg variables the program reads (give them to the `Core`).
    pub cfg_vars: crate::CfgVars,
}

fn error(config: &Config, kind: ErrorKind, pos: Pos, hint: Option<String>) -> ScriptError {
    ScriptError {
        kind,
        file: config
            .files
            .get(pos.file as usize)
            .cloned()
            .unwrap_or_default(),
        pos,
        hint,
    }
}

/// Applies the config's core parameters and module lines, then compiles its routes. Every
/// error found is returned (not only the first).
pub fn load(config: &Config, mut modules: ModuleSet) -> Result<Loaded, Vec<ScriptError>> {
    let mut errors = Vec::new();
    let mut core = CoreConfig::default();
    let mut cfg_vars: BTreeMap<String, Value> = BTreeMap::new();

    for item in &config.items {
        match item {
            Item::Param { name, value, pos } => {
                if let Err(e) = core.set(name, value) {
                    let (kind, hint) = match e {
                        GlobalParamError::Unknown { name, hint } => {
                            (ErrorKind::UnknownParameter { name }, hint)
                        }
                        GlobalParamError::BadValue { name, expected } => (
                            ErrorKind::BadParameterValue {
                                name,
                                expected: expected.to_owned(),
                            },
                            None,
                        ),
                        GlobalParamError::BadListen { value, reason } => {
                            (ErrorKind::BadListen { value, reason }, None)
                        }
                    };
                    errors.push(error(config, kind, *pos, hint));
                }
            }
            Item::LoadModule { path, pos } => {
                if !modules.load(path) {
                    let name = ModuleSet::module_name(path).to_owned();
                    errors.push(error(
                        config,
                        ErrorKind::UnknownModule { name: name.clone() },
                        *pos,
                        Some(format!("Sable has no module '{name}' yet")),
                    ));
                }
            }
            Item::ModParam {
                module,
                param,
                value,
                pos,
            } => {
                for m in module.split('|').map(str::trim) {
                    if !modules.is_loaded(m) {
                        // A modparam for a module that failed to load was already reported.
                        if modules.exists(m) {
                            errors.push(error(
                                config,
                                ErrorKind::UnknownModule { name: m.to_owned() },
                                *pos,
                                Some(format!("modparam before loadmodule \"{m}.so\"")),
                            ));
                        } else if !config.items.iter().any(|i| matches!(i, Item::LoadModule { path, .. } if ModuleSet::module_name(path) == m)) {
                            errors.push(error(
                                config,
                                ErrorKind::UnknownModule { name: m.to_owned() },
                                *pos,
                                Some(format!("no loadmodule for '{m}'")),
                            ));
                        }
                        continue;
                    }
                    match modules.set_param(m, param, value) {
                        Ok(()) => {}
                        Err(ParamError::Unknown) => errors.push(error(
                            config,
                            ErrorKind::UnknownModuleParameter {
                                module: m.to_owned(),
                                param: param.clone(),
                            },
                            *pos,
                            None,
                        )),
                        Err(ParamError::BadValue { expected }) => errors.push(error(
                            config,
                            ErrorKind::BadParameterValue {
                                name: format!("{m}.{param}"),
                                expected,
                            },
                            *pos,
                            None,
                        )),
                    }
                }
            }
            Item::CfgVar {
                group, name, value, ..
            } => {
                cfg_vars.insert(format!("{group}.{name}"), cfg_var_value(value));
            }
            Item::Route { .. } => {}
        }
    }

    core.warnings.extend(modules.warnings());
    let mut registry: Registry<Sip> = Registry::new();
    let cfg_vars: crate::CfgVars = Arc::new(parking_lot::RwLock::new(cfg_vars));
    crate::register_core(&mut registry, cfg_vars.clone());
    modules.register(&mut registry);
    let options = CompileOptions {
        loaded_modules: modules.loaded().iter().map(|s| (*s).to_owned()).collect(),
        max_while_loops: core.max_while_loops,
        module_pvs: modules.pvs(),
    };
    let program = match compile(config, &registry, &options) {
        Ok(p) => Some(p),
        Err(mut e) => {
            errors.append(&mut e);
            None
        }
    };
    match program {
        Some(program) if errors.is_empty() => Ok(Loaded {
            core,
            modules,
            program,
            cfg_vars,
        }),
        _ => {
            errors.sort_by_key(|e| (e.pos.file, e.pos.line, e.pos.col));
            Err(errors)
        }
    }
}

/// What `cfg.reload` compares the new config with: the running core parameters and the
/// module lines of the config the server started with.
#[derive(Debug, Clone)]
pub struct RunningConfig {
    pub core: CoreConfig,
    /// `modparam` lines as (module, parameter, value), in order.
    pub modparams: Vec<(String, String, String)>,
}

impl RunningConfig {
    pub fn of(config: &Config, core: &CoreConfig) -> RunningConfig {
        RunningConfig {
            core: core.clone(),
            modparams: modparams_of(config),
        }
    }
}

fn modparams_of(config: &Config) -> Vec<(String, String, String)> {
    config
        .items
        .iter()
        .filter_map(|i| match i {
            Item::ModParam {
                module,
                param,
                value,
                ..
            } => Some((module.clone(), param.clone(), format!("{value:?}"))),
            _ => None,
        })
        .collect()
}

/// A config compiled for a reload: the program, and what it asked for that cannot change
/// while running (reported, not applied).
#[derive(Debug)]
pub struct Reloaded {
    pub program: Program<Sip>,
    /// The custom cfg variables of the new config.
    pub cfg_vars: crate::CfgVars,
    /// The new config's core parameters (the log level may be applied at once).
    pub core: CoreConfig,
    pub not_applied: Vec<String>,
}

/// Compiles a new config against the running modules (their state is kept: functions are
/// registered again from the same instances). Core parameters other than `debug` and module
/// parameters keep their running values: a difference is listed in
/// [`Reloaded::not_applied`]. A config that does not compile, or loads a module the server
/// did not start with, is refused with its errors.
pub fn reload(
    config: &Config,
    modules: &ModuleSet,
    running: &RunningConfig,
) -> Result<Reloaded, Vec<ScriptError>> {
    let mut errors = Vec::new();
    let mut core = CoreConfig::default();
    let mut cfg_vars: BTreeMap<String, Value> = BTreeMap::new();
    let mut not_applied = Vec::new();
    for item in &config.items {
        match item {
            Item::Param { name, value, pos } => {
                if let Err(e) = core.set(name, value) {
                    errors.push(error(
                        config,
                        ErrorKind::BadParameterValue {
                            name: name.clone(),
                            expected: e.to_string(),
                        },
                        *pos,
                        None,
                    ));
                }
            }
            Item::LoadModule { path, pos } => {
                let name = ModuleSet::module_name(path);
                if !modules.is_loaded(name) {
                    errors.push(error(
                        config,
                        ErrorKind::UnknownModule {
                            name: name.to_owned(),
                        },
                        *pos,
                        Some(
                            "loading a module the server did not start with needs a restart"
                                .to_owned(),
                        ),
                    ));
                }
            }
            Item::CfgVar {
                group, name, value, ..
            } => {
                cfg_vars.insert(format!("{group}.{name}"), cfg_var_value(value));
            }
            Item::ModParam { .. } | Item::Route { .. } => {}
        }
    }
    let new_modparams = modparams_of(config);
    if new_modparams != running.modparams {
        for mp in new_modparams
            .iter()
            .filter(|m| !running.modparams.contains(m))
        {
            not_applied.push(format!(
                "modparam(\"{}\", \"{}\", {}): module parameters keep their running values (restart to apply)",
                mp.0, mp.1, mp.2
            ));
        }
        for mp in running
            .modparams
            .iter()
            .filter(|m| !new_modparams.contains(m))
        {
            not_applied.push(format!(
                "modparam(\"{}\", \"{}\", {}) removed: the running value stays (restart to apply)",
                mp.0, mp.1, mp.2
            ));
        }
    }
    let r = &running.core;
    let checks: [(&str, bool); 10] = [
        ("listen", core.effective_listens() != r.effective_listens()),
        ("children", core.children != r.children),
        ("alias", core.aliases != r.aliases),
        ("disable_tcp", core.disable_tcp != r.disable_tcp),
        (
            "tcp_connection_lifetime",
            core.tcp_connection_lifetime != r.tcp_connection_lifetime,
        ),
        (
            "tcp_max_connections",
            core.tcp_max_connections != r.tcp_max_connections,
        ),
        (
            "tcp_accept_no_cl",
            core.tcp_accept_no_cl != r.tcp_accept_no_cl,
        ),
        ("server_header", core.server_header != r.server_header),
        ("reply_to_via", core.reply_to_via != r.reply_to_via),
        ("port", core.port != r.port),
    ];
    for (name, changed) in checks {
        if changed {
            not_applied.push(format!(
                "core parameter {name} changed: it keeps its running value (restart to apply)"
            ));
        }
    }
    let mut registry: Registry<Sip> = Registry::new();
    let cfg_vars: crate::CfgVars = Arc::new(parking_lot::RwLock::new(cfg_vars));
    crate::register_core(&mut registry, cfg_vars.clone());
    modules.register(&mut registry);
    let options = CompileOptions {
        loaded_modules: modules.loaded().iter().map(|s| (*s).to_owned()).collect(),
        max_while_loops: core.max_while_loops,
        module_pvs: modules.pvs(),
    };
    match compile(config, &registry, &options) {
        Ok(program) if errors.is_empty() => Ok(Reloaded {
            program,
            cfg_vars,
            core,
            not_applied,
        }),
        Ok(_) => Err(errors),
        Err(mut e) => {
            errors.append(&mut e);
            errors.sort_by_key(|e| (e.pos.file, e.pos.line, e.pos.col));
            Err(errors)
        }
    }
}
