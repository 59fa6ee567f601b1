//! The bindings of one address-of-record.

/// q of a contact that gave none (Kamailio's `Q_UNSPECIFIED`, shown as -1).
pub const UNSPECIFIED_Q: i32 = -1;

/// One binding: a contact address registered for an AOR, with what usrloc keeps of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// The Contact URI.
    pub uri: String,
    /// When it expires (UNIX seconds); 0: never (a permanent contact, `ul.add` with 0).
    pub expires: u64,
    /// q in thousandths, [`UNSPECIFIED_Q`] when none was given.
    pub q: i32,
    pub call_id: String,
    pub cseq: u32,
    /// usrloc flags, and branch flags (`cflags`) restored by lookup().
    pub flags: u32,
    pub cflags: u32,
    pub user_agent: String,
    /// Where the REGISTER really came from (`received`), when the registrar kept it.
    pub received: Option<String>,
    /// The Path header values (RFC 3327), comma-separated, when kept.
    pub path: Option<String>,
    /// The socket it registered through (`udp:1.2.3.4:5060`).
    pub socket: Option<String>,
    /// Methods it accepts (bit set; all bits when unknown).
    pub methods: u32,
    /// Unique id of the binding.
    pub ruid: String,
    /// `+sip.instance` (RFC 5626), without its quotes (`<urn:uuid:...>`).
    pub instance: Option<String>,
    pub reg_id: u32,
    /// When it last changed (UNIX seconds).
    pub last_modified: u64,
    /// The TCP connection it came over, -1 for none.
    pub tcpconn_id: i64,
}

impl Contact {
    /// Valid at `now`: not expired, or permanent (Kamailio's `VALID_CONTACT`). An expired
    /// contact not yet purged is invisible to lookups, replies and counts.
    pub fn is_valid(&self, now: u64) -> bool {
        self.expires == 0 || self.expires > now
    }

    /// Seconds left at `now` (0 when expired or permanent).
    pub fn remaining(&self, now: u64) -> u64 {
        self.expires.saturating_sub(now)
    }

    /// The Contact value of a 200 to a REGISTER: `<uri>;expires=N[;q=..][;received=".."]
    /// [;+sip.instance=..][;reg-id=N]`.
    pub fn reply_value(&self, now: u64) -> String {
        let mut v = format!("<{}>;expires={}", self.uri, self.remaining(now));
        if self.q != UNSPECIFIED_Q {
            v.push_str(";q=");
            v.push_str(&q_text(self.q));
        }
        if let Some(r) = &self.received {
            v.push_str(&format!(";received=\"{r}\""));
        }
        if let Some(i) = &self.instance {
            v.push_str(&format!(";+sip.instance=\"{i}\""));
            if self.reg_id > 0 {
                v.push_str(&format!(";reg-id={}", self.reg_id));
            }
        }
        v
    }
}

/// q in thousandths as written in a Contact (`1`, `0.5`, `0.25`).
pub fn q_text(q: i32) -> String {
    let q = q.clamp(0, 1000);
    let int = q / 1000;
    let frac = format!("{:03}", q % 1000);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        int.to_string()
    } else {
        format!("{int}.{frac}")
    }
}

/// The bindings of one AOR, in lookup order: q descending (unspecified last), equal q in
/// the order they were added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub aor: String,
    pub contacts: Vec<Contact>,
}

impl Record {
    pub fn new(aor: impl Into<String>) -> Record {
        Record {
            aor: aor.into(),
            contacts: Vec::new(),
        }
    }

