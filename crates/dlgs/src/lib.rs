//! `sable-dlgs`: the record store of Kamailio's `dlgs` module (stateless dialog tracking with
//! tags), as plain data.
//!
//! What it owns: the [`Record`]s made by `dlgs_init()` from INVITEs, found by Call-ID; their
//! [`State`]s (Kamailio's codes: 0 `Init`, 1 `Progress`, 2 `Answered`, 3 `Confirmed`,
//! 4 `Terminated`, 5 `NotAnswered`) moved by requests ([`Store::update_request`]: ACK, BYE,
//! CANCEL) and replies to the INVITE ([`Store::update_reply`]); the lifetimes of the module
//! parameters ([`Config`]: `init_lifetime` 180, `active_lifetime` 10800, `finish_lifetime` 10,
//! `timer_interval` 30) and the cleaner ([`Store::expire`]); `dlgs_count()` ([`Store::count`],
//! [`Filter`] with fields `any`/`src`/`dst`/`data` and operators `eq`/`ne`/`re`/`sw`/`fm`, a
//! [`fnmatch`] of our own); tags ([`Store::tags_add`], [`Store::tags_rm`],
//! [`Store::tags_count`]); the `dlgs.*` RPC results ([`rpc`]); memory accounting
//! ([`Store::bytes_per_record`]). The script return codes are in [`count_return`] and
//! [`tags_return`].
//!
//! What it does not do: parse SIP (the module hands over Call-ID, tags, method, code), read a
//! clock (`now` is UNIX seconds, given), run a timer (the module calls [`Store::expire`]
//! every `timer_interval`), or lock (see below).
//!
//! # Behaviour, from the seed (module README + sources) and the reference notes
//!
//! - A record is created only for an INVITE with a Call-ID and a From tag. A second INVITE
//!   with a Call-ID already recorded is refused ([`DlgsError::Duplicate`]): the module matches
//!   by **Call-ID alone**; From/To tags are stored, never used as keys, and the direction of a
//!   request does not matter. (The brief spoke of Call-ID + From tag; we followed the seed's
//!   code.) As in Kamailio master, a re-sent INVITE after a 401/407 (finished record, other
//!   Via branch, see [`NewRecord::branch`]) gets a new record, which becomes the current one.
//! - Transitions: 1xx `Init`→`Progress`; 2xx `Init`/`Progress`→`Answered` (`ts_answer`, To
//!   tag captured); ≥300 or CANCEL on `Init`/`Progress`→`NotAnswered` (`ts_finish`); ACK on
//!   `Answered`→`Confirmed`; BYE on `Answered`/`Confirmed`→`Terminated` (`ts_finish`).
//!   Everything else is ignored (BYE before the answer, a 200 after the CANCEL, replies whose
//!   CSeq method is not INVITE).
//! - Lifetimes: states 0-2 end at `ts_init + init_lifetime`, `Confirmed` at `ts_answer +
//!   active_lifetime`, finished records at `ts_finish + finish_lifetime`. A record is removed
//!   by the first [`Store::expire`] whose `now` is past that deadline.
//! - `dlgs_count()` counts ongoing records (states 0-3); it returns the number, **-1 when none
//!   matched and -2 on error** ([`count_return`]); `any` ignores the operator and the value.
//!   `dlgs_tags_add`/`dlgs_tags_rm` return 1, or -1 for an empty tag or no record for the
//!   Call-ID ([`tags_return`]); `dlgs_tags_rm` of an absent tag is still 1 and removes only
//!   the first equal tag; `dlgs_tags_count` counts occurrences on ongoing records (-1 for 0).
//!
//! Where the seed's code and README disagree we followed: the README for `re` (it says the
//! operator is a regex; Kamailio 5.6's `dlgs_count` never matched it, master does);
//! the code for the CANCEL (the README lists "not answered or BYE" as finishing, the code
//! also finishes on CANCEL, which is a not-answered call); the code for the return values
//! (the README says "-1 or other negative", the code gives -1 for none and -2 for errors);
//! the code for which record a tag attaches to (the README says "current dialog"; the code
//! finds it by the message's Call-ID). The `dlgs.stats` `active` counters are exact (a record
//! the cleaner removes leaves `active`): Kamailio never decrements them, a defect the project
//! does not copy (reference decision 2, D7).
//!
//! Known differences: records are listed in creation order (Kamailio walks its hash slots);
//! `hash_size` has no effect (no slots, see below); the Call-ID hash in `ruid` is Kamailio's
//! `core_hash` formula.
//!
//! # Concurrency and cost
//!
//! [`Store`] is a plain struct (`Send + Sync`) that the module wraps in one mutex shared by
//! the workers. We chose one lock over Kamailio's per-slot locks because the counts are kept
//! in global indexes (value → number of ongoing records, tag → occurrences) which every slot
//! would have to share anyway; with them `dlgs_count` on `eq`/`ne`/`any` and
//! `dlgs_tags_count` are one hash lookup, and creation, updates and tags are a few hash
//! operations plus an O(log n) step, so the lock is held for microseconds. The cleaner uses a
//! deadline queue and costs O(removed · log n), not a full walk. Only `re`/`sw`/`fm` counts
//! and the RPC listings walk the table under the lock (Kamailio walks it for every count).

