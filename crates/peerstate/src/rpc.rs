//! The results of the `peerstate.*` RPC commands (the seed's field names; faults as
//! Kamailio's: 400 for a missing or unknown parameter, 404 for an unknown peer).

use crate::{normalize_key, Cache, PeerState};
use serde_json::{json, Value as Json};

/// An RPC fault: code and text.
pub type Fault = (i32, &'static str);

/// `peerstate.get_peer PEER`.
pub fn get_peer(cache: &Cache, peer: Option<&str>) -> Result<Json, Fault> {
    let peer = peer
        .map(normalize_key)
        .filter(|p| !p.is_empty())
        .ok_or((400, "Peer parameter required"))?;
    let e = cache.get(&peer).ok_or((404, "Peer not found"))?;
    Ok(json!({
        "peer": peer,
        "state": e.state.name(),
        "call_count": e.call_count,
        "registered": if e.registered { "yes" } else { "no" },
    }))
}

/// `peerstate.stats`.
pub fn stats(cache: &Cache) -> Json {
    let s = cache.stats();
    json!({
        "total_peers": s.total_peers,
        "incall_peers": s.incall_peers,
        "registered_peers": s.registered_peers,
    })
}

/// `peerstate.list STATE`: the peers in one state (the state as a name or an unambiguous
/// beginning of one, any case; shown by its full name).
pub fn list(cache: &Cache, state: Option<&str>) -> Result<Json, Fault> {
    let text = state
        .filter(|s| !s.trim().is_empty())
        .ok_or((400, "State parameter required"))?;
    let wanted = PeerState::parse_filter(text).ok_or((400, "Invalid state"))?;
    let peers: Vec<Json> = sorted(cache)
        .into_iter()
        .filter(|(_, e)| e.state == wanted)
        .map(|(p, e)| Cache::peer_json(&p, &e))
        .collect();
    Ok(json!({
        "count": peers.len(),
        "state": wanted.name(),
        "Peer": peers,
    }))
}

/// `peerstate.dump`: every peer.
pub fn dump(cache: &Cache) -> Json {
    let peers: Vec<Json> = sorted(cache)
        .into_iter()
        .map(|(p, e)| Cache::peer_json(&p, &e))
        .collect();
    json!({
        "count": peers.len(),
        "Peer": peers,
    })
}

/// The peers by name (a stable order for operators and tests; Kamailio's is bucket order).
fn sorted(cache: &Cache) -> Vec<(String, crate::Entry)> {
    let mut v = cache.peers();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}
