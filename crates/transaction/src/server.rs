//! Server transactions (RFC 3261 §17.2, RFC 6026 §7.1): the INVITE machine (Figure 7 as
//! amended by RFC 6026) and the non-INVITE machine (Figure 8).

use crate::timers::{Armed, Millis, Timer, Timers};
use crate::Octets;

/// Which server machine runs (RFC 3261 §17.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerKind {
    /// INVITE server transaction (§17.2.1).
    Invite,
    /// Non-INVITE server transaction (§17.2.2), for every method but INVITE and ACK.
    NonInvite,
}

/// Server transaction states (RFC 3261 Figures 7 and 8, RFC 6026 Figure 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerState {
    /// Non-INVITE: request received, the TU has not answered yet.
    Trying,
    /// INVITE: request received (the TU sends 100 Trying itself); or a provisional response
    /// was sent.
    Proceeding,
    /// A final response was sent (INVITE: a 300-699 one); waiting for the ACK (INVITE) or
    /// absorbing request retransmissions (non-INVITE).
    Completed,
    /// INVITE: a 2xx was sent; 2xx retransmissions from the TU pass through (RFC 6026 §7.1).
    Accepted,
    /// INVITE: the ACK arrived; absorbing ACK retransmissions.
    Confirmed,
    /// Done: the caller may drop the transaction.
    Terminated,
}

/// What the caller must do after an event, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerAction {
    /// Send these octets (a response) towards the request's source (§18.2.2).
    Send(Octets),
    /// Call [`ServerTransaction::on_timer`] with `timer` at `at` (or later). Re-arming a
    /// timer supersedes its earlier deadline; events for superseded deadlines are ignored.
    Schedule {
        /// Which timer.
        timer: Timer,
        /// When it fires.
        at: Millis,
    },
    /// Timer H fired: no ACK came for the non-2xx final (§17.2.1); the TU is told.
    TimedOut,
    /// The transport could not send a response (§17.2.4): the TU is told.
    TransportError,
    /// The transaction reached Terminated: the caller removes it.
    Terminated,
}

/// An RFC 3261 §17.2 server transaction. Sans-IO: events in, [`ServerAction`]s out.
///
/// It never sees the request: the caller matched it ([`crate::TransactionKey::of_request`])
/// and created the transaction; what the machine keeps is the last response, to answer
/// retransmissions with.
#[derive(Debug, Clone)]
pub struct ServerTransaction {
    kind: ServerKind,
    state: ServerState,
    reliable: bool,
    timers: Timers,
    /// The last response sent (provisional or final), with its code.
    last_response: Option<(u16, Octets)>,
    /// The current Timer G interval.
    interval: Millis,
    armed: Armed,
}

impl ServerTransaction {
    /// A server transaction for a request that just arrived: INVITE starts in Proceeding,
    /// non-INVITE in Trying (§17.2.1, §17.2.2). Nothing is sent and no timer runs until the
    /// TU answers.
    pub fn new(
        kind: ServerKind,
        reliable: bool,
        timers: &Timers,
        _now: Millis,
    ) -> ServerTransaction {
        ServerTransaction {
            kind,
            state: match kind {
                ServerKind::Invite => ServerState::Proceeding,
                ServerKind::NonInvite => ServerState::Trying,
            },
            reliable,
            timers: *timers,
            last_response: None,
            interval: timers.timer_g(),
            armed: Armed::default(),
        }
    }

    /// Which machine this is.
    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    /// The current state.
    pub fn state(&self) -> ServerState {
        self.state
    }

    /// True once Terminated.
    pub fn is_terminated(&self) -> bool {
        self.state == ServerState::Terminated
    }

    /// The status code of the last response sent, if any.
    pub fn last_code(&self) -> Option<u16> {
        self.last_response.as_ref().map(|(code, _)| *code)
    }

    /// The deadline of an armed timer, `None` when not armed.
    pub fn deadline(&self, timer: Timer) -> Option<Millis> {
        self.armed.deadline(timer)
    }

    fn schedule(&mut self, timer: Timer, at: Millis, actions: &mut Vec<ServerAction>) {
        self.armed.arm(timer, at);
        actions.push(ServerAction::Schedule { timer, at });
    }

    fn terminate(&mut self, actions: &mut Vec<ServerAction>) {
        self.state = ServerState::Terminated;
        self.armed.disarm_all();
        actions.push(ServerAction::Terminated);
    }

    fn wait(
        &mut self,
        state: ServerState,
        timer: Timer,
        wait: Millis,
        now: Millis,
        actions: &mut Vec<ServerAction>,
    ) {
        if wait == Millis::ZERO {
            self.terminate(actions);
        } else {
            self.state = state;
            self.schedule(timer, now + wait, actions);
        }
    }

