//! `rr`: Record-Route (RFC 3261 §16.6 item 4) and loose routing (RFC 3261 §16.4, §16.12).

use sable_engine::{
    function, int_param, required, take_arg, Module, MsgCtx, ParamError, RecordRoute, Sip,
};
use sable_script::{Arg, ArgError, Registry, RouteMask};
use sable_sip::{HeaderName, Uri};

#[derive(Debug)]
pub struct Rr {
    enable_full_lr: bool,
    append_fromtag: bool,
    add_username: bool,
    enable_double_rr: bool,
}

impl Default for Rr {
    fn default() -> Self {
        Rr {
            enable_full_lr: false,
            append_fromtag: true,
            add_username: false,
            enable_double_rr: true,
        }
    }
}

const RR_ROUTES: RouteMask =
    RouteMask(RouteMask::REQUEST.0 | RouteMask::BRANCH.0 | RouteMask::FAILURE.0);

impl Module for Rr {
    fn name(&self) -> &'static str {
        "rr"
    }

    fn set_param(
        &mut self,
        name: &str,
        value: &sable_script::ast::Literal,
    ) -> Result<(), ParamError> {
        match name {
            "enable_full_lr" => self.enable_full_lr = int_param(value)? != 0,
            "append_fromtag" => self.append_fromtag = int_param(value)? != 0,
            "add_username" => self.add_username = int_param(value)? != 0,
            "enable_double_rr" => self.enable_double_rr = int_param(value)? != 0,
            // Accepted; no effect in Sable.
            "enable_socket_mismatch_warning"
            | "force_send_socket"
            | "ignore_sips"
            | "sockname_mode"
            | "loose_route_mode" => {
                int_param(value)?;
            }
            "custom_user_avp" => {
                sable_engine::str_param(value)?;
            }
            _ => return Err(ParamError::Unknown),
        }
        Ok(())
    }

    fn register(&self, reg: &mut Registry<Sip>) {
        let (full_lr, fromtag, username, double) = (
            self.enable_full_lr,
            self.append_fromtag,
            self.add_username,
            self.enable_double_rr,
        );
        let base = move |ctx: &mut MsgCtx<'_>| -> RecordRoute {
            let mut params = String::from(if full_lr { ";lr=on" } else { ";lr" });
            if fromtag {
                if let Some(tag) = ctx.msg.from().ok().and_then(|f| f.tag()) {
                    params.push_str(";ftag=");
                    params.push_str(&String::from_utf8_lossy(tag));
                }
            }
            let user = if username {
                ctx.with_ruri(|u| {
                    u.as_sip()
                        .and_then(|s| s.user())
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                })
                .flatten()
            } else {
                None
            };
            RecordRoute {
                user,
                params,
                preset: None,
                active: true,
                double,
            }
        };
        reg.function(
            "record_route",
            function("rr", 0, 1, RR_ROUTES, move |_, mut a| {
                let extra = take_arg(&mut a, 0).map(Arg::into_str);
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    if !ctx.is_request() {
                        return -1;
                    }
                    // One Record-Route per request: a second call is refused, as Kamailio.
                    if ctx.record_route.as_ref().is_some_and(|r| r.active) {
                        tracing::warn!("record_route() called twice: the second call is ignored");
                        return -1;
                    }
                    let mut rr = base(ctx);
                    if let Some(e) = &extra {
                        let p = e.eval(ctx).into_owned();
                        if !p.is_empty() && !p.starts_with(';') {
                            rr.params.push(';');
                        }
                        rr.params.push_str(&p);
                    }
                    // Parameters added by add_rr_param() before this call are kept.
                    if let Some(prev) = ctx.record_route.take() {
                        rr.params.push_str(&prev.params);
                    }
                    ctx.record_route = Some(rr);
                    1
                }))
            }),
        );
        reg.function(
            "record_route_preset",
            function("rr", 1, 2, RR_ROUTES, move |_, mut a| {
                let addr = required(&mut a, 1, "argument")?.into_str();
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    if ctx.record_route.as_ref().is_some_and(|r| r.active) {
                        tracing::warn!("record_route_preset() after record_route(): ignored");
                        return -1;
                    }
                    let text = addr.eval(ctx).into_owned();
                    let text = text.strip_prefix("sip:").unwrap_or(&text).to_owned();
                    let (address, params) = match text.split_once(';') {
                        Some((a, p)) => (a.to_owned(), format!(";{p}")),
                        None => (text.clone(), String::new()),
                    };
                    let mut rr = base(ctx);
                    rr.params = format!("{params}{}", rr.params);
                    // Parameters added by add_rr_param() before this call are kept.
                    if let Some(prev) = ctx.record_route.take() {
                        rr.params.push_str(&prev.params);
                    }
                    rr.preset = Some(address);
                    ctx.record_route = Some(rr);
                    1
                }))
            }),
        );
        reg.function(
            "add_rr_param",
            function("rr", 1, 1, RR_ROUTES, |_, mut a| {
                let p = required(&mut a, 1, "argument")?.into_str();
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let mut param = p.eval(ctx).into_owned();
                    if !param.starts_with(';') {
                        param.insert(0, ';');
                    }
                    ctx.record_route
                        .get_or_insert_with(RecordRoute::default)
                        .params
                        .push_str(&param);
                    1
                }))
            }),
        );
        reg.function(
            "record_route_advertised_address",
            function("rr", 1, 1, RR_ROUTES, move |_, mut a| {
                let addr = required(&mut a, 1, "address")?.into_str();
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    if ctx.record_route.as_ref().is_some_and(|r| r.active) {
                        return -1;
                    }
                    let text = addr.eval(ctx).into_owned();
                    if text.is_empty() || text.contains(['<', '>', ' ']) {
                        return -1;
                    }
                    let mut rr = base(ctx);
                    if let Some(prev) = ctx.record_route.take() {
                        rr.params.push_str(&prev.params);
                    }
                    rr.preset = Some(text.strip_prefix("sip:").unwrap_or(&text).to_owned());
                    ctx.record_route = Some(rr);
                    1
                }))
            }),
        );
        reg.function(
            "is_direction",
            function(
                "rr",
                1,
                1,
                RouteMask(RouteMask::REQUEST.0 | RouteMask::FAILURE.0 | RouteMask::BRANCH.0),
                |_, mut a| {
                    let dir = required(&mut a, 1, "direction")?
                        .const_str()
                        .ok_or(ArgError::new(1, "\"downstream\" or \"upstream\""))?
                        .into_owned();
                    let downstream = match dir.as_str() {
                        "downstream" => true,
                        "upstream" => false,
                        other => {
                            return Err(ArgError::new(
                                1,
                                format!("'{other}': \"downstream\" or \"upstream\""),
                            ))
                        }
                    };
                    Ok(Box::new(move |ctx: &mut MsgCtx<'_>| match direction(ctx) {
                        Some(d) if d == downstream => 1,
                        _ => -1,
                    }))
                },
            ),
        );
        reg.pv(
            "route_uri",
            sable_script::PvDef {
                module: "rr",
                writable: false,
                make: Box::new(|_| Ok(Box::new(RouteUri) as Box<dyn sable_script::PvAccess<Sip>>)),
            },
        );
        reg.function(
            "loose_route",
            function("rr", 0, 0, RouteMask::REQUEST, |_, _| {
                Ok(Box::new(loose_route))
            }),
        );
        reg.function(
            "check_route_param",
            function("rr", 1, 1, RouteMask::REQUEST, |_, mut a| {
                let text = required(&mut a, 1, "argument")?
                    .const_str()
                    .ok_or(ArgError::new(
                        1,
                        "the regular expression must be a constant",
                    ))?
                    .into_owned();
                // Case-insensitive, as Kamailio's pattern tests.
                let re = regex::RegexBuilder::new(&text)
                    .case_insensitive(true)
                    .build()
                    .map_err(|e| ArgError::new(1, format!("bad regular expression: {e}")))?;
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    // The Route loose_route() consumed; before it, the first Route.
                    let params = consumed_route_params(ctx).or_else(|| {
                        ctx.msg.routes().ok().and_then(|r| {
                            r.first().and_then(|a| {
                                a.uri
                                    .as_sip()
                                    .map(|s| String::from_utf8_lossy(s.params_bytes()).into_owned())
                            })
                        })
                    });
                    match params {
                        Some(p) if re.is_match(&p) => 1,
                        _ => -1,
                    }
                }))
            }),
        );
    }
}

