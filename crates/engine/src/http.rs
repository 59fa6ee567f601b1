//! HTTP requests on SIP TCP sockets, the Kamailio way (module xhttp): the request runs
//! `event_route[xhttp:request]`, whose functions (`xhttp_reply`, `jsonrpc_dispatch`)
//! answer it on the same connection.

use crate::context::{MsgCtx, RecvInfo};
use crate::dispatch::Dispatcher;
use sable_script::{RouteMask, Value};
use sable_sip::Message;
use std::fmt::Write as _;

/// The event route HTTP requests run.
pub const XHTTP_EVENT: &str = "xhttp:request";

/// The HTTP version of a request (`HTTP/1.0` or `HTTP/1.1`), for the reply's status line.
pub fn http_version<'m>(msg: &Message<'m>) -> &'m [u8] {
    let line = msg.slice(msg.start_line_span());
    if line.ends_with(b"HTTP/1.0") {
        b"HTTP/1.0"
    } else {
        b"HTTP/1.1"
    }
}

/// Builds an HTTP response.
pub fn http_response(
    version: &[u8],
    code: u16,
    reason: &str,
    content_type: &str,
    body: &[u8],
    server: Option<&str>,
) -> Vec<u8> {
    let mut head = String::with_capacity(160);
    let _ = write!(
        head,
        "{} {code} {reason}\r\n",
        String::from_utf8_lossy(version)
    );
    if !content_type.is_empty() {
        let _ = write!(head, "Content-Type: {content_type}\r\n");
    }
    if let Some(s) = server {
        head.push_str(s);
        head.push_str("\r\n");
    }
    let _ = write!(head, "Content-Length: {}\r\n\r\n", body.len());
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// Answers the HTTP request of `ctx` on its connection.
pub fn send_http_reply(
    ctx: &mut MsgCtx<'_>,
    code: u16,
    reason: &str,
    content_type: &str,
    body: &[u8],
) -> Result<(), String> {
    if ctx.replied {
        return Err("this HTTP request was already answered".to_owned());
    }
    let bytes = http_response(
        http_version(&ctx.msg),
        code,
        reason,
        content_type,
        body,
        ctx.core.config.server_header.as_deref(),
    );
    let recv = ctx.recv;
    ctx.core
        .send_with(
            recv.proto,
            recv.src,
            Some(recv.local.index),
            recv.conn,
            &bytes,
            ctx.reply_flags,
        )
        .map_err(|e| format!("HTTP reply to {}: {e}", recv.src))?;
    ctx.replied = true;
    Ok(())
}

impl Dispatcher {
    /// An HTTP request on a TCP socket: parsed, filtered by xhttp's `url_match`/`url_skip`,
    /// run through `event_route[xhttp:request]`. Without that route (or when the filters
    /// skip the URL) the request is answered 404; when the route answers nothing, 500 —
    /// Kamailio leaves the client waiting in both cases (see docs/differences.md).
    pub(crate) fn handle_http(&self, data: &[u8], recv: &RecvInfo, vars: Vec<Value>) -> Vec<Value> {
        let core = self.core();
        let msg = match Message::parse_http(data) {
            Ok(m) => m,
            Err(e) => {
                core.stats.parse_errors_dropped.inc();
                tracing::debug!(src = %recv.src, "bad HTTP request: {e}");
                let bytes = http_response(
                    b"HTTP/1.1",
                    400,
                    "Bad Request",
                    "text/plain",
                    e.to_string().as_bytes(),
                    None,
                );
                let _ = core.send(
                    recv.proto,
                    recv.src,
                    Some(recv.local.index),
                    recv.conn,
                    &bytes,
                );
                return vars;
            }
        };
        let url = String::from_utf8_lossy(msg.slice(msg.request_uri_span())).into_owned();
        let wanted = core.http_filter.get().is_none_or(|f| f(&url));
        let Some(program) = core.program() else {
            return vars;
        };
        let route = program.event_route(XHTTP_EVENT).filter(|_| wanted);
        let mut ctx = MsgCtx::new(core, msg, recv, vars, RouteMask::EVENT);
        match route {
            Some(id) => {
                program.run(id, &mut ctx);
                if !ctx.replied {
                    let _ = send_http_reply(
                        &mut ctx,
                        500,
                        "No Reply From The Script",
                        "text/plain",
                        b"",
                    );
                }
            }
            None => {
                let _ = send_http_reply(&mut ctx, 404, "Not Found", "text/plain", b"");
            }
        }
        ctx.vars
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses() {
        let r = http_response(
            b"HTTP/1.0",
            200,
            "OK",
            "application/json",
            b"{}",
            Some("Server: Sable"),
        );
        assert_eq!(
            r,
            b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nServer: Sable\r\nContent-Length: 2\r\n\r\n{}"
        );
        let m = Message::parse_http(b"GET /x HTTP/1.0\r\n\r\n").unwrap();
        assert_eq!(http_version(&m), b"HTTP/1.0");
    }
}
