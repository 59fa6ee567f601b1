//! `jsonrpcs`: JSON-RPC 2.0 over HTTP (`jsonrpc_dispatch()` in `event_route[xhttp:request]`)
//! on the server's RPC methods. The control socket `sablectl` uses is the core's.

use sable_engine::http::send_http_reply;
use sable_engine::{function, int_param, str_param, Module, MsgCtx, ParamError, Sip};
use sable_script::{Registry, RouteMask};

#[derive(Debug)]
pub struct Jsonrpcs {
    pretty: bool,
    warnings: Vec<String>,
}

impl Default for Jsonrpcs {
    fn default() -> Self {
        // Kamailio's pretty_format default is 1.
        Jsonrpcs {
            pretty: true,
            warnings: Vec::new(),
        }
    }
}

/// JSON indented with tabs.
fn pretty_tabs(v: &serde_json::Value) -> Option<Vec<u8>> {
    use serde::Serialize;
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    v.serialize(&mut ser).ok()?;
    Some(out)
}

impl Module for Jsonrpcs {
    fn name(&self) -> &'static str {
        "jsonrpcs"
    }

    fn set_param(
        &mut self,
        name: &str,
        value: &sable_script::ast::Literal,
    ) -> Result<(), ParamError> {
        match name {
            "pretty_format" => self.pretty = int_param(value)? != 0,
            // Transports: HTTP (through xhttp) is served; the FIFO, datagram and TCP
            // transports are replaced by the control socket (sablectl).
            "transport" => {
                int_param(value)?;
            }
            "fifo_name" | "fifo_mode" | "fifo_group" | "fifo_user" | "fifo_reply_dir"
            | "dgram_socket" | "dgram_mode" | "dgram_group" | "dgram_user" | "tcp_socket" => {
                str_param(value)?;
                tracing::warn!(
                    "jsonrpcs: {name} has no effect: use sablectl (the control socket) or HTTP"
                );
            }
            "dgram_workers" | "dgram_timeout" => {
                int_param(value)?;
            }
            _ => return Err(ParamError::Unknown),
        }
        Ok(())
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }

    fn register(&self, reg: &mut Registry<Sip>) {
        let pretty = self.pretty;
        reg.function(
            "jsonrpc_dispatch",
            function("jsonrpcs", 0, 0, RouteMask::REQUEST, move |_, _| {
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    if !sable_sip::Message::looks_like_http(ctx.msg.as_bytes()) {
                        return -1;
                    }
                    let Some(registry) = ctx.core.rpc.get().cloned() else {
                        return -1;
                    };
                    let body = ctx.msg.body();
                    let resp =
                        sable_rpc::handle_request(&registry, body, &sable_rpc::Limits::default());
                    // pretty_format=1: tab-indented, as Kamailio's default output.
                    let bytes = if pretty {
                        serde_json::from_slice::<serde_json::Value>(&resp.body)
                            .ok()
                            .and_then(|v| pretty_tabs(&v))
                            .unwrap_or_else(|| resp.body.clone())
                    } else {
                        resp.body.clone()
                    };
                    match send_http_reply(
                        ctx,
                        resp.status,
                        &resp.reason,
                        "application/json",
                        &bytes,
                    ) {
                        Ok(()) => 1,
                        Err(e) => {
                            tracing::warn!("jsonrpc_dispatch: {e}");
                            -1
                        }
                    }
                }))
            }),
        );
    }
}
