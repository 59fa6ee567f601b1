//! Client transactions (RFC 3261 §17.1, RFC 6026 §7.2): the INVITE machine (Figure 5 as
//! amended by RFC 6026) and the non-INVITE machine (Figure 6).

use sable_sip::header::HeaderName;
use sable_sip::Message;

use crate::error::TransactionError;
use crate::timers::{Armed, Millis, Timer, Timers};
use crate::Octets;

/// Which client machine runs (RFC 3261 §17.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKind {
    /// INVITE client transaction (§17.1.1).
    Invite,
    /// Non-INVITE client transaction (§17.1.2), for every method but INVITE and ACK.
    NonInvite,
}

/// Client transaction states (RFC 3261 Figures 5 and 6, RFC 6026 Figure 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientState {
    /// INVITE sent, nothing heard yet.
    Calling,
    /// Non-INVITE request sent, nothing heard yet.
    Trying,
    /// A provisional response arrived.
    Proceeding,
    /// A final response arrived (INVITE: a non-2xx one); absorbing retransmissions.
    Completed,
    /// INVITE: a 2xx arrived; further 2xx are passed up (RFC 6026 §7.2).
    Accepted,
    /// Done: the caller may drop the transaction.
    Terminated,
}

/// What the caller must do after an event, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAction {
    /// Send these octets to the transaction's destination: the request (first send and
    /// retransmissions) or the ACK of a non-2xx final (§17.1.1.3).
    Send(Octets),
    /// Call [`ClientTransaction::on_timer`] with `timer` at `at` (or later). Re-arming a timer
    /// supersedes its earlier deadline; events for superseded deadlines are ignored.
    Schedule {
        /// Which timer.
        timer: Timer,
        /// When it fires.
        at: Millis,
    },
    /// Pass the response with this status code up to the TU.
    Deliver {
        /// Status code of the response.
        code: u16,
    },
    /// The ACK for a non-2xx final must be sent but the transaction could not build it
    /// (the response was given as a bare code, or its headers were unusable): the caller
    /// builds it with [`build_ack`] and sends it.
    SendAck {
        /// Status code of the response being acknowledged.
        code: u16,
    },
    /// Timer B or F fired: the TU behaves as if a 408 had arrived (§8.1.3.1).
    TimedOut,
    /// The transport reported a failure: the TU behaves as if a 503 had arrived (§8.1.3.1).
    TransportError,
    /// The transaction reached Terminated: the caller removes it.
    Terminated,
}

/// An RFC 3261 §17.1 client transaction. Sans-IO: events in, [`ClientAction`]s out.
#[derive(Debug, Clone)]
pub struct ClientTransaction {
    kind: ClientKind,
    state: ClientState,
    reliable: bool,
    timers: Timers,
    request: Octets,
    /// The ACK sent for the non-2xx final, re-sent for each retransmission of it.
    ack: Option<Octets>,
    /// The current Timer A or E interval.
    interval: Millis,
    armed: Armed,
}

impl ClientTransaction {
    /// Starts a transaction for `request` (the octets to send): the first send, Timer A/E
    /// when the transport is unreliable, Timer B/F (§17.1.1.2, §17.1.2.2).
    pub fn new(
        kind: ClientKind,
        request: impl Into<Octets>,
        reliable: bool,
        timers: &Timers,
        now: Millis,
    ) -> (ClientTransaction, Vec<ClientAction>) {
        let (state, interval, retransmit, timeout, give_up) = match kind {
            ClientKind::Invite => (
                ClientState::Calling,
                timers.timer_a(),
                Timer::TimerA,
                Timer::TimerB,
                timers.timer_b(),
            ),
            ClientKind::NonInvite => (
                ClientState::Trying,
                timers.timer_e(),
                Timer::TimerE,
                Timer::TimerF,
                timers.timer_f(),
            ),
        };
        let mut tx = ClientTransaction {
            kind,
            state,
            reliable,
            timers: *timers,
            request: request.into(),
            ack: None,
            interval,
            armed: Armed::default(),
        };
        let mut actions = vec![ClientAction::Send(tx.request.clone())];
        if !reliable {
            tx.schedule(retransmit, now + interval, &mut actions);
        }
        tx.schedule(timeout, now + give_up, &mut actions);
        (tx, actions)
    }

    /// Which machine this is.
    pub fn kind(&self) -> ClientKind {
        self.kind
    }

    /// The current state.
    pub fn state(&self) -> ClientState {
        self.state
    }

