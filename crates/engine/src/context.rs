//! The context a script runs on: one received message and what the script did to it.

use crate::core::Core;
use sable_script::{AvpStore, Host, RouteMask, ScriptState, Value, XavpStore};
use sable_sip::{Edits, Message, Uri};
use sable_transport::{ConnectionId, LocalSocket, Proto};
use std::borrow::Cow;
use std::net::SocketAddr;

/// The script host type of Sable: scripts run on [`MsgCtx`].
#[derive(Debug, Clone, Copy)]
pub struct Sip;

impl Host for Sip {
    type Ctx<'a> = MsgCtx<'a>;
}

/// A Record-Route header to add when the request is sent (Kamailio fills the address in at
/// send time, from the socket the request leaves through).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordRoute {
    /// User part of the URI (rr's `add_username`).
    pub user: Option<String>,
    /// URI parameters after the address, each with its leading `;` (`;lr;ftag=x`).
    pub params: String,
    /// An explicit address (`record_route_preset`), instead of the socket's.
    pub preset: Option<String>,
    /// `record_route()` (or the preset form) was called: only then is a Record-Route added
    /// (`add_rr_param()` alone only collects parameters for it).
    pub active: bool,
    /// rr's `enable_double_rr`: two Record-Routes (`;r2=on`) when the request leaves through
    /// another socket than the one it came in on.
    pub double: bool,
}

/// A branch of the destination set (`append_branch()`), forked by tm.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Branch {
    pub uri: String,
    /// `$du` of the branch.
    pub dst_uri: Option<String>,
    /// q-value in thousandths (RFC 3261 §20.10), `None` when not given.
    pub q: Option<u16>,
    /// Branch flags.
    pub flags: u32,
    /// The listen socket (index) the branch must leave through (`$fs`).
    pub socket: Option<usize>,
}

impl Branch {
    /// `<uri>;q=0.5` as in a Contact header.
    pub fn contact(&self) -> String {
        match self.q {
            Some(q) => {
                let int = q / 1000;
                let frac = format!("{:03}", q % 1000);
                let frac = frac.trim_end_matches('0');
                if frac.is_empty() {
                    format!("<{}>;q={int}", self.uri)
                } else {
                    format!("<{}>;q={int}.{frac}", self.uri)
                }
            }
            None => format!("<{}>", self.uri),
        }
    }
}

/// Most branches a destination set holds (Kamailio's default `MAX_BRANCHES`).
pub const MAX_BRANCHES: usize = 12;

/// Where a message came from.
#[derive(Debug, Clone)]
pub struct RecvInfo {
    pub proto: Proto,
    pub src: SocketAddr,
    pub local: LocalSocket,
    pub conn: Option<ConnectionId>,
}

/// A message being routed: the parsed message, its pending edits, and the routing state the
/// script changes (`$ru`, `$du`, flags, AVPs...).
#[derive(Debug)]
pub struct MsgCtx<'a> {
    pub core: &'a Core,
    pub msg: Message<'a>,
    pub recv: &'a RecvInfo,
    /// Header and body edits (lumps), applied when the message is sent.
    pub edits: Edits,
    /// The Request-URI as rewritten by the script (`$ru = ...`, `rewritehost()`...).
    pub new_uri: Option<String>,
    /// `$du`: the next hop, when the script set one.
    pub dst_uri: Option<String>,
    /// Message flags (`setflag`).
    pub flags: u32,
    /// Flags of branch 0 (`setbflag`).
    pub bflags: u32,
    /// Script flags (`setsflag`), cleared for every message.
    pub sflags: u32,
    /// `force_rport()` was called.
    pub force_rport: bool,
    /// `add_local_rport()` was called: Sable's own Via asks for `rport` (RFC 3581).
    pub local_rport: bool,
    /// A final reply was sent for this request (sl).
    pub replied: bool,
    /// Header lines to add to local replies (`append_to_reply`), each ending in CRLF.
    pub reply_headers: String,
    /// `record_route()` was called: the Record-Route to add when sending.
    pub record_route: Option<RecordRoute>,
    /// TCP options of local replies (`set_reply_close()`, `set_reply_no_connect()`).
    pub reply_flags: sable_transport::SendFlags,
    /// TCP options of forwarded requests (`set_forward_close()`,
    /// `set_forward_no_connect()`).
    pub forward_flags: sable_transport::SendFlags,
    /// The URI of our own Route header that `loose_route()` consumed (`$route_uri`,
    /// `check_route_param()`, `is_direction()`).
    pub loose_route_uri: Option<String>,
    /// `$fs`: the listen socket (index) requests must leave through.
    pub force_socket: Option<usize>,
    /// The destination set: branches added by `append_branch()` (the Request-URI is branch 0
    /// unless `ruri_consumed`).
    pub branches: Vec<Branch>,
    /// `append_branch()` without a q moved the Request-URI into the branches.
    pub ruri_consumed: bool,
    /// Inside `onsend_route`: where the request is about to go (`$snd(...)`).
    pub send_to: Option<(Proto, SocketAddr)>,
    /// The route type running now.
    pub route: RouteMask,
    pub avps: AvpStore,
    pub xavps: XavpStore,
    /// The worker's `$var` values, lent to this message and given back after it.
    pub vars: Vec<Value>,
    pub retcode: i32,
    /// The program this message runs on (set by the dispatcher; a transaction keeps it so
    /// its reply and failure routes run on the same program after a reload).
    pub program: Option<std::sync::Arc<sable_script::Program<Sip>>>,
    /// Transaction state of this message (tm).
    pub tm: crate::tm::TmMsg,
    /// The request route's hold on the transaction it created (see
    /// [`ScriptHold`](crate::tm::ScriptHold)): released when the route's state is kept, or
    /// with the context.
    pub tx_hold: Option<crate::tm::ScriptHold>,
    /// The message's time, taken on the first read of `$Ts`, `$TV(s)` or `$TV(u)`: (seconds,
    /// microseconds) since 1970, the same for every later read while the message is routed.
    pub time: std::cell::Cell<Option<(i64, i64)>>,
    /// The credentials that authenticated this request (auth): (Proxy-Authorization?,
    /// position among those headers), for `consume_credentials()` and identity checks.
    pub auth_used: Option<(bool, usize)>,
    /// The dialog of this message (dialog module): its (h_entry, h_id).
    pub dialog: Option<(u32, u32)>,
}

