//! Time as data: [`Millis`], the [`Timer`] names and the [`Timers`] configuration
//! (RFC 3261 §17 and Table 4 of §A, RFC 6026 §8.4).

use std::fmt;
use std::ops::Add;

/// A point on the caller's clock, or a duration, in milliseconds.
///
/// The transaction layer never reads a clock: the caller passes `now` with every event and
/// receives deadlines back ([`crate::ClientAction::Schedule`]). The clock may be real
/// (milliseconds since some epoch) or virtual (tests), as long as it never goes backwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millis(pub u64);

impl Millis {
    /// Zero.
    pub const ZERO: Millis = Millis(0);

    /// The value in milliseconds.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// `self * factor`, saturating.
    pub const fn times(self, factor: u64) -> Millis {
        Millis(self.0.saturating_mul(factor))
    }
}

impl Add for Millis {
    type Output = Millis;

    /// Saturating addition: a deadline far in the future stays far in the future.
    fn add(self, rhs: Millis) -> Millis {
        Millis(self.0.saturating_add(rhs.0))
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ms", self.0)
    }
}

/// The transaction timers, named as in RFC 3261 §17 (A-K) and RFC 6026 §8.4 (L, M).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// INVITE client: request retransmission interval (§17.1.1.2), unreliable transports only.
    TimerA,
    /// INVITE client: transaction timeout (§17.1.1.2).
    TimerB,
    /// Proxy INVITE: no final reply (§16.6 step 11). Owned by the TU, named here for
    /// completeness; no machine of this crate arms it.
    TimerC,
    /// INVITE client: wait time for response retransmissions in Completed (§17.1.1.2).
    TimerD,
    /// Non-INVITE client: request retransmission interval (§17.1.2.2).
    TimerE,
    /// Non-INVITE client: transaction timeout (§17.1.2.2).
    TimerF,
    /// INVITE server: final response retransmission interval (§17.2.1).
    TimerG,
    /// INVITE server: wait time for the ACK (§17.2.1).
    TimerH,
    /// INVITE server: wait time for ACK retransmissions in Confirmed (§17.2.1).
    TimerI,
    /// Non-INVITE server: wait time for request retransmissions in Completed (§17.2.2).
    TimerJ,
    /// Non-INVITE client: wait time for response retransmissions in Completed (§17.1.2.2).
    TimerK,
    /// INVITE server: wait time in Accepted for 2xx retransmissions from the TU
    /// (RFC 6026 §8.7).
    TimerL,
    /// INVITE client: wait time in Accepted for retransmitted 2xx (RFC 6026 §8.4).
    TimerM,
}

impl Timer {
    /// Every timer, in order.
    pub const ALL: [Timer; 13] = [
        Timer::TimerA,
        Timer::TimerB,
        Timer::TimerC,
        Timer::TimerD,
        Timer::TimerE,
        Timer::TimerF,
        Timer::TimerG,
        Timer::TimerH,
        Timer::TimerI,
        Timer::TimerJ,
        Timer::TimerK,
        Timer::TimerL,
        Timer::TimerM,
    ];

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

/// The timer configuration: T1, T2, T4 and the values derived from them
/// (RFC 3261 §17.1.1.1, Table 4 of Appendix A; RFC 6026 §8.4).
///
/// Kamailio's tm names T1 and T2 `retr_timer1` and `retr_timer2` (500 ms and 4 s by default)
/// and caps the INVITE retransmission interval at T2 as well, which RFC 3261 Timer A does
/// not: set [`Timers::cap_timer_a`] to behave like tm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// RTT estimate (RFC 3261 §17.1.1.1), 500 ms by default.
    pub t1: Millis,
    /// Maximum retransmission interval for non-INVITE requests and INVITE responses, 4 s.
    pub t2: Millis,
    /// Maximum time a message stays in the network, 5 s.
    pub t4: Millis,
    /// Cap Timer A at T2 like Kamailio's tm (`timer.c`), instead of doubling without limit
    /// as RFC 3261 §17.1.1.2 says. Off by default.
    pub cap_timer_a: bool,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: Millis(500),
            t2: Millis(4000),
            t4: Millis(5000),
            cap_timer_a: false,
        }
    }
}