    /// True once Terminated.
    pub fn is_terminated(&self) -> bool {
        self.state == ClientState::Terminated
    }

    /// The request octets this transaction sends.
    pub fn request(&self) -> &[u8] {
        &self.request
    }

    /// The deadline of an armed timer, `None` when not armed.
    pub fn deadline(&self, timer: Timer) -> Option<Millis> {
        self.armed.deadline(timer)
    }

    fn schedule(&mut self, timer: Timer, at: Millis, actions: &mut Vec<ClientAction>) {
        self.armed.arm(timer, at);
        actions.push(ClientAction::Schedule { timer, at });
    }

    fn terminate(&mut self, actions: &mut Vec<ClientAction>) {
        self.state = ClientState::Terminated;
        self.armed.disarm_all();
        actions.push(ClientAction::Terminated);
    }

    /// Enters a wait state (Completed or Accepted) for `wait`, or Terminated at once when
    /// `wait` is zero (reliable transports, Table 4).
    fn wait(
        &mut self,
        state: ClientState,
        timer: Timer,
        wait: Millis,
        now: Millis,
        actions: &mut Vec<ClientAction>,
    ) {
        self.armed.disarm_all();
        if wait == Millis::ZERO {
            self.terminate(actions);
        } else {
            self.state = state;
            self.schedule(timer, now + wait, actions);
        }
    }

    /// A response matched this transaction (§17.1.3). For an INVITE non-2xx final the
    /// transaction builds the ACK from its request and the response (§17.1.1.3).
    pub fn on_response(&mut self, response: &Message<'_>, now: Millis) -> Vec<ClientAction> {
        let Some(code) = response.status_code() else {
            return Vec::new();
        };
        let needs_ack = self.kind == ClientKind::Invite
            && code >= 300
            && matches!(
                self.state,
                ClientState::Calling | ClientState::Proceeding | ClientState::Completed
            );
        if needs_ack && self.ack.is_none() {
            self.ack = Message::parse(&self.request)
                .ok()
                .and_then(|request| build_ack(&request, response).ok())
                .map(Octets::from);
        }
        self.on_response_code(code, now)
    }

    /// A response given by its status code only. An INVITE non-2xx final then yields
    /// [`ClientAction::SendAck`] unless an ACK was already built by
    /// [`ClientTransaction::on_response`].
    pub fn on_response_code(&mut self, code: u16, now: Millis) -> Vec<ClientAction> {
        let mut actions = Vec::new();
        if !(100..=699).contains(&code) {
            return actions;
        }
        match (self.kind, self.state) {
            (ClientKind::Invite, ClientState::Calling | ClientState::Proceeding) => {
                if code < 200 {
                    self.armed.disarm(Timer::TimerA);
                    self.armed.disarm(Timer::TimerB);
                    self.state = ClientState::Proceeding;
                    actions.push(ClientAction::Deliver { code });
                } else if code < 300 {
                    // RFC 6026 §7.2: Accepted, not Terminated, so that 2xx retransmissions
                    // are passed up rather than treated as strays.
                    actions.push(ClientAction::Deliver { code });
                    let m = self.timers.timer_m();
                    self.wait(ClientState::Accepted, Timer::TimerM, m, now, &mut actions);
                } else {
                    self.push_ack(code, &mut actions);
                    actions.push(ClientAction::Deliver { code });
                    let d = self.timers.timer_d(self.reliable);
                    self.wait(ClientState::Completed, Timer::TimerD, d, now, &mut actions);
                }
            }
            // §17.1.1.2: a retransmitted final is acknowledged again, not passed up.
            (ClientKind::Invite, ClientState::Completed) if code >= 300 => {
                self.push_ack(code, &mut actions);
            }
            // RFC 6026 §7.2: every 2xx goes up (the TU/dialog layer re-ACKs it).
            (ClientKind::Invite, ClientState::Accepted) if (200..300).contains(&code) => {
                actions.push(ClientAction::Deliver { code });
            }
            (ClientKind::NonInvite, ClientState::Trying | ClientState::Proceeding) => {
                actions.push(ClientAction::Deliver { code });
                if code < 200 {
                    self.state = ClientState::Proceeding;
                } else {
                    let k = self.timers.timer_k(self.reliable);
                    self.wait(ClientState::Completed, Timer::TimerK, k, now, &mut actions);
                }
            }
            _ => {}
        }
        actions
    }

    fn push_ack(&self, code: u16, actions: &mut Vec<ClientAction>) {
        match &self.ack {
            Some(ack) => actions.push(ClientAction::Send(ack.clone())),
            None => actions.push(ClientAction::SendAck { code }),
        }
    }

