//! `xhttp_prom`: Prometheus text exposition of the server's statistics and of metrics the
//! script defines (`prom_counter_inc`, `prom_gauge_set`...), answered by `prom_dispatch()` in
//! `event_route[xhttp:request]`.

use sable_engine::http::send_http_reply;
use sable_engine::{
    function, int_param, required, str_param, Core, Module, MsgCtx, ParamError, Sip,
};
use sable_rpc::{Json, MethodKind, Params, RpcError};
use sable_script::{Arg, ArgError, Registry, RouteMask, StrArg};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

/// Most label sets one metric keeps (label values may come from the network).
const MAX_SERIES_PER_METRIC: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

/// Declared metrics and their values (by label values).
#[derive(Debug, Default)]
struct Metrics {
    defs: BTreeMap<String, (Kind, Vec<String>)>,
    values: Mutex<BTreeMap<(String, Vec<String>), f64>>,
}

impl Metrics {
    fn update(
        &self,
        name: &str,
        labels: Vec<String>,
        f: impl FnOnce(&mut f64),
    ) -> Result<(), String> {
        let (_, want) = self
            .defs
            .get(name)
            .ok_or_else(|| format!("metric '{name}' is not declared"))?;
        if want.len() != labels.len() {
            return Err(format!(
                "metric '{name}' has {} label(s), {} given",
                want.len(),
                labels.len()
            ));
        }
        let mut values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (name.to_owned(), labels);
        // Label values may come from the network ($fU...): bound the series per metric.
        if !values.contains_key(&key)
            && values.keys().filter(|(n, _)| n == name).count() >= MAX_SERIES_PER_METRIC
        {
            return Err(format!(
                "metric '{name}' has {MAX_SERIES_PER_METRIC} label sets already"
            ));
        }
        f(values.entry(key).or_insert(0.0));
        Ok(())
    }

    fn render(&self, out: &mut String) {
        let values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        for (name, (kind, labels)) in &self.defs {
            let rows: Vec<_> = values.iter().filter(|((n, _), _)| n == name).collect();
            if rows.is_empty() {
                continue;
            }
            let _ = writeln!(
                out,
                "# TYPE kamailio_{name} {}",
                if *kind == Kind::Counter {
                    "counter"
                } else {
                    "gauge"
                }
            );
            for ((_, lv), v) in rows {
                out.push_str("kamailio_");
                out.push_str(name);
                if !labels.is_empty() {
                    out.push('{');
                    for (k, (ln, val)) in labels.iter().zip(lv).enumerate() {
                        if k > 0 {
                            out.push(',');
                        }
                        let escaped = val
                            .replace('\\', "\\\\")
                            .replace('"', "\\\"")
                            .replace('\n', "\\n");
                        let _ = write!(out, "{ln}=\"{escaped}\"");
                    }
                    out.push('}');
                }
                let _ = writeln!(out, " {v}");
            }
        }
    }
}

#[derive(Debug, Default)]
pub struct XhttpProm {
    stats: Vec<String>,
    metrics: Arc<Metrics>,
}

/// A metric or label name as Prometheus allows them.
fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `name=x; label=a:b:c`.
fn parse_decl(text: &str) -> Result<(String, Vec<String>), ParamError> {
    let bad = || ParamError::bad("\"name=NAME; label=L1:L2:L3\" (label optional, at most 3)");
    let mut name = None;
    let mut labels = Vec::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(bad)?;
        match k.trim() {
            "name" => name = Some(v.trim().to_owned()),
            "label" => labels = v.trim().split(':').map(|l| l.trim().to_owned()).collect(),
            _ => return Err(bad()),
        }
    }
    let name = name.filter(|n| valid_name(n)).ok_or_else(bad)?;
    if labels.len() > 3 || !labels.iter().all(|l| valid_name(l)) {
        return Err(bad());
    }
    Ok((name, labels))
}

/// The label-value arguments of a function, from argument `first` (1-based) on.
fn label_args(args: Vec<Arg<Sip>>) -> Vec<StrArg<Sip>> {
    args.into_iter().map(Arg::into_str).collect()
}

/// The whole exposition: script metrics, then the selected server statistics.
fn exposition(core: &Core, metrics: &Metrics, selectors: &[String]) -> String {
    let mut out = String::new();
    metrics.render(&mut out);
    for sel in selectors {
        for v in core.stat_registry.select(sel) {
            let name = format!("kamailio_{}_{}", v.group, v.name)
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect::<String>();
            let _ = writeln!(
                out,
                "# TYPE {name} {}",
                if v.counter { "counter" } else { "gauge" }
            );
            let _ = writeln!(out, "{name} {}", v.value);
        }
    }
    out
}

