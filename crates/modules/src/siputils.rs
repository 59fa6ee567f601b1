//! `siputils`: SIP helper checks (`has_totag`, `is_request`, `is_first_hop`, `uri_param`...).

use sable_engine::{function, required, take_arg, Module, MsgCtx, Sip, UriParts};
use sable_script::{Registry, RouteMask};
use sable_sip::{HeaderName, Uri};

#[derive(Debug)]
pub struct Siputils;

fn truth(b: bool) -> i32 {
    if b {
        1
    } else {
        -1
    }
}

impl Module for Siputils {
    fn name(&self) -> &'static str {
        "siputils"
    }

    fn register(&self, reg: &mut Registry<Sip>) {
        reg.function(
            "has_totag",
            function("siputils", 0, 0, RouteMask::ANY, |_, _| {
                Ok(Box::new(|ctx: &mut MsgCtx<'_>| {
                    truth(
                        ctx.msg
                            .to()
                            .is_ok_and(|t| t.tag().is_some_and(|g| !g.is_empty())),
                    )
                }))
            }),
        );
        reg.function(
            "is_request",
            function("siputils", 0, 0, RouteMask::ANY, |_, _| {
                Ok(Box::new(|ctx: &mut MsgCtx<'_>| truth(ctx.is_request())))
            }),
        );
        reg.function(
            "is_reply",
            function("siputils", 0, 0, RouteMask::ANY, |_, _| {
                Ok(Box::new(|ctx: &mut MsgCtx<'_>| truth(!ctx.is_request())))
            }),
        );
        // A request whose only Via is its sender's; a reply with two Vias (the sender's and
        // ours).
        reg.function(
            "is_first_hop",
            function("siputils", 0, 1, RouteMask::ANY, |_, _| {
                Ok(Box::new(|ctx: &mut MsgCtx<'_>| {
                    let n = ctx.msg.vias().map_or(0, <[_]>::len);
                    truth(if ctx.is_request() { n == 1 } else { n == 2 })
                }))
            }),
        );
        reg.function(
            "is_uri",
            function("siputils", 1, 1, RouteMask::ANY, |_, mut a| {
                let v = required(&mut a, 1, "argument")?.into_str();
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let s = v.eval(ctx).into_owned();
                    truth(Uri::parse(s.as_bytes()).is_ok())
                }))
            }),
        );
        reg.function(
            "is_user",
            function("siputils", 1, 1, RouteMask::REQUEST, |_, mut a| {
                let v = required(&mut a, 1, "argument")?.into_str();
                // The user name of the digest credentials (Authorization or
                // Proxy-Authorization), as Kamailio's is_user().
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let want = v.eval(ctx).into_owned();
                    let hit = [HeaderName::Authorization, HeaderName::ProxyAuthorization]
                        .into_iter()
                        .filter_map(|h| ctx.msg.credentials(h).ok())
                        .flatten()
                        .filter_map(|c| c.username())
                        .any(|u| u.as_ref() == want.as_bytes());
                    truth(hit)
                }))
            }),
        );
        reg.function(
            "is_e164",
            function("siputils", 1, 1, RouteMask::ANY, |_, mut a| {
                let v = required(&mut a, 1, "argument")?.into_str();
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let s = v.eval(ctx).into_owned();
                    let s = s
                        .strip_prefix("tel:")
                        .or_else(|| s.strip_prefix("sip:"))
                        .unwrap_or(&s)
                        .to_owned();
                    let num = s.split(['@', ';']).next().unwrap_or("");
                    let digits = num.strip_prefix('+').unwrap_or("");
                    truth(
                        (2..=15).contains(&digits.len())
                            && digits.bytes().all(|b| b.is_ascii_digit()),
                    )
                }))
            }),
        );
        reg.function(
            "uri_param",
            function("siputils", 1, 2, RouteMask::REQUEST, |_, mut a| {
                let name = required(&mut a, 1, "argument")?.into_str();
                let value = take_arg(&mut a, 0).map(sable_script::Arg::into_str);
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let n = name.eval(ctx).into_owned();
                    let want = value.as_ref().map(|v| v.eval(ctx).into_owned());
                    let found = ctx
                        .with_ruri(|u| {
                            u.as_sip()
                                .and_then(|s| s.param(n.as_bytes()))
                                .map(|v| v.map(<[u8]>::to_vec))
                        })
                        .flatten();
                    truth(match (found, want) {
                        (None, _) => false,
                        (Some(_), None) => true,
                        (Some(v), Some(w)) => v.is_some_and(|v| v == w.as_bytes()),
                    })
                }))
            }),
        );
        reg.function(
            "add_uri_param",
            function("siputils", 1, 1, RouteMask::REQUEST, |_, mut a| {
                let p = required(&mut a, 1, "argument")?.into_str();
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let param = p.eval(ctx).into_owned();
                    let uri = ctx.ruri_text().into_owned();
                    let Some(mut parts) = UriParts::of(&uri) else {
                        return -1;
                    };
                    parts.params.push(';');
                    parts.params.push_str(param.trim_start_matches(';'));
                    ctx.new_uri = Some(parts.render());
                    1
                }))
            }),
        );
    }
}
