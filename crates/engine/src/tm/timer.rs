//! The transaction timers: one thread, one hashed timer wheel of deadlines. An entry names
//! a transaction by id and what to do; the machines ignore events for deadlines they
//! superseded. A transaction remembers the slots of its distant deadlines ([`Armed`]) and
//! drops them from the wheel when it is freed ([`TimerQueue::forget`]): without that, an
//! INVITE transaction freed 5 s after its answer would leave its fr_inv_timer (120 s) and
//! lifetime (180 s) entries in the wheel for minutes, and the wheel would grow with the call
//! rate times those minutes. The thread wakes at most once per tick (Kamailio's tm ticks are 62.5 ms):
//! a deadline fires up to one tick late, and thousands of deadlines a second cost a few
//! wake-ups.
//!
//! The wheel has [`SLOTS`] slots of one tick each ([`TICK_MS`]); an entry goes to the slot of
//! its deadline's tick, modulo the wheel. Arming is a push on that slot's list (O(1), where a
//! binary heap of ~100,000 mostly stale entries cost a logarithmic sift on every push and
//! pop); firing walks the slots the clock went past and takes the entries that are due,
//! leaving those of a later turn of the wheel (deadlines more than `SLOTS × TICK_MS` away,
//! such as max_inv_lifetime) for the next turn.

use parking_lot::{Condvar, Mutex};
use sable_transaction::{Millis, Timer};

/// Milliseconds per slot of the wheel (the timer thread's tick).
pub(crate) const TICK_MS: u64 = 10;
/// Slots in the wheel: 4,096 ticks of 10 ms, about 41 s, more than the non-INVITE timers.
pub(crate) const SLOTS: usize = 4096;
/// A deadline at least this many ticks (1 s) ahead is remembered by its transaction, to be
/// dropped when the transaction is freed; nearer ones (retransmissions) mostly fire first.
const REMEMBER_TICKS: u64 = 100;
/// A slot list whose capacity is more than this many times its length (and more than
/// [`SLOT_KEEP`]) gives the excess back: the wheel does not stay sized for a past peak.
const SLOT_SLACK: usize = 4;
/// The capacity a slot list may keep however empty.
const SLOT_KEEP: usize = 16;

/// The slots of a transaction's distant deadlines (each slot once). Full, it stops
/// remembering: the entries it could not note lapse on their own, as every entry did before.
#[derive(Debug, Default)]
pub(crate) struct Armed {
    slots: [u16; 10],
    len: u8,
}

impl Armed {
    /// Notes `slot` (once).
    pub(crate) fn note(&mut self, slot: u16) {
        let n = usize::from(self.len);
        let known = self.slots.get(..n).unwrap_or_default();
        if known.contains(&slot) {
            return;
        }
        if let Some(free) = self.slots.get_mut(n) {
            *free = slot;
            self.len += 1;
        }
    }

    /// The noted slots.
    pub(crate) fn slots(&self) -> &[u16] {
        self.slots.get(..usize::from(self.len)).unwrap_or_default()
    }
}

/// What a timer entry does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerWhat {
    /// A timer of the server (upstream) machine.
    Uas(Timer),
    /// A timer of branch `n`'s client machine.
    Client(usize, Timer),
    /// A timer of the CANCEL sent on branch `n`.
    Cancel(usize, Timer),
    /// tm's final-response timer of branch `n` (fr_timer / fr_inv_timer), generation `g`.
    Fr(usize, u32),
    /// max_inv_lifetime / max_noninv_lifetime.
    Lifetime,
    /// wt_timer after the final reply: the transaction may be freed.
    Delete,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    pub at: Millis,
    seq: u64,
    pub tx: u64,
    pub what: TimerWhat,
}

/// The wheel (under the queue's lock).
struct Wheel {
    slots: Vec<Vec<Entry>>,
    /// The first tick not yet walked past: every entry of an earlier tick has fired.
    cursor: u64,
    len: usize,
    seq: u64,
    /// The deadline the timer thread sleeps until, while it sleeps: an earlier new entry
    /// wakes it.
    sleeping_until: Option<Millis>,
}

impl Default for Wheel {
    fn default() -> Self {
        Wheel {
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            cursor: 0,
            len: 0,
            seq: 0,
            sleeping_until: None,
        }
    }
}

fn tick_of(at: Millis) -> u64 {
    at.0 / TICK_MS
}

fn slot_of(tick: u64) -> usize {
    usize::try_from(tick % SLOTS as u64).unwrap_or(0)
}

