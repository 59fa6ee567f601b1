use super::*;

fn call(cache: &Cache, caller: &str, callee: &str) -> DialogPeers {
    let _ = cache;
    DialogPeers::new(vec![caller.into()], vec![callee.into()])
}

fn state(cache: &Cache, peer: &str) -> (PeerState, u32, bool) {
    let e = cache.get(peer).expect("peer present");
    (e.state, e.call_count, e.registered)
}

fn changes(v: &[(Side, Change)]) -> Vec<(Side, PeerState, PeerState)> {
    v.iter()
        .filter(|(_, c)| c.is_change())
        .map(|(s, c)| (*s, c.previous, c.current))
        .collect()
}

#[test]
fn names_and_filters() {
    assert_eq!(PeerState::NotInUse.name(), "NOT_INUSE");
    assert_eq!(PeerState::Na.name(), "N/A");
    assert_eq!(PeerState::Ringing.code(), 2);
    assert_eq!(PeerState::parse_filter("inuse"), Some(PeerState::InUse));
    assert_eq!(PeerState::parse_filter("INUSE"), Some(PeerState::InUse));
    assert_eq!(PeerState::parse_filter("not"), Some(PeerState::NotInUse));
    assert_eq!(PeerState::parse_filter("ring"), Some(PeerState::Ringing));
    assert_eq!(PeerState::parse_filter("u"), Some(PeerState::Unavailable));
    assert_eq!(
        PeerState::parse_filter("N/A"),
        None,
        "never stored, not listable"
    );
    assert_eq!(PeerState::parse_filter("busy"), None);
    assert_eq!(PeerState::parse_filter(""), None);
}

#[test]
fn keys() {
    assert_eq!(
        key_of_uri("sip:Alice@Example.COM:5070;transport=tcp").as_deref(),
        Some("alice@example.com")
    );
    assert_eq!(
        key_of_uri("sips:1000@[2001:db8::1]").as_deref(),
        Some("1000@[2001:db8::1]")
    );
    assert_eq!(key_of_uri("sip:192.0.2.5"), None, "no user part, no key");
    assert_eq!(key_of_uri("not a uri"), None);
    assert_eq!(join_key("Bob", "Example.com"), "bob@example.com");
    assert_eq!(join_key("bob", ""), "bob");
    assert_eq!(normalize_key(" SIP:Bob@Example.com "), "bob@example.com");
    assert_eq!(check_hash_size(4096), Ok(4096));
    assert!(check_hash_size(1000).unwrap_err().contains("power of two"));
    assert!(check_hash_size(0).is_err());
    assert!(check_hash_size(-8).is_err());
}

/// Scenario 1: 180, 200, ACK, BYE with both registered.
#[test]
fn answered_call() {
    let c = Cache::new(16);
    c.registration("a@x", true, 1);
    c.registration("b@x", true, 1);
    let mut d = call(&c, "a@x", "b@x");
    let r = c.dialog_event(&mut d, Candidate::Ringing, 2);
    assert_eq!(
        changes(&r),
        vec![
            (Side::Caller, PeerState::NotInUse, PeerState::Ringing),
            (Side::Callee, PeerState::NotInUse, PeerState::Ringing)
        ]
    );
    assert_eq!(state(&c, "b@x"), (PeerState::Ringing, 1, true));
    let r = c.dialog_event(&mut d, Candidate::InUse, 3);
    assert_eq!(changes(&r).len(), 2);
    assert_eq!(state(&c, "b@x"), (PeerState::InUse, 1, true));
    let r = c.dialog_event(&mut d, Candidate::Ended, 4);
    assert_eq!(
        changes(&r),
        vec![
            (Side::Caller, PeerState::InUse, PeerState::NotInUse),
            (Side::Callee, PeerState::InUse, PeerState::NotInUse)
        ]
    );
    assert_eq!(state(&c, "b@x"), (PeerState::NotInUse, 0, true));
    assert!(c.dialog_event(&mut d, Candidate::Ended, 5).is_empty());
}

