//! The destination table and its probe schedule.

use crate::{Destination, KeepaliveError, Millis, State};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;

/// Kamailio's delay between adding a destination and its first probe (`KA_FIRST_TRY_DELAY`).
pub const FIRST_PROBE_DELAY: Millis = Millis(500);

/// The golden ratio's fractional part: successive destinations get phases that spread
/// evenly over the interval whatever their number (a low-discrepancy sequence).
const PHI_FRACTION: f64 = 0.618_033_988_749_894_9;

/// The module parameters the table needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// `ping_interval`, seconds (destinations added with interval 0 use it).
    pub ping_interval: u64,
    /// `delete_counter`: probing stops once more than this many probes in a row failed;
    /// 0 never stops.
    pub delete_counter: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ping_interval: 30,
            delete_counter: 5,
        }
    }
}

/// One monitored destination. Timestamps are UNIX seconds, 0 for never.
#[derive(Debug, Clone)]
pub struct Dest<T> {
    pub id: u64,
    /// The URI as given (with `sip:` put in front when it had no scheme). Shared with the
    /// probes and outcomes.
    pub uri: Arc<str>,
    /// The normalised identity (see [`Destination::key`]).
    pub key: String,
    /// Who asked for the monitoring (`_params` for the module parameter; the RPC calls it
    /// the list name). With the key, the identity of a destination.
    pub owner: String,
    pub flags: u32,
    pub state: State,
    /// Probes failed in a row.
    pub counter: u32,
    pub last_checked: u64,
    pub last_up: u64,
    pub last_down: u64,
    /// Time between probes.
    pub interval: Millis,
    /// Whether probes need TLS.
    pub tls: bool,
    /// The transport of the probes (lower case).
    pub transport: Arc<str>,
    /// `delete_counter` ran out: never probed again (the record stays).
    pub stopped: bool,
    /// When the next probe is due.
    next_at: Millis,
    /// What the owner attached (callbacks, user data).
    pub data: T,
}

/// What [`Monitor::add`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// A new destination, with its id.
    New(u64),
    /// The (URI, owner) pair was monitored already: its failure counter went back to 0,
    /// nothing else changed (a stopped destination stays stopped, as in Kamailio).
    Exists(u64),
}

/// A probe to send now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub id: u64,
    pub uri: Arc<str>,
    pub tls: bool,
    /// Lower case: `udp`, `tcp`, `tls`...
    pub transport: Arc<str>,
}

/// What a probe's result did to its destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome<T> {
    pub id: u64,
    pub uri: Arc<str>,
    pub state: State,
    /// The state differs from the one before (the first result always does).
    pub changed: bool,
    pub data: T,
}

/// The destinations, their states and when each is probed next. Plain data: the module
/// wraps it in a lock, sends the probes [`due`](Monitor::due) gives, and reports each
/// probe's final code to [`result`](Monitor::result).
///
/// Schedule: destination number *k* (counting every addition) has a phase
/// `frac(k·φ)·interval`; its first probe is due [`FIRST_PROBE_DELAY`] plus that phase after
/// it was added, then one every interval. Phases of successive additions are spread evenly
/// over the interval, so a thousand destinations at one second are a thousand probes spread
/// over each second, not one burst.
#[derive(Debug)]
pub struct Monitor<T> {
    cfg: Config,
    /// By id; ids grow with additions, so this is the order of addition.
    dests: BTreeMap<u64, Dest<T>>,
    by_identity: HashMap<(String, String), u64>,
    /// Key → ids in order of addition (the newest last).
    by_key: HashMap<String, Vec<u64>>,
    queue: BinaryHeap<Reverse<(Millis, u64)>>,
    next_id: u64,
    additions: u64,
}

impl<T: Clone> Monitor<T> {
    pub fn new(cfg: Config) -> Self {
        Monitor {
            cfg,
            dests: BTreeMap::new(),
            by_identity: HashMap::new(),
            by_key: HashMap::new(),
            queue: BinaryHeap::new(),
            next_id: 1,
            additions: 0,
        }
    }

    pub fn config(&self) -> Config {
        self.cfg
    }

    pub fn len(&self) -> usize {
        self.dests.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dests.is_empty()
    }

