//! The dialog states and Kamailio's transition table (`next_state_dlg` in `dlg_hash.c`) as a
//! pure function, [`next_state`]. [`crate::Dialog`] applies it and adds what each transition
//! means (callbacks, timers, route sets).

use std::fmt;

/// The five states of Kamailio's dialog module (`$dlg(state)`, `dlg.list` `state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DialogState {
    /// 1: the INVITE was seen, no reply relayed yet (100 Trying does not count).
    Unconfirmed,
    /// 2: a provisional reply 101-199 was relayed.
    Early,
    /// 3: a 2xx was relayed; the ACK has not been seen.
    ConfirmedNotAcked,
    /// 4: the ACK was seen.
    Confirmed,
    /// 5: ended (BYE, timeout) or failed (negative reply, transaction gone).
    Deleted,
}

impl DialogState {
    /// Kamailio's number for the state (1..5).
    pub fn code(self) -> u8 {
        match self {
            DialogState::Unconfirmed => 1,
            DialogState::Early => 2,
            DialogState::ConfirmedNotAcked => 3,
            DialogState::Confirmed => 4,
            DialogState::Deleted => 5,
        }
    }

    /// The state for a number 1..5 (`dlg.set_state`, stored dialogs).
    pub fn from_code(code: u8) -> Option<DialogState> {
        match code {
            1 => Some(DialogState::Unconfirmed),
            2 => Some(DialogState::Early),
            3 => Some(DialogState::ConfirmedNotAcked),
            4 => Some(DialogState::Confirmed),
            5 => Some(DialogState::Deleted),
            _ => None,
        }
    }

    /// States 1 and 2: the call is being set up.
    pub fn is_early(self) -> bool {
        matches!(self, DialogState::Unconfirmed | DialogState::Early)
    }

    /// States 3 and 4: the call is up (answered).
    pub fn is_confirmed(self) -> bool {
        matches!(
            self,
            DialogState::ConfirmedNotAcked | DialogState::Confirmed
        )
    }
}

impl fmt::Display for DialogState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
    }
}

/// The events of the transition table (Kamailio's `DLG_EVENT_*`, plus the lifetime timeout,
/// which Kamailio feeds as a BYE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A provisional reply 101-199 to the INVITE was relayed upstream (`RPL1xx`).
    Reply1xx,
    /// A 2xx to the INVITE was relayed (`RPL2xx`).
    Reply2xx,
    /// A final reply >= 300 to the INVITE was relayed (`RPL3xx`).
    ReplyNegative,
    /// The INVITE transaction was destroyed (`TDEL`).
    TransactionDeleted,
    /// An ACK of the dialog was seen (`REQACK`).
    Ack,
    /// A BYE of the dialog was seen, either direction (`REQBYE`).
    Bye,
    /// A PRACK of the dialog was seen (`REQPRACK`).
    Prack,
    /// Any other in-dialog request: re-INVITE, UPDATE, INFO, NOTIFY... (`REQ`).
    Request,
    /// The dialog's lifetime timer fired (Kamailio feeds `REQBYE` from `dlg_ontimeout`).
    Timeout,
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EventKind::Reply1xx => "1xx reply",
            EventKind::Reply2xx => "2xx reply",
            EventKind::ReplyNegative => "negative reply",
            EventKind::TransactionDeleted => "transaction deleted",
            EventKind::Ack => "ACK",
            EventKind::Bye => "BYE",
            EventKind::Prack => "PRACK",
            EventKind::Request => "in-dialog request",
            EventKind::Timeout => "timeout",
        })
    }
}

/// The outcome of one row/column of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The state changes to this one.
    To(DialogState),
    /// The state stays (a valid event that changes nothing in the state).
    Stay,
    /// The event makes no sense in this state: Kamailio logs "bogus event N in state M" at
    /// critical level and changes nothing.
    Bogus,
}

