//! Requests this server sends on its own through a transaction (`tm.t_uac_start`, and the
//! modules that probe or end calls): built here, retransmitted and timed out like any
//! branch, their final reply handed to a callback.

use super::{TimerWhat, Tm, Tx, UacBranch, BRANCH_PREFIX};
use crate::context::RecvInfo;
use crate::core::Core;
use crate::sip_util::{hex, next_hop_of_uri, NextHop};
use parking_lot::Mutex;
use sable_sip::{HeaderName, Message};
use sable_transaction::{ClientKind, ClientTransaction, Millis, TransactionKey};
use sable_transport::Proto;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What a local transaction calls with its final reply: the code, and the reply's octets
/// (received, or made here for a timeout).
pub type UacCallback = Box<dyn FnOnce(u16, Option<&[u8]>) + Send>;

/// A request to send.
#[derive(Default)]
pub struct UacRequest {
    pub method: String,
    pub ruri: String,
    /// Where to send it (a SIP URI), instead of the Request-URI's host.
    pub next_hop: Option<String>,
    /// Header lines, each ending in CRLF. From, To, Call-ID, CSeq and Max-Forwards are
    /// added when missing; Via and Content-Length are always made here.
    pub headers: String,
    pub body: Vec<u8>,
    pub callback: Option<UacCallback>,
}

impl std::fmt::Debug for UacRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UacRequest")
            .field("method", &self.method)
            .field("ruri", &self.ruri)
            .finish()
    }
}

fn has_header(headers: &str, long: &str, compact: Option<&str>) -> bool {
    headers.split("\r\n").any(|l| {
        l.split_once(':').is_some_and(|(n, _)| {
            let n = n.trim();
            n.eq_ignore_ascii_case(long) || compact.is_some_and(|c| n.eq_ignore_ascii_case(c))
        })
    })
}

/// What [`Tm::launch`] starts.
struct Launch {
    id: u64,
    bytes: Vec<u8>,
    method: String,
    ruri: String,
    hop: NextHop,
    socket: sable_transport::LocalSocket,
    tag: String,
    program: Arc<sable_script::Program<crate::Sip>>,
    callback: Option<UacCallback>,
    /// The transaction key when the caller knows it (the request is then trusted: neither
    /// parsed nor validated).
    key: Option<TransactionKey>,
}

