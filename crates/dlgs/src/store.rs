//! The record table: creation, updates from requests and replies, lifetimes, indexed counts
//! and tags.

use crate::filter::{Field, Filter, Op};
use crate::record::{Record, State};
use crate::DlgsError;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::mem::size_of;

/// The module parameters the store uses (names and defaults are the module's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `init_lifetime`: seconds a record may stay before its ACK (states 0-2), from `ts_init`.
    pub init_lifetime: u64,
    /// `active_lifetime`: seconds a confirmed record may stay, from `ts_answer`.
    pub active_lifetime: u64,
    /// `finish_lifetime`: seconds a finished record stays, from `ts_finish`.
    pub finish_lifetime: u64,
    /// `timer_interval`: seconds between two runs of the cleaner ([`Store::expire`]); the
    /// module's timer reads it, the store does not.
    pub timer_interval: u64,
    /// The process id written into `ruid`s (Kamailio writes the worker's pid).
    pub pid: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            init_lifetime: 180,
            active_lifetime: 10800,
            finish_lifetime: 10,
            timer_interval: 30,
            pid: 0,
        }
    }
}

impl Config {
    /// `timer_interval` as the module reads the parameter: zero or negative means 30.
    pub fn timer_interval_from(value: i64) -> u64 {
        u64::try_from(value).ok().filter(|v| *v > 0).unwrap_or(30)
    }
}

/// What [`Store::insert`] needs to create a record from an INVITE.
#[derive(Debug, Clone, Copy, Default)]
pub struct NewRecord<'a> {
    /// `src` argument of `dlgs_init()`.
    pub src: &'a str,
    /// `dst` argument.
    pub dst: &'a str,
    /// `data` argument.
    pub data: &'a str,
    /// The Call-ID (surrounding whitespace is trimmed).
    pub call_id: &'a str,
    /// The From tag (mandatory).
    pub from_tag: &'a str,
    /// The To tag of the INVITE, usually empty.
    pub to_tag: &'a str,
    /// The top Via branch of the INVITE; empty when not known.
    pub branch: &'a str,
}

/// What an update did to the record of its Call-ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// No record has this Call-ID.
    NoRecord,
    /// The record exists but the event does not move it (e.g. a BYE before the 2xx, a 200
    /// after a CANCEL, a reply to a non-INVITE).
    Ignored(State),
    /// The record moved.
    Changed {
        /// State before.
        from: State,
        /// State after.
        to: State,
    },
}

/// Per-state counters for `dlgs.stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Records in memory, by state code (kept exact: decremented on removal).
    pub active: [u64; 6],
    /// Records removed by the cleaner, by the state they were in.
    pub finals: [u64; 6],
}

impl Stats {
    /// Records in memory in `state`.
    pub fn active(&self, state: State) -> u64 {
        self.active.get(state.index()).copied().unwrap_or(0)
    }

    /// Records removed while in `state`.
    pub fn removed(&self, state: State) -> u64 {
        self.finals.get(state.index()).copied().unwrap_or(0)
    }
}

/// Hash counts over the ongoing records: the O(1) answers of `eq`, `ne`, `any` and tags.
#[derive(Debug, Default)]
struct Index {
    ongoing: usize,
    src: HashMap<String, usize>,
    dst: HashMap<String, usize>,
    data: HashMap<String, usize>,
    tags: HashMap<String, usize>,
}

fn bump(map: &mut HashMap<String, usize>, key: &str) {
    match map.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.to_owned(), 1);
        }
    }
}

fn drop_one(map: &mut HashMap<String, usize>, key: &str) {
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(key);
        }
    }
}

fn map_bytes(map: &HashMap<String, usize>) -> usize {
    // hashbrown: one slot of (key, value) plus one control byte per bucket.
    map.capacity() * (size_of::<(String, usize)>() + 1)
        + map.keys().map(String::capacity).sum::<usize>()
}

impl Index {
    fn add(&mut self, r: &Record) {
        self.ongoing += 1;
        bump(&mut self.src, &r.src);
        bump(&mut self.dst, &r.dst);
        bump(&mut self.data, &r.data);
        for t in &r.tags {
            bump(&mut self.tags, t);
        }
    }

    fn remove(&mut self, r: &Record) {
        self.ongoing = self.ongoing.saturating_sub(1);
        drop_one(&mut self.src, &r.src);
        drop_one(&mut self.dst, &r.dst);
        drop_one(&mut self.data, &r.data);
        for t in &r.tags {
            drop_one(&mut self.tags, t);
        }
    }

