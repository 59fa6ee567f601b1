//! One dialog: its data, the events that move it, and what the module must do after each
//! ([`DialogAction`]).
//!
//! Time is UNIX seconds, passed in (`now`); timers are deadlines handed out in
//! [`DialogAction::ScheduleTimeout`] with a generation number, and a timer event whose
//! generation is not the current one is stale and ignored, so the module's timer wheel never
//! cancels anything.

use sable_sip::{HeaderName, Message, Method, NameAddr};

use crate::callback::{CallbackInfo, CallbackKind};
use crate::error::DialogError;
use crate::id::{DialogId, Direction, HashId, Side};
use crate::profile::ProfileLink;
use crate::state::{next_state, DialogState, EventKind, Step};
use text::{Field, Text, FIELDS};

mod record;
mod text;

pub use record::DialogRecord;

/// `DLG_FLAG_NEW` (dflags): created and not yet stored.
pub const DFLAG_NEW: u32 = 1 << 0;
/// `DLG_FLAG_CHANGED` (dflags): changed since last stored.
pub const DFLAG_CHANGED: u32 = 1 << 1;
/// `DLG_FLAG_HASBYE` (dflags): a BYE (or the lifetime timeout) ended the dialog; a late 2xx
/// no longer revives it.
pub const DFLAG_HASBYE: u32 = 1 << 2;
/// `DLG_FLAG_CALLERBYE` (dflags): the BYE came from the caller.
pub const DFLAG_CALLERBYE: u32 = 1 << 4;
/// `DLG_FLAG_CALLEEBYE` (dflags): the BYE came from the callee.
pub const DFLAG_CALLEEBYE: u32 = 1 << 5;
/// `DLG_FLAG_CHANGED_VARS` (dflags): dialog variables changed.
pub const DFLAG_CHANGED_VARS: u32 = 1 << 7;
/// `DLG_FLAG_TM` (dflags): the dialog is bound to its INVITE transaction.
pub const DFLAG_TM: u32 = 1 << 9;

/// `DLG_IFLAG_TIMEOUTBYE` (iflags): send BYE both ways when the lifetime runs out.
pub const IFLAG_TIMEOUTBYE: u32 = 1 << 0;
/// `DLG_IFLAG_KA_SRC` (iflags): OPTIONS keepalives to the caller.
pub const IFLAG_KA_SRC: u32 = 1 << 1;
/// `DLG_IFLAG_KA_DST` (iflags): OPTIONS keepalives to the callee.
pub const IFLAG_KA_DST: u32 = 1 << 2;
/// `DLG_IFLAG_TIMER_NORESET` (iflags): in-dialog requests do not restart the lifetime.
pub const IFLAG_TIMER_NORESET: u32 = 1 << 3;

/// What Kamailio gives a dialog left in state 3 by `noack_timeout`: 10 more seconds.
pub const NOACK_GRACE: u64 = 10;

/// The lifetime Kamailio leaves a dialog whose keepalives failed `ka_failed_limit` times:
/// 10 seconds.
pub const KEEPALIVE_GRACE: u32 = 10;

/// The module parameters the state machine needs (names and defaults of Kamailio's dialog
/// module).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialogConfig {
    /// `default_timeout`: lifetime of a confirmed dialog, seconds (43200).
    pub default_timeout: u32,
    /// `early_timeout`: a dialog still in state 1 or 2 this long after the INVITE is freed
    /// without callbacks (300).
    pub early_timeout: u32,
    /// `noack_timeout`: a dialog in state 3 this long after the 2xx gets [`NOACK_GRACE`]
    /// seconds more lifetime (60).
    pub noack_timeout: u32,
    /// `end_timeout`: a dialog in state 5 is kept this long, then freed (300).
    pub end_timeout: u32,
    /// `send_bye`: new dialogs get [`IFLAG_TIMEOUTBYE`] (0).
    pub send_bye: bool,
    /// `timeout_noreset`: in-dialog requests do not restart the lifetime (0).
    pub timeout_noreset: bool,
}

impl Default for DialogConfig {
    fn default() -> Self {
        DialogConfig {
            default_timeout: 43200,
            early_timeout: 300,
            noack_timeout: 60,
            end_timeout: 300,
            send_bye: false,
            timeout_noreset: false,
        }
    }
}

/// What the dialog knows of one side.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Leg {
    /// The side's tag (caller: From tag of the INVITE; callee: To tag of the 2xx).
    pub tag: Option<String>,
    /// The side's remote target: the URI of its Contact (RFC 3261 §12.1.1, §12.1.2),
    /// refreshed by target-refresh requests (§12.2).
    pub contact: Option<String>,
    /// The CSeq number of the last request this side sent (caller: the INVITE's at first;
    /// callee: 0 until it sends one). A request the module sends *to* the other side
    /// impersonates this side and uses this number + 1.
    pub cseq: u32,
    /// The route set towards this side, first hop first, each entry a Record-Route value as
    /// received (`<sip:p1.example.com;lr>`).
    pub route_set: Vec<String>,
    /// The local socket this side is reached through (`udp:192.0.2.1:5060`), set by the
    /// module.
    pub socket: Option<String>,
}

/// Which timer the dialog's one deadline stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerKind {
    /// State 1/2: `early_timeout` after the INVITE.
    Early,
    /// State 3: `noack_timeout` after the 2xx.
    NoAck,
    /// State 3/4: the lifetime (`timeout` in `dlg.list`).
    Lifetime,
    /// State 5: `end_timeout` after the end.
    End,
}

/// Why a dialog ended (state 3/4 → 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// A BYE from that direction.
    Bye(Direction),
    /// The first final reply to a BYE the module sent (timeout with `send_bye`,
    /// `dlg_bye()`, `dlg.end_dlg`).
    LocalBye,
}

/// Why the module should free a dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveReason {
    /// Still in state 1/2 after `early_timeout` (Kamailio: "dialog in early state is too
    /// old"; no callback, no event route).
    EarlyTimeout,
    /// In state 5 for `end_timeout`.
    EndTimeout,
}

/// What the module must do after an event, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialogAction {
    /// A 101-199 was relayed in state 1 or 2: `DLGCB_EARLY` (every time). `first` when the
    /// dialog just entered state 2 (statistic `early_dialogs` + 1).
    Early {
        /// The status code.
        code: u16,
        /// True on the transition 1 → 2.
        first: bool,
    },
    /// The dialog entered state 3 (a 2xx relayed): `event_route[dialog:start]` with the 2xx,
    /// `DLGCB_CONFIRMED_NA`, `active_dialogs` + 1 (and `early_dialogs` - 1 when `was_early`).
    Started {
        /// The dialog was in state 5 (failed, no BYE) and a late 2xx brought it back.
        revived: bool,
        /// The dialog was in state 2.
        was_early: bool,
    },
    /// The ACK confirmed the dialog (3 → 4): `DLGCB_CONFIRMED`.
    Confirmed,
    /// An in-dialog request was accepted in state 2 or 4 (or the ACK): `DLGCB_REQ_WITHIN`.
    RequestWithin {
        /// Which way it goes.
        direction: Direction,
    },
    /// Setup failed (state 1/2 → 5): `event_route[dialog:failed]` with the reply,
    /// `DLGCB_FAILED`, `failed_dialogs` + 1.
    Failed {
        /// The negative status relayed; `None` when the transaction went away without one.
        code: Option<u16>,
        /// The dialog was in state 2.
        was_early: bool,
    },
    /// The dialog ended (state 3/4 → 5). For a BYE: `event_route[dialog:end]` with the BYE,
    /// `DLGCB_TERMINATED`; for [`EndReason::LocalBye`]: `DLGCB_TERMINATED_CONFIRMED`.
    /// `active_dialogs` - 1.
    Ended {
        /// Why.
        reason: EndReason,
    },
    /// The lifetime ran out and no BYE is sent (state 3/4 → 5): `event_route[dialog:end]`
    /// with a faked message, `DLGCB_EXPIRED`, `expired_dialogs` + 1, `active_dialogs` - 1.
    Expired,
    /// Run the dialog's timeout route (`$dlg_ctx(timeout_route)`) before anything else.
    TimeoutRoute {
        /// The route's name.
        route: String,
    },
    /// Send a BYE to that side ([`Dialog::build_bye`]); when its first final reply comes,
    /// feed [`DialogEvent::LocalByeDone`]. After a timeout: `expired_dialogs` + 1.
    SendBye {
        /// The side to send it to.
        side: Side,
    },
    /// The dialog left these profiles (state 5 reached or the dialog freed): pass them to
    /// [`crate::Profiles::release`].
    LeftProfiles {
        /// The memberships given up.
        links: Vec<ProfileLink>,
    },
    /// Arm the dialog's timer: call [`Dialog::on_timer`] with this generation at `at`
    /// (UNIX seconds). A previously scheduled event becomes stale.
    ScheduleTimeout {
        /// When.
        at: u64,
        /// The generation to hand back.
        generation: u64,
    },
    /// Unlink and free the dialog (`DLGCB_DESTROY`).
    Remove {
        /// Why.
        reason: RemoveReason,
    },
    /// The event makes no sense in this state; nothing changed. Kamailio logs "bogus event
    /// {event} in state {state}" at critical level.
    Bogus {
        /// The event.
        event: EventKind,
        /// The state it arrived in.
        state: DialogState,
    },
}

impl DialogAction {
    /// The callback kind the module fires for this action, if any.
    pub fn callback(&self) -> Option<CallbackKind> {
        match self {
            DialogAction::Early { .. } => Some(CallbackKind::Early),
            DialogAction::Started { .. } => Some(CallbackKind::ConfirmedNotAcked),
            DialogAction::Confirmed => Some(CallbackKind::Confirmed),
            DialogAction::RequestWithin { .. } => Some(CallbackKind::RequestWithin),
            DialogAction::Failed { .. } => Some(CallbackKind::Failed),
            DialogAction::Ended {
                reason: EndReason::Bye(_),
            } => Some(CallbackKind::Terminated),
            DialogAction::Ended {
                reason: EndReason::LocalBye,
            } => Some(CallbackKind::TerminatedConfirmed),
            DialogAction::Expired => Some(CallbackKind::Expired),
            DialogAction::Remove { .. } => Some(CallbackKind::Destroy),
            _ => None,
        }
    }

    /// The event route the module runs for this action, if any (`dialog:start`,
    /// `dialog:end`, `dialog:failed`).
    pub fn event_route(&self) -> Option<&'static str> {
        match self {
            DialogAction::Started { .. } => Some("dialog:start"),
            DialogAction::Ended {
                reason: EndReason::Bye(_),
            }
            | DialogAction::Expired => Some("dialog:end"),
            DialogAction::Failed { .. } => Some("dialog:failed"),
            _ => None,
        }
    }
}

/// A reply to the dialog's INVITE, relayed upstream, with what the dialog keeps of a 2xx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The status code.
    pub code: u16,
    /// The To tag (the callee's tag).
    pub to_tag: Option<String>,
    /// The Contact URI (the callee's remote target).
    pub contact: Option<String>,
    /// Every Record-Route value, top first, as received.
    pub record_routes: Vec<String>,
    /// How many of them this proxy added itself on the branch that answered (1, or 2 with
    /// double Record-Route; 0 if the script did not record-route).
    pub own_record_routes: usize,
}

impl Reply {
    /// Reads a reply. `own_record_routes` comes from the transaction (how many Record-Route
    /// values the proxy added to the branch).
    pub fn from_message(msg: &Message<'_>, own_record_routes: usize) -> Result<Reply, DialogError> {
        let code = msg.status_code().ok_or(DialogError::NotAResponse)?;
        let to_tag = msg.to().map_err(DialogError::bad("To"))?.tag().map(lossy);
        Ok(Reply {
            code,
            to_tag,
            contact: first_contact(msg)?,
            record_routes: record_routes(msg),
            own_record_routes,
        })
    }
}

/// The kinds of in-dialog request the table tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// ACK.
    Ack,
    /// BYE.
    Bye,
    /// PRACK.
    Prack,
    /// Anything else (re-INVITE, UPDATE, INFO, NOTIFY, REFER, MESSAGE, OPTIONS...).
    Other,
}

/// An in-dialog request, matched ([`crate::match_request`]) and reduced to what the dialog
/// keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InDialogRequest {
    /// Which row of the table.
    pub kind: RequestKind,
    /// Which way it goes.
    pub direction: Direction,
    /// Its CSeq number.
    pub cseq: u32,
    /// Its Contact URI when it is a target refresh (re-INVITE, UPDATE: RFC 3261 §12.2,
    /// RFC 3311 §5.1).
    pub refresh_target: Option<String>,
}

impl InDialogRequest {
    /// Reads a request matched to the dialog in `direction`.
    pub fn from_message(
        msg: &Message<'_>,
        direction: Direction,
    ) -> Result<InDialogRequest, DialogError> {
        let method = msg.method().ok_or(DialogError::NotARequest)?;
        let cseq = msg.cseq().map_err(DialogError::bad("CSeq"))?.number;
        let kind = match method {
            Method::Ack => RequestKind::Ack,
            Method::Bye => RequestKind::Bye,
            Method::Prack => RequestKind::Prack,
            _ => RequestKind::Other,
        };
        let refresh_target = if matches!(method, Method::Invite | Method::Update) {
            first_contact(msg)?
        } else {
            None
        };
        Ok(InDialogRequest {
            kind,
            direction,
            cseq,
            refresh_target,
        })
    }
}

/// Everything that moves a dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialogEvent {
    /// A reply to the INVITE was relayed upstream (100 Trying is not relayed and is
    /// ignored).
    Reply(Reply),
    /// The INVITE transaction was destroyed.
    TransactionDeleted,
    /// An in-dialog request was seen.
    Request(InDialogRequest),
    /// A retransmission of a request already seen (tm absorbed it): nothing changes, no
    /// timer restarts.
    Retransmission,
    /// The dialog's timer fired.
    Timer {
        /// The generation from [`DialogAction::ScheduleTimeout`].
        generation: u64,
    },
    /// The first final reply to a BYE the module sent came back.
    LocalByeDone,
}

/// One dialog as Kamailio's dialog module keeps it, packed for a long life in a big table:
/// every string of both legs in one exactly-sized buffer ([`text`](self) module: 16-bit
/// offsets, repeated values stored once), times as 32-bit UNIX seconds (until 2106; later
/// values are held at the maximum), small flags and enums, and the rarely used parts
/// (variables, profile memberships, the timeout route, keepalive counts) behind one
/// optional box. `size_of::<Dialog>()` is 120 bytes on 64-bit targets.
#[derive(Clone, PartialEq, Eq)]
pub struct Dialog {
    text: Text,
    hash: HashId,
    init_ts: u32,
    start_ts: u32,
    end_ts: u32,
    /// When the lifetime runs out; 0: the lifetime timer is not armed.
    timeout_at: u32,
    /// The armed deadline (meaningful when `armed_kind` is set).
    armed_at: u32,
    lifetime: u32,
    sflags: u32,
    message_flags: u32,
    caller_cseq: u32,
    callee_cseq: u32,
    dflags: u16,
    generation: u16,
    caller_rr_count: u16,
    iflags: u8,
    bits: u8,
    state: DialogState,
    armed_kind: Option<TimerKind>,
    extra: Option<Box<Extra>>,
}

