//! From a parsed config to a runnable program: core parameters, `loadmodule`, `modparam`,
//! then the compile step against the registry of the loaded modules.

use crate::config::{CoreConfig, GlobalParamError};
use crate::context::Sip;
use crate::module::{ModuleSet, ParamError};
use sable_script::ast::{Config, Item, ParamValue, Pos};
use sable_script::{compile, CompileOptions, ErrorKind, Program, Registry, ScriptError, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// A loaded config, ready to start.
#[derive(Debug)]
pub struct Loaded {
    pub core: CoreConfig,
    pub modules: ModuleSet,
    pub program: Program<Sip>,
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
    let mut cfg_vars: HashMap<String, Value> = HashMap::new();

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
                let v = match value {
                    ParamValue::Int(n) => Value::Int(*n),
                    ParamValue::Bool(b) => Value::Int(i64::from(*b)),
                    ParamValue::Str(s) | ParamValue::Raw(s) => Value::Str(s.clone()),
                };
                cfg_vars.insert(format!("{group}.{name}"), v);
            }
            Item::Route { .. } => {}
        }
    }

    let mut registry: Registry<Sip> = Registry::new();
    crate::register_core(&mut registry, Arc::new(cfg_vars));
    modules.register(&mut registry);
    let options = CompileOptions {
        loaded_modules: modules.loaded().iter().map(|s| (*s).to_owned()).collect(),
        max_while_loops: core.max_while_loops,
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
        }),
        _ => {
            errors.sort_by_key(|e| (e.pos.file, e.pos.line, e.pos.col));
            Err(errors)
        }
    }
}