    /// A timer fired. Stale events (the timer was disarmed or re-armed since) do nothing.
    pub fn on_timer(&mut self, timer: Timer, now: Millis) -> Vec<ClientAction> {
        let mut actions = Vec::new();
        if !self.armed.take_due(timer, now) {
            return actions;
        }
        match (timer, self.state) {
            (Timer::TimerA, ClientState::Calling) => {
                // §17.1.1.2: retransmit, double the interval.
                actions.push(ClientAction::Send(self.request.clone()));
                self.interval = self.timers.next_timer_a(self.interval);
                self.schedule(Timer::TimerA, now + self.interval, &mut actions);
            }
            (Timer::TimerE, ClientState::Trying | ClientState::Proceeding) => {
                // §17.1.2.2: double up to T2 in Trying, T2 once Proceeding.
                actions.push(ClientAction::Send(self.request.clone()));
                self.interval = if self.state == ClientState::Proceeding {
                    self.timers.t2
                } else {
                    self.timers.next_timer_e(self.interval)
                };
                self.schedule(Timer::TimerE, now + self.interval, &mut actions);
            }
            (Timer::TimerB, ClientState::Calling)
            | (Timer::TimerF, ClientState::Trying | ClientState::Proceeding) => {
                actions.push(ClientAction::TimedOut);
                self.terminate(&mut actions);
            }
            (Timer::TimerD | Timer::TimerK, ClientState::Completed)
            | (Timer::TimerM, ClientState::Accepted) => self.terminate(&mut actions),
            _ => {}
        }
        actions
    }

    /// The transport failed to send (§17.1.1.2, §17.1.2.2): the TU is told and the
    /// transaction ends. In Accepted the failure concerns the TU's own ACK, not this
    /// transaction, which stays (RFC 6026 §7.2).
    pub fn on_transport_error(&mut self, _now: Millis) -> Vec<ClientAction> {
        let mut actions = Vec::new();
        match self.state {
            ClientState::Calling
            | ClientState::Trying
            | ClientState::Proceeding
            | ClientState::Completed => {
                actions.push(ClientAction::TransportError);
                self.terminate(&mut actions);
            }
            ClientState::Accepted | ClientState::Terminated => {}
        }
        actions
    }
}

