//! Replies and timers of tm's branches: onreply_route, relaying provisional and 2xx replies
//! at once, keeping negative ones until every branch is final, failure_route, and the best
//! reply upstream (RFC 3261 §16.7).

use super::{branch_to_complete, parse_branch, TimerWhat, Tm, Tx};
use crate::context::MsgCtx;
use crate::core::Core;
use sable_script::{RouteId, RouteMask, Value};
use sable_sip::{HeaderName, Message, Method};
use sable_transaction::{Millis, Timer};
use std::sync::Arc;

impl Tm {
    /// A reply received (after the core reply_route): true when it belongs to tm (relayed,
    /// kept or absorbed here), false when it is not for a transaction of this server.
    pub fn on_reply(&self, ctx: &mut MsgCtx<'_>) -> bool {
        let Some((id, idx)) = ctx
            .msg
            .top_via()
            .ok()
            .and_then(|v| v.branch())
            .and_then(parse_branch)
        else {
            return false;
        };
        self.stats.rpl_received.inc();
        let Some(tx) = self.by_id(id) else {
            tracing::debug!("tm: reply for a finished transaction dropped");
            return true;
        };
        let core = ctx.core;
        let now = self.now();
        let code = ctx.msg.status_code().unwrap_or(0);
        let for_cancel = ctx.msg.cseq().is_ok_and(|c| c.method == Method::Cancel);
        let mut st = tx.state.lock();
        let fr_inv = st.fr_inv;
        let Some(br) = st.branches.get_mut(idx) else {
            return true;
        };
        if for_cancel {
            if let Some(c) = br.cancel.as_mut() {
                let actions = c.on_response(&ctx.msg, now);
                let dest = (br.hop.clone(), br.local);
                self.run_client(core, &tx, (&dest.0, dest.1), idx, true, actions);
            }
            return true;
        }
        let Some(client) = br.client.as_mut() else {
            // The branch gave up (its timer ran out before any reply): a 2xx that comes
            // anyway still goes up (RFC 3261 §16.7 step 5); anything else is dropped.
            drop(st);
            if tx.invite && (200..300).contains(&code) {
                let bytes = {
                    let mut edits = ctx.edits.clone();
                    edits.remove_top_via(&ctx.msg);
                    edits.to_vec(&ctx.msg)
                };
                self.send_upstream(core, &tx, code, bytes);
            }
            return true;
        };
        // The request's retransmission timer (A or E), which a reply may disarm.
        let retransmit = if tx.invite {
            Timer::TimerA
        } else {
            Timer::TimerE
        };
        let armed = client.deadline(retransmit);
        let actions = client.on_response(&ctx.msg, now);
        if let Some(at) = armed.filter(|_| client.deadline(retransmit).is_none()) {
            self.timers
                .cancel(at, tx.id, TimerWhat::Client(idx, retransmit));
        }
        let dest = (br.hop.clone(), br.local);
        let delivered = self.run_client(core, &tx, (&dest.0, dest.1), idx, false, actions);
        if !delivered.contains(&code) {
            // A retransmission the machine absorbed (its ACK re-sent).
            return true;
        }
        br.replied = true;
        if code < 200 {
            if tx.invite {
                let first = !br.provisional;
                br.provisional = true;
                if first || self.cfg.restart_fr_on_each_reply {
                    br.fr_gen = br.fr_gen.wrapping_add(1);
                    let at = Millis(now.0 + fr_inv);
                    self.arm(&tx, at, TimerWhat::Fr(idx, br.fr_gen));
                }
            }
            if let Some(br) = st.branches.get_mut(idx) {
                if let Some(reason) = br.cancel_pending.take() {
                    self.send_cancel(core, &tx, br, idx, &reason, now);
                }
            }
        } else if code >= 300 && br.final_code != 0 {
            // The branch ended already (timed out, cancelled locally): nothing to relay.
            return true;
        }
        // The branch's final code is recorded only with its reply, after onreply_route:
        // until then another thread must not see the branch as complete.
        let on_reply = st.branches.get(idx).and_then(|b| b.on_reply);
        drop(st);

        // onreply_route runs on the reply with the transaction's AVPs and flags.
        let mut relay = true;
        if let Some(route) = on_reply {
            let saved = ctx.route;
            ctx.route = RouteMask::TM_ONREPLY;
            ctx.tm.tx = Some(tx.clone());
            ctx.tm.branch = Some(idx);
            ctx.tm.reply_code = code;
            let script = tx.script.lock();
            tx.load_script_state(ctx);
            let result = tx.program.run(route, ctx);
            tx.keep_script_state(ctx);
            drop(script);
            ctx.route = saved;
            ctx.tm.tx = None;
            // A drop stops a provisional reply; a final one goes on anyway.
            if result.dropped && code < 200 {
                relay = false;
            }
        }
        let bytes = if tx.local.is_some() {
            // A local request's reply goes to its callback, not upstream: as received (with
            // what a script changed), our Via still on top.
            ctx.edits.to_vec(&ctx.msg)
        } else {
            let mut edits = ctx.edits.clone();
            edits.remove_top_via(&ctx.msg);
            edits.to_vec(&ctx.msg)
        };
        if code < 200 {
            if relay && (code > 100 || self.cfg.relay_100) && tx.final_code() == 0 {
                self.send_upstream(core, &tx, code, bytes);
            }
        } else if code < 300 {
            {
                let mut st = tx.state.lock();
                if let Some(br) = st.branches.get_mut(idx) {
                    if br.final_code == 0 {
                        br.final_code = code;
                    }
                }
            }
            // A 2xx goes up at once (for an INVITE, each of them: RFC 3261 §16.7 step 5).
            self.send_upstream(core, &tx, code, bytes);
        } else {
            let mut st = tx.state.lock();
            match st.branches.get_mut(idx) {
                Some(br) if br.final_code == 0 => {
                    br.final_code = code;
                    br.reply = Some(Arc::new(bytes));
                }
                // It timed out while onreply_route ran.
                _ => return true,
            }
            if code >= 600 && !self.cfg.disable_6xx_block {
                for k in 0..st.branches.len() {
                    self.cancel_branch(core, &tx, &mut st, k, "", now);
                }
            }
            drop(st);
            self.maybe_complete(core, &tx, &mut ctx.vars);
        }
        true
    }

