//! The peer state cache of the `peerstate` module (seed 000), without I/O.
//!
//! One entry per peer (`user@domain`, lower-cased): its [`PeerState`], how many calls it is
//! in, whether it is registered and when it last changed. Dialog events move it through
//! RINGING and INUSE and back; registration events set and clear the registration flag.
//! Calls are counted **per dialog**: a dialog adds one to each of its peers the first time
//! it rings or is confirmed and takes that one back when it ends, never more (Kamailio counts
//! every provisional reply and can decrement another call's count; see the module's docs).
//!
//! The table is `cache_hash_size` buckets, each under its own lock; counters per state are
//! kept as entries change, so statistics never scan the table. Time is given by the caller
//! (UNIX seconds), so expiry is tested on a virtual clock.

use parking_lot::Mutex;
use serde_json::{json, Value as Json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};

pub mod rpc;

/// The state of a peer (the seed's numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerState {
    /// Registered (or not known to be unregistered) and idle.
    NotInUse = 0,
    /// In a confirmed call.
    InUse = 1,
    /// A call of the peer is ringing (early dialog).
    Ringing = 2,
    /// Not registered and idle.
    Unavailable = 3,
    /// Unknown; never stored.
    Na = 4,
}

impl PeerState {
    /// The states an entry can be in.
    pub const STORED: [PeerState; 4] = [
        PeerState::NotInUse,
        PeerState::InUse,
        PeerState::Ringing,
        PeerState::Unavailable,
    ];

    /// The name RPC results and the event route show.
    pub fn name(self) -> &'static str {
        match self {
            PeerState::NotInUse => "NOT_INUSE",
            PeerState::InUse => "INUSE",
            PeerState::Ringing => "RINGING",
            PeerState::Unavailable => "UNAVAILABLE",
            PeerState::Na => "N/A",
        }
    }

    /// The number (0-4).
    pub fn code(self) -> i32 {
        self as i32
    }

    /// A state filter as `peerstate.list` takes it: a state name in any case, or an
    /// unambiguous beginning of one (`inuse`, `ring`, `UNAV`).
    pub fn parse_filter(text: &str) -> Option<PeerState> {
        let t = text.trim();
        if t.is_empty() {
            return None;
        }
        if let Some(s) = Self::STORED
            .iter()
            .find(|s| s.name().eq_ignore_ascii_case(t))
        {
            return Some(*s);
        }
        let mut found = Self::STORED
            .iter()
            .filter(|s| s.name().len() >= t.len() && s.name()[..t.len()].eq_ignore_ascii_case(t));
        match (found.next(), found.next()) {
            (Some(s), None) => Some(*s),
            _ => None,
        }
    }
}

/// What caused a notification (the callback API's event mask bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Dialog = 1,
    Registration = 2,
}

/// Mask bit of dialog events (`PEERSTATE_EVENT_DIALOG`).
pub const EVENT_DIALOG: u32 = 1;
/// Mask bit of registration events (`PEERSTATE_EVENT_REGISTRATION`).
pub const EVENT_REGISTRATION: u32 = 2;

impl EventType {
    /// Its bit in a callback's mask.
    pub fn bit(self) -> u32 {
        self as u32
    }
}

/// What a dialog event means for its peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Candidate {
    /// A provisional reply (or, with `enable_notify_on_trying`, the INVITE itself).
    Ringing,
    /// The call was answered and acknowledged.
    InUse,
    /// The dialog failed, was hung up or timed out.
    Ended,
}

/// One peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub state: PeerState,
    pub call_count: u32,
    pub registered: bool,
    /// When it last changed (UNIX seconds).
    pub updated: u64,
}

impl Entry {
    /// An entry a dialog event creates: idle, not (known to be) registered, shown NOT_INUSE
    /// as Kamailio does (so a call to an unregistered number ends in UNAVAILABLE).
    pub fn for_dialog(now: u64) -> Entry {
        Entry {
            state: PeerState::NotInUse,
            call_count: 0,
            registered: false,
            updated: now,
        }
    }