    fn resend_last(&self, actions: &mut Vec<ServerAction>) {
        if let Some((_, bytes)) = &self.last_response {
            actions.push(ServerAction::Send(bytes.clone()));
        }
    }

    /// The request arrived again (§17.2.1, §17.2.2): the last response, if any, is sent
    /// again in Proceeding and Completed; it is absorbed otherwise (Trying without a
    /// response, Accepted per RFC 6026 §7.1, Confirmed).
    pub fn on_request_retransmission(&mut self, _now: Millis) -> Vec<ServerAction> {
        let mut actions = Vec::new();
        if matches!(self.state, ServerState::Proceeding | ServerState::Completed) {
            self.resend_last(&mut actions);
        }
        actions
    }

    /// The TU answers the request with a response (`code`, the octets to send).
    ///
    /// INVITE: 1xx stays in Proceeding; 2xx goes to Accepted with Timer L (RFC 6026 §7.1),
    /// where later 2xx from the TU are still sent; 300-699 goes to Completed with Timer G
    /// (unreliable transports) and Timer H. Non-INVITE: 1xx goes to Proceeding, a final to
    /// Completed with Timer J. Responses the state does not allow are dropped (nothing sent).
    pub fn on_tu_response(
        &mut self,
        code: u16,
        response: impl Into<Octets>,
        now: Millis,
    ) -> Vec<ServerAction> {
        let mut actions = Vec::new();
        if !(100..=699).contains(&code) {
            return actions;
        }
        let response: Octets = response.into();
        match (self.kind, self.state) {
            (ServerKind::Invite, ServerState::Proceeding) => {
                actions.push(ServerAction::Send(response.clone()));
                self.last_response = Some((code, response));
                if (200..300).contains(&code) {
                    let l = self.timers.timer_l();
                    self.wait(ServerState::Accepted, Timer::TimerL, l, now, &mut actions);
                } else if code >= 300 {
                    self.state = ServerState::Completed;
                    if !self.reliable {
                        self.interval = self.timers.timer_g();
                        self.schedule(Timer::TimerG, now + self.interval, &mut actions);
                    }
                    let h = self.timers.timer_h();
                    self.schedule(Timer::TimerH, now + h, &mut actions);
                }
            }
            (ServerKind::Invite, ServerState::Accepted) if (200..300).contains(&code) => {
                actions.push(ServerAction::Send(response.clone()));
                self.last_response = Some((code, response));
            }
            (ServerKind::NonInvite, ServerState::Trying | ServerState::Proceeding) => {
                actions.push(ServerAction::Send(response.clone()));
                self.last_response = Some((code, response));
                if code < 200 {
                    self.state = ServerState::Proceeding;
                } else {
                    let j = self.timers.timer_j(self.reliable);
                    self.wait(ServerState::Completed, Timer::TimerJ, j, now, &mut actions);
                }
            }
            _ => {}
        }
        actions
    }

    /// An ACK matched this INVITE transaction (§17.2.1): in Completed it stops the
    /// retransmissions and moves to Confirmed with Timer I; elsewhere it is absorbed.
    pub fn on_ack(&mut self, now: Millis) -> Vec<ServerAction> {
        let mut actions = Vec::new();
        if self.kind == ServerKind::Invite && self.state == ServerState::Completed {
            self.armed.disarm_all();
            let i = self.timers.timer_i(self.reliable);
            self.wait(ServerState::Confirmed, Timer::TimerI, i, now, &mut actions);
        }
        actions
    }

    /// A timer fired. Stale events (the timer was disarmed or re-armed since) do nothing.
    pub fn on_timer(&mut self, timer: Timer, now: Millis) -> Vec<ServerAction> {
        let mut actions = Vec::new();
        if !self.armed.take_due(timer, now) {
            return actions;
        }
        match (timer, self.state) {
            (Timer::TimerG, ServerState::Completed) => {
                self.resend_last(&mut actions);
                self.interval = self.timers.next_timer_g(self.interval);
                self.schedule(Timer::TimerG, now + self.interval, &mut actions);
            }
            (Timer::TimerH, ServerState::Completed) => {
                actions.push(ServerAction::TimedOut);
                self.terminate(&mut actions);
            }
            (Timer::TimerI, ServerState::Confirmed)
            | (Timer::TimerJ, ServerState::Completed)
            | (Timer::TimerL, ServerState::Accepted) => self.terminate(&mut actions),
            _ => {}
        }
        actions
    }

