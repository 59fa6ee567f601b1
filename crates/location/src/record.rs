//! The bindings of one address-of-record.

use crate::contact::{Contact, Ruid};
use smallvec::SmallVec;

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
/// the order they were added. The AOR is in each binding (a table keys the record by it);
/// the common single binding is held inline, without a vector on the heap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub contacts: SmallVec<[Contact; 1]>,
}

impl Record {
    pub fn new() -> Record {
        Record::default()
    }

    /// The AOR of its bindings (`None` when it has none).
    pub fn aor(&self) -> Option<&str> {
        self.contacts.first().map(Contact::aor)
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
        let q = contact.q();
        let at = self
            .contacts
            .iter()
            .position(|c| c.q() < q)
            .unwrap_or(self.contacts.len());
        self.contacts.insert(at, contact);
    }

    /// Where the contact with `ruid` is.
    pub fn position(&self, ruid: Ruid<'_>) -> Option<usize> {
        self.contacts.iter().position(|c| c.ruid() == ruid)
    }

    /// Replaces the contact with the same ruid, moving it if its q changed.
    pub fn replace(&mut self, contact: Contact) {
        let (ruid, q) = {
            let d = contact.data();
            (d.ruid, d.q)
        };
        match self.position(ruid) {
            Some(k) if self.contacts.get(k).is_some_and(|c| c.q() == q) => {
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
    pub fn remove(&mut self, ruid: Ruid<'_>) -> Option<Contact> {
        let k = self.position(ruid)?;
        Some(self.contacts.remove(k))
    }

    /// Removes and gives the contacts no longer valid at `now` (the usrloc timer).
    pub fn expire(&mut self, now: u64) -> Vec<Contact> {
        // The usual case on a sweep: nothing expired, nothing moves.
        if self.contacts.iter().all(|c| c.is_valid(now)) {
            return Vec::new();
        }
        let mut gone = Vec::new();
        let mut kept = Vec::new();
        for c in std::mem::take(&mut self.contacts) {
            if c.is_valid(now) {
                kept.push(c);
            } else {
                gone.push(c);
            }
        }
        self.contacts = SmallVec::from_vec(kept);
        self.shrink();
        gone
    }

    /// The Contact header value of a 200: every valid binding (empty when none).
    pub fn reply_contacts(&self, now: u64) -> String {
        let mut out = String::new();
        for c in &self.contacts {
            let d = c.data();
            if d.is_valid(now) {
                if !out.is_empty() {
                    out.push_str(", ");
                }
                out.push_str(&d.reply_value(now));
            }
        }
        out
    }

    /// Gives back the vector's spare room (a record is kept long; its bindings change
    /// rarely).
    pub fn shrink(&mut self) {
        self.contacts.shrink_to_fit();
    }

    /// The octets it holds on the heap: the bindings' blocks and, with more than one
    /// binding, the vector of them (allocator headers and rounding not counted).
    pub fn heap_bytes(&self) -> usize {
        let blocks: usize = self.contacts.iter().map(Contact::heap_bytes).sum();
        let vector = if self.contacts.spilled() {
            self.contacts.capacity() * std::mem::size_of::<Contact>()
        } else {
            0
        };
        blocks + vector
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

    use crate::contact::{ContactData, UNSPECIFIED_Q};

    fn data<'a>(uri: &'a str, q: i32, ruid: &'a str) -> ContactData<'a> {
        let mut d = ContactData::new("alice", uri, Ruid::Text(ruid));
        d.expires = 1000;
        d.q = q;
        d.call_id = "c";
        d.cseq = 1;
        d
    }

    fn contact(uri: &str, q: i32, ruid: &str) -> Contact {
        Contact::new(&data(uri, q, ruid))
    }

    fn ruids(r: &Record) -> Vec<String> {
        r.contacts.iter().map(|c| c.ruid().to_string()).collect()
    }

    #[test]
    fn records_keep_q_order_then_insertion_order() {
        let mut r = Record::new();
        r.insert(contact("sip:a@x", UNSPECIFIED_Q, "1"));
        r.insert(contact("sip:b@x", 500, "2"));
        r.insert(contact("sip:c@x", 1000, "3"));
        r.insert(contact("sip:d@x", 500, "4"));
        assert_eq!(ruids(&r), ["3", "2", "4", "1"]);
        assert_eq!(r.aor(), Some("alice"));
        let mut moved = data("sip:a@x", 1000, "1");
        moved.cseq = 2;
        r.replace(Contact::new(&moved));
        assert_eq!(ruids(&r), ["3", "1", "2", "4"]);
        assert_eq!(
            r.remove(Ruid::Text("2")).map(|c| c.uri().to_owned()),
            Some("sip:b@x".to_owned())
        );
        assert_eq!(ruids(&r), ["3", "1", "4"]);
    }

    #[test]
    fn expired_contacts_are_invisible_then_purged() {
        let mut r = Record::new();
        let mut a = data("sip:a@x", UNSPECIFIED_Q, "1");
        a.expires = 100;
        let mut p = data("sip:p@x", UNSPECIFIED_Q, "2");
        p.expires = 0;
        r.insert(Contact::new(&a));
        r.insert(Contact::new(&p));
        assert_eq!(r.valid_count(99), 2);
        assert_eq!(r.valid_count(100), 1, "expires == now is expired");
        let gone = r.expire(100);
        assert_eq!(gone.len(), 1);
        assert_eq!(r.contacts.len(), 1, "a permanent contact stays");
        assert!(!r.contacts.spilled(), "one binding is held inline");
    }

    #[test]
    fn reply_contacts_list_every_valid_binding() {
        let mut r = Record::new();
        let mut a = data("sip:alice@127.0.0.1:5081", UNSPECIFIED_Q, "1");
        a.expires = 700;
        let mut b = data("sip:alice@127.0.0.1:5082", 500, "2");
        b.expires = 160;
        b.instance = Some("<urn:uuid:1>");
        b.reg_id = 1;
        r.insert(Contact::new(&a));
        r.insert(Contact::new(&b));
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