/// Gives back most of a slot list's spare capacity when it is far larger than its length.
fn trim(slot: &mut Vec<Entry>) {
    if slot.capacity() > SLOT_KEEP && slot.capacity() > SLOT_SLACK * slot.len() {
        slot.shrink_to((2 * slot.len()).max(SLOT_KEEP));
    }
}

impl Wheel {
    /// Arms an entry; returns its slot when the deadline is distant enough to be worth
    /// dropping at the transaction's end.
    fn push(&mut self, at: Millis, tx: u64, what: TimerWhat) -> Option<u16> {
        self.seq = self.seq.wrapping_add(1);
        // A deadline already past goes to the next slot walked.
        let tick = tick_of(at).max(self.cursor);
        let index = slot_of(tick);
        let slot = self.slots.get_mut(index)?;
        slot.push(Entry {
            at,
            seq: self.seq,
            tx,
            what,
        });
        self.len += 1;
        if tick >= self.cursor + REMEMBER_TICKS {
            u16::try_from(index).ok()
        } else {
            None
        }
    }

    /// Drops the one entry `what` of `tx` due at `at`, if it is still waiting (its slot is
    /// the deadline's: a deadline is never in the past when it is armed).
    fn cancel(&mut self, at: Millis, tx: u64, what: TimerWhat) {
        if tick_of(at) < self.cursor {
            return;
        }
        if let Some(slot) = self.slots.get_mut(slot_of(tick_of(at))) {
            if let Some(k) = slot
                .iter()
                .position(|e| e.tx == tx && e.what == what && e.at == at)
            {
                slot.swap_remove(k);
                self.len -= 1;
            }
        }
    }

    /// Drops every entry of `tx` from the given slots.
    fn forget(&mut self, tx: u64, slots: &[u16]) {
        for &index in slots {
            if let Some(slot) = self.slots.get_mut(usize::from(index)) {
                let before = slot.len();
                slot.retain(|e| e.tx != tx);
                self.len -= before - slot.len();
                trim(slot);
            }
        }
    }

    /// Takes the entries due at `now` into `out`, in slot order.
    fn take_due(&mut self, now: Millis, out: &mut Vec<Entry>) {
        let end = tick_of(now);
        // Past ticks are walked once; the current one is looked at until the clock leaves
        // it (an entry of it may be due later within the tick). After a long pause, one turn
        // of the wheel covers every slot.
        let first = self.cursor.max(end.saturating_sub(SLOTS as u64 - 1));
        let mut tick = first;
        while tick <= end {
            if let Some(slot) = self.slots.get_mut(slot_of(tick)) {
                if !slot.is_empty() {
                    let before = out.len();
                    let mut k = 0;
                    while k < slot.len() {
                        if slot.get(k).is_some_and(|e| e.at <= now) {
                            out.push(slot.swap_remove(k));
                        } else {
                            k += 1;
                        }
                    }
                    self.len -= out.len() - before;
                    trim(slot);
                }
            }
            tick += 1;
        }
        self.cursor = end;
    }

    /// The earliest deadline within `horizon` ms of `now`, if any (looked for slot by slot:
    /// the first slot holding an entry of this turn gives it).
    fn earliest_within(&self, now: Millis, horizon: u64) -> Option<Millis> {
        if self.len == 0 {
            return None;
        }
        let last = tick_of(Millis(now.0 + horizon));
        let mut tick = self.cursor;
        while tick <= last {
            let turn_end = Millis((tick + 1) * TICK_MS);
            let best = self
                .slots
                .get(slot_of(tick))
                .and_then(|s| s.iter().filter(|e| e.at < turn_end).map(|e| e.at).min());
            if best.is_some() {
                return best;
            }
            tick += 1;
        }
        None
    }
}

/// The queue of deadlines.
#[derive(Default)]
pub struct TimerQueue {
    wheel: Mutex<Wheel>,
    wake: Condvar,
}

impl std::fmt::Debug for TimerQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimerQueue")
            .field("pending", &self.wheel.lock().len)
            .finish()
    }
}

impl TimerQueue {
    /// Arms `what` of `tx` at `at`. Returns the entry's slot when the deadline is distant
    /// (a second or more): the transaction notes it ([`Armed`]) to [`forget`](Self::forget)
    /// it when freed.
    pub fn push(&self, at: Millis, tx: u64, what: TimerWhat) -> Option<u16> {
        let mut w = self.wheel.lock();
        let slot = w.push(at, tx, what);
        let wake = w.sleeping_until.is_some_and(|until| at < until);
        drop(w);
        if wake {
            self.wake.notify_one();
        }
        slot
    }