    /// The transport could not send a response (§17.2.4): the TU is told; the transaction
    /// ends, except in Accepted where the TU may still retransmit its 2xx (RFC 6026 §7.1).
    pub fn on_transport_error(&mut self, _now: Millis) -> Vec<ServerAction> {
        let mut actions = Vec::new();
        match self.state {
            ServerState::Trying | ServerState::Proceeding | ServerState::Completed => {
                actions.push(ServerAction::TransportError);
                self.terminate(&mut actions);
            }
            ServerState::Accepted => actions.push(ServerAction::TransportError),
            ServerState::Confirmed | ServerState::Terminated => {}
        }
        actions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(kind: ServerKind, reliable: bool) -> ServerTransaction {
        ServerTransaction::new(kind, reliable, &Timers::default(), Millis(1000))
    }

    fn resp(code: u16) -> Vec<u8> {
        format!("SIP/2.0 {code} X\r\n\r\n").into_bytes()
    }

    #[test]
    fn initial_states() {
        assert_eq!(
            start(ServerKind::Invite, false).state(),
            ServerState::Proceeding
        );
        assert_eq!(
            start(ServerKind::NonInvite, false).state(),
            ServerState::Trying
        );
        let mut tx = start(ServerKind::NonInvite, false);
        assert!(tx.on_request_retransmission(Millis(1100)).is_empty());
    }

    #[test]
    fn invite_transitions_table() {
        // (TU responses, ACK afterwards?, expected state, last code)
        let table: &[(&[u16], bool, ServerState, Option<u16>)] = &[
            (&[100], false, ServerState::Proceeding, Some(100)),
            (&[100, 180], false, ServerState::Proceeding, Some(180)),
            (&[180, 200], false, ServerState::Accepted, Some(200)),
            (&[200, 200], false, ServerState::Accepted, Some(200)),
            (&[200, 486], false, ServerState::Accepted, Some(200)),
            (&[486], false, ServerState::Completed, Some(486)),
            (&[486, 200, 180], false, ServerState::Completed, Some(486)),
            (&[486], true, ServerState::Confirmed, Some(486)),
            (&[200], true, ServerState::Accepted, Some(200)),
            (&[], true, ServerState::Proceeding, None),
        ];
        for (codes, ack, state, last) in table {
            let mut tx = start(ServerKind::Invite, false);
            for &code in codes.iter() {
                tx.on_tu_response(code, resp(code), Millis(1100));
            }
            if *ack {
                tx.on_ack(Millis(1200));
            }
            assert_eq!(tx.state(), *state, "{codes:?} ack={ack}");
            assert_eq!(tx.last_code(), *last, "{codes:?}");
        }
    }

    #[test]
    fn non_invite_transitions_table() {
        let table: &[(&[u16], ServerState, Option<u16>)] = &[
            (&[], ServerState::Trying, None),
            (&[100], ServerState::Proceeding, Some(100)),
            (&[200], ServerState::Completed, Some(200)),
            (&[100, 404, 200], ServerState::Completed, Some(404)),
        ];
        for (codes, state, last) in table {
            let mut tx = start(ServerKind::NonInvite, false);
            for &code in codes.iter() {
                tx.on_tu_response(code, resp(code), Millis(1100));
            }
            assert_eq!(tx.state(), *state, "{codes:?}");
            assert_eq!(tx.last_code(), *last, "{codes:?}");
        }
    }

    #[test]
    fn retransmitted_request_gets_the_last_response() {
        let mut tx = start(ServerKind::Invite, false);
        assert!(tx.on_request_retransmission(Millis(1050)).is_empty());
        tx.on_tu_response(180, resp(180), Millis(1100));
        assert_eq!(
            tx.on_request_retransmission(Millis(1200)),
            vec![ServerAction::Send(resp(180).into())]
        );
        tx.on_tu_response(486, resp(486), Millis(1300));
        assert_eq!(
            tx.on_request_retransmission(Millis(1400)),
            vec![ServerAction::Send(resp(486).into())]
        );
        tx.on_ack(Millis(1500));
        assert!(tx.on_request_retransmission(Millis(1600)).is_empty());

        let mut tx = start(ServerKind::Invite, false);
        tx.on_tu_response(200, resp(200), Millis(1100));
        assert!(tx.on_request_retransmission(Millis(1200)).is_empty());

        let mut tx = start(ServerKind::NonInvite, false);
        tx.on_tu_response(200, resp(200), Millis(1100));
        assert_eq!(
            tx.on_request_retransmission(Millis(1200)),
            vec![ServerAction::Send(resp(200).into())]
        );
    }

    #[test]
    fn invite_non_2xx_retransmits_on_timer_g_capped_at_t2_until_h() {
        let mut tx = start(ServerKind::Invite, false);
        let actions = tx.on_tu_response(486, resp(486), Millis(1000));
        assert_eq!(
            actions,
            vec![
                ServerAction::Send(resp(486).into()),
                ServerAction::Schedule {
                    timer: Timer::TimerG,
                    at: Millis(1500)
                },
                ServerAction::Schedule {
                    timer: Timer::TimerH,
                    at: Millis(33_000)
                },
            ]
        );
        let mut now = Millis(1000);
        let mut gaps = Vec::new();
        while let Some(at) = tx.deadline(Timer::TimerG) {
            if at >= Millis(33_000) {
                break;
            }
            gaps.push(at.0 - now.0);
            now = at;
            assert_eq!(
                tx.on_timer(Timer::TimerG, now).first(),
                Some(&ServerAction::Send(resp(486).into()))
            );
        }
        assert_eq!(
            gaps,
            [500, 1000, 2000, 4000, 4000, 4000, 4000, 4000, 4000, 4000]
        );
        assert_eq!(
            tx.on_timer(Timer::TimerH, Millis(33_000)),
            vec![ServerAction::TimedOut, ServerAction::Terminated]
        );
    }

    #[test]
    fn ack_stops_retransmissions_and_waits_timer_i() {
        let mut tx = start(ServerKind::Invite, false);
        tx.on_tu_response(603, resp(603), Millis(1000));
        assert_eq!(
            tx.on_ack(Millis(1200)),
            vec![ServerAction::Schedule {
                timer: Timer::TimerI,
                at: Millis(6200)
            }]
        );
        // Stale G and H events are ignored.
        assert!(tx.on_timer(Timer::TimerG, Millis(1500)).is_empty());
        assert!(tx.on_timer(Timer::TimerH, Millis(33_000)).is_empty());
        assert!(tx.on_ack(Millis(1300)).is_empty());
        assert_eq!(
            tx.on_timer(Timer::TimerI, Millis(6200)),
            vec![ServerAction::Terminated]
        );
    }

    #[test]
    fn reliable_transport_has_no_timer_g_and_zero_i_and_j() {
        let mut tx = start(ServerKind::Invite, true);
        let actions = tx.on_tu_response(486, resp(486), Millis(1000));
        assert!(!actions.iter().any(|a| matches!(
            a,
            ServerAction::Schedule {
                timer: Timer::TimerG,
                ..
            }
        )));
        assert_eq!(tx.on_ack(Millis(1100)), vec![ServerAction::Terminated]);

        let mut tx = start(ServerKind::NonInvite, true);
        assert_eq!(
            tx.on_tu_response(200, resp(200), Millis(1000)),
            vec![
                ServerAction::Send(resp(200).into()),
                ServerAction::Terminated
            ]
        );
    }

    #[test]
    fn accepted_passes_2xx_and_ends_on_timer_l() {
        let mut tx = start(ServerKind::Invite, false);
        assert_eq!(
            tx.on_tu_response(200, resp(200), Millis(1000)),
            vec![
                ServerAction::Send(resp(200).into()),
                ServerAction::Schedule {
                    timer: Timer::TimerL,
                    at: Millis(33_000)
                },
            ]
        );
        assert_eq!(
            tx.on_tu_response(200, resp(200), Millis(1500)),
            vec![ServerAction::Send(resp(200).into())]
        );
        assert_eq!(
            tx.on_transport_error(Millis(1600)),
            vec![ServerAction::TransportError]
        );
        assert_eq!(tx.state(), ServerState::Accepted);
        assert_eq!(
            tx.on_timer(Timer::TimerL, Millis(33_000)),
            vec![ServerAction::Terminated]
        );
    }

    #[test]
    fn non_invite_completed_waits_timer_j() {
        let mut tx = start(ServerKind::NonInvite, false);
        assert_eq!(
            tx.on_tu_response(404, resp(404), Millis(1000)),
            vec![
                ServerAction::Send(resp(404).into()),
                ServerAction::Schedule {
                    timer: Timer::TimerJ,
                    at: Millis(33_000)
                },
            ]
        );
        assert!(tx.on_timer(Timer::TimerJ, Millis(32_999)).is_empty());
        assert_eq!(
            tx.on_timer(Timer::TimerJ, Millis(33_000)),
            vec![ServerAction::Terminated]
        );
        assert!(tx.on_tu_response(200, resp(200), Millis(33_001)).is_empty());
    }

    #[test]
    fn transport_error_terminates_except_when_done() {
        for kind in [ServerKind::Invite, ServerKind::NonInvite] {
            let mut tx = start(kind, false);
            tx.on_tu_response(100, resp(100), Millis(1000));
            assert_eq!(
                tx.on_transport_error(Millis(1100)),
                vec![ServerAction::TransportError, ServerAction::Terminated]
            );
            assert!(tx.on_transport_error(Millis(1200)).is_empty());
        }
    }

    #[test]
    fn out_of_range_codes_are_ignored() {
        let mut tx = start(ServerKind::Invite, false);
        assert!(tx.on_tu_response(99, resp(99), Millis(1000)).is_empty());
        assert!(tx.on_tu_response(700, resp(700), Millis(1000)).is_empty());
        assert_eq!(tx.state(), ServerState::Proceeding);
    }
}
