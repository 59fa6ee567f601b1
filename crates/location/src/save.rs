//! A REGISTER applied to an AOR's bindings (RFC 3261 §10.3 steps 6–8, with Kamailio's
//! `save()` rules: `calc_contact_expires`, the CSeq check, `max_contacts`, the return codes).

use crate::contact::{Contact, ContactData, Ruid, UNSPECIFIED_Q};
use crate::record::Record;

/// How a REGISTER's contact finds the binding it refreshes (usrloc `matching_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Matching {
    /// 0: by Contact URI (by `+sip.instance` and reg-id when the contact has an instance).
    #[default]
    Contact,
    /// 1: Contact URI and Call-ID.
    ContactCallId,
    /// 2: Contact URI and Path.
    ContactPath,
    /// 3: Call-ID only.
    CallId,
}

impl Matching {
    pub fn from_mode(mode: i64) -> Option<Matching> {
        match mode {
            0 => Some(Matching::Contact),
            1 => Some(Matching::ContactCallId),
            2 => Some(Matching::ContactPath),
            3 => Some(Matching::CallId),
            _ => None,
        }
    }
}

/// The registrar's and usrloc's parameters that shape `save()`, Kamailio's defaults.
#[derive(Debug, Clone)]
pub struct RegistrarConfig {
    pub default_expires: u32,
    /// Percent: the default is randomised down to (100 - r)% of itself.
    pub default_expires_range: u32,
    /// Percent: expires from the request randomised down to (100 - r)%.
    pub expires_range: u32,
    pub min_expires: u32,
    /// Below `min_expires`: false raises it, true refuses with 423 and Min-Expires.
    pub min_expires_mode: bool,
    /// 0: no limit.
    pub max_expires: u32,
    /// 0: no limit.
    pub max_contacts: u32,
    /// q for contacts that give none (thousandths, or [`UNSPECIFIED_Q`]).
    pub default_q: i32,
    pub matching: Matching,
    /// An equal CSeq within this many seconds of the last update is a retransmission.
    pub cseq_delay: u32,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            default_expires: 3600,
            default_expires_range: 0,
            expires_range: 0,
            min_expires: 60,
            min_expires_mode: false,
            max_expires: 0,
            max_contacts: 0,
            default_q: UNSPECIFIED_Q,
            matching: Matching::Contact,
            cseq_delay: 20,
        }
    }
}

/// `save()` flags that matter here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaveFlags {
    /// 0x04: the AOR keeps only the contact of this REGISTER.
    pub single_contact: bool,
    /// 0x08: no expires randomisation.
    pub no_randomize: bool,
}

/// One Contact of the REGISTER, as the caller parsed it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactRequest {
    pub uri: String,
    /// The `expires` parameter.
    pub expires: Option<u32>,
    /// The `q` parameter, in thousandths.
    pub q: Option<i32>,
    pub instance: Option<String>,
    pub reg_id: Option<u32>,
    /// Methods from the `methods` parameter (bit set), when given.
    pub methods: Option<u32>,
}

/// What `save()` needs of a REGISTER.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterRequest {
    /// The AOR it registers (see [`crate::aor_of`]).
    pub aor: String,
    pub call_id: String,
    pub cseq: u32,
    /// The Expires header.
    pub expires_header: Option<u32>,
    /// `Contact: *`.
    pub star: bool,
    pub contacts: Vec<ContactRequest>,
    /// `$xavp(xavp_cfg=>expires)`: overrides everything.
    pub expires_override: Option<u32>,
    pub user_agent: String,
    pub received: Option<String>,
    pub path: Option<String>,
    pub socket: Option<String>,
    /// Branch flags to keep with the contacts.
    pub cflags: u32,
    pub tcpconn_id: i64,
}

/// What `save()` did, with Kamailio's return codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveResult {
    Inserted = 1,
    Updated = 2,
    Deleted = 3,
    /// No Contact: the bindings were only listed.
    Query = 4,
}

impl SaveResult {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// The new bindings and the changes that made them (for callbacks and the database).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    pub record: Record,
    pub result: SaveResult,
    pub inserted: Vec<Contact>,
    pub updated: Vec<Contact>,
    pub deleted: Vec<Contact>,
    /// A retransmitted REGISTER: nothing changed.
    pub retransmission: bool,
}

