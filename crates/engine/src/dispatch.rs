//! The route phases: a received message is parsed, run through its route block, and what
//! the script decided is sent. Also the stateless primitives modules use: forwarding a
//! request, relaying a reply by its Via, sending a local reply.

use crate::config::LogLevel;
use crate::context::{MsgCtx, RecvInfo};
use crate::core::Core;
use crate::sip_util::{
    build_reply, reply_destination, reply_next_hop, stateless_branch, stateless_to_tag,
    via_with_received, NextHop, ReplySpec,
};
use sable_script::{RouteMask, Value};
use sable_sip::{HeaderName, Message, Method, ParseError};
use sable_transport::{Handler, Inbound, LocalSocket};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::Arc;

thread_local! {
    /// `$var` values of this worker thread (Kamailio keeps them per process, across messages).
    static VARS: RefCell<Vec<Value>> = const { RefCell::new(Vec::new()) };
}

/// Logs a line from the script (xlog, log) at a Kamailio level.
pub fn script_log(level: LogLevel, text: &str) {
    let text = text.trim_end_matches(['\n', '\r']);
    match level.0 {
        i32::MIN..=-1 => tracing::error!(target: "script", "<script>: {text}"),
        0 => tracing::warn!(target: "script", "<script>: {text}"),
        1 | 2 => tracing::info!(target: "script", "<script>: {text}"),
        3 => tracing::debug!(target: "script", "<script>: {text}"),
        // Above L_DBG (log() without a level is L_DBG+1): shown only at debug=4.
        _ => tracing::trace!(target: "script", "<script>: {text}"),
    }
}

/// Receives messages from the transport and routes them.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    core: Arc<Core>,
}

impl Handler for Dispatcher {
    fn on_message(&self, msg: Inbound<'_>) {
        let recv = RecvInfo {
            proto: msg.proto,
            src: msg.src,
            local: msg.local.clone(),
            conn: msg.conn,
        };
        self.handle(msg.data, &recv);
    }

    fn on_stream_error(&self, local: &LocalSocket, src: SocketAddr, error: &ParseError) {
        self.core.stats.parse_errors_dropped.inc();
        tracing::debug!(%src, local = %local.addr, "bad stream frame: {error}");
    }
}

impl Dispatcher {
    /// A dispatcher for the core; it routes with the core's current program (see
    /// [`Core::set_program`]).
    pub fn new(core: Arc<Core>) -> Self {
        Dispatcher { core }
    }

    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// Routes one message (a datagram or a stream frame).
    pub fn handle(&self, data: &[u8], recv: &RecvInfo) {
        // CRLF keep-alives over UDP (RFC 5626 §4.4.1 sends them on streams; some UAs on
        // datagrams too): nothing to route.
        if data.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        if recv.proto == sable_transport::Proto::Tcp && Message::looks_like_http(data) {
            let vars = VARS.with(|cell| cell.take());
            let vars = self.handle_http(data, recv, vars);
            VARS.with(|cell| cell.replace(vars));
            return;
        }
        let msg = match Message::parse(data) {
            Ok(m) => m,
            Err(e) => return self.malformed(data, recv, &e),
        };
        if let Err(e) = msg.validate() {
            return self.malformed(data, recv, &e);
        }
        let vars = VARS.with(|cell| cell.take());
        let vars = self.route(msg, recv, vars);
        VARS.with(|cell| cell.replace(vars));
    }