impl Tm {
    /// Sends `req` statefully. Errors: a bad method, URI or header text, no socket for the
    /// destination, no program loaded.
    pub fn uac_start(&self, core: &Core, req: UacRequest) -> Result<Arc<Tx>, String> {
        let method = req.method.trim().to_owned();
        if method.is_empty()
            || !method
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(format!("bad method {method:?}"));
        }
        if method.eq_ignore_ascii_case("ACK") || method.eq_ignore_ascii_case("CANCEL") {
            return Err(format!("{method} cannot start a transaction"));
        }
        let ruri = req.ruri.trim();
        if ruri.contains(char::is_whitespace) || sable_sip::Uri::parse(ruri.as_bytes()).is_err() {
            return Err(format!("bad Request-URI {ruri:?}"));
        }
        let mut headers = req.headers.replace("\r\n", "\n").replace('\n', "\r\n");
        if !headers.is_empty() && !headers.ends_with("\r\n") {
            headers.push_str("\r\n");
        }
        if headers.contains("\r\n\r\n") || headers.starts_with("\r\n") {
            return Err("empty line in the headers".to_owned());
        }
        let hop: NextHop = next_hop_of_uri(req.next_hop.as_deref().unwrap_or(ruri))?;
        let (socket, program) = Self::sender(core, &hop)?;
        let (host, port) = socket.advertised();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let branch = format!("{BRANCH_PREFIX}{id:x}.0");
        let tag = format!("{:016x}", crate::sip_util::hash64(branch.as_bytes()));
        let mut out = format!(
            "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/{} {host}:{port};branch={branch}\r\n",
            hop.proto.via_name()
        );
        if !has_header(&headers, "From", Some("f")) {
            out.push_str(&format!("From: <sip:sable@{host}:{port}>;tag={tag}\r\n"));
        }
        if !has_header(&headers, "To", Some("t")) {
            out.push_str(&format!("To: <{ruri}>\r\n"));
        }
        if !has_header(&headers, "Call-ID", Some("i")) {
            out.push_str(&format!("Call-ID: {tag}-{id:x}@{host}\r\n"));
        }
        if !has_header(&headers, "CSeq", None) {
            out.push_str(&format!("CSeq: 10 {method}\r\n"));
        }
        if !has_header(&headers, "Max-Forwards", None) {
            out.push_str("Max-Forwards: 70\r\n");
        }
        let headers: String = headers
            .split("\r\n")
            .filter(|l| {
                !l.is_empty()
                    && !l.split_once(':').is_some_and(|(n, _)| {
                        let n = n.trim();
                        n.eq_ignore_ascii_case("Content-Length") || n.eq_ignore_ascii_case("l")
                    })
            })
            .map(|l| format!("{l}\r\n"))
            .collect();
        out.push_str(&headers);
        out.push_str(&format!("Content-Length: {}\r\n\r\n", req.body.len()));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&req.body);
        self.launch(
            core,
            Launch {
                id,
                bytes,
                method,
                ruri: ruri.to_owned(),
                hop,
                socket,
                tag,
                program,
                callback: req.callback,
                key: None,
            },
        )
    }

    /// Sends a request this server builds itself (a dialog's BYE) through a transaction:
    /// `build` gets the branch and the `host:port` of the socket towards `hop_uri` and gives
    /// the whole request with that branch in its (only) Via.
    pub fn uac_start_with(
        &self,
        core: &Core,
        hop_uri: &str,
        build: impl FnOnce(&str, &str) -> Result<Vec<u8>, String>,
        callback: Option<UacCallback>,
    ) -> Result<Arc<Tx>, String> {
        let p = self.prepare(core, next_hop_of_uri(hop_uri)?)?;
        let bytes = build(&p.branch, p.socket.sent_by())?;
        let (method, ruri) = {
            let msg =
                Message::parse(&bytes).map_err(|e| format!("the request does not parse: {e}"))?;
            let method = msg.method().map(|m| m.to_string()).ok_or("not a request")?;
            let ruri = String::from_utf8_lossy(msg.slice(msg.request_uri_span())).into_owned();
            (method, ruri)
        };
        self.launch(core, p.into_launch(bytes, method, ruri, callback, false))
    }

    /// Sends a request this server writes in one piece and knows to be well formed
    /// (keepalive's OPTIONS): the light path of [`Tm::uac_start_with`], to a next hop the
    /// caller resolved. `build` appends the whole request to `out` (empty, with room
    /// reserved), given the branch and the `host:port` of the socket towards `hop`; the
    /// branch goes in its only Via. `method`
    /// and `ruri` are the request's own: they are not read back from the octets, which are
    /// neither parsed nor validated here (the caller's unit tests check what it writes).
    pub fn uac_start_local(
        &self,
        core: &Core,
        hop: NextHop,
        method: &str,
        ruri: &str,
        build: impl FnOnce(&str, &str, &mut Vec<u8>),
        callback: Option<UacCallback>,
    ) -> Result<Arc<Tx>, String> {
        let p = self.prepare(core, hop)?;
        let mut bytes = Vec::with_capacity(512);
        build(&p.branch, p.socket.sent_by(), &mut bytes);
        let launch = p.into_launch(bytes, method.to_owned(), ruri.to_owned(), callback, true);
        self.launch(core, launch)
    }

    /// What a local request needs before it is written: the socket towards its next hop
    /// `hop` (and the `host:port` for the Via), the program, a transaction id and its
    /// branch.
    fn prepare(&self, core: &Core, hop: NextHop) -> Result<Prepared, String> {
        let (socket, program) = Self::sender(core, &hop)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut branch = String::with_capacity(BRANCH_PREFIX.len() + 18);
        branch.push_str(BRANCH_PREFIX);
        branch.push_str(hex(id, 0).as_str());
        branch.push_str(".0");
        Ok(Prepared {
            hop,
            socket,
            program,
            id,
            branch,
        })
    }

    /// The socket a local request leaves through towards `hop`, and the program its
    /// transaction keeps.
    fn sender(
        core: &Core,
        hop: &NextHop,
    ) -> Result<
        (
            sable_transport::LocalSocket,
            Arc<sable_script::Program<crate::Sip>>,
        ),
        String,
    > {
        let socket = core
            .socket_for(hop.proto, &hop.addr, None)
            .ok_or_else(|| format!("no {} socket for {}", hop.proto, hop.addr))?
            .clone();
        let program = core.program().ok_or("no config loaded")?;
        Ok((socket, program))
    }

    fn launch(&self, core: &Core, l: Launch) -> Result<Arc<Tx>, String> {
        let Launch {
            id,
            bytes,
            method,
            ruri,
            hop,
            socket,
            tag,
            program,
            callback,
            key,
        } = l;
        let ruri = ruri.as_str();
        let key = match key {
            Some(k) => k,
            None => {
                let msg = Message::parse(&bytes)
                    .map_err(|e| format!("the request does not parse: {e}"))?;
                msg.validate()
                    .map_err(|e| format!("the request is not valid: {e}"))?;
                if msg.header(HeaderName::Via).is_none() {
                    return Err("no Via".to_owned());
                }
                TransactionKey::of_sent_request(&msg).map_err(|e| e.to_string())?
            }
        };
        let invite = method == "INVITE";
        // One copy of the request, shared by the transaction and its client machine.
        let bytes = sable_transaction::Octets::from(bytes);
        let now = self.now();
        let reliable = hop.proto != Proto::Udp;
        let tx = Arc::new(Tx {
            id,
            key,
            invite,
            method,
            request: bytes.clone(),
            recv: RecvInfo {
                proto: hop.proto,
                src: hop.addr,
                local: socket.clone(),
                conn: None,
            },
            reply_dst: hop.addr,
            to_tag: tag,
            program,
            created: now,
            lifetime: self.lifetime_of(invite),
            local: Some(Mutex::new(callback)),
            armed: Mutex::default(),
            script: super::ScriptLock::default(),
            state: Mutex::new(self.fresh_state(invite, reliable, now, ruri.to_owned(), (0, 0))),
        });
        if let Some(b) = self.ids.get(super::id_bucket(id)) {
            b.lock().insert(id, tx.clone());
        }
        self.stats.created.inc();
        self.stats.total.inc();
        self.stats.total_local.inc();
        self.stats.current.add(1);
        // The one branch's fr timer ends a non-INVITE local transaction (its 408 completes
        // it, and the wait timer frees it): the lifetime timer, which would only do the same
        // later, is armed only when it comes first. An INVITE's fr timer can restart.
        if invite || tx.lifetime < self.cfg.fr_timer {
            self.arm(&tx, Millis(now.0 + tx.lifetime), TimerWhat::Lifetime);
        }
        let (client, mut actions) = ClientTransaction::new(
            if invite {
                ClientKind::Invite
            } else {
                ClientKind::NonInvite
            },
            bytes,
            reliable,
            &self.client_timers,
            now,
        );
        {
            let mut st = tx.state.lock();
            st.branches.push(UacBranch {
                uri: ruri.to_owned(),
                hop: hop.clone(),
                local: socket.index,
                client: Some(client),
                cancel: None,
                provisional: false,
                replied: false,
                final_code: 0,
                reply: None,
                timed_out: false,
                cancel_pending: None,
                cancel_sent: false,
                on_reply: None,
                fr_gen: 0,
            });
        }
        let fr_at = Millis(now.0 + self.cfg.fr_timer);
        super::drop_shadowed_timer_f(&mut actions, invite, fr_at);
        self.run_client(core, &tx, (&hop, socket.index), 0, false, actions);
        self.arm(&tx, fr_at, TimerWhat::Fr(0, 0));
        Ok(tx)
    }

    /// The transaction of a request by Call-ID and CSeq number (`t_reply_callid`,
    /// `tm.cancel`): a scan, as Kamailio's.
    pub fn find_by_callid(&self, callid: &str, cseq: u32) -> Option<Arc<Tx>> {
        self.all().into_iter().find(|tx| {
            Message::parse(&tx.request).ok().is_some_and(|m| {
                m.call_id().ok() == Some(callid.as_bytes())
                    && m.cseq().ok().is_some_and(|c| c.number == cseq)
            })
        })
    }

    /// The transaction with this id (`tm.reply`).
    pub fn find_by_id(&self, id: u64) -> Option<Arc<Tx>> {
        self.by_id(id)
    }

    /// Cancels every pending branch of `tx` (`t_cancel_callid`, `tm.cancel`).
    pub fn cancel_tx(&self, core: &Core, tx: &Arc<Tx>) {
        let now = self.now();
        let mut st = tx.state.lock();
        st.canceled = true;
        for idx in 0..st.branches.len() {
            self.cancel_branch(core, tx, &mut st, idx, "", now);
        }
    }
}

/// See [`Tm::prepare`].
struct Prepared {
    hop: NextHop,
    socket: sable_transport::LocalSocket,
    program: Arc<sable_script::Program<crate::Sip>>,
    id: u64,
    branch: String,
}

impl Prepared {
    /// The transaction to start with the request written: its To tag for local replies
    /// comes from the branch. `trusted`: the request is the caller's own, well formed; its
    /// key is made here from `method` and the branch (else it is parsed from the octets).
    fn into_launch(
        self,
        bytes: Vec<u8>,
        method: String,
        ruri: String,
        callback: Option<UacCallback>,
        trusted: bool,
    ) -> Launch {
        let tag = hex(crate::sip_util::hash64(self.branch.as_bytes()), 16)
            .as_str()
            .to_owned();
        let key = trusted.then(|| TransactionKey::Client {
            method: method.as_bytes().to_vec(),
            branch: self.branch.into_bytes(),
        });
        Launch {
            id: self.id,
            bytes,
            method,
            ruri,
            tag,
            hop: self.hop,
            socket: self.socket,
            program: self.program,
            callback,
            key,
        }
    }
}
