//! One binding, packed: every field of a [`Contact`] in one exactly-sized heap block.
//!
//! Why: a registrar keeps one binding per registered device for as long as it stays
//! registered (100,000 of them is an ordinary table), while each binding holds a dozen
//! short strings and as many small numbers. As separate `String`s each string costs 24
//! bytes of handle plus an allocation with its allocator header; here the whole binding is
//! one allocation, 16 bytes of handle, and the numbers take the octets their values need.
//!
//! Layout of the block (all numbers LEB128 varints):
//!
//! ```text
//! aor · mask · last_modified · expires · cseq · ruid · uri · call_id
//!     · [user_agent] · [socket] · [received] · [path] · [instance]
//!     · [flags] · [cflags] · [methods] · [reg_id] · [q] · [tcpconn_id]
//! ```
//!
//! A text is its length then its octets. `mask` says which of the bracketed fields are
//! there; an absent one has its default (empty User-Agent, no socket/received/path/
//! instance, flags 0, methods all, reg-id 0, q unspecified, no connection). `None` and
//! `Some("")` stay apart: `Some("")` is present with length 0.
//! `expires` is stored as the distance from `last_modified` (a few octets instead of five)
//! unless it is earlier (a permanent contact's 0); the ruid's time likewise.
//! The AOR comes first, so that the table's key comparison reads one length.
//!
//! The ruid of a binding made here is Kamailio's text `uloc-<hex time>-<hex pid>-<hex
//! counter>`: it is kept as the three numbers ([`Ruid::Uloc`]) and written on demand; a
//! ruid of another form (a row written by something else) is kept as its text. Text in
//! that canonical form is parsed into numbers, so writing it again gives the same text.
//!
//! Socket and User-Agent strings take few distinct values (the listening sockets; a few
//! phone models): they are interned in a process-wide table ([`intern`]) and a binding
//! keeps their index. The table is bounded; once full, or for a long value, the text is
//! stored in the binding itself, so a peer sending many distinct User-Agents cannot grow
//! it without limit.

use std::fmt;

/// q of a contact that gave none (Kamailio's `Q_UNSPECIFIED`, shown as -1).
pub const UNSPECIFIED_Q: i32 = -1;

/// The unique id of a binding (usrloc's `ruid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ruid<'a> {
    /// `uloc-<time>-<pid>-<counter>`, each in lowercase hex without leading zeros.
    Uloc { time: u64, pid: u32, counter: u64 },
    /// Any other text.
    Text(&'a str),
}

impl<'a> Ruid<'a> {
    /// The ruid written as `text`: numbers when it is in the canonical `uloc-` form (so that
    /// [`fmt::Display`] gives `text` back), else the text itself.
    pub fn parse(text: &'a str) -> Ruid<'a> {
        fn hex<T: TryFrom<u64>>(s: &str) -> Option<T> {
            let canonical = !s.is_empty()
                && s.len() <= 16
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                && (s == "0" || !s.starts_with('0'));
            if !canonical {
                return None;
            }
            u64::from_str_radix(s, 16)
                .ok()
                .and_then(|v| T::try_from(v).ok())
        }
        let parsed = text.strip_prefix("uloc-").and_then(|rest| {
            let mut parts = rest.split('-');
            let time = hex::<u64>(parts.next()?)?;
            let pid = hex::<u32>(parts.next()?)?;
            let counter = hex::<u64>(parts.next()?)?;
            parts
                .next()
                .is_none()
                .then_some(Ruid::Uloc { time, pid, counter })
        });
        parsed.unwrap_or(Ruid::Text(text))
    }

    /// Equal to the ruid written as `text`.
    pub fn is(&self, text: &str) -> bool {
        match self {
            Ruid::Text(t) => *t == text,
            numbers => *numbers == Ruid::parse(text),
        }
    }
}

impl fmt::Display for Ruid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ruid::Uloc { time, pid, counter } => write!(f, "uloc-{time:x}-{pid:x}-{counter:x}"),
            Ruid::Text(t) => f.write_str(t),
        }
    }
}