impl<'a> MsgCtx<'a> {
    /// A fresh context for a received message.
    pub fn new(
        core: &'a Core,
        msg: Message<'a>,
        recv: &'a RecvInfo,
        vars: Vec<Value>,
        route: RouteMask,
    ) -> Self {
        MsgCtx {
            core,
            msg,
            recv,
            edits: Edits::new(),
            new_uri: None,
            dst_uri: None,
            flags: 0,
            bflags: 0,
            sflags: 0,
            force_rport: false,
            local_rport: false,
            replied: false,
            reply_headers: String::new(),
            record_route: None,
            send_to: None,
            force_socket: None,
            branches: Vec::new(),
            ruri_consumed: false,
            loose_route_uri: None,
            reply_flags: sable_transport::SendFlags::default(),
            forward_flags: sable_transport::SendFlags::default(),
            route,
            avps: AvpStore::new(),
            xavps: XavpStore::new(),
            vars,
            retcode: 1,
            program: None,
            tm: crate::tm::TmMsg::default(),
            tx_hold: None,
            time: std::cell::Cell::new(None),
            auth_used: None,
            dialog: None,
        }
    }

    /// The Request-URI as it will be sent (rewritten or received); empty for replies.
    pub fn ruri_text(&self) -> Cow<'_, str> {
        match &self.new_uri {
            Some(u) => Cow::Borrowed(u.as_str()),
            None => match self.msg.start_line() {
                sable_sip::StartLine::Request { uri, .. } => String::from_utf8_lossy(uri),
                sable_sip::StartLine::Response { .. } => Cow::Borrowed(""),
            },
        }
    }

    /// Runs `f` on the parsed current Request-URI; `None` when it does not parse.
    pub fn with_ruri<R>(&self, f: impl FnOnce(&Uri<'_>) -> R) -> Option<R> {
        match &self.new_uri {
            Some(u) => Uri::parse(u.as_bytes()).ok().map(|uri| f(&uri)),
            None => self.msg.request_uri().ok().map(f),
        }
    }

    /// Whether the message is a request.
    pub fn is_request(&self) -> bool {
        self.msg.is_request()
    }

    /// The method: of the request, or of the CSeq for a reply.
    pub fn method_bytes(&self) -> &'a [u8] {
        match self.msg.method() {
            Some(m) => m.as_bytes(),
            None => self.msg.cseq().map(|c| c.method.as_bytes()).unwrap_or(b""),
        }
    }
}

impl ScriptState for MsgCtx<'_> {
    fn vars(&mut self) -> &mut Vec<Value> {
        &mut self.vars
    }

    fn avps(&mut self) -> &mut AvpStore {
        &mut self.avps
    }

    fn xavps(&mut self) -> &mut XavpStore {
        &mut self.xavps
    }

    fn retcode(&self) -> i32 {
        self.retcode
    }

    fn set_retcode(&mut self, code: i32) {
        self.retcode = code;
    }
}
