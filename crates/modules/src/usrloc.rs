//! `usrloc`: the user location tables. Each table (`location`...) is a hash of records (one
//! per AOR, the bindings of `sable_location`) split into `2^hash_size` buckets, each with its
//! own lock. A timer removes expired bindings every `timer_interval` seconds, telling the
//! callbacks and running `event_route[usrloc:contact-expired]`. Other modules (registrar,
//! later peerstate) reach the tables through [`Usrloc`], offered as a core service.

use parking_lot::{Mutex, RwLock};
use sable_engine::{int_param, str_param, Core, Counter, Gauge, Module, MsgCtx, ParamError, Sip};
use sable_location::{Contact, ContactData, Record, Ruid};
use sable_rpc::{MethodKind, Params, RpcError};
use sable_script::ast::Literal;
use sable_script::{Registry, RouteMask};
use serde_json::{json, Value as Json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

/// What happened to a binding (usrloc's callback types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UlEventKind {
    Insert,
    Update,
    /// Before removal (REGISTER with expires 0, `*`, unregister, RPC).
    Delete,
    /// Removed by the timer.
    Expire,
}

/// A binding change, as callbacks see it.
#[derive(Clone, Copy)]
pub struct UlEvent<'e, 'm> {
    pub kind: UlEventKind,
    /// The table (`location`...).
    pub domain: &'e str,
    pub aor: &'e str,
    pub contact: &'e Contact,
    /// The message that caused it (a REGISTER through `save()`); none for the timer and RPC.
    pub ctx: Option<&'e MsgCtx<'m>>,
}

impl std::fmt::Debug for UlEvent<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UlEvent")
            .field("kind", &self.kind)
            .field("domain", &self.domain)
            .field("aor", &self.aor)
            .field("ruid", &self.contact.ruid())
            .finish()
    }
}

/// A callback of another module on binding changes. It runs after the change, with no
/// table lock held (it may read the tables).
pub type UlCallback = Arc<dyn for<'e, 'm> Fn(&UlEvent<'e, 'm>) + Send + Sync>;

/// usrloc's parameters (Kamailio's names and defaults).
#[derive(Debug, Clone)]
pub struct UsrlocConfig {
    pub db_mode: i64,
    pub db_url: Option<String>,
    pub timer_interval: u64,
    pub use_domain: bool,
    pub matching_mode: i64,
    pub cseq_delay: u32,
    pub hash_size: u32,
    pub nat_bflag: i64,
    pub preload: Vec<String>,
}

impl Default for UsrlocConfig {
    fn default() -> Self {
        UsrlocConfig {
            db_mode: 0,
            db_url: None,
            timer_interval: 60,
            use_domain: false,
            matching_mode: 0,
            cseq_delay: 20,
            hash_size: 10,
            nat_bflag: -1,
            preload: Vec::new(),
        }
    }
}

/// FNV-1a: AOR keys are short and already spread over the slots; SipHash's protection
/// against chosen keys is not needed inside one slot of a few entries.
#[derive(Debug, Default, Clone, Copy)]
pub struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// The records of one slot, keyed by their AOR, which each binding carries: the key is not
/// a second copy of it (a `HashMap<String, Record>` would keep one more string per AOR).
type Slot = hashbrown::HashTable<Record>;

/// The hash of an AOR inside its slot (FNV-1a: not [`aor_hash`], whose low bits are the
/// same for every AOR of a slot).
fn key_hash(aor: &str) -> u64 {
    let mut h = Fnv::default();
    std::hash::Hasher::write(&mut h, aor.as_bytes());
    std::hash::Hasher::finish(&h)
}

fn record_hash(r: &Record) -> u64 {
    key_hash(r.aor().unwrap_or_default())
}

/// What a table holds, from its own accounting (`ul.memory`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    pub records: usize,
    pub contacts: usize,
    /// The bindings' packed blocks and the vectors of records with several bindings.
    pub contact_bytes: usize,
    /// The slots' hash tables (entries, control octets, empty places) and their locks.
    pub table_bytes: usize,
    /// The same allocations with glibc malloc's header and 16-octet rounding added.
    pub allocated_bytes: usize,
}

/// An allocation of `n` octets as glibc malloc gives it: 8 octets of header, rounded up
/// to 16, at least 32.
fn malloc_chunk(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        ((n + 8 + 15) & !15).max(32)
    }
}

/// One table of records.
pub struct Domain {
    pub name: String,
    buckets: Vec<Mutex<Slot>>,
    contacts: Arc<Gauge>,
    users: Arc<Gauge>,
    expires: Arc<Counter>,
}

impl std::fmt::Debug for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Domain").field("name", &self.name).finish()
    }
}

/// usrloc's hash of an AOR (Kamailio's `core_hash`-like, shown as HashID).
pub fn aor_hash(aor: &str) -> u32 {
    let mut h: u32 = 0;
    for b in aor.bytes() {
        h = h.wrapping_mul(31).wrapping_add(u32::from(b));
    }
    h
}

impl Domain {
    fn new(name: &str, hash_size: u32, reg: &sable_engine::StatRegistry) -> Domain {
        let n = 1usize << hash_size.clamp(1, 16);
        let d = Domain {
            name: name.to_owned(),
            buckets: (0..n).map(|_| Mutex::new(Slot::default())).collect(),
            contacts: Arc::default(),
            users: Arc::default(),
            expires: Arc::default(),
        };
        reg.adopt_gauge(
            "usrloc",
            &format!("{name}_contacts"),
            d.contacts.clone(),
            false,
        );
        reg.adopt_gauge("usrloc", &format!("{name}_users"), d.users.clone(), false);
        reg.adopt_counter("usrloc", &format!("{name}_expires"), d.expires.clone());
        d
    }