    /// The valid contacts at `now`, in lookup order.
    pub fn valid(&self, now: u64) -> impl Iterator<Item = &Contact> + '_ {
        self.contacts.iter().filter(move |c| c.is_valid(now))
    }

    /// How many are valid at `now`.
    pub fn valid_count(&self, now: u64) -> usize {
        self.valid(now).count()
    }

    /// Adds a contact at its place by q (after those of the same q).
    pub fn insert(&mut self, contact: Contact) {
        let at = self
            .contacts
            .iter()
            .position(|c| c.q < contact.q)
            .unwrap_or(self.contacts.len());
        self.contacts.insert(at, contact);
    }

    /// Replaces the contact with `ruid`, moving it if its q changed.
    pub fn replace(&mut self, contact: Contact) {
        match self.contacts.iter().position(|c| c.ruid == contact.ruid) {
            Some(k) if self.contacts.get(k).is_some_and(|c| c.q == contact.q) => {
                if let Some(slot) = self.contacts.get_mut(k) {
                    *slot = contact;
                }
            }
            Some(k) => {
                self.contacts.remove(k);
                self.insert(contact);
            }
            None => self.insert(contact),
        }
    }

    /// Removes and gives the contact with `ruid`.
    pub fn remove(&mut self, ruid: &str) -> Option<Contact> {
        let k = self.contacts.iter().position(|c| c.ruid == ruid)?;
        Some(self.contacts.remove(k))
    }

    /// Removes and gives the contacts no longer valid at `now` (the usrloc timer).
    pub fn expire(&mut self, now: u64) -> Vec<Contact> {
        // The usual case on a sweep: nothing expired, nothing moves.
        if self.contacts.iter().all(|c| c.is_valid(now)) {
            return Vec::new();
        }
        let (gone, kept): (Vec<Contact>, Vec<Contact>) = std::mem::take(&mut self.contacts)
            .into_iter()
            .partition(|c| !c.is_valid(now));
        self.contacts = kept;
        gone
    }

    /// The Contact header value of a 200: every valid binding (empty when none).
    pub fn reply_contacts(&self, now: u64) -> String {
        self.valid(now)
            .map(|c| c.reply_value(now))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The AOR of a URI's user and host, as usrloc keys it: the user (unescaped), with
/// `use_domain` `user@host` (host without `realm_prefix`); lower-cased unless
/// `case_sensitive` (then only the host is).
pub fn aor_of(
    user: &str,
    host: &str,
    use_domain: bool,
    case_sensitive: bool,
    realm_prefix: &str,
) -> String {
    let user = unescape(user);
    let user = if case_sensitive {
        user
    } else {
        user.to_lowercase()
    };
    if !use_domain {
        return user;
    }
    let host = host.to_lowercase();
    let host = if !realm_prefix.is_empty() {
        host.strip_prefix(&realm_prefix.to_lowercase())
            .map(str::to_owned)
            .unwrap_or(host)
    } else {
        host
    };
    format!("{user}@{host}")
}

/// `%XX` escapes decoded (RFC 3261 §19.1.2); a bad escape is kept as written.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut k = 0;
    while let Some(&c) = b.get(k) {
        if c == b'%' {
            let hex = b
                .get(k + 1..k + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = hex {
                out.push(v);
                k += 3;
                continue;
            }
        }
        out.push(c);
        k += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn contact(uri: &str, q: i32, ruid: &str) -> Contact {
        Contact {
            uri: uri.to_owned(),
            expires: 1000,
            q,
            call_id: "c".to_owned(),
            cseq: 1,
            flags: 0,
            cflags: 0,
            user_agent: String::new(),
            received: None,
            path: None,
            socket: None,
            methods: u32::MAX,
            ruid: ruid.to_owned(),
            instance: None,
            reg_id: 0,
            last_modified: 0,
            tcpconn_id: -1,
        }
    }

    #[test]
    fn records_keep_q_order_then_insertion_order() {
        let mut r = Record::new("alice");
        r.insert(contact("sip:a@x", UNSPECIFIED_Q, "1"));
        r.insert(contact("sip:b@x", 500, "2"));
        r.insert(contact("sip:c@x", 1000, "3"));
        r.insert(contact("sip:d@x", 500, "4"));
        let order: Vec<&str> = r.contacts.iter().map(|c| c.ruid.as_str()).collect();
        assert_eq!(order, ["3", "2", "4", "1"]);
        let mut moved = contact("sip:a@x", 1000, "1");
        moved.cseq = 2;
        r.replace(moved);
        let order: Vec<&str> = r.contacts.iter().map(|c| c.ruid.as_str()).collect();
        assert_eq!(order, ["3", "1", "2", "4"]);
    }

    #[test]
    fn expired_contacts_are_invisible_then_purged() {
        let mut r = Record::new("alice");
        let mut a = contact("sip:a@x", UNSPECIFIED_Q, "1");
        a.expires = 100;
        let mut p = contact("sip:p@x", UNSPECIFIED_Q, "2");
        p.expires = 0;
        r.insert(a);
        r.insert(p);
        assert_eq!(r.valid_count(99), 2);
        assert_eq!(r.valid_count(100), 1, "expires == now is expired");
        let gone = r.expire(100);
        assert_eq!(gone.len(), 1);
        assert_eq!(r.contacts.len(), 1, "a permanent contact stays");
    }

    #[test]
    fn reply_contacts_list_every_valid_binding() {
        let mut r = Record::new("alice");
        let mut a = contact("sip:alice@127.0.0.1:5081", UNSPECIFIED_Q, "1");
        a.expires = 700;
        let mut b = contact("sip:alice@127.0.0.1:5082", 500, "2");
        b.expires = 160;
        b.instance = Some("<urn:uuid:1>".to_owned());
        b.reg_id = 1;
        r.insert(a);
        r.insert(b);
        assert_eq!(
            r.reply_contacts(100),
            "<sip:alice@127.0.0.1:5082>;expires=60;q=0.5;+sip.instance=\"<urn:uuid:1>\";reg-id=1, <sip:alice@127.0.0.1:5081>;expires=600"
        );
    }

    #[test]
    fn aors_follow_use_domain_and_case() {
        assert_eq!(aor_of("Alice", "Example.COM", false, false, ""), "alice");
        assert_eq!(
            aor_of("Alice", "Example.COM", true, false, ""),
            "alice@example.com"
        );
        assert_eq!(
            aor_of("Alice", "Example.COM", true, true, ""),
            "Alice@example.com"
        );
        assert_eq!(aor_of("al%69ce", "x", false, false, ""), "alice");
        assert_eq!(
            aor_of("bob", "sip.example.com", true, false, "sip."),
            "bob@example.com"
        );
        assert_eq!(aor_of("a%zz", "x", false, false, ""), "a%zz");
    }

    #[test]
    fn q_is_written_shortest() {
        assert_eq!(q_text(1000), "1");
        assert_eq!(q_text(500), "0.5");
        assert_eq!(q_text(250), "0.25");
        assert_eq!(q_text(0), "0");
    }
}