impl Timers {
    /// Timer A's first interval: T1 (§17.1.1.2).
    pub fn timer_a(&self) -> Millis {
        self.t1
    }

    /// The Timer A interval after `previous`: doubled, capped at T2 only with
    /// [`Timers::cap_timer_a`] (§17.1.1.2).
    pub fn next_timer_a(&self, previous: Millis) -> Millis {
        let doubled = previous.times(2);
        if self.cap_timer_a {
            doubled.min(self.t2)
        } else {
            doubled
        }
    }

    /// Timer B: 64*T1 (§17.1.1.2).
    pub fn timer_b(&self) -> Millis {
        self.t1.times(64)
    }

    /// Timer D: at least 32 s on unreliable transports, 0 on reliable ones (§17.1.1.2).
    /// With a T1 above 500 ms it grows to 64*T1 so that it still covers Timer H.
    pub fn timer_d(&self, reliable: bool) -> Millis {
        if reliable {
            Millis::ZERO
        } else {
            Millis(32_000).max(self.t1.times(64))
        }
    }

    /// Timer E's first interval: T1 (§17.1.2.2).
    pub fn timer_e(&self) -> Millis {
        self.t1
    }

    /// The Timer E interval after `previous` in Trying: doubled, capped at T2 (§17.1.2.2).
    pub fn next_timer_e(&self, previous: Millis) -> Millis {
        previous.times(2).min(self.t2)
    }

    /// Timer F: 64*T1 (§17.1.2.2).
    pub fn timer_f(&self) -> Millis {
        self.t1.times(64)
    }

    /// Timer G's first interval: T1 (§17.2.1).
    pub fn timer_g(&self) -> Millis {
        self.t1
    }

    /// The Timer G interval after `previous`: doubled, capped at T2 (§17.2.1).
    pub fn next_timer_g(&self, previous: Millis) -> Millis {
        previous.times(2).min(self.t2)
    }

    /// Timer H: 64*T1 (§17.2.1).
    pub fn timer_h(&self) -> Millis {
        self.t1.times(64)
    }

    /// Timer I: T4 on unreliable transports, 0 on reliable ones (§17.2.1).
    pub fn timer_i(&self, reliable: bool) -> Millis {
        if reliable {
            Millis::ZERO
        } else {
            self.t4
        }
    }

    /// Timer J: 64*T1 on unreliable transports, 0 on reliable ones (§17.2.2).
    pub fn timer_j(&self, reliable: bool) -> Millis {
        if reliable {
            Millis::ZERO
        } else {
            self.t1.times(64)
        }
    }

    /// Timer K: T4 on unreliable transports, 0 on reliable ones (§17.1.2.2).
    pub fn timer_k(&self, reliable: bool) -> Millis {
        if reliable {
            Millis::ZERO
        } else {
            self.t4
        }
    }

    /// Timer L: 64*T1 (RFC 6026 §8.7).
    pub fn timer_l(&self) -> Millis {
        self.t1.times(64)
    }

    /// Timer M: 64*T1 (RFC 6026 §8.4).
    pub fn timer_m(&self) -> Millis {
        self.t1.times(64)
    }
}

/// Which timers are armed, and for when. A timer event is acted on only when its timer is
/// armed and due: an event for a timer that was disarmed (state moved on) or re-armed for
/// later is stale and ignored.
#[derive(Debug, Clone, Default)]
pub(crate) struct Armed {
    at: [Option<Millis>; 13],
}

impl Armed {
    pub(crate) fn arm(&mut self, timer: Timer, at: Millis) {
        if let Some(slot) = self.at.get_mut(timer.index()) {
            *slot = Some(at);
        }
    }

    pub(crate) fn disarm(&mut self, timer: Timer) {
        if let Some(slot) = self.at.get_mut(timer.index()) {
            *slot = None;
        }
    }

    pub(crate) fn disarm_all(&mut self) {
        self.at = [None; 13];
    }

