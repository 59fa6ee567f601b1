//! The lock on a transaction's script state (AVPs, XAVPs, flags).
//!
//! Every route that runs on a transaction copies that state in and writes it back when it
//! ends, so two routes of one transaction must not overlap: the later write-back would undo
//! what the other route did. The request route holds the lock from the moment it creates the
//! transaction until it ends (a reply arriving meanwhile waits, and then sees what the route
//! set after `t_relay()`); reply and failure routes hold it while they run.
//!
//! Re-entrant (a route that ends a branch may lead to the failure route on the same thread),
//! and held either for a scope ([`ScriptLock::lock`]) or, by the request route, through an
//! owned [`ScriptHold`] that lives in the message's context: no borrow of the transaction.

use parking_lot::{Condvar, Mutex};
use std::sync::Arc;
use std::thread::ThreadId;

/// A re-entrant lock whose holding is not tied to a borrow (see the module documentation).
#[derive(Debug, Default)]
pub(crate) struct ScriptLock {
    /// The holding thread and how many times it took the lock.
    owner: Mutex<Option<(ThreadId, u32)>>,
    /// Signalled when the lock becomes free.
    free: Condvar,
}

impl ScriptLock {
    /// Takes the lock (waiting while another thread holds it).
    fn acquire(&self) {
        let me = std::thread::current().id();
        let mut owner = self.owner.lock();
        loop {
            match &mut *owner {
                None => {
                    *owner = Some((me, 1));
                    return;
                }
                Some((t, n)) if *t == me => {
                    *n = n.saturating_add(1);
                    return;
                }
                Some(_) => self.free.wait(&mut owner),
            }
        }
    }

    /// Gives back one taking of the lock (by the thread that holds it).
    fn release(&self) {
        let mut owner = self.owner.lock();
        if let Some((_, n)) = &mut *owner {
            *n = n.saturating_sub(1);
            if *n == 0 {
                *owner = None;
                drop(owner);
                self.free.notify_one();
            }
        }
    }

    /// Holds the lock until the guard is dropped.
    pub(crate) fn lock(&self) -> ScriptGuard<'_> {
        self.acquire();
        ScriptGuard(self)
    }

    /// True while some thread holds the lock.
    #[cfg(test)]
    fn is_held(&self) -> bool {
        self.owner.lock().is_some()
    }
}

/// [`ScriptLock::lock`]'s guard.
#[derive(Debug)]
pub(crate) struct ScriptGuard<'l>(&'l ScriptLock);

impl Drop for ScriptGuard<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// The request route's hold on its transaction's script state, from the transaction's
/// creation until the route ends (or its context is dropped).
#[derive(Debug)]
pub struct ScriptHold(Arc<super::Tx>);

impl ScriptHold {
    /// Takes `tx`'s script lock for the context that created it.
    pub(crate) fn new(tx: Arc<super::Tx>) -> ScriptHold {
        tx.script.acquire();
        ScriptHold(tx)
    }
}

impl Drop for ScriptHold {
    fn drop(&mut self) {
        self.0.script.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[test]
    fn re_entrant_on_one_thread_and_exclusive_across_threads() {
        let lock = Arc::new(ScriptLock::default());
        let outer = lock.lock();
        let inner = lock.lock();
        drop(inner);
        assert!(lock.is_held(), "one taking given back of two: still held");

        let entered = Arc::new(AtomicBool::new(false));
        let other = {
            let (lock, entered) = (lock.clone(), entered.clone());
            std::thread::spawn(move || {
                let _g = lock.lock();
                entered.store(true, Ordering::SeqCst);
            })
        };
        // The other thread cannot get in while this one holds the lock (a bounded look:
        // this checks exclusion, not timing).
        std::thread::sleep(Duration::from_millis(50));
        assert!(!entered.load(Ordering::SeqCst));
        drop(outer);
        other.join().unwrap();
        assert!(entered.load(Ordering::SeqCst));
        assert!(!lock.is_held());
    }

    #[test]
    fn a_release_without_a_hold_changes_nothing() {
        let lock = ScriptLock::default();
        lock.release();
        assert!(!lock.is_held());
        let g = lock.lock();
        assert!(lock.is_held());
        drop(g);
        assert!(!lock.is_held());
    }
}