/// Why a REGISTER was refused, and the reply it gets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error("* used in contact and expires is not zero")]
    StarExpiresNotZero,
    #[error("* used in contact and more than 1 contact")]
    StarWithOthers,
    #[error("Invalid CSeq number")]
    InvalidCseq,
    #[error("Interval Too Brief")]
    IntervalTooBrief { min_expires: u32 },
    #[error("Too many registered contacts")]
    TooManyContacts,
}

impl RegisterError {
    /// Status code and reason phrase of the reply (Kamailio's `reply.c`).
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            RegisterError::StarExpiresNotZero
            | RegisterError::StarWithOthers
            | RegisterError::InvalidCseq => (400, "Bad Request"),
            RegisterError::IntervalTooBrief { .. } => (423, "Interval Too Brief"),
            RegisterError::TooManyContacts => (503, "Service Unavailable"),
        }
    }

    /// save()'s return code for it.
    pub fn code(&self) -> i32 {
        match self {
            RegisterError::TooManyContacts => -2,
            _ => -1,
        }
    }
}

/// Expires for one contact (Kamailio's `calc_contact_expires`): override, Contact
/// parameter, Expires header, default; randomised; then min/max. 0 removes.
fn contact_expires(
    c: &ContactRequest,
    req: &RegisterRequest,
    cfg: &RegistrarConfig,
    flags: SaveFlags,
    random: &mut dyn FnMut() -> u32,
) -> Result<u32, RegisterError> {
    let randomise = |v: u32, range: u32, random: &mut dyn FnMut() -> u32| -> u32 {
        if flags.no_randomize || range == 0 || v == 0 {
            return v;
        }
        let range = range.min(100);
        let span = u64::from(v) * u64::from(range) / 100;
        if span == 0 {
            return v;
        }
        let cut = u64::from(random()) % (span + 1);
        u32::try_from(u64::from(v) - cut).unwrap_or(v)
    };
    let value = if let Some(v) = req.expires_override {
        v
    } else if let Some(v) = c.expires.or(req.expires_header) {
        randomise(v, cfg.expires_range, random)
    } else {
        randomise(cfg.default_expires, cfg.default_expires_range, random)
    };
    if value == 0 {
        return Ok(0);
    }
    if value < cfg.min_expires {
        if cfg.min_expires_mode {
            return Err(RegisterError::IntervalTooBrief {
                min_expires: cfg.min_expires,
            });
        }
        return Ok(cfg.min_expires);
    }
    if cfg.max_expires > 0 && value > cfg.max_expires {
        return Ok(cfg.max_expires);
    }
    Ok(value)
}

/// Which existing binding a requested contact refreshes.
fn matches(existing: &Contact, c: &ContactRequest, req: &RegisterRequest, m: Matching) -> bool {
    let e = existing.data();
    match m {
        Matching::Contact => match &c.instance {
            Some(inst) => e.instance == Some(inst.as_str()) && e.reg_id == c.reg_id.unwrap_or(0),
            None => e.uri == c.uri,
        },
        Matching::ContactCallId => e.uri == c.uri && e.call_id == req.call_id,
        Matching::ContactPath => e.uri == c.uri && e.path == req.path.as_deref(),
        Matching::CallId => e.call_id == req.call_id,
    }
}