    /// An entry a registration event creates: not registered yet, so UNAVAILABLE (the
    /// registration that follows then shows UNAVAILABLE → NOT_INUSE).
    pub fn for_registration(now: u64) -> Entry {
        Entry {
            state: PeerState::Unavailable,
            call_count: 0,
            registered: false,
            updated: now,
        }
    }

    /// Applies a dialog event. `adds`: this dialog has not been counted for this peer yet
    /// (its first ringing or confirmation); `removes`: the dialog had been counted.
    pub fn apply_dialog(&mut self, cand: Candidate, adds: bool, removes: bool) {
        match cand {
            Candidate::Ringing => {
                if adds {
                    self.call_count = self.call_count.saturating_add(1);
                }
                if self.state != PeerState::InUse {
                    self.state = PeerState::Ringing;
                }
            }
            Candidate::InUse => {
                if adds {
                    self.call_count = self.call_count.saturating_add(1);
                }
                self.state = PeerState::InUse;
            }
            Candidate::Ended => {
                if removes {
                    self.call_count = self.call_count.saturating_sub(1);
                }
                if self.call_count == 0 {
                    self.state = self.idle_state();
                }
            }
        }
    }

    /// Applies a registration change (the peer's first binding came or its last went).
    pub fn apply_registration(&mut self, registered: bool) {
        self.registered = registered;
        match (registered, self.state) {
            (true, PeerState::Unavailable) => self.state = PeerState::NotInUse,
            (false, PeerState::NotInUse) if self.call_count == 0 => {
                self.state = PeerState::Unavailable;
            }
            _ => {}
        }
    }

    fn idle_state(&self) -> PeerState {
        if self.registered {
            PeerState::NotInUse
        } else {
            PeerState::Unavailable
        }
    }

    /// Nothing to remember: no call and no registration (what cache expiry may remove).
    pub fn is_idle(&self) -> bool {
        self.call_count == 0 && !self.registered
    }
}

/// The result of an event on one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub peer: String,
    pub previous: PeerState,
    pub current: PeerState,
    pub call_count: u32,
    pub registered: bool,
}

impl Change {
    /// The state changed (what notifications are sent for).
    pub fn is_change(&self) -> bool {
        self.previous != self.current
    }
}

/// Which side of a dialog a peer is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Caller,
    Callee,
}

/// What the module remembers of one tracked dialog: its peers and whether it has been
/// counted in their call counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DialogPeers {
    pub callers: Vec<Box<str>>,
    pub callees: Vec<Box<str>>,
    /// The dialog has added one to each peer's count.
    pub counted: bool,
    /// The dialog ended (later events are ignored).
    pub ended: bool,
}

impl DialogPeers {
    pub fn new(callers: Vec<Box<str>>, callees: Vec<Box<str>>) -> DialogPeers {
        DialogPeers {
            callers,
            callees,
            counted: false,
            ended: false,
        }
    }

    /// Every peer, with its side.
    pub fn peers(&self) -> impl Iterator<Item = (Side, &str)> + '_ {
        self.callers
            .iter()
            .map(|p| (Side::Caller, &**p))
            .chain(self.callees.iter().map(|p| (Side::Callee, &**p)))
    }
}

/// `peerstate.stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    pub total_peers: i64,
    /// INUSE or RINGING.
    pub incall_peers: i64,
    pub registered_peers: i64,
}

/// The cache.
#[derive(Debug)]
pub struct Cache {
    buckets: Vec<Mutex<HashMap<Box<str>, Entry>>>,
    per_state: [AtomicI64; 5],
    registered: AtomicI64,
}

/// Why a cache could not be made.
pub fn check_hash_size(size: i64) -> Result<usize, String> {
    match usize::try_from(size) {
        Ok(n) if n > 0 && n.is_power_of_two() && n <= 1 << 24 => Ok(n),
        _ => Err(format!(
            "a power of two between 1 and 16777216 (got {size})"
        )),
    }
}

