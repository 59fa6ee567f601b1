//! `xhttp`: HTTP requests on the SIP TCP sockets run `event_route[xhttp:request]`, which
//! answers with `xhttp_reply(code, reason, content_type, body)`. `$hu` is the URL.
//! Needs `tcp_accept_no_cl=yes` (HTTP requests without a body carry no Content-Length).

use sable_engine::http::send_http_reply;
use sable_engine::{function, required, str_param, Module, MsgCtx, ParamError, Sip};
use sable_script::{ArgError, PvAccess, PvDef, Registry, RouteMask, Value};
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct Xhttp {
    url_match: Option<regex::Regex>,
    url_skip: Option<regex::Regex>,
}

/// `$hu`: the HTTP request's URL (path and query).
struct HttpUrl;

impl PvAccess<Sip> for HttpUrl {
    fn get(&self, ctx: &mut MsgCtx<'_>) -> Value {
        if ctx.msg.is_request() && sable_sip::Message::looks_like_http(ctx.msg.as_bytes()) {
            Value::Str(
                String::from_utf8_lossy(ctx.msg.slice(ctx.msg.request_uri_span())).into_owned(),
            )
        } else {
            Value::Null
        }
    }
}

fn url_regex(value: &sable_script::ast::Literal) -> Result<regex::Regex, ParamError> {
    let text = str_param(value)?;
    regex::Regex::new(&text).map_err(|e| ParamError::bad(format!("a regular expression ({e})")))
}

impl Module for Xhttp {
    fn name(&self) -> &'static str {
        "xhttp"
    }

    fn set_param(
        &mut self,
        name: &str,
        value: &sable_script::ast::Literal,
    ) -> Result<(), ParamError> {
        match name {
            "url_match" => self.url_match = Some(url_regex(value)?),
            "url_skip" => self.url_skip = Some(url_regex(value)?),
            // KEMI callbacks do not exist in Sable (the native language only).
            "event_callback" => {
                return Err(ParamError::bad(
                    "nothing: KEMI is not supported, use event_route[xhttp:request]",
                ))
            }
            _ => return Err(ParamError::Unknown),
        }
        Ok(())
    }

    fn init(&self, core: &Arc<sable_engine::Core>) -> Result<(), String> {
        let (m, s) = (self.url_match.clone(), self.url_skip.clone());
        // url_skip is tested first, then url_match (both unset: every URL).
        let _ = core.http_filter.set(Box::new(move |url: &str| {
            if s.as_ref().is_some_and(|re| re.is_match(url)) {
                return false;
            }
            m.as_ref().is_none_or(|re| re.is_match(url))
        }));
        if !core.config.tcp_accept_no_cl {
            tracing::warn!(
                "xhttp: tcp_accept_no_cl=yes is needed for HTTP requests without a body"
            );
        }
        Ok(())
    }

    fn register(&self, reg: &mut Registry<Sip>) {
        reg.function(
            "xhttp_reply",
            function("xhttp", 4, 4, RouteMask::REQUEST, |_, mut a| {
                let code = required(&mut a, 1, "code")?.into_int(1)?;
                if let Some(c) = code.as_const() {
                    if !(100..=700).contains(&c) {
                        return Err(ArgError::new(
                            1,
                            format!("HTTP code {c} is not in 100..700"),
                        ));
                    }
                }
                let reason = required(&mut a, 2, "reason")?.into_str();
                if reason.as_const().is_some_and(str::is_empty) {
                    return Err(ArgError::new(2, "the reason phrase must not be empty"));
                }
                let ctype = required(&mut a, 3, "content type")?.into_str();
                let body = required(&mut a, 4, "body")?.into_str();
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    if !sable_sip::Message::looks_like_http(ctx.msg.as_bytes()) {
                        tracing::warn!("xhttp_reply() on a SIP message: ignored");
                        return -1;
                    }
                    let Some(c) = code
                        .eval(ctx)
                        .and_then(|c| u16::try_from(c).ok())
                        .filter(|c| (100..=700).contains(c))
                    else {
                        return -1;
                    };
                    let r = reason.eval(ctx).into_owned();
                    let t = ctype.eval(ctx).into_owned();
                    let b = body.eval(ctx).into_owned();
                    if r.is_empty() || r.contains(['\r', '\n']) || t.contains(['\r', '\n']) {
                        return -1;
                    }
                    match send_http_reply(ctx, c, &r, &t, b.as_bytes()) {
                        Ok(()) => 1,
                        Err(e) => {
                            tracing::warn!("xhttp_reply: {e}");
                            -1
                        }
                    }
                }))
            }),
        );
        reg.pv(
            "hu",
            PvDef {
                module: "xhttp",
                writable: false,
                make: Box::new(|inner| match inner {
                    Some(i) if !i.is_empty() => Err("takes no name in parentheses".to_owned()),
                    _ => Ok(Box::new(HttpUrl) as Box<dyn PvAccess<Sip>>),
                }),
            },
        );
    }
}