    /// A timer of `tx` fired.
    pub(crate) fn on_timer(
        &self,
        core: &Core,
        tx: &Arc<Tx>,
        what: TimerWhat,
        vars: &mut Vec<Value>,
    ) {
        let now = self.now();
        match what {
            TimerWhat::Uas(timer) => {
                let mut st = tx.state.lock();
                let actions = st.uas.on_timer(timer, now);
                self.run_uas(core, tx, &mut st, actions);
            }
            TimerWhat::Client(idx, timer) | TimerWhat::Cancel(idx, timer) => {
                let cancel = matches!(what, TimerWhat::Cancel(..));
                let mut st = tx.state.lock();
                let Some(br) = st.branches.get_mut(idx) else {
                    return;
                };
                let machine = if cancel {
                    br.cancel.as_deref_mut()
                } else {
                    br.client.as_mut()
                };
                let Some(m) = machine else {
                    return;
                };
                let actions = m.on_timer(timer, now);
                let dest = (br.hop.clone(), br.local);
                // Timer B/F: tm's own fr timers decide when a branch has failed.
                let _ = self.run_client(core, tx, (&dest.0, dest.1), idx, cancel, actions);
            }
            TimerWhat::Fr(idx, generation) => {
                let live = {
                    let st = tx.state.lock();
                    st.branches
                        .get(idx)
                        .is_some_and(|b| b.fr_gen == generation && b.final_code == 0)
                };
                if live {
                    self.branch_timeout(core, tx, idx, now);
                    self.maybe_complete(core, tx, vars);
                }
            }
            TimerWhat::Lifetime => {
                let n = tx.branch_count();
                for idx in 0..n {
                    self.branch_timeout(core, tx, idx, now);
                }
                self.maybe_complete(core, tx, vars);
                // A transaction nobody answered (t_newtran without a reply) goes too.
                self.arm(tx, self.wait_deadline(now), TimerWhat::Delete);
            }
            TimerWhat::Delete => {
                let pending = {
                    let st = tx.state.lock();
                    st.final_code < 200 && !tx.expired(now)
                };
                if !pending {
                    self.free(tx);
                }
            }
        }
    }

