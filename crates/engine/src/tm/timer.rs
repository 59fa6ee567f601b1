//! The transaction timers: one thread, one priority queue of deadlines. An entry names a
//! transaction by id (a freed transaction's timers just lapse, holding no memory of it) and
//! what to do; the machines ignore events for deadlines they superseded, so nothing is ever
//! cancelled. The thread wakes at most once per tick (Kamailio's tm ticks are 62.5 ms): a
//! deadline fires up to one tick late, and thousands of deadlines a second cost a few
//! wake-ups.

use parking_lot::{Condvar, Mutex};
use sable_transaction::{Millis, Timer};
use std::cmp::Ordering;
use std::collections::BinaryHeap;

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

pub(crate) struct Entry {
    pub at: Millis,
    seq: u64,
    pub tx: u64,
    pub what: TimerWhat,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.seq == other.seq
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    /// Reversed: the earliest deadline is the greatest (top of the max-heap).
    fn cmp(&self, other: &Self) -> Ordering {
        other.at.cmp(&self.at).then(other.seq.cmp(&self.seq))
    }
}

/// The queue of deadlines.
#[derive(Default)]
pub struct TimerQueue {
    heap: Mutex<(BinaryHeap<Entry>, u64)>,
    wake: Condvar,
}

impl std::fmt::Debug for TimerQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimerQueue")
            .field("pending", &self.heap.lock().0.len())
            .finish()
    }
}

impl TimerQueue {
    /// Arms `what` of `tx` at `at`.
    pub fn push(&self, at: Millis, tx: u64, what: TimerWhat) {
        let mut g = self.heap.lock();
        g.1 = g.1.wrapping_add(1);
        let seq = g.1;
        let earliest = g.0.peek().is_none_or(|e| at < e.at);
        g.0.push(Entry { at, seq, tx, what });
        drop(g);
        if earliest {
            self.wake.notify_one();
        }
    }

    /// How many deadlines are waiting.
    pub fn len(&self) -> usize {
        self.heap.lock().0.len()
    }

    /// Whether no deadline is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entries due at `now`, earliest first.
    pub(crate) fn due(&self, now: Millis) -> Vec<Entry> {
        let mut g = self.heap.lock();
        let mut out = Vec::new();
        while g.0.peek().is_some_and(|e| e.at <= now) {
            if let Some(e) = g.0.pop() {
                out.push(e);
            }
        }
        out
    }

    /// Waits until the earliest deadline, but at least `tick` and at most `cap`
    /// milliseconds (or until a new deadline is earlier than the one waited for).
    pub(crate) fn wait(&self, now: Millis, tick: u64, cap: u64) {
        let mut g = self.heap.lock();
        let wait = match g.0.peek() {
            Some(e) => e.at.0.saturating_sub(now.0).clamp(tick, cap.max(tick)),
            None => cap,
        };
        let _ = self
            .wake
            .wait_for(&mut g, std::time::Duration::from_millis(wait));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