/// `$route_uri`: the URI of the Route `loose_route()` consumed.
struct RouteUri;

impl sable_script::PvAccess<Sip> for RouteUri {
    fn get(&self, ctx: &mut MsgCtx<'_>) -> sable_script::Value {
        ctx.loose_route_uri
            .clone()
            .map_or(sable_script::Value::Null, sable_script::Value::Str)
    }
}

/// `loose_route()`: see the reference table of return codes.
fn loose_route(ctx: &mut MsgCtx<'_>) -> i32 {
    let rc = loose_route_inner(ctx);
    // Modules that track dialogs by our Route (dialog's `did`) look at it now.
    if rc > 0 && ctx.loose_route_uri.is_some() && !ctx.core.rr_hooks.is_empty() {
        ctx.core.rr_hooks.run(ctx);
    }
    rc
}

fn loose_route_inner(ctx: &mut MsgCtx<'_>) -> i32 {
    let core = ctx.core;
    let Ok(routes) = ctx.msg.routes() else {
        return -1;
    };
    if routes.is_empty() {
        return -1;
    }
    let is_ours = |uri: &Uri<'_>| match uri.as_sip() {
        Some(s) => core.is_myself(
            &String::from_utf8_lossy(s.host().as_bytes()),
            s.port(),
            s.secure(),
        ),
        None => false,
    };
    let route_values: Vec<_> = ctx.msg.headers_named(HeaderName::Route).cloned().collect();

    // From a strict router (RFC 3261 §16.4): the Request-URI is the URI we put in a
    // Record-Route; the real Request-URI is the last Route entry.
    let ruri_ours = ctx
        .msg
        .request_uri()
        .is_ok_and(|u| is_ours(u) && !u.as_sip().is_some_and(|s| s.lr()));
    if ruri_ours {
        if let (Some(last), Some(last_h)) = (routes.last(), route_values.last()) {
            ctx.loose_route_uri = Some(
                String::from_utf8_lossy(ctx.msg.slice(ctx.msg.request_uri_span())).into_owned(),
            );
            ctx.new_uri = Some(String::from_utf8_lossy(last.uri.as_bytes()).into_owned());
            ctx.edits.remove_value(last_h);
            if routes.len() > 1 {
                if let Some(first) = routes.first() {
                    ctx.dst_uri = Some(String::from_utf8_lossy(first.uri.as_bytes()).into_owned());
                }
            }
            return 1;
        }
    }

    let mut removed = 0usize;
    for (k, r) in routes.iter().enumerate() {
        if !is_ours(&r.uri) {
            break;
        }
        removed = k + 1;
        // `r2=on` marks a double Record-Route: the next entry is ours too.
        let double = r.uri.as_sip().is_some_and(|s| s.param(b"r2").is_some());
        if !double {
            break;
        }
    }
    if let Some(first) = routes.first().filter(|_| removed > 0) {
        ctx.loose_route_uri = Some(String::from_utf8_lossy(first.uri.as_bytes()).into_owned());
    }
    for h in route_values.iter().take(removed) {
        ctx.edits.remove_value(h);
    }
    match routes.get(removed) {
        Some(next) => {
            ctx.dst_uri = Some(String::from_utf8_lossy(next.uri.as_bytes()).into_owned());
            1
        }
        None => {
            let in_dialog = ctx.msg.to().is_ok_and(|t| t.tag().is_some());
            if in_dialog {
                1
            } else {
                -3
            }
        }
    }
}

/// The parameters of the Route `loose_route()` consumed (after the URI's host part).
fn consumed_route_params(ctx: &MsgCtx<'_>) -> Option<String> {
    let uri = ctx.loose_route_uri.as_ref()?;
    let parsed = Uri::parse(uri.as_bytes()).ok()?;
    let sip = parsed.as_sip()?;
    Some(String::from_utf8_lossy(sip.params_bytes()).into_owned())
}

/// `is_direction("downstream"|"upstream")`: the `ftag` of our Route against the From tag —
/// equal means the request goes the way the dialog's first request went (downstream).
fn direction(ctx: &MsgCtx<'_>) -> Option<bool> {
    let params = consumed_route_params(ctx)?;
    let ftag = params
        .split(';')
        .find_map(|p| p.strip_prefix("ftag="))?
        .to_owned();
    let from_tag = ctx.msg.from().ok().and_then(|f| f.tag())?;
    Some(from_tag == ftag.as_bytes())
}