    fn bucket(&self, aor: &str) -> Option<&Mutex<Slot>> {
        let n = self.buckets.len().max(1);
        self.buckets.get(aor_hash(aor) as usize % n)
    }

    /// Number of hash slots.
    pub fn size(&self) -> usize {
        self.buckets.len()
    }

    /// The record of an AOR (a copy).
    pub fn get(&self, aor: &str) -> Option<Record> {
        self.with_record(aor, |r| r.cloned())
    }

    /// Reads the record of an AOR in place (under its slot's lock: keep `f` short).
    pub fn with_record<R>(&self, aor: &str, f: impl FnOnce(Option<&Record>) -> R) -> R {
        match self.bucket(aor) {
            Some(b) => f(b.lock().find(key_hash(aor), |r| r.aor() == Some(aor))),
            None => f(None),
        }
    }

    /// Changes the record of `aor` under its bucket's lock: `f` gets the current record and
    /// gives the new one (an empty one is removed; `None`: unchanged) and a result. Every
    /// binding of the new record must be of `aor`.
    pub fn modify<R, E>(
        &self,
        aor: &str,
        f: impl FnOnce(Option<&Record>) -> Result<(Option<Record>, R), E>,
    ) -> Result<R, E> {
        let Some(bucket) = self.bucket(aor) else {
            return f(None).map(|(_, r)| r);
        };
        let hash = key_hash(aor);
        let is_it = |r: &Record| r.aor() == Some(aor);
        let mut b = bucket.lock();
        let old = b.find(hash, is_it);
        let old_n = old.map_or(0, |r| r.contacts.len());
        let (new, out) = f(old)?;
        let Some(mut new) = new else {
            return Ok(out);
        };
        if new.contacts.iter().any(|c| c.aor() != aor) {
            tracing::error!("usrloc: a record for {aor} with bindings of another AOR not stored");
            return Ok(out);
        }
        // Kept long: no spare room in the vector of a record with several bindings.
        new.shrink();
        let new_n = new.contacts.len();
        match b.find_entry(hash, is_it) {
            Ok(entry) if new.contacts.is_empty() => {
                entry.remove();
                self.users.sub(1);
            }
            Ok(entry) => *entry.into_mut() = new,
            Err(_) if new.contacts.is_empty() => {}
            Err(_) => {
                b.insert_unique(hash, new, record_hash);
                self.users.add(1);
            }
        }
        drop(b);
        self.contacts
            .add(i64::try_from(new_n).unwrap_or(0) - i64::try_from(old_n).unwrap_or(0));
        Ok(out)
    }

    /// Removes every binding no longer valid at `now`; gives them (each knows its AOR).
    pub fn expire(&self, now: u64) -> Vec<Contact> {
        let mut out = Vec::new();
        for bucket in &self.buckets {
            let mut b = bucket.lock();
            let mut emptied = 0;
            b.retain(|rec| {
                out.extend(rec.expire(now));
                let keep = !rec.contacts.is_empty();
                if !keep {
                    emptied += 1;
                }
                keep
            });
            self.users.sub(emptied);
        }
        self.contacts.sub(i64::try_from(out.len()).unwrap_or(0));
        self.expires.add(out.len() as u64);
        out
    }

    /// Every record (copies), and the largest number of records in one slot.
    pub fn snapshot(&self) -> (Vec<Record>, usize) {
        let mut all = Vec::new();
        let mut max = 0;
        for bucket in &self.buckets {
            let b = bucket.lock();
            max = max.max(b.len());
            all.extend(b.iter().cloned());
        }
        (all, max)
    }

    /// Own accounting of what the table holds.
    pub fn memory(&self) -> Memory {
        let mut m = Memory {
            table_bytes: self.buckets.capacity() * std::mem::size_of::<Mutex<Slot>>(),
            ..Memory::default()
        };
        m.allocated_bytes = malloc_chunk(m.table_bytes);
        for bucket in &self.buckets {
            let b = bucket.lock();
            let table = b.allocation_size();
            m.table_bytes += table;
            m.allocated_bytes += malloc_chunk(table);
            m.records += b.len();
            for r in b.iter() {
                m.contacts += r.contacts.len();
                m.contact_bytes += r.heap_bytes();
                m.allocated_bytes += r
                    .contacts
                    .iter()
                    .map(|c| malloc_chunk(c.heap_bytes()))
                    .sum::<usize>();
                if r.contacts.spilled() {
                    m.allocated_bytes +=
                        malloc_chunk(r.contacts.capacity() * std::mem::size_of::<Contact>());
                }
            }
        }
        m
    }

    /// Number of records.
    pub fn users(&self) -> i64 {
        self.users.get()
    }
}

/// The location tables and who wants to hear about them.
pub struct Usrloc {
    pub cfg: UsrlocConfig,
    /// The database (db_mode 1-3) and the changes waiting for the next write-back (mode 2).
    store: Option<Store>,
    domains: RwLock<HashMap<String, Arc<Domain>>>,
    callbacks: RwLock<Vec<UlCallback>>,
    ruid_counter: AtomicU64,
    core: std::sync::OnceLock<Weak<Core>>,
}

impl std::fmt::Debug for Usrloc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Usrloc").field("cfg", &self.cfg).finish()
    }
}

/// Seconds since the epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The location database of a usrloc with db_mode > 0.
struct Store {
    db: Mutex<sable_storage::Database>,
    /// db_mode 2: the bindings changed since the last write-back, per table and ruid: their
    /// AOR, and what happened to them. Their state is read from the table when written, so
    /// a binding refreshed several times in one interval is written once.
    pending: Mutex<Vec<(String, PendingTable)>>,
    write_back: bool,
}

/// One table's bindings changed since the last write-back: the AOR (the one allocation per
/// binding noted) and what happened.
type PendingTable = HashMap<RuidKey, (Box<str>, Pending), std::hash::BuildHasherDefault<Fnv>>;

