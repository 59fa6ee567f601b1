//! `corex`: core extensions (`send`, `send_tcp`, `has_ruri_user`, `has_user_agent`,
//! `is_faked_msg`).

use sable_engine::sip_util::{next_hop_of_target, next_hop_of_uri};
use sable_engine::{function, take_arg, Module, MsgCtx, Sip};
use sable_script::{Arg, Registry, RouteMask};
use sable_transport::Proto;

#[derive(Debug)]
pub struct Corex;

fn truth(b: bool) -> i32 {
    if b {
        1
    } else {
        -1
    }
}

impl Module for Corex {
    fn name(&self) -> &'static str {
        "corex"
    }

    fn register(&self, reg: &mut Registry<Sip>) {
        // send([dst]) / send_tcp([dst]): the received message as it is (no Via added, no
        // edits applied) to dst, or to $du / the Request-URI.
        for (name, proto) in [("send", None), ("send_tcp", Some(Proto::Tcp))] {
            reg.function(
                name,
                function(
                    "corex",
                    0,
                    1,
                    RouteMask(
                        RouteMask::REQUEST.0
                            | RouteMask::FAILURE.0
                            | RouteMask::BRANCH.0
                            | RouteMask::ONREPLY.0,
                    ),
                    move |_, mut a| {
                        let dst = take_arg(&mut a, 0).map(Arg::into_str);
                        Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                            let hop = match &dst {
                                Some(d) => {
                                    let d = d.eval(ctx).into_owned();
                                    next_hop_of_target(&d, None)
                                }
                                None => {
                                    let t = ctx
                                        .dst_uri
                                        .clone()
                                        .unwrap_or_else(|| ctx.ruri_text().into_owned());
                                    next_hop_of_uri(&t)
                                }
                            };
                            let mut hop = match hop {
                                Ok(h) => h,
                                Err(e) => {
                                    tracing::warn!("{name}: {e}");
                                    return -1;
                                }
                            };
                            if let Some(p) = proto {
                                hop.proto = p;
                            }
                            let core = ctx.core;
                            let local = core
                                .socket_for(hop.proto, &hop.addr, Some(&ctx.recv.local))
                                .map(|s| s.index);
                            match core.send(hop.proto, hop.addr, local, None, ctx.msg.as_bytes()) {
                                Ok(()) => 1,
                                Err(e) => {
                                    tracing::warn!("{name} to {}: {e}", hop.addr);
                                    -1
                                }
                            }
                        }))
                    },
                ),
            );
        }
        reg.function(
            "has_ruri_user",
            function("corex", 0, 0, RouteMask::ANY, |_, _| {
                Ok(Box::new(|ctx: &mut MsgCtx<'_>| {
                    truth(
                        ctx.is_request()
                            && ctx
                                .with_ruri(|u| {
                                    u.as_sip()
                                        .and_then(|s| s.user())
                                        .is_some_and(|u| !u.is_empty())
                                })
                                .unwrap_or(false),
                    )
                }))
            }),
        );
        reg.function(
            "has_user_agent",
            function("corex", 0, 0, RouteMask::ANY, |_, _| {
                Ok(Box::new(|ctx: &mut MsgCtx<'_>| {
                    truth(ctx.msg.user_agent().is_some_and(|u| !u.is_empty()))
                }))
            }),
        );
        // Sable runs event routes on messages of their own only once modules raise events;
        // every message a script sees today was received.
        reg.function(
            "is_faked_msg",
            function("corex", 0, 0, RouteMask::ANY, |_, _| {
                Ok(Box::new(|_: &mut MsgCtx<'_>| -1))
            }),
        );
    }
}
