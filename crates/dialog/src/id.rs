//! Who a dialog is and how an in-dialog request finds it: [`DialogId`] (RFC 3261 §12: Call-ID,
//! local and remote tags), Kamailio's table coordinates [`HashId`] (`h_entry`, `h_id`) and their
//! Record-Route form (`;did=...`), [`h_entry`] (Kamailio's `core_hash` of the Call-ID), the
//! matching modes of `dlg_match_mode` ([`MatchMode`], [`match_request`]) and spiral detection
//! ([`is_spiral`]).

use std::fmt;

use sable_sip::Message;

use crate::dialog::Dialog;
use crate::error::DialogError;
use crate::state::DialogState;

/// Kamailio's name for the Record-Route parameter that carries the dialog's [`HashId`]
/// (module parameter `rr_param`, default `did`).
pub const DEFAULT_RR_PARAM: &str = "did";

/// One leg of the dialog, as Kamailio names them (`DLG_CALLER_LEG`, `DLG_CALLEE_LEG`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    /// The side that sent the initial INVITE (From tag = the caller's tag).
    Caller,
    /// The side that answered it (its To tag came in the 2xx).
    Callee,
}

impl Side {
    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::Caller => Side::Callee,
            Side::Callee => Side::Caller,
        }
    }

    /// `caller` / `callee`, as `dlg_bye()` and `dlg.list` spell them.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Caller => "caller",
            Side::Callee => "callee",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which way an in-dialog request travels (`$dlg_ctx(dir)`: `downstream` / `upstream`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the caller towards the callee: the From tag is the caller's tag.
    Downstream,
    /// From the callee towards the caller: the From tag is the callee's tag.
    Upstream,
}

impl Direction {
    /// The side that sent a request travelling this way.
    pub fn sender(self) -> Side {
        match self {
            Direction::Downstream => Side::Caller,
            Direction::Upstream => Side::Callee,
        }
    }

    /// `downstream` / `upstream`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Downstream => "downstream",
            Direction::Upstream => "upstream",
        }
    }
}

/// A dialog's identity (RFC 3261 §12): the Call-ID and both tags, seen from the proxy: the
/// caller's tag (the From tag of the INVITE) and the callee's tag (the To tag of the 2xx;
/// `None` until the dialog is confirmed).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    /// The Call-ID.
    pub call_id: String,
    /// The caller's tag.
    pub from_tag: String,
    /// The callee's tag, once a 2xx brought it.
    pub to_tag: Option<String>,
}

impl DialogId {
    /// Whether a request with these Call-ID, From tag and To tag belongs to the dialog, and
    /// which way it travels (Kamailio's `match_dialog`: octet-exact comparisons).
    ///
    /// Downstream: From tag = caller's tag, To tag = callee's tag. Upstream: the reverse.
    /// While the callee's tag is unknown (states 1 and 2), a downstream request matches on
    /// Call-ID and From tag alone (a PRACK or UPDATE inside the early dialog); nothing can
    /// be upstream yet.
    pub fn matches(&self, call_id: &[u8], from_tag: &[u8], to_tag: &[u8]) -> Option<Direction> {
        match_tags(
            &self.call_id,
            &self.from_tag,
            self.to_tag.as_deref(),
            call_id,
            from_tag,
            to_tag,
        )
    }
}

/// [`DialogId::matches`] on borrowed parts (what [`Dialog::matches`] uses).
pub(crate) fn match_tags(
    own_call_id: &str,
    caller_tag: &str,
    callee_tag: Option<&str>,
    call_id: &[u8],
    from_tag: &[u8],
    to_tag: &[u8],
) -> Option<Direction> {
    if own_call_id.as_bytes() != call_id {
        return None;
    }
    match callee_tag {
        Some(callee) => {
            if caller_tag.as_bytes() == from_tag && callee.as_bytes() == to_tag {
                Some(Direction::Downstream)
            } else if callee.as_bytes() == from_tag && caller_tag.as_bytes() == to_tag {
                Some(Direction::Upstream)
            } else {
                None
            }
        }
        None => (caller_tag.as_bytes() == from_tag).then_some(Direction::Downstream),
    }
}

/// Kamailio's coordinates of a dialog in its hash table: the bucket (`h_entry`, a hash of the
/// Call-ID) and the id within it (`h_id`, a per-bucket counter). `dlg.list` prints them,
/// `dlg.end_dlg` and `dlg_set_timeout` take them, and the Record-Route carries them as the
/// `did` parameter ([`HashId::did`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct HashId(pub u32, pub u32);