/// A binding's ruid as a key of [`PendingTable`]: the numbers of the usual form (no
/// allocation, no text to hash), else the text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum RuidKey {
    Uloc { time: u64, pid: u32, counter: u64 },
    Text(Box<str>),
}

impl RuidKey {
    fn of(ruid: Ruid<'_>) -> RuidKey {
        match ruid {
            Ruid::Uloc { time, pid, counter } => RuidKey::Uloc { time, pid, counter },
            Ruid::Text(t) => RuidKey::Text(t.into()),
        }
    }

    fn ruid(&self) -> Ruid<'_> {
        match self {
            RuidKey::Uloc { time, pid, counter } => Ruid::Uloc {
                time: *time,
                pid: *pid,
                counter: *counter,
            },
            RuidKey::Text(t) => Ruid::Text(t),
        }
    }
}

/// What a db_mode 2 write-back does with a binding changed since the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Pending {
    /// Removed (or expired): delete its row.
    Gone,
    /// Changed, and maybe in the database already: upsert its row.
    Changed,
    /// Made since the last write-back (with a new ruid): insert its row.
    New,
}

impl Pending {
    /// The state after an event, given the state noted so far in this interval.
    fn after(noted: Option<Pending>, kind: &UlEventKind) -> Pending {
        match (noted, kind) {
            (_, UlEventKind::Delete | UlEventKind::Expire) => Pending::Gone,
            (_, UlEventKind::Insert) | (Some(Pending::New), UlEventKind::Update) => Pending::New,
            (_, UlEventKind::Update) => Pending::Changed,
        }
    }
}

/// The row of a binding.
fn row_of(c: &Contact, use_domain: bool) -> sable_storage::LocationRow {
    let c = c.data();
    let (username, domain) = match (use_domain, c.aor.split_once('@')) {
        (true, Some((u, d))) => (u.to_owned(), Some(d.to_owned())),
        _ => (c.aor.to_owned(), None),
    };
    sable_storage::LocationRow {
        ruid: c.ruid.to_string(),
        username,
        domain,
        contact: c.uri.to_owned(),
        received: c.received.map(str::to_owned),
        path: c.path.map(str::to_owned),
        expires: i64::try_from(c.expires).unwrap_or(0),
        q: if c.q < 0 {
            -1.0
        } else {
            f64::from(c.q) / 1000.0
        },
        callid: c.call_id.to_owned(),
        cseq: i32::try_from(c.cseq).unwrap_or(i32::MAX),
        last_modified: i64::try_from(c.last_modified).unwrap_or(0),
        flags: c.flags,
        cflags: c.cflags,
        user_agent: c.user_agent.to_owned(),
        socket: c.socket.map(str::to_owned),
        methods: (c.methods != u32::MAX).then_some(c.methods),
        instance: c.instance.map(str::to_owned),
        reg_id: c.reg_id,
        server_id: 0,
        connection_id: i32::try_from(c.tcpconn_id.max(0)).unwrap_or(0),
        keepalive: 0,
        partition: 0,
    }
}

/// The order of a write-back's changes: the kind, then the ruid.
fn change_key(change: &sable_storage::Change) -> (u8, &str) {
    match change {
        sable_storage::Change::DeleteAor { username, .. } => (0, username),
        sable_storage::Change::Delete { ruid } => (1, ruid),
        sable_storage::Change::Upsert(row) => (2, &row.ruid),
        sable_storage::Change::Insert(row) => (3, &row.ruid),
    }
}

/// The binding of a row (with its AOR).
fn contact_of(r: &sable_storage::LocationRow) -> Contact {
    let aor = match &r.domain {
        Some(d) if !d.is_empty() => format!("{}@{d}", r.username),
        _ => r.username.clone(),
    };
    let q = if r.q < 0.0 {
        sable_location::UNSPECIFIED_Q
    } else {
        (r.q.min(1.0) * 1000.0).round() as i32
    };
    Contact::new(&ContactData {
        aor: &aor,
        uri: &r.contact,
        expires: u64::try_from(r.expires).unwrap_or(0),
        q,
        call_id: &r.callid,
        cseq: u32::try_from(r.cseq).unwrap_or(0),
        flags: r.flags,
        cflags: r.cflags,
        user_agent: &r.user_agent,
        received: r.received.as_deref(),
        path: r.path.as_deref(),
        socket: r.socket.as_deref(),
        methods: r.methods.unwrap_or(u32::MAX),
        ruid: Ruid::parse(&r.ruid),
        instance: r.instance.as_deref(),
        reg_id: r.reg_id,
        last_modified: u64::try_from(r.last_modified).unwrap_or(0),
        tcpconn_id: if r.connection_id > 0 {
            i64::from(r.connection_id)
        } else {
            -1
        },
    })
}

impl Usrloc {
    fn new(cfg: UsrlocConfig) -> Usrloc {
        Usrloc {
            store: None,
            cfg,

            domains: RwLock::new(HashMap::new()),
            callbacks: RwLock::new(Vec::new()),
            ruid_counter: AtomicU64::new(1),
            core: std::sync::OnceLock::new(),
        }
    }

    /// The table `name`, created on first use (as Kamailio's `register_udomain`).
    pub fn domain(&self, name: &str) -> Option<Arc<Domain>> {
        if let Some(d) = self.domains.read().get(name) {
            return Some(d.clone());
        }
        let core = self.core.get().and_then(Weak::upgrade)?;
        let mut all = self.domains.write();
        if let Some(d) = all.get(name) {
            return Some(d.clone());
        }
        let d = Arc::new(Domain::new(name, self.cfg.hash_size, &core.stat_registry));
        if let Err(e) = self.load(&d) {
            tracing::error!("usrloc: table {name} not loaded from the database: {e}");
        }
        all.insert(name.to_owned(), d.clone());
        Some(d)
    }