/// Applies a REGISTER to the bindings of its AOR (`record`, `None` when there are none)
/// at `now`. `random` gives random numbers for `expires_range`; `new_ruid` names new
/// bindings (`uloc-` numbers, see [`Ruid`]). The returned record is what the AOR holds afterwards (expired bindings are
/// left for the timer).
pub fn save(
    record: Option<&Record>,
    req: &RegisterRequest,
    cfg: &RegistrarConfig,
    flags: SaveFlags,
    now: u64,
    random: &mut dyn FnMut() -> u32,
    new_ruid: &mut dyn FnMut() -> Ruid<'static>,
) -> Result<Saved, RegisterError> {
    let mut rec = record.cloned().unwrap_or_default();
    let mut saved = Saved {
        record: Record::new(),
        result: SaveResult::Query,
        inserted: Vec::new(),
        updated: Vec::new(),
        deleted: Vec::new(),
        retransmission: false,
    };
    if req.star {
        if !req.contacts.is_empty() {
            return Err(RegisterError::StarWithOthers);
        }
        if req.expires_header != Some(0) {
            return Err(RegisterError::StarExpiresNotZero);
        }
        saved.deleted = std::mem::take(&mut rec.contacts).into_vec();
        saved.result = SaveResult::Deleted;
        saved.record = rec;
        return Ok(saved);
    }
    if req.contacts.is_empty() {
        saved.record = rec;
        return Ok(saved);
    }
    // Expires of every contact first: a 423 refuses the whole REGISTER.
    let mut wanted = Vec::with_capacity(req.contacts.len());
    for c in &req.contacts {
        wanted.push((c, contact_expires(c, req, cfg, flags, random)?));
    }
    // The CSeq rule, for bindings of the same Call-ID (Kamailio checks each contact).
    for (c, _) in &wanted {
        if let Some(old) = rec
            .contacts
            .iter()
            .find(|e| matches(e, c, req, cfg.matching))
            .map(Contact::data)
        {
            if old.call_id == req.call_id {
                if req.cseq < old.cseq {
                    return Err(RegisterError::InvalidCseq);
                }
                if req.cseq == old.cseq {
                    if now < old.last_modified + u64::from(cfg.cseq_delay) {
                        // A retransmission: nothing changes, the bindings are listed.
                        saved.retransmission = true;
                        saved.result = SaveResult::Updated;
                        saved.record = rec;
                        return Ok(saved);
                    }
                    return Err(RegisterError::InvalidCseq);
                }
            }
        }
    }
    // max_contacts: valid bindings afterwards.
    if cfg.max_contacts > 0 {
        let mut after = if flags.single_contact {
            0
        } else {
            rec.valid_count(now)
        };
        for (c, exp) in &wanted {
            let known = !flags.single_contact
                && rec
                    .contacts
                    .iter()
                    .any(|e| e.is_valid(now) && matches(e, c, req, cfg.matching));
            match (known, *exp > 0) {
                (false, true) => after += 1,
                (true, false) => after = after.saturating_sub(1),
                _ => {}
            }
        }
        if after > cfg.max_contacts as usize {
            return Err(RegisterError::TooManyContacts);
        }
    }
    if flags.single_contact {
        // Only this REGISTER's contacts stay.
        let keep = std::mem::take(&mut rec.contacts);
        for old in keep {
            let refreshed = wanted
                .iter()
                .any(|(c, exp)| *exp > 0 && matches(&old, c, req, cfg.matching));
            if refreshed {
                rec.contacts.push(old);
            } else {
                saved.deleted.push(old);
                saved.result = SaveResult::Deleted;
            }
        }
    }
    for (c, exp) in wanted {
        let q = c.q.unwrap_or(cfg.default_q);
        let existing = rec
            .contacts
            .iter()
            .position(|e| matches(e, c, req, cfg.matching));
        // What a REGISTER sets, on a new binding or over an existing one.
        let fresh = |old: ContactData<'_>| -> Contact {
            Contact::new(&ContactData {
                aor: &req.aor,
                uri: &c.uri,
                expires: now + u64::from(exp),
                q,
                call_id: &req.call_id,
                cseq: req.cseq,
                cflags: req.cflags,
                user_agent: &req.user_agent,
                received: req.received.as_deref(),
                path: req.path.as_deref(),
                socket: req.socket.as_deref(),
                methods: c.methods.unwrap_or(old.methods),
                instance: c.instance.as_deref(),
                reg_id: c.reg_id.unwrap_or(0),
                last_modified: now,
                tcpconn_id: req.tcpconn_id,
                ..old
            })
        };
        match (existing, exp) {
            (Some(k), 0) => {
                saved.deleted.push(rec.contacts.remove(k));
                saved.result = SaveResult::Deleted;
            }
            (None, 0) => {
                // Removing what is not there: nothing to do (Kamailio answers 200).
                saved.result = SaveResult::Deleted;
            }
            (Some(k), _) => {
                let Some(old) = rec.contacts.get(k) else {
                    continue;
                };
                let updated = fresh(old.data());
                rec.replace(updated.clone());
                saved.updated.push(updated);
                saved.result = SaveResult::Updated;
            }
            (None, _) => {
                // flags 0, methods all unless the contact says.
                let contact = fresh(ContactData::new(&req.aor, &c.uri, new_ruid()));
                rec.insert(contact.clone());
                saved.inserted.push(contact);
                saved.result = SaveResult::Inserted;
            }
        }
    }
    saved.record = rec;
    Ok(saved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(
        call_id: &str,
        cseq: u32,
        contacts: &[(&str, Option<u32>, Option<i32>)],
    ) -> RegisterRequest {
        RegisterRequest {
            aor: "alice".to_owned(),
            call_id: call_id.to_owned(),
            cseq,
            contacts: contacts
                .iter()
                .map(|(u, e, q)| ContactRequest {
                    uri: (*u).to_owned(),
                    expires: *e,
                    q: *q,
                    ..ContactRequest::default()
                })
                .collect(),
            tcpconn_id: -1,
            ..RegisterRequest::default()
        }
    }

    struct Env {
        cfg: RegistrarConfig,
        n: u32,
    }

    impl Env {
        fn new() -> Env {
            Env {
                cfg: RegistrarConfig::default(),
                n: 0,
            }
        }
        fn save(
            &mut self,
            rec: Option<&Record>,
            r: &RegisterRequest,
            now: u64,
        ) -> Result<Saved, RegisterError> {
            self.save_with(rec, r, SaveFlags::default(), now)
        }
        fn save_with(
            &mut self,
            rec: Option<&Record>,
            r: &RegisterRequest,
            flags: SaveFlags,
            now: u64,
        ) -> Result<Saved, RegisterError> {
            let mut n = self.n;
            let out = save(rec, r, &self.cfg, flags, now, &mut || 7, &mut || {
                n += 1;
                Ruid::Uloc {
                    time: 0,
                    pid: 0,
                    counter: u64::from(n),
                }
            });
            self.n = n;
            out
        }
    }

    #[test]
    fn new_aor_then_refresh_then_remove() {
        let mut env = Env::new();
        let s = env
            .save(None, &req("c1", 1, &[("sip:a@1.2.3.4", None, None)]), 1000)
            .unwrap();
        assert_eq!(s.result, SaveResult::Inserted);
        assert_eq!(s.record.contacts.len(), 1);
        assert_eq!(
            s.record.contacts[0].expires(),
            1000 + 3600,
            "default_expires"
        );
        assert_eq!(s.record.aor(), Some("alice"));
        let s2 = env
            .save(
                Some(&s.record),
                &req("c1", 2, &[("sip:a@1.2.3.4", Some(600), None)]),
                1100,
            )
            .unwrap();
        assert_eq!(s2.result, SaveResult::Updated);
        assert_eq!(s2.record.contacts[0].expires(), 1700);
        assert_eq!(
            s2.record.contacts[0].ruid().to_string(),
            "uloc-0-0-1",
            "the binding keeps its ruid"
        );
        let s3 = env
            .save(
                Some(&s2.record),
                &req("c1", 3, &[("sip:a@1.2.3.4", Some(0), None)]),
                1200,
            )
            .unwrap();
        assert_eq!(s3.result, SaveResult::Deleted);
        assert!(s3.record.contacts.is_empty());
        assert_eq!(s3.deleted.len(), 1);
    }

    #[test]
    fn expires_follow_kamailio_order_and_limits() {
        let mut env = Env::new();
        let mut r = req(
            "c1",
            1,
            &[("sip:a@x", Some(10), None), ("sip:b@x", None, None)],
        );
        r.expires_header = Some(30);
        let s = env.save(None, &r, 0).unwrap();
        // ;expires=10 and Expires: 30 are both raised to min_expires (60).
        assert!(s.record.contacts.iter().all(|c| c.expires() == 60));
        env.cfg.max_expires = 100;
        let mut r = req("c2", 1, &[("sip:c@x", Some(5000), None)]);
        r.expires_header = Some(30);
        let s = env.save(None, &r, 0).unwrap();
        assert_eq!(s.record.contacts[0].expires(), 100);
        env.cfg.min_expires_mode = true;
        let err = env
            .save(None, &req("c3", 1, &[("sip:d@x", Some(5), None)]), 0)
            .unwrap_err();
        assert_eq!(err, RegisterError::IntervalTooBrief { min_expires: 60 });
        assert_eq!(err.status(), (423, "Interval Too Brief"));
        let mut r = req("c4", 1, &[("sip:d@x", Some(5), None)]);
        r.expires_override = Some(900);
        // The override is still bounded by max_expires.
        assert_eq!(
            env.save(None, &r, 0).unwrap().record.contacts[0].expires(),
            100
        );
        env.cfg.max_expires = 0;
        assert_eq!(
            env.save(None, &r, 0).unwrap().record.contacts[0].expires(),
            900
        );
    }

    #[test]
    fn expires_range_randomises_down_only() {
        let mut env = Env::new();
        env.cfg.expires_range = 10;
        let r = req("c1", 1, &[("sip:a@x", Some(1000), None)]);
        let mut k = 0u32;
        for _ in 0..50 {
            let s = save(
                None,
                &r,
                &env.cfg,
                SaveFlags::default(),
                0,
                &mut || {
                    k = k.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    k
                },
                &mut || Ruid::Text("r"),
            )
            .unwrap();
            let e = s.record.contacts[0].expires();
            assert!((900..=1000).contains(&e), "{e}");
        }
        let flags = SaveFlags {
            no_randomize: true,
            ..SaveFlags::default()
        };
        let s = env.save_with(None, &r, flags, 0).unwrap();
        assert_eq!(s.record.contacts[0].expires(), 1000);
    }

    #[test]
    fn star_needs_expires_zero_and_alone() {
        let mut env = Env::new();
        let s = env
            .save(
                None,
                &req("c1", 1, &[("sip:a@x", None, None), ("sip:b@x", None, None)]),
                0,
            )
            .unwrap();
        let mut star = req("c2", 1, &[]);
        star.star = true;
        assert_eq!(
            env.save(Some(&s.record), &star, 10).unwrap_err(),
            RegisterError::StarExpiresNotZero
        );
        star.expires_header = Some(0);
        let gone = env.save(Some(&s.record), &star, 10).unwrap();
        assert_eq!(gone.result, SaveResult::Deleted);
        assert_eq!(gone.deleted.len(), 2);
        assert!(gone.record.contacts.is_empty());
        let mut bad = req("c2", 2, &[("sip:a@x", None, None)]);
        bad.star = true;
        bad.expires_header = Some(0);
        assert_eq!(
            env.save(None, &bad, 0).unwrap_err(),
            RegisterError::StarWithOthers
        );
    }

    #[test]
    fn cseq_order_for_the_same_call_id() {
        let mut env = Env::new();
        let s = env
            .save(None, &req("c1", 5, &[("sip:a@x", None, None)]), 1000)
            .unwrap();
        // Lower: refused.
        let err = env
            .save(
                Some(&s.record),
                &req("c1", 4, &[("sip:a@x", None, None)]),
                1001,
            )
            .unwrap_err();
        assert_eq!(err, RegisterError::InvalidCseq);
        assert_eq!(err.status().0, 400);
        // Equal within cseq_delay: a retransmission, nothing changes.
        let r = env
            .save(
                Some(&s.record),
                &req("c1", 5, &[("sip:a@x", Some(100), None)]),
                1010,
            )
            .unwrap();
        assert!(r.retransmission);
        assert_eq!(r.record, s.record);
        // Equal later: refused.
        let err = env
            .save(
                Some(&s.record),
                &req("c1", 5, &[("sip:a@x", None, None)]),
                1030,
            )
            .unwrap_err();
        assert_eq!(err, RegisterError::InvalidCseq);
        // Another Call-ID: no CSeq check.
        let ok = env
            .save(
                Some(&s.record),
                &req("c9", 1, &[("sip:a@x", None, None)]),
                1030,
            )
            .unwrap();
        assert_eq!(ok.result, SaveResult::Updated);
    }

    #[test]
    fn max_contacts_counts_what_would_remain() {
        let mut env = Env::new();
        env.cfg.max_contacts = 2;
        let s = env
            .save(
                None,
                &req("c1", 1, &[("sip:a@x", None, None), ("sip:b@x", None, None)]),
                0,
            )
            .unwrap();
        let err = env
            .save(
                Some(&s.record),
                &req("c2", 1, &[("sip:c@x", None, None)]),
                1,
            )
            .unwrap_err();
        assert_eq!(err, RegisterError::TooManyContacts);
        assert_eq!(err.status(), (503, "Service Unavailable"));
        assert_eq!(err.code(), -2);
        // Replacing one by another in the same REGISTER fits.
        let ok = env
            .save(
                Some(&s.record),
                &req(
                    "c2",
                    1,
                    &[("sip:a@x", Some(0), None), ("sip:c@x", None, None)],
                ),
                1,
            )
            .unwrap();
        assert_eq!(ok.record.valid_count(1), 2);
        // A new AOR with too many at once.
        let err = env
            .save(
                None,
                &req(
                    "c3",
                    1,
                    &[
                        ("sip:a@x", None, None),
                        ("sip:b@x", None, None),
                        ("sip:c@x", None, None),
                    ],
                ),
                0,
            )
            .unwrap_err();
        assert_eq!(err, RegisterError::TooManyContacts);
    }

    #[test]
    fn q_orders_and_instances_match() {
        let mut env = Env::new();
        let s = env
            .save(
                None,
                &req(
                    "c1",
                    1,
                    &[
                        ("sip:low@x", None, Some(100)),
                        ("sip:high@x", None, Some(1000)),
                    ],
                ),
                0,
            )
            .unwrap();
        let order: Vec<&str> = s.record.contacts.iter().map(|c| c.uri()).collect();
        assert_eq!(order, ["sip:high@x", "sip:low@x"]);
        // RFC 5626: the same instance from a new address replaces the binding.
        let mut r = req("c2", 1, &[("sip:phone@10.0.0.1", None, None)]);
        r.contacts[0].instance = Some("\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\"".into());
        r.contacts[0].reg_id = Some(1);
        let s = env.save(None, &r, 0).unwrap();
        let mut r2 = req("c3", 1, &[("sip:phone@10.0.0.2", None, None)]);
        r2.contacts[0].instance = r.contacts[0].instance.clone();
        r2.contacts[0].reg_id = Some(1);
        let s2 = env.save(Some(&s.record), &r2, 5).unwrap();
        assert_eq!(s2.result, SaveResult::Updated);
        assert_eq!(s2.record.contacts.len(), 1);
        assert_eq!(s2.record.contacts[0].uri(), "sip:phone@10.0.0.2");
    }

    #[test]
    fn single_contact_flag_drops_the_others() {
        let mut env = Env::new();
        let s = env
            .save(
                None,
                &req("c1", 1, &[("sip:a@x", None, None), ("sip:b@x", None, None)]),
                0,
            )
            .unwrap();
        let flags = SaveFlags {
            single_contact: true,
            ..SaveFlags::default()
        };
        let s2 = env
            .save_with(
                Some(&s.record),
                &req("c2", 1, &[("sip:c@x", None, None)]),
                flags,
                1,
            )
            .unwrap();
        assert_eq!(s2.record.contacts.len(), 1);
        assert_eq!(s2.deleted.len(), 2);
        assert_eq!(s2.result, SaveResult::Inserted, "the last operation's code");
    }

    #[test]
    fn no_contact_is_a_query() {
        let mut env = Env::new();
        let s = env
            .save(None, &req("c1", 1, &[("sip:a@x", None, None)]), 0)
            .unwrap();
        let q = env.save(Some(&s.record), &req("c2", 1, &[]), 1).unwrap();
        assert_eq!(q.result, SaveResult::Query);
        assert_eq!(q.result.code(), 4);
        assert_eq!(q.record, s.record);
    }
}