    /// fr_timer / fr_inv_timer of branch `idx` ran out: the branch ends with a local 408 (487
    /// when the transaction was cancelled); a branch that rang is cancelled.
    fn branch_timeout(&self, core: &Core, tx: &Arc<Tx>, idx: usize, now: Millis) {
        let mut st = tx.state.lock();
        let canceled = st.canceled;
        let Some(br) = st.branches.get_mut(idx) else {
            return;
        };
        if br.final_code != 0 {
            return;
        }
        br.timed_out = true;
        br.final_code = if canceled { 487 } else { 408 };
        br.reply = None;
        br.cancel_pending = None;
        if tx.invite && br.provisional && !br.cancel_sent {
            // Keep the INVITE machine: the 487 the CANCEL brings must be acknowledged.
            self.send_cancel(core, tx, br, idx, "", now);
        } else {
            br.client = None;
        }
    }

    /// Every branch has a final answer and nothing was sent upstream: failure_route (once
    /// per arming), then the best reply, unless the route added branches or replied.
    pub(crate) fn maybe_complete(&self, core: &Core, tx: &Arc<Tx>, vars: &mut Vec<Value>) {
        loop {
            let mut st = tx.state.lock();
            if st.final_code >= 200 || st.in_failure || st.adding {
                return;
            }
            let Some(best) = branch_to_complete(st.branches.iter().map(|b| b.final_code)) else {
                return;
            };
            let Some(route) = st.on_failure.take() else {
                drop(st);
                self.relay_best(core, tx, best);
                return;
            };
            st.in_failure = true;
            let before = st.branches.len();
            let (code, reply) = st
                .branches
                .get(best)
                .map_or((500, None), |b| (b.final_code, b.reply.clone()));
            drop(st);
            self.run_failure(core, tx, route, best, code, reply, vars);
            let mut st = tx.state.lock();
            st.in_failure = false;
            if st.final_code >= 200 {
                return;
            }
            if st.branches.len() > before {
                // New branches: wait for them (the loop returns unless they all ended).
                continue;
            }
            drop(st);
            self.relay_best(core, tx, best);
            return;
        }
    }

    /// Sends the chosen final reply of branch `idx` upstream (a local one when the branch
    /// ended here: timeout, local cancel).
    fn relay_best(&self, core: &Core, tx: &Arc<Tx>, idx: usize) {
        let (code, reply, challenges) = {
            let st = tx.state.lock();
            let Some(b) = st.branches.get(idx) else {
                return;
            };
            // The other branches' 401/407 challenges go up with the chosen one (RFC 3261
            // §16.7 step 7; Kamailio's aggregate_challenges).
            let challenges: Vec<Arc<Vec<u8>>> = if matches!(b.final_code, 401 | 407) {
                st.branches
                    .iter()
                    .enumerate()
                    .filter(|(k, o)| *k != idx && matches!(o.final_code, 401 | 407))
                    .filter_map(|(_, o)| o.reply.clone())
                    .collect()
            } else {
                Vec::new()
            };
            (b.final_code, b.reply.clone(), challenges)
        };
        match reply {
            Some(bytes) => {
                let out = if challenges.is_empty() {
                    bytes.as_ref().clone()
                } else {
                    merge_challenges(&bytes, &challenges)
                };
                self.send_upstream(core, tx, code, out);
            }
            None => {
                let (code, reason) = match code {
                    408 => (408, "Request Timeout"),
                    487 => (487, "Request Terminated"),
                    _ => (500, "Server Internal Error"),
                };
                self.reply_local(core, tx, code, reason, "", b"", None);
            }
        }
    }

    /// Runs failure_route `route` on the transaction's request, as the request route left
    /// it, with the transaction's AVPs and flags and the winning reply.
    #[allow(clippy::too_many_arguments)]
    fn run_failure(
        &self,
        core: &Core,
        tx: &Arc<Tx>,
        route: RouteId,
        best: usize,
        code: u16,
        reply: Option<Arc<Vec<u8>>>,
        vars: &mut Vec<Value>,
    ) {
        let taken = std::mem::take(vars);
        let _script = tx.script.lock();
        let back = tx.with_request_ctx(core, RouteMask::FAILURE, taken, |ctx| {
            ctx.tm.branch = Some(best);
            ctx.tm.reply_code = code;
            ctx.tm.reply = reply;
            let _ = tx.program.run(route, ctx);
            tx.keep_script_state(ctx);
            std::mem::take(&mut ctx.vars)
        });
        if let Some(v) = back {
            *vars = v;
        }
    }
}