/// The key of a SIP URI: `user@host`, lower-cased; none without a user part.
pub fn key_of_uri(uri: &str) -> Option<String> {
    let u = sable_sip::uri::SipUri::parse(uri.trim().as_bytes()).ok()?;
    let user = u.user().filter(|u| !u.is_empty())?;
    let host = u.host().as_bytes();
    if host.is_empty() {
        return None;
    }
    Some(join_key(
        &String::from_utf8_lossy(user),
        &String::from_utf8_lossy(host),
    ))
}

/// `user@domain` lower-cased (the one rule for both dialog and registration keys).
pub fn join_key(user: &str, domain: &str) -> String {
    let mut k = String::with_capacity(user.len() + domain.len() + 1);
    k.push_str(user);
    if !domain.is_empty() {
        k.push('@');
        k.push_str(domain);
    }
    k.make_ascii_lowercase();
    k
}

/// A peer identifier given by the script or an operator, in the key's form (lower-cased,
/// a `sip:` scheme dropped).
pub fn normalize_key(text: &str) -> String {
    let t = text.trim();
    let t = ["sip:", "sips:"]
        .iter()
        .find_map(|s| {
            t.get(..s.len())
                .filter(|p| p.eq_ignore_ascii_case(s))
                .map(|_| &t[s.len()..])
        })
        .unwrap_or(t);
    t.to_ascii_lowercase()
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Cache {
    /// A cache of `hash_size` buckets (a power of two, see [`check_hash_size`]).
    pub fn new(hash_size: usize) -> Cache {
        let n = hash_size.max(1).next_power_of_two();
        Cache {
            buckets: (0..n).map(|_| Mutex::new(HashMap::new())).collect(),
            per_state: Default::default(),
            registered: AtomicI64::new(0),
        }
    }

    // `i` is masked to the table's length, a power of two.
    #[allow(clippy::indexing_slicing)]
    fn bucket(&self, peer: &str) -> &Mutex<HashMap<Box<str>, Entry>> {
        let n = self.buckets.len();
        // `n` is a power of two: the low bits of the hash pick the bucket.
        let i = usize::try_from(fnv(peer)).unwrap_or(0) & (n - 1);
        &self.buckets[i]
    }

    fn gauge(&self, state: PeerState) -> &AtomicI64 {
        let [n, i, r, u, na] = &self.per_state;
        match state {
            PeerState::NotInUse => n,
            PeerState::InUse => i,
            PeerState::Ringing => r,
            PeerState::Unavailable => u,
            PeerState::Na => na,
        }
    }

    fn count(&self, before: Option<&Entry>, after: Option<&Entry>) {
        if let Some(b) = before {
            self.gauge(b.state).fetch_sub(1, Ordering::Relaxed);
            if b.registered {
                self.registered.fetch_sub(1, Ordering::Relaxed);
            }
        }
        if let Some(a) = after {
            self.gauge(a.state).fetch_add(1, Ordering::Relaxed);
            if a.registered {
                self.registered.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Changes the entry of `peer` (made by `create` when missing) under its bucket's lock.
    fn update(
        &self,
        peer: &str,
        now: u64,
        create: fn(u64) -> Entry,
        f: impl FnOnce(&mut Entry),
    ) -> Change {
        let mut b = self.bucket(peer).lock();
        let (before, after) = match b.get_mut(peer) {
            Some(e) => {
                let before = *e;
                f(e);
                e.updated = now;
                (Some(before), *e)
            }
            None => {
                let mut e = create(now);
                let created = e;
                f(&mut e);
                e.updated = now;
                b.insert(peer.into(), e);
                self.count(None, Some(&created));
                (Some(created), e)
            }
        };
        drop(b);
        self.count(before.as_ref(), Some(&after));
        Change {
            peer: peer.to_owned(),
            previous: before.map_or(PeerState::Na, |b| b.state),
            current: after.state,
            call_count: after.call_count,
            registered: after.registered,
        }
    }

    /// A dialog event for every peer of the dialog; gives the result for each (changed or
    /// not). Events after the dialog ended are ignored.
    pub fn dialog_event(
        &self,
        d: &mut DialogPeers,
        cand: Candidate,
        now: u64,
    ) -> Vec<(Side, Change)> {
        if d.ended {
            return Vec::new();
        }
        let (adds, removes) = match cand {
            Candidate::Ringing | Candidate::InUse => (!d.counted, false),
            Candidate::Ended => (false, d.counted),
        };
        let out = d
            .peers()
            .map(|(side, peer)| {
                let c = self.update(peer, now, Entry::for_dialog, |e| {
                    e.apply_dialog(cand, adds, removes);
                });
                (side, c)
            })
            .collect();
        match cand {
            Candidate::Ringing | Candidate::InUse => d.counted = true,
            Candidate::Ended => {
                d.counted = false;
                d.ended = true;
            }
        }
        out
    }

    /// A registration change of `peer` (its first binding arrived: `registered`; its last
    /// one went: not).
    pub fn registration(&self, peer: &str, registered: bool, now: u64) -> Change {
        self.update(peer, now, Entry::for_registration, |e| {
            e.apply_registration(registered);
        })
    }

    /// One peer.
    pub fn get(&self, peer: &str) -> Option<Entry> {
        self.bucket(peer).lock().get(peer).copied()
    }

    /// Every peer (copies, bucket by bucket).
    pub fn peers(&self) -> Vec<(String, Entry)> {
        let mut out = Vec::new();
        for b in &self.buckets {
            out.extend(b.lock().iter().map(|(k, e)| (k.to_string(), *e)));
        }
        out
    }

    /// Number of peers in `state`.
    pub fn count_in(&self, state: PeerState) -> i64 {
        self.gauge(state).load(Ordering::Relaxed)
    }

    /// The totals of `peerstate.stats`.
    pub fn stats(&self) -> Stats {
        let total = self
            .per_state
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum();
        Stats {
            total_peers: total,
            incall_peers: self.count_in(PeerState::InUse) + self.count_in(PeerState::Ringing),
            registered_peers: self.registered.load(Ordering::Relaxed),
        }
    }

    /// Removes the idle entries (no call, not registered) unchanged for more than
    /// `max_age` seconds; gives how many went. Busy or registered peers stay whatever their
    /// age (Kamailio removes those too; see the module's docs).
    pub fn expire(&self, now: u64, max_age: u64) -> usize {
        let mut n = 0;
        for b in &self.buckets {
            let mut m = b.lock();
            let before = m.len();
            m.retain(|_, e| {
                let old = now.saturating_sub(e.updated) > max_age;
                if old && e.is_idle() {
                    self.gauge(e.state).fetch_sub(1, Ordering::Relaxed);
                    false
                } else {
                    true
                }
            });
            n += before - m.len();
        }
        n
    }

    /// Number of peers.
    pub fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.lock().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The memory the cache holds: buckets, hash map slots and keys.
    pub fn approx_bytes(&self) -> usize {
        let slot = std::mem::size_of::<(Box<str>, Entry)>() + 1;
        let mut total = std::mem::size_of::<Self>()
            + self.buckets.len() * std::mem::size_of::<Mutex<HashMap<Box<str>, Entry>>>();
        for b in &self.buckets {
            let m = b.lock();
            total += m.capacity() * slot;
            // Keys are allocated exactly; the allocator rounds to 16 bytes.
            total += m.keys().map(|k| k.len().div_ceil(16) * 16).sum::<usize>();
        }
        total
    }

    /// A peer as the RPC lists show it.
    pub fn peer_json(peer: &str, e: &Entry) -> Json {
        json!({
            "name": peer,
            "state": e.state.name(),
            "call_count": e.call_count,
            "registered": if e.registered { "yes" } else { "no" },
        })
    }
}

#[cfg(test)]
mod tests;