    /// Loads a table's bindings from the database (no insert callbacks, as Kamailio).
    fn load(&self, d: &Domain) -> Result<usize, String> {
        let Some(store) = &self.store else {
            return Ok(0);
        };
        let table = sable_storage::TableName::new(&d.name).map_err(|e| e.to_string())?;
        let rows = {
            let db = store.db.lock();
            db.check_location_table(&table).map_err(|e| e.to_string())?;
            db.load_location(&table).map_err(|e| e.to_string())?
        };
        let n = rows.len();
        let mut by_aor: HashMap<String, Vec<Contact>> = HashMap::new();
        for r in &rows {
            let c = contact_of(r);
            by_aor.entry(c.aor().to_owned()).or_default().push(c);
        }
        drop(rows);
        for (aor, contacts) in by_aor {
            let _: Result<(), ()> = d.modify(&aor, |rec| {
                let mut r = rec.cloned().unwrap_or_default();
                for c in contacts {
                    r.insert(c);
                }
                Ok((Some(r), ()))
            });
        }
        Ok(n)
    }

    /// Writes a change to the database: now (db_mode 1 and 3: the reply waits for it), or
    /// at the next timer (db_mode 2).
    fn persist(&self, domain: &str, change: sable_storage::Change) {
        let Some(store) = &self.store else {
            return;
        };
        let Ok(table) = sable_storage::TableName::new(domain) else {
            return;
        };
        let mut db = store.db.lock();
        if let Err(e) = db.apply_batch(&table, &[change]) {
            tracing::error!("usrloc: database write failed: {e}");
        }
    }

    /// db_mode 2: the changes since the last timer, in one transaction per table.
    pub fn flush_pending(&self) {
        let Some(store) = &self.store else {
            return;
        };
        let pending = std::mem::take(&mut *store.pending.lock());
        if pending.iter().all(|(_, m)| m.is_empty()) {
            return;
        }
        let mut by_table: Vec<(String, Vec<sable_storage::Change>)> = Vec::new();
        let domains = self.domains.read().clone();
        for (t, noted) in pending {
            let d = domains.get(&t);
            let mut changes = Vec::with_capacity(noted.len());
            for (key, (aor, state)) in noted {
                // What the binding is now: written as it is, or deleted if it is gone since.
                let wanted = key.ruid();
                let row = if state == Pending::Gone {
                    None
                } else {
                    d.and_then(|d| {
                        d.with_record(&aor, |r| {
                            r.and_then(|r| r.contacts.iter().find(|c| c.ruid() == wanted))
                                .map(|c| row_of(c, self.cfg.use_domain))
                        })
                    })
                };
                changes.push(match row {
                    Some(row) if state == Pending::New => {
                        sable_storage::Change::Insert(Box::new(row))
                    }
                    Some(row) => sable_storage::Change::Upsert(Box::new(row)),
                    None => sable_storage::Change::Delete {
                        ruid: wanted.to_string(),
                    },
                });
            }
            by_table.push((t, changes));
        }
        let mut db = store.db.lock();
        for (t, mut changes) in by_table {
            let Ok(table) = sable_storage::TableName::new(&t) else {
                continue;
            };
            // One change per binding, so their order does not matter: deletes, upserts,
            // then inserts (which SQLite takes many to a statement), each by ruid, so that
            // SQLite inserts into the ruid index (and, ruids being made in sequence, the
            // table) near where it inserted the last row instead of all over it.
            changes.sort_unstable_by(|a, b| change_key(a).cmp(&change_key(b)));
            if let Err(e) = db.apply_batch(&table, &changes) {
                tracing::error!(
                    "usrloc: database write-back of {} changes failed: {e}",
                    changes.len()
                );
            }
        }
    }

    /// `ul.db_users`, `ul.db_contacts`, `ul.db_expired_contacts`.
    fn db_count(&self, table: &str, what: u8) -> Result<u64, String> {
        let store = self.store.as_ref().ok_or("no database (db_mode 0)")?;
        let t = sable_storage::TableName::new(table).map_err(|e| e.to_string())?;
        let now = i64::try_from(unix_now()).unwrap_or(0);
        let db = store.db.lock();
        match what {
            0 => db.db_users(&t, now),
            1 => db.db_contacts(&t, now),
            _ => db.db_expired_contacts(&t, now),
        }
        .map_err(|e| e.to_string())
    }

    /// Every table.
    pub fn domains(&self) -> Vec<Arc<Domain>> {
        let mut v: Vec<Arc<Domain>> = self.domains.read().values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// A new binding id, Kamailio's form `uloc-<hex time>-<hex pid>-<hex counter>` (kept as
    /// the numbers).
    pub fn new_ruid(&self) -> Ruid<'static> {
        let n = self.ruid_counter.fetch_add(1, Ordering::Relaxed);
        Ruid::Uloc {
            time: unix_now(),
            pid: std::process::id(),
            counter: n,
        }
    }

    /// Registers a callback for binding changes.
    pub fn on_change(&self, cb: UlCallback) {
        self.callbacks.write().push(cb);
    }

    /// Tells the callbacks (after writing the change to the database, when there is one).
    pub fn notify(&self, kind: UlEventKind, domain: &str, aor: &str, contact: &Contact) {
        self.notify_from(kind, domain, aor, contact, None);
    }