/// The fields of a binding as plain data: what builds a [`Contact`] ([`Contact::new`]) and
/// what one reads back ([`Contact::data`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContactData<'a> {
    /// The AOR it is registered for (the table's key).
    pub aor: &'a str,
    /// The Contact URI.
    pub uri: &'a str,
    /// When it expires (UNIX seconds); 0: never (a permanent contact, `ul.add` with 0).
    pub expires: u64,
    /// q in thousandths, [`UNSPECIFIED_Q`] when none was given.
    pub q: i32,
    pub call_id: &'a str,
    pub cseq: u32,
    /// usrloc flags, and branch flags (`cflags`) restored by lookup().
    pub flags: u32,
    pub cflags: u32,
    /// Empty when the REGISTER had none.
    pub user_agent: &'a str,
    /// Where the REGISTER really came from (`received`), when the registrar kept it.
    pub received: Option<&'a str>,
    /// The Path header values (RFC 3327), comma-separated, when kept.
    pub path: Option<&'a str>,
    /// The socket it registered through (`udp:1.2.3.4:5060`).
    pub socket: Option<&'a str>,
    /// Methods it accepts (bit set; all bits when unknown).
    pub methods: u32,
    /// Unique id of the binding.
    pub ruid: Ruid<'a>,
    /// `+sip.instance` (RFC 5626), without its quotes (`<urn:uuid:...>`).
    pub instance: Option<&'a str>,
    pub reg_id: u32,
    /// When it last changed (UNIX seconds).
    pub last_modified: u64,
    /// The TCP connection it came over, -1 for none.
    pub tcpconn_id: i64,
}

impl<'a> ContactData<'a> {
    /// A binding with every optional field at its default.
    pub fn new(aor: &'a str, uri: &'a str, ruid: Ruid<'a>) -> ContactData<'a> {
        ContactData {
            aor,
            uri,
            expires: 0,
            q: UNSPECIFIED_Q,
            call_id: "",
            cseq: 0,
            flags: 0,
            cflags: 0,
            user_agent: "",
            received: None,
            path: None,
            socket: None,
            methods: u32::MAX,
            ruid,
            instance: None,
            reg_id: 0,
            last_modified: 0,
            tcpconn_id: -1,
        }
    }
}

// Bits of the mask: which optional fields are in the block.
const UA_INTERNED: u32 = 1 << 0;
const UA_TEXT: u32 = 1 << 1;
const SOCKET_INTERNED: u32 = 1 << 2;
const SOCKET_TEXT: u32 = 1 << 3;
const RECEIVED: u32 = 1 << 4;
const PATH: u32 = 1 << 5;
const INSTANCE: u32 = 1 << 6;
const FLAGS: u32 = 1 << 7;
const CFLAGS: u32 = 1 << 8;
const METHODS: u32 = 1 << 9;
const REG_ID: u32 = 1 << 10;
const Q: u32 = 1 << 11;
const TCPCONN: u32 = 1 << 12;
/// The ruid is text, not numbers.
const RUID_TEXT: u32 = 1 << 13;
/// `expires` is stored as it is (it is before `last_modified`).
const EXPIRES_ABSOLUTE: u32 = 1 << 14;
/// The ruid's time is stored as it is (it is after `last_modified`).
const RUID_TIME_ABSOLUTE: u32 = 1 << 15;

/// One binding: a contact address registered for an AOR, with what usrloc keeps of it,
/// packed in one block (see the module page). Read it with the accessors or [`data`]
/// (every field at once); build or change it through [`ContactData`].
///
/// [`data`]: Contact::data
#[derive(Clone)]
pub struct Contact {
    packed: Box<[u8]>,
}

impl Contact {
    /// Packs a binding. A ruid given as text in the canonical `uloc-` form is kept as
    /// numbers (it reads back as [`Ruid::Uloc`], written the same).
    pub fn new(d: &ContactData<'_>) -> Contact {
        let ruid = match d.ruid {
            Ruid::Text(t) => Ruid::parse(t),
            numbers => numbers,
        };
        let d = &ContactData { ruid, ..*d };
        let mut w = Writer(smallvec::SmallVec::new());
        let mut mask = 0u32;
        let mut set = |bit: u32, on: bool| {
            if on {
                mask |= bit;
            }
        };
        let ua = match d.user_agent {
            "" => None,
            s => Some(intern::id(s).ok_or(s)),
        };
        set(UA_INTERNED, matches!(ua, Some(Ok(_))));
        set(UA_TEXT, matches!(ua, Some(Err(_))));
        let socket = d.socket.map(|s| intern::id(s).ok_or(s));
        set(SOCKET_INTERNED, matches!(socket, Some(Ok(_))));
        set(SOCKET_TEXT, matches!(socket, Some(Err(_))));
        set(RECEIVED, d.received.is_some());
        set(PATH, d.path.is_some());
        set(INSTANCE, d.instance.is_some());
        set(FLAGS, d.flags != 0);
        set(CFLAGS, d.cflags != 0);
        set(METHODS, d.methods != u32::MAX);
        set(REG_ID, d.reg_id != 0);
        set(Q, d.q != UNSPECIFIED_Q);
        set(TCPCONN, d.tcpconn_id != -1);
        set(RUID_TEXT, matches!(d.ruid, Ruid::Text(_)));
        set(EXPIRES_ABSOLUTE, d.expires < d.last_modified);
        set(
            RUID_TIME_ABSOLUTE,
            matches!(d.ruid, Ruid::Uloc { time, .. } if time > d.last_modified),
        );
        w.text(d.aor);
        w.varint(u64::from(mask));
        w.varint(d.last_modified);
        w.varint(if mask & EXPIRES_ABSOLUTE != 0 {
            d.expires
        } else {
            d.expires - d.last_modified
        });
        w.varint(u64::from(d.cseq));
        match d.ruid {
            Ruid::Text(t) => w.text(t),
            Ruid::Uloc { time, pid, counter } => {
                w.varint(if mask & RUID_TIME_ABSOLUTE != 0 {
                    time
                } else {
                    d.last_modified - time
                });
                w.varint(u64::from(pid));
                w.varint(counter);
            }
        }
        w.text(d.uri);
        w.text(d.call_id);
        for field in [ua, socket].into_iter().flatten() {
            match field {
                Ok(id) => w.varint(u64::from(id)),
                Err(text) => w.text(text),
            }
        }
        for text in [d.received, d.path, d.instance].into_iter().flatten() {
            w.text(text);
        }
        for (bit, v) in [
            (FLAGS, u64::from(d.flags)),
            (CFLAGS, u64::from(d.cflags)),
            (METHODS, u64::from(d.methods)),
            (REG_ID, u64::from(d.reg_id)),
            (Q, zigzag(i64::from(d.q))),
            (TCPCONN, zigzag(d.tcpconn_id)),
        ] {
            if mask & bit != 0 {
                w.varint(v);
            }
        }
        Contact {
            packed: Box::from(w.0.as_slice()),
        }
    }