/// `bits`: the noack timeout already gave its grace.
const BIT_NOACK_APPLIED: u8 = 1 << 0;
/// `bits`: the module's timeout BYEs are out.
const BIT_BYE_SENT: u8 = 1 << 1;
/// `bits`: a `Remove` was returned.
const BIT_REMOVED: u8 = 1 << 2;

/// What few dialogs have: allocated on first use, dropped when empty again.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Extra {
    /// `$dlg_var`s, oldest first.
    vars: Vec<(Box<str>, Box<str>)>,
    /// Profile memberships, oldest first.
    profiles: Vec<ProfileLink>,
    /// `$dlg_ctx(timeout_route)`.
    timeout_route: Option<Box<str>>,
    /// Keepalive OPTIONS that failed in a row, caller and callee.
    ka_failed: [u8; 2],
    /// When the next keepalive is due (UNIX seconds; 0: not scheduled yet).
    ka_next: u32,
}

impl Extra {
    fn is_empty(&self) -> bool {
        self.vars.is_empty()
            && self.profiles.is_empty()
            && self.timeout_route.is_none()
            && self.ka_failed == [0, 0]
            && self.ka_next == 0
    }
}

impl std::fmt::Debug for Dialog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialog")
            .field("hash", &self.hash)
            .field("state", &self.state)
            .field("text", &self.text)
            .field("init_ts", &self.init_ts)
            .field("start_ts", &self.start_ts)
            .field("end_ts", &self.end_ts)
            .field("timeout_at", &self.timeout_at)
            .field("lifetime", &self.lifetime)
            .field("cseq", &(self.caller_cseq, self.callee_cseq))
            .field("flags", &(self.dflags, self.sflags, self.iflags, self.bits))
            .field("armed", &self.deadline())
            .field("generation", &self.generation)
            .field("extra", &self.extra)
            .finish()
    }
}

/// Heap bytes of an allocation of `len` octets: the buffer plus the allocator's header
/// (16 bytes with glibc); nothing when empty (no allocation).
fn heap(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        len + 16
    }
}

/// UNIX seconds as stored: 32 bits, later times held at the maximum (year 2106).
fn secs(t: u64) -> u32 {
    u32::try_from(t).unwrap_or(u32::MAX)
}

impl Dialog {
    /// Memory the dialog holds: the struct and its heap parts (the packed text, the boxed
    /// rare parts and what they own), each allocation counted at its length plus an
    /// allocator header. The module's own accounting of what a dialog costs, next to the
    /// process's RSS (the module adds its table's share).
    pub fn approx_bytes(&self) -> usize {
        let extra = self.extra.as_deref().map_or(0, |e| {
            heap(std::mem::size_of::<Extra>())
                + heap(e.vars.capacity() * std::mem::size_of::<(Box<str>, Box<str>)>())
                + e.vars
                    .iter()
                    .map(|(k, v)| heap(k.len()) + heap(v.len()))
                    .sum::<usize>()
                + heap(e.profiles.capacity() * std::mem::size_of::<ProfileLink>())
                + e.profiles
                    .iter()
                    .map(|p| {
                        heap(p.profile.capacity())
                            + p.value.as_ref().map_or(0, |v| heap(v.capacity()))
                    })
                    .sum::<usize>()
                + e.timeout_route.as_ref().map_or(0, |r| heap(r.len()))
        });
        std::mem::size_of::<Dialog>() + heap(self.text.heap_len()) + extra
    }

    /// `dlg_manage()` on an initial INVITE: a dialog in state 1 with the caller's side
    /// filled in (From tag, Contact, CSeq, the Record-Route values as received: that is the
    /// route set towards the caller, RFC 3261 §12.1.1), the From and To URIs and the
    /// Request-URI. Returns the dialog and its first [`DialogAction::ScheduleTimeout`]
    /// (`early_timeout`). The module fires [`CallbackKind::Created`] itself.
    pub fn from_invite(
        hash: HashId,
        invite: &Message<'_>,
        now: u64,
        cfg: &DialogConfig,
    ) -> Result<(Dialog, Vec<DialogAction>), DialogError> {
        if invite.method() != Some(Method::Invite) {
            return Err(if invite.is_request() {
                DialogError::NotInvite
            } else {
                DialogError::NotARequest
            });
        }
        let call_id = lossy(invite.call_id().map_err(DialogError::bad("Call-ID"))?);
        let from = invite.from().map_err(DialogError::bad("From"))?;
        let from_tag = from.tag().filter(|t| !t.is_empty()).map(lossy);
        let Some(from_tag) = from_tag else {
            return Err(DialogError::MissingFromTag);
        };
        let to = invite.to().map_err(DialogError::bad("To"))?;
        if to.tag().is_some_and(|t| !t.is_empty()) {
            return Err(DialogError::HasToTag);
        }
        let cseq = invite.cseq().map_err(DialogError::bad("CSeq"))?.number;
        let request_uri = lossy(
            invite
                .request_uri()
                .map_err(DialogError::bad("Request-URI"))?
                .as_bytes(),
        );
        let route_set = record_routes(invite);
        let routes = Text::join_routes(&route_set);
        let from_uri = lossy(from.uri.as_bytes());
        let to_uri = lossy(to.uri.as_bytes());
        let contact = first_contact(invite)?;
        // In field order (see `text::Field`); the callee's side comes with the 2xx.
        let values: [Option<&str>; FIELDS] = [
            Some(&call_id),
            Some(&from_tag),
            None,
            Some(&from_uri),
            Some(&to_uri),
            Some(&request_uri),
            contact.as_deref(),
            None,
            routes.as_deref(),
            None,
            None,
            None,
        ];
        let text = Text::build(&values).ok_or(DialogError::TooLarge)?;
        let mut dialog = Dialog {
            text,
            hash,
            init_ts: secs(now),
            start_ts: 0,
            end_ts: 0,
            timeout_at: 0,
            armed_at: 0,
            lifetime: cfg.default_timeout,
            sflags: 0,
            message_flags: 0,
            caller_cseq: cseq,
            callee_cseq: 0,
            dflags: (DFLAG_NEW | DFLAG_CHANGED) as u16,
            generation: 0,
            caller_rr_count: u16::try_from(route_set.len()).unwrap_or(u16::MAX),
            iflags: if cfg.send_bye {
                IFLAG_TIMEOUTBYE as u8
            } else {
                0
            },
            bits: 0,
            state: DialogState::Unconfirmed,
            armed_kind: None,
            extra: None,
        };
        let mut actions = Vec::new();
        dialog.rearm(cfg, &mut actions);
        Ok((dialog, actions))
    }
}

impl Dialog {
    // ----- reading -----

    /// Table coordinates.
    pub fn hash(&self) -> HashId {
        self.hash
    }

    /// Call-ID and tags (a copy; [`Dialog::call_id`], [`Dialog::from_tag`],
    /// [`Dialog::to_tag`] and [`Dialog::matches`] read them without copying).
    pub fn id(&self) -> DialogId {
        DialogId {
            call_id: self.call_id().to_owned(),
            from_tag: self.from_tag().to_owned(),
            to_tag: self.to_tag().map(str::to_owned),
        }
    }

    /// The Call-ID.
    pub fn call_id(&self) -> &str {
        self.text.get(Field::CallId).unwrap_or_default()
    }

    /// The caller's tag (From tag of the INVITE).
    pub fn from_tag(&self) -> &str {
        self.text.get(Field::FromTag).unwrap_or_default()
    }

    /// The callee's tag, once a 2xx brought it.
    pub fn to_tag(&self) -> Option<&str> {
        self.text.get(Field::ToTag)
    }

    /// [`DialogId::matches`] without copying the identity.
    pub fn matches(&self, call_id: &[u8], from_tag: &[u8], to_tag: &[u8]) -> Option<Direction> {
        crate::id::match_tags(
            self.call_id(),
            self.from_tag(),
            self.to_tag(),
            call_id,
            from_tag,
            to_tag,
        )
    }

    /// The state.
    pub fn state(&self) -> DialogState {
        self.state
    }

    /// URI of the INVITE's From header.
    pub fn from_uri(&self) -> &str {
        self.text.get(Field::FromUri).unwrap_or_default()
    }

    /// URI of the INVITE's To header.
    pub fn to_uri(&self) -> &str {
        self.text.get(Field::ToUri).unwrap_or_default()
    }

    /// The INVITE's Request-URI.
    pub fn request_uri(&self) -> &str {
        self.text.get(Field::RequestUri).unwrap_or_default()
    }

    /// One side's data (a copy; the accessors [`Dialog::tag`], [`Dialog::contact`],
    /// [`Dialog::cseq`], [`Dialog::route_set`] and [`Dialog::socket`] read it in place).
    pub fn leg(&self, side: Side) -> Leg {
        Leg {
            tag: self.tag(side).map(str::to_owned),
            contact: self.contact(side).map(str::to_owned),
            cseq: self.cseq(side),
            route_set: self.route_set(side).map(str::to_owned).collect(),
            socket: self.socket(side).map(str::to_owned),
        }
    }

    /// A side's tag (caller: the From tag; callee: the To tag of the 2xx).
    pub fn tag(&self, side: Side) -> Option<&str> {
        match side {
            Side::Caller => self.text.get(Field::FromTag),
            Side::Callee => self.text.get(Field::ToTag),
        }
    }

    /// A side's remote target (its Contact URI).
    pub fn contact(&self, side: Side) -> Option<&str> {
        self.text.get(match side {
            Side::Caller => Field::CallerContact,
            Side::Callee => Field::CalleeContact,
        })
    }

    /// The CSeq number of the last request the side sent.
    pub fn cseq(&self, side: Side) -> u32 {
        match side {
            Side::Caller => self.caller_cseq,
            Side::Callee => self.callee_cseq,
        }
    }

    /// The route set towards a side, first hop first.
    pub fn route_set(&self, side: Side) -> impl Iterator<Item = &str> + Clone {
        Text::routes(self.text.get(match side {
            Side::Caller => Field::CallerRoutes,
            Side::Callee => Field::CalleeRoutes,
        }))
    }

    /// The local socket a side is reached through.
    pub fn socket(&self, side: Side) -> Option<&str> {
        self.text.get(match side {
            Side::Caller => Field::CallerSocket,
            Side::Callee => Field::CalleeSocket,
        })
    }

    /// When the INVITE was seen (`init_ts`).
    pub fn init_ts(&self) -> u64 {
        u64::from(self.init_ts)
    }

    /// When the 2xx was relayed (`start_ts`; 0 before).
    pub fn start_ts(&self) -> u64 {
        u64::from(self.start_ts)
    }

    /// When the dialog reached state 5 (`end_ts`; 0 before).
    pub fn end_ts(&self) -> u64 {
        u64::from(self.end_ts)
    }

    /// The lifetime in seconds (`$dlg(lifetime)`).
    pub fn lifetime(&self) -> u32 {
        self.lifetime
    }

    /// When the lifetime runs out, if the lifetime timer is armed (states 3 and 4).
    pub fn timeout_at(&self) -> Option<u64> {
        (self.timeout_at != 0).then_some(u64::from(self.timeout_at))
    }

    /// The internal flags (`dflags`, `DFLAG_*`).
    pub fn dflags(&self) -> u32 {
        u32::from(self.dflags)
    }

    /// The script flags (`sflags`, `dlg_setflag()`).
    pub fn sflags(&self) -> u32 {
        self.sflags
    }

    /// The internal persistent flags (`iflags`, `IFLAG_*`).
    pub fn iflags(&self) -> u32 {
        u32::from(self.iflags)
    }

    /// The message flags the INVITE had at creation.
    pub fn message_flags(&self) -> u32 {
        self.message_flags
    }

    /// The timeout route (`$dlg_ctx(timeout_route)`).
    pub fn timeout_route(&self) -> Option<&str> {
        self.extra.as_deref()?.timeout_route.as_deref()
    }

    /// The next deadline of the dialog's timer and what it stands for.
    pub fn deadline(&self) -> Option<(u64, TimerKind)> {
        self.armed_kind.map(|k| (u64::from(self.armed_at), k))
    }

    /// The generation a timer event must carry to be current.
    pub fn timer_generation(&self) -> u64 {
        u64::from(self.generation)
    }

    /// True once a [`DialogAction::Remove`] was returned: the module drops the dialog.
    pub fn is_removed(&self) -> bool {
        self.bit(BIT_REMOVED)
    }

    fn bit(&self, b: u8) -> bool {
        self.bits & b != 0
    }

    fn set_bit(&mut self, b: u8, on: bool) {
        if on {
            self.bits |= b;
        } else {
            self.bits &= !b;
        }
    }

    fn set_dflag(&mut self, f: u32) {
        self.dflags |= f as u16;
    }

    fn extra_mut(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }

    /// Drops the rare parts once nothing is left in them.
    fn tidy_extra(&mut self) {
        if self.extra.as_deref().is_some_and(Extra::is_empty) {
            self.extra = None;
        }
    }

    /// Sets text fields; a change that would pass the text limit is dropped (logged by the
    /// module as a bogus size; practically never: 64 KiB of identity, contacts and routes).
    fn set_text(&mut self, changes: &[(Field, Option<&str>)]) {
        let _ = self.text.set(changes);
    }

    /// The description handed to callback listeners.
    pub fn callback_info(&self, kind: CallbackKind) -> CallbackInfo {
        CallbackInfo {
            kind,
            hash: self.hash,
            id: self.id(),
            state: self.state,
            from_uri: self.from_uri().to_owned(),
            to_uri: self.to_uri().to_owned(),
            request_uri: self.request_uri().to_owned(),
            caller_contact: self.contact(Side::Caller).map(str::to_owned),
            callee_contact: self.contact(Side::Callee).map(str::to_owned),
            message_flags: self.message_flags,
        }
    }
    // ----- settings the module and the script change -----

    /// Binds the dialog to its INVITE transaction (Kamailio's `DLG_FLAG_TM`, set when tm
    /// creates the transaction): true the first time; false when it already is bound, as
    /// for the transaction of a spiraled INVITE, which the dialog does not follow.
    pub fn bind_transaction(&mut self) -> bool {
        if self.dflags() & DFLAG_TM != 0 {
            return false;
        }
        self.set_dflag(DFLAG_TM);
        true
    }

    /// Records the message flags of the INVITE (taken at creation).
    pub fn set_message_flags(&mut self, flags: u32) {
        self.message_flags = flags;
    }

    /// Sets the local socket of a side (for `dlg.list` and the BYEs the module sends).
    pub fn set_socket(&mut self, side: Side, socket: impl Into<String>) {
        let socket = socket.into();
        let field = match side {
            Side::Caller => Field::CallerSocket,
            Side::Callee => Field::CalleeSocket,
        };
        self.set_text(&[(field, Some(&socket))]);
    }

    /// `$dlg_ctx(timeout_bye)` / `send_bye`: BYE both ways when the lifetime runs out.
    pub fn set_timeout_bye(&mut self, on: bool) {
        self.set_iflag(IFLAG_TIMEOUTBYE, on);
    }