    /// [`Usrloc::notify`] for a change a message caused.
    pub fn notify_from(
        &self,
        kind: UlEventKind,
        domain: &str,
        aor: &str,
        contact: &Contact,
        ctx: Option<&MsgCtx<'_>>,
    ) {
        if let Some(store) = self.store.as_ref().filter(|s| s.write_back) {
            let key = RuidKey::of(contact.ruid());
            let mut pending = store.pending.lock();
            let k = match pending.iter().position(|(t, _)| t == domain) {
                Some(k) => k,
                None => {
                    pending.push((domain.to_owned(), PendingTable::default()));
                    pending.len() - 1
                }
            };
            if let Some((_, noted)) = pending.get_mut(k) {
                match noted.get_mut(&key) {
                    Some((_, state)) => *state = Pending::after(Some(*state), &kind),
                    None => {
                        noted.insert(key, (aor.into(), Pending::after(None, &kind)));
                    }
                }
            }
        } else if self.store.is_some() {
            let change = match kind {
                UlEventKind::Insert => {
                    sable_storage::Change::Insert(Box::new(row_of(contact, self.cfg.use_domain)))
                }
                UlEventKind::Update => {
                    sable_storage::Change::Upsert(Box::new(row_of(contact, self.cfg.use_domain)))
                }
                UlEventKind::Delete | UlEventKind::Expire => sable_storage::Change::Delete {
                    ruid: contact.ruid().to_string(),
                },
            };
            self.persist(domain, change);
        }
        let cbs = self.callbacks.read().clone();
        if cbs.is_empty() {
            return;
        }
        let event = UlEvent {
            kind,
            domain,
            aor,
            contact,
            ctx,
        };
        for cb in cbs {
            cb(&event);
        }
    }

    /// Removes a whole AOR (`ul.rm`, `unregister` without ruid); gives its bindings.
    pub fn remove_aor(&self, domain: &Domain, aor: &str) -> Vec<Contact> {
        let gone: Result<Vec<Contact>, ()> = domain.modify(aor, |rec| {
            let gone = rec.map(|r| r.contacts.to_vec()).unwrap_or_default();
            Ok((Some(Record::new()), gone))
        });
        let gone = gone.unwrap_or_default();
        for c in &gone {
            self.notify(UlEventKind::Delete, &domain.name, aor, c);
        }
        gone
    }

    /// Removes one binding by a test; true when one went.
    pub fn remove_contact(
        &self,
        domain: &Domain,
        aor: &str,
        which: impl Fn(&Contact) -> bool,
    ) -> bool {
        let gone: Result<Option<Contact>, ()> = domain.modify(aor, |rec| {
            let mut r = rec.cloned().unwrap_or_default();
            let k = r.contacts.iter().position(&which);
            let gone = k.map(|k| r.contacts.remove(k));
            Ok((Some(r), gone))
        });
        match gone.ok().flatten() {
            Some(c) => {
                self.notify(UlEventKind::Delete, &domain.name, aor, &c);
                true
            }
            None => false,
        }
    }

    /// The timer's work: expired bindings out, callbacks and the event route told.
    fn expire_all(&self, core: &Core) {
        let now = unix_now();
        for d in self.domains() {
            for c in d.expire(now) {
                self.notify(UlEventKind::Expire, &d.name, c.aor(), &c);
                run_expired_route(core, &d.name, c.aor(), &c);
            }
        }
        self.flush_pending();
    }
}

/// `$ulc(exp=>...)` and the registrar's fetched profiles: per thread, as Kamailio's are
/// per process.
pub mod profiles {
    use sable_location::Contact;
    use std::cell::RefCell;
    use std::collections::HashMap;

    /// Contacts fetched under a profile name (`reg_fetch_contacts`).
    #[derive(Debug, Clone, Default)]
    pub struct Fetched {
        pub aor: String,
        pub domain: String,
        pub contacts: Vec<Contact>,
    }

    thread_local! {
        static PROFILES: RefCell<HashMap<String, Fetched>> = RefCell::new(HashMap::new());
    }

    pub fn set(name: &str, f: Fetched) {
        PROFILES.with(|p| {
            p.borrow_mut().insert(name.to_owned(), f);
        });
    }

    pub fn clear(name: &str) -> bool {
        PROFILES.with(|p| p.borrow_mut().remove(name).is_some())
    }

    pub fn with<R>(name: &str, f: impl FnOnce(Option<&Fetched>) -> R) -> R {
        PROFILES.with(|p| f(p.borrow().get(name)))
    }
}

/// Runs `event_route[usrloc:contact-expired]` for an expired binding on a made-up request,
/// with `$ulc(exp=>...)` describing it.
fn run_expired_route(core: &Core, domain: &str, aor: &str, c: &Contact) {
    let Some(program) = core.program() else {
        return;
    };
    let Some(id) = program.event_route("usrloc:contact-expired") else {
        return;
    };
    let Some(local) = sable_engine::first_socket_addr(core) else {
        return;
    };
    profiles::set(
        "exp",
        profiles::Fetched {
            aor: aor.to_owned(),
            domain: domain.to_owned(),
            contacts: vec![c.clone()],
        },
    );
    let fake = format!(
        "OPTIONS sip:{aor}@{local} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKulexp\r\nFrom: <sip:usrloc@{local}>;tag=ulexp\r\nTo: <sip:{aor}@{local}>\r\nCall-ID: ulexp-{ruid}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        ruid = c.ruid()
    );
    sable_engine::run_on_local_message(
        core,
        &program,
        id,
        RouteMask::EVENT,
        fake.as_bytes(),
        |_| {},
    );
    profiles::clear("exp");
}