    /// Starts monitoring `uri` for `owner`, probing every `interval_secs` seconds (0: the
    /// `ping_interval` parameter).
    pub fn add(
        &mut self,
        uri: &str,
        owner: &str,
        flags: u32,
        interval_secs: u64,
        data: T,
        now: Millis,
    ) -> Result<Added, KeepaliveError> {
        let d = Destination::parse(uri)?;
        if let Some(&id) = self.by_identity.get(&(d.key.clone(), owner.to_owned())) {
            if let Some(dest) = self.dests.get_mut(&id) {
                dest.counter = 0;
            }
            return Ok(Added::Exists(id));
        }
        let secs = if interval_secs == 0 {
            self.cfg.ping_interval
        } else {
            interval_secs
        };
        let interval = Millis(secs.max(1).saturating_mul(1000));
        let phase = phase_of(self.additions, interval);
        self.additions += 1;
        let id = self.next_id;
        self.next_id += 1;
        let next_at = Millis(now.0 + FIRST_PROBE_DELAY.0 + phase.0);
        self.by_identity
            .insert((d.key.clone(), owner.to_owned()), id);
        self.by_key.entry(d.key.clone()).or_default().push(id);
        self.queue.push(Reverse((next_at, id)));
        self.dests.insert(
            id,
            Dest {
                id,
                uri: d.uri.into(),
                key: d.key,
                owner: owner.to_owned(),
                flags,
                state: State::Unknown,
                counter: 0,
                last_checked: 0,
                last_up: 0,
                last_down: 0,
                interval,
                tls: d.tls,
                transport: d.transport.into(),
                stopped: false,
                next_at,
                data,
            },
        );
        Ok(Added::New(id))
    }

    /// Stops monitoring `uri` for `owner`; gives the record. Errors: a bad URI; `None`: not
    /// monitored.
    pub fn remove(&mut self, uri: &str, owner: &str) -> Result<Option<Dest<T>>, KeepaliveError> {
        let d = Destination::parse(uri)?;
        let Some(id) = self.by_identity.remove(&(d.key.clone(), owner.to_owned())) else {
            return Ok(None);
        };
        if let Some(ids) = self.by_key.get_mut(&d.key) {
            ids.retain(|&i| i != id);
            if ids.is_empty() {
                self.by_key.remove(&d.key);
            }
        }
        // Its queue entry goes stale: `due` skips ids it no longer has.
        Ok(self.dests.remove(&id))
    }

    /// Forgets every destination (`keepalive.flush`); gives how many there were.
    pub fn flush(&mut self) -> usize {
        let n = self.dests.len();
        self.dests.clear();
        self.by_identity.clear();
        self.by_key.clear();
        self.queue.clear();
        n
    }

    /// The destination of `uri` for `owner`.
    pub fn get(&self, uri: &str, owner: &str) -> Result<Option<&Dest<T>>, KeepaliveError> {
        let d = Destination::parse(uri)?;
        Ok(self
            .by_identity
            .get(&(d.key, owner.to_owned()))
            .and_then(|id| self.dests.get(id)))
    }

    pub fn by_id(&self, id: u64) -> Option<&Dest<T>> {
        self.dests.get(&id)
    }

    /// The state of `uri` whoever monitors it (`ka_is_alive`): the newest destination with
    /// that key, as Kamailio takes the first of its newest-first list.
    pub fn state_of(&self, uri: &str) -> Result<Option<State>, KeepaliveError> {
        let d = Destination::parse(uri)?;
        Ok(self
            .by_key
            .get(&d.key)
            .and_then(|ids| ids.last())
            .and_then(|id| self.dests.get(id))
            .map(|dest| dest.state))
    }

    /// Every destination, newest first (Kamailio's list order).
    pub fn list(&self) -> impl Iterator<Item = &Dest<T>> {
        self.dests.values().rev()
    }

    /// When the next probe is due, if any is scheduled.
    pub fn next_deadline(&mut self) -> Option<Millis> {
        // Drop stale entries on the way, so the answer is a real deadline.
        while let Some(&Reverse((at, id))) = self.queue.peek() {
            match self.dests.get(&id) {
                Some(d) if d.next_at == at && !d.stopped => return Some(at),
                _ => {
                    self.queue.pop();
                }
            }
        }
        None
    }