impl HashId {
    /// The bucket.
    pub fn h_entry(self) -> u32 {
        self.0
    }

    /// The id inside the bucket.
    pub fn h_id(self) -> u32 {
        self.1
    }

    /// The value of the Record-Route parameter: `h_entry` and `h_id` in *reversed*
    /// lowercase hexadecimal (least significant digit first, Kamailio's `int2reverse_hex`),
    /// separated by `.`. Entry 0x1a2 and id 0x30 give `2a1.03`; zero is `0`.
    pub fn did(self) -> String {
        let mut s = String::with_capacity(17);
        push_reverse_hex(&mut s, self.0);
        s.push('.');
        push_reverse_hex(&mut s, self.1);
        s
    }

    /// The parameter as `record_route()` appends it: `;did=<entry>.<id>` (`rr_param` names
    /// the parameter).
    pub fn rr_param(self, rr_param: &str) -> String {
        format!(";{rr_param}={}", self.did())
    }

    /// Parses a `did` value (Kamailio's `parse_dlg_rr_param` + `reverse_hex2int`): two runs
    /// of hex digits (either case, least significant first) around the first `.`. An
    /// empty run is 0, as in Kamailio; a run of more than 8 digits overflows there and is
    /// refused here.
    pub fn parse_did(value: &[u8]) -> Result<HashId, DialogError> {
        let bad = || DialogError::BadDid {
            value: String::from_utf8_lossy(value).into_owned(),
        };
        let dot = value.iter().position(|&b| b == b'.').ok_or_else(bad)?;
        let (entry, rest) = value.split_at(dot);
        let id = rest.get(1..).unwrap_or_default();
        let h_entry = reverse_hex(entry).ok_or_else(bad)?;
        let h_id = reverse_hex(id).ok_or_else(bad)?;
        Ok(HashId(h_entry, h_id))
    }
}

impl fmt::Display for HashId {
    /// `h_entry:h_id`, as Kamailio logs it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0, self.1)
    }
}

fn push_reverse_hex(s: &mut String, mut n: u32) {
    if n == 0 {
        s.push('0');
        return;
    }
    while n != 0 {
        let digit = n & 0xf;
        s.push(char::from_digit(digit, 16).unwrap_or('0'));
        n >>= 4;
    }
}

fn reverse_hex(digits: &[u8]) -> Option<u32> {
    if digits.len() > 8 {
        return None;
    }
    let mut n: u32 = 0;
    for &b in digits.iter().rev() {
        let d = char::from(b).to_digit(16)?;
        n = (n << 4) | d;
    }
    Some(n)
}

/// The bucket of a Call-ID in a table of `hash_size` buckets (a power of two, module parameter
/// `hash_size`, default 4096): Kamailio's `core_hash(callid, 0, size)`, so the `h_entry`
/// values Sable prints are the ones Kamailio would print for the same Call-ID.
///
/// The octets are taken as C `char`, which is signed on the platforms Kamailio is built for:
/// an octet above 0x7F counts as negative, as there.
pub fn h_entry(call_id: &[u8], hash_size: u32) -> u32 {
    let h = core_hash_raw(call_id);
    if hash_size == 0 {
        h
    } else {
        h & hash_size.wrapping_sub(1)
    }
}

fn core_hash_raw(s: &[u8]) -> u32 {
    let c = |b: u8| -> u32 { i32::from(b as i8) as u32 };
    let mut h: u32 = 0;
    let mut chunks = s.chunks_exact(4);
    for w in &mut chunks {
        if let [a, b, cc, d] = *w {
            let v = (c(a) << 24)
                .wrapping_add(c(b) << 16)
                .wrapping_add(c(cc) << 8)
                .wrapping_add(c(d));
            h = h.wrapping_add(v ^ (v >> 3));
        }
    }
    let v = match *chunks.remainder() {
        [a, b, cc] => (c(a) << 16).wrapping_add(c(b) << 8).wrapping_add(c(cc)),
        [a, b] => (c(a) << 8).wrapping_add(c(b)),
        [a] => c(a),
        _ => 0,
    };
    h = h.wrapping_add(v ^ (v >> 3));
    h.wrapping_add(h >> 11)
        .wrapping_add((h >> 13).wrapping_add(h >> 23))
}

/// How in-dialog requests are matched to dialogs (module parameter `dlg_match_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MatchMode {
    /// 0 (default): by the `did` Record-Route parameter only; the dialog found must also
    /// match Call-ID and tags ("tight matching"), else there is no match.
    #[default]
    DidOnly,
    /// 1: by the `did` first; without one, or when it finds nothing or the tags disagree,
    /// by Call-ID and tags.
    DidThenTags,
    /// 2: by Call-ID and tags only (no `did` is needed in the Record-Route).
    TagsOnly,
}