    /// True (and the timer disarmed) when `timer` is armed for `now` or earlier.
    pub(crate) fn take_due(&mut self, timer: Timer, now: Millis) -> bool {
        match self.at.get_mut(timer.index()) {
            Some(slot) if slot.is_some_and(|at| at <= now) => {
                *slot = None;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn deadline(&self, timer: Timer) -> Option<Millis> {
        self.at.get(timer.index()).copied().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_rfc_3261_values() {
        let t = Timers::default();
        assert_eq!(t.t1, Millis(500));
        assert_eq!(t.t2, Millis(4000));
        assert_eq!(t.t4, Millis(5000));
        assert_eq!(t.timer_b(), Millis(32_000));
        assert_eq!(t.timer_f(), Millis(32_000));
        assert_eq!(t.timer_h(), Millis(32_000));
        assert_eq!(t.timer_j(false), Millis(32_000));
        assert_eq!(t.timer_l(), Millis(32_000));
        assert_eq!(t.timer_m(), Millis(32_000));
        assert_eq!(t.timer_d(false), Millis(32_000));
        assert_eq!(t.timer_i(false), Millis(5000));
        assert_eq!(t.timer_k(false), Millis(5000));
    }

    #[test]
    fn reliable_transports_zero_the_wait_timers() {
        let t = Timers::default();
        assert_eq!(t.timer_d(true), Millis::ZERO);
        assert_eq!(t.timer_i(true), Millis::ZERO);
        assert_eq!(t.timer_j(true), Millis::ZERO);
        assert_eq!(t.timer_k(true), Millis::ZERO);
    }

    #[test]
    fn timer_a_doubles_without_cap_unless_asked() {
        let t = Timers::default();
        let mut a = t.timer_a();
        let mut seen = vec![a.0];
        for _ in 0..6 {
            a = t.next_timer_a(a);
            seen.push(a.0);
        }
        assert_eq!(seen, [500, 1000, 2000, 4000, 8000, 16000, 32000]);
        let tm = Timers {
            cap_timer_a: true,
            ..Timers::default()
        };
        assert_eq!(tm.next_timer_a(Millis(4000)), Millis(4000));
    }

    #[test]
    fn timers_e_and_g_cap_at_t2() {
        let t = Timers::default();
        let mut e = t.timer_e();
        let mut seen = vec![e.0];
        for _ in 0..5 {
            e = t.next_timer_e(e);
            seen.push(e.0);
        }
        assert_eq!(seen, [500, 1000, 2000, 4000, 4000, 4000]);
        assert_eq!(t.next_timer_g(Millis(2000)), Millis(4000));
        assert_eq!(t.next_timer_g(Millis(4000)), Millis(4000));
    }

    #[test]
    fn derived_values_follow_a_configured_t1() {
        let t = Timers {
            t1: Millis(100),
            ..Timers::default()
        };
        assert_eq!(t.timer_b(), Millis(6400));
        assert_eq!(t.timer_d(false), Millis(32_000));
        let slow = Timers {
            t1: Millis(1000),
            ..Timers::default()
        };
        assert_eq!(slow.timer_d(false), Millis(64_000));
    }

    #[test]
    fn every_timer_has_its_own_slot() {
        for (i, timer) in Timer::ALL.iter().enumerate() {
            assert_eq!(timer.index(), i);
        }
    }

    #[test]
    fn stale_or_early_timer_events_are_not_due() {
        let mut armed = Armed::default();
        assert!(!armed.take_due(Timer::TimerA, Millis(10)));
        armed.arm(Timer::TimerA, Millis(500));
        assert!(!armed.take_due(Timer::TimerA, Millis(499)));
        assert!(armed.take_due(Timer::TimerA, Millis(500)));
        assert!(!armed.take_due(Timer::TimerA, Millis(500)));
        armed.arm(Timer::TimerB, Millis(5));
        armed.disarm(Timer::TimerB);
        assert!(!armed.take_due(Timer::TimerB, Millis(50)));
        assert_eq!(armed.deadline(Timer::TimerB), None);
    }
}