/// Kamailio's transition table. `has_bye` is the dialog's "a BYE was seen" flag
/// (`DLG_FLAG_HASBYE`), which decides whether a late 2xx revives a deleted dialog.
///
/// | event \ state | 1 | 2 | 3 | 4 | 5 |
/// |---|---|---|---|---|---|
/// | 1xx | →2 | 2 | bogus | bogus | bogus |
/// | 2xx | →3 | →3 | 3 | 4 | →3 without BYE, else bogus |
/// | ≥300 | →5 | →5 | bogus | bogus | bogus |
/// | transaction deleted | →5 | →5 | 3 | 4 | 5 |
/// | ACK | bogus | bogus | →4 | 4 | 5 |
/// | BYE | bogus | 2 | →5 | →5 | 5 |
/// | PRACK | bogus | 2 | 3 | bogus | 5 |
/// | other request | bogus | 2 | 3 | 4 | 5 |
/// | timeout | 1 | 2 | →5 | →5 | 5 |
pub fn next_state(state: DialogState, event: EventKind, has_bye: bool) -> Step {
    use DialogState::*;
    use EventKind::*;
    match (event, state) {
        (Reply1xx, Unconfirmed) => Step::To(Early),
        (Reply1xx, Early) => Step::Stay,
        (Reply1xx, _) => Step::Bogus,

        (Reply2xx, Unconfirmed | Early) => Step::To(ConfirmedNotAcked),
        (Reply2xx, ConfirmedNotAcked | Confirmed) => Step::Stay,
        (Reply2xx, Deleted) if has_bye => Step::Bogus,
        (Reply2xx, Deleted) => Step::To(ConfirmedNotAcked),

        (ReplyNegative, Unconfirmed | Early) => Step::To(Deleted),
        (ReplyNegative, _) => Step::Bogus,

        (TransactionDeleted, Unconfirmed | Early) => Step::To(Deleted),
        (TransactionDeleted, _) => Step::Stay,

        (Ack, ConfirmedNotAcked) => Step::To(Confirmed),
        (Ack, Confirmed | Deleted) => Step::Stay,
        (Ack, Unconfirmed | Early) => Step::Bogus,

        (Bye, ConfirmedNotAcked | Confirmed) => Step::To(Deleted),
        (Bye, Early | Deleted) => Step::Stay,
        (Bye, Unconfirmed) => Step::Bogus,

        (Prack, Early | ConfirmedNotAcked | Deleted) => Step::Stay,
        (Prack, Unconfirmed | Confirmed) => Step::Bogus,

        (Request, Early | ConfirmedNotAcked | Confirmed | Deleted) => Step::Stay,
        (Request, Unconfirmed) => Step::Bogus,

        (Timeout, ConfirmedNotAcked | Confirmed) => Step::To(Deleted),
        (Timeout, _) => Step::Stay,
    }
}

#[cfg(test)]
mod tests {
    use super::DialogState::*;
    use super::EventKind::*;
    use super::*;

    const STATES: [DialogState; 5] = [Unconfirmed, Early, ConfirmedNotAcked, Confirmed, Deleted];

    fn row(event: EventKind, has_bye: bool) -> [Step; 5] {
        STATES.map(|s| next_state(s, event, has_bye))
    }

    #[test]
    fn codes_round_trip() {
        for s in STATES {
            assert_eq!(DialogState::from_code(s.code()), Some(s));
        }
        assert_eq!(DialogState::from_code(0), None);
        assert_eq!(DialogState::from_code(6), None);
        assert_eq!(
            STATES.map(DialogState::code),
            [1, 2, 3, 4, 5],
            "Kamailio's numbering"
        );
    }

    #[test]
    fn row_1xx() {
        use Step::*;
        assert_eq!(row(Reply1xx, false), [To(Early), Stay, Bogus, Bogus, Bogus]);
    }

    #[test]
    fn row_2xx_late_2xx_revives_only_without_bye() {
        use Step::*;
        let c3 = To(ConfirmedNotAcked);
        assert_eq!(row(Reply2xx, false), [c3, c3, Stay, Stay, c3]);
        assert_eq!(row(Reply2xx, true), [c3, c3, Stay, Stay, Bogus]);
    }

    #[test]
    fn row_negative() {
        use Step::*;
        assert_eq!(
            row(ReplyNegative, false),
            [To(Deleted), To(Deleted), Bogus, Bogus, Bogus]
        );
    }

    #[test]
    fn row_transaction_deleted() {
        use Step::*;
        assert_eq!(
            row(TransactionDeleted, false),
            [To(Deleted), To(Deleted), Stay, Stay, Stay]
        );
    }

    #[test]
    fn row_ack() {
        use Step::*;
        assert_eq!(row(Ack, false), [Bogus, Bogus, To(Confirmed), Stay, Stay]);
    }

    #[test]
    fn row_bye() {
        use Step::*;
        assert_eq!(
            row(Bye, false),
            [Bogus, Stay, To(Deleted), To(Deleted), Stay]
        );
    }

    #[test]
    fn row_prack() {
        use Step::*;
        assert_eq!(row(Prack, false), [Bogus, Stay, Stay, Bogus, Stay]);
    }

    #[test]
    fn row_other_request() {
        use Step::*;
        assert_eq!(row(Request, false), [Bogus, Stay, Stay, Stay, Stay]);
    }

    #[test]
    fn row_timeout() {
        use Step::*;
        assert_eq!(
            row(Timeout, false),
            [Stay, Stay, To(Deleted), To(Deleted), Stay]
        );
    }
}
