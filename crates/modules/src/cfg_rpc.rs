//! `cfg_rpc`: read and change configuration values at run time over RPC: the config's
//! custom variables (`group.name = value`, read by `$sel(cfg_get.group.name)`) and the core's
//! `debug` level.

use sable_engine::{Core, LogLevel, Module, Sip};
use sable_rpc::{Json, MethodKind, Params, RpcError};
use sable_script::{Registry, Value};
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct CfgRpc;

fn to_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Int(n) => Json::from(*n),
        Value::Str(s) => Json::from(s.as_str()),
    }
}

/// Sets `group.name`; `kind`: `Some(true)` an integer, `Some(false)` a string, `None` as
/// the value looks.
fn set(core: &Core, p: &Params, kind: Option<bool>) -> Result<Json, RpcError> {
    let group = p.str(0)?.to_owned();
    let name = p.str(1)?.to_owned();
    let raw = p
        .raw(2)
        .ok_or_else(|| RpcError::invalid_params("parameter 3 is missing"))?;
    let value = match (kind, raw) {
        (Some(true), _) | (None, Json::Number(_)) => Value::Int(p.int(2)?),
        _ => Value::Str(p.str(2)?.to_owned()),
    };
    if group == "core" && name == "debug" {
        let level = i32::try_from(value.as_int())
            .ok()
            .filter(|l| (-5..=4).contains(l))
            .ok_or_else(|| RpcError::invalid_params("debug must be in -5..4"))?;
        core.set_log_level(LogLevel(level));
        return Ok(Json::from(0));
    }
    let key = format!("{group}.{name}");
    let vars = core
        .cfg_vars
        .read()
        .clone()
        .ok_or_else(|| RpcError::new(500, "not started"))?;
    let mut vars = vars.write();
    let current = vars
        .get_mut(&key)
        .ok_or_else(|| RpcError::new(404, format!("no such cfg variable: {key}")))?;
    // A variable keeps its type: an integer stays an integer.
    if matches!(current, Value::Int(_)) && value.to_int().is_none() {
        return Err(RpcError::invalid_params(format!("{key} is an integer")));
    }
    *current = match current {
        Value::Int(_) => Value::Int(value.as_int()),
        _ => Value::Str(value.into_string()),
    };
    Ok(Json::from(0))
}

impl Module for CfgRpc {
    fn name(&self) -> &'static str {
        "cfg_rpc"
    }

    fn register(&self, _reg: &mut Registry<Sip>) {}

    fn rpc(&self, registry: &mut sable_rpc::Registry, core: &Arc<Core>) {
        let c = core.clone();
        let _ = registry.register(
            "cfg.list",
            "The configuration variables: \"group: name\" for each.",
            ["array"],
            MethodKind::List,
            move |_| {
                let mut out = vec![Json::from("core: debug")];
                if let Some(vars) = c.cfg_vars.read().clone() {
                    for key in vars.read().keys() {
                        let (g, n) = key.split_once('.').unwrap_or(("", key));
                        out.push(Json::from(format!("{g}: {n}")));
                    }
                }
                Ok(Json::Array(out))
            },
        );
        let c = core.clone();
        let _ = registry.register(
            "cfg.get",
            "The value of a configuration variable: group name.",
            ["int|string", "string", "string"],
            MethodKind::Value,
            move |p| {
                let (g, n) = (p.str(0)?, p.str(1)?);
                if g == "core" && n == "debug" {
                    return Ok(Json::from(c.log_level()));
                }
                let key = format!("{g}.{n}");
                let vars = c
                    .cfg_vars
                    .read()
                    .clone()
                    .ok_or_else(|| RpcError::new(500, "not started"))?;
                let v = vars.read().get(&key).cloned();
                v.map(|v| to_json(&v))
                    .ok_or_else(|| RpcError::new(404, format!("no such cfg variable: {key}")))
            },
        );
        for (name, kind) in [
            ("cfg.set", None),
            ("cfg.set_now_int", Some(true)),
            ("cfg.seti", Some(true)),
            ("cfg.set_now_string", Some(false)),
            ("cfg.sets", Some(false)),
        ] {
            let c = core.clone();
            let _ = registry.register(
                name,
                "Sets a configuration variable at once: group name value.",
                ["int", "string", "string", "int|string"],
                MethodKind::Value,
                move |p| set(&c, p, kind),
            );
        }
    }
}