    /// `dlg_set_property("timeout-noreset")`: in-dialog requests do not restart the
    /// lifetime.
    pub fn set_timeout_noreset(&mut self, on: bool) {
        self.set_iflag(IFLAG_TIMER_NORESET, on);
    }

    /// `dlg_set_property("ka-src"/"ka-dst")`: keepalive flags (the module sends them).
    pub fn set_keepalive(&mut self, side: Side, on: bool) {
        let flag = match side {
            Side::Caller => IFLAG_KA_SRC,
            Side::Callee => IFLAG_KA_DST,
        };
        self.set_iflag(flag, on);
    }

    fn set_iflag(&mut self, flag: u32, on: bool) {
        let flag = flag as u8;
        if on {
            self.iflags |= flag;
        } else {
            self.iflags &= !flag;
        }
        self.set_dflag(DFLAG_CHANGED);
    }

    /// `$dlg_ctx(timeout_route)`: the route run when the lifetime runs out.
    pub fn set_timeout_route(&mut self, route: Option<String>) {
        match route {
            Some(r) => self.extra_mut().timeout_route = Some(r.into_boxed_str()),
            None => {
                if let Some(e) = self.extra.as_deref_mut() {
                    e.timeout_route = None;
                }
                self.tidy_extra();
            }
        }
    }

    /// `timeout_avp` / `dlg_set_timeout(seconds)`: the lifetime. In states 3 and 4 the
    /// timer restarts now with it (Kamailio's `update_dlg_timeout`); in 1 and 2 it applies
    /// from the 2xx; in 5 it is only recorded.
    pub fn set_timeout(&mut self, seconds: u32, now: u64, cfg: &DialogConfig) -> Vec<DialogAction> {
        self.lifetime = seconds;
        self.set_dflag(DFLAG_CHANGED);
        let mut actions = Vec::new();
        if self.state.is_confirmed() && !self.bit(BIT_BYE_SENT) {
            self.timeout_at = secs(now.saturating_add(u64::from(seconds)));
            self.rearm(cfg, &mut actions);
        }
        actions
    }

    /// `dlg_setflag(n)`.
    pub fn set_flag(&mut self, n: u32) -> Result<(), DialogError> {
        self.sflags |= flag_bit(n)?;
        self.set_dflag(DFLAG_CHANGED);
        Ok(())
    }

    /// `dlg_resetflag(n)`.
    pub fn reset_flag(&mut self, n: u32) -> Result<(), DialogError> {
        self.sflags &= !flag_bit(n)?;
        self.set_dflag(DFLAG_CHANGED);
        Ok(())
    }

    /// `dlg_isflagset(n)`.
    pub fn is_flag_set(&self, n: u32) -> Result<bool, DialogError> {
        Ok(self.sflags & flag_bit(n)? != 0)
    }

    /// `$dlg_var(name) = value`; `None` (`$null`) deletes. A new name goes first in
    /// Kamailio's list; an existing one keeps its place.
    pub fn set_var(&mut self, name: &str, value: Option<&str>) {
        let at = self
            .extra
            .as_deref()
            .and_then(|e| e.vars.iter().position(|(n, _)| &**n == name));
        match (at, value) {
            (Some(i), Some(v)) => {
                if let Some(slot) = self.extra_mut().vars.get_mut(i) {
                    slot.1 = v.into();
                }
            }
            (Some(i), None) => {
                let vars = &mut self.extra_mut().vars;
                vars.remove(i);
                vars.shrink_to_fit();
                self.tidy_extra();
            }
            (None, Some(v)) => {
                let vars = &mut self.extra_mut().vars;
                vars.reserve_exact(1);
                vars.push((name.into(), v.into()));
            }
            (None, None) => return,
        }
        self.set_dflag(DFLAG_CHANGED_VARS);
    }