    /// Every field.
    pub fn data(&self) -> ContactData<'_> {
        let (mut r, head) = self.head();
        let Head {
            aor,
            mask,
            last_modified,
            expires,
            cseq,
        } = head;
        let has = |bit: u32| mask & bit != 0;
        let ruid = r.ruid(&head);
        let uri = r.text();
        let call_id = r.text();
        let user_agent = if has(UA_INTERNED) {
            r.interned()
        } else if has(UA_TEXT) {
            r.text()
        } else {
            ""
        };
        let socket = if has(SOCKET_INTERNED) {
            Some(r.interned())
        } else if has(SOCKET_TEXT) {
            Some(r.text())
        } else {
            None
        };
        let mut opt_text = |bit: u32| has(bit).then(|| r.text());
        let received = opt_text(RECEIVED);
        let path = opt_text(PATH);
        let instance = opt_text(INSTANCE);
        let mut opt = |bit: u32, default: u64| if has(bit) { r.varint() } else { default };
        let flags = opt(FLAGS, 0);
        let cflags = opt(CFLAGS, 0);
        let methods = opt(METHODS, u64::from(u32::MAX));
        let reg_id = opt(REG_ID, 0);
        let q = opt(Q, zigzag(i64::from(UNSPECIFIED_Q)));
        let tcpconn = opt(TCPCONN, zigzag(-1));
        ContactData {
            aor,
            uri,
            expires,
            q: i32::try_from(unzigzag(q)).unwrap_or(UNSPECIFIED_Q),
            call_id,
            cseq,
            flags: u32::try_from(flags).unwrap_or(0),
            cflags: u32::try_from(cflags).unwrap_or(0),
            user_agent,
            received,
            path,
            socket,
            methods: u32::try_from(methods).unwrap_or(u32::MAX),
            ruid,
            instance,
            reg_id: u32::try_from(reg_id).unwrap_or(0),
            last_modified,
            tcpconn_id: unzigzag(tcpconn),
        }
    }

