//! Replay protection: Kamailio's `nonce_count` (the nc of each nonce must grow) and
//! `one_time_nonce` (each nonce is accepted once), in bounded memory shared by all worker
//! threads.
//!
//! Like Kamailio's `nc_array`, the tracker is a fixed ring of slots. [`NonceTracker::issue`]
//! hands out increasing indexes (the index goes into the nonce, under its tag) and resets
//! the slot `index mod size`. A slot remembers the index that owns it and the highest nc
//! accepted for it, packed in one `AtomicU64` updated by compare-and-swap: no lock, and
//! memory is 8 octets per in-flight nonce (Kamailio's default 2^20 slots: 8 MiB here, 1 MiB
//! there with one-octet ncs).
//!
//! Outcomes, as Kamailio's `nc_check_val` and `check_nonce` give them:
//! * nc not greater than the last accepted one: [`NcCheck::Replay`];
//! * the slot was taken by a newer nonce (more than `size` nonces issued since): the nonce
//!   is forgotten, [`NcCheck::Forgotten`];
//! * nc above [`NonceTracker::max_nc`] (255, Kamailio's one-octet limit, by default):
//!   [`NcCheck::TooBig`].
//!
//! Kamailio answers all three with -4 (stale nonce: the client gets a fresh nonce with
//! `stale=true` and keeps its password), not -6; -6 comes only from the one-time check.
//! Slots start as "used up", so that after a restart with the same secret a nonce of the
//! previous run is not accepted until its index is issued again (Kamailio fills its array
//! with 0xff for the same reason; [`crate::NonceMaker::with_up_since`] closes the rest).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Kamailio's default `nc_array_order`: 2^20 slots.
pub const DEFAULT_ORDER: u32 = 20;
/// Kamailio's largest accepted nc (it stores one octet per nonce).
pub const DEFAULT_MAX_NC: u32 = 255;

/// What [`NonceTracker::check_nc`] and [`NonceTracker::check_once`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NcCheck {
    /// Accepted (and recorded when asked to).
    Fresh,
    /// This nc (or a higher one) was already accepted for the nonce, or the one-time nonce
    /// was already used.
    Replay,
    /// The nonce's slot now belongs to a newer nonce: it can no longer be tracked.
    Forgotten,
    /// The nc is above the largest the tracker accepts.
    TooBig,
}

/// The per-nonce nc memory. `Sync`: share one behind an `Arc` between all workers.
#[derive(Debug)]
pub struct NonceTracker {
    slots: Box<[AtomicU64]>,
    mask: u32,
    next: AtomicU32,
    max_nc: u32,
}

fn pack(index: u32, nc: u32) -> u64 {
    (u64::from(index) << 32) | u64::from(nc)
}

impl NonceTracker {
    /// A tracker of `2^order` slots (Kamailio's `nc_array_order`; capped at 2^28), the first
    /// index issued being `first_index` (start from a random value so that indexes of an
    /// earlier run do not line up with this one's).
    pub fn new(order: u32, first_index: u32) -> NonceTracker {
        let order = order.min(28);
        let size = 1u32 << order;
        let slots = (0..size)
            .map(|i| AtomicU64::new(pack(i, u32::MAX)))
            .collect::<Vec<_>>()
            .into_boxed_slice();
        NonceTracker {
            slots,
            mask: size - 1,
            next: AtomicU32::new(first_index),
            max_nc: DEFAULT_MAX_NC,
        }
    }

    /// Sets the largest accepted nc (default [`DEFAULT_MAX_NC`]).
    pub fn with_max_nc(mut self, max_nc: u32) -> NonceTracker {
        self.max_nc = max_nc.min(u32::MAX - 1);
        self
    }

    /// The largest accepted nc.
    pub fn max_nc(&self) -> u32 {
        self.max_nc
    }

    /// Number of slots (the most nonces tracked at once).
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn slot(&self, index: u32) -> Option<&AtomicU64> {
        self.slots.get((index & self.mask) as usize)
    }

    /// A new index for a nonce about to be made; its slot is reset (no nc seen yet).
    pub fn issue(&self) -> u32 {
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        if let Some(slot) = self.slot(index) {
            slot.store(pack(index, 0), Ordering::Release);
        }
        index
    }

    /// Checks nonce count `nc` for the nonce with `index`; with `record`, a fresh nc becomes
    /// the slot's highest (Kamailio records before checking the response unless the
    /// "don't invalidate nc on failure" flag 32 is given; then call again with `record`
    /// after success).
    pub fn check_nc(&self, index: u32, nc: u32, record: bool) -> NcCheck {
        if nc > self.max_nc {
            return NcCheck::TooBig;
        }
        let Some(slot) = self.slot(index) else {
            return NcCheck::Forgotten;
        };
        let mut current = slot.load(Ordering::Acquire);
        loop {
            if (current >> 32) as u32 != index {
                return NcCheck::Forgotten;
            }
            if u64::from(nc) <= current & 0xffff_ffff {
                return NcCheck::Replay;
            }
            if !record {
                return NcCheck::Fresh;
            }
            match slot.compare_exchange_weak(
                current,
                pack(index, nc),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return NcCheck::Fresh,
                Err(now) => current = now,
            }
        }
    }

