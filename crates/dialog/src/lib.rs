//! `sable-dialog`: the sans-IO core of dialog tracking, as Kamailio 5.6's `dialog` module does
//! it (RFC 3261 §12 dialogs, seen from a record-routing proxy).
//!
//! What this crate owns:
//! - [`Dialog`]: one call's dialog: identity ([`DialogId`], [`HashId`]), the five states and
//!   Kamailio's transition table ([`next_state`]), what each side needs ([`Leg`]: tag, remote
//!   target, CSeq, route set per RFC 3261 §12.1.1/§12.1.2), flags, `$dlg_var` variables,
//!   profile memberships, and the BYE the module sends on a timeout or `dlg_bye()`
//!   ([`Dialog::build_bye`], RFC 3261 §12.2.1.1, §15.1.1).
//! - Events in ([`DialogEvent`]: relayed replies to the INVITE, in-dialog requests, the
//!   transaction gone, timers, the module's own BYE answered), actions out
//!   ([`DialogAction`]: which callback, which event route, BYEs to send, timers to arm,
//!   profiles left, when to free the dialog). A bogus event is an action
//!   ([`DialogAction::Bogus`]) to log, never a panic.
//! - Timeouts as data: `early_timeout`, `noack_timeout`, the lifetime (`default_timeout`,
//!   `dlg_set_timeout`), `end_timeout` fold into one deadline per dialog
//!   ([`Dialog::deadline`]); a timer event carries a generation and a stale one is ignored.
//! - Matching of in-dialog requests ([`match_request`], `dlg_match_mode` 0/1/2, the `did`
//!   Record-Route parameter, directions) and spiral detection ([`is_spiral`]).
//! - Persistence data ([`DialogRecord`]: the columns of Kamailio's `dialog` table, profiles
//!   in its `xdata` JSON, `$dlg_var`s), [`Dialog::to_record`] and [`Dialog::from_record`]
//!   (a confirmed dialog restored after a restart, its lifetime timer re-armed or run out).
//!   Nothing here knows the database: the module copies records to and from
//!   `sable-storage`'s rows.
//! - [`Profiles`]: declared profiles and their counts, plain data to share behind a lock.
//! - Callback kinds and descriptions ([`CallbackKind`], [`CallbackInfo`]) and the RPC shapes
//!   ([`DialogInfo`] for `dlg.list`, `dlg.briefing`, [`ActiveCounts`] for
//!   `dlg.stats_active`).
//!
//! What it does not do: sockets, clocks, threads or locks. The dialog module keeps `Dialog`
//! values in its bucketed table (bucket [`h_entry`] of the Call-ID, `h_id` from a per-bucket
//! counter), feeds them events under the bucket lock, runs callbacks and event routes, sends
//! the BYEs through tm, runs the timer wheel, keeps statistics, registers the RPC methods and
//! the script functions. Nothing here reads the Record-Route this proxy adds: the module
//! tells how many values it added ([`Reply::own_record_routes`]) and which `did` rr found.

pub mod callback;
pub mod dialog;
pub mod error;
pub mod id;
pub mod profile;
pub mod rpc;
pub mod state;

pub use callback::{CallbackInfo, CallbackKind};
pub use dialog::{
    ByeParams, Dialog, DialogAction, DialogConfig, DialogEvent, DialogRecord, EndReason,
    InDialogRequest, Leg, RemoveReason, Reply, RequestKind, TimerKind, DFLAG_CALLEEBYE,
    DFLAG_CALLERBYE, DFLAG_CHANGED, DFLAG_CHANGED_VARS, DFLAG_HASBYE, DFLAG_NEW, DFLAG_TM,
    IFLAG_KA_DST, IFLAG_KA_SRC, IFLAG_TIMEOUTBYE, IFLAG_TIMER_NORESET, KEEPALIVE_GRACE,
    NOACK_GRACE,
};
pub use error::DialogError;
pub use id::{
    h_entry, is_spiral, match_request, DialogId, Direction, HashId, Match, MatchMode, RequestKeys,
    Side, DEFAULT_RR_PARAM,
};
pub use profile::{ProfileLink, Profiles};
pub use rpc::{ActiveCounts, DialogInfo, LegInfo, ProfileEntry};
pub use state::{next_state, DialogState, EventKind, Step};