    /// The first fields, and where the rest starts.
    fn head(&self) -> (Reader<'_>, Head<'_>) {
        let mut r = Reader {
            buf: &self.packed,
            at: 0,
        };
        let aor = r.text();
        let mask = u32::try_from(r.varint()).unwrap_or(0);
        let last_modified = r.varint();
        let expires = if mask & EXPIRES_ABSOLUTE != 0 {
            r.varint()
        } else {
            last_modified.wrapping_add(r.varint())
        };
        let cseq = r.u32();
        let head = Head {
            aor,
            mask,
            last_modified,
            expires,
            cseq,
        };
        (r, head)
    }

    /// The AOR (first in the block: read without decoding the rest).
    pub fn aor(&self) -> &str {
        Reader {
            buf: &self.packed,
            at: 0,
        }
        .text()
    }

    pub fn uri(&self) -> &str {
        self.data().uri
    }

    pub fn expires(&self) -> u64 {
        self.head().1.expires
    }

    pub fn q(&self) -> i32 {
        self.data().q
    }

    pub fn call_id(&self) -> &str {
        self.data().call_id
    }

    pub fn cseq(&self) -> u32 {
        self.head().1.cseq
    }

    pub fn flags(&self) -> u32 {
        self.data().flags
    }

    pub fn cflags(&self) -> u32 {
        self.data().cflags
    }

    pub fn user_agent(&self) -> &str {
        self.data().user_agent
    }

    pub fn received(&self) -> Option<&str> {
        self.data().received
    }

    pub fn path(&self) -> Option<&str> {
        self.data().path
    }

    pub fn socket(&self) -> Option<&str> {
        self.data().socket
    }

    pub fn methods(&self) -> u32 {
        self.data().methods
    }

    pub fn ruid(&self) -> Ruid<'_> {
        let (mut r, head) = self.head();
        r.ruid(&head)
    }

    pub fn instance(&self) -> Option<&str> {
        self.data().instance
    }

    pub fn reg_id(&self) -> u32 {
        self.data().reg_id
    }

    pub fn last_modified(&self) -> u64 {
        self.head().1.last_modified
    }

    pub fn tcpconn_id(&self) -> i64 {
        self.data().tcpconn_id
    }

    /// Valid at `now`: not expired, or permanent (Kamailio's `VALID_CONTACT`). An expired
    /// contact not yet purged is invisible to lookups, replies and counts.
    pub fn is_valid(&self, now: u64) -> bool {
        let expires = self.expires();
        expires == 0 || expires > now
    }

    /// Seconds left at `now` (0 when expired or permanent).
    pub fn remaining(&self, now: u64) -> u64 {
        self.expires().saturating_sub(now)
    }

    /// The Contact value of a 200 to a REGISTER (see [`ContactData::reply_value`]).
    pub fn reply_value(&self, now: u64) -> String {
        self.data().reply_value(now)
    }

    /// The octets of the block (what the binding costs on the heap, without the
    /// allocator's header and rounding).
    pub fn heap_bytes(&self) -> usize {
        self.packed.len()
    }
}

impl ContactData<'_> {
    /// Valid at `now`: not expired, or permanent.
    pub fn is_valid(&self, now: u64) -> bool {
        self.expires == 0 || self.expires > now
    }

    /// The Contact value of a 200 to a REGISTER: `<uri>;expires=N[;q=..][;received=".."]
    /// [;+sip.instance=..][;reg-id=N]`.
    pub fn reply_value(&self, now: u64) -> String {
        let mut v = format!(
            "<{}>;expires={}",
            self.uri,
            self.expires.saturating_sub(now)
        );
        if self.q != UNSPECIFIED_Q {
            v.push_str(";q=");
            v.push_str(&crate::q_text(self.q));
        }
        if let Some(r) = self.received {
            v.push_str(&format!(";received=\"{r}\""));
        }
        if let Some(i) = self.instance {
            v.push_str(&format!(";+sip.instance=\"{i}\""));
            if self.reg_id > 0 {
                v.push_str(&format!(";reg-id={}", self.reg_id));
            }
        }
        v
    }
}