    fn eq(&self, field: Field, value: &str) -> usize {
        let map = match field {
            Field::Any => return self.ongoing,
            Field::Src => &self.src,
            Field::Dst => &self.dst,
            Field::Data => &self.data,
        };
        map.get(value).copied().unwrap_or(0)
    }
}

/// The dlgs table: every record, found by Call-ID, plus the count indexes and the deadline
/// queue of the cleaner. Plain data: the module shares it behind one lock (see the crate
/// page).
#[derive(Debug, Default)]
pub struct Store {
    config: Config,
    /// Records by creation sequence (the order `dlgs.list` shows).
    records: BTreeMap<u64, Record>,
    /// Call-ID → sequences of its records, oldest first (the last is the current attempt).
    by_callid: HashMap<String, Vec<u64>>,
    index: Index,
    stats: Stats,
    /// (deadline, sequence), earliest first; entries made stale by a state change are skipped.
    deadlines: BinaryHeap<Reverse<(u64, u64)>>,
    next_seq: u64,
    ruid_counter: u64,
}

impl Store {
    /// An empty table.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// The parameters in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Records in memory (finished ones included).
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// No record in memory.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// `dlgs_init()` on an INVITE with the three script strings, the Call-ID and the From tag.
    /// See [`Store::insert`].
    pub fn init(
        &mut self,
        src: &str,
        dst: &str,
        data: &str,
        call_id: &str,
        from_tag: &str,
        now: u64,
    ) -> Result<&Record, DlgsError> {
        self.insert(
            &NewRecord {
                src,
                dst,
                data,
                call_id,
                from_tag,
                ..NewRecord::default()
            },
            now,
        )
    }