    /// Runs the route phase of a parsed message; gives back the worker's variables.
    fn route<'a>(&'a self, msg: Message<'a>, recv: &'a RecvInfo, vars: Vec<Value>) -> Vec<Value> {
        // The program as it is now: a reload while this message is routed does not touch it.
        let Some(program) = self.core.program() else {
            return vars;
        };
        if msg.is_request() {
            self.core
                .stats
                .count_request(msg.method().map_or(&b""[..], |m| m.as_bytes()));
            let Some(id) = program.request_route() else {
                return vars;
            };
            let mut ctx = MsgCtx::new(&self.core, msg, recv, vars, RouteMask::REQUEST);
            ctx.program = Some(program.clone());
            let result = program.run(id, &mut ctx);
            if result.dropped {
                self.core.stats.drop_requests.inc();
            }
            // What the request route did after the transaction was created (AVPs, flags)
            // belongs to the transaction.
            if let Some(tx) = ctx.tm.tx.take() {
                tx.keep_script_state(&ctx);
            }
            // Reply and failure routes of the transaction may run from here on.
            ctx.tx_hold = None;
            ctx.vars
        } else {
            self.core
                .stats
                .count_reply(msg.status_code().unwrap_or(0), &self.core.replies_6xx);
            let mut ctx = MsgCtx::new(&self.core, msg, recv, vars, RouteMask::CORE_ONREPLY);
            ctx.program = Some(program.clone());
            if let Some(id) = program.core_reply_route() {
                let result = program.run(id, &mut ctx);
                if result.dropped {
                    self.core.stats.drop_replies.inc();
                    return ctx.vars;
                }
            }
            if !self.core.reply_hooks.is_empty() {
                self.core.reply_hooks.run(&mut ctx);
            }
            // A reply to a request tm sent goes to its transaction, never statelessly on.
            if let Some(tm) = self.core.tm.get() {
                if tm.on_reply(&mut ctx) {
                    return ctx.vars;
                }
            }
            if let Err(e) = relay_reply(&mut ctx) {
                self.core.stats.drop_replies.inc();
                tracing::debug!(src = %recv.src, "reply not relayed: {e}");
            }
            ctx.vars
        }
    }

    /// A message that does not parse or validate: a request gets the reply its fault
    /// implies (400, 505...), when enough of it parses to build one; anything else is a
    /// counted drop.
    fn malformed(&self, data: &[u8], recv: &RecvInfo, error: &ParseError) {
        let looks_like_reply = data.len() >= 4
            && data
                .get(..4)
                .is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"));
        if looks_like_reply {
            self.core.stats.err_replies.inc();
            self.core.stats.parse_errors_dropped.inc();
            tracing::debug!(src = %recv.src, "malformed reply dropped: {error}");
            return;
        }
        self.core.stats.err_requests.inc();
        // Kamailio's finer counters: a bad Request-URI, an unknown method, a bad header.
        if error.status() == 501 {
            self.core.stats.unsupported_methods.inc();
        } else if matches!(error.kind(), sable_sip::ParseErrorKind::BadUri(_))
            && error.header().is_none()
        {
            self.core.stats.bad_uris_rcvd.inc();
        } else if error.header().is_some() {
            self.core.stats.bad_msg_hdr.inc();
        }
        let Ok(req) = Message::parse_for_reply(data) else {
            self.core.stats.parse_errors_dropped.inc();
            tracing::debug!(src = %recv.src, "malformed request dropped: {error}");
            return;
        };
        if req.method() == Some(Method::Ack) || req.top_via().is_err() {
            self.core.stats.parse_errors_dropped.inc();
            tracing::debug!(src = %recv.src, "malformed request dropped (no reply possible): {error}");
            return;
        }
        let reason = error.reason_phrase();
        match send_reply_to(
            &self.core,
            &req,
            recv,
            false,
            error.status(),
            &reason,
            "",
            b"",
            None,
            sable_transport::SendFlags::default(),
        ) {
            Ok(()) => {
                self.core.stats.parse_errors_replied.inc();
                tracing::debug!(src = %recv.src, "malformed request answered {}: {error}", error.status());
            }
            Err(e) => {
                self.core.stats.parse_errors_dropped.inc();
                tracing::debug!(src = %recv.src, "malformed request, reply failed: {e}");
            }
        }
    }
}