/// Builds the ACK for a non-2xx final response to an INVITE (RFC 3261 §17.1.1.3): the
/// Request-URI and top Via of the request, its From, Call-ID and CSeq number with method ACK,
/// the To of the response (with its tag), the request's Route headers, Max-Forwards 70 and
/// Content-Length 0.
pub fn build_ack(
    request: &Message<'_>,
    response: &Message<'_>,
) -> Result<Vec<u8>, TransactionError> {
    let uri = match request.start_line() {
        sable_sip::StartLine::Request { uri, .. } => *uri,
        sable_sip::StartLine::Response { .. } => return Err(TransactionError::NotARequest),
    };
    if response.is_request() {
        return Err(TransactionError::NotAResponse);
    }
    let value = |msg: &Message<'_>,
                 name: HeaderName,
                 label: &'static str|
     -> Result<Vec<u8>, TransactionError> {
        msg.header(name)
            .map(|h| msg.value(h).to_vec())
            .ok_or_else(|| TransactionError::BadHeader {
                header: label,
                source: sable_sip::ParseError::new(
                    sable_sip::ParseErrorKind::MissingHeader,
                    msg.headers_end(),
                ),
            })
    };
    // Parse what matters so a broken request does not yield a broken ACK.
    request.top_via().map_err(TransactionError::bad("Via"))?;
    request.from().map_err(TransactionError::bad("From"))?;
    response.to().map_err(TransactionError::bad("To"))?;
    let call_id = request
        .call_id()
        .map_err(TransactionError::bad("Call-ID"))?;
    let cseq = request.cseq().map_err(TransactionError::bad("CSeq"))?;
    let via = value(request, HeaderName::Via, "Via")?;
    let from = value(request, HeaderName::From, "From")?;
    let to = value(response, HeaderName::To, "To")?;

    let mut out = Vec::with_capacity(256 + uri.len() + via.len() + from.len() + to.len());
    out.extend_from_slice(b"ACK ");
    out.extend_from_slice(uri);
    out.extend_from_slice(b" SIP/2.0\r\nVia: ");
    out.extend_from_slice(&via);
    out.extend_from_slice(b"\r\n");
    for route in request.headers_named(HeaderName::Route) {
        out.extend_from_slice(b"Route: ");
        out.extend_from_slice(request.value(route));
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Max-Forwards: 70\r\nFrom: ");
    out.extend_from_slice(&from);
    out.extend_from_slice(b"\r\nTo: ");
    out.extend_from_slice(&to);
    out.extend_from_slice(b"\r\nCall-ID: ");
    out.extend_from_slice(call_id);
    out.extend_from_slice(
        format!("\r\nCSeq: {} ACK\r\nContent-Length: 0\r\n\r\n", cseq.number).as_bytes(),
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds8\r\n\
Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n\
Route: <sip:p3.example.com;lr>\r\n\
Max-Forwards: 69\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
Content-Length: 0\r\n\r\n";

    const BUSY: &[u8] = b"SIP/2.0 486 Busy Here\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds8;received=192.0.2.1\r\n\
To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 314159 INVITE\r\n\
Content-Length: 0\r\n\r\n";

    fn sends(actions: &[ClientAction]) -> usize {
        actions
            .iter()
            .filter(|a| matches!(a, ClientAction::Send(_)))
            .count()
    }

    fn delivered(actions: &[ClientAction]) -> Vec<u16> {
        actions
            .iter()
            .filter_map(|a| match a {
                ClientAction::Deliver { code } => Some(*code),
                _ => None,
            })
            .collect()
    }

    fn start(kind: ClientKind, reliable: bool) -> (ClientTransaction, Vec<ClientAction>) {
        ClientTransaction::new(
            kind,
            INVITE.to_vec(),
            reliable,
            &Timers::default(),
            Millis(1000),
        )
    }

    #[test]
    fn invite_start_sends_and_arms_a_and_b() {
        let (tx, actions) = start(ClientKind::Invite, false);
        assert_eq!(tx.state(), ClientState::Calling);
        assert_eq!(
            actions,
            vec![
                ClientAction::Send(INVITE.into()),
                ClientAction::Schedule {
                    timer: Timer::TimerA,
                    at: Millis(1500)
                },
                ClientAction::Schedule {
                    timer: Timer::TimerB,
                    at: Millis(33_000)
                },
            ]
        );
    }

    #[test]
    fn reliable_transport_arms_no_retransmission_timer() {
        let (_, actions) = start(ClientKind::Invite, true);
        assert_eq!(
            actions,
            vec![
                ClientAction::Send(INVITE.into()),
                ClientAction::Schedule {
                    timer: Timer::TimerB,
                    at: Millis(33_000)
                },
            ]
        );
        let (_, actions) = start(ClientKind::NonInvite, true);
        assert!(!actions.iter().any(|a| matches!(
            a,
            ClientAction::Schedule {
                timer: Timer::TimerE,
                ..
            }
        )));
    }

    #[test]
    fn timer_a_retransmits_with_doubling_intervals() {
        let (mut tx, _) = start(ClientKind::Invite, false);
        let mut now = Millis(1000);
        let mut gaps = Vec::new();
        while let Some(at) = tx.deadline(Timer::TimerA) {
            if at >= Millis(33_000) {
                break;
            }
            gaps.push(at.0 - now.0);
            now = at;
            let actions = tx.on_timer(Timer::TimerA, now);
            assert_eq!(sends(&actions), 1);
        }
        assert_eq!(gaps, [500, 1000, 2000, 4000, 8000, 16000]);
    }

    #[test]
    fn timer_e_caps_at_t2_and_jumps_to_t2_in_proceeding() {
        let (mut tx, _) = start(ClientKind::NonInvite, false);
        let mut now = Millis(1000);
        let mut gaps = Vec::new();
        for _ in 0..5 {
            let at = tx.deadline(Timer::TimerE).unwrap();
            gaps.push(at.0 - now.0);
            now = at;
            tx.on_timer(Timer::TimerE, now);
        }
        assert_eq!(gaps, [500, 1000, 2000, 4000, 4000]);

        let (mut tx, _) = start(ClientKind::NonInvite, false);
        tx.on_response_code(100, Millis(1100));
        tx.on_timer(Timer::TimerE, Millis(1500));
        assert_eq!(tx.deadline(Timer::TimerE), Some(Millis(5500)));
    }

    #[test]
    fn invite_transitions_follow_rfc_3261_and_6026() {
        // (responses in order, expected final state, expected deliveries)
        let table: &[(&[u16], ClientState, &[u16])] = &[
            (&[100], ClientState::Proceeding, &[100]),
            (&[180, 183], ClientState::Proceeding, &[180, 183]),
            (&[200], ClientState::Accepted, &[200]),
            (&[180, 200, 200], ClientState::Accepted, &[180, 200, 200]),
            (&[486], ClientState::Completed, &[486]),
            (
                &[180, 486, 486, 180, 200],
                ClientState::Completed,
                &[180, 486],
            ),
            (&[200, 486, 180], ClientState::Accepted, &[200]),
        ];
        for (codes, state, expected) in table {
            let (mut tx, _) = start(ClientKind::Invite, false);
            let mut got = Vec::new();
            for &code in codes.iter() {
                got.extend(delivered(&tx.on_response_code(code, Millis(1200))));
            }
            assert_eq!(tx.state(), *state, "{codes:?}");
            assert_eq!(&got, expected, "{codes:?}");
        }
    }

    #[test]
    fn non_invite_transitions() {
        let table: &[(&[u16], ClientState, &[u16])] = &[
            (&[100], ClientState::Proceeding, &[100]),
            (&[200], ClientState::Completed, &[200]),
            (&[100, 404, 404, 200], ClientState::Completed, &[100, 404]),
        ];
        for (codes, state, expected) in table {
            let (mut tx, _) = start(ClientKind::NonInvite, false);
            let mut got = Vec::new();
            for &code in codes.iter() {
                got.extend(delivered(&tx.on_response_code(code, Millis(1200))));
            }
            assert_eq!(tx.state(), *state, "{codes:?}");
            assert_eq!(&got, expected, "{codes:?}");
        }
    }

    #[test]
    fn provisional_stops_timer_a_and_b() {
        let (mut tx, _) = start(ClientKind::Invite, false);
        tx.on_response_code(180, Millis(1200));
        assert!(tx.on_timer(Timer::TimerA, Millis(1500)).is_empty());
        assert!(tx.on_timer(Timer::TimerB, Millis(33_000)).is_empty());
        assert_eq!(tx.state(), ClientState::Proceeding);
    }

    #[test]
    fn timer_b_and_f_time_out() {
        let (mut tx, _) = start(ClientKind::Invite, false);
        assert_eq!(
            tx.on_timer(Timer::TimerB, Millis(33_000)),
            vec![ClientAction::TimedOut, ClientAction::Terminated]
        );
        let (mut tx, _) = start(ClientKind::NonInvite, false);
        tx.on_response_code(100, Millis(1100));
        assert_eq!(
            tx.on_timer(Timer::TimerF, Millis(33_000)),
            vec![ClientAction::TimedOut, ClientAction::Terminated]
        );
        assert!(tx.is_terminated());
    }

    #[test]
    fn non_2xx_final_acks_and_waits_timer_d() {
        let (mut tx, _) = start(ClientKind::Invite, false);
        let busy = Message::parse(BUSY).unwrap();
        let actions = tx.on_response(&busy, Millis(2000));
        let ack = match actions.first() {
            Some(ClientAction::Send(ack)) => ack.clone(),
            other => panic!("expected the ACK first, got {other:?}"),
        };
        assert!(ack.starts_with(b"ACK sip:bob@biloxi.example.com SIP/2.0\r\n"));
        assert_eq!(
            actions[1..],
            [
                ClientAction::Deliver { code: 486 },
                ClientAction::Schedule {
                    timer: Timer::TimerD,
                    at: Millis(34_000)
                },
            ]
        );
        // A retransmitted 486 is acknowledged again, not delivered.
        assert_eq!(
            tx.on_response(&busy, Millis(2500)),
            vec![ClientAction::Send(ack)]
        );
        // Stale timers of earlier states do nothing.
        assert!(tx.on_timer(Timer::TimerA, Millis(2500)).is_empty());
        assert!(tx.on_timer(Timer::TimerB, Millis(33_000)).is_empty());
        assert!(tx.on_timer(Timer::TimerD, Millis(33_999)).is_empty());
        assert_eq!(
            tx.on_timer(Timer::TimerD, Millis(34_000)),
            vec![ClientAction::Terminated]
        );
    }

    #[test]
    fn bare_code_asks_the_caller_for_the_ack() {
        let (mut tx, _) = start(ClientKind::Invite, false);
        let actions = tx.on_response_code(503, Millis(2000));
        assert_eq!(actions.first(), Some(&ClientAction::SendAck { code: 503 }));
    }

    #[test]
    fn unparsable_request_falls_back_to_send_ack() {
        let (mut tx, _) = ClientTransaction::new(
            ClientKind::Invite,
            b"not sip".to_vec(),
            false,
            &Timers::default(),
            Millis(0),
        );
        let busy = Message::parse(BUSY).unwrap();
        let actions = tx.on_response(&busy, Millis(100));
        assert_eq!(actions.first(), Some(&ClientAction::SendAck { code: 486 }));
        assert_eq!(tx.state(), ClientState::Completed);
    }

    #[test]
    fn non_invite_final_sends_no_ack() {
        let (mut tx, _) = start(ClientKind::NonInvite, false);
        let busy = Message::parse(BUSY).unwrap();
        let actions = tx.on_response(&busy, Millis(2000));
        assert_eq!(sends(&actions), 0);
        assert_eq!(delivered(&actions), [486]);
    }

    #[test]
    fn reliable_completed_terminates_at_once() {
        let (mut tx, _) = start(ClientKind::Invite, true);
        let actions = tx.on_response_code(404, Millis(2000));
        assert_eq!(actions.last(), Some(&ClientAction::Terminated));
        let (mut tx, _) = start(ClientKind::NonInvite, true);
        let actions = tx.on_response_code(200, Millis(2000));
        assert_eq!(
            actions,
            vec![
                ClientAction::Deliver { code: 200 },
                ClientAction::Terminated
            ]
        );
    }

    #[test]
    fn accepted_waits_timer_m_and_ignores_transport_errors() {
        let (mut tx, _) = start(ClientKind::Invite, false);
        let actions = tx.on_response_code(200, Millis(2000));
        assert_eq!(
            actions,
            vec![
                ClientAction::Deliver { code: 200 },
                ClientAction::Schedule {
                    timer: Timer::TimerM,
                    at: Millis(34_000)
                },
            ]
        );
        assert!(tx.on_transport_error(Millis(2100)).is_empty());
        assert_eq!(
            tx.on_timer(Timer::TimerM, Millis(34_000)),
            vec![ClientAction::Terminated]
        );
    }

    #[test]
    fn non_invite_completed_waits_timer_k() {
        let (mut tx, _) = start(ClientKind::NonInvite, false);
        let actions = tx.on_response_code(200, Millis(2000));
        assert_eq!(
            actions.last(),
            Some(&ClientAction::Schedule {
                timer: Timer::TimerK,
                at: Millis(7000)
            })
        );
        assert!(tx.on_timer(Timer::TimerE, Millis(2500)).is_empty());
        assert!(tx.on_timer(Timer::TimerF, Millis(33_000)).is_empty());
        assert_eq!(
            tx.on_timer(Timer::TimerK, Millis(7000)),
            vec![ClientAction::Terminated]
        );
    }

    #[test]
    fn transport_error_terminates_pending_transactions() {
        for kind in [ClientKind::Invite, ClientKind::NonInvite] {
            let (mut tx, _) = start(kind, false);
            assert_eq!(
                tx.on_transport_error(Millis(1100)),
                vec![ClientAction::TransportError, ClientAction::Terminated]
            );
            assert!(tx.on_transport_error(Millis(1200)).is_empty());
            assert!(tx.on_response_code(200, Millis(1300)).is_empty());
        }
    }

    #[test]
    fn ack_for_non_2xx_follows_17_1_1_3() {
        let request = Message::parse(INVITE).unwrap();
        let response = Message::parse(BUSY).unwrap();
        let ack = build_ack(&request, &response).unwrap();
        let expected = "ACK sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds8\r\n\
Route: <sip:p1.example.com;lr>\r\n\
Route: <sip:p2.example.com;lr>\r\n\
Route: <sip:p3.example.com;lr>\r\n\
Max-Forwards: 70\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 314159 ACK\r\n\
Content-Length: 0\r\n\r\n";
        assert_eq!(String::from_utf8_lossy(&ack), expected);
        let parsed = Message::parse(&ack).unwrap();
        assert_eq!(parsed.method(), Some(sable_sip::Method::Ack));
        assert_eq!(
            crate::TransactionKey::of_request(&parsed).unwrap(),
            crate::TransactionKey::of_request(&request).unwrap()
        );
    }

    #[test]
    fn build_ack_rejects_swapped_arguments() {
        let request = Message::parse(INVITE).unwrap();
        let response = Message::parse(BUSY).unwrap();
        assert_eq!(
            build_ack(&response, &request),
            Err(TransactionError::NotARequest)
        );
        assert_eq!(
            build_ack(&request, &request),
            Err(TransactionError::NotAResponse)
        );
    }
}