    /// `$dlg_var(name)`.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.extra
            .as_deref()?
            .vars
            .iter()
            .find(|(n, _)| &**n == name)
            .map(|(_, v)| &**v)
    }

    /// The variables in Kamailio's list order (most recently created first), as `dlg.list`
    /// prints them.
    pub fn vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.extra
            .as_deref()
            .map(|e| e.vars.as_slice())
            .unwrap_or_default()
            .iter()
            .rev()
            .map(|(n, v)| (&**n, &**v))
    }

    /// The profile memberships, most recent first (Kamailio's list order).
    pub fn profiles(&self) -> impl Iterator<Item = &ProfileLink> {
        self.links().iter().rev()
    }

    fn links(&self) -> &[ProfileLink] {
        self.extra
            .as_deref()
            .map(|e| e.profiles.as_slice())
            .unwrap_or_default()
    }

    /// `is_in_profile(profile[, value])`: without a value, any membership of the profile.
    pub fn is_in_profile(&self, profile: &str, value: Option<&str>) -> bool {
        self.links()
            .iter()
            .any(|l| l.profile == profile && value.is_none_or(|v| l.value.as_deref() == Some(v)))
    }

    pub(crate) fn push_profile(&mut self, link: ProfileLink) {
        let profiles = &mut self.extra_mut().profiles;
        profiles.reserve_exact(1);
        profiles.push(link);
    }

    pub(crate) fn remove_profile(&mut self, link: &ProfileLink) -> bool {
        let found = self.links().iter().rposition(|l| {
            l.profile == link.profile && (link.value.is_none() || l.value == link.value)
        });
        match found {
            Some(i) => {
                let profiles = &mut self.extra_mut().profiles;
                profiles.remove(i);
                profiles.shrink_to_fit();
                self.tidy_extra();
                true
            }
            None => false,
        }
    }

    // ----- events -----

    /// Applies one event; returns what the module must do, in order.
    pub fn handle(
        &mut self,
        event: DialogEvent,
        now: u64,
        cfg: &DialogConfig,
    ) -> Vec<DialogAction> {
        let mut actions = Vec::new();
        match event {
            DialogEvent::Reply(reply) => self.reply(reply, now, &mut actions),
            DialogEvent::TransactionDeleted => self.transaction_deleted(now, &mut actions),
            DialogEvent::Request(req) => self.request(req, now, cfg, &mut actions),
            DialogEvent::Retransmission => return actions,
            DialogEvent::Timer { generation } => {
                return self.timer(generation, now, cfg);
            }
            DialogEvent::LocalByeDone => {
                if self.state.is_confirmed() {
                    self.end(now);
                    actions.push(DialogAction::Ended {
                        reason: EndReason::LocalBye,
                    });
                    self.leave_profiles(&mut actions);
                }
            }
        }
        self.rearm(cfg, &mut actions);
        actions
    }

    /// A reply to the INVITE, relayed upstream (parsed from `msg`).
    pub fn on_reply(
        &mut self,
        msg: &Message<'_>,
        own_record_routes: usize,
        now: u64,
        cfg: &DialogConfig,
    ) -> Result<Vec<DialogAction>, DialogError> {
        let reply = Reply::from_message(msg, own_record_routes)?;
        Ok(self.handle(DialogEvent::Reply(reply), now, cfg))
    }

    /// An in-dialog request matched in `direction` (parsed from `msg`).
    pub fn on_request(
        &mut self,
        msg: &Message<'_>,
        direction: Direction,
        now: u64,
        cfg: &DialogConfig,
    ) -> Result<Vec<DialogAction>, DialogError> {
        let req = InDialogRequest::from_message(msg, direction)?;
        Ok(self.handle(DialogEvent::Request(req), now, cfg))
    }

    /// The timer fired (`generation` from [`DialogAction::ScheduleTimeout`]). Stale
    /// generations are ignored (empty result).
    pub fn on_timer(&mut self, now: u64, generation: u64, cfg: &DialogConfig) -> Vec<DialogAction> {
        self.handle(DialogEvent::Timer { generation }, now, cfg)
    }

    fn bogus(&self, event: EventKind, actions: &mut Vec<DialogAction>) {
        actions.push(DialogAction::Bogus {
            event,
            state: self.state,
        });
    }

    fn reply(&mut self, reply: Reply, now: u64, actions: &mut Vec<DialogAction>) {
        let event = match reply.code {
            101..=199 => EventKind::Reply1xx,
            200..=299 => EventKind::Reply2xx,
            300.. => EventKind::ReplyNegative,
            // 100 is never relayed; below 100 is not a status.
            _ => return,
        };
        let old = self.state;
        match next_state(old, event, self.dflags() & DFLAG_HASBYE != 0) {
            Step::Bogus => self.bogus(event, actions),
            Step::Stay => {
                if event == EventKind::Reply1xx {
                    actions.push(DialogAction::Early {
                        code: reply.code,
                        first: false,
                    });
                }
            }
            Step::To(new) => {
                self.state = new;
                self.set_dflag(DFLAG_CHANGED);
                match new {
                    DialogState::Early => actions.push(DialogAction::Early {
                        code: reply.code,
                        first: true,
                    }),
                    DialogState::ConfirmedNotAcked => {
                        self.confirm(reply, now);
                        actions.push(DialogAction::Started {
                            revived: old == DialogState::Deleted,
                            was_early: old == DialogState::Early,
                        });
                    }
                    _ => {
                        self.end_ts = secs(now);
                        actions.push(DialogAction::Failed {
                            code: Some(reply.code),
                            was_early: old == DialogState::Early,
                        });
                        self.leave_profiles(actions);
                    }
                }
            }
        }
    }

    /// The callee's side from the 2xx (RFC 3261 §12.1.2: the route set is the reply's
    /// Record-Route in reverse order; here only the entries above the proxy's own and the
    /// caller's, which were in the INVITE), and the lifetime timer.
    fn confirm(&mut self, reply: Reply, now: u64) {
        let skip = usize::from(self.caller_rr_count).saturating_add(reply.own_record_routes);
        let keep = reply.record_routes.len().saturating_sub(skip);
        let mut route_set = reply.record_routes;
        route_set.truncate(keep);
        route_set.reverse();
        let routes = Text::join_routes(&route_set);
        let tag = reply.to_tag.filter(|t| !t.is_empty());
        let mut changes = vec![
            (Field::CalleeContact, reply.contact.as_deref()),
            (Field::CalleeRoutes, routes.as_deref()),
        ];
        if let Some(tag) = &tag {
            changes.push((Field::ToTag, Some(tag.as_str())));
        }
        self.set_text(&changes);
        self.start_ts = secs(now);
        self.end_ts = 0;
        self.timeout_at = secs(now.saturating_add(u64::from(self.lifetime)));
        self.set_bit(BIT_NOACK_APPLIED, false);
        self.set_bit(BIT_BYE_SENT, false);
    }

    fn transaction_deleted(&mut self, now: u64, actions: &mut Vec<DialogAction>) {
        let old = self.state;
        if let Step::To(new) = next_state(old, EventKind::TransactionDeleted, false) {
            self.state = new;
            self.end_ts = secs(now);
            actions.push(DialogAction::Failed {
                code: None,
                was_early: old == DialogState::Early,
            });
            self.leave_profiles(actions);
        }
    }

    fn request(
        &mut self,
        req: InDialogRequest,
        now: u64,
        cfg: &DialogConfig,
        actions: &mut Vec<DialogAction>,
    ) {
        let event = match req.kind {
            RequestKind::Ack => EventKind::Ack,
            RequestKind::Bye => EventKind::Bye,
            RequestKind::Prack => EventKind::Prack,
            RequestKind::Other => EventKind::Request,
        };
        let old = self.state;
        let step = next_state(old, event, self.dflags() & DFLAG_HASBYE != 0);
        if step == Step::Bogus {
            self.bogus(event, actions);
            return;
        }
        if let Step::To(new) = step {
            self.state = new;
            self.set_dflag(DFLAG_CHANGED);
        }
        let new = self.state;
        if event == EventKind::Bye && new == DialogState::Deleted && old != new {
            self.set_dflag(match req.direction {
                Direction::Downstream => DFLAG_CALLERBYE,
                Direction::Upstream => DFLAG_CALLEEBYE,
            });
            self.end(now);
            actions.push(DialogAction::Ended {
                reason: EndReason::Bye(req.direction),
            });
            self.leave_profiles(actions);
            return;
        }
        if new == DialogState::Confirmed && old == DialogState::ConfirmedNotAcked {
            actions.push(DialogAction::Confirmed);
        }
        // Kamailio's dlg_onroute: only ACK and other requests, only in states 2 and 4.
        let within = matches!(event, EventKind::Ack | EventKind::Request)
            && matches!(new, DialogState::Confirmed | DialogState::Early);
        if !within {
            return;
        }
        let reset = self.iflags() & IFLAG_TIMER_NORESET == 0 && !cfg.timeout_noreset;
        if new == DialogState::Confirmed
            && (old != DialogState::Confirmed || reset)
            && self.timeout_at != 0
        {
            self.timeout_at = secs(now.saturating_add(u64::from(self.lifetime)));
        }
        if event == EventKind::Request {
            let sender = req.direction.sender();
            match sender {
                Side::Caller => self.caller_cseq = req.cseq,
                Side::Callee => self.callee_cseq = req.cseq,
            }
            if let Some(target) = req.refresh_target {
                self.set_contact(sender, &target);
            }
            self.set_dflag(DFLAG_CHANGED);
        }
        actions.push(DialogAction::RequestWithin {
            direction: req.direction,
        });
    }

    /// A 2xx to an in-dialog INVITE or UPDATE refreshes the answering side's target
    /// (RFC 3261 §12.2.1.2). `request_direction` is the direction of the request it
    /// answers.
    pub fn on_within_reply(
        &mut self,
        msg: &Message<'_>,
        request_direction: Direction,
    ) -> Result<(), DialogError> {
        let Some(code) = msg.status_code() else {
            return Err(DialogError::NotAResponse);
        };
        let method = msg.cseq().map_err(DialogError::bad("CSeq"))?.method;
        if (200..300).contains(&code) && matches!(method, Method::Invite | Method::Update) {
            if let Some(target) = first_contact(msg)? {
                self.set_contact(request_direction.sender().other(), &target);
                self.set_dflag(DFLAG_CHANGED);
            }
        }
        Ok(())
    }

    fn set_contact(&mut self, side: Side, target: &str) {
        let field = match side {
            Side::Caller => Field::CallerContact,
            Side::Callee => Field::CalleeContact,
        };
        self.set_text(&[(field, Some(target))]);
    }

    fn end(&mut self, now: u64) {
        self.state = DialogState::Deleted;
        self.set_dflag(DFLAG_HASBYE | DFLAG_CHANGED);
        self.end_ts = secs(now);
        self.timeout_at = 0;
    }

    fn leave_profiles(&mut self, actions: &mut Vec<DialogAction>) {
        let Some(extra) = self.extra.as_deref_mut() else {
            return;
        };
        if !extra.profiles.is_empty() {
            let mut links = std::mem::take(&mut extra.profiles);
            links.reverse();
            actions.push(DialogAction::LeftProfiles { links });
            self.tidy_extra();
        }
    }

    fn timer(&mut self, generation: u64, now: u64, cfg: &DialogConfig) -> Vec<DialogAction> {
        let mut actions = Vec::new();
        let Some((at, kind)) = self.deadline() else {
            return actions;
        };
        if generation != u64::from(self.generation) {
            return actions;
        }
        if now < at {
            // Fired early: the same deadline stays current.
            actions.push(DialogAction::ScheduleTimeout { at, generation });
            return actions;
        }
        self.armed_kind = None;
        match kind {
            TimerKind::Early => {
                self.state = DialogState::Deleted;
                self.end_ts = secs(now);
                self.leave_profiles(&mut actions);
                self.set_bit(BIT_REMOVED, true);
                actions.push(DialogAction::Remove {
                    reason: RemoveReason::EarlyTimeout,
                });
            }
            TimerKind::End => {
                self.leave_profiles(&mut actions);
                self.set_bit(BIT_REMOVED, true);
                actions.push(DialogAction::Remove {
                    reason: RemoveReason::EndTimeout,
                });
            }
            TimerKind::NoAck => {
                self.set_bit(BIT_NOACK_APPLIED, true);
                self.timeout_at = secs(now.saturating_add(NOACK_GRACE));
                self.set_dflag(DFLAG_CHANGED);
            }
            TimerKind::Lifetime => self.expire(now, &mut actions),
        }
        self.rearm(cfg, &mut actions);
        actions
    }

    /// The lifetime ran out in state 3 or 4 (Kamailio's `dlg_ontimeout`).
    fn expire(&mut self, now: u64, actions: &mut Vec<DialogAction>) {
        self.timeout_at = 0;
        if let Some(route) = self.timeout_route() {
            actions.push(DialogAction::TimeoutRoute {
                route: route.to_owned(),
            });
        }
        if self.iflags() & IFLAG_TIMEOUTBYE != 0 {
            // The dialog ends when the BYEs are answered (LocalByeDone).
            self.set_bit(BIT_BYE_SENT, true);
            actions.push(DialogAction::SendBye { side: Side::Caller });
            actions.push(DialogAction::SendBye { side: Side::Callee });
            return;
        }
        match next_state(self.state, EventKind::Timeout, false) {
            Step::To(_) => {
                self.end(now);
                actions.push(DialogAction::Expired);
                self.leave_profiles(actions);
            }
            Step::Stay | Step::Bogus => {}
        }
    }

    /// `dlg_bye("caller"|"callee"|"all")`, `dlg.end_dlg`, `dlg.terminate_dlg`: BYEs to
    /// send. Only a confirmed dialog (3 or 4) can be ended this way.
    pub fn terminate(&mut self, sides: &[Side]) -> Result<Vec<DialogAction>, DialogError> {
        if !self.state.is_confirmed() {
            return Err(DialogError::NotConfirmed(self.state));
        }
        Ok(sides
            .iter()
            .map(|&side| DialogAction::SendBye { side })
            .collect())
    }

    /// Keepalives (`dlg_set_property("ka-src"|"ka-dst")`, module parameters `ka_timer`
    /// and `ka_interval`): the sides to send an in-dialog OPTIONS to at `now`
    /// ([`Dialog::build_request_with`]), `[caller, callee]`. Only a confirmed, acknowledged
    /// dialog (state 4) is probed; the first probe goes `interval` seconds after the 2xx,
    /// the next ones `interval` seconds after the previous. Each side answers through
    /// [`Dialog::on_keepalive_reply`].
    pub fn keepalives_due(&mut self, now: u64, interval: u32) -> [bool; 2] {
        let wanted = [
            self.iflags() & IFLAG_KA_SRC != 0,
            self.iflags() & IFLAG_KA_DST != 0,
        ];
        if self.state != DialogState::Confirmed
            || wanted == [false, false]
            || interval == 0
            || self.bit(BIT_BYE_SENT)
        {
            return [false, false];
        }
        let start = self.start_ts();
        let extra = self.extra_mut();
        if extra.ka_next == 0 {
            extra.ka_next = secs(start.saturating_add(u64::from(interval)));
        }
        if now < u64::from(extra.ka_next) {
            return [false, false];
        }
        extra.ka_next = secs(now.saturating_add(u64::from(interval)));
        wanted
    }

    /// The final reply to a keepalive OPTIONS sent to `side` (a local timeout is 408).
    /// 408 and 481 are failures; after `failed_limit` of them in a row (module parameter
    /// `ka_failed_limit`, at least 1) the dialog's lifetime becomes 10 seconds from now
    /// (then it times out as any dialog: BYEs with `send_bye`, else expired). Any other
    /// reply, error or not, clears the count.
    pub fn on_keepalive_reply(
        &mut self,
        side: Side,
        code: u16,
        now: u64,
        failed_limit: u32,
        cfg: &DialogConfig,
    ) -> Vec<DialogAction> {
        let mut actions = Vec::new();
        let i = match side {
            Side::Caller => 0,
            Side::Callee => 1,
        };
        if code != 408 && code != 481 {
            if let Some(e) = self.extra.as_deref_mut() {
                if let Some(n) = e.ka_failed.get_mut(i) {
                    *n = 0;
                }
            }
            return actions;
        }
        let failed = {
            let e = self.extra_mut();
            match e.ka_failed.get_mut(i) {
                Some(n) => {
                    *n = n.saturating_add(1);
                    u32::from(*n)
                }
                None => 0,
            }
        };
        if failed >= failed_limit.max(1) && self.state.is_confirmed() && !self.bit(BIT_BYE_SENT) {
            self.lifetime = KEEPALIVE_GRACE;
            self.timeout_at = secs(now.saturating_add(u64::from(KEEPALIVE_GRACE)));
            self.set_dflag(DFLAG_CHANGED);
            self.rearm(cfg, &mut actions);
        }
        actions
    }

    /// The deadline the state calls for.
    fn wanted_deadline(&self, cfg: &DialogConfig) -> Option<(u64, TimerKind)> {
        if self.is_removed() {
            return None;
        }
        let after = |t: u64, secs: u32| t.saturating_add(u64::from(secs));
        match self.state {
            DialogState::Unconfirmed | DialogState::Early => {
                Some((after(self.init_ts(), cfg.early_timeout), TimerKind::Early))
            }
            DialogState::ConfirmedNotAcked => {
                let lifetime = self.timeout_at().map(|t| (t, TimerKind::Lifetime));
                let noack = (!self.bit(BIT_NOACK_APPLIED) && !self.bit(BIT_BYE_SENT))
                    .then(|| (after(self.start_ts(), cfg.noack_timeout), TimerKind::NoAck));
                match (lifetime, noack) {
                    (Some(l), Some(n)) => Some(if n.0 < l.0 { n } else { l }),
                    (l, n) => l.or(n),
                }
            }
            DialogState::Confirmed => self.timeout_at().map(|t| (t, TimerKind::Lifetime)),
            DialogState::Deleted => Some((after(self.end_ts(), cfg.end_timeout), TimerKind::End)),
        }
    }

    /// Re-arms the timer when the deadline changed: a new generation makes the pending timer
    /// event stale.
    fn rearm(&mut self, cfg: &DialogConfig, actions: &mut Vec<DialogAction>) {
        // Deadlines are stored as 32-bit seconds: compare what would be stored.
        let wanted = self
            .wanted_deadline(cfg)
            .map(|(at, kind)| (u64::from(secs(at)), kind));
        if wanted == self.deadline() {
            return;
        }
        self.armed_kind = wanted.map(|(_, kind)| kind);
        self.armed_at = wanted.map_or(0, |(at, _)| secs(at));
        self.generation = self.generation.wrapping_add(1);
        if let Some((at, _)) = wanted {
            actions.push(DialogAction::ScheduleTimeout {
                at,
                generation: u64::from(self.generation),
            });
        }
    }

    // ----- requests the module sends -----

    /// A BYE to `side` over UDP (see [`Dialog::build_bye_with`]).
    pub fn build_bye(
        &self,
        side: Side,
        via_host_port: &str,
        branch: &str,
    ) -> Result<Vec<u8>, DialogError> {
        self.build_bye_with(
            side,
            &ByeParams {
                transport: "UDP",
                via_host_port,
                branch,
                extra_headers: "",
                cseq_skip: 0,
            },
        )
    }

    /// A BYE to `side`, built as a UAC inside the dialog builds it (RFC 3261 §12.2.1.1,
    /// §15.1.1), the proxy speaking for the other side:
    ///
    /// - Request-URI: the side's remote target (its Contact), and Route: the route set
    ///   towards it, when the first hop is a loose router (`;lr`); otherwise (a strict
    ///   router) the Request-URI is the first hop and the remote target goes last in Route.
    /// - From: the other side's URI and tag; To: this side's URI and tag; the Call-ID.
    /// - CSeq: the last number the other side used + 1 (the callee's starts at 0).
    /// - One Via with the given sent-by and branch, Max-Forwards 70, the extra headers
    ///   (`dlg_extra_hdrs`, a `Reason`...), Content-Length 0.
    pub fn build_bye_with(&self, side: Side, p: &ByeParams<'_>) -> Result<Vec<u8>, DialogError> {
        self.build_request_with("BYE", side, p, "")
    }

    /// Any request inside the dialog to `side`, built as [`Dialog::build_bye_with`] builds
    /// the BYE (the keepalive OPTIONS, the REFER of `dlg_refer()`): `method`, then
    /// `extra_headers` (CRLF-separated lines) after those of `p`. No body.
    pub fn build_request_with(
        &self,
        method: &str,
        side: Side,
        p: &ByeParams<'_>,
        extra_headers: &str,
    ) -> Result<Vec<u8>, DialogError> {
        let other = side.other();
        let target = self
            .contact(side)
            .ok_or(DialogError::NoRemoteTarget(side))?;
        let mut route_set = self.route_set(side).peekable();
        let (ruri, routes): (String, Vec<String>) = match route_set.peek() {
            Some(first) if !is_loose(first) => {
                let uri = NameAddr::parse(first.as_bytes())
                    .map(|a| lossy(a.uri.as_bytes()))
                    .unwrap_or_else(|_| (*first).to_owned());
                let mut r: Vec<String> = route_set.skip(1).map(str::to_owned).collect();
                r.push(format!("<{target}>"));
                (uri, r)
            }
            _ => (target.to_owned(), route_set.map(str::to_owned).collect()),
        };
        let (local_uri, remote_uri) = match side {
            Side::Callee => (self.from_uri(), self.to_uri()),
            Side::Caller => (self.to_uri(), self.from_uri()),
        };
        let mut out = Vec::with_capacity(512);
        let mut line = |s: &str| {
            out.extend_from_slice(s.as_bytes());
            out.extend_from_slice(b"\r\n");
        };
        line(&format!("{method} {ruri} SIP/2.0"));
        line(&format!(
            "Via: SIP/2.0/{} {};branch={}",
            p.transport, p.via_host_port, p.branch
        ));
        if !routes.is_empty() {
            line(&format!("Route: {}", routes.join(", ")));
        }
        line("Max-Forwards: 70");
        line(&tagged("From", local_uri, self.tag(other)));
        line(&tagged("To", remote_uri, self.tag(side)));
        line(&format!("Call-ID: {}", self.call_id()));
        line(&format!(
            "CSeq: {} {method}",
            self.cseq(other).wrapping_add(1).wrapping_add(p.cseq_skip)
        ));
        for h in p
            .extra_headers
            .split("\r\n")
            .chain(extra_headers.split("\r\n"))
            .filter(|h| !h.trim().is_empty())
        {
            line(h);
        }
        line("Content-Length: 0");
        out.extend_from_slice(b"\r\n");
        Ok(out)
    }
}

/// How a BYE the module sends is addressed on our side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByeParams<'a> {
    /// The Via transport (`UDP`, `TCP`, `TLS`...).
    pub transport: &'a str,
    /// The Via sent-by: our address and port.
    pub via_host_port: &'a str,
    /// The branch (`z9hG4bK...`, unique per transaction, RFC 3261 §8.1.1.7).
    pub branch: &'a str,
    /// Header lines to add, separated by CRLF (`Reason: ...`).
    pub extra_headers: &'a str,
    /// CSeq numbers to leave out before this request's (0: the side's CSeq plus one; 1 for
    /// the BYE that follows `dlg_refer()`'s REFER).
    pub cseq_skip: u32,
}

fn tagged(name: &str, uri: &str, tag: Option<&str>) -> String {
    match tag {
        Some(t) => format!("{name}: <{uri}>;tag={t}"),
        None => format!("{name}: <{uri}>"),
    }
}