    /// Creates the record of an INVITE. Refused with [`DlgsError::Duplicate`] when a record
    /// with this Call-ID exists, except (as Kamailio master) when the newest one is finished
    /// and was made for a different Via branch: an INVITE re-sent after a 401/407 is a new
    /// attempt and gets a new record.
    pub fn insert(&mut self, new: &NewRecord<'_>, now: u64) -> Result<&Record, DlgsError> {
        let call_id = new.call_id.trim();
        if call_id.is_empty() {
            return Err(DlgsError::MissingCallId);
        }
        if new.from_tag.is_empty() {
            return Err(DlgsError::MissingFromTag {
                call_id: call_id.to_owned(),
            });
        }
        if let Some(current) = self.current(call_id) {
            if !(current.state.is_finished() && current.branch != new.branch) {
                return Err(DlgsError::Duplicate {
                    call_id: call_id.to_owned(),
                });
            }
        }
        self.ruid_counter += 1;
        let record = Record {
            ruid: format!(
                "dlgs-{:x}-{:x}-{}-{:x}",
                now,
                self.config.pid,
                reversed_hex(self.ruid_counter),
                core_hash(call_id.as_bytes())
            ),
            callid: call_id.to_owned(),
            ftag: new.from_tag.to_owned(),
            ttag: new.to_tag.to_owned(),
            branch: new.branch.to_owned(),
            src: new.src.to_owned(),
            dst: new.dst.to_owned(),
            data: new.data.to_owned(),
            state: State::Init,
            ts_init: now,
            ts_answer: 0,
            ts_finish: 0,
            tags: Vec::new(),
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.index.add(&record);
        if let Some(n) = self.stats.active.get_mut(State::Init.index()) {
            *n += 1;
        }
        self.deadlines
            .push(Reverse((record.deadline(&self.config), seq)));
        self.by_callid
            .entry(record.callid.clone())
            .or_default()
            .push(seq);
        Ok(self.records.entry(seq).or_insert(record))
    }

    /// The current record of a Call-ID (the newest attempt).
    pub fn current(&self, call_id: &str) -> Option<&Record> {
        let seq = self.current_seq(call_id.trim())?;
        self.records.get(&seq)
    }

    fn current_seq(&self, call_id: &str) -> Option<u64> {
        self.by_callid.get(call_id)?.last().copied()
    }

    /// `dlgs_update()` on a request: `ACK` confirms an answered record, `BYE` terminates an
    /// answered or confirmed one, `CANCEL` finishes an unanswered one as `NotAnswered`; other
    /// methods and other states are ignored. Matching is by Call-ID alone, either direction.
    pub fn update_request(&mut self, method: &str, call_id: &str, now: u64) -> Update {
        let Some(seq) = self.current_seq(call_id.trim()) else {
            return Update::NoRecord;
        };
        let Some(state) = self.records.get(&seq).map(|r| r.state) else {
            return Update::NoRecord;
        };
        let to = match (method, state) {
            ("ACK", State::Answered) => State::Confirmed,
            ("BYE", State::Answered | State::Confirmed) => State::Terminated,
            ("CANCEL", State::Init | State::Progress) => State::NotAnswered,
            _ => return Update::Ignored(state),
        };
        self.transition(seq, to, now, "")
    }

    /// A reply seen by the module (Kamailio follows them automatically): for a CSeq method
    /// `INVITE`, 1xx moves `Init` to `Progress`, 2xx moves `Init`/`Progress` to `Answered`
    /// (stamping `ts_answer`, taking the To tag when the record has none), ≥ 300 finishes
    /// `Init`/`Progress` as `NotAnswered`. Anything else is ignored.
    pub fn update_reply(
        &mut self,
        code: u16,
        cseq_method: &str,
        call_id: &str,
        to_tag: &str,
        now: u64,
    ) -> Update {
        let Some(seq) = self.current_seq(call_id.trim()) else {
            return Update::NoRecord;
        };
        let Some(state) = self.records.get(&seq).map(|r| r.state) else {
            return Update::NoRecord;
        };
        if cseq_method != "INVITE" {
            return Update::Ignored(state);
        }
        let to = match (code, state) {
            (100..=199, State::Init) => State::Progress,
            (200..=299, State::Init | State::Progress) => State::Answered,
            (300.., State::Init | State::Progress) => State::NotAnswered,
            _ => return Update::Ignored(state),
        };
        self.transition(seq, to, now, to_tag)
    }

    fn transition(&mut self, seq: u64, to: State, now: u64, to_tag: &str) -> Update {
        let Some(r) = self.records.get_mut(&seq) else {
            return Update::NoRecord;
        };
        let from = r.state;
        let old_deadline = r.deadline(&self.config);
        if to.is_finished() && from.is_ongoing() {
            self.index.remove(r);
        }
        if let Some(n) = self.stats.active.get_mut(from.index()) {
            *n = n.saturating_sub(1);
        }
        if let Some(n) = self.stats.active.get_mut(to.index()) {
            *n += 1;
        }
        r.state = to;
        match to {
            State::Answered => {
                r.ts_answer = now;
                if r.ttag.is_empty() {
                    to_tag.clone_into(&mut r.ttag);
                }
            }
            State::Terminated | State::NotAnswered => r.ts_finish = now,
            _ => {}
        }
        let deadline = r.deadline(&self.config);
        if deadline != old_deadline {
            self.deadlines.push(Reverse((deadline, seq)));
        }
        Update::Changed { from, to }
    }

    /// The cleaner: removes every record whose lifetime is past (`deadline < now`, the
    /// deadline being [`Record::deadline`]) and returns them, oldest deadline first. Each
    /// removed record counts in [`Stats::finals`] under its state. Costs O(removed · log n).
    pub fn expire(&mut self, now: u64) -> Vec<Record> {
        let mut removed = Vec::new();
        while let Some(&Reverse((deadline, seq))) = self.deadlines.peek() {
            if deadline >= now {
                break;
            }
            self.deadlines.pop();
            let current = match self.records.get(&seq) {
                Some(r) => r.deadline(&self.config),
                None => continue,
            };
            if current != deadline {
                continue; // stale: the record changed state since
            }
            if let Some(r) = self.remove(seq) {
                removed.push(r);
            }
        }
        removed
    }

    fn remove(&mut self, seq: u64) -> Option<Record> {
        let r = self.records.remove(&seq)?;
        if r.state.is_ongoing() {
            self.index.remove(&r);
        }
        if let Some(n) = self.stats.active.get_mut(r.state.index()) {
            *n = n.saturating_sub(1);
        }
        if let Some(n) = self.stats.finals.get_mut(r.state.index()) {
            *n += 1;
        }
        if let Some(seqs) = self.by_callid.get_mut(&r.callid) {
            seqs.retain(|s| *s != seq);
            if seqs.is_empty() {
                self.by_callid.remove(&r.callid);
            }
        }
        Some(r)
    }

    /// `dlgs_count(field, op, data)` with names already parsed; see [`Store::count_filter`].
    pub fn count(&self, field: Field, op: Op, data: &str) -> Result<usize, DlgsError> {
        match (field, op) {
            (Field::Any, _) | (_, Op::Eq | Op::Ne) => Ok(self.count_indexed(field, op, data)),
            _ => Ok(self.count_filter(&Filter::new(field, op, data)?)),
        }
    }

    /// Ongoing records (states 0-3) passing the filter. `any` counts every ongoing record
    /// whatever the operator and value. O(1) for `any`, `eq` and `ne`; the other operators
    /// scan the table.
    pub fn count_filter(&self, filter: &Filter) -> usize {
        match (filter.field(), filter.op()) {
            (Field::Any, _) | (_, Op::Eq | Op::Ne) => {
                self.count_indexed(filter.field(), filter.op(), filter.value())
            }
            (field, _) => self
                .records
                .values()
                .filter(|r| r.state.is_ongoing() && filter.matches(r.field(field)))
                .count(),
        }
    }

    fn count_indexed(&self, field: Field, op: Op, value: &str) -> usize {
        let eq = self.index.eq(field, value);
        match (field, op) {
            (Field::Any, _) | (_, Op::Eq) => eq,
            _ => self.index.ongoing.saturating_sub(eq),
        }
    }

    /// Ongoing records only, in creation order.
    pub fn ongoing(&self) -> impl Iterator<Item = &Record> {
        self.records.values().filter(|r| r.state.is_ongoing())
    }

    /// Every record in memory, finished ones included, in creation order (`dlgs.list`).
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.records.values()
    }

