//! A deterministic network on a virtual clock: a client transaction and a server transaction
//! talk through a channel that loses, duplicates and reorders datagrams, driven by a seeded
//! xorshift generator. Every run with the same seed is the same run.

use std::collections::BTreeMap;

use proptest::prelude::*;
use sable_sip::{Message, Method};
use sable_transaction::{
    ClientAction, ClientKind, ClientTransaction, Millis, ServerAction, ServerKind,
    ServerTransaction, Timer, Timers, TransactionKey,
};

/// xorshift64* (Vigna): tiny, seeded, good enough to pick losses and delays.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // Zero is a fixed point of xorshift: mix the seed first.
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
}

#[derive(Debug, Clone, Copy)]
struct Channel {
    loss: f64,
    duplication: f64,
    /// Delays are drawn in this range, so datagrams overtake each other (reordering).
    min_delay: u64,
    max_delay: u64,
}

impl Channel {
    fn lossy(loss: f64) -> Channel {
        Channel {
            loss,
            duplication: 0.1,
            min_delay: 5,
            max_delay: 400,
        }
    }
}

#[derive(Debug)]
enum Event {
    ToServer(Vec<u8>),
    ToClient(Vec<u8>),
    ClientTimer(Timer),
    ServerTimer(Timer),
    /// The UAS TU answers with this code.
    UasAnswer(u16),
    /// The UAS core retransmits its 2xx (RFC 3261 §13.3.1.4), with the next interval.
    UasRetransmit2xx(u64),
}

struct Outcome {
    /// Every response code the client delivered to its TU, in order.
    delivered: Vec<u16>,
    timed_out_at: Option<Millis>,
    client_terminated: bool,
    server_terminated: bool,
    /// Requests (first sends and retransmissions) the client put on the wire.
    requests_sent: usize,
    acks_to_server_transaction: usize,
}

impl Outcome {
    fn finals(&self) -> Vec<u16> {
        self.delivered
            .iter()
            .copied()
            .filter(|&c| c >= 200)
            .collect()
    }
}

struct Sim {
    now: Millis,
    seq: u64,
    queue: BTreeMap<(u64, u64), Event>,
    rng: Rng,
    channel: Channel,
    timers: Timers,
    method: &'static str,
    provisional: Option<u16>,
    final_code: u16,
    client: ClientTransaction,
    client_key: TransactionKey,
    server: Option<ServerTransaction>,
    server_key: Option<TransactionKey>,
    outcome: Outcome,
}

