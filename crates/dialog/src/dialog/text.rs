//! The packed text of a dialog: every string it keeps of both legs (Call-ID, tags, URIs,
//! contacts, route sets, sockets) in one exactly-sized heap buffer, with 16-bit end offsets
//! and a 4-bit descriptor per field.
//!
//! Why: a dialog lives for the length of a call while it holds a dozen short strings. As
//! separate `String`s each costs 24 bytes of handle plus an allocation (and its allocator
//! header); here the whole set is one allocation and 32 bytes of offsets and descriptors.
//! A value equal to an earlier field's (the Request-URI of an initial INVITE is usually the
//! To URI; both legs are usually reached through one socket; a caller's Contact is often its
//! From URI) is stored once: the later field points at the earlier one.
//!
//! The text changes a few times in a dialog's life (the 2xx brings the callee's tag,
//! contact and route set; a target refresh replaces a contact; the module sets the
//! sockets). Each change builds a new buffer of the new exact size: a few hundred octets
//! copied, against a permanent saving on every dialog.
//!
//! Limit: the own text of all fields together is at most 65,535 octets (the offsets are
//! 16-bit). A change that would pass it is refused ([`Text::build`] returns `None`).

use std::fmt;

/// The fields of the packed text, in buffer order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    CallId = 0,
    FromTag,
    ToTag,
    FromUri,
    ToUri,
    RequestUri,
    CallerContact,
    CalleeContact,
    CallerRoutes,
    CalleeRoutes,
    CallerSocket,
    CalleeSocket,
}

/// How many fields.
pub(crate) const FIELDS: usize = 12;

/// Descriptor value: the field has no value (`None`).
const ABSENT: u64 = 0xF;
/// Descriptor value: the field's value is its own text.
const OWN: u64 = 0;

/// Separates the entries of a route set inside its field. Line ends cannot be in a header
/// value once folding is undone (RFC 3261 §7.3.1: a fold is equivalent to one space), and
/// [`Text::join_routes`] replaces any that a route entry carries with a space.
pub(crate) const ROUTE_SEP: char = '\n';

/// The packed text. See the module page.
#[derive(Clone, PartialEq, Eq, Default)]
pub(crate) struct Text {
    /// The own text of every field, in field order.
    buf: Box<str>,
    /// The end offset in `buf` of each field's own text (equal to the previous end when
    /// the field is absent or points at another).
    ends: [u16; FIELDS],
    /// 4 bits per field: 0 own text, 1..=12 the same value as field `n - 1`, 15 absent.
    desc: u64,
}

impl Text {
    /// Packs the values (indexed by [`Field`]), storing each distinct value once. `None`
    /// when the text would exceed 65,535 octets.
    pub(crate) fn build(values: &[Option<&str>; FIELDS]) -> Option<Text> {
        // Which earlier field with its own text each value repeats, if any.
        let mut alias: [Option<usize>; FIELDS] = [None; FIELDS];
        let mut own_len = 0usize;
        for (i, value) in values.iter().enumerate() {
            let Some(v) = value else { continue };
            let earlier = (0..i).find(|&j| {
                alias.get(j).copied().flatten().is_none()
                    && values.get(j).copied().flatten() == Some(*v)
            });
            match earlier {
                Some(j) => {
                    if let Some(a) = alias.get_mut(i) {
                        *a = Some(j);
                    }
                }
                None => own_len += v.len(),
            }
        }
        if own_len > usize::from(u16::MAX) {
            return None;
        }
        let mut buf = String::with_capacity(own_len);
        let mut ends = [0u16; FIELDS];
        let mut desc = 0u64;
        for (i, value) in values.iter().enumerate() {
            let d = match (value, alias.get(i).copied().flatten()) {
                (None, _) => ABSENT,
                (Some(_), Some(j)) => j as u64 + 1,
                (Some(v), None) => {
                    buf.push_str(v);
                    OWN
                }
            };
            desc |= d << (4 * i);
            // Cannot saturate: the total was checked above.
            if let Some(e) = ends.get_mut(i) {
                *e = u16::try_from(buf.len()).unwrap_or(u16::MAX);
            }
        }
        Some(Text {
            buf: buf.into_boxed_str(),
            ends,
            desc,
        })
    }

    fn descriptor(&self, i: usize) -> u64 {
        (self.desc >> (4 * i)) & 0xF
    }

    fn own(&self, i: usize) -> &str {
        let start = if i == 0 {
            0
        } else {
            self.ends.get(i - 1).copied().unwrap_or(0)
        };
        let end = self.ends.get(i).copied().unwrap_or(0);
        self.buf
            .get(usize::from(start)..usize::from(end))
            .unwrap_or_default()
    }

    /// A field's value.
    pub(crate) fn get(&self, f: Field) -> Option<&str> {
        let i = f as usize;
        match self.descriptor(i) {
            ABSENT => None,
            OWN => Some(self.own(i)),
            n => Some(self.own(n as usize - 1)),
        }
    }