    /// The probes due at `now` (`wall`: UNIX seconds, stamped as `last_checked`). A
    /// destination whose failures passed `delete_counter` is stopped instead, for good.
    pub fn due(&mut self, now: Millis, wall: u64) -> Vec<Probe> {
        let mut out = Vec::new();
        while let Some(&Reverse((at, id))) = self.queue.peek() {
            if at > now {
                break;
            }
            self.queue.pop();
            let delete_counter = self.cfg.delete_counter;
            let Some(d) = self.dests.get_mut(&id) else {
                continue;
            };
            if d.next_at != at || d.stopped {
                continue;
            }
            if delete_counter > 0 && d.counter > delete_counter {
                d.stopped = true;
                continue;
            }
            out.push(Probe {
                id,
                uri: d.uri.clone(),
                tls: d.tls,
                transport: d.transport.clone(),
            });
            d.last_checked = wall;
            // Keep the phase; skip the slots missed if the caller was late.
            let step = d.interval.0.max(1);
            let missed = (now.0 - at.0) / step;
            d.next_at = Millis(at.0 + (missed + 1) * step);
            self.queue.push(Reverse((d.next_at, id)));
        }
        out
    }

    /// A probe of destination `id` ended with final `code` (0: it could not be sent). 2xx
    /// is UP, anything else DOWN. `None` when the destination is gone.
    pub fn result(&mut self, id: u64, code: u16, wall: u64) -> Option<Outcome<T>> {
        let d = self.dests.get_mut(&id)?;
        let state = if (200..300).contains(&code) {
            d.last_up = wall;
            d.counter = 0;
            State::Up
        } else {
            d.last_down = wall;
            d.counter = d.counter.saturating_add(1);
            State::Down
        };
        let changed = d.state != state;
        d.state = state;
        Some(Outcome {
            id,
            uri: d.uri.clone(),
            state,
            changed,
            data: d.data.clone(),
        })
    }
}