/// A binding as `ul.dump` shows it.
pub fn contact_json(c: &Contact, now: u64) -> Json {
    let c = c.data();
    let text = |v: Option<&str>| v.unwrap_or("[not set]").to_owned();
    let expires = if c.expires == 0 {
        json!("permanent")
    } else if c.expires <= now {
        json!("expired")
    } else {
        json!(c.expires - now)
    };
    let q = if c.q < 0 {
        json!(-1)
    } else {
        json!(f64::from(c.q) / 1000.0)
    };
    json!({"Contact": {
        "Address": c.uri,
        "Expires": expires,
        "Q": q,
        "Call-ID": c.call_id,
        "CSeq": c.cseq,
        "User-Agent": if c.user_agent.is_empty() { "[not set]" } else { c.user_agent },
        "Received": text(c.received),
        "Path": text(c.path),
        "State": "CS_NEW",
        "Flags": c.flags,
        "CFlags": c.cflags,
        "Socket": text(c.socket),
        "Methods": c.methods,
        "Ruid": c.ruid.to_string(),
        "Instance": text(c.instance),
        "Reg-Id": c.reg_id,
        "Server-Id": 0,
        "Tcpconn-Id": c.tcpconn_id,
        "Keepalive": 0,
        "Last-Keepalive": c.last_modified,
        "KA-Roundtrip": 0,
        "Last-Modified": c.last_modified,
    }})
}

#[derive(Debug, Default)]
pub struct UsrlocModule {
    cfg: UsrlocConfig,
    ignored: Vec<String>,
}

fn the_usrloc(core: &Core) -> Result<Arc<Usrloc>, RpcError> {
    core.service::<Usrloc>()
        .ok_or_else(|| RpcError::new(500, "usrloc is not running"))
}

/// An existing table (an RPC never creates one, unlike [`Usrloc::domain`]).
fn table(ul: &Usrloc, name: &str) -> Result<Arc<Domain>, RpcError> {
    ul.domains
        .read()
        .get(name)
        .cloned()
        .ok_or_else(|| RpcError::new(500, format!("Table not found: {name}")))
}