    /// Every field's value.
    pub(crate) fn values(&self) -> [Option<&str>; FIELDS] {
        let mut out = [None; FIELDS];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = match self.descriptor(i) {
                ABSENT => None,
                OWN => Some(self.own(i)),
                n => Some(self.own(n as usize - 1)),
            };
        }
        out
    }

    /// Replaces some fields (a new buffer of the new exact size). False, and nothing
    /// changed, when the text would exceed the limit.
    pub(crate) fn set(&mut self, changes: &[(Field, Option<&str>)]) -> bool {
        let mut values = self.values();
        for (f, v) in changes {
            if let Some(slot) = values.get_mut(*f as usize) {
                *slot = *v;
            }
        }
        if values == self.values() {
            return true;
        }
        match Text::build(&values) {
            Some(t) => {
                *self = t;
                true
            }
            None => false,
        }
    }

    /// The octets of the buffer (what the text costs on the heap, without the allocator's
    /// header).
    pub(crate) fn heap_len(&self) -> usize {
        self.buf.len()
    }

    /// A route set as one field value: the entries joined by [`ROUTE_SEP`]; `None` for no
    /// entries.
    pub(crate) fn join_routes<S: AsRef<str>>(entries: &[S]) -> Option<String> {
        if entries.is_empty() {
            return None;
        }
        let mut out = String::new();
        for (i, e) in entries.iter().enumerate() {
            if i > 0 {
                out.push(ROUTE_SEP);
            }
            out.extend(
                e.as_ref()
                    .chars()
                    .map(|c| if c == '\r' || c == '\n' { ' ' } else { c }),
            );
        }
        Some(out)
    }

    /// The entries of a route-set field.
    pub(crate) fn routes(value: Option<&str>) -> impl Iterator<Item = &str> + Clone {
        value.into_iter().flat_map(|v| v.split(ROUTE_SEP))
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.values().iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sipp_values() -> [Option<&'static str>; FIELDS] {
        [
            Some("1-4242@127.0.0.1"),
            Some("4242SIPpTag001"),
            None,
            Some("sip:sipp@127.0.0.1:5080"),
            Some("sip:service@127.0.0.1:5060"),
            Some("sip:service@127.0.0.1:5060"),
            Some("sip:sipp@127.0.0.1:5080"),
            None,
            None,
            None,
            Some("udp:127.0.0.1:5060"),
            Some("udp:127.0.0.1:5060"),
        ]
    }

    #[test]
    fn values_round_trip_and_repeats_are_stored_once() {
        let v = sipp_values();
        let t = Text::build(&v).unwrap();
        assert_eq!(t.values(), v);
        // Request-URI = To URI, Contact = From URI, callee socket = caller socket.
        let distinct = "1-4242@127.0.0.14242SIPpTag001sip:sipp@127.0.0.1:5080\
sip:service@127.0.0.1:5060udp:127.0.0.1:5060";
        assert_eq!(t.heap_len(), distinct.len());
        assert_eq!(t.get(Field::RequestUri), Some("sip:service@127.0.0.1:5060"));
        assert_eq!(t.get(Field::ToTag), None);
    }

    #[test]
    fn absent_and_empty_are_different() {
        let mut v = sipp_values();
        v[Field::CalleeContact as usize] = Some("");
        let t = Text::build(&v).unwrap();
        assert_eq!(t.get(Field::CalleeContact), Some(""));
        assert_eq!(t.get(Field::ToTag), None);
    }

    #[test]
    fn set_rebuilds_to_the_exact_size() {
        let mut t = Text::build(&sipp_values()).unwrap();
        let before = t.heap_len();
        assert!(t.set(&[
            (Field::ToTag, Some("4242SIPpTag011")),
            (
                Field::CalleeContact,
                Some("sip:127.0.0.1:5070;transport=UDP")
            ),
        ]));
        assert_eq!(t.get(Field::ToTag), Some("4242SIPpTag011"));
        assert_eq!(t.heap_len(), before + 14 + 32);
        assert_eq!(t.buf.len(), t.heap_len());
        // The field others pointed at changes: they keep their value.
        assert!(t.set(&[(Field::ToUri, Some("sip:other@example.com"))]));
        assert_eq!(t.get(Field::RequestUri), Some("sip:service@127.0.0.1:5060"));
        assert_eq!(t.get(Field::ToUri), Some("sip:other@example.com"));
        assert!(t.set(&[(Field::CallerSocket, None)]));
        assert_eq!(t.get(Field::CalleeSocket), Some("udp:127.0.0.1:5060"));
        assert_eq!(t.get(Field::CallerSocket), None);
    }

    #[test]
    fn too_much_text_is_refused_and_nothing_changes() {
        let mut t = Text::build(&sipp_values()).unwrap();
        let big = "x".repeat(70_000);
        let before = t.clone();
        assert!(!t.set(&[(Field::CallerRoutes, Some(&big))]));
        assert_eq!(t, before);
        let mut v = sipp_values();
        v[Field::CallerRoutes as usize] = Some(&big);
        assert!(Text::build(&v).is_none());
    }

    #[test]
    fn route_sets_split_back_into_entries() {
        let joined = Text::join_routes(&["<sip:a;lr>", "<sip:b;lr>\r\n ;x=1"]).unwrap();
        let got: Vec<&str> = Text::routes(Some(&joined)).collect();
        assert_eq!(got, vec!["<sip:a;lr>", "<sip:b;lr>   ;x=1"]);
        assert_eq!(Text::join_routes::<&str>(&[]), None);
        assert_eq!(Text::routes(None).count(), 0);
    }
}