    /// Records (finished included) whose field passes the filter, `any` read as `src`, in
    /// creation order (`dlgs.getall`; the first one is `dlgs.get`).
    pub fn matching<'s>(&'s self, filter: &'s Filter) -> impl Iterator<Item = &'s Record> + 's {
        self.records
            .values()
            .filter(move |r| filter.matches(r.field(filter.field())))
    }

    /// `dlgs_tags_add(vtag)`: appends the tag to the current record of the Call-ID (a tag
    /// may be added twice). Errors: empty tag, no record.
    pub fn tags_add(&mut self, call_id: &str, tag: &str) -> Result<(), DlgsError> {
        if tag.is_empty() {
            return Err(DlgsError::EmptyTag);
        }
        let r = self.current_mut(call_id)?;
        r.tags.push(tag.to_owned());
        if r.state.is_ongoing() {
            bump(&mut self.index.tags, tag);
        }
        Ok(())
    }

    /// `dlgs_tags_rm(vtag)`: removes the first equal tag of the current record of the
    /// Call-ID. `Ok(false)` when the record did not have it (still success for the script).
    pub fn tags_rm(&mut self, call_id: &str, tag: &str) -> Result<bool, DlgsError> {
        if tag.is_empty() {
            return Err(DlgsError::EmptyTag);
        }
        let r = self.current_mut(call_id)?;
        let Some(pos) = r.tags.iter().position(|t| t == tag) else {
            return Ok(false);
        };
        r.tags.remove(pos);
        if r.state.is_ongoing() {
            drop_one(&mut self.index.tags, tag);
        }
        Ok(true)
    }

    /// `dlgs_tags_count(vtag)`: occurrences of the tag on ongoing records (twice on one record
    /// counts 2). O(1).
    pub fn tags_count(&self, tag: &str) -> usize {
        self.index.tags.get(tag).copied().unwrap_or(0)
    }

    fn current_mut(&mut self, call_id: &str) -> Result<&mut Record, DlgsError> {
        let call_id = call_id.trim();
        self.current_seq(call_id)
            .and_then(|seq| self.records.get_mut(&seq))
            .ok_or_else(|| DlgsError::NoRecord {
                call_id: call_id.to_owned(),
            })
    }

    /// The `dlgs.stats` counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Approximate bytes the table holds for everything it has: records (struct and strings),
    /// the Call-ID index, the count indexes and the deadline queue, by allocated capacity.
    pub fn memory_bytes(&self) -> usize {
        // A B-tree node holds up to 11 entries; count each entry plus its share of a node's
        // bookkeeping (about one pointer).
        let records: usize = self
            .records
            .values()
            .map(|r| size_of::<(u64, Record)>() + size_of::<usize>() + r.heap_bytes())
            .sum();
        let by_callid = self.by_callid.capacity() * (size_of::<(String, Vec<u64>)>() + 1)
            + self
                .by_callid
                .iter()
                .map(|(k, v)| k.capacity() + v.capacity() * size_of::<u64>())
                .sum::<usize>();
        let index = map_bytes(&self.index.src)
            + map_bytes(&self.index.dst)
            + map_bytes(&self.index.data)
            + map_bytes(&self.index.tags);
        let deadlines = self.deadlines.capacity() * size_of::<Reverse<(u64, u64)>>();
        size_of::<Self>() + records + by_callid + index + deadlines
    }

    /// [`Store::memory_bytes`] divided by the number of records (0 when empty): what one more
    /// record costs on average, indexes included. Equal src/dst/data values share index keys,
    /// so a table of distinct values shows the upper bound.
    pub fn bytes_per_record(&self) -> usize {
        self.memory_bytes().checked_div(self.len()).unwrap_or(0)
    }
}

