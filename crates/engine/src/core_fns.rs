//! Core script functions: forwarding, flags, Request-URI rewriting, `force_rport`, `log`.

use crate::context::{MsgCtx, Sip};
use crate::dispatch::forward_request;
use crate::sip_util::{next_hop_of_target, next_hop_of_uri};
use sable_script::{Action, Arg, ArgError, FixupCtx, FunctionDef, IntArg, Registry, RouteMask};
use sable_sip::Uri;
use sable_transport::Proto;

/// Builds a [`FunctionDef`].
pub fn function(
    module: &'static str,
    min_args: usize,
    max_args: usize,
    routes: RouteMask,
    fixup: impl Fn(&mut FixupCtx<'_, '_, Sip>, Vec<Arg<Sip>>) -> Result<Action<Sip>, ArgError>
        + Send
        + Sync
        + 'static,
) -> FunctionDef<Sip> {
    FunctionDef {
        module,
        min_args,
        max_args,
        routes,
        fixup: Box::new(fixup),
    }
}

/// Takes the `k`-th (0-based) argument out of a fixup's argument list.
pub fn take_arg(args: &mut Vec<Arg<Sip>>, k: usize) -> Option<Arg<Sip>> {
    if k < args.len() {
        Some(args.remove(k))
    } else {
        None
    }
}

/// Takes the next argument of a fixup's list (arguments are taken in order): the
/// `index`-th (1-based, for the message) one, which must be there.
pub fn required(args: &mut Vec<Arg<Sip>>, index: usize, what: &str) -> Result<Arg<Sip>, ArgError> {
    take_arg(args, 0).ok_or_else(|| ArgError::new(index, format!("missing {what}")))
}

/// Fixes up a flag number argument (0..=31).
pub fn flag_arg(arg: Arg<Sip>, index: usize) -> Result<IntArg<Sip>, ArgError> {
    let a = arg.into_int(index)?;
    if let Some(n) = a.as_const() {
        if !(0..=31).contains(&n) {
            return Err(ArgError::new(
                index,
                format!("flag {n} is out of range 0..31"),
            ));
        }
    }
    Ok(a)
}

fn flag_bit(ctx: &mut MsgCtx<'_>, a: &IntArg<Sip>) -> Option<u32> {
    match a.eval(ctx) {
        Some(n @ 0..=31) => Some(1u32 << n),
        other => {
            tracing::warn!(flag = ?other, "flag number out of range 0..31");
            None
        }
    }
}

const REQ_FAIL_BRANCH: RouteMask =
    RouteMask(RouteMask::REQUEST.0 | RouteMask::FAILURE.0 | RouteMask::BRANCH.0);

/// How a rewrite function changes the Request-URI.
#[derive(Clone, Copy)]
enum Rewrite {
    Host,
    HostPort,
    User,
    UserPass,
    Port,
    Uri,
    Prefix,
    Strip,
    StripTail,
}

/// Rebuilds a SIP URI with some parts replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriParts {
    pub scheme: String,
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    pub params: String,
    pub headers: Option<String>,
}

impl UriParts {
    pub fn of(text: &str) -> Option<UriParts> {
        let uri = Uri::parse(text.as_bytes()).ok()?;
        let sip = uri.as_sip()?;
        let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        Some(UriParts {
            scheme: s(sip.scheme()),
            user: sip.user().map(s),
            password: sip.password().map(s),
            host: s(sip.host().as_bytes()),
            port: sip.port(),
            params: s(sip.params_bytes()),
            headers: sip.headers().map(s),
        })
    }

    pub fn render(&self) -> String {
        let mut out = format!("{}:", self.scheme);
        if let Some(u) = &self.user {
            out.push_str(u);
            if let Some(p) = &self.password {
                out.push(':');
                out.push_str(p);
            }
            out.push('@');
        }
        out.push_str(&self.host);
        if let Some(p) = self.port {
            out.push(':');
            out.push_str(&p.to_string());
        }
        out.push_str(&self.params);
        if let Some(h) = &self.headers {
            out.push('?');
            out.push_str(h);
        }
        out
    }
}