impl Tx {
    /// Runs `f` on a context of the transaction's request as the request route left it
    /// (Request-URI, edits, Record-Route, send options), with the transaction's AVPs and
    /// flags, its program, and `vars` as the worker's `$var`s. None when the stored
    /// request does not parse.
    pub fn with_request_ctx<R>(
        self: &Arc<Self>,
        core: &Core,
        mask: RouteMask,
        vars: Vec<Value>,
        f: impl FnOnce(&mut MsgCtx<'_>) -> R,
    ) -> Option<R> {
        let msg = Message::parse(&self.request).ok()?;
        let original_uri = String::from_utf8_lossy(msg.slice(msg.request_uri_span())).into_owned();
        let mut ctx = MsgCtx::new(core, msg, &self.recv, vars, mask);
        ctx.program = Some(self.program.clone());
        {
            let st = self.state.lock();
            if st.ruri != original_uri {
                ctx.new_uri = Some(st.ruri.clone());
            }
            if let Some(f) = &st.forwarding {
                ctx.edits = f.edits.clone();
                ctx.record_route = f.record_route.clone();
                ctx.force_rport = f.force_rport;
                ctx.local_rport = f.local_rport;
                ctx.forward_flags = f.forward_flags;
            }
        }
        self.load_script_state(&mut ctx);
        ctx.tm.tx = Some(self.clone());
        Some(f(&mut ctx))
    }
}

/// `chosen` with the WWW-Authenticate and Proxy-Authenticate values of `others` added (each
/// once).
fn merge_challenges(chosen: &[u8], others: &[Arc<Vec<u8>>]) -> Vec<u8> {
    let Ok(msg) = Message::parse(chosen) else {
        return chosen.to_vec();
    };
    let kinds = [
        ("WWW-Authenticate", HeaderName::WwwAuthenticate),
        ("Proxy-Authenticate", HeaderName::ProxyAuthenticate),
    ];
    let mut seen: Vec<Vec<u8>> = kinds
        .iter()
        .flat_map(|(_, hn)| msg.headers_named(*hn).map(|h| msg.value(h).to_vec()))
        .collect();
    let mut edits = sable_sip::Edits::new();
    for other in others {
        let Ok(m) = Message::parse(other) else {
            continue;
        };
        for (name, hn) in kinds {
            for h in m.headers_named(hn) {
                let v = m.value(h);
                if seen.iter().any(|s| s == v) {
                    continue;
                }
                if edits.append_header(&msg, name.as_bytes(), v).is_ok() {
                    seen.push(v.to_vec());
                }
            }
        }
    }
    edits.to_vec(&msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_of_other_branches_are_merged_once() {
        let a = b"SIP/2.0 407 Proxy Authentication Required\r\nVia: SIP/2.0/UDP c;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nProxy-Authenticate: Digest realm=\"a\", nonce=\"1\"\r\nContent-Length: 0\r\n\r\n";
        let b = Arc::new(b"SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP c;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=3\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nWWW-Authenticate: Digest realm=\"b\", nonce=\"2\"\r\nProxy-Authenticate: Digest realm=\"a\", nonce=\"1\"\r\nContent-Length: 0\r\n\r\n".to_vec());
        let out = String::from_utf8(merge_challenges(a, &[b])).unwrap();
        assert!(out.starts_with("SIP/2.0 407 "));
        assert_eq!(
            out.matches("Proxy-Authenticate: Digest realm=\"a\"")
                .count(),
            1,
            "{out}"
        );
        assert!(
            out.contains("WWW-Authenticate: Digest realm=\"b\", nonce=\"2\"\r\n"),
            "{out}"
        );
        Message::parse(out.as_bytes()).unwrap().validate().unwrap();
    }
}