/// Sends a local reply to the request of `ctx` (stateless, RFC 3261 §8.2.6).
pub fn send_reply(
    ctx: &mut MsgCtx<'_>,
    code: u16,
    reason: &str,
    extra_headers: &str,
    body: &[u8],
    content_type: Option<&str>,
) -> Result<(), String> {
    if !ctx.is_request() {
        return Err("not a request".to_owned());
    }
    // Script text never becomes extra lines of a reply (header injection).
    if reason.contains(['\r', '\n']) || content_type.is_some_and(|t| t.contains(['\r', '\n'])) {
        return Err("a reason phrase or content type with CR/LF".to_owned());
    }
    let mut headers = ctx.reply_headers.clone();
    headers.push_str(extra_headers);
    send_reply_to(
        ctx.core,
        &ctx.msg,
        ctx.recv,
        ctx.force_rport,
        code,
        reason,
        &headers,
        body,
        content_type,
        ctx.reply_flags,
    )?;
    if code >= 200 {
        ctx.replied = true;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn send_reply_to(
    core: &Core,
    req: &Message<'_>,
    recv: &RecvInfo,
    force_rport: bool,
    code: u16,
    reason: &str,
    extra_headers: &str,
    body: &[u8],
    content_type: Option<&str>,
    flags: sable_transport::SendFlags,
) -> Result<(), String> {
    let via = req.top_via().map_err(|e| format!("no usable Via: {e}"))?;
    let top_via = via_with_received(via, recv.src, force_rport);
    // RFC 3261 §8.2.6.2: every response but 100 carries a To-tag.
    let to_tag = (code > 100).then(|| stateless_to_tag(&core.sl_tag_prefix, req));
    let bytes = build_reply(
        req,
        &ReplySpec {
            code,
            reason,
            to_tag: to_tag.as_deref(),
            top_via: top_via.as_deref(),
            extra_headers,
            server_header: core.config.server_header.as_deref(),
            body,
            content_type,
        },
    );
    let dst = reply_destination(via, recv.src, force_rport, core.config.reply_to_via);
    core.send_with(
        recv.proto,
        dst,
        Some(recv.local.index),
        recv.conn,
        &bytes,
        flags,
    )
    .map_err(|e| format!("send to {dst}: {e}"))
}

/// Forwards the request of `ctx` statelessly to `hop` (RFC 3261 §16.11): the pending edits,
/// the rewritten Request-URI, `received`/`rport` on the received top Via, and a new top Via
/// with a branch derived from the received one.
pub fn forward_request(ctx: &mut MsgCtx<'_>, hop: &NextHop) -> Result<(), String> {
    let branch = stateless_branch(&ctx.msg, &ctx.ruri_text());
    let (bytes, local) = build_forwarded(ctx, hop, &branch)?;
    if !run_onsend(ctx, hop) {
        return Err("dropped by onsend_route".to_owned());
    }
    let core = ctx.core;
    core.send_with(
        hop.proto,
        hop.addr,
        Some(local),
        None,
        &bytes,
        ctx.forward_flags,
    )
    .map_err(|e| e.to_string())?;
    core.stats.fwd_requests.inc();
    Ok(())
}

/// The request of `ctx` as it leaves towards `hop` with `branch` in its new top Via: the
/// pending edits, the rewritten Request-URI, `received`/`rport` on the received top Via,
/// the Record-Route asked for. Gives the octets and the index of the socket to send from.
pub fn build_forwarded(
    ctx: &MsgCtx<'_>,
    hop: &NextHop,
    branch: &str,
) -> Result<(Vec<u8>, usize), String> {
    let core = ctx.core;
    let forced = ctx
        .force_socket
        .and_then(|k| core.sockets.iter().find(|s| s.index == k));
    let local = match forced {
        Some(s) if s.proto == hop.proto && s.addr.is_ipv6() == hop.addr.is_ipv6() => s,
        _ => core
            .socket_for(hop.proto, &hop.addr, Some(&ctx.recv.local))
            .ok_or_else(|| format!("no {} socket for {}", hop.proto, hop.addr))?,
    };
    let (host, port) = local.advertised();
    // A request sent to one of our own sockets would come back and be forwarded again.
    if core
        .sockets
        .iter()
        .any(|s| s.proto == hop.proto && s.addr == hop.addr)
    {
        return Err(format!("{} is this server: not forwarded (loop)", hop.addr));
    }
    let mut edits = ctx.edits.clone();
    if let Some(uri) = &ctx.new_uri {
        // What the script wrote must be one URI: no spaces, no CR/LF (RFC 3261 §25.1).
        if uri.contains(|c: char| c.is_whitespace())
            || sable_sip::Uri::parse(uri.as_bytes()).is_err()
        {
            return Err(format!("the Request-URI {uri:?} is not a URI"));
        }
        edits.replace_request_uri(&ctx.msg, uri.as_bytes());
    }
    if let (Ok(via), Some(h)) = (ctx.msg.top_via(), ctx.msg.header(HeaderName::Via)) {
        if let Some(v) = via_with_received(via, ctx.recv.src, ctx.force_rport) {
            edits
                .replace_value(h, v.as_bytes())
                .map_err(|e| format!("cannot edit the Via: {e}"))?;
        }
    }
    if let Some(rr) = ctx.record_route.as_ref().filter(|rr| rr.active) {
        let inbound = &ctx.recv.local;
        if rr.double && rr.preset.is_none() && inbound.index != local.index {
            // RFC 3261 §16.6 item 4 with two sockets: the outbound address on top, the
            // inbound one below, both marked `r2=on` so loose_route() removes both.
            let (in_host, in_port) = inbound.advertised();
            let mut both = rr.clone();
            both.params = format!(";r2=on{}", rr.params);
            let top = record_route_value(&both, host, port, hop.proto);
            let below = record_route_value(&both, in_host, in_port, inbound.proto);
            // Inserts at one place keep their order: the top one first.
            edits
                .add_record_route(&ctx.msg, top.as_bytes())
                .and_then(|()| edits.add_record_route(&ctx.msg, below.as_bytes()))
                .map_err(|e| format!("cannot add the Record-Route: {e}"))?;
        } else {
            let value = record_route_value(rr, host, port, hop.proto);
            edits
                .add_record_route(&ctx.msg, value.as_bytes())
                .map_err(|e| format!("cannot add the Record-Route: {e}"))?;
        }
    }
    let via = format!(
        "SIP/2.0/{} {};branch={branch}{}",
        hop.proto.via_name(),
        local.sent_by(),
        if ctx.local_rport { ";rport" } else { "" }
    );
    edits
        .add_via(&ctx.msg, via.as_bytes())
        .map_err(|e| format!("cannot add the Via: {e}"))?;
    Ok((edits.to_vec(&ctx.msg), local.index))
}

/// Runs `onsend_route` (if the config has one) for a request about to leave towards `hop`:
/// `$snd(...)` names the destination; `drop` there stops the sending (false). What the
/// route changes in the message is not sent: the message was built before it ran, as in
/// Kamailio.
pub fn run_onsend(ctx: &mut MsgCtx<'_>, hop: &NextHop) -> bool {
    let Some(program) = ctx.core.program() else {
        return true;
    };
    let Some(id) = program.onsend_route() else {
        return true;
    };
    let saved_route = ctx.route;
    let saved_edits = ctx.edits.clone();
    ctx.route = RouteMask::ONSEND;
    ctx.send_to = Some((hop.proto, hop.addr));
    let result = program.run(id, ctx);
    ctx.route = saved_route;
    ctx.send_to = None;
    ctx.edits = saved_edits;
    !result.dropped
}

/// Relays a reply statelessly (RFC 3261 §16.7 step 3 and §18.2.2): the top Via must be
/// ours; it is removed and the reply goes where the next Via says.
pub fn relay_reply(ctx: &mut MsgCtx<'_>) -> Result<(), String> {
    let core = ctx.core;
    let vias = ctx.msg.vias().map_err(|e| format!("bad Via: {e}"))?;
    let top = vias.first().ok_or("no Via")?;
    let top_host = String::from_utf8_lossy(top.host.as_bytes());
    if !core.is_myself(&top_host, top.port, false) {
        return Err(format!("the top Via ({top_host}) is not this server"));
    }
    let next = vias
        .get(1)
        .ok_or("no second Via: the reply is for this server")?;
    let (proto, dst) = reply_next_hop(next)?;
    let mut edits = ctx.edits.clone();
    edits.remove_top_via(&ctx.msg);
    let bytes = edits.to_vec(&ctx.msg);
    let local = core
        .socket_for(proto, &dst, Some(&ctx.recv.local))
        .map(|s| s.index);
    core.send(proto, dst, local, None, &bytes)
        .map_err(|e| format!("send to {dst}: {e}"))?;
    core.stats.fwd_replies.inc();
    Ok(())
}

/// The Record-Route value for a request leaving through `host:port` over `proto`: the
/// default port 5060 and `transport=udp` are left out (RFC 3261 §16.6 item 4).
pub fn record_route_value(
    rr: &crate::context::RecordRoute,
    host: &str,
    port: u16,
    proto: sable_transport::Proto,
) -> String {
    let mut v = String::from("<sip:");
    if let Some(u) = &rr.user {
        v.push_str(u);
        v.push('@');
    }
    match &rr.preset {
        Some(addr) => v.push_str(addr),
        None => {
            v.push_str(host);
            if port != 5060 {
                v.push(':');
                v.push_str(&port.to_string());
            }
            if proto != sable_transport::Proto::Udp {
                v.push_str(";transport=");
                v.push_str(proto.as_str());
            }
        }
    }
    v.push_str(&rr.params);
    v.push('>');
    v
}
