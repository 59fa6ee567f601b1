//! One tracked dialog: [`Record`], its [`State`], and the memory it takes.

use std::mem::size_of;

/// The state of a record, with the module's numeric codes (shown by the RPC commands).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// 0: created by `dlgs_init()` on an INVITE.
    Init = 0,
    /// 1: a 1xx to the INVITE was seen while `Init`.
    Progress = 1,
    /// 2: a 2xx to the INVITE was seen while `Init` or `Progress`.
    Answered = 2,
    /// 3: the ACK of the 2xx was seen: the call is active.
    Confirmed = 3,
    /// 4: a BYE was seen while `Answered` or `Confirmed` (finished).
    Terminated = 4,
    /// 5: a final reply ≥ 300 or a CANCEL while `Init`/`Progress` (finished).
    NotAnswered = 5,
}

impl State {
    /// Every state, by code.
    pub const ALL: [State; 6] = [
        State::Init,
        State::Progress,
        State::Answered,
        State::Confirmed,
        State::Terminated,
        State::NotAnswered,
    ];

    /// The numeric code (0-5).
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The name used as key in `dlgs.stats` (`init`, `progress`, `answered`, `confirmed`,
    /// `terminated`, `notanswered`).
    pub fn name(self) -> &'static str {
        match self {
            State::Init => "init",
            State::Progress => "progress",
            State::Answered => "answered",
            State::Confirmed => "confirmed",
            State::Terminated => "terminated",
            State::NotAnswered => "notanswered",
        }
    }

    /// Ongoing (codes 0-3): counted by `dlgs_count()` and `dlgs_tags_count()`.
    pub fn is_ongoing(self) -> bool {
        !self.is_finished()
    }

    /// Finished (`Terminated`, `NotAnswered`).
    pub fn is_finished(self) -> bool {
        matches!(self, State::Terminated | State::NotAnswered)
    }

    /// Index into per-state arrays.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// One dialog record (Kamailio's `dlgs_item_t`). Times are UNIX seconds, 0 when not reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Unique record id: `dlgs-<hex time>-<hex pid>-<reversed hex counter>-<hex Call-ID hash>`.
    pub ruid: String,
    /// The Call-ID (trimmed); the only key used to find the record.
    pub callid: String,
    /// The From tag of the INVITE.
    pub ftag: String,
    /// The To tag: the INVITE's if it had one, otherwise taken from the 2xx.
    pub ttag: String,
    /// The top Via branch of the INVITE (empty when not given); tells auth retries apart.
    pub branch: String,
    /// `src` given to `dlgs_init()`.
    pub src: String,
    /// `dst` given to `dlgs_init()`.
    pub dst: String,
    /// `data` given to `dlgs_init()`.
    pub data: String,
    /// The current state.
    pub state: State,
    /// When the record was created.
    pub ts_init: u64,
    /// When the 2xx was seen (0 if never).
    pub ts_answer: u64,
    /// When the record finished (0 if not finished).
    pub ts_finish: u64,
    /// Tags, in the order added; a tag may appear more than once.
    pub tags: Vec<String>,
}

impl Record {
    /// The field a filter looks at (`any` reads as `src`, as the RPC commands do).
    pub fn field(&self, field: crate::Field) -> &str {
        match field {
            crate::Field::Any | crate::Field::Src => &self.src,
            crate::Field::Dst => &self.dst,
            crate::Field::Data => &self.data,
        }
    }

    /// Heap bytes owned by the record: string and vector capacities.
    pub fn heap_bytes(&self) -> usize {
        self.ruid.capacity()
            + self.callid.capacity()
            + self.ftag.capacity()
            + self.ttag.capacity()
            + self.branch.capacity()
            + self.src.capacity()
            + self.dst.capacity()
            + self.data.capacity()
            + self.tags.capacity() * size_of::<String>()
            + self.tags.iter().map(String::capacity).sum::<usize>()
    }

    /// When the record's current lifetime runs out (`ts_init + init_lifetime` before the ACK,
    /// `ts_answer + active_lifetime` when confirmed, `ts_finish + finish_lifetime` when
    /// finished).
    pub fn deadline(&self, lifetimes: &crate::Config) -> u64 {
        match self.state {
            State::Init | State::Progress | State::Answered => {
                self.ts_init.saturating_add(lifetimes.init_lifetime)
            }
            State::Confirmed => self.ts_answer.saturating_add(lifetimes.active_lifetime),
            State::Terminated | State::NotAnswered => {
                self.ts_finish.saturating_add(lifetimes.finish_lifetime)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_are_the_modules() {
        let codes: Vec<u8> = State::ALL.iter().map(|s| s.code()).collect();
        assert_eq!(codes, vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(State::NotAnswered.name(), "notanswered");
        assert!(State::Confirmed.is_ongoing());
        assert!(State::Terminated.is_finished());
    }
}