/// Scenario 2 (and "TERMINATED without EARLY"): answered without a provisional reply.
#[test]
fn answered_without_ringing() {
    let c = Cache::new(16);
    c.registration("b@x", true, 1);
    let mut d = DialogPeers::new(vec![], vec!["b@x".into()]);
    c.dialog_event(&mut d, Candidate::InUse, 2);
    assert_eq!(state(&c, "b@x"), (PeerState::InUse, 1, true));
    c.dialog_event(&mut d, Candidate::Ended, 3);
    assert_eq!(state(&c, "b@x"), (PeerState::NotInUse, 0, true));
}

/// Scenario 3 and 4 (Kamailio's defect D1): several provisional replies (180 then 183, or
/// two forked branches ringing) count the dialog once.
#[test]
fn several_provisionals_count_once() {
    let c = Cache::new(16);
    c.registration("b@x", true, 1);
    let mut d = DialogPeers::new(vec![], vec!["b@x".into()]);
    c.dialog_event(&mut d, Candidate::Ringing, 2);
    let r = c.dialog_event(&mut d, Candidate::Ringing, 2);
    assert!(changes(&r).is_empty(), "a second 1xx is no change");
    assert_eq!(state(&c, "b@x"), (PeerState::Ringing, 1, true));
    c.dialog_event(&mut d, Candidate::InUse, 3);
    c.dialog_event(&mut d, Candidate::Ended, 4);
    assert_eq!(state(&c, "b@x"), (PeerState::NotInUse, 0, true));
}

/// Scenario 5: rejected without a provisional reply while idle; registered or not.
#[test]
fn rejected_without_ringing() {
    let c = Cache::new(16);
    c.registration("b@x", true, 1);
    let mut d = DialogPeers::new(vec![], vec!["b@x".into()]);
    let r = c.dialog_event(&mut d, Candidate::Ended, 2);
    assert!(changes(&r).is_empty());
    assert_eq!(state(&c, "b@x"), (PeerState::NotInUse, 0, true));
    // Never registered, first seen by this failed call: NOT_INUSE → UNAVAILABLE.
    let mut d = DialogPeers::new(vec![], vec!["pstn@x".into()]);
    let r = c.dialog_event(&mut d, Candidate::Ended, 2);
    assert_eq!(
        changes(&r),
        vec![(Side::Callee, PeerState::NotInUse, PeerState::Unavailable)]
    );
}

/// Scenario 6 (defect D2): a second call rejected without ringing does not end the first.
#[test]
fn failed_call_does_not_take_another_calls_count() {
    let c = Cache::new(16);
    c.registration("b@x", true, 1);
    let mut x = DialogPeers::new(vec![], vec!["b@x".into()]);
    c.dialog_event(&mut x, Candidate::InUse, 2);
    let mut y = DialogPeers::new(vec![], vec!["b@x".into()]);
    let r = c.dialog_event(&mut y, Candidate::Ended, 3);
    assert!(changes(&r).is_empty());
    assert_eq!(state(&c, "b@x"), (PeerState::InUse, 1, true));
    c.dialog_event(&mut x, Candidate::Ended, 4);
    assert_eq!(state(&c, "b@x"), (PeerState::NotInUse, 0, true));
}

/// Scenario 8: ringing then cancelled (487: FAILED).
#[test]
fn cancelled_call() {
    let c = Cache::new(16);
    c.registration("b@x", true, 1);
    let mut d = DialogPeers::new(vec![], vec!["b@x".into()]);
    c.dialog_event(&mut d, Candidate::Ringing, 2);
    let r = c.dialog_event(&mut d, Candidate::Ended, 3);
    assert_eq!(
        changes(&r),
        vec![(Side::Callee, PeerState::Ringing, PeerState::NotInUse)]
    );
}

/// Scenario 9: the peer unregisters during a call: stays INUSE, ends UNAVAILABLE.
#[test]
fn unregister_during_call() {
    let c = Cache::new(16);
    c.registration("b@x", true, 1);
    let mut d = DialogPeers::new(vec![], vec!["b@x".into()]);
    c.dialog_event(&mut d, Candidate::InUse, 2);
    let ch = c.registration("b@x", false, 3);
    assert!(!ch.is_change());
    assert_eq!(state(&c, "b@x"), (PeerState::InUse, 1, false));
    c.dialog_event(&mut d, Candidate::Ended, 4);
    assert_eq!(state(&c, "b@x"), (PeerState::Unavailable, 0, false));
    // Registers again: available.
    let ch = c.registration("b@x", true, 5);
    assert_eq!(
        (ch.previous, ch.current),
        (PeerState::Unavailable, PeerState::NotInUse)
    );
}