impl PartialEq for Contact {
    /// Equal fields (the same value may be interned in one and kept as text in the other).
    fn eq(&self, other: &Contact) -> bool {
        self.packed == other.packed || self.data() == other.data()
    }
}

impl Eq for Contact {}

impl fmt::Debug for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.data().fmt(f)
    }
}

impl From<&ContactData<'_>> for Contact {
    fn from(d: &ContactData<'_>) -> Contact {
        Contact::new(d)
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// The fields at the start of a block (those read most).
struct Head<'a> {
    aor: &'a str,
    mask: u32,
    last_modified: u64,
    expires: u64,
    cseq: u32,
}

/// Builds a block on the stack (one allocation of the exact size at the end).
struct Writer(smallvec::SmallVec<[u8; 256]>);

impl Writer {
    fn varint(&mut self, mut v: u64) {
        loop {
            let low = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(low);
                return;
            }
            self.0.push(low | 0x80);
        }
    }

    fn text(&mut self, s: &str) {
        self.varint(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }
}

/// Reads a block. A block is only ever made by [`Contact::new`]; should one be cut short
/// anyway, what is missing reads as 0 or empty (never a panic).
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> u64 {
        let mut v = 0u64;
        let mut shift = 0u32;
        while let Some(&b) = self.buf.get(self.at) {
            self.at += 1;
            if shift < 64 {
                v |= u64::from(b & 0x7f) << shift;
            }
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        v
    }

    fn u32(&mut self) -> u32 {
        u32::try_from(self.varint()).unwrap_or(u32::MAX)
    }

    fn text(&mut self) -> &'a str {
        let len = usize::try_from(self.varint()).unwrap_or(usize::MAX);
        let end = self.at.saturating_add(len).min(self.buf.len());
        let bytes = self.buf.get(self.at..end).unwrap_or_default();
        self.at = end;
        // Made from a `&str`: valid UTF-8, cut at the boundaries it was written with.
        std::str::from_utf8(bytes).unwrap_or_default()
    }

    /// The ruid, after the head.
    fn ruid(&mut self, head: &Head<'_>) -> Ruid<'a> {
        if head.mask & RUID_TEXT != 0 {
            return Ruid::Text(self.text());
        }
        let t = self.varint();
        let time = if head.mask & RUID_TIME_ABSOLUTE != 0 {
            t
        } else {
            head.last_modified.wrapping_sub(t)
        };
        let pid = self.u32();
        let counter = self.varint();
        Ruid::Uloc { time, pid, counter }
    }

    fn interned(&mut self) -> &'static str {
        u16::try_from(self.varint())
            .ok()
            .and_then(intern::get)
            .unwrap_or_default()
    }
}

/// The process-wide table of interned socket and User-Agent strings.
///
/// Append-only and bounded ([`CAPACITY`] values of at most [`MAX_LEN`] octets): reading a
/// value by index takes no lock; adding one takes a write lock once per distinct value.
pub mod intern {
    use std::collections::HashMap;
    use std::sync::{LazyLock, OnceLock, RwLock};

    /// How many distinct values the table keeps.
    pub const CAPACITY: usize = 1024;
    /// Longer values are not interned.
    pub const MAX_LEN: usize = 255;

    static VALUES: [OnceLock<Box<str>>; CAPACITY] = [const { OnceLock::new() }; CAPACITY];
    static INDEX: LazyLock<RwLock<HashMap<&'static str, u16>>> =
        LazyLock::new(|| RwLock::new(HashMap::new()));

    /// The index of `value`, added if new; `None` when it is too long or the table is full.
    pub fn id(value: &str) -> Option<u16> {
        if value.len() > MAX_LEN {
            return None;
        }
        if let Some(&id) = INDEX.read().ok()?.get(value) {
            return Some(id);
        }
        let mut index = INDEX.write().ok()?;
        if let Some(&id) = index.get(value) {
            return Some(id);
        }
        let n = index.len();
        let slot = VALUES.get(n)?;
        let id = u16::try_from(n).ok()?;
        if slot.set(Box::from(value)).is_err() {
            return None;
        }
        let stored: &'static str = slot.get()?;
        index.insert(stored, id);
        Some(id)
    }

