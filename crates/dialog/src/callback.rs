//! Dialog callbacks as data (Kamailio's `dlg_cb.h`): which kind fires, and a description of
//! the dialog for whoever listens (acc, peerstate, ...). The module keeps the registrations
//! and calls the listeners; this crate only says when ([`crate::DialogAction::callback`]).

use crate::id::{DialogId, HashId};
use crate::state::DialogState;

/// The callback kinds Sable's modules can listen to, named after Kamailio's `DLGCB_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallbackKind {
    /// `DLGCB_CREATED`: inside `dlg_manage()`, on the initial INVITE (the module fires it
    /// when it creates the dialog; no transition is involved).
    Created,
    /// `DLGCB_SPIRALED`: the INVITE came back through the proxy ([`crate::is_spiral`]).
    Spiraled,
    /// `DLGCB_EARLY`: every relayed 101-199 while in state 1 or 2.
    Early,
    /// `DLGCB_CONFIRMED_NA`: the 2xx was relayed (state 3).
    ConfirmedNotAcked,
    /// `DLGCB_CONFIRMED`: the ACK (state 3 → 4), not the 2xx.
    Confirmed,
    /// `DLGCB_REQ_WITHIN`: an in-dialog request in state 2 or 4 (and the ACK).
    RequestWithin,
    /// `DLGCB_TERMINATED`: a BYE ended the dialog.
    Terminated,
    /// `DLGCB_TERMINATED_CONFIRMED`: the first final reply to a BYE the module sent.
    TerminatedConfirmed,
    /// `DLGCB_FAILED`: >= 300 relayed in state 1 or 2, or the transaction went away.
    Failed,
    /// `DLGCB_EXPIRED`: the lifetime ran out (no BYE sent by the module).
    Expired,
    /// `DLGCB_DESTROY`: the dialog is freed.
    Destroy,
}

impl CallbackKind {
    /// Kamailio's constant name (`DLGCB_CONFIRMED_NA`...), for logs.
    pub fn kamailio_name(self) -> &'static str {
        match self {
            CallbackKind::Created => "DLGCB_CREATED",
            CallbackKind::Spiraled => "DLGCB_SPIRALED",
            CallbackKind::Early => "DLGCB_EARLY",
            CallbackKind::ConfirmedNotAcked => "DLGCB_CONFIRMED_NA",
            CallbackKind::Confirmed => "DLGCB_CONFIRMED",
            CallbackKind::RequestWithin => "DLGCB_REQ_WITHIN",
            CallbackKind::Terminated => "DLGCB_TERMINATED",
            CallbackKind::TerminatedConfirmed => "DLGCB_TERMINATED_CONFIRMED",
            CallbackKind::Failed => "DLGCB_FAILED",
            CallbackKind::Expired => "DLGCB_EXPIRED",
            CallbackKind::Destroy => "DLGCB_DESTROY",
        }
    }
}

/// What a listener learns about the dialog: both identities as the INVITE gave them, the
/// table coordinates and state, and the message flags the INVITE had when the dialog was
/// created (acc and peerstate decide on them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackInfo {
    /// The kind that fired.
    pub kind: CallbackKind,
    /// Table coordinates.
    pub hash: HashId,
    /// Call-ID and tags.
    pub id: DialogId,
    /// The state after the transition.
    pub state: DialogState,
    /// The caller: URI of the INVITE's From header.
    pub from_uri: String,
    /// The callee: URI of the INVITE's To header.
    pub to_uri: String,
    /// The INVITE's Request-URI as the dialog was created.
    pub request_uri: String,
    /// The caller's remote target (Contact URI), if any.
    pub caller_contact: Option<String>,
    /// The callee's remote target, once known.
    pub callee_contact: Option<String>,
    /// The message flags (`setflag()`) of the INVITE at creation.
    pub message_flags: u32,
}