/// The counter part of a `ruid`: hex digits, least significant first.
fn reversed_hex(mut n: u64) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::new();
    loop {
        let d = (n & 0xf) as usize;
        s.push(char::from(HEX.get(d).copied().unwrap_or(b'0')));
        n >>= 4;
        if n == 0 {
            return s;
        }
    }
}

/// Kamailio's `core_hash()` of one string (the Call-ID hash part of a `ruid`): four bytes at a
/// time, each read as a signed char, mixed with `v ^ (v >> 3)`, folded at the end.
fn core_hash(s: &[u8]) -> u32 {
    let c = |b: u8| i32::from(b as i8) as u32;
    let mix = |h: u32, v: u32| h.wrapping_add(v ^ (v >> 3));
    let mut h = 0u32;
    let mut words = s.chunks_exact(4);
    for w in &mut words {
        let v = w.iter().fold(0u32, |acc, &b| (acc << 8).wrapping_add(c(b)));
        h = mix(h, v);
    }
    let v = words
        .remainder()
        .iter()
        .fold(0u32, |acc, &b| (acc << 8).wrapping_add(c(b)));
    h = mix(h, v);
    h.wrapping_add(h >> 11)
        .wrapping_add((h >> 13).wrapping_add(h >> 23))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{count_return, tags_return};

    type R = Result<(), DlgsError>;

    fn store() -> Store {
        Store::new(Config::default())
    }

    fn state(s: &Store, call_id: &str) -> Option<State> {
        s.current(call_id).map(|r| r.state)
    }

    fn changed(from: State, to: State) -> Update {
        Update::Changed { from, to }
    }

    #[test]
    fn answered_call_goes_init_progress_answered_confirmed_terminated() -> R {
        let mut s = store();
        s.init("sip:a@x", "sip:b@y", "d", "c1", "ft", 100)?;
        assert_eq!(state(&s, "c1"), Some(State::Init));
        assert_eq!(
            s.update_reply(100, "INVITE", "c1", "", 100),
            changed(State::Init, State::Progress)
        );
        assert_eq!(
            s.update_reply(180, "INVITE", "c1", "tt", 101),
            Update::Ignored(State::Progress)
        );
        assert_eq!(
            s.update_reply(200, "INVITE", "c1", "tt", 102),
            changed(State::Progress, State::Answered)
        );
        assert_eq!(
            s.current("c1").map(|r| (r.ts_answer, r.ttag.as_str())),
            Some((102, "tt"))
        );
        assert_eq!(
            s.update_request("ACK", "c1", 103),
            changed(State::Answered, State::Confirmed)
        );
        assert_eq!(
            s.update_request("ACK", "c1", 104),
            Update::Ignored(State::Confirmed)
        );
        assert_eq!(
            s.update_request("BYE", "c1", 200),
            changed(State::Confirmed, State::Terminated)
        );
        assert_eq!(s.current("c1").map(|r| r.ts_finish), Some(200));
        assert_eq!(
            s.update_request("BYE", "c1", 201),
            Update::Ignored(State::Terminated)
        );
        Ok(())
    }

    #[test]
    fn two_hundred_straight_from_init_and_bye_before_ack() -> R {
        let mut s = store();
        s.init("a", "b", "", "c1", "ft", 0)?;
        assert_eq!(
            s.update_reply(200, "INVITE", "c1", "t", 1),
            changed(State::Init, State::Answered)
        );
        assert_eq!(
            s.update_request("BYE", "c1", 2),
            changed(State::Answered, State::Terminated)
        );
        Ok(())
    }

    #[test]
    fn bye_from_either_side_matches_by_call_id_alone() -> R {
        let mut s = store();
        s.init("a", "b", "", " c1 ", "caller-tag", 0)?;
        s.update_reply(200, "INVITE", "c1", "callee-tag", 1);
        s.update_request("ACK", "c1", 1);
        // The callee's BYE carries the tags the other way round: the module ignores them.
        assert_eq!(
            s.update_request("BYE", "c1", 5),
            changed(State::Confirmed, State::Terminated)
        );
        s.init("a", "b", "", "c2", "caller-tag", 0)?;
        s.update_reply(200, "INVITE", "c2", "callee-tag", 1);
        s.update_request("ACK", "c2", 1);
        assert_eq!(
            s.update_request("BYE", "c2", 5),
            changed(State::Confirmed, State::Terminated)
        );
        Ok(())
    }

    #[test]
    fn unanswered_invite_finishes_not_answered_and_a_late_200_does_not_revive() -> R {
        let mut s = store();
        s.init("a", "b", "", "c1", "ft", 0)?;
        s.update_reply(180, "INVITE", "c1", "tt", 1);
        assert_eq!(
            s.update_reply(486, "INVITE", "c1", "tt", 3),
            changed(State::Progress, State::NotAnswered)
        );
        assert_eq!(
            s.update_reply(200, "INVITE", "c1", "tt", 4),
            Update::Ignored(State::NotAnswered)
        );
        assert_eq!(
            s.current("c1").map(|r| (r.ts_finish, r.ts_answer)),
            Some((3, 0))
        );
        Ok(())
    }

    #[test]
    fn cancel_finishes_init_or_progress_but_not_an_answered_call() -> R {
        let mut s = store();
        s.init("a", "b", "", "c1", "ft", 0)?;
        assert_eq!(
            s.update_request("CANCEL", "c1", 2),
            changed(State::Init, State::NotAnswered)
        );
        s.init("a", "b", "", "c2", "ft", 0)?;
        s.update_reply(183, "INVITE", "c2", "", 1);
        assert_eq!(
            s.update_request("CANCEL", "c2", 2),
            changed(State::Progress, State::NotAnswered)
        );
        assert_eq!(
            s.update_reply(487, "INVITE", "c2", "", 2),
            Update::Ignored(State::NotAnswered)
        );
        s.init("a", "b", "", "c3", "ft", 0)?;
        s.update_reply(200, "INVITE", "c3", "t", 1);
        assert_eq!(
            s.update_request("CANCEL", "c3", 2),
            Update::Ignored(State::Answered)
        );
        Ok(())
    }

    #[test]
    fn ignored_events_leave_the_record_alone() -> R {
        let mut s = store();
        s.init("a", "b", "", "c1", "ft", 0)?;
        assert_eq!(
            s.update_request("BYE", "c1", 1),
            Update::Ignored(State::Init)
        );
        assert_eq!(
            s.update_request("ACK", "c1", 1),
            Update::Ignored(State::Init)
        );
        assert_eq!(
            s.update_request("INVITE", "c1", 1),
            Update::Ignored(State::Init)
        );
        assert_eq!(
            s.update_reply(200, "PRACK", "c1", "t", 1),
            Update::Ignored(State::Init)
        );
        assert_eq!(s.update_request("BYE", "nope", 1), Update::NoRecord);
        assert_eq!(
            s.update_reply(200, "INVITE", "nope", "t", 1),
            Update::NoRecord
        );
        Ok(())
    }

    #[test]
    fn duplicates_and_missing_keys_are_refused() -> R {
        let mut s = store();
        s.init("a", "b", "", "c1", "ft", 0)?;
        assert!(matches!(
            s.init("x", "y", "", "c1", "other", 0),
            Err(DlgsError::Duplicate { .. })
        ));
        assert!(matches!(
            s.init("x", "y", "", "c1 ", "ft", 0),
            Err(DlgsError::Duplicate { .. })
        ));
        assert!(matches!(
            s.init("x", "y", "", "c2", "", 0),
            Err(DlgsError::MissingFromTag { .. })
        ));
        assert!(matches!(
            s.init("x", "y", "", "  ", "ft", 0),
            Err(DlgsError::MissingCallId)
        ));
        assert_eq!(s.len(), 1);
        Ok(())
    }

    #[test]
    fn an_auth_retry_with_a_new_branch_gets_a_new_record() -> R {
        let mut s = store();
        let first = NewRecord {
            src: "a",
            dst: "b",
            call_id: "c1",
            from_tag: "ft",
            branch: "z9hG4bK1",
            ..NewRecord::default()
        };
        s.insert(&first, 0)?;
        // Same branch while ongoing or a different one while ongoing: refused.
        assert!(s
            .insert(
                &NewRecord {
                    branch: "z9hG4bK2",
                    ..first
                },
                0
            )
            .is_err());
        s.update_reply(407, "INVITE", "c1", "t", 1);
        assert!(
            s.insert(&first, 1).is_err(),
            "a retransmission of the first INVITE"
        );
        s.insert(
            &NewRecord {
                branch: "z9hG4bK2",
                ..first
            },
            2,
        )?;
        assert_eq!(s.len(), 2);
        assert_eq!(s.current("c1").map(|r| r.branch.as_str()), Some("z9hG4bK2"));
        s.update_reply(200, "INVITE", "c1", "t", 3);
        assert_eq!(state(&s, "c1"), Some(State::Answered));
        assert_eq!(s.count(Field::Any, Op::Eq, "*"), Ok(1));
        Ok(())
    }

    #[test]
    fn lifetimes_expire_on_a_virtual_clock() -> R {
        let mut s = store();
        s.init("a", "b", "", "init", "ft", 1000)?; // 0-2: ts_init + 180
        s.init("a", "b", "", "answered", "ft", 1000)?;
        s.update_reply(200, "INVITE", "answered", "t", 1100);
        s.init("a", "b", "", "active", "ft", 1000)?; // confirmed: ts_answer + 10800
        s.update_reply(200, "INVITE", "active", "t", 1005);
        s.update_request("ACK", "active", 1005);
        s.init("a", "b", "", "done", "ft", 1000)?; // finished: ts_finish + 10
        s.update_reply(603, "INVITE", "done", "t", 1001);

        assert!(
            s.expire(1011).is_empty(),
            "exactly at the deadline it stays"
        );
        let gone: Vec<String> = s.expire(1012).into_iter().map(|r| r.callid).collect();
        assert_eq!(gone, vec!["done"]);
        let gone: Vec<String> = s.expire(1181).into_iter().map(|r| r.callid).collect();
        assert_eq!(
            gone,
            vec!["init", "answered"],
            "answered still runs on init_lifetime"
        );
        assert!(s.expire(1005 + 10800).is_empty());
        let gone = s.expire(1005 + 10801);
        assert_eq!(gone.first().map(|r| r.state), Some(State::Confirmed));
        assert!(s.is_empty());
        let st = s.stats();
        assert_eq!(State::ALL.map(|x| st.active(x)), [0; 6]);
        assert_eq!(State::ALL.map(|x| st.removed(x)), [1, 0, 1, 1, 0, 1]);
        assert_eq!(s.count(Field::Any, Op::Eq, ""), Ok(0));
        Ok(())
    }

    #[test]
    fn a_state_change_moves_the_deadline() -> R {
        let mut s = store();
        s.init("a", "b", "", "c1", "ft", 0)?;
        s.update_reply(200, "INVITE", "c1", "t", 100);
        s.update_request("ACK", "c1", 100);
        assert!(
            s.expire(1000).is_empty(),
            "confirmed: the init deadline is stale"
        );
        s.update_request("BYE", "c1", 2000);
        assert!(s.expire(2010).is_empty());
        assert_eq!(s.expire(2011).len(), 1);
        Ok(())
    }

    fn counting_store() -> Result<Store, DlgsError> {
        let mut s = store();
        s.init("sip:alice@a.com", "sip:bob@b.com", "gold", "c1", "f", 0)?;
        s.init("sip:alice@a.com", "sip:carol@b.com", "silver", "c2", "f", 0)?;
        s.init("sip:dave@d.org", "sip:bob@b.com", "gold", "c3", "f", 0)?;
        s.init("sip:alice@a.com", "sip:bob@b.com", "gold", "c4", "f", 0)?;
        s.update_request("CANCEL", "c4", 1); // finished: never counted
        Ok(s)
    }

    #[test]
    fn counts_every_field_and_operator_over_ongoing_records() -> R {
        let s = counting_store()?;
        let c =
            |f: &str, o: &str, v: &str| Field::parse(f).and_then(|f| s.count(f, Op::parse(o)?, v));
        assert_eq!(c("any", "eq", "*"), Ok(3));
        assert_eq!(c("any", "re", "(bad"), Ok(3), "any ignores op and value");
        assert_eq!(c("src", "eq", "sip:alice@a.com"), Ok(2));
        assert_eq!(c("dst", "eq", "sip:bob@b.com"), Ok(2));
        assert_eq!(c("data", "eq", "gold"), Ok(2));
        assert_eq!(c("src", "ne", "sip:alice@a.com"), Ok(1));
        assert_eq!(c("data", "ne", "nothing"), Ok(3));
        assert_eq!(c("dst", "re", "BOB@"), Ok(2));
        assert_eq!(c("src", "re", "^sip:(alice|dave)@"), Ok(3));
        assert_eq!(c("src", "sw", "sip:al"), Ok(2));
        assert_eq!(c("data", "sw", "s"), Ok(1));
        assert_eq!(c("dst", "fm", "sip:*@b.com"), Ok(3));
        assert_eq!(c("src", "fm", "sip:[a-c]*"), Ok(2));
        assert_eq!(c("data", "fm", "?old"), Ok(2));
        assert_eq!(c("src", "fm", "sip:alice"), Ok(0));
        assert!(matches!(
            c("src", "re", "(bad"),
            Err(DlgsError::InvalidMatchingValue { .. })
        ));
        assert!(matches!(
            c("from", "eq", "x"),
            Err(DlgsError::InvalidField(_))
        ));
        assert_eq!(count_return(c("src", "eq", "nobody")), -1);
        assert_eq!(count_return(c("src", "eq", "sip:alice@a.com")), 2);
        assert_eq!(count_return(c("src", "xx", "x")), -2);
        Ok(())
    }

    #[test]
    fn indexed_counts_agree_with_a_scan() -> R {
        let mut s = counting_store()?;
        s.update_reply(200, "INVITE", "c1", "t", 2);
        s.update_request("BYE", "c1", 3);
        s.expire(10_000);
        s.init("sip:alice@a.com", "x", "gold", "c5", "f", 10_000)?;
        for field in [Field::Src, Field::Dst, Field::Data] {
            for v in ["sip:alice@a.com", "sip:bob@b.com", "gold", "none"] {
                for op in [Op::Eq, Op::Ne] {
                    let f = Filter::new(field, op, v)?;
                    let scanned = s.ongoing().filter(|r| f.matches(r.field(field))).count();
                    assert_eq!(s.count_filter(&f), scanned, "{field} {op} {v}");
                }
            }
        }
        Ok(())
    }

    #[test]
    fn tags_attach_to_the_calls_record_and_count_on_ongoing_ones() -> R {
        let mut s = store();
        s.init("a", "b", "", "c1", "f", 0)?;
        s.init("a", "b", "", "c2", "f", 0)?;
        s.tags_add("c1", "10.0.0.1")?;
        s.tags_add("c1", "10.0.0.1")?;
        s.tags_add("c2", "10.0.0.1")?;
        s.tags_add("c2", "vip")?;
        assert_eq!(s.tags_count("10.0.0.1"), 3, "twice on one record counts 2");
        assert_eq!(s.tags_rm("c1", "10.0.0.1"), Ok(true));
        assert_eq!(
            s.current("c1").map(|r| r.tags.len()),
            Some(1),
            "only the first equal tag"
        );
        assert_eq!(s.tags_count("10.0.0.1"), 2);
        assert_eq!(s.tags_rm("c1", "absent"), Ok(false));
        assert_eq!(tags_return(s.tags_rm("c1", "absent")), 1);
        assert_eq!(tags_return(s.tags_add("nope", "t")), -1);
        assert_eq!(tags_return(s.tags_add("c1", "")), -1);
        assert_eq!(tags_return(s.tags_rm("c1", "")), -1);
        s.update_request("CANCEL", "c2", 1);
        assert_eq!(s.tags_count("10.0.0.1"), 1, "finished records do not count");
        assert_eq!(s.tags_count("vip"), 0);
        assert_eq!(count_return(Ok(s.tags_count("vip"))), -1);
        s.tags_add("c2", "late")?; // a finished record still takes tags, uncounted
        assert_eq!(s.tags_count("late"), 0);
        assert_eq!(s.tags_rm("c2", "vip"), Ok(true));
        assert_eq!(s.tags_count("vip"), 0);
        Ok(())
    }

    #[test]
    fn memory_accounting_counts_structs_and_strings() -> R {
        let mut s = store();
        assert_eq!(s.bytes_per_record(), 0);
        for i in 0..100 {
            s.init(
                &format!("sip:user{i}@example.com"),
                "sip:gw@example.com",
                "data",
                &format!("call-{i}"),
                "ft",
                0,
            )?;
        }
        let per = s.bytes_per_record();
        assert!(per > size_of::<Record>() + 40, "{per}");
        assert!(per < 2000, "{per}");
        Ok(())
    }

    #[test]
    fn ruid_has_time_pid_reversed_counter_and_hash() -> R {
        let mut s = Store::new(Config {
            pid: 0x38e0,
            ..Config::default()
        });
        for i in 0..0x1a {
            s.init("a", "b", "", &format!("c{i}"), "f", 0x10)?;
        }
        let ruid = s.current("c25").map(|r| r.ruid.clone()).unwrap_or_default();
        assert!(ruid.starts_with("dlgs-10-38e0-a1-"), "{ruid}");
        assert_eq!(reversed_hex(0x1a), "a1");
        assert_eq!(reversed_hex(0), "0");
        Ok(())
    }

    #[test]
    fn the_store_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Store>();
        assert_eq!(Config::timer_interval_from(0), 30);
        assert_eq!(Config::timer_interval_from(-5), 30);
        assert_eq!(Config::timer_interval_from(60), 60);
    }
}