/// Scenario 11: a callee never registered (a PSTN number).
#[test]
fn unregistered_callee() {
    let c = Cache::new(16);
    let mut d = DialogPeers::new(vec![], vec!["pstn@x".into()]);
    let r = c.dialog_event(&mut d, Candidate::Ringing, 1);
    assert_eq!(
        changes(&r),
        vec![(Side::Callee, PeerState::NotInUse, PeerState::Ringing)]
    );
    c.dialog_event(&mut d, Candidate::InUse, 2);
    c.dialog_event(&mut d, Candidate::Ended, 3);
    assert_eq!(state(&c, "pstn@x"), (PeerState::Unavailable, 0, false));
}

/// Two overlapping calls: count 2, INUSE until both end; ringing on a second call keeps
/// INUSE.
#[test]
fn two_calls() {
    let c = Cache::new(16);
    c.registration("b@x", true, 1);
    let mut x = DialogPeers::new(vec![], vec!["b@x".into()]);
    let mut y = DialogPeers::new(vec![], vec!["b@x".into()]);
    c.dialog_event(&mut x, Candidate::Ringing, 2);
    c.dialog_event(&mut x, Candidate::InUse, 2);
    let r = c.dialog_event(&mut y, Candidate::Ringing, 3);
    assert!(
        changes(&r).is_empty(),
        "INUSE kept while a second call rings"
    );
    c.dialog_event(&mut y, Candidate::InUse, 3);
    assert_eq!(state(&c, "b@x"), (PeerState::InUse, 2, true));
    let r = c.dialog_event(&mut x, Candidate::Ended, 4);
    assert!(changes(&r).is_empty());
    assert_eq!(state(&c, "b@x"), (PeerState::InUse, 1, true));
    c.dialog_event(&mut y, Candidate::Ended, 5);
    assert_eq!(state(&c, "b@x"), (PeerState::NotInUse, 0, true));
}

/// A first registration of an unknown peer shows UNAVAILABLE → NOT_INUSE; the last
/// binding going shows the way back; an unregistration of an unknown peer changes nothing.
#[test]
fn registrations() {
    let c = Cache::new(16);
    let ch = c.registration("a@x", true, 1);
    assert_eq!(
        (ch.previous, ch.current, ch.registered),
        (PeerState::Unavailable, PeerState::NotInUse, true)
    );
    let ch = c.registration("a@x", true, 2);
    assert!(!ch.is_change());
    let ch = c.registration("a@x", false, 3);
    assert_eq!(
        (ch.previous, ch.current),
        (PeerState::NotInUse, PeerState::Unavailable)
    );
    let ch = c.registration("z@x", false, 3);
    assert!(!ch.is_change());
    assert_eq!(state(&c, "z@x"), (PeerState::Unavailable, 0, false));
    // Ringing while unregistered, then registering: state kept, flag set.
    let mut d = DialogPeers::new(vec!["r@x".into()], vec![]);
    c.dialog_event(&mut d, Candidate::Ringing, 4);
    let ch = c.registration("r@x", true, 5);
    assert!(!ch.is_change());
    assert_eq!(state(&c, "r@x"), (PeerState::Ringing, 1, true));
}

#[test]
fn statistics_follow_changes() {
    let c = Cache::new(4);
    c.registration("a@x", true, 1);
    c.registration("b@x", true, 1);
    let mut d = call(&c, "a@x", "c@x");
    c.dialog_event(&mut d, Candidate::Ringing, 2);
    assert_eq!(
        c.stats(),
        Stats {
            total_peers: 3,
            incall_peers: 2,
            registered_peers: 2
        }
    );
    assert_eq!(c.count_in(PeerState::NotInUse), 1);
    assert_eq!(c.count_in(PeerState::Ringing), 2);
    c.dialog_event(&mut d, Candidate::Ended, 3);
    assert_eq!(
        c.count_in(PeerState::Unavailable),
        1,
        "c was never registered"
    );
    assert_eq!(c.count_in(PeerState::NotInUse), 2);
    assert_eq!(c.stats().incall_peers, 0);
    assert_eq!(c.len(), 3);
}