impl Module for XhttpProm {
    fn name(&self) -> &'static str {
        "xhttp_prom"
    }

    fn set_param(
        &mut self,
        name: &str,
        value: &sable_script::ast::Literal,
    ) -> Result<(), ParamError> {
        match name {
            "xhttp_prom_stats" => {
                let v = str_param(value)?;
                self.stats.extend(
                    v.split([' ', ','])
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned),
                );
            }
            "prom_counter" | "prom_gauge" => {
                let (n, labels) = parse_decl(&str_param(value)?)?;
                let kind = if name == "prom_counter" {
                    Kind::Counter
                } else {
                    Kind::Gauge
                };
                let metrics = Arc::get_mut(&mut self.metrics)
                    .ok_or_else(|| ParamError::bad("a declaration before start"))?;
                if metrics.defs.insert(n.clone(), (kind, labels)).is_some() {
                    return Err(ParamError::bad(format!(
                        "a new name ('{n}' is declared twice)"
                    )));
                }
            }
            "xhttp_prom_buf_size"
            | "xhttp_prom_timeout"
            | "xhttp_prom_pkg_stats"
            | "xhttp_prom_uptime_stat" => {
                int_param(value)?;
            }
            "xhttp_prom_beginning" => {
                str_param(value)?;
            }
            _ => return Err(ParamError::Unknown),
        }
        Ok(())
    }

    fn register(&self, reg: &mut Registry<Sip>) {
        let check =
            |metrics: &Arc<Metrics>,
             name: &Arg<Sip>,
             kind: Kind,
             nlabels: usize|
             -> Result<String, ArgError> {
                let n = name
                    .const_str()
                    .ok_or(ArgError::new(1, "the metric name must be a constant"))?
                    .into_owned();
                match metrics.defs.get(&n) {
                    Some((k, labels)) if *k == kind && labels.len() == nlabels => Ok(n),
                    Some((k, labels)) if *k == kind => Err(ArgError::new(
                        1,
                        format!("'{n}' has {} label(s), {nlabels} given", labels.len()),
                    )),
                    _ => Err(ArgError::new(
                        1,
                        format!(
                        "'{n}' is not declared with modparam(\"xhttp_prom\", \"{}\", \"name={n}\")",
                        if kind == Kind::Counter { "prom_counter" } else { "prom_gauge" }
                    ),
                    )),
                }
            };
        // (function, kind, takes a number)
        for (fname, kind, with_number) in [
            ("prom_counter_reset", Kind::Counter, false),
            ("prom_gauge_reset", Kind::Gauge, false),
            ("prom_counter_inc", Kind::Counter, true),
            ("prom_gauge_set", Kind::Gauge, true),
        ] {
            let metrics = self.metrics.clone();
            let min = if with_number { 2 } else { 1 };
            reg.function(
                fname,
                function(
                    "xhttp_prom",
                    min,
                    min + 3,
                    RouteMask::ANY,
                    move |_, mut a| {
                        let name_arg = required(&mut a, 1, "metric name")?;
                        let number = if with_number {
                            Some(required(&mut a, 2, "number")?.into_str())
                        } else {
                            None
                        };
                        let labels = label_args(a);
                        let name = check(&metrics, &name_arg, kind, labels.len())?;
                        let metrics = metrics.clone();
                        Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                            let lv: Vec<String> =
                                labels.iter().map(|l| l.eval(ctx).into_owned()).collect();
                            let n = match &number {
                                Some(x) => match x.eval(ctx).trim().parse::<f64>() {
                                    Ok(v) if kind == Kind::Gauge || v >= 0.0 => Some(v),
                                    _ => return -1,
                                },
                                None => None,
                            };
                            let r = metrics.update(&name, lv, |v| match (n, kind) {
                                (None, _) => *v = 0.0,
                                (Some(x), Kind::Counter) => *v += x.trunc(),
                                (Some(x), Kind::Gauge) => *v = x,
                            });
                            if r.is_ok() {
                                1
                            } else {
                                -1
                            }
                        }))
                    },
                ),
            );
        }
        let metrics = self.metrics.clone();
        let stats = self.stats.clone();
        reg.function(
            "prom_dispatch",
            function("xhttp_prom", 0, 0, RouteMask::REQUEST, move |_, _| {
                let (metrics, stats) = (metrics.clone(), stats.clone());
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let body = exposition(ctx.core, &metrics, &stats);
                    match send_http_reply(
                        ctx,
                        200,
                        "OK",
                        "text/plain; version=0.0.4",
                        body.as_bytes(),
                    ) {
                        Ok(()) => 1,
                        Err(e) => {
                            tracing::warn!("prom_dispatch: {e}");
                            -1
                        }
                    }
                }))
            }),
        );
        reg.function(
            "prom_check_uri",
            function("xhttp_prom", 0, 0, RouteMask::REQUEST, |_, _| {
                Ok(Box::new(|ctx: &mut MsgCtx<'_>| {
                    let url = ctx.msg.slice(ctx.msg.request_uri_span());
                    let path = url.split(|&b| b == b'?').next().unwrap_or_default();
                    if path == b"/metrics" {
                        1
                    } else {
                        -1
                    }
                }))
            }),
        );
    }

    fn rpc(&self, registry: &mut sable_rpc::Registry, _core: &Arc<Core>) {
        let update = |metrics: Arc<Metrics>, with_number: bool, kind: Kind| {
            move |p: &Params| -> Result<Json, RpcError> {
                let name = p.str(0)?.to_owned();
                if metrics.defs.get(&name).map(|d| d.0) != Some(kind) {
                    return Err(RpcError::new(500, format!("no such metric: {name}")));
                }
                let first_label = if with_number { 2 } else { 1 };
                let number =
                    if with_number {
                        let raw = p.str(1)?;
                        Some(raw.trim().parse::<f64>().map_err(|_| {
                            RpcError::invalid_params("parameter 2: expected a number")
                        })?)
                    } else {
                        None
                    };
                let labels: Vec<String> = p
                    .strings_from(first_label)?
                    .into_iter()
                    .map(str::to_owned)
                    .collect();
                metrics
                    .update(&name, labels, |v| match (number, kind) {
                        (None, _) => *v = 0.0,
                        (Some(x), Kind::Counter) => *v += x.max(0.0).trunc(),
                        (Some(x), Kind::Gauge) => *v = x,
                    })
                    .map_err(|e| RpcError::new(500, e))?;
                Ok(Json::Object(serde_json::Map::new()))
            }
        };
        let regs: [(&str, &str, bool, Kind); 4] = [
            (
                "xhttp_prom.counter_reset",
                "Sets a counter (name [labels...]) to 0.",
                false,
                Kind::Counter,
            ),
            (
                "xhttp_prom.counter_inc",
                "Adds a number to a counter (name number [labels...]).",
                true,
                Kind::Counter,
            ),
            (
                "xhttp_prom.gauge_reset",
                "Sets a gauge (name [labels...]) to 0.",
                false,
                Kind::Gauge,
            ),
            (
                "xhttp_prom.gauge_set",
                "Sets a gauge (name number [labels...]).",
                true,
                Kind::Gauge,
            ),
        ];
        for (name, help, with_number, kind) in regs {
            let _ = registry.register(
                name,
                help,
                ["struct", "string"],
                MethodKind::Value,
                update(self.metrics.clone(), with_number, kind),
            );
        }
        let metrics = self.metrics.clone();
        let _ = registry.register(
            "xhttp_prom.metric_list_print",
            "The script-defined metrics, in the exposition format.",
            ["string"],
            MethodKind::Value,
            move |_| {
                let mut out = String::new();
                metrics.render(&mut out);
                Ok(Json::from(out))
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declarations() {
        assert_eq!(
            parse_decl("name=cnt; label=method:IP").unwrap(),
            ("cnt".to_owned(), vec!["method".to_owned(), "IP".to_owned()])
        );
        assert_eq!(parse_decl("name=g;").unwrap().1.len(), 0);
        assert!(parse_decl("label=a").is_err());
        assert!(parse_decl("name=1x").is_err());
        assert!(parse_decl("name=x; label=a:b:c:d").is_err());
    }

    #[test]
    fn rendering() {
        let mut m = Metrics::default();
        m.defs
            .insert("c".to_owned(), (Kind::Counter, vec!["method".to_owned()]));
        m.defs.insert("g".to_owned(), (Kind::Gauge, vec![]));
        m.update("c", vec!["INVITE".to_owned()], |v| *v += 2.0)
            .unwrap();
        m.update("g", vec![], |v| *v = -1.5).unwrap();
        assert!(m.update("c", vec![], |_| {}).is_err());
        let mut out = String::new();
        m.render(&mut out);
        assert_eq!(out, "# TYPE kamailio_c counter\nkamailio_c{method=\"INVITE\"} 2\n# TYPE kamailio_g gauge\nkamailio_g -1.5\n");
    }
}