    /// Drops the entry `what` of `tx` armed for `at` if it has not fired (a retransmission
    /// timer the machine disarmed): it would only fire stale, touching a transaction that
    /// has gone cold.
    pub(crate) fn cancel(&self, at: Millis, tx: u64, what: TimerWhat) {
        self.wheel.lock().cancel(at, tx, what);
    }

    /// Drops the entries of `tx` still waiting in `slots` (a freed transaction's).
    pub(crate) fn forget(&self, tx: u64, slots: &[u16]) {
        if !slots.is_empty() {
            self.wheel.lock().forget(tx, slots);
        }
    }

    /// How many deadlines are waiting.
    pub fn len(&self) -> usize {
        self.wheel.lock().len
    }

    /// The deadlines waiting and the room the wheel's slot lists hold for them.
    pub(crate) fn sizes(&self) -> (usize, usize) {
        let w = self.wheel.lock();
        (w.len, w.slots.iter().map(Vec::capacity).sum())
    }

    /// Whether no deadline is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entries due at `now`, earliest first.
    pub(crate) fn due(&self, now: Millis) -> Vec<Entry> {
        let mut out = Vec::new();
        self.wheel.lock().take_due(now, &mut out);
        out.sort_unstable_by_key(|e| (e.at, e.seq));
        out
    }

    /// Waits until the earliest deadline, but at least `tick` and at most `cap`
    /// milliseconds (or until a new deadline is earlier than the one waited for).
    pub(crate) fn wait(&self, now: Millis, tick: u64, cap: u64) {
        let cap = cap.max(tick);
        let mut w = self.wheel.lock();
        let wait = match w.earliest_within(now, cap) {
            Some(at) => at.0.saturating_sub(now.0).clamp(tick, cap),
            None => cap,
        };
        w.sleeping_until = Some(Millis(now.0 + wait));
        let _ = self
            .wake
            .wait_for(&mut w, std::time::Duration::from_millis(wait));
        w.sleeping_until = None;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    /// A repeatable random source: `rand(n)` gives a number below `n`.
    fn xorshift(mut seed: u64) -> impl FnMut(u64) -> u64 {
        move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        }
    }

    #[test]
    fn due_entries_come_out_in_deadline_order() {
        let q = TimerQueue::default();
        q.push(Millis(30), 7, TimerWhat::Delete);
        q.push(Millis(10), 7, TimerWhat::Lifetime);
        q.push(Millis(20), 7, TimerWhat::Fr(1, 0));
        q.push(Millis(40), 7, TimerWhat::Delete);
        let due: Vec<_> = q.due(Millis(30)).into_iter().map(|e| e.what).collect();
        assert_eq!(
            due,
            vec![TimerWhat::Lifetime, TimerWhat::Fr(1, 0), TimerWhat::Delete]
        );
        assert_eq!(q.len(), 1);
        assert!(q.due(Millis(39)).is_empty());
        assert_eq!(q.due(Millis(40)).len(), 1);
        assert!(q.is_empty());
    }

    #[test]
    fn a_deadline_within_the_current_tick_waits_for_its_millisecond() {
        let q = TimerQueue::default();
        q.push(Millis(1_005), 1, TimerWhat::Delete);
        assert!(q.due(Millis(1_000)).is_empty());
        assert!(q.due(Millis(1_004)).is_empty());
        assert_eq!(q.due(Millis(1_005)).len(), 1);
    }

    #[test]
    fn deadlines_beyond_one_turn_of_the_wheel_fire_on_their_turn() {
        let turn = SLOTS as u64 * TICK_MS;
        let q = TimerQueue::default();
        // Same slot, three turns apart (max_inv_lifetime is more than four turns).
        q.push(Millis(50 + 3 * turn), 3, TimerWhat::Lifetime);
        q.push(Millis(50 + turn), 2, TimerWhat::Lifetime);
        q.push(Millis(50), 1, TimerWhat::Lifetime);
        let mut fired = Vec::new();
        let mut now = 0;
        while now <= 4 * turn {
            for e in q.due(Millis(now)) {
                fired.push((e.tx, now));
            }
            now += 7;
        }
        let first_look = |at: u64| at.div_ceil(7) * 7;
        assert_eq!(
            fired,
            vec![
                (1, first_look(50)),
                (2, first_look(50 + turn)),
                (3, first_look(50 + 3 * turn))
            ],
            "each at the first look at or after its deadline"
        );
    }