impl Module for UsrlocModule {
    fn name(&self) -> &'static str {
        "usrloc"
    }

    fn set_param(&mut self, name: &str, value: &Literal) -> Result<(), ParamError> {
        let c = &mut self.cfg;
        match name {
            "db_mode" => {
                let m = int_param(value)?;
                if !(0..=3).contains(&m) {
                    return Err(ParamError::bad("0, 1, 2 or 3"));
                }
                c.db_mode = m;
            }
            "db_url" => c.db_url = Some(str_param(value)?),
            "timer_interval" => {
                c.timer_interval = u64::try_from(int_param(value)?)
                    .ok()
                    .filter(|v| *v > 0)
                    .ok_or_else(|| ParamError::bad("seconds (> 0)"))?;
            }
            "use_domain" => c.use_domain = int_param(value)? != 0,
            "matching_mode" => {
                let m = int_param(value)?;
                if !(0..=3).contains(&m) {
                    return Err(ParamError::bad("0, 1, 2 or 3"));
                }
                c.matching_mode = m;
            }
            "cseq_delay" => {
                c.cseq_delay = u32::try_from(int_param(value)?)
                    .map_err(|_| ParamError::bad("seconds (>= 0)"))?;
            }
            "hash_size" => {
                c.hash_size = u32::try_from(int_param(value)?)
                    .ok()
                    .filter(|v| (1..=16).contains(v))
                    .ok_or_else(|| ParamError::bad("1..16"))?;
            }
            "nat_bflag" => c.nat_bflag = int_param(value)?,
            "preload" => c.preload.push(str_param(value)?),
            "desc_time_order"
            | "handle_lost_tcp"
            | "close_expired_tcp"
            | "timer_procs"
            | "db_load"
            | "ka_mode"
            | "ka_interval"
            | "ka_from"
            | "ka_method"
            | "db_ops_ruid"
            | "xavp_contact"
            | "server_id_filter"
            | "skip_remote_socket"
            | "db_update_as_insert"
            | "db_check_update"
            | "db_timer_clean"
            | "version_table"
            | "rm_expired_delay"
            | "load_rank"
            | "expires_type"
            | "db_insert_null" => {
                self.ignored
                    .push(format!("usrloc: parameter {name} has no effect in Sable"));
            }
            _ => return Err(ParamError::Unknown),
        }
        Ok(())
    }

    fn warnings(&self) -> Vec<String> {
        let mut w = self.ignored.clone();
        if self.cfg.db_mode == 3 {
            w.push("usrloc: db_mode 3 keeps a memory cache written through to the database (as db_mode 1)".to_owned());
        }
        w
    }

    fn register(&self, _reg: &mut Registry<Sip>) {}

    fn init(&self, core: &Arc<Core>) -> Result<(), String> {
        if core.service::<Usrloc>().is_some() {
            return Ok(());
        }
        let mut ul = Usrloc::new(self.cfg.clone());
        if self.cfg.db_mode > 0 {
            let url = self
                .cfg
                .db_url
                .as_deref()
                .ok_or("usrloc: db_mode > 0 needs db_url (sqlite:///path/file.db)")?;
            let db = sable_storage::Database::open(url).map_err(|e| format!("usrloc: {e}"))?;
            db.check_location_table(&sable_storage::TableName::location())
                .map_err(|e| format!("usrloc: {e}"))?;
            ul.store = Some(Store {
                db: Mutex::new(db),
                pending: Mutex::new(Vec::new()),
                write_back: self.cfg.db_mode == 2,
            });
        }
        let ul = Arc::new(ul);
        let _ = ul.core.set(Arc::downgrade(core));
        let mut preload = self.cfg.preload.clone();
        if self.cfg.db_mode > 0 && !preload.iter().any(|p| p == "location") {
            preload.push("location".to_owned());
        }
        for name in &preload {
            let _ = ul.domain(name);
        }

        let all = Arc::downgrade(&ul);
        core.stat_registry
            .computed("usrloc", "registered_users", move || {
                all.upgrade()
                    .map_or(0, |u| u.domains().iter().map(|d| d.users()).sum())
            });
        core.provide(ul.clone());
        sable_engine::spawn_ticker(
            "usrloc-timer",
            std::time::Duration::from_secs(self.cfg.timer_interval),
            &ul,
            core,
            |ul, core| ul.expire_all(core),
        )
        .map_err(|e| format!("usrloc: {e}"))?;
        Ok(())
    }

    fn stop(&self, core: &Arc<Core>) {
        // db_mode 2: the changes since the last timer (Kamailio writes them back on exit
        // too); a no-op in the other modes.
        if let Some(ul) = core.service::<Usrloc>() {
            ul.flush_pending();
        }
    }

    fn rpc(&self, registry: &mut sable_rpc::Registry, core: &Arc<Core>) {
        let c = core.clone();
        let _ = registry.register(
            "ul.dump",
            "Dumps the location tables ([brief]).",
            ["struct", "string"],
            MethodKind::Value,
            move |p: &Params| -> Result<Json, RpcError> {
                let ul = the_usrloc(&c)?;
                let brief = p.opt_str(0)?.is_some_and(|b| b == "brief");
                let now = unix_now();
                let domains: Vec<Json> = ul
                    .domains()
                    .iter()
                    .map(|d| {
                        let (mut recs, max) = d.snapshot();
                        recs.sort_by(|a, b| a.aor().cmp(&b.aor()));
                        let aors: Vec<Json> = recs
                            .iter()
                            .map(|r| {
                                let aor = r.aor().unwrap_or_default();
                                if brief {
                                    json!({"AoR": aor})
                                } else {
                                    json!({"Info": {
                                        "AoR": aor,
                                        "HashID": aor_hash(aor),
                                        "Contacts": r.contacts.iter().map(|c| contact_json(c, now)).collect::<Vec<_>>(),
                                    }})
                                }
                            })
                            .collect();
                        json!({"Domain": {
                            "Domain": d.name,
                            "Size": d.size(),
                            "AoRs": aors,
                            "Stats": {"Records": recs.len(), "Max-Slots": max},
                        }})
                    })
                    .collect();
                Ok(json!({"Domains": domains}))
            },
        );
        let c = core.clone();
        let _ = registry.register(
            "ul.memory",
            "Sable's own accounting of the location tables: records, bindings and the bytes they hold.",
            ["struct"],
            MethodKind::Value,
            move |_: &Params| -> Result<Json, RpcError> {
                let ul = the_usrloc(&c)?;
                let mut all = Memory::default();
                let mut tables = Vec::new();
                for d in ul.domains() {
                    let m = d.memory();
                    tables.push(json!({
                        "table": d.name,
                        "records": m.records,
                        "contacts": m.contacts,
                        "bytes": m.contact_bytes + m.table_bytes,
                    }));
                    all.records += m.records;
                    all.contacts += m.contacts;
                    all.contact_bytes += m.contact_bytes;
                    all.table_bytes += m.table_bytes;
                    all.allocated_bytes += m.allocated_bytes;
                }
                let (interned, interned_bytes) = sable_location::intern::usage();
                let per = |b: usize| b.checked_div(all.contacts).unwrap_or(0);
                let bytes = all.contact_bytes + all.table_bytes;
                Ok(json!({
                    "records": all.records,
                    "contacts": all.contacts,
                    "bytes": bytes,
                    "bytes_per_contact": per(bytes),
                    "contact_bytes_per_contact": per(all.contact_bytes),
                    "table_bytes_per_contact": per(all.table_bytes),
                    "allocated_bytes_per_contact": per(all.allocated_bytes),
                    "interned_strings": interned,
                    "interned_bytes": interned_bytes,
                    "tables": tables,
                }))
            },
        );
        let c = core.clone();
        let _ = registry.register(
            "ul.lookup",
            "The bindings of an AOR: table AOR.",
            ["struct", "string", "string"],
            MethodKind::Value,
            move |p: &Params| -> Result<Json, RpcError> {
                let ul = the_usrloc(&c)?;
                let d = table(&ul, p.str(0)?)?;
                let aor = p.str(1)?;
                let now = unix_now();
                let rec = d
                    .get(aor)
                    .filter(|r| r.valid_count(now) > 0)
                    .ok_or_else(|| {
                        RpcError::new(500, format!("AOR not found in {} table", d.name))
                    })?;
                Ok(json!({
                    "AoR": aor,
                    "Contacts": rec.valid(now).map(|c| contact_json(c, now)).collect::<Vec<_>>(),
                }))
            },
        );
        let c = core.clone();
        let _ = registry.register(
            "ul.rm",
            "Removes an AOR: table AOR.",
            ["struct", "string", "string"],
            MethodKind::Value,
            move |p: &Params| -> Result<Json, RpcError> {
                let ul = the_usrloc(&c)?;
                let d = table(&ul, p.str(0)?)?;
                let aor = p.str(1)?;
                if d.get(aor).is_none() {
                    return Err(RpcError::new(404, "AOR not found"));
                }
                ul.remove_aor(&d, aor);
                Ok(json!({}))
            },
        );
        let c = core.clone();
        let _ = registry.register(
            "ul.rm_contact",
            "Removes a binding: table AOR contact.",
            ["struct", "string", "string", "string"],
            MethodKind::Value,
            move |p: &Params| -> Result<Json, RpcError> {
                let ul = the_usrloc(&c)?;
                let d = table(&ul, p.str(0)?)?;
                let aor = p.str(1)?;
                let uri = p.str(2)?.to_owned();
                if d.get(aor).is_none() {
                    return Err(RpcError::new(404, "AOR not found"));
                }
                if ul.remove_contact(&d, aor, |c| c.uri() == uri) {
                    Ok(json!({}))
                } else {
                    Err(RpcError::new(404, "Contact not found"))
                }
            },
        );
        let c = core.clone();
        let _ = registry.register(
            "ul.flush",
            "Removes the expired bindings now.",
            ["struct"],
            MethodKind::Value,
            move |_: &Params| -> Result<Json, RpcError> {
                let ul = the_usrloc(&c)?;
                ul.expire_all(&c);
                Ok(json!({}))
            },
        );
        for (name, what, help) in [
            (
                "ul.db_users",
                0u8,
                "AORs with a valid binding in the database table: table.",
            ),
            (
                "ul.db_contacts",
                1,
                "Valid bindings in the database table: table.",
            ),
            (
                "ul.db_expired_contacts",
                2,
                "Expired bindings in the database table: table.",
            ),
        ] {
            let c = core.clone();
            let _ = registry.register(
                name,
                help,
                ["struct", "string"],
                MethodKind::Value,
                move |p: &Params| -> Result<Json, RpcError> {
                    let ul = the_usrloc(&c)?;
                    let n = ul
                        .db_count(p.str(0)?, what)
                        .map_err(|e| RpcError::new(500, e))?;
                    let key = match what {
                        0 => "users",
                        1 => "contacts",
                        _ => "expired",
                    };
                    Ok(json!({"table": p.str(0)?, key: n}))
                },
            );
        }
        let c = core.clone();
        let _ = registry.register(
            "ul.add",
            "Adds a binding: table AOR contact expires q path flags cflags methods.",
            [
                "struct", "string", "string", "string", "int", "double", "string", "int", "int",
                "int",
            ],
            MethodKind::Value,
            move |p: &Params| -> Result<Json, RpcError> {
                let ul = the_usrloc(&c)?;
                let d = ul
                    .domain(p.str(0)?)
                    .ok_or_else(|| RpcError::new(500, "usrloc is not running"))?;
                let aor = p.str(1)?.to_owned();
                let uri = p.str(2)?.to_owned();
                if sable_sip::Uri::parse(uri.as_bytes()).is_err() {
                    return Err(RpcError::invalid_params("the contact is not a URI"));
                }
                let expires = u64::try_from(p.int(3)?)
                    .map_err(|_| RpcError::invalid_params("expires >= 0"))?;
                let q = match p.raw(4) {
                    Some(Json::Number(n)) => n.as_f64().unwrap_or(-1.0),
                    Some(Json::String(s)) => s.trim().parse().unwrap_or(-1.0),
                    _ => -1.0,
                };
                let q = if q < 0.0 {
                    -1
                } else {
                    (q.min(1.0) * 1000.0).round() as i32
                };
                let path = p
                    .opt_str(5)?
                    .filter(|s| !s.is_empty() && *s != ".")
                    .map(str::to_owned);
                let flags = u32::try_from(p.opt_int(6)?.unwrap_or(0)).unwrap_or(0);
                let cflags = u32::try_from(p.opt_int(7)?.unwrap_or(0)).unwrap_or(0);
                let methods = u32::try_from(p.opt_int(8)?.unwrap_or(-1)).unwrap_or(u32::MAX);
                let now = unix_now();
                let data = ContactData {
                    expires: if expires == 0 { 0 } else { now + expires },
                    q,
                    call_id: "dfjrewr12386fd6-343@kamailio.mi",
                    cseq: 1,
                    flags,
                    cflags,
                    user_agent: "SIP Router MI Server",
                    path: path.as_deref(),
                    methods,
                    last_modified: now,
                    ..ContactData::new(&aor, &uri, ul.new_ruid())
                };
                let kind: Result<(UlEventKind, Contact), ()> = d.modify(&aor, |rec| {
                    let mut r = rec.cloned().unwrap_or_default();
                    let out = match r.contacts.iter().find(|e| e.uri() == uri) {
                        Some(old) => {
                            let c = Contact::new(&ContactData {
                                ruid: old.ruid(),
                                ..data
                            });
                            r.replace(c.clone());
                            (UlEventKind::Update, c)
                        }
                        None => {
                            let c = Contact::new(&data);
                            r.insert(c.clone());
                            (UlEventKind::Insert, c)
                        }
                    };
                    Ok((Some(r), out))
                });
                if let Ok((kind, contact)) = kind {
                    ul.notify(kind, &d.name, &aor, &contact);
                }
                Ok(json!({}))
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_keys_give_the_ruid_back() {
        for text in ["uloc-6561a0b3-1f2e-7", "uloc-0012-1-1", "from-kamailio-xyz"] {
            let key = RuidKey::of(Ruid::parse(text));
            assert_eq!(key.ruid().to_string(), text);
            assert_eq!(key.ruid(), Ruid::parse(text));
        }
        // The usual form is kept as its numbers, any other text as it is.
        assert!(matches!(
            RuidKey::of(Ruid::parse("uloc-6561a0b3-1f2e-7")),
            RuidKey::Uloc { counter: 7, .. }
        ));
        assert!(matches!(
            RuidKey::of(Ruid::parse("uloc-0012-1-1")),
            RuidKey::Text(_)
        ));
    }

    #[test]
    fn pending_state_follows_the_events_of_an_interval() {
        use Pending::*;
        use UlEventKind::*;
        let after = |events: &[UlEventKind]| {
            events
                .iter()
                .fold(None, |noted, kind| Some(Pending::after(noted, kind)))
        };
        // Made and refreshed since the last write-back: still a plain insert.
        assert_eq!(after(&[Insert, Update, Update]), Some(New));
        // Refreshed only: it may be in the database already.
        assert_eq!(after(&[Update]), Some(Changed));
        // Removed, whatever came before. An insert after a removal (fresh ruids make none)
        // is an insert; apply_batch turns it into an upsert should the row be there.
        assert_eq!(after(&[Insert, Delete]), Some(Gone));
        assert_eq!(after(&[Update, Expire]), Some(Gone));
        assert_eq!(after(&[Delete, Insert]), Some(New));
    }
}