/// Expiry on a virtual clock: only idle, unregistered entries older than the limit go.
#[test]
fn expiry_removes_idle_entries_only() {
    let c = Cache::new(8);
    c.registration("reg@x", true, 0);
    let mut busy = DialogPeers::new(vec!["busy@x".into()], vec![]);
    c.dialog_event(&mut busy, Candidate::InUse, 0);
    let mut gone = DialogPeers::new(vec!["idle@x".into()], vec![]);
    c.dialog_event(&mut gone, Candidate::Ended, 0);
    let mut fresh = DialogPeers::new(vec!["fresh@x".into()], vec![]);
    c.dialog_event(&mut fresh, Candidate::Ended, 3000);
    assert_eq!(c.len(), 4);
    assert_eq!(c.expire(3600, 3600), 0, "not older than the limit yet");
    assert_eq!(c.expire(3601, 3600), 1);
    assert!(c.get("idle@x").is_none());
    assert!(c.get("reg@x").is_some() && c.get("busy@x").is_some());
    assert!(c.get("fresh@x").is_some());
    assert_eq!(c.stats().total_peers, 3);
    assert_eq!(c.count_in(PeerState::Unavailable), 1);
    assert_eq!(c.expire(7000, 3600), 1);
    assert_eq!(c.stats().total_peers, 2);
}

#[test]
fn rpc_shapes() {
    let c = Cache::new(8);
    c.registration("1000@example.com", true, 1);
    c.registration("2000@example.com", true, 1);
    c.registration("2000@example.com", false, 2);
    let mut d = DialogPeers::new(vec![], vec!["1000@example.com".into()]);
    c.dialog_event(&mut d, Candidate::InUse, 3);
    assert_eq!(
        rpc::get_peer(&c, Some("1000@Example.com")).unwrap(),
        json!({"peer": "1000@example.com", "state": "INUSE", "call_count": 1,
               "registered": "yes"})
    );
    assert_eq!(
        rpc::get_peer(&c, Some("nobody@x")),
        Err((404, "Peer not found"))
    );
    assert_eq!(
        rpc::get_peer(&c, None),
        Err((400, "Peer parameter required"))
    );
    assert_eq!(
        rpc::stats(&c),
        json!({"total_peers": 2, "incall_peers": 1, "registered_peers": 1})
    );
    assert_eq!(
        rpc::list(&c, Some("inuse")).unwrap(),
        json!({"count": 1, "state": "INUSE", "Peer": [
            {"name": "1000@example.com", "state": "INUSE", "call_count": 1, "registered": "yes"}
        ]})
    );
    assert_eq!(
        rpc::list(&c, Some("RINGING")).unwrap(),
        json!({"count": 0, "state": "RINGING", "Peer": []})
    );
    assert_eq!(rpc::list(&c, Some("bogus")), Err((400, "Invalid state")));
    assert_eq!(rpc::list(&c, None), Err((400, "State parameter required")));
    assert_eq!(
        rpc::dump(&c),
        json!({"count": 2, "Peer": [
            {"name": "1000@example.com", "state": "INUSE", "call_count": 1, "registered": "yes"},
            {"name": "2000@example.com", "state": "UNAVAILABLE", "call_count": 0, "registered": "no"}
        ]})
    );
}

#[test]
fn memory_is_reported() {
    let c = Cache::new(4096);
    let empty = c.approx_bytes();
    for i in 0..1000 {
        c.registration(&format!("agent{i}@example.com"), true, 1);
    }
    let full = c.approx_bytes();
    assert!(full > empty);
    let per = (full - empty) / 1000;
    assert!(
        (40..400).contains(&per),
        "{per} bytes per peer is not plausible"
    );
}
