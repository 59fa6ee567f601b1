//! The crate's one error type.

use sable_sip::ParseError;

use crate::id::Side;
use crate::state::DialogState;

/// What can go wrong when a dialog is created from a message, matched, changed by a script
/// function, or asked to build a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    /// A header the dialog needs is missing or malformed.
    #[error("bad or missing {header}: {source}")]
    BadHeader {
        /// The header, by its canonical name (`From`, `CSeq`, `Call-ID`, ...).
        header: &'static str,
        /// The parser's diagnosis.
        #[source]
        source: ParseError,
    },
    /// A request was needed.
    #[error("expected a request, got a response")]
    NotARequest,
    /// A response was needed.
    #[error("expected a response, got a request")]
    NotAResponse,
    /// Only an INVITE creates a dialog (`dlg_manage()` returns -1 for other methods).
    #[error("only an INVITE creates a dialog")]
    NotInvite,
    /// An initial INVITE without a From tag cannot identify a dialog (RFC 3261 §8.1.1.3
    /// makes the tag mandatory; Kamailio refuses it too).
    #[error("the INVITE has no From tag")]
    MissingFromTag,
    /// An initial request already carries a To tag: it is in-dialog, not initial.
    #[error("the request has a To tag: it belongs to an existing dialog")]
    HasToTag,
    /// The Record-Route `did` parameter is not `<hex>.<hex>` (Kamailio logs "malformed rr
    /// param" and does not match).
    #[error("malformed dialog rr parameter {value:?}")]
    BadDid {
        /// The parameter value as received (lossy UTF-8).
        value: String,
    },
    /// A profile that was not declared (`profiles_with_value` / `profiles_no_value`).
    #[error("Profile not found: {0}")]
    UnknownProfile(String),
    /// A profile declared twice, or a name that is empty.
    #[error("bad profile declaration {0:?}")]
    BadProfileName(String),
    /// A profile with value used without a value, or a value-less one with a value.
    #[error("profile {profile} {}", if *.with_value { "needs a value" } else { "takes no value" })]
    ProfileValue {
        /// The profile.
        profile: String,
        /// True when the profile was declared with values.
        with_value: bool,
    },
    /// Dialog flags are numbered 0..31 (`dlg_setflag`).
    #[error("dialog flag {0} out of range 0..31")]
    FlagOutOfRange(u32),
    /// The side has no remote target (no Contact was seen from it).
    #[error("no remote target (Contact) known for the {0}")]
    NoRemoteTarget(Side),
    /// A stored dialog ([`crate::DialogRecord`], the dialog module's `db_mode`) with a field
    /// that cannot be read: a state that is no state, a CSeq that is no number, `xdata`
    /// that is not Kamailio's profile JSON.
    #[error("stored dialog {h_entry}:{h_id}: bad {field}: {detail}")]
    BadRecord {
        /// The dialog's bucket.
        h_entry: u32,
        /// The dialog's id in the bucket.
        h_id: u32,
        /// The column (`state`, `caller_cseq`, `xdata`...).
        field: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// The action needs a confirmed dialog (state 3 or 4).
    #[error("dialog not in confirmed state (state {})", .0.code())]
    NotConfirmed(DialogState),
    /// The dialog's identity, URIs, contacts, route sets and sockets together pass 65,535
    /// octets (what one dialog record holds).
    #[error("dialog text too large (more than 65535 octets of identity, URIs and routes)")]
    TooLarge,
}

impl DialogError {
    /// The SIP status a server answers a request with when this error concerns it: the
    /// parser's status for a malformed message (400...), 400 for a missing From tag, 500
    /// for a misuse by the caller.
    pub fn status(&self) -> u16 {
        match self {
            DialogError::BadHeader { source, .. } => source.status(),
            DialogError::MissingFromTag | DialogError::BadDid { .. } => 400,
            DialogError::UnknownProfile(_) => 404,
            _ => 500,
        }
    }

    pub(crate) fn bad(header: &'static str) -> impl FnOnce(ParseError) -> DialogError {
        move |source| DialogError::BadHeader { header, source }
    }
}