    #[test]
    fn a_late_look_fires_everything_due_even_after_a_long_pause() {
        let q = TimerQueue::default();
        for k in 0..100u64 {
            q.push(Millis(k * 997), k, TimerWhat::Delete);
        }
        // Nothing looked for longer than a turn of the wheel.
        let due = q.due(Millis(99 * 997));
        assert_eq!(due.len(), 100);
        assert!(due.windows(2).all(|w| w[0].at <= w[1].at));
        // A deadline already past fires at the next look.
        q.push(Millis(5), 200, TimerWhat::Delete);
        assert_eq!(q.due(Millis(99 * 997)).len(), 1);
        assert!(q.is_empty());
    }

    #[test]
    fn the_earliest_deadline_is_found_for_the_sleep() {
        let q = TimerQueue::default();
        let mut w = q.wheel.lock();
        assert_eq!(w.earliest_within(Millis(0), 1_000), None);
        w.push(Millis(500 + SLOTS as u64 * TICK_MS), 1, TimerWhat::Delete);
        // Its slot is near, but its turn is not.
        assert_eq!(w.earliest_within(Millis(0), 1_000), None);
        w.push(Millis(730), 2, TimerWhat::Delete);
        w.push(Millis(725), 3, TimerWhat::Delete);
        assert_eq!(w.earliest_within(Millis(0), 1_000), Some(Millis(725)));
        assert_eq!(w.earliest_within(Millis(0), 700), None);
    }

    #[test]
    fn a_freed_transaction_takes_its_distant_deadlines_out_of_the_wheel() {
        let q = TimerQueue::default();
        let mut armed = Armed::default();
        // A retransmission 500 ms ahead is not remembered; fr and lifetime are.
        assert_eq!(
            q.push(Millis(500), 1, TimerWhat::Client(0, Timer::TimerA)),
            None
        );
        for (at, what) in [
            (Millis(120_000), TimerWhat::Fr(0, 1)),
            (Millis(180_000), TimerWhat::Lifetime),
            (Millis(120_000), TimerWhat::Fr(0, 2)),
        ] {
            armed.note(q.push(at, 1, what).unwrap());
        }
        assert_eq!(armed.slots().len(), 2, "one slot noted once");
        // Another transaction's entry in the same slot stays.
        q.push(Millis(120_000), 2, TimerWhat::Fr(0, 1));
        assert_eq!(q.len(), 5);
        q.forget(1, armed.slots());
        assert_eq!(q.len(), 2);
        let due: Vec<_> = q.due(Millis(200_000)).iter().map(|e| e.tx).collect();
        assert_eq!(
            due,
            vec![1, 2],
            "the near entry and the other transaction's"
        );
    }

    #[test]
    fn a_cancelled_entry_never_fires_and_others_stay() {
        let q = TimerQueue::default();
        let e = TimerWhat::Client(0, Timer::TimerE);
        q.push(Millis(500), 1, e);
        q.push(Millis(500), 2, e);
        q.push(Millis(500), 1, TimerWhat::Fr(0, 0));
        q.cancel(Millis(500), 1, e);
        // Cancelling what is not there (another deadline, already gone) does nothing.
        q.cancel(Millis(1_000), 1, e);
        q.cancel(Millis(500), 1, e);
        assert_eq!(q.len(), 2);
        let due: Vec<_> = q.due(Millis(500)).iter().map(|x| (x.tx, x.what)).collect();
        assert_eq!(due, vec![(2, e), (1, TimerWhat::Fr(0, 0))]);
        // A deadline the clock went past is not looked for.
        q.push(Millis(900), 3, e);
        assert_eq!(q.due(Millis(950)).len(), 1);
        q.cancel(Millis(900), 3, e);
        assert!(q.is_empty());
    }