    /// The value of an index.
    pub fn get(id: u16) -> Option<&'static str> {
        VALUES.get(usize::from(id))?.get().map(|s| &**s)
    }

    /// (values, octets of their text) in the table.
    pub fn usage() -> (usize, usize) {
        let index = INDEX.read().map(|i| i.len()).unwrap_or(0);
        let bytes = VALUES
            .iter()
            .take(index)
            .filter_map(OnceLock::get)
            .map(|s| s.len())
            .sum();
        (index, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full<'a>() -> ContactData<'a> {
        ContactData {
            aor: "alice@example.com",
            uri: "sip:alice@192.0.2.10:5062;transport=tcp",
            expires: 1_800_003_600,
            q: 500,
            call_id: "a84b4c76e66710@pc33.example.com",
            cseq: 314_159,
            flags: 3,
            cflags: 0x40,
            user_agent: "Yealink SIP-T46S 66.86.0.15",
            received: Some("sip:198.51.100.7:41000"),
            path: Some("<sip:edge1.example.com;lr>,<sip:edge2.example.com;lr>"),
            socket: Some("tcp:192.0.2.1:5060"),
            methods: 0x1f,
            ruid: Ruid::Uloc {
                time: 1_800_000_000,
                pid: 4242,
                counter: 77,
            },
            instance: Some("<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"),
            reg_id: 2,
            last_modified: 1_800_000_000,
            tcpconn_id: 12,
        }
    }

    #[test]
    fn every_field_comes_back() {
        let d = full();
        let c = Contact::new(&d);
        assert_eq!(c.data(), d);
        assert_eq!(c.aor(), d.aor);
        assert_eq!(c.uri(), d.uri);
        assert_eq!(c.socket(), d.socket);
        assert_eq!(c.user_agent(), d.user_agent);
        assert_eq!(c.ruid().to_string(), "uloc-6b49d200-1092-4d");
    }

    #[test]
    fn defaults_take_no_room_and_come_back() {
        let d = ContactData::new("bob", "sip:bob@x", Ruid::Text("r1"));
        let c = Contact::new(&d);
        assert_eq!(c.data(), d);
        assert_eq!(c.data().methods, u32::MAX);
        assert_eq!(c.data().q, UNSPECIFIED_Q);
        assert_eq!(c.data().tcpconn_id, -1);
        // aor, mask (the text ruid's bit takes two octets), last_modified, expires, cseq,
        // ruid, uri, call_id.
        assert_eq!(c.heap_bytes(), 4 + 2 + 1 + 1 + 1 + 3 + 10 + 1);
    }

    #[test]
    fn none_and_empty_stay_apart() {
        let mut d = ContactData::new("bob", "sip:bob@x", Ruid::Text("r1"));
        d.received = Some("");
        d.path = None;
        d.instance = Some("");
        d.socket = Some("");
        let back = Contact::new(&d);
        assert_eq!(back.received(), Some(""));
        assert_eq!(back.path(), None);
        assert_eq!(back.instance(), Some(""));
        assert_eq!(back.socket(), Some(""));
        assert_eq!(back.data(), d);
    }

    #[test]
    fn long_values_and_extremes_come_back() {
        let long = "x".repeat(70_000);
        let ua = "u".repeat(intern::MAX_LEN + 1);
        let mut d = full();
        d.uri = &long;
        d.path = Some(&long);
        d.user_agent = &ua;
        d.socket = Some(&ua);
        d.expires = 0;
        d.last_modified = u64::MAX;
        d.cseq = u32::MAX;
        d.flags = u32::MAX;
        d.q = i32::MIN;
        d.tcpconn_id = i64::MIN;
        d.ruid = Ruid::Uloc {
            time: u64::MAX,
            pid: u32::MAX,
            counter: u64::MAX,
        };
        let c = Contact::new(&d);
        assert_eq!(c.data(), d);
        d.last_modified = 0;
        d.expires = u64::MAX;
        d.tcpconn_id = i64::MAX;
        d.ruid = Ruid::Uloc {
            time: 0,
            pid: 0,
            counter: 0,
        };
        assert_eq!(Contact::new(&d).data(), d);
    }

    #[test]
    fn ruids_keep_their_text_exactly() {
        for text in [
            "uloc-5f3a1b2c-1a2b-1",
            "uloc-0-0-0",
            "uloc-ffffffffffffffff-ffffffff-ffffffffffffffff",
        ] {
            let r = Ruid::parse(text);
            assert!(matches!(r, Ruid::Uloc { .. }), "{text}");
            assert_eq!(r.to_string(), text);
            assert!(r.is(text));
        }
        for text in [
            "uloc-05f3a1b2c-1a2b-1",
            "uloc-5F3A-1-1",
            "uloc-1-1",
            "uloc-1-1-1-1",
            "uloc-1-100000000-1",
            "uloc--1-1",
            "ruid-1",
            "",
        ] {
            let r = Ruid::parse(text);
            assert_eq!(r, Ruid::Text(text));
            assert_eq!(r.to_string(), text);
            let mut d = ContactData::new("a", "sip:a@x", r);
            d.last_modified = 5;
            assert_eq!(Contact::new(&d).ruid().to_string(), text);
        }
        assert!(!Ruid::parse("uloc-1-1-1").is("uloc-1-1-2"));
        // Canonical text given as text is kept as numbers, and still reads the same.
        let d = ContactData::new("a", "sip:a@x", Ruid::Text("uloc-a-b-c"));
        let c = Contact::new(&d);
        assert!(matches!(c.ruid(), Ruid::Uloc { .. }));
        assert!(c.ruid().is("uloc-a-b-c"));
        assert!(Ruid::Text("uloc-a-b-c").is("uloc-a-b-c"));
    }

    #[test]
    fn interned_values_are_shared_and_equal_to_text() {
        let a = intern::id("udp:203.0.113.5:5060");
        assert!(a.is_some());
        assert_eq!(a, intern::id("udp:203.0.113.5:5060"));
        assert_eq!(a.and_then(intern::get), Some("udp:203.0.113.5:5060"));
        assert_eq!(intern::id(&"s".repeat(intern::MAX_LEN + 1)), None);
        let mut d = full();
        let interned = Contact::new(&d);
        let long_socket = "t".repeat(intern::MAX_LEN + 1);
        d.socket = Some(&long_socket);
        let text = Contact::new(&d);
        assert!(text.heap_bytes() > interned.heap_bytes() + intern::MAX_LEN);
        assert_ne!(interned, text);
    }

    #[test]
    fn the_bench_binding_fits_in_one_small_block() {
        let mut d = ContactData::new(
            "user12345",
            "sip:user12345@127.0.0.1:9080",
            Ruid::Uloc {
                time: 1_800_000_000,
                pid: 123_456,
                counter: 12_345,
            },
        );
        d.call_id = "12345-123456@127.0.0.1";
        d.cseq = 1;
        d.last_modified = 1_800_000_000;
        d.expires = 1_800_003_600;
        d.socket = Some("udp:127.0.0.1:9060");
        let c = Contact::new(&d);
        assert_eq!(c.data(), d);
        assert!(c.heap_bytes() <= 80, "{}", c.heap_bytes());
    }

    proptest::proptest! {
        #[test]
        fn any_binding_round_trips(
            aor in ".{0,40}", uri in ".{0,80}", call_id in ".{0,40}", ua in ".{0,40}",
            received in proptest::option::of(".{0,30}"), path in proptest::option::of(".{0,60}"),
            socket in proptest::option::of(".{0,30}"), instance in proptest::option::of(".{0,50}"),
            ruid in ".{0,30}", nums in proptest::array::uniform4(proptest::num::u64::ANY),
            small in proptest::array::uniform6(proptest::num::u32::ANY),
            q in proptest::num::i32::ANY, conn in proptest::num::i64::ANY,
        ) {
            let d = ContactData {
                aor: &aor, uri: &uri, expires: nums[0], q, call_id: &call_id, cseq: small[0],
                flags: small[1], cflags: small[2], user_agent: &ua,
                received: received.as_deref(), path: path.as_deref(), socket: socket.as_deref(),
                methods: small[3], ruid: Ruid::parse(&ruid), instance: instance.as_deref(),
                reg_id: small[4], last_modified: nums[1], tcpconn_id: conn,
            };
            let c = Contact::new(&d);
            proptest::prop_assert_eq!(c.data(), d);
            proptest::prop_assert_eq!(c.ruid().to_string(), ruid.clone());
            let numeric = ContactData { ruid: Ruid::Uloc { time: nums[2], pid: small[5], counter: nums[3] }, ..d };
            let packed = Contact::new(&numeric);
            proptest::prop_assert_eq!(packed.data(), numeric);
        }
    }
}