impl MatchMode {
    /// The mode for a `dlg_match_mode` value (0, 1, 2); other values are `None`.
    pub fn from_param(v: i64) -> Option<MatchMode> {
        match v {
            0 => Some(MatchMode::DidOnly),
            1 => Some(MatchMode::DidThenTags),
            2 => Some(MatchMode::TagsOnly),
            _ => None,
        }
    }
}

/// What an in-dialog request offers for matching: its Call-ID, tags, and the `did` found in
/// the Route header that `loose_route()` consumed (the module gets it from rr; `None` when
/// there was none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKeys<'a> {
    /// The Call-ID.
    pub call_id: &'a [u8],
    /// The From tag (empty if none).
    pub from_tag: &'a [u8],
    /// The To tag (empty if none).
    pub to_tag: &'a [u8],
    /// The raw `did` parameter value, if the Route header had one.
    pub did: Option<&'a [u8]>,
}

impl<'a> RequestKeys<'a> {
    /// Reads Call-ID and tags from a request; the caller adds the `did` it got from rr.
    pub fn of_request(msg: &Message<'a>, did: Option<&'a [u8]>) -> Result<Self, DialogError> {
        if !msg.is_request() {
            return Err(DialogError::NotARequest);
        }
        let call_id = msg.call_id().map_err(DialogError::bad("Call-ID"))?;
        let from_tag = msg
            .from()
            .map_err(DialogError::bad("From"))?
            .tag()
            .unwrap_or_default();
        let to_tag = msg
            .to()
            .map_err(DialogError::bad("To"))?
            .tag()
            .unwrap_or_default();
        Ok(RequestKeys {
            call_id,
            from_tag,
            to_tag,
            did,
        })
    }
}

/// A successful match: which dialog, and which way the request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    /// The dialog's table coordinates.
    pub hash: HashId,
    /// Which way the request goes.
    pub direction: Direction,
}

/// Finds the dialog of an in-dialog request the way Kamailio's `dlg_onroute` does.
///
/// `by_hash` looks a dialog up by its [`HashId`] (any state: a BYE retransmission must still
/// find a deleted dialog); `by_call_id` yields the dialogs of the Call-ID's bucket, of which
/// those in state 5 are skipped (Kamailio: "a previous unsuccessful attempt with the same
/// Call-ID and From tag", e.g. a call that was challenged). The module calls this with the
/// bucket locked; the closures only read.
///
/// - [`MatchMode::DidOnly`]: no `did`, a malformed one, an unknown one, or one whose dialog
///   does not match the tags → no match.
/// - [`MatchMode::DidThenTags`]: a malformed `did` → no match (as Kamailio); otherwise any
///   miss falls back to the tags.
/// - [`MatchMode::TagsOnly`]: the tags.
pub fn match_request<'t, I>(
    mode: MatchMode,
    keys: &RequestKeys<'_>,
    by_hash: impl FnOnce(HashId) -> Option<&'t Dialog>,
    by_call_id: impl FnOnce(&[u8]) -> I,
) -> Option<Match>
where
    I: IntoIterator<Item = &'t Dialog>,
{
    if mode != MatchMode::TagsOnly {
        match keys.did {
            None => {
                if mode == MatchMode::DidOnly {
                    return None;
                }
            }
            Some(raw) => {
                let hash = HashId::parse_did(raw).ok()?;
                if let Some(dialog) = by_hash(hash) {
                    if let Some(direction) =
                        dialog.matches(keys.call_id, keys.from_tag, keys.to_tag)
                    {
                        return Some(Match {
                            hash: dialog.hash(),
                            direction,
                        });
                    }
                }
                if mode == MatchMode::DidOnly {
                    return None;
                }
            }
        }
    }
    by_call_id(keys.call_id).into_iter().find_map(|dialog| {
        if dialog.state() == DialogState::Deleted {
            return None;
        }
        dialog
            .matches(keys.call_id, keys.from_tag, keys.to_tag)
            .map(|direction| Match {
                hash: dialog.hash(),
                direction,
            })
    })
}