pub mod filter;
pub mod record;
pub mod rpc;
pub mod store;

pub use filter::{fnmatch, Field, Filter, Op};
pub use record::{Record, State};
pub use store::{Config, NewRecord, Stats, Store, Update};

/// Everything that can go wrong in the store or in a filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DlgsError {
    /// A field name other than `any`, `src`, `dst`, `data`.
    #[error("invalid dlgs field {0:?} (any, src, dst, data)")]
    InvalidField(String),
    /// An operator name other than `eq`, `ne`, `re`, `sw`, `fm`.
    #[error("invalid dlgs operator {0:?} (eq, ne, re, sw, fm)")]
    InvalidOperator(String),
    /// The value of `re` is not a valid regular expression.
    #[error("invalid regular expression {value:?}: {reason}")]
    InvalidMatchingValue {
        /// The expression given.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// The INVITE had no Call-ID.
    #[error("no Call-ID: nothing to track")]
    MissingCallId,
    /// The INVITE had no From tag.
    #[error("no From tag in the INVITE of Call-ID {call_id:?}")]
    MissingFromTag {
        /// The Call-ID.
        call_id: String,
    },
    /// A record with this Call-ID exists already.
    #[error("a dlgs record with Call-ID {call_id:?} exists")]
    Duplicate {
        /// The Call-ID.
        call_id: String,
    },
    /// No record has this Call-ID (tags).
    #[error("no dlgs record with Call-ID {call_id:?}")]
    NoRecord {
        /// The Call-ID.
        call_id: String,
    },
    /// A tag was empty.
    #[error("empty dlgs tag")]
    EmptyTag,
}

impl DlgsError {
    /// The fault an RPC command answers with: Kamailio's code 500 and its message
    /// (`Invalid Field`, `Invalid Operator`, `Invalid Matching Value`, else `Invalid
    /// Parameters`).
    pub fn rpc_fault(&self) -> (i32, &'static str) {
        match self {
            Self::InvalidField(_) => (500, "Invalid Field"),
            Self::InvalidOperator(_) => (500, "Invalid Operator"),
            Self::InvalidMatchingValue { .. } => (500, "Invalid Matching Value"),
            _ => (500, "Invalid Parameters"),
        }
    }
}

/// What `dlgs_count()` and `dlgs_tags_count()` return to the script: the number, -1 when it is
/// 0 (a script cannot return 0), -2 on error.
pub fn count_return(result: Result<usize, DlgsError>) -> i32 {
    match result {
        Ok(0) => -1,
        Ok(n) => i32::try_from(n).unwrap_or(i32::MAX),
        Err(_) => -2,
    }
}

/// What `dlgs_tags_add()` and `dlgs_tags_rm()` return: 1, or -1 for an empty tag or when the
/// Call-ID has no record.
pub fn tags_return<T>(result: Result<T, DlgsError>) -> i32 {
    match result {
        Ok(_) => 1,
        Err(_) => -1,
    }
}