fn rewrite(ctx: &mut MsgCtx<'_>, how: Rewrite, value: &str) -> i32 {
    if let Rewrite::Uri = how {
        ctx.new_uri = Some(value.to_owned());
        return 1;
    }
    let current = ctx.ruri_text().into_owned();
    let Some(mut p) = UriParts::of(&current) else {
        tracing::warn!(uri = %current, "cannot rewrite a Request-URI that is not a SIP URI");
        return -1;
    };
    match how {
        Rewrite::Host => p.host = value.to_owned(),
        Rewrite::HostPort => match value.rsplit_once(':') {
            Some((h, port)) if !h.contains(':') || h.ends_with(']') => match port.parse() {
                Ok(port) => {
                    p.host = h.to_owned();
                    p.port = Some(port);
                }
                Err(_) => return -1,
            },
            _ => {
                p.host = value.to_owned();
                p.port = None;
            }
        },
        Rewrite::User => {
            p.user = if value.is_empty() {
                None
            } else {
                Some(value.to_owned())
            }
        }
        Rewrite::UserPass => match value.split_once(':') {
            Some((u, pw)) => {
                p.user = Some(u.to_owned());
                p.password = Some(pw.to_owned());
            }
            None => {
                p.user = Some(value.to_owned());
                p.password = None;
            }
        },
        Rewrite::Port => {
            p.port = if value.is_empty() {
                None
            } else {
                match value.parse() {
                    Ok(port) => Some(port),
                    Err(_) => return -1,
                }
            }
        }
        Rewrite::Prefix => p.user = Some(format!("{value}{}", p.user.unwrap_or_default())),
        Rewrite::Strip | Rewrite::StripTail => {
            let n: usize = value.parse().unwrap_or(0);
            let user = p.user.unwrap_or_default();
            let chars: Vec<char> = user.chars().collect();
            let kept: String = if matches!(how, Rewrite::Strip) {
                chars.iter().skip(n).collect()
            } else {
                chars.iter().take(chars.len().saturating_sub(n)).collect()
            };
            p.user = if kept.is_empty() { None } else { Some(kept) };
        }
        Rewrite::Uri => {}
    }
    ctx.new_uri = Some(p.render());
    1
}

/// `forward()`, `forward(host)`, `forward(host, port)` and the protocol-forcing variants.
fn forward_fixup(
    proto: Option<Proto>,
) -> impl Fn(&mut FixupCtx<'_, '_, Sip>, Vec<Arg<Sip>>) -> Result<Action<Sip>, ArgError> {
    move |_fx, mut args| {
        let host = take_arg(&mut args, 0).map(Arg::into_str);
        let port = match take_arg(&mut args, 0) {
            Some(p) => Some(p.into_int(2)?),
            None => None,
        };
        if let (Some(h), None) = (&host, &port) {
            if let Some(c) = h.as_const() {
                next_hop_of_target(c, None)
                    .map_err(|e| ArgError::new(1, e))
                    .map(|_| ())
                    .or_else(|e| {
                        // A name that does not resolve now may later: only refuse bad syntax.
                        if e.reason.starts_with("bad") {
                            Err(e)
                        } else {
                            Ok(())
                        }
                    })?;
            }
        }
        Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
            if !ctx.is_request() {
                return -1;
            }
            let hop = match &host {
                None => {
                    let target = ctx
                        .dst_uri
                        .clone()
                        .unwrap_or_else(|| ctx.ruri_text().into_owned());
                    next_hop_of_uri(&target)
                }
                Some(h) => {
                    let h = h.eval(ctx).into_owned();
                    let p = match &port {
                        Some(p) => match p.eval(ctx).and_then(|n| u16::try_from(n).ok()) {
                            Some(p) => Some(p),
                            None => return -1,
                        },
                        None => None,
                    };
                    next_hop_of_target(&h, p)
                }
            };
            let mut hop = match hop {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!("forward: {e}");
                    return -1;
                }
            };
            if let Some(p) = proto {
                hop.proto = p;
            }
            match forward_request(ctx, &hop) {
                Ok(()) => 1,
                Err(e) => {
                    tracing::warn!("forward to {}:{}: {e}", hop.proto, hop.addr);
                    -1
                }
            }
        }) as Action<Sip>)
    }
}