/// `frac(k·φ)·interval`.
fn phase_of(k: u64, interval: Millis) -> Millis {
    // Precision: k below 2^53 is exact in f64; the product's fraction is what matters.
    #[allow(clippy::cast_precision_loss)]
    let x = (k as f64) * PHI_FRACTION;
    let frac = x - x.floor();
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let ms = (frac * interval.0 as f64) as u64;
    Millis(ms.min(interval.0.saturating_sub(1)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn monitor(delete_counter: u32) -> Monitor<()> {
        Monitor::new(Config {
            ping_interval: 1,
            delete_counter,
        })
    }

    /// Runs the virtual clock from `from` to `to` in 10 ms steps, answering every probe
    /// with `answer(uri)`; gives the outcomes.
    fn run(
        m: &mut Monitor<()>,
        from: u64,
        to: u64,
        mut answer: impl FnMut(&str) -> u16,
    ) -> Vec<Outcome<()>> {
        let mut out = Vec::new();
        let mut t = from;
        while t <= to {
            for p in m.due(Millis(t), t / 1000) {
                out.extend(m.result(p.id, answer(&p.uri), t / 1000));
            }
            t += 10;
        }
        out
    }

    #[test]
    fn first_probe_after_half_a_second_then_every_interval() {
        let mut m = monitor(5);
        m.add("192.0.2.5", "o", 0, 0, (), Millis(0)).unwrap();
        assert!(m.due(Millis(499), 0).is_empty());
        let p = m.due(Millis(500), 0);
        assert_eq!(p.len(), 1);
        assert_eq!(&*p[0].uri, "sip:192.0.2.5");
        assert!(m.due(Millis(1499), 1).is_empty());
        assert_eq!(m.due(Millis(1500), 1).len(), 1);
        assert_eq!(m.next_deadline(), Some(Millis(2500)));
        // A late caller gets one probe, and the phase is kept.
        assert_eq!(m.due(Millis(4700), 4).len(), 1);
        assert_eq!(m.next_deadline(), Some(Millis(5500)));
    }

    #[test]
    fn the_first_result_always_changes_the_state_then_only_flips_do() {
        let mut m = monitor(0);
        let Added::New(id) = m.add("192.0.2.5", "o", 0, 0, (), Millis(0)).unwrap() else {
            panic!()
        };
        assert_eq!(m.state_of("192.0.2.5").unwrap(), Some(State::Unknown));
        let o = m.result(id, 200, 10).unwrap();
        assert_eq!((o.state, o.changed), (State::Up, true));
        assert!(!m.result(id, 202, 11).unwrap().changed);
        let o = m.result(id, 408, 12).unwrap();
        assert_eq!((o.state, o.changed), (State::Down, true));
        let d = m.get("sip:192.0.2.5", "o").unwrap().unwrap();
        assert_eq!((d.last_up, d.last_down, d.counter), (11, 12, 1));
        for code in [404, 503, 0, 600, 486, 301] {
            let o = m.result(id, code, 13).unwrap();
            assert_eq!((o.state, o.changed), (State::Down, false), "{code}");
        }
        let o = m.result(id, 299, 14).unwrap();
        assert_eq!((o.state, o.changed), (State::Up, true));
        assert_eq!(m.by_id(id).unwrap().counter, 0);
        let first = m.result(999, 200, 1);
        assert!(
            first.is_none(),
            "a result for a removed destination is ignored"
        );
    }

    #[test]
    fn delete_counter_stops_probing_after_that_many_failures_plus_one() {
        let mut m = monitor(5);
        m.add("192.0.2.5", "o", 0, 0, (), Millis(0)).unwrap();
        let outcomes = run(&mut m, 0, 20_000, |_| 408);
        assert_eq!(outcomes.len(), 6, "six probes fail, then no more are sent");
        assert_eq!(outcomes.iter().filter(|o| o.changed).count(), 1);
        let d = m.get("192.0.2.5", "o").unwrap().unwrap();
        assert!(d.stopped);
        assert_eq!(d.state, State::Down);
        assert_eq!(m.next_deadline(), None);
        // Adding it again resets the counter but does not restart it (as Kamailio).
        assert!(matches!(
            m.add("sip:192.0.2.5", "o", 0, 0, (), Millis(20_000))
                .unwrap(),
            Added::Exists(_)
        ));
        assert_eq!(m.get("192.0.2.5", "o").unwrap().unwrap().counter, 0);
        assert!(run(&mut m, 20_000, 30_000, |_| 200).is_empty());
        // Delete and add restarts it.
        assert!(m.remove("192.0.2.5", "o").unwrap().is_some());
        m.add("192.0.2.5", "o", 0, 0, (), Millis(30_000)).unwrap();
        let o = run(&mut m, 30_000, 32_000, |_| 200);
        assert!(o[0].changed && o[0].state == State::Up);
    }

    #[test]
    fn delete_counter_zero_probes_forever() {
        let mut m = monitor(0);
        m.add("192.0.2.5", "o", 0, 0, (), Millis(0)).unwrap();
        assert_eq!(run(&mut m, 0, 30_000, |_| 408).len(), 30);
    }

    #[test]
    fn a_success_before_the_limit_resets_the_count() {
        let mut m = monitor(2);
        m.add("192.0.2.5", "o", 0, 0, (), Millis(0)).unwrap();
        let mut n = 0u32;
        let o = run(&mut m, 0, 20_000, |_| {
            n += 1;
            if n % 3 == 0 {
                200
            } else {
                503
            }
        });
        assert_eq!(o.len(), 20, "never three failures in a row: never stopped");
    }

    #[test]
    fn uri_and_owner_are_the_identity() {
        let mut m = monitor(5);
        let a = m.add("192.0.2.5", "x", 0, 0, (), Millis(0)).unwrap();
        assert!(matches!(a, Added::New(_)));
        // The same destination spelled otherwise is a duplicate (D9: normalised).
        for s in [
            "sip:192.0.2.5",
            "SIP:192.0.2.5:5060",
            "192.0.2.5;transport=udp",
        ] {
            assert!(matches!(
                m.add(s, "x", 0, 0, (), Millis(0)).unwrap(),
                Added::Exists(_)
            ));
        }
        // Another owner: another destination, its own state.
        assert!(matches!(
            m.add("192.0.2.5", "y", 0, 0, (), Millis(0)).unwrap(),
            Added::New(_)
        ));
        assert_eq!(m.len(), 2);
        assert_eq!(
            m.list().map(|d| d.owner.as_str()).collect::<Vec<_>>(),
            ["y", "x"],
            "newest first"
        );
        assert!(m.remove("192.0.2.5", "z").unwrap().is_none());
        assert!(m.remove("sip:192.0.2.5:5060", "x").unwrap().is_some());
        assert_eq!(m.len(), 1);
        assert!(m.get("192.0.2.5", "x").unwrap().is_none());
        assert!(m.get("192.0.2.5", "y").unwrap().is_some());
        assert!(m.add("sip:", "x", 0, 0, (), Millis(0)).is_err());
        assert!(m.remove("", "x").is_err());
    }

    #[test]
    fn is_alive_takes_the_newest_and_normalises() {
        let mut m = monitor(5);
        let Added::New(old) = m.add("192.0.2.5", "x", 0, 0, (), Millis(0)).unwrap() else {
            panic!()
        };
        let Added::New(new) = m
            .add("sip:192.0.2.5:5060", "y", 0, 0, (), Millis(0))
            .unwrap()
        else {
            panic!()
        };
        m.result(old, 200, 1);
        m.result(new, 503, 1);
        for s in [
            "192.0.2.5",
            "192.0.2.5:5060",
            "sip:192.0.2.5",
            "sips:192.0.2.5:5060",
        ] {
            let want = if s.starts_with("sips") {
                None
            } else {
                Some(State::Down)
            };
            assert_eq!(m.state_of(s).unwrap(), want, "{s}");
        }
        m.remove("192.0.2.5", "y").unwrap();
        assert_eq!(m.state_of("192.0.2.5").unwrap(), Some(State::Up));
        assert_eq!(m.state_of("192.0.2.6").unwrap(), None);
        m.add("sips:192.0.2.7", "x", 0, 0, (), Millis(0)).unwrap();
        assert_eq!(
            m.state_of("sips:192.0.2.7:5061").unwrap(),
            Some(State::Unknown),
            "sips destinations can be asked for (D9)"
        );
    }

    #[test]
    fn probes_are_spread_over_the_interval() {
        let mut m = Monitor::new(Config {
            ping_interval: 1,
            delete_counter: 5,
        });
        for i in 0..1000u32 {
            m.add(&format!("gw{i}@192.0.2.5"), "bench", 0, 0, (), Millis(0))
                .unwrap();
        }
        // Steady state: count probes per 10 ms slot over one second.
        for t in (0..2000u64).step_by(10) {
            m.due(Millis(t), 0);
        }
        let mut slots = vec![0usize; 100];
        let mut total = 0;
        for t in (2000..3000u64).step_by(10) {
            let n = m.due(Millis(t), 2).len();
            slots[usize::try_from((t - 2000) / 10).unwrap()] = n;
            total += n;
        }
        assert_eq!(total, 1000, "each destination once per interval");
        let max = slots.iter().copied().max().unwrap();
        assert!(
            max <= 20,
            "no burst: at most {max} probes in one 10 ms slot"
        );
    }

    #[test]
    fn a_per_destination_interval_is_kept() {
        let mut m = monitor(5);
        m.add("192.0.2.5", "api", 0, 3, (), Millis(0)).unwrap();
        let n: usize = (0..=10_000u64)
            .step_by(10)
            .map(|t| m.due(Millis(t), 0).len())
            .sum();
        assert_eq!(n, 4, "at 0.5, 3.5, 6.5 and 9.5 s");
        assert_eq!(
            m.get("192.0.2.5", "api").unwrap().unwrap().interval,
            Millis(3000)
        );
    }

    #[test]
    fn removed_and_flushed_destinations_are_not_probed() {
        let mut m = monitor(5);
        m.add("192.0.2.5", "o", 0, 0, (), Millis(0)).unwrap();
        m.add("192.0.2.6", "o", 0, 0, (), Millis(0)).unwrap();
        m.remove("192.0.2.5", "o").unwrap();
        let p: Vec<String> = (0..2000u64)
            .step_by(10)
            .flat_map(|t| m.due(Millis(t), 0))
            .map(|p| p.uri.to_string())
            .collect();
        assert_eq!(p, ["sip:192.0.2.6"]);
        assert_eq!(m.flush(), 1);
        assert!(m.is_empty());
        assert_eq!(m.next_deadline(), None);
    }
}