    #[test]
    fn armed_stops_noting_when_full() {
        let mut armed = Armed::default();
        for slot in 0..20u16 {
            armed.note(slot);
            armed.note(slot);
        }
        assert_eq!(armed.slots(), &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    }

    #[test]
    fn slot_lists_give_back_the_capacity_of_a_peak() {
        let q = TimerQueue::default();
        for id in 0..1_000 {
            q.push(Millis(2_000), id, TimerWhat::Delete);
        }
        let index = slot_of(tick_of(Millis(2_000)));
        assert!(q.wheel.lock().slots[index].capacity() >= 1_000);
        assert_eq!(q.due(Millis(2_000)).len(), 1_000);
        assert!(q.wheel.lock().slots[index].capacity() <= SLOT_KEEP);
        // Forgetting trims too.
        let mut armed = Vec::new();
        for id in 0..1_000 {
            armed.push(q.push(Millis(60_000), id, TimerWhat::Lifetime).unwrap());
        }
        for id in 0..1_000 {
            q.forget(id, &armed[usize::try_from(id).unwrap()..][..1]);
        }
        assert!(q.is_empty());
        let index = slot_of(tick_of(Millis(60_000)));
        assert!(q.wheel.lock().slots[index].capacity() <= SLOT_KEEP);
    }

    /// Random deadlines, some transactions freed early: what fires is what a sorted list
    /// gives once the freed transactions' distant entries are taken out of it.
    #[test]
    fn forgetting_matches_a_reference_on_a_virtual_clock() {
        let mut rand = xorshift(0x2545_f491_4f6c_dd1d_u64);
        let q = TimerQueue::default();
        // (at, id, slot)
        let mut pending: Vec<(u64, u64, u16)> = Vec::new();
        let mut armed: Vec<Armed> = Vec::new();
        let mut now = 0u64;
        for _ in 0..2_000 {
            for _ in 0..rand(5) {
                let id = armed.len() as u64;
                let mut a = Armed::default();
                for _ in 0..1 + rand(5) {
                    let at = now + rand(200_000);
                    let cursor = q.wheel.lock().cursor;
                    let slot = u16::try_from(slot_of(tick_of(Millis(at)).max(cursor))).unwrap();
                    if let Some(noted) = q.push(Millis(at), id, TimerWhat::Delete) {
                        assert_eq!(noted, slot);
                        a.note(noted);
                    }
                    pending.push((at, id, slot));
                }
                armed.push(a);
            }
            if !armed.is_empty() && rand(2) == 0 {
                let id = rand(armed.len() as u64);
                q.forget(id, armed[usize::try_from(id).unwrap()].slots());
                // Every entry of the transaction in a noted slot goes, near ones included;
                // entries in slots it did not note (near, or past ten slots) stay.
                let noted = armed[usize::try_from(id).unwrap()].slots();
                pending.retain(|p| !(p.1 == id && noted.contains(&p.2)));
            }
            now += rand(100);
            let mut got: Vec<(u64, u64)> =
                q.due(Millis(now)).iter().map(|e| (e.at.0, e.tx)).collect();
            let mut want: Vec<(u64, u64)> = pending
                .iter()
                .filter(|p| p.0 <= now)
                .map(|p| (p.0, p.1))
                .collect();
            pending.retain(|p| p.0 > now);
            got.sort_unstable();
            want.sort_unstable();
            assert_eq!(got, want, "at {now}");
            assert_eq!(q.len(), pending.len());
        }
    }

    /// Random deadlines on a virtual clock that moves in random steps: every entry fires
    /// exactly once, at the first look at or after its deadline, as a heap would give it.
    #[test]
    fn matches_a_sorted_reference_on_a_virtual_clock() {
        let mut rand = xorshift(0x9e37_79b9_7f4a_7c15_u64);
        let q = TimerQueue::default();
        let mut pending: Vec<(u64, u64)> = Vec::new(); // (at, id)
        let mut now = 0u64;
        let mut id = 0u64;
        for _ in 0..3_000 {
            for _ in 0..rand(20) {
                // Up to 200 s ahead (several turns), sometimes in the past.
                let at = (now + rand(200_000)).saturating_sub(rand(3) * 50);
                q.push(Millis(at), id, TimerWhat::Delete);
                pending.push((at, id));
                id += 1;
            }
            let span = if rand(50) == 0 { 60_000 } else { 40 };
            now += rand(span);
            let got: Vec<(u64, u64)> = q.due(Millis(now)).iter().map(|e| (e.at.0, e.tx)).collect();
            let mut want: Vec<(u64, u64)> =
                pending.iter().copied().filter(|p| p.0 <= now).collect();
            want.sort_unstable();
            pending.retain(|p| p.0 > now);
            let mut sorted = got.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, want, "at {now}");
            assert!(got.windows(2).all(|w| w[0].0 <= w[1].0), "deadline order");
            assert_eq!(q.len(), pending.len());
        }
    }
}