fn flag_bit(n: u32) -> Result<u32, DialogError> {
    if n < 32 {
        Ok(1 << n)
    } else {
        Err(DialogError::FlagOutOfRange(n))
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The URI of the first Contact of a message, if any.
fn first_contact(msg: &Message<'_>) -> Result<Option<String>, DialogError> {
    if msg.header(HeaderName::Contact).is_none() {
        return Ok(None);
    }
    let contacts = msg.contacts().map_err(DialogError::bad("Contact"))?;
    Ok(contacts
        .iter()
        .find_map(|c| c.address())
        .map(|a| lossy(a.uri.as_bytes())))
}

/// Every Record-Route value of a message, top first, as written.
fn record_routes(msg: &Message<'_>) -> Vec<String> {
    msg.headers_named(HeaderName::RecordRoute)
        .map(|h| lossy(msg.value(h)))
        .collect()
}

/// Whether a route-set entry is a loose router (`;lr` in its URI).
fn is_loose(entry: &str) -> bool {
    NameAddr::parse(entry.as_bytes())
        .ok()
        .and_then(|a| a.uri.as_sip().map(|u| u.lr()))
        .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{is_spiral, match_request, MatchMode, RequestKeys};
    use crate::profile::Profiles;
    use proptest::prelude::*;

    const CALL_ID: &str = "call-1@192.0.2.10";
    const T0: u64 = 1_700_000_000;

    /// The INVITE as it reaches this proxy (proxy.example.com): it went through
    /// edge.example.net, which record-routed.
    fn invite() -> String {
        format!(
            "INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKedge1\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKa1\r\n\
Record-Route: <sip:edge.example.net;lr>\r\n\
Max-Forwards: 69\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=ft1\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: {CALL_ID}\r\n\
CSeq: 10 INVITE\r\n\
Contact: <sip:alice@192.0.2.10:5060>\r\n\
Content-Length: 0\r\n\r\n"
        )
    }

    /// A reply to the INVITE. Beyond this proxy it went through core1 (near) and core2
    /// (far), which record-routed: the Record-Route list is core2, core1, us, edge.
    fn reply(code: u16, to_tag: Option<&str>) -> String {
        let tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
        format!(
            "SIP/2.0 {code} Whatever\r\n\
Via: SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKedge1\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKa1\r\n\
Record-Route: <sip:core2.example.org;lr>, <sip:core1.example.org;lr>\r\n\
Record-Route: <sip:proxy.example.com;lr;did=5.1>\r\n\
Record-Route: <sip:edge.example.net;lr>\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=ft1\r\n\
To: <sip:bob@example.com>{tag}\r\n\
Call-ID: {CALL_ID}\r\n\
CSeq: 10 INVITE\r\n\
Contact: <sip:bob@192.0.2.20:5060>\r\n\
Content-Length: 0\r\n\r\n"
        )
    }

    /// An in-dialog request; downstream requests come from Alice (From tag ft1).
    fn request(method: &str, dir: Direction, cseq: u32, contact: Option<&str>) -> String {
        let (from, to, ruri) = match dir {
            Direction::Downstream => (
                "<sip:alice@example.com>;tag=ft1",
                "<sip:bob@example.com>;tag=tt1",
                "sip:bob@192.0.2.20:5060",
            ),
            Direction::Upstream => (
                "<sip:bob@example.com>;tag=tt1",
                "<sip:alice@example.com>;tag=ft1",
                "sip:alice@192.0.2.10:5060",
            ),
        };
        let contact = contact
            .map(|c| format!("Contact: <{c}>\r\n"))
            .unwrap_or_default();
        format!(
            "{method} {ruri} SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.99;branch=z9hG4bKr{cseq}\r\n\
Route: <sip:proxy.example.com;lr;did=5.1>\r\n\
Max-Forwards: 70\r\n\
From: {from}\r\n\
To: {to}\r\n\
Call-ID: {CALL_ID}\r\n\
CSeq: {cseq} {method}\r\n\
{contact}Content-Length: 0\r\n\r\n"
        )
    }

    fn cfg() -> DialogConfig {
        DialogConfig::default()
    }

    fn new_dialog(now: u64, cfg: &DialogConfig) -> (Dialog, Vec<DialogAction>) {
        let inv = invite();
        let m = Message::parse(inv.as_bytes()).unwrap();
        Dialog::from_invite(HashId(5, 1), &m, now, cfg).unwrap()
    }

    fn on_reply(
        d: &mut Dialog,
        code: u16,
        tag: Option<&str>,
        now: u64,
        cfg: &DialogConfig,
    ) -> Vec<DialogAction> {
        let r = reply(code, tag);
        d.on_reply(&Message::parse(r.as_bytes()).unwrap(), 1, now, cfg)
            .unwrap()
    }

    fn on_req(
        d: &mut Dialog,
        method: &str,
        dir: Direction,
        cseq: u32,
        contact: Option<&str>,
        now: u64,
        cfg: &DialogConfig,
    ) -> Vec<DialogAction> {
        let r = request(method, dir, cseq, contact);
        d.on_request(&Message::parse(r.as_bytes()).unwrap(), dir, now, cfg)
            .unwrap()
    }

    fn schedules(actions: &[DialogAction]) -> Vec<u64> {
        actions
            .iter()
            .filter_map(|a| match a {
                DialogAction::ScheduleTimeout { at, .. } => Some(*at),
                _ => None,
            })
            .collect()
    }

    fn without_schedules(actions: Vec<DialogAction>) -> Vec<DialogAction> {
        actions
            .into_iter()
            .filter(|a| !matches!(a, DialogAction::ScheduleTimeout { .. }))
            .collect()
    }

    /// Fires the current timer at its deadline.
    fn fire(d: &mut Dialog, cfg: &DialogConfig) -> (u64, Vec<DialogAction>) {
        let (at, _) = d.deadline().unwrap();
        let generation = d.timer_generation();
        (at, d.on_timer(at, generation, cfg))
    }

    /// INVITE, 180, 200, ACK: a dialog in state 4.
    fn confirmed(cfg: &DialogConfig) -> Dialog {
        let (mut d, _) = new_dialog(T0, cfg);
        on_reply(&mut d, 180, Some("tt1"), T0 + 1, cfg);
        on_reply(&mut d, 200, Some("tt1"), T0 + 5, cfg);
        on_req(&mut d, "ACK", Direction::Downstream, 10, None, T0 + 6, cfg);
        assert_eq!(d.state(), DialogState::Confirmed);
        d
    }

    #[test]
    fn invite_creates_unconfirmed_dialog_with_caller_side() {
        let cfg = cfg();
        let (d, actions) = new_dialog(T0, &cfg);
        assert_eq!(d.state(), DialogState::Unconfirmed);
        assert_eq!(d.hash(), HashId(5, 1));
        assert_eq!(
            d.id(),
            DialogId {
                call_id: CALL_ID.into(),
                from_tag: "ft1".into(),
                to_tag: None
            }
        );
        assert_eq!(d.from_uri(), "sip:alice@example.com");
        assert_eq!(d.to_uri(), "sip:bob@example.com");
        assert_eq!(d.request_uri(), "sip:bob@example.com");
        let caller = d.leg(Side::Caller);
        assert_eq!(caller.tag.as_deref(), Some("ft1"));
        assert_eq!(caller.contact.as_deref(), Some("sip:alice@192.0.2.10:5060"));
        assert_eq!(caller.cseq, 10);
        assert_eq!(caller.route_set, vec!["<sip:edge.example.net;lr>"]);
        assert_eq!(d.leg(Side::Callee), Leg::default());
        assert_eq!(d.lifetime(), 43200);
        assert_eq!(d.init_ts(), T0);
        // The early_timeout deadline.
        assert_eq!(schedules(&actions), vec![T0 + 300]);
        assert_eq!(d.deadline(), Some((T0 + 300, TimerKind::Early)));
    }

    #[test]
    fn only_an_initial_invite_with_from_tag_creates_a_dialog() {
        let cfg = cfg();
        let bye = request("BYE", Direction::Downstream, 11, None);
        let m = Message::parse(bye.as_bytes()).unwrap();
        assert_eq!(
            Dialog::from_invite(HashId(0, 0), &m, T0, &cfg).err(),
            Some(DialogError::NotInvite)
        );
        let r = reply(200, Some("x"));
        let m = Message::parse(r.as_bytes()).unwrap();
        assert_eq!(
            Dialog::from_invite(HashId(0, 0), &m, T0, &cfg).err(),
            Some(DialogError::NotARequest)
        );
        let no_tag = invite().replace(";tag=ft1", "");
        let m = Message::parse(no_tag.as_bytes()).unwrap();
        assert_eq!(
            Dialog::from_invite(HashId(0, 0), &m, T0, &cfg).err(),
            Some(DialogError::MissingFromTag)
        );
        let with_to_tag = invite().replace(
            "To: <sip:bob@example.com>",
            "To: <sip:bob@example.com>;tag=zz",
        );
        let m = Message::parse(with_to_tag.as_bytes()).unwrap();
        assert_eq!(
            Dialog::from_invite(HashId(0, 0), &m, T0, &cfg).err(),
            Some(DialogError::HasToTag)
        );
    }

    #[test]
    fn answered_call_invite_180_200_ack_bye() {
        let cfg = cfg();
        let (mut d, _) = new_dialog(T0, &cfg);
        // 100 Trying is never relayed: ignored.
        assert!(on_reply(&mut d, 100, None, T0, &cfg).is_empty());
        assert_eq!(d.state(), DialogState::Unconfirmed);

        let a = on_reply(&mut d, 180, Some("tt1"), T0 + 1, &cfg);
        assert_eq!(
            a,
            vec![DialogAction::Early {
                code: 180,
                first: true
            }]
        );
        assert_eq!(d.state(), DialogState::Early);
        // Every 1xx fires DLGCB_EARLY again.
        let a = on_reply(&mut d, 183, Some("tt1"), T0 + 2, &cfg);
        assert_eq!(
            a,
            vec![DialogAction::Early {
                code: 183,
                first: false
            }]
        );
        assert_eq!(
            a.first().and_then(DialogAction::callback),
            Some(CallbackKind::Early)
        );

        let a = on_reply(&mut d, 200, Some("tt1"), T0 + 5, &cfg);
        assert_eq!(
            a,
            vec![
                DialogAction::Started {
                    revived: false,
                    was_early: true
                },
                // noack_timeout comes before the lifetime.
                DialogAction::ScheduleTimeout {
                    at: T0 + 5 + 60,
                    generation: 2
                },
            ]
        );
        assert_eq!(
            a.first().and_then(DialogAction::event_route),
            Some("dialog:start")
        );
        assert_eq!(
            a.first().and_then(DialogAction::callback),
            Some(CallbackKind::ConfirmedNotAcked)
        );
        assert_eq!(d.state(), DialogState::ConfirmedNotAcked);
        assert_eq!(d.id().to_tag.as_deref(), Some("tt1"));
        assert_eq!(d.start_ts(), T0 + 5);
        assert_eq!(d.timeout_at(), Some(T0 + 5 + 43200));
        let callee = d.leg(Side::Callee);
        assert_eq!(callee.tag.as_deref(), Some("tt1"));
        assert_eq!(callee.contact.as_deref(), Some("sip:bob@192.0.2.20:5060"));
        assert_eq!(callee.cseq, 0);
        // RFC 3261 §12.1.2: reversed; our own and the caller-side entries left out.
        assert_eq!(
            callee.route_set,
            vec!["<sip:core1.example.org;lr>", "<sip:core2.example.org;lr>"]
        );

        let a = on_req(&mut d, "ACK", Direction::Downstream, 10, None, T0 + 6, &cfg);
        assert_eq!(
            a,
            vec![
                DialogAction::Confirmed,
                DialogAction::RequestWithin {
                    direction: Direction::Downstream
                },
                DialogAction::ScheduleTimeout {
                    at: T0 + 6 + 43200,
                    generation: 3
                },
            ]
        );
        assert_eq!(
            a.first().and_then(DialogAction::callback),
            Some(CallbackKind::Confirmed)
        );
        assert_eq!(d.state(), DialogState::Confirmed);

        let mut profiles = Profiles::from_params("calls", "").unwrap();
        profiles
            .set(&mut d, ProfileLink::new("calls", None))
            .unwrap();
        let a = on_req(&mut d, "BYE", Direction::Upstream, 1, None, T0 + 60, &cfg);
        assert_eq!(
            a,
            vec![
                DialogAction::Ended {
                    reason: EndReason::Bye(Direction::Upstream)
                },
                DialogAction::LeftProfiles {
                    links: vec![ProfileLink::new("calls", None)]
                },
                DialogAction::ScheduleTimeout {
                    at: T0 + 60 + 300,
                    generation: 4
                },
            ]
        );
        assert_eq!(
            a.first().and_then(DialogAction::event_route),
            Some("dialog:end")
        );
        assert_eq!(
            a.first().and_then(DialogAction::callback),
            Some(CallbackKind::Terminated)
        );
        assert_eq!(d.state(), DialogState::Deleted);
        assert_eq!(d.end_ts(), T0 + 60);
        assert_eq!(d.timeout_at(), None);
        assert_ne!(d.dflags() & DFLAG_HASBYE, 0);
        assert_ne!(d.dflags() & DFLAG_CALLEEBYE, 0);
        assert_eq!(d.dflags() & DFLAG_CALLERBYE, 0);
        // A retransmitted BYE changes nothing.
        assert!(without_schedules(on_req(
            &mut d,
            "BYE",
            Direction::Upstream,
            1,
            None,
            T0 + 61,
            &cfg
        ))
        .is_empty());

        let (at, a) = fire(&mut d, &cfg);
        assert_eq!(at, T0 + 360);
        assert_eq!(
            a,
            vec![DialogAction::Remove {
                reason: RemoveReason::EndTimeout
            }]
        );
        assert!(d.is_removed());
        assert_eq!(d.deadline(), None);
    }

    #[test]
    fn rejected_call_fails_from_state_1() {
        let cfg = cfg();
        let (mut d, _) = new_dialog(T0, &cfg);
        let a = on_reply(&mut d, 486, Some("tt9"), T0 + 2, &cfg);
        assert_eq!(
            a,
            vec![
                DialogAction::Failed {
                    code: Some(486),
                    was_early: false
                },
                DialogAction::ScheduleTimeout {
                    at: T0 + 2 + 300,
                    generation: 2
                },
            ]
        );
        assert_eq!(
            a.first().and_then(DialogAction::event_route),
            Some("dialog:failed")
        );
        assert_eq!(
            a.first().and_then(DialogAction::callback),
            Some(CallbackKind::Failed)
        );
        assert_eq!(d.state(), DialogState::Deleted);
        // No callee data from a negative reply; the ACK of the 486 is a no-op in 5.
        assert_eq!(d.id().to_tag, None);
        assert!(without_schedules(on_req(
            &mut d,
            "ACK",
            Direction::Downstream,
            10,
            None,
            T0 + 2,
            &cfg
        ))
        .is_empty());
        // The transaction going away afterwards changes nothing.
        assert!(d
            .handle(DialogEvent::TransactionDeleted, T0 + 3, &cfg)
            .is_empty());
    }

    #[test]
    fn cancelled_call_fails_from_state_2_with_487() {
        let cfg = cfg();
        let (mut d, _) = new_dialog(T0, &cfg);
        on_reply(&mut d, 180, Some("tt1"), T0 + 1, &cfg);
        let a = without_schedules(on_reply(&mut d, 487, Some("tt1"), T0 + 4, &cfg));
        assert_eq!(
            a,
            vec![DialogAction::Failed {
                code: Some(487),
                was_early: true
            }]
        );
        assert_eq!(d.state(), DialogState::Deleted);
        assert_eq!(d.dflags() & DFLAG_HASBYE, 0);
    }

    #[test]
    fn transaction_gone_without_final_reply_fails() {
        let cfg = cfg();
        let (mut d, _) = new_dialog(T0, &cfg);
        let a = without_schedules(d.handle(DialogEvent::TransactionDeleted, T0 + 32, &cfg));
        assert_eq!(
            a,
            vec![DialogAction::Failed {
                code: None,
                was_early: false
            }]
        );
        assert_eq!(d.state(), DialogState::Deleted);
        // In 3 or 4 the transaction going away changes nothing.
        let mut d = confirmed(&cfg);
        assert!(d
            .handle(DialogEvent::TransactionDeleted, T0 + 32, &cfg)
            .is_empty());
        assert_eq!(d.state(), DialogState::Confirmed);
    }

    #[test]
    fn late_2xx_revives_a_failed_dialog_but_not_after_bye() {
        let cfg = cfg();
        let (mut d, _) = new_dialog(T0, &cfg);
        on_reply(&mut d, 180, Some("tt1"), T0 + 1, &cfg);
        on_reply(&mut d, 487, Some("tt1"), T0 + 2, &cfg);
        assert_eq!(d.state(), DialogState::Deleted);
        // A 200 from another branch, relayed after the 487.
        let a = on_reply(&mut d, 200, Some("tt2"), T0 + 3, &cfg);
        assert_eq!(
            a.first(),
            Some(&DialogAction::Started {
                revived: true,
                was_early: false
            })
        );
        assert_eq!(d.state(), DialogState::ConfirmedNotAcked);
        assert_eq!(d.id().to_tag.as_deref(), Some("tt2"));
        assert_eq!(d.end_ts(), 0);
        assert_eq!(d.timeout_at(), Some(T0 + 3 + 43200));

        // After a BYE a late 2xx is bogus.
        let mut d = confirmed(&cfg);
        on_req(
            &mut d,
            "BYE",
            Direction::Downstream,
            11,
            None,
            T0 + 20,
            &cfg,
        );
        let a = on_reply(&mut d, 200, Some("tt1"), T0 + 21, &cfg);
        assert_eq!(
            a,
            vec![DialogAction::Bogus {
                event: EventKind::Reply2xx,
                state: DialogState::Deleted
            }]
        );
        assert_eq!(d.state(), DialogState::Deleted);
    }

    #[test]
    fn reinvite_keeps_state_4_and_updates_cseq_and_targets() {
        let cfg = cfg();
        let mut d = confirmed(&cfg);
        let a = on_req(
            &mut d,
            "INVITE",
            Direction::Downstream,
            11,
            Some("sip:alice@192.0.2.11:5070"),
            T0 + 100,
            &cfg,
        );
        assert_eq!(
            a,
            vec![
                DialogAction::RequestWithin {
                    direction: Direction::Downstream
                },
                DialogAction::ScheduleTimeout {
                    at: T0 + 100 + 43200,
                    generation: 4
                },
            ]
        );
        assert_eq!(d.state(), DialogState::Confirmed);
        assert_eq!(d.leg(Side::Caller).cseq, 11);
        assert_eq!(
            d.leg(Side::Caller).contact.as_deref(),
            Some("sip:alice@192.0.2.11:5070")
        );
        // The 2xx of the re-INVITE refreshes the callee's target.
        let mut ok = reply(200, Some("tt1")).replace("CSeq: 10 INVITE", "CSeq: 11 INVITE");
        ok = ok.replace("sip:bob@192.0.2.20:5060", "sip:bob@192.0.2.21:5060");
        d.on_within_reply(
            &Message::parse(ok.as_bytes()).unwrap(),
            Direction::Downstream,
        )
        .unwrap();
        assert_eq!(
            d.leg(Side::Callee).contact.as_deref(),
            Some("sip:bob@192.0.2.21:5060")
        );

        // Upstream re-INVITE from Bob: the callee's CSeq space.
        on_req(
            &mut d,
            "INVITE",
            Direction::Upstream,
            1,
            Some("sip:bob@192.0.2.22"),
            T0 + 200,
            &cfg,
        );
        assert_eq!(d.leg(Side::Callee).cseq, 1);
        assert_eq!(
            d.leg(Side::Callee).contact.as_deref(),
            Some("sip:bob@192.0.2.22")
        );
        assert_eq!(d.leg(Side::Caller).cseq, 11);
        // A non-refresh request updates the CSeq, not the target.
        on_req(
            &mut d,
            "INFO",
            Direction::Downstream,
            12,
            Some("sip:elsewhere@192.0.2.99"),
            T0 + 201,
            &cfg,
        );
        assert_eq!(d.leg(Side::Caller).cseq, 12);
        assert_eq!(
            d.leg(Side::Caller).contact.as_deref(),
            Some("sip:alice@192.0.2.11:5070")
        );
        // The BYE towards the caller now carries the callee's CSeq + 1.
        let bye = d
            .build_bye(Side::Caller, "192.0.2.1:5060", "z9hG4bKx")
            .unwrap();
        let m = Message::parse(&bye).unwrap();
        assert_eq!(m.cseq().unwrap().number, 2);
        assert_eq!(
            m.request_uri().unwrap().as_bytes(),
            b"sip:alice@192.0.2.11:5070"
        );
    }

    #[test]
    fn timeout_noreset_keeps_the_lifetime() {
        let cfg = DialogConfig {
            timeout_noreset: true,
            ..cfg()
        };
        let mut d = confirmed(&cfg);
        let before = d.timeout_at();
        let a = on_req(
            &mut d,
            "UPDATE",
            Direction::Upstream,
            3,
            None,
            T0 + 100,
            &cfg,
        );
        assert!(schedules(&a).is_empty());
        assert_eq!(d.timeout_at(), before);
        // The per-dialog property does the same.
        let cfg = DialogConfig::default();
        let mut d = confirmed(&cfg);
        d.set_timeout_noreset(true);
        let a = on_req(
            &mut d,
            "UPDATE",
            Direction::Upstream,
            3,
            None,
            T0 + 100,
            &cfg,
        );
        assert!(schedules(&a).is_empty());
        assert_ne!(d.iflags() & IFLAG_TIMER_NORESET, 0);
    }

    #[test]
    fn timeout_with_send_bye_produces_two_byes() {
        let cfg = DialogConfig {
            send_bye: true,
            default_timeout: 120,
            ..cfg()
        };
        let mut d = confirmed(&cfg);
        assert_ne!(d.iflags() & IFLAG_TIMEOUTBYE, 0);
        d.set_socket(Side::Caller, "udp:192.0.2.1:5060");
        let (at, a) = fire(&mut d, &cfg);
        assert_eq!(at, T0 + 6 + 120);
        assert_eq!(
            a,
            vec![
                DialogAction::SendBye { side: Side::Caller },
                DialogAction::SendBye { side: Side::Callee }
            ]
        );
        // The dialog stays up until the BYEs are answered.
        assert_eq!(d.state(), DialogState::Confirmed);
        assert_eq!(d.deadline(), None);

        let p = ByeParams {
            transport: "UDP",
            via_host_port: "192.0.2.1:5060",
            branch: "z9hG4bKbye1",
            extra_headers: "Reason: SIP;cause=200;text=\"timeout\"",
            cseq_skip: 0,
        };
        // To the callee: its target, the route set core1 then core2, we speak for Alice.
        let bye = d.build_bye_with(Side::Callee, &p).unwrap();
        let text = String::from_utf8(bye.clone()).unwrap();
        let m = Message::parse(&bye).unwrap();
        m.validate().unwrap();
        assert_eq!(m.method(), Some(Method::Bye));
        assert_eq!(
            m.request_uri().unwrap().as_bytes(),
            b"sip:bob@192.0.2.20:5060"
        );
        let routes: Vec<&[u8]> = m
            .routes()
            .unwrap()
            .iter()
            .map(|r| r.uri.as_bytes())
            .collect();
        assert_eq!(
            routes,
            vec![
                &b"sip:core1.example.org;lr"[..],
                b"sip:core2.example.org;lr"
            ]
        );
        assert_eq!(m.from().unwrap().uri.as_bytes(), b"sip:alice@example.com");
        assert_eq!(m.from().unwrap().tag(), Some(&b"ft1"[..]));
        assert_eq!(m.to().unwrap().uri.as_bytes(), b"sip:bob@example.com");
        assert_eq!(m.to().unwrap().tag(), Some(&b"tt1"[..]));
        assert_eq!(m.call_id().unwrap(), CALL_ID.as_bytes());
        assert_eq!(m.cseq().unwrap().number, 11);
        assert_eq!(m.top_via().unwrap().branch(), Some(&b"z9hG4bKbye1"[..]));
        assert_eq!(m.max_forwards().unwrap().unwrap(), 70);
        assert!(text.contains("\r\nReason: SIP;cause=200;text=\"timeout\"\r\n"));
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"));

        // To the caller: its target through edge, we speak for Bob, callee CSeq 0 + 1.
        let bye = d
            .build_bye(Side::Caller, "192.0.2.1:5060", "z9hG4bKbye2")
            .unwrap();
        let m = Message::parse(&bye).unwrap();
        m.validate().unwrap();
        assert_eq!(
            m.request_uri().unwrap().as_bytes(),
            b"sip:alice@192.0.2.10:5060"
        );
        let routes: Vec<&[u8]> = m
            .routes()
            .unwrap()
            .iter()
            .map(|r| r.uri.as_bytes())
            .collect();
        assert_eq!(routes, vec![&b"sip:edge.example.net;lr"[..]]);
        assert_eq!(m.from().unwrap().uri.as_bytes(), b"sip:bob@example.com");
        assert_eq!(m.from().unwrap().tag(), Some(&b"tt1"[..]));
        assert_eq!(m.to().unwrap().uri.as_bytes(), b"sip:alice@example.com");
        assert_eq!(m.to().unwrap().tag(), Some(&b"ft1"[..]));
        assert_eq!(m.cseq().unwrap().number, 1);

        // The first final reply to one of them ends the dialog.
        let a = without_schedules(d.handle(DialogEvent::LocalByeDone, at + 1, &cfg));
        assert_eq!(
            a,
            vec![DialogAction::Ended {
                reason: EndReason::LocalBye
            }]
        );
        assert_eq!(
            a.first().and_then(DialogAction::callback),
            Some(CallbackKind::TerminatedConfirmed)
        );
        assert_eq!(d.state(), DialogState::Deleted);
        // The second one changes nothing.
        assert!(d.handle(DialogEvent::LocalByeDone, at + 2, &cfg).is_empty());
    }

    #[test]
    fn timeout_without_send_bye_expires_and_blocks_late_2xx() {
        let cfg = cfg();
        let mut d = confirmed(&cfg);
        d.set_timeout_route(Some("DLGTIMEOUT".into()));
        let (at, a) = fire(&mut d, &cfg);
        assert_eq!(at, T0 + 6 + 43200);
        assert_eq!(
            a,
            vec![
                DialogAction::TimeoutRoute {
                    route: "DLGTIMEOUT".into()
                },
                DialogAction::Expired,
                DialogAction::ScheduleTimeout {
                    at: at + 300,
                    generation: 4
                },
            ]
        );
        assert_eq!(
            a.get(1).and_then(DialogAction::event_route),
            Some("dialog:end")
        );
        assert_eq!(
            a.get(1).and_then(DialogAction::callback),
            Some(CallbackKind::Expired)
        );
        assert_eq!(d.state(), DialogState::Deleted);
        // Kamailio expires through its BYE event: HASBYE is set.
        assert_ne!(d.dflags() & DFLAG_HASBYE, 0);
        let a = on_reply(&mut d, 200, Some("tt1"), at + 1, &cfg);
        assert!(matches!(a.first(), Some(DialogAction::Bogus { .. })));
    }

    #[test]
    fn noack_timeout_leaves_ten_seconds() {
        let cfg = cfg();
        let (mut d, _) = new_dialog(T0, &cfg);
        on_reply(&mut d, 200, Some("tt1"), T0 + 5, &cfg);
        assert_eq!(d.deadline(), Some((T0 + 65, TimerKind::NoAck)));
        let (_, a) = fire(&mut d, &cfg);
        assert_eq!(schedules(&a), vec![T0 + 75]);
        assert_eq!(d.deadline(), Some((T0 + 75, TimerKind::Lifetime)));
        assert_eq!(d.state(), DialogState::ConfirmedNotAcked);
        let (_, a) = fire(&mut d, &cfg);
        assert!(a.contains(&DialogAction::Expired));
        assert_eq!(d.state(), DialogState::Deleted);
    }

    #[test]
    fn early_timeout_removes_without_callbacks() {
        let cfg = cfg();
        let (mut d, _) = new_dialog(T0, &cfg);
        let mut profiles = Profiles::from_params("", "caller").unwrap();
        profiles
            .set(&mut d, ProfileLink::new("caller", Some("alice")))
            .unwrap();
        on_reply(&mut d, 180, Some("tt1"), T0 + 1, &cfg);
        // The deadline counts from the INVITE, not from the 180.
        assert_eq!(d.deadline(), Some((T0 + 300, TimerKind::Early)));
        let (_, a) = fire(&mut d, &cfg);
        assert_eq!(
            a,
            vec![
                DialogAction::LeftProfiles {
                    links: vec![ProfileLink::new("caller", Some("alice"))]
                },
                DialogAction::Remove {
                    reason: RemoveReason::EarlyTimeout
                },
            ]
        );
        assert!(a.iter().all(|x| x.event_route().is_none()));
        assert!(d.is_removed());
        assert_eq!(d.deadline(), None);
    }

    #[test]
    fn stale_and_early_timer_events_are_ignored() {
        let cfg = cfg();
        let (mut d, first) = new_dialog(T0, &cfg);
        let DialogAction::ScheduleTimeout { at, generation } = first[0].clone() else {
            panic!("no timer");
        };
        on_reply(&mut d, 200, Some("tt1"), T0 + 5, &cfg);
        // The early timer's event arrives after the 2xx re-armed: stale.
        assert!(d.on_timer(at, generation, &cfg).is_empty());
        assert_eq!(d.state(), DialogState::ConfirmedNotAcked);
        // A current event delivered too soon only re-schedules the same deadline.
        let (due, _) = d.deadline().unwrap();
        let g = d.timer_generation();
        assert_eq!(
            d.on_timer(due - 1, g, &cfg),
            vec![DialogAction::ScheduleTimeout {
                at: due,
                generation: g
            }]
        );
        assert_eq!(d.timer_generation(), g);
        // A generation from the future is stale too.
        assert!(d.on_timer(due, g + 7, &cfg).is_empty());
        assert_eq!(d.deadline(), Some((due, TimerKind::NoAck)));
    }

    #[test]
    fn set_timeout_restarts_the_lifetime_when_confirmed() {
        let cfg = cfg();
        let (mut d, _) = new_dialog(T0, &cfg);
        // Before the 2xx, only the lifetime changes.
        assert!(d.set_timeout(600, T0 + 1, &cfg).is_empty());
        on_reply(&mut d, 200, Some("tt1"), T0 + 2, &cfg);
        assert_eq!(d.timeout_at(), Some(T0 + 602));
        on_req(&mut d, "ACK", Direction::Downstream, 10, None, T0 + 3, &cfg);
        let a = d.set_timeout(30, T0 + 10, &cfg);
        assert_eq!(schedules(&a), vec![T0 + 40]);
        assert_eq!(d.lifetime(), 30);
        assert_eq!(d.deadline(), Some((T0 + 40, TimerKind::Lifetime)));
    }

    #[test]
    fn bogus_events_are_results_not_panics() {
        let cfg = cfg();
        let (mut d, _) = new_dialog(T0, &cfg);
        let a = on_req(&mut d, "ACK", Direction::Downstream, 10, None, T0, &cfg);
        assert_eq!(
            a,
            vec![DialogAction::Bogus {
                event: EventKind::Ack,
                state: DialogState::Unconfirmed
            }]
        );
        let a = on_req(&mut d, "BYE", Direction::Downstream, 11, None, T0, &cfg);
        assert_eq!(
            a,
            vec![DialogAction::Bogus {
                event: EventKind::Bye,
                state: DialogState::Unconfirmed
            }]
        );
        assert_eq!(d.state(), DialogState::Unconfirmed);
        let mut d = confirmed(&cfg);
        let a = on_reply(&mut d, 180, Some("tt1"), T0 + 9, &cfg);
        assert_eq!(
            a,
            vec![DialogAction::Bogus {
                event: EventKind::Reply1xx,
                state: DialogState::Confirmed
            }]
        );
        let a = on_reply(&mut d, 503, Some("tt1"), T0 + 9, &cfg);
        assert_eq!(
            a,
            vec![DialogAction::Bogus {
                event: EventKind::ReplyNegative,
                state: DialogState::Confirmed
            }]
        );
        let a = on_req(
            &mut d,
            "PRACK",
            Direction::Downstream,
            11,
            None,
            T0 + 9,
            &cfg,
        );
        assert_eq!(
            a,
            vec![DialogAction::Bogus {
                event: EventKind::Prack,
                state: DialogState::Confirmed
            }]
        );
        assert_eq!(d.state(), DialogState::Confirmed);
        // A BYE in the early dialog is ignored (no callback, state kept).
        let (mut d, _) = new_dialog(T0, &cfg);
        on_reply(&mut d, 180, Some("tt1"), T0 + 1, &cfg);
        assert!(on_req(&mut d, "BYE", Direction::Downstream, 11, None, T0 + 2, &cfg).is_empty());
        assert_eq!(d.state(), DialogState::Early);
    }

    /// Drives a dialog into each state (5 twice: failed, and ended by BYE).
    fn in_each_state(cfg: &DialogConfig) -> Vec<Dialog> {
        let (d1, _) = new_dialog(T0, cfg);
        let mut d2 = d1.clone();
        on_reply(&mut d2, 180, Some("tt1"), T0 + 1, cfg);
        let mut d3 = d2.clone();
        on_reply(&mut d3, 200, Some("tt1"), T0 + 2, cfg);
        let mut d4 = d3.clone();
        on_req(&mut d4, "ACK", Direction::Downstream, 10, None, T0 + 3, cfg);
        let mut d5 = d2.clone();
        on_reply(&mut d5, 486, Some("tt1"), T0 + 3, cfg);
        let mut d5b = d4.clone();
        on_req(
            &mut d5b,
            "BYE",
            Direction::Downstream,
            11,
            None,
            T0 + 4,
            cfg,
        );
        vec![d1, d2, d3, d4, d5, d5b]
    }

    #[test]
    fn every_cell_of_the_table_through_dialog() {
        let cfg = cfg();
        let events: Vec<(EventKind, DialogEvent)> = vec![
            (
                EventKind::Reply1xx,
                DialogEvent::Reply(Reply {
                    code: 183,
                    to_tag: Some("tt1".into()),
                    contact: None,
                    record_routes: vec![],
                    own_record_routes: 0,
                }),
            ),
            (
                EventKind::Reply2xx,
                DialogEvent::Reply(Reply {
                    code: 200,
                    to_tag: Some("tt1".into()),
                    contact: Some("sip:b@h".into()),
                    record_routes: vec![],
                    own_record_routes: 0,
                }),
            ),
            (
                EventKind::ReplyNegative,
                DialogEvent::Reply(Reply {
                    code: 603,
                    to_tag: Some("tt1".into()),
                    contact: None,
                    record_routes: vec![],
                    own_record_routes: 0,
                }),
            ),
            (
                EventKind::TransactionDeleted,
                DialogEvent::TransactionDeleted,
            ),
        ]
        .into_iter()
        .chain(
            [
                (EventKind::Ack, RequestKind::Ack),
                (EventKind::Bye, RequestKind::Bye),
                (EventKind::Prack, RequestKind::Prack),
                (EventKind::Request, RequestKind::Other),
            ]
            .map(|(e, kind)| {
                (
                    e,
                    DialogEvent::Request(InDialogRequest {
                        kind,
                        direction: Direction::Downstream,
                        cseq: 20,
                        refresh_target: None,
                    }),
                )
            }),
        )
        .collect();
        for start in in_each_state(&cfg) {
            for (kind, event) in &events {
                let mut d = start.clone();
                let before = d.state();
                let expected = next_state(before, *kind, d.dflags() & DFLAG_HASBYE != 0);
                let actions = d.handle(event.clone(), T0 + 50, &cfg);
                let bogus = actions
                    .iter()
                    .any(|a| matches!(a, DialogAction::Bogus { .. }));
                match expected {
                    Step::To(s) => assert_eq!(d.state(), s, "{kind} in {before}"),
                    Step::Stay => assert_eq!(d.state(), before, "{kind} in {before}"),
                    Step::Bogus => {
                        assert_eq!(d.state(), before, "{kind} in {before}");
                        assert_eq!(
                            actions,
                            vec![DialogAction::Bogus {
                                event: *kind,
                                state: before
                            }]
                        );
                    }
                }
                assert_eq!(bogus, expected == Step::Bogus, "{kind} in {before}");
            }
        }
    }

    #[test]
    fn lifetime_timeout_only_in_states_3_and_4() {
        let cfg = cfg();
        for mut d in in_each_state(&cfg) {
            let before = d.state();
            let (_, kind) = d.deadline().unwrap();
            let (_, a) = fire(&mut d, &cfg);
            match before {
                DialogState::ConfirmedNotAcked => assert_eq!(kind, TimerKind::NoAck),
                DialogState::Confirmed => {
                    assert_eq!(kind, TimerKind::Lifetime);
                    assert!(a.contains(&DialogAction::Expired));
                    assert_eq!(d.state(), DialogState::Deleted);
                }
                _ => {
                    assert!(!a.contains(&DialogAction::Expired));
                    assert!(d.is_removed());
                }
            }
        }
    }

    #[test]
    fn retransmission_changes_nothing() {
        let cfg = cfg();
        let mut d = confirmed(&cfg);
        let before = d.clone();
        assert!(d
            .handle(DialogEvent::Retransmission, T0 + 999, &cfg)
            .is_empty());
        assert_eq!(d, before);
    }

    fn table(cfg: &DialogConfig) -> Vec<Dialog> {
        // The confirmed dialog, an older failed attempt with the same Call-ID and From tag
        // (e.g. challenged by auth), and an unrelated call.
        let d = confirmed(cfg);
        let mut failed = new_dialog(T0, cfg).0;
        on_reply(&mut failed, 407, Some("auth"), T0, cfg);
        let failed = Dialog {
            hash: HashId(5, 0),
            ..failed
        };
        let mut other = Dialog {
            hash: HashId(9, 3),
            ..d.clone()
        };
        other.set_text(&[
            (Field::CallId, Some("other")),
            (Field::FromTag, Some("x")),
            (Field::ToTag, Some("y")),
        ]);
        vec![failed, d, other]
    }

    fn find(
        t: &[Dialog],
        mode: MatchMode,
        from: &str,
        to: &str,
        did: Option<&str>,
    ) -> Option<crate::id::Match> {
        let keys = RequestKeys {
            call_id: CALL_ID.as_bytes(),
            from_tag: from.as_bytes(),
            to_tag: to.as_bytes(),
            did: did.map(str::as_bytes),
        };
        match_request(
            mode,
            &keys,
            |h| t.iter().find(|d| d.hash() == h),
            |c| {
                t.iter()
                    .filter(|d| d.id().call_id.as_bytes() == c)
                    .collect::<Vec<_>>()
            },
        )
    }

    #[test]
    fn matching_by_did_and_by_tags_in_both_directions() {
        let cfg = cfg();
        let t = table(&cfg);
        let did = HashId(5, 1).did();
        let down = Some(crate::id::Match {
            hash: HashId(5, 1),
            direction: Direction::Downstream,
        });
        let up = Some(crate::id::Match {
            hash: HashId(5, 1),
            direction: Direction::Upstream,
        });
        for mode in [MatchMode::DidOnly, MatchMode::DidThenTags] {
            assert_eq!(find(&t, mode, "ft1", "tt1", Some(&did)), down);
            assert_eq!(find(&t, mode, "tt1", "ft1", Some(&did)), up);
        }
        // Mode 0: the did is required and must agree with the tags.
        assert_eq!(find(&t, MatchMode::DidOnly, "ft1", "tt1", None), None);
        assert_eq!(
            find(&t, MatchMode::DidOnly, "ft1", "tt1", Some("7.7")),
            None
        );
        assert_eq!(find(&t, MatchMode::DidOnly, "ft1", "zz", Some(&did)), None);
        assert_eq!(
            find(&t, MatchMode::DidOnly, "ft1", "tt1", Some("nonsense")),
            None
        );
        // Mode 1 falls back to the tags, except for a malformed did.
        assert_eq!(find(&t, MatchMode::DidThenTags, "ft1", "tt1", None), down);
        assert_eq!(
            find(&t, MatchMode::DidThenTags, "tt1", "ft1", Some("7.7")),
            up
        );
        assert_eq!(
            find(&t, MatchMode::DidThenTags, "ft1", "tt1", Some("nonsense")),
            None
        );
        // Mode 2 ignores the did.
        assert_eq!(
            find(&t, MatchMode::TagsOnly, "ft1", "tt1", Some("7.7")),
            down
        );
        assert_eq!(find(&t, MatchMode::TagsOnly, "tt1", "ft1", None), up);
        assert_eq!(find(&t, MatchMode::TagsOnly, "ft1", "nope", None), None);
        // By did a deleted dialog is still found (a retransmitted BYE); by tags it is
        // skipped.
        let failed_did = HashId(5, 0).did();
        assert_eq!(
            find(&t, MatchMode::DidOnly, "ft1", "", Some(&failed_did)),
            Some(crate::id::Match {
                hash: HashId(5, 0),
                direction: Direction::Downstream
            })
        );
        let only_failed: Vec<Dialog> = t
            .iter()
            .filter(|d| d.hash() == HashId(5, 0))
            .cloned()
            .collect();
        assert_eq!(
            find(&only_failed, MatchMode::TagsOnly, "ft1", "", None),
            None
        );
    }

    #[test]
    fn request_keys_from_a_message() {
        let r = request("BYE", Direction::Upstream, 3, None);
        let m = Message::parse(r.as_bytes()).unwrap();
        let did = b"5.1";
        let keys = RequestKeys::of_request(&m, Some(did)).unwrap();
        assert_eq!(keys.call_id, CALL_ID.as_bytes());
        assert_eq!(keys.from_tag, b"tt1");
        assert_eq!(keys.to_tag, b"ft1");
        let t = table(&cfg());
        let found = match_request(
            MatchMode::DidOnly,
            &keys,
            |h| t.iter().find(|d| d.hash() == h),
            |_| t.iter(),
        );
        assert_eq!(
            found,
            Some(crate::id::Match {
                hash: HashId(5, 1),
                direction: Direction::Upstream
            })
        );
        let rep = reply(200, Some("x"));
        let m = Message::parse(rep.as_bytes()).unwrap();
        assert_eq!(
            RequestKeys::of_request(&m, None),
            Err(DialogError::NotARequest)
        );
    }

    #[test]
    fn spirals_are_recognised_only_before_the_answer() {
        let cfg = cfg();
        let (d, _) = new_dialog(T0, &cfg);
        let cid = CALL_ID.as_bytes();
        assert!(is_spiral(&d, cid, b"ft1", b""));
        assert!(!is_spiral(&d, cid, b"other", b""));
        assert!(!is_spiral(&d, b"x", b"ft1", b""));
        assert!(!is_spiral(&d, cid, b"ft1", b"tt1"));
        let mut early = d.clone();
        on_reply(&mut early, 180, Some("tt1"), T0 + 1, &cfg);
        assert!(is_spiral(&early, cid, b"ft1", b""));
        let mut answered = early.clone();
        on_reply(&mut answered, 200, Some("tt1"), T0 + 2, &cfg);
        assert!(!is_spiral(&answered, cid, b"ft1", b""));
        let mut failed = d.clone();
        on_reply(&mut failed, 404, None, T0 + 2, &cfg);
        assert!(!is_spiral(&failed, cid, b"ft1", b""));
    }

    #[test]
    fn profiles_count_per_profile_and_value() {
        let cfg = cfg();
        let mut p = Profiles::from_params(" inbound ; outbound;", "caller").unwrap();
        assert_eq!(p.names(), vec!["caller", "inbound", "outbound"]);
        assert_eq!(p.has_value("caller"), Some(true));
        assert_eq!(p.has_value("inbound"), Some(false));
        let (mut a, _) = new_dialog(T0, &cfg);
        let (mut b, _) = new_dialog(T0, &cfg);
        p.set(&mut a, ProfileLink::new("inbound", None)).unwrap();
        p.set(&mut a, ProfileLink::new("inbound", None)).unwrap();
        p.set(&mut a, ProfileLink::new("caller", Some("alice")))
            .unwrap();
        p.set(&mut b, ProfileLink::new("caller", Some("bob")))
            .unwrap();
        p.set(&mut b, ProfileLink::new("caller", Some("alice")))
            .unwrap();
        assert_eq!(p.size("inbound", None), Ok(2), "no duplicate check");
        assert_eq!(p.size("caller", None), Ok(3));
        assert_eq!(p.size("caller", Some("alice")), Ok(2));
        assert_eq!(p.size("caller", Some("carol")), Ok(0));
        assert_eq!(p.size("outbound", None), Ok(0));
        assert_eq!(
            p.size("nope", None),
            Err(DialogError::UnknownProfile("nope".into()))
        );
        assert!(a.is_in_profile("caller", Some("alice")));
        assert!(a.is_in_profile("caller", None));
        assert!(!a.is_in_profile("caller", Some("bob")));
        assert!(!a.is_in_profile("outbound", None));
        // Declarations are enforced.
        assert!(matches!(
            p.set(&mut a, ProfileLink::new("caller", None)),
            Err(DialogError::ProfileValue { .. })
        ));
        assert!(matches!(
            p.set(&mut a, ProfileLink::new("inbound", Some("x"))),
            Err(DialogError::ProfileValue { .. })
        ));
        assert!(Profiles::from_params("a;a", "").is_err());
        // Unset removes one membership.
        assert_eq!(
            p.unset(&mut a, &ProfileLink::new("inbound", None)),
            Ok(true)
        );
        assert_eq!(p.size("inbound", None), Ok(1));
        assert_eq!(
            p.unset(&mut b, &ProfileLink::new("inbound", None)),
            Ok(false)
        );
        // A dialog that fails leaves every profile.
        let actions = on_reply(&mut b, 480, None, T0 + 1, &cfg);
        for act in &actions {
            if let DialogAction::LeftProfiles { links } = act {
                p.release(links);
            }
        }
        assert_eq!(p.size("caller", Some("bob")), Ok(0));
        assert_eq!(p.size("caller", Some("alice")), Ok(1));
        assert_eq!(b.profiles().count(), 0);
    }

    /// The dialog of a SIPp call (default uac/uas scenarios) through a proxy at
    /// 127.0.0.1:5060: what the memory bench holds 10,000 of.
    fn sipp_dialog(cfg: &DialogConfig) -> Dialog {
        let inv = "INVITE sip:service@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-4242-1-0\r\n\
From: sipp <sip:sipp@127.0.0.1:5080>;tag=4242SIPpTag001\r\n\
To: service <sip:service@127.0.0.1:5060>\r\n\
Call-ID: 1-4242@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Contact: sip:sipp@127.0.0.1:5080\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n";
        let m = Message::parse(inv.as_bytes()).unwrap();
        let (mut d, _) = Dialog::from_invite(HashId(1234, 1), &m, T0, cfg).unwrap();
        d.set_socket(Side::Caller, "udp:127.0.0.1:5060");
        d.set_socket(Side::Callee, "udp:127.0.0.1:5060");
        let ok = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-4242-1-0\r\n\
Record-Route: <sip:127.0.0.1:5060;lr;did=2d4.1>\r\n\
From: sipp <sip:sipp@127.0.0.1:5080>;tag=4242SIPpTag001\r\n\
To: service <sip:service@127.0.0.1:5060>;tag=4243SIPpTag011\r\n\
Call-ID: 1-4242@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:127.0.0.1:5070;transport=UDP>\r\n\
Content-Length: 0\r\n\r\n";
        d.on_reply(&Message::parse(ok.as_bytes()).unwrap(), 1, T0 + 1, cfg)
            .unwrap();
        d
    }

    #[test]
    fn the_record_is_packed() {
        // One 120-byte struct and one text buffer: no String per field.
        assert!(
            std::mem::size_of::<Dialog>() <= 120,
            "{}",
            std::mem::size_of::<Dialog>()
        );
        let cfg = cfg();
        let d = sipp_dialog(&cfg);
        assert_eq!(d.state(), DialogState::ConfirmedNotAcked);
        assert_eq!(d.to_tag(), Some("4243SIPpTag011"));
        assert_eq!(d.request_uri(), d.to_uri());
        assert_eq!(d.socket(Side::Callee), Some("udp:127.0.0.1:5060"));
        assert_eq!(
            d.contact(Side::Callee),
            Some("sip:127.0.0.1:5070;transport=UDP")
        );
        assert_eq!(d.route_set(Side::Callee).count(), 0);
        // The text holds each distinct value once: Request-URI = To URI, the caller's
        // Contact = its From URI, one socket for both sides.
        let distinct = [
            "1-4242@127.0.0.1",
            "4242SIPpTag001",
            "4243SIPpTag011",
            "sip:sipp@127.0.0.1:5080",
            "sip:service@127.0.0.1:5060",
            "sip:127.0.0.1:5070;transport=UDP",
            "udp:127.0.0.1:5060",
        ];
        let text: usize = distinct.iter().map(|s| s.len()).sum();
        assert_eq!(d.text.heap_len(), text);
        assert!(d.extra.is_none());
        assert_eq!(d.approx_bytes(), std::mem::size_of::<Dialog>() + text + 16);
        // Kamailio 5.6 uses 706 bytes of shared memory per dialog of this call; the goal is
        // at most half, table share included (the module adds ~20 bytes of slot list).
        assert!(d.approx_bytes() + 24 <= 353, "{}", d.approx_bytes());
    }

    #[test]
    fn rare_parts_are_boxed_only_while_used() {
        let cfg = cfg();
        let mut d = sipp_dialog(&cfg);
        let bare = d.approx_bytes();
        d.set_var("a", Some("1"));
        d.set_timeout_route(Some("R".to_owned()));
        assert!(d.extra.is_some());
        assert!(d.approx_bytes() > bare);
        assert_eq!(d.extra.as_ref().unwrap().vars.capacity(), 1, "no slack");
        d.set_var("a", None);
        d.set_timeout_route(None);
        assert!(d.extra.is_none(), "dropped once empty");
        assert_eq!(d.approx_bytes(), bare);
        let mut profiles = Profiles::from_params("calls", "").unwrap();
        profiles
            .set(&mut d, ProfileLink::new("calls", None))
            .unwrap();
        assert!(d.is_in_profile("calls", None));
        assert!(profiles
            .unset(&mut d, &ProfileLink::new("calls", None))
            .unwrap());
        assert!(d.extra.is_none());
    }

    #[test]
    fn packed_and_copied_views_agree() {
        let cfg = cfg();
        let d = confirmed(&cfg);
        for side in [Side::Caller, Side::Callee] {
            let leg = d.leg(side);
            assert_eq!(leg.tag.as_deref(), d.tag(side));
            assert_eq!(leg.contact.as_deref(), d.contact(side));
            assert_eq!(leg.cseq, d.cseq(side));
            assert_eq!(leg.route_set, d.route_set(side).collect::<Vec<_>>());
        }
        let id = d.id();
        assert_eq!(
            (
                id.call_id.as_str(),
                id.from_tag.as_str(),
                id.to_tag.as_deref()
            ),
            (d.call_id(), d.from_tag(), d.to_tag())
        );
        assert_eq!(
            d.matches(CALL_ID.as_bytes(), b"tt1", b"ft1"),
            id.matches(CALL_ID.as_bytes(), b"tt1", b"ft1")
        );
    }

    #[test]
    fn only_the_first_transaction_binds() {
        let cfg = cfg();
        let (mut d, _) = new_dialog(T0, &cfg);
        assert_eq!(d.dflags() & DFLAG_TM, 0);
        assert!(d.bind_transaction());
        assert!(
            !d.bind_transaction(),
            "a spiral's transaction is not followed"
        );
        assert_ne!(d.dflags() & DFLAG_TM, 0);
    }

    #[test]
    fn keepalives_go_every_interval_to_the_flagged_sides_in_state_4() {
        let cfg = cfg();
        let (mut d, _) = new_dialog(T0, &cfg);
        d.set_keepalive(Side::Callee, true);
        // Not before the call is up and acknowledged.
        assert_eq!(d.keepalives_due(T0 + 100, 30), [false, false]);
        let mut d = confirmed(&cfg);
        let start = d.start_ts();
        assert_eq!(
            d.keepalives_due(start + 100, 30),
            [false, false],
            "not flagged"
        );
        d.set_keepalive(Side::Callee, true);
        assert_eq!(d.keepalives_due(start + 29, 30), [false, false]);
        assert_eq!(d.keepalives_due(start + 30, 30), [false, true]);
        assert_eq!(d.keepalives_due(start + 31, 30), [false, false]);
        d.set_keepalive(Side::Caller, true);
        assert_eq!(d.keepalives_due(start + 60, 30), [true, true]);
        assert_eq!(d.keepalives_due(start + 100, 0), [false, false], "off");
    }

    #[test]
    fn failed_keepalives_leave_ten_seconds_after_the_limit() {
        let cfg = DialogConfig {
            send_bye: true,
            ..cfg()
        };
        let mut d = confirmed(&cfg);
        d.set_keepalive(Side::Callee, true);
        let now = d.start_ts() + 60;
        let lifetime = d.timeout_at();
        // A 200 (or any other reply, even an error) clears the count.
        assert!(d
            .on_keepalive_reply(Side::Callee, 408, now, 2, &cfg)
            .is_empty());
        assert!(d
            .on_keepalive_reply(Side::Callee, 404, now, 2, &cfg)
            .is_empty());
        assert!(d
            .on_keepalive_reply(Side::Callee, 481, now, 2, &cfg)
            .is_empty());
        assert_eq!(d.timeout_at(), lifetime);
        // The second failure in a row: ten seconds left.
        let a = d.on_keepalive_reply(Side::Callee, 408, now, 2, &cfg);
        assert_eq!(d.timeout_at(), Some(now + 10));
        assert_eq!(d.lifetime(), KEEPALIVE_GRACE);
        assert_eq!(schedules(&a), vec![now + 10]);
        // Then the dialog times out as any other: BYE both ways (send_bye).
        let (_, a) = fire(&mut d, &cfg);
        assert!(a.contains(&DialogAction::SendBye { side: Side::Caller }));
        assert!(a.contains(&DialogAction::SendBye { side: Side::Callee }));
    }

    #[test]
    fn keepalive_options_are_built_like_the_bye() {
        let cfg = cfg();
        let d = confirmed(&cfg);
        let p = ByeParams {
            transport: "UDP",
            via_host_port: "192.0.2.1:5060",
            branch: "z9hG4bKka",
            extra_headers: "",
            cseq_skip: 0,
        };
        let bye = String::from_utf8(d.build_bye_with(Side::Callee, &p).unwrap()).unwrap();
        let opt = String::from_utf8(
            d.build_request_with("OPTIONS", Side::Callee, &p, "")
                .unwrap(),
        )
        .unwrap();
        assert_eq!(opt.replace("OPTIONS", "BYE"), bye);
    }

    #[test]
    fn times_past_2106_are_held_at_the_maximum() {
        let cfg = cfg();
        let mut d = confirmed(&cfg);
        let _ = d.set_timeout(u32::MAX, u64::from(u32::MAX) - 10, &cfg);
        assert_eq!(d.timeout_at(), Some(u64::from(u32::MAX)));
        assert_eq!(d.deadline().map(|x| x.0), Some(u64::from(u32::MAX)));
    }

    #[test]
    fn flags_and_variables() {
        let cfg = cfg();
        let (mut d, _) = new_dialog(T0, &cfg);
        d.set_flag(0).unwrap();
        d.set_flag(31).unwrap();
        assert_eq!(d.sflags(), 0x8000_0001);
        assert_eq!(d.is_flag_set(31), Ok(true));
        assert_eq!(d.is_flag_set(5), Ok(false));
        d.reset_flag(0).unwrap();
        assert_eq!(d.is_flag_set(0), Ok(false));
        assert_eq!(d.set_flag(32), Err(DialogError::FlagOutOfRange(32)));
        assert_eq!(d.is_flag_set(99), Err(DialogError::FlagOutOfRange(99)));

        d.set_var("a", Some("1"));
        d.set_var("b", Some("2"));
        d.set_var("a", Some("3"));
        assert_eq!(d.var("a"), Some("3"));
        assert_eq!(d.vars().collect::<Vec<_>>(), vec![("b", "2"), ("a", "3")]);
        d.set_var("b", None);
        d.set_var("zz", None);
        assert_eq!(d.vars().collect::<Vec<_>>(), vec![("a", "3")]);
        assert_ne!(d.dflags() & DFLAG_CHANGED_VARS, 0);
    }

    #[test]
    fn callback_info_describes_both_identities() {
        let cfg = cfg();
        let mut d = confirmed(&cfg);
        d.set_message_flags(0b1010);
        let info = d.callback_info(CallbackKind::Confirmed);
        assert_eq!(info.kind.kamailio_name(), "DLGCB_CONFIRMED");
        assert_eq!(info.from_uri, "sip:alice@example.com");
        assert_eq!(info.to_uri, "sip:bob@example.com");
        assert_eq!(info.request_uri, "sip:bob@example.com");
        assert_eq!(info.id.call_id, CALL_ID);
        assert_eq!(info.id.to_tag.as_deref(), Some("tt1"));
        assert_eq!(
            info.caller_contact.as_deref(),
            Some("sip:alice@192.0.2.10:5060")
        );
        assert_eq!(
            info.callee_contact.as_deref(),
            Some("sip:bob@192.0.2.20:5060")
        );
        assert_eq!(info.message_flags, 0b1010);
        assert_eq!(info.state, DialogState::Confirmed);
    }

    #[test]
    fn terminate_needs_a_confirmed_dialog() {
        let cfg = cfg();
        let (mut d, _) = new_dialog(T0, &cfg);
        assert_eq!(
            d.terminate(&[Side::Caller]),
            Err(DialogError::NotConfirmed(DialogState::Unconfirmed))
        );
        let mut d = confirmed(&cfg);
        assert_eq!(
            d.terminate(&[Side::Caller, Side::Callee]),
            Ok(vec![
                DialogAction::SendBye { side: Side::Caller },
                DialogAction::SendBye { side: Side::Callee }
            ])
        );
    }

    #[test]
    fn bye_through_a_strict_router_puts_the_target_last() {
        let cfg = cfg();
        let strict = invite().replace("<sip:edge.example.net;lr>", "<sip:edge.example.net>");
        let m = Message::parse(strict.as_bytes()).unwrap();
        let (mut d, _) = Dialog::from_invite(HashId(5, 1), &m, T0, &cfg).unwrap();
        on_reply(&mut d, 200, Some("tt1"), T0 + 1, &cfg);
        let bye = d.build_bye(Side::Caller, "192.0.2.1", "z9hG4bKs").unwrap();
        let m = Message::parse(&bye).unwrap();
        assert_eq!(m.request_uri().unwrap().as_bytes(), b"sip:edge.example.net");
        let routes: Vec<&[u8]> = m
            .routes()
            .unwrap()
            .iter()
            .map(|r| r.uri.as_bytes())
            .collect();
        assert_eq!(routes, vec![&b"sip:alice@192.0.2.10:5060"[..]]);
        // Without a target there is no BYE.
        let (d, _) = new_dialog(T0, &cfg);
        assert_eq!(
            d.build_bye(Side::Callee, "h", "b"),
            Err(DialogError::NoRemoteTarget(Side::Callee))
        );
    }

    fn arb_event() -> impl Strategy<Value = DialogEvent> {
        let reply = (
            prop_oneof![
                Just(100u16),
                101u16..200,
                200u16..300,
                300u16..700,
                0u16..100
            ],
            any::<bool>(),
        )
            .prop_map(|(code, tag)| {
                DialogEvent::Reply(Reply {
                    code,
                    to_tag: tag.then(|| "tt".to_owned()),
                    contact: tag.then(|| "sip:b@h".to_owned()),
                    record_routes: vec!["<sip:a;lr>".into(), "<sip:b;lr>".into()],
                    own_record_routes: 5,
                })
            });
        let request = (0usize..4, any::<bool>(), any::<u32>(), any::<bool>()).prop_map(
            |(k, down, cseq, refresh)| {
                DialogEvent::Request(InDialogRequest {
                    kind: [
                        RequestKind::Ack,
                        RequestKind::Bye,
                        RequestKind::Prack,
                        RequestKind::Other,
                    ][k % 4],
                    direction: if down {
                        Direction::Downstream
                    } else {
                        Direction::Upstream
                    },
                    cseq,
                    refresh_target: refresh.then(|| "sip:n@h".to_owned()),
                })
            },
        );
        prop_oneof![
            reply,
            request,
            Just(DialogEvent::TransactionDeleted),
            Just(DialogEvent::Retransmission),
            Just(DialogEvent::LocalByeDone),
            (0u64..8).prop_map(|generation| DialogEvent::Timer { generation }),
        ]
    }

    proptest! {
        #[test]
        fn no_event_sequence_panics_or_leaves_the_states(
            events in proptest::collection::vec((arb_event(), 0u64..100_000, any::<bool>()), 0..60),
            send_bye in any::<bool>(),
        ) {
            let cfg = DialogConfig { send_bye, default_timeout: 500, ..DialogConfig::default() };
            let (mut d, _) = new_dialog(T0, &cfg);
            let mut now = T0;
            for (event, step, current_timer) in events {
                now += step;
                // Half of the timer events carry the current generation.
                let event = match event {
                    DialogEvent::Timer { .. } if current_timer => DialogEvent::Timer { generation: d.timer_generation() },
                    e => e,
                };
                let before = d.timer_generation();
                let actions = d.handle(event, now, &cfg);
                prop_assert!((1..=5).contains(&d.state().code()));
                for a in &actions {
                    if let DialogAction::ScheduleTimeout { at, generation } = a {
                        prop_assert_eq!(*generation, d.timer_generation());
                        prop_assert_eq!(Some(*at), d.deadline().map(|x| x.0));
                        prop_assert!(*generation != before || *at >= now);
                    }
                    if let DialogAction::Bogus { .. } = a {
                        prop_assert_eq!(actions.len(), 1);
                    }
                }
                if d.state().is_confirmed() && !d.bit(BIT_BYE_SENT) {
                    prop_assert!(d.timeout_at().is_some());
                }
                let _ = d.info(now).to_json();
                let _ = d.build_bye(Side::Caller, "h", "z9hG4bK1");
            }
        }
    }
}