fn request_bytes(method: &str) -> Vec<u8> {
    format!(
        "{method} sip:bob@192.0.2.20 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKsim{method}\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@192.0.2.10>;tag=alice1\r\n\
To: <sip:bob@192.0.2.20>\r\n\
Call-ID: sim-call-1@192.0.2.10\r\n\
CSeq: 1 {method}\r\n\
Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn response_bytes(method: &str, code: u16) -> Vec<u8> {
    let tag = if code > 100 { ";tag=bob1" } else { "" };
    format!(
        "SIP/2.0 {code} Sim\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKsim{method};received=192.0.2.10\r\n\
From: <sip:alice@192.0.2.10>;tag=alice1\r\n\
To: <sip:bob@192.0.2.20>{tag}\r\n\
Call-ID: sim-call-1@192.0.2.10\r\n\
CSeq: 1 {method}\r\n\
Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

impl Sim {
    fn new(
        seed: u64,
        channel: Channel,
        method: &'static str,
        provisional: Option<u16>,
        final_code: u16,
    ) -> Sim {
        let timers = Timers::default();
        let kind = if method == "INVITE" {
            ClientKind::Invite
        } else {
            ClientKind::NonInvite
        };
        let request = request_bytes(method);
        let client_key =
            TransactionKey::of_sent_request(&Message::parse(&request).unwrap()).unwrap();
        let (client, actions) = ClientTransaction::new(kind, request, false, &timers, Millis::ZERO);
        let mut sim = Sim {
            now: Millis::ZERO,
            seq: 0,
            queue: BTreeMap::new(),
            rng: Rng::new(seed),
            channel,
            timers,
            method,
            provisional,
            final_code,
            client,
            client_key,
            server: None,
            server_key: None,
            outcome: Outcome {
                delivered: Vec::new(),
                timed_out_at: None,
                client_terminated: false,
                server_terminated: false,
                requests_sent: 0,
                acks_to_server_transaction: 0,
            },
        };
        sim.client_actions(actions);
        sim
    }

    fn at(&mut self, when: Millis, event: Event) {
        self.seq += 1;
        self.queue.insert((when.0, self.seq), event);
    }

    /// Puts a datagram on the lossy channel.
    fn transmit(&mut self, event: fn(Vec<u8>) -> Event, bytes: Vec<u8>) {
        if self.rng.chance(self.channel.loss) {
            return;
        }
        let copies = if self.rng.chance(self.channel.duplication) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = self
                .rng
                .between(self.channel.min_delay, self.channel.max_delay);
            self.at(self.now + Millis(delay), event(bytes.clone()));
        }
    }

    fn client_actions(&mut self, actions: Vec<ClientAction>) {
        for action in actions {
            match action {
                ClientAction::Send(bytes) => {
                    if bytes.starts_with(self.method.as_bytes()) {
                        self.outcome.requests_sent += 1;
                    }
                    self.transmit(Event::ToServer, bytes.to_vec());
                }
                ClientAction::Schedule { timer, at } => self.at(at, Event::ClientTimer(timer)),
                ClientAction::Deliver { code } => self.outcome.delivered.push(code),
                ClientAction::TimedOut => self.outcome.timed_out_at = Some(self.now),
                ClientAction::Terminated => self.outcome.client_terminated = true,
                ClientAction::SendAck { code } => {
                    panic!("the client could not build the ACK for {code}")
                }
                ClientAction::TransportError => panic!("no transport errors in this network"),
            }
        }
    }

    fn server_actions(&mut self, actions: Vec<ServerAction>) {
        for action in actions {
            match action {
                ServerAction::Send(bytes) => self.transmit(Event::ToClient, bytes.to_vec()),
                ServerAction::Schedule { timer, at } => self.at(at, Event::ServerTimer(timer)),
                ServerAction::Terminated => self.outcome.server_terminated = true,
                ServerAction::TimedOut | ServerAction::TransportError => {}
            }
        }
    }

    fn on_request(&mut self, bytes: Vec<u8>) {
        let msg = Message::parse(&bytes).unwrap();
        let key = TransactionKey::of_request(&msg).unwrap();
        let now = self.now;
        if let (Some(server), Some(server_key)) = (self.server.as_mut(), self.server_key.as_ref()) {
            if *server_key != key {
                return; // a stray: belongs to no transaction here
            }
            let actions = if msg.method() == Some(Method::Ack) {
                self.outcome.acks_to_server_transaction += 1;
                server.on_ack(now)
            } else {
                server.on_request_retransmission(now)
            };
            self.server_actions(actions);
        } else if msg.method() != Some(Method::Ack) {
            let kind = if msg.method() == Some(Method::Invite) {
                ServerKind::Invite
            } else {
                ServerKind::NonInvite
            };
            self.server = Some(ServerTransaction::new(kind, false, &self.timers, now));
            self.server_key = Some(key);
            if let Some(code) = self.provisional {
                self.at(now + Millis(20), Event::UasAnswer(code));
            }
            self.at(now + Millis(150), Event::UasAnswer(self.final_code));
        }
    }

    fn run(mut self) -> Outcome {
        while let Some(((when, _), event)) = self.queue.pop_first() {
            assert!(when >= self.now.0, "the virtual clock never goes back");
            self.now = Millis(when);
            let now = self.now;
            match event {
                Event::ToServer(bytes) => self.on_request(bytes),
                Event::ToClient(bytes) => {
                    let msg = Message::parse(&bytes).unwrap();
                    assert_eq!(TransactionKey::of_response(&msg).unwrap(), self.client_key);
                    let actions = self.client.on_response(&msg, now);
                    self.client_actions(actions);
                }
                Event::ClientTimer(timer) => {
                    let actions = self.client.on_timer(timer, now);
                    self.client_actions(actions);
                }
                Event::ServerTimer(timer) => {
                    if let Some(server) = self.server.as_mut() {
                        let actions = server.on_timer(timer, now);
                        self.server_actions(actions);
                    }
                }
                Event::UasAnswer(code) => {
                    if let Some(server) = self.server.as_mut() {
                        let actions =
                            server.on_tu_response(code, response_bytes(self.method, code), now);
                        self.server_actions(actions);
                        if self.method == "INVITE" && (200..300).contains(&code) {
                            let t1 = self.timers.t1.0;
                            self.at(now + Millis(t1), Event::UasRetransmit2xx(t1));
                        }
                    }
                }
                Event::UasRetransmit2xx(interval) => {
                    // The UAS core retransmits its 2xx until 64*T1 (no ACK in this network).
                    if now.0 < self.timers.timer_h().0 {
                        if let Some(server) = self.server.as_mut() {
                            let actions = server.on_tu_response(
                                self.final_code,
                                response_bytes(self.method, self.final_code),
                                now,
                            );
                            self.server_actions(actions);
                        }
                        let next = (interval * 2).min(self.timers.t2.0);
                        self.at(now + Millis(interval), Event::UasRetransmit2xx(next));
                    }
                }
            }
        }
        self.outcome
    }
}

/// What must hold in every run, whatever the losses.
fn check_safety(o: &Outcome, final_code: u16, invite_2xx: bool) {
    assert!(o.client_terminated, "the client transaction always ends");
    let finals = o.finals();
    if invite_2xx {
        // RFC 6026: retransmitted 2xx go up; nothing else does.
        assert!(finals.iter().all(|&c| c == final_code), "{finals:?}");
    } else {
        assert!(finals.len() <= 1, "a final delivered twice: {finals:?}");
        assert!(finals.iter().all(|&c| c == final_code), "{finals:?}");
    }
    if o.timed_out_at.is_some() {
        assert!(finals.is_empty(), "timed out after a final: {finals:?}");
    }
    // Provisionals never follow a final.
    if let Some(first_final) = o.delivered.iter().position(|&c| c >= 200) {
        assert!(o.delivered[first_final..].iter().all(|&c| c >= 200));
    }
}

/// The scenarios: (method, provisional, final).
const SCENARIOS: &[(&str, Option<u16>, u16)] = &[
    ("INVITE", Some(180), 486),
    ("INVITE", None, 404),
    ("INVITE", Some(183), 200),
    ("OPTIONS", None, 200),
    ("REGISTER", Some(100), 401),
];

fn run(seed: u64, loss: f64, scenario: (&'static str, Option<u16>, u16)) -> Outcome {
    let (method, provisional, final_code) = scenario;
    Sim::new(seed, Channel::lossy(loss), method, provisional, final_code).run()
}

#[test]
fn perfect_network_completes_every_scenario_once() {
    for &scenario in SCENARIOS {
        let channel = Channel {
            loss: 0.0,
            duplication: 0.0,
            min_delay: 10,
            max_delay: 10,
        };
        let (method, provisional, final_code) = scenario;
        let o = Sim::new(1, channel, method, provisional, final_code).run();
        check_safety(&o, final_code, method == "INVITE" && final_code < 300);
        assert_eq!(o.finals().first(), Some(&final_code), "{scenario:?}");
        assert_eq!(o.timed_out_at, None);
        assert!(o.server_terminated);
        if method == "INVITE" && final_code >= 300 {
            assert_eq!(o.acks_to_server_transaction, 1, "{scenario:?}");
        }
    }
}

#[test]
fn everything_lost_times_out_at_64_t1() {
    for &(method, provisional, final_code) in SCENARIOS {
        let o = Sim::new(7, Channel::lossy(1.0), method, provisional, final_code).run();
        assert_eq!(o.timed_out_at, Some(Millis(32_000)), "{method}");
        assert!(o.delivered.is_empty());
        assert!(o.client_terminated);
        let expected_sends = if method == "INVITE" {
            // 0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s: Timer A doubles without cap.
            7
        } else {
            // 0, 0.5, 1.5, 3.5, 7.5, 11.5 ... 31.5 s: Timer E capped at T2.
            11
        };
        assert_eq!(o.requests_sent, expected_sends, "{method}");
    }
}

#[test]
fn heavy_loss_sweep_completes_almost_always_and_never_delivers_twice() {
    // Deterministic: the seeds are fixed, so this is the same run every time.
    for &scenario in SCENARIOS {
        let mut completed = 0;
        let runs = 300;
        for seed in 0..runs {
            let o = run(seed, 0.45, scenario);
            check_safety(&o, scenario.2, scenario.0 == "INVITE" && scenario.2 < 300);
            if o.finals().first() == Some(&scenario.2) {
                completed += 1;
            }
        }
        assert!(
            completed * 100 >= runs * 95,
            "{scenario:?}: {completed}/{runs}"
        );
    }
}

#[test]
fn retransmitted_non_2xx_is_acknowledged_not_redelivered() {
    // Heavy duplication and no loss: the 486 arrives many times (Timer G and duplicates).
    let channel = Channel {
        loss: 0.0,
        duplication: 0.9,
        min_delay: 1,
        max_delay: 900,
    };
    for seed in 0..50 {
        let o = Sim::new(seed, channel, "INVITE", Some(180), 486).run();
        assert_eq!(o.finals(), vec![486], "seed {seed}");
        assert!(o.acks_to_server_transaction >= 1);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5AB1E),
        ..ProptestConfig::default()
    })]

    #[test]
    fn lossy_network_never_breaks_the_transaction_rules(
        seed in any::<u64>(),
        loss in 0.0f64..0.5,
        which in 0usize..SCENARIOS.len(),
    ) {
        let scenario = SCENARIOS[which];
        let o = run(seed, loss, scenario);
        check_safety(&o, scenario.2, scenario.0 == "INVITE" && scenario.2 < 300);
    }

    #[test]
    fn moderate_loss_delivers_the_final_response(
        seed in any::<u64>(),
        loss in 0.0f64..0.2,
        which in 0usize..SCENARIOS.len(),
    ) {
        let scenario = SCENARIOS[which];
        let o = run(seed, loss, scenario);
        check_safety(&o, scenario.2, scenario.0 == "INVITE" && scenario.2 < 300);
        prop_assert_eq!(o.finals().first().copied(), Some(scenario.2));
        prop_assert_eq!(o.timed_out_at, None);
    }
}