/// Registers the core functions.
pub fn register(reg: &mut Registry<Sip>) {
    for (name, proto) in [
        ("forward", None),
        ("forward_udp", Some(Proto::Udp)),
        ("forward_tcp", Some(Proto::Tcp)),
    ] {
        reg.function(
            name,
            function("core", 0, 2, REQ_FAIL_BRANCH, forward_fixup(proto)),
        );
    }

    // Message flags.
    reg.function(
        "setflag",
        function("core", 1, 1, RouteMask::ANY, |_, mut a| {
            let f = flag_arg(required(&mut a, 1, "argument")?, 1)?;
            Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                flag_bit(ctx, &f).map_or(-1, |b| {
                    ctx.flags |= b;
                    1
                })
            }))
        }),
    );
    reg.function(
        "resetflag",
        function("core", 1, 1, RouteMask::ANY, |_, mut a| {
            let f = flag_arg(required(&mut a, 1, "argument")?, 1)?;
            Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                flag_bit(ctx, &f).map_or(-1, |b| {
                    ctx.flags &= !b;
                    1
                })
            }))
        }),
    );
    reg.function(
        "isflagset",
        function("core", 1, 1, RouteMask::ANY, |_, mut a| {
            let f = flag_arg(required(&mut a, 1, "argument")?, 1)?;
            Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                flag_bit(ctx, &f).map_or(-1, |b| if ctx.flags & b != 0 { 1 } else { -1 })
            }))
        }),
    );

    // Via handling for replies.
    reg.function(
        "add_local_rport",
        function("core", 0, 0, RouteMask::ANY, |_, _| {
            Ok(Box::new(|ctx: &mut MsgCtx<'_>| {
                ctx.local_rport = true;
                1
            }))
        }),
    );
    for name in ["force_rport", "add_rport"] {
        reg.function(
            name,
            function("core", 0, 0, RouteMask::ANY, |_, _| {
                Ok(Box::new(|ctx: &mut MsgCtx<'_>| {
                    ctx.force_rport = true;
                    1
                }))
            }),
        );
    }

    // The destination set.
    reg.function(
        "append_branch",
        function("core", 0, 2, REQ_FAIL_BRANCH, |_, mut a| {
            let uri = take_arg(&mut a, 0).map(Arg::into_str);
            let q = take_arg(&mut a, 0).map(Arg::into_str);
            if let Some(c) = q.as_ref().and_then(|q| q.as_const()) {
                if sable_sip::name_addr::parse_qvalue(c.as_bytes()).is_none() {
                    return Err(ArgError::new(2, format!("'{c}' is not a q-value (0 to 1)")));
                }
            }
            Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                if !ctx.is_request() || ctx.branches.len() >= crate::context::MAX_BRANCHES {
                    return -1;
                }
                let q = match &q {
                    Some(q) => {
                        match sable_sip::name_addr::parse_qvalue(q.eval(ctx).trim().as_bytes()) {
                            Some(q) => Some(q),
                            None => return -1,
                        }
                    }
                    None => None,
                };
                let branch = match &uri {
                    Some(u) => crate::context::Branch {
                        uri: u.eval(ctx).into_owned(),
                        q,
                        ..Default::default()
                    },
                    None => {
                        // The current Request-URI (with $du, branch flags, forced socket)
                        // becomes a branch; without a q it is not sent again as the R-URI.
                        if q.is_none() {
                            ctx.ruri_consumed = true;
                        }
                        crate::context::Branch {
                            uri: ctx.ruri_text().into_owned(),
                            dst_uri: ctx.dst_uri.clone(),
                            q,
                            flags: ctx.bflags,
                            socket: ctx.force_socket,
                        }
                    }
                };
                if branch.uri.contains(|c: char| c.is_whitespace())
                    || sable_sip::Uri::parse(branch.uri.as_bytes()).is_err()
                {
                    tracing::warn!(uri = %branch.uri, "append_branch: not a URI");
                    return -1;
                }
                ctx.branches.push(branch);
                1
            }))
        }),
    );
    reg.function(
        "clear_branches",
        function("core", 0, 0, REQ_FAIL_BRANCH, |_, _| {
            Ok(Box::new(|ctx: &mut MsgCtx<'_>| {
                ctx.branches.clear();
                ctx.ruri_consumed = false;
                1
            }))
        }),
    );

    // TCP options of what this message causes to be sent.
    type FlagSet = fn(&mut MsgCtx<'_>);
    let tcp_flags: [(&str, FlagSet); 4] = [
        ("set_reply_close", |c| c.reply_flags.close_after = true),
        ("set_reply_no_connect", |c| c.reply_flags.no_connect = true),
        ("set_forward_close", |c| c.forward_flags.close_after = true),
        ("set_forward_no_connect", |c| {
            c.forward_flags.no_connect = true
        }),
    ];
    for (name, set) in tcp_flags {
        reg.function(
            name,
            function("core", 0, 0, RouteMask::ANY, move |_, _| {
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    set(ctx);
                    1
                }))
            }),
        );
    }

    // Request-URI rewriting.
    for (names, how) in [
        (&["rewritehost", "sethost", "seth"][..], Rewrite::Host),
        (
            &["rewritehostport", "sethostport", "sethp"][..],
            Rewrite::HostPort,
        ),
        (&["rewriteuser", "setuser", "setu"][..], Rewrite::User),
        (
            &["rewriteuserpass", "setuserpass", "setup"][..],
            Rewrite::UserPass,
        ),
        (&["rewriteport", "setport", "setp"][..], Rewrite::Port),
        (&["rewriteuri", "seturi"][..], Rewrite::Uri),
        (&["prefix"][..], Rewrite::Prefix),
        (&["strip"][..], Rewrite::Strip),
        (&["strip_tail"][..], Rewrite::StripTail),
    ] {
        for name in names {
            reg.function(
                name,
                function("core", 1, 1, REQ_FAIL_BRANCH, move |_, mut a| {
                    let v = required(&mut a, 1, "argument")?.into_str();
                    if matches!(how, Rewrite::Strip | Rewrite::StripTail) {
                        if let Some(c) = v.as_const() {
                            if c.parse::<usize>().is_err() {
                                return Err(ArgError::new(1, format!("'{c}' is not a count")));
                            }
                        }
                    }
                    Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                        let value = v.eval(ctx).into_owned();
                        rewrite(ctx, how, &value)
                    }))
                }),
            );
        }
    }
    reg.function(
        "revert_uri",
        function("core", 0, 0, REQ_FAIL_BRANCH, |_, _| {
            Ok(Box::new(|ctx: &mut MsgCtx<'_>| {
                ctx.new_uri = None;
                1
            }))
        }),
    );

    // log([level,] text): the core's own logging function.
    reg.function(
        "log",
        function("core", 1, 2, RouteMask::ANY, |_, mut a| {
            let level = if a.len() == 2 {
                take_arg(&mut a, 0).map(|l| l.into_int(1)).transpose()?
            } else {
                None
            };
            let text = required(&mut a, 1, "argument")?.into_str();
            Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                // Without a level, Kamailio's log() writes at L_DBG+1: seen only with debug=4.
                let lvl = level.as_ref().and_then(|l| l.eval(ctx)).unwrap_or(4);
                let t = text.eval(ctx);
                crate::dispatch::script_log(crate::LogLevel(i32::try_from(lvl).unwrap_or(-1)), &t);
                1
            }))
        }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_parts_round_trip() {
        let p = UriParts::of("sip:alice:pw@example.com:5070;transport=tcp?h=1").unwrap();
        assert_eq!(p.user.as_deref(), Some("alice"));
        assert_eq!(p.port, Some(5070));
        assert_eq!(
            p.render(),
            "sip:alice:pw@example.com:5070;transport=tcp?h=1"
        );
    }
}