    /// The one-time-nonce check (Kamailio's `one_time_nonce`): the first use of the nonce
    /// with `index` is accepted and recorded, any later one is a replay. It shares the
    /// slot with [`Self::check_nc`]: a nonce used with an nc counts as used.
    pub fn check_once(&self, index: u32) -> NcCheck {
        self.check_nc(index, 1, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn nc_must_increase() {
        let t = NonceTracker::new(4, 0);
        let i = t.issue();
        assert_eq!(t.check_nc(i, 1, true), NcCheck::Fresh);
        assert_eq!(t.check_nc(i, 1, true), NcCheck::Replay);
        assert_eq!(t.check_nc(i, 2, true), NcCheck::Fresh);
        assert_eq!(t.check_nc(i, 5, true), NcCheck::Fresh);
        assert_eq!(t.check_nc(i, 3, true), NcCheck::Replay);
        assert_eq!(t.check_nc(i, 6, true), NcCheck::Fresh);
    }

    #[test]
    fn check_without_record_leaves_the_slot() {
        let t = NonceTracker::new(4, 0);
        let i = t.issue();
        assert_eq!(t.check_nc(i, 1, false), NcCheck::Fresh);
        assert_eq!(t.check_nc(i, 1, false), NcCheck::Fresh);
        assert_eq!(t.check_nc(i, 1, true), NcCheck::Fresh);
        assert_eq!(t.check_nc(i, 1, false), NcCheck::Replay);
    }

    #[test]
    fn nonces_are_tracked_apart() {
        let t = NonceTracker::new(4, 0);
        let a = t.issue();
        let b = t.issue();
        assert_eq!(t.check_nc(a, 1, true), NcCheck::Fresh);
        assert_eq!(t.check_nc(b, 1, true), NcCheck::Fresh);
        assert_eq!(t.check_nc(a, 1, true), NcCheck::Replay);
    }

    #[test]
    fn overwritten_slot_forgets_the_old_nonce() {
        let t = NonceTracker::new(2, 0); // 4 slots
        let old = t.issue();
        for _ in 0..4 {
            t.issue();
        }
        assert_eq!(t.check_nc(old, 1, true), NcCheck::Forgotten);
    }

    #[test]
    fn index_never_issued_in_this_run_is_not_accepted() {
        let t = NonceTracker::new(4, 100);
        assert_eq!(t.check_nc(3, 1, true), NcCheck::Replay);
        assert_eq!(t.check_nc(100, 1, true), NcCheck::Forgotten);
    }

    #[test]
    fn nc_above_max_is_too_big() {
        let t = NonceTracker::new(4, 0);
        let i = t.issue();
        assert_eq!(t.check_nc(i, 255, true), NcCheck::Fresh);
        assert_eq!(t.check_nc(i, 256, true), NcCheck::TooBig);
        let t = NonceTracker::new(4, 0).with_max_nc(1000);
        let i = t.issue();
        assert_eq!(t.check_nc(i, 1000, true), NcCheck::Fresh);
    }

    #[test]
    fn index_wraps_around_u32() {
        let t = NonceTracker::new(4, u32::MAX);
        let a = t.issue();
        let b = t.issue();
        assert_eq!((a, b), (u32::MAX, 0));
        assert_eq!(t.check_nc(a, 1, true), NcCheck::Fresh);
        assert_eq!(t.check_nc(b, 1, true), NcCheck::Fresh);
    }

    #[test]
    fn one_time_nonce_is_accepted_once() {
        let t = NonceTracker::new(4, 0);
        let i = t.issue();
        assert_eq!(t.check_once(i), NcCheck::Fresh);
        assert_eq!(t.check_once(i), NcCheck::Replay);
    }

    #[test]
    fn concurrent_checks_accept_each_nc_once() {
        let t = Arc::new(NonceTracker::new(8, 0));
        let i = t.issue();
        let mut accepted: Vec<u32> = (0..4)
            .map(|_| {
                let t = Arc::clone(&t);
                std::thread::spawn(move || {
                    (1..=200)
                        .filter(|&nc| t.check_nc(i, nc, true) == NcCheck::Fresh)
                        .collect::<Vec<u32>>()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let total = accepted.len();
        accepted.sort_unstable();
        accepted.dedup();
        // No nc was accepted by two threads.
        assert_eq!(accepted.len(), total);
        assert_eq!(t.check_nc(i, 200, true), NcCheck::Replay);
    }

    #[test]
    fn tracker_is_sync_and_send() {
        fn assert_sync<T: Sync + Send>() {}
        assert_sync::<NonceTracker>();
        assert_sync::<crate::NonceMaker>();
    }
}