/// Spiral detection (`detect_spirals=1`, the default): an initial INVITE (no To tag) that
/// reaches `dlg_manage()` while a dialog with the same Call-ID and From tag exists, not yet
/// answered (no callee tag) and not deleted, is the same call coming back through the proxy
/// (a spiral: the proxy routed the INVITE to itself, e.g. through another domain it serves).
/// Kamailio then creates no second dialog: it runs the `spiraled` callbacks on the existing
/// one and makes it the current dialog (`$dlg(...)` reads it).
///
/// The same test is true for a retransmission of the INVITE: the script must let tm absorb
/// retransmissions (`t_check_trans()`) before `dlg_manage()`, as Kamailio's default config
/// does.
pub fn is_spiral(existing: &Dialog, call_id: &[u8], from_tag: &[u8], to_tag: &[u8]) -> bool {
    existing.state() != DialogState::Deleted
        && to_tag.is_empty()
        && existing.to_tag().is_none()
        && existing.call_id().as_bytes() == call_id
        && existing.from_tag().as_bytes() == from_tag
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_is_reversed_lowercase_hex() {
        assert_eq!(HashId(0x1a2, 0x30).did(), "2a1.03");
        assert_eq!(HashId(0, 0).did(), "0.0");
        assert_eq!(HashId(1484, 4813).did(), "cc5.dc21");
        assert_eq!(HashId(u32::MAX, 16).did(), "ffffffff.01");
        assert_eq!(HashId(5, 7).rr_param("did"), ";did=5.7");
    }

    #[test]
    fn did_round_trips_and_accepts_upper_case() {
        for id in [
            HashId(0, 0),
            HashId(1, 2),
            HashId(4095, 123_456),
            HashId(u32::MAX, u32::MAX),
        ] {
            assert_eq!(HashId::parse_did(id.did().as_bytes()), Ok(id));
        }
        assert_eq!(HashId::parse_did(b"2A1.03"), Ok(HashId(0x1a2, 0x30)));
        // Empty runs are 0, as reverse_hex2int leaves them.
        assert_eq!(HashId::parse_did(b".5"), Ok(HashId(0, 5)));
    }

    #[test]
    fn malformed_did_is_refused() {
        for bad in [&b"12"[..], b"1g.2", b"1.2.3", b"123456789.1", b""] {
            assert!(
                matches!(HashId::parse_did(bad), Err(DialogError::BadDid { .. })),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn h_entry_is_core_hash_masked() {
        // Values worked out by hand from the core_hash definition.
        // "a": v = 97, h = 97 ^ 12 = 109; finish: 109 + 0 + 0 + 0 = 109.
        assert_eq!(h_entry(b"a", 0), 109);
        assert_eq!(h_entry(b"a", 4096), 109);
        assert_eq!(h_entry(b"", 4096), 0);
        // Stable and within the table.
        let e = h_entry(b"3848276298220188511@192.0.2.10", 4096);
        assert!(e < 4096);
        assert_eq!(e, h_entry(b"3848276298220188511@192.0.2.10", 4096));
        assert_eq!(h_entry(b"abcd", 0), {
            let v: u32 = (97 << 24) + (98 << 16) + (99 << 8) + 100;
            let h = v ^ (v >> 3);
            h.wrapping_add(h >> 11)
                .wrapping_add((h >> 13).wrapping_add(h >> 23))
        });
    }

    #[test]
    fn id_matches_both_directions_octet_exact() {
        let id = DialogId {
            call_id: "c1".into(),
            from_tag: "ft".into(),
            to_tag: Some("tt".into()),
        };
        assert_eq!(id.matches(b"c1", b"ft", b"tt"), Some(Direction::Downstream));
        assert_eq!(id.matches(b"c1", b"tt", b"ft"), Some(Direction::Upstream));
        assert_eq!(id.matches(b"c1", b"FT", b"tt"), None);
        assert_eq!(id.matches(b"C1", b"ft", b"tt"), None);
        assert_eq!(id.matches(b"c1", b"ft", b""), None);
        let early = DialogId { to_tag: None, ..id };
        assert_eq!(
            early.matches(b"c1", b"ft", b"early-tag"),
            Some(Direction::Downstream)
        );
        assert_eq!(early.matches(b"c1", b"tt", b"ft"), None);
    }

    #[test]
    fn match_mode_params() {
        assert_eq!(MatchMode::from_param(0), Some(MatchMode::DidOnly));
        assert_eq!(MatchMode::from_param(1), Some(MatchMode::DidThenTags));
        assert_eq!(MatchMode::from_param(2), Some(MatchMode::TagsOnly));
        assert_eq!(MatchMode::from_param(3), None);
        assert_eq!(MatchMode::default(), MatchMode::DidOnly);
    }
}
