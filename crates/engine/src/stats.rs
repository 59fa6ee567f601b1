//! Statistics: counters and gauges under Kamailio's `group:name` names, registered by the
//! core and the modules, read by RPC (`stats.get_statistics`) and the Prometheus endpoint.
//!
//! An update is one relaxed atomic operation on a handle the owner keeps (`Arc<Counter>`);
//! the registry is only walked by readers.

use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

/// A monotonic counter (reset only by `stats.reset_statistics`).
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    pub fn reset(&self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

/// A value that goes up and down (active dialogs, registered contacts); never reset.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    #[inline]
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    #[inline]
    pub fn sub(&self, n: i64) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }

    pub fn set(&self, n: i64) {
        self.0.store(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Where a statistic's value comes from.
pub enum StatSource {
    Counter(Arc<Counter>),
    Gauge(Arc<Gauge>),
    /// A gauge `stats.reset_statistics` sets to 0 (the statistics module's variables
    /// without `/no_reset`).
    ResettableGauge(Arc<Gauge>),
    /// Computed when read (memory in use, table sizes); never reset.
    Computed(Box<dyn Fn() -> i64 + Send + Sync>),
}

impl std::fmt::Debug for StatSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatSource::Counter(c) => write!(f, "Counter({})", c.get()),
            StatSource::Gauge(g) | StatSource::ResettableGauge(g) => {
                write!(f, "Gauge({})", g.get())
            }
            StatSource::Computed(_) => f.write_str("Computed"),
        }
    }
}

impl StatSource {
    pub fn value(&self) -> i64 {
        match self {
            StatSource::Counter(c) => i64::try_from(c.get()).unwrap_or(i64::MAX),
            StatSource::Gauge(g) | StatSource::ResettableGauge(g) => g.get(),
            StatSource::Computed(f) => f(),
        }
    }

    /// Whether `stats.reset_statistics` resets it (Kamailio's statistics without
    /// `STAT_NO_RESET`): counters only.
    pub fn resettable(&self) -> bool {
        matches!(
            self,
            StatSource::Counter(_) | StatSource::ResettableGauge(_)
        )
    }
}

/// The registry of every statistic, by group then name.
#[derive(Debug, Default)]
pub struct StatRegistry {
    groups: RwLock<BTreeMap<String, BTreeMap<String, StatSource>>>,
}

/// One statistic as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatValue {
    pub group: String,
    pub name: String,
    pub value: i64,
    /// A counter (Prometheus `counter`), else a gauge.
    pub counter: bool,
}

impl StatRegistry {
    pub fn new() -> Self {
        StatRegistry::default()
    }

    fn insert(&self, group: &str, name: &str, source: StatSource) {
        self.groups
            .write()
            .entry(group.to_owned())
            .or_default()
            .insert(name.to_owned(), source);
    }

    /// A counter `group:name`; the same handle when it exists already.
    pub fn counter(&self, group: &str, name: &str) -> Arc<Counter> {
        if let Some(StatSource::Counter(c)) =
            self.groups.read().get(group).and_then(|g| g.get(name))
        {
            return c.clone();
        }
        let c = Arc::new(Counter::default());
        self.insert(group, name, StatSource::Counter(c.clone()));
        c
    }

    /// A gauge `group:name`; the same handle when it exists already.
    pub fn gauge(&self, group: &str, name: &str) -> Arc<Gauge> {
        if let Some(StatSource::Gauge(g)) = self.groups.read().get(group).and_then(|g| g.get(name))
        {
            return g.clone();
        }
        let g = Arc::new(Gauge::default());
        self.insert(group, name, StatSource::Gauge(g.clone()));
        g
    }

    /// Registers a counter created before the registry existed (a module's, made when its
    /// functions were registered).
    pub fn adopt_counter(&self, group: &str, name: &str, counter: Arc<Counter>) {
        self.insert(group, name, StatSource::Counter(counter));
    }

    /// Registers a gauge made elsewhere; `resettable`: `stats.reset_statistics` sets it to 0.
    pub fn adopt_gauge(&self, group: &str, name: &str, gauge: Arc<Gauge>, resettable: bool) {
        let source = if resettable {
            StatSource::ResettableGauge(gauge)
        } else {
            StatSource::Gauge(gauge)
        };
        self.insert(group, name, source);
    }

    /// A value computed when read.
    pub fn computed(&self, group: &str, name: &str, f: impl Fn() -> i64 + Send + Sync + 'static) {
        self.insert(group, name, StatSource::Computed(Box::new(f)));
    }

    /// Statistics selected as `stats.get_statistics` selects them: `all`, `group:` (every
    /// statistic of a group), `group:name`, or a bare `name` (in any group).
    pub fn select(&self, selector: &str) -> Vec<StatValue> {
        let groups = self.groups.read();
        let mut out = Vec::new();
        let mut push = |group: &str, name: &str, s: &StatSource| {
            out.push(StatValue {
                group: group.to_owned(),
                name: name.to_owned(),
                value: s.value(),
                counter: matches!(s, StatSource::Counter(_)),
            })
        };
        let sel = selector.trim();
        if sel == "all" || sel.is_empty() {
            for (g, stats) in groups.iter() {
                for (n, s) in stats {
                    push(g, n, s);
                }
            }
        } else if let Some((g, n)) = sel.split_once(':') {
            if let Some(stats) = groups.get(g) {
                if n.is_empty() {
                    for (name, s) in stats {
                        push(g, name, s);
                    }
                } else if let Some(s) = stats.get(n) {
                    push(g, n, s);
                }
            }
        } else {
            for (g, stats) in groups.iter() {
                if let Some(s) = stats.get(sel) {
                    push(g, sel, s);
                }
            }
        }
        out
    }

    /// Resets the selected resettable statistics; returns how many were reset.
    pub fn reset(&self, selector: &str) -> usize {
        let wanted = self.select(selector);
        let groups = self.groups.read();
        let mut n = 0;
        for v in wanted {
            match groups.get(&v.group).and_then(|g| g.get(&v.name)) {
                Some(StatSource::Counter(c)) => {
                    c.reset();
                    n += 1;
                }
                Some(StatSource::ResettableGauge(g)) => {
                    g.set(0);
                    n += 1;
                }
                _ => {}
            }
        }
        n
    }

    /// The group names.
    pub fn groups(&self) -> Vec<String> {
        self.groups.read().keys().cloned().collect()
    }
}

/// Kamailio's `core:` statistics, as handles into the registry.
#[derive(Debug)]
pub struct CoreStats {
    pub rcv_requests: Arc<Counter>,
    pub rcv_replies: Arc<Counter>,
    pub fwd_requests: Arc<Counter>,
    pub fwd_replies: Arc<Counter>,
    pub drop_requests: Arc<Counter>,
    pub drop_replies: Arc<Counter>,
    pub err_requests: Arc<Counter>,
    pub err_replies: Arc<Counter>,
    pub bad_uris_rcvd: Arc<Counter>,
    pub unsupported_methods: Arc<Counter>,
    pub bad_msg_hdr: Arc<Counter>,
    /// Sable's own: malformed input answered with the reply its fault implies.
    pub parse_errors_replied: Arc<Counter>,
    /// Sable's own: malformed input dropped without reply.
    pub parse_errors_dropped: Arc<Counter>,
    /// `rcv_requests_<method>` for the methods Kamailio counts one by one.
    pub by_method: [(&'static str, Arc<Counter>); 14],
    /// `rcv_replies_<class>` and the codes Kamailio counts one by one.
    pub by_reply: [(u16, Arc<Counter>); 12],
}

/// Methods with a `core:rcv_requests_<method>` counter.
const METHODS: [&str; 14] = [
    "INVITE",
    "CANCEL",
    "ACK",
    "BYE",
    "INFO",
    "REGISTER",
    "SUBSCRIBE",
    "NOTIFY",
    "MESSAGE",
    "OPTIONS",
    "PRACK",
    "UPDATE",
    "REFER",
    "PUBLISH",
];

/// Reply classes (1..6 as 100..600) and single codes with a `core:rcv_replies_*` counter.
const REPLIES: [u16; 12] = [100, 180, 183, 200, 300, 400, 401, 404, 407, 480, 486, 500];

fn reply_stat_name(code: u16) -> String {
    match code {
        180 | 183 => "rcv_replies_18x".to_owned(),
        c if c % 100 == 0 && c != 500 => format!("rcv_replies_{}xx", c / 100),
        500 => "rcv_replies_5xx".to_owned(),
        c => format!("rcv_replies_{c}"),
    }
}

impl CoreStats {
    pub fn register(reg: &StatRegistry) -> CoreStats {
        let c = |n: &str| reg.counter("core", n);
        let by_method =
            METHODS.map(|m| (m, c(&format!("rcv_requests_{}", m.to_ascii_lowercase()))));
        let by_reply = REPLIES.map(|code| (code, c(&reply_stat_name(code))));
        reg.counter("core", "rcv_replies_6xx");
        CoreStats {
            rcv_requests: c("rcv_requests"),
            rcv_replies: c("rcv_replies"),
            fwd_requests: c("fwd_requests"),
            fwd_replies: c("fwd_replies"),
            drop_requests: c("drop_requests"),
            drop_replies: c("drop_replies"),
            err_requests: c("err_requests"),
            err_replies: c("err_replies"),
            bad_uris_rcvd: c("bad_URIs_rcvd"),
            unsupported_methods: c("unsupported_methods"),
            bad_msg_hdr: c("bad_msg_hdr"),
            parse_errors_replied: c("parse_errors_replied"),
            parse_errors_dropped: c("parse_errors_dropped"),
            by_method,
            by_reply,
        }
    }

    /// Counts a received request by method.
    pub fn count_request(&self, method: &[u8]) {
        self.rcv_requests.inc();
        if let Some((_, c)) = self.by_method.iter().find(|(m, _)| m.as_bytes() == method) {
            c.inc();
        }
    }

    /// Counts a received reply by code: the code's own counter when Kamailio has one,
    /// else its class.
    pub fn count_reply(&self, code: u16, reg_6xx: &Counter) {
        self.rcv_replies.inc();
        let exact = self
            .by_reply
            .iter()
            .find(|(c, _)| *c == code && !matches!(*c, 100 | 200 | 300 | 400 | 500));
        let which = match exact {
            Some((_, ctr)) => Some(ctr),
            None if (180..190).contains(&code) => self
                .by_reply
                .iter()
                .find(|(c, _)| *c == 180)
                .map(|(_, ctr)| ctr),
            None => {
                let class = code / 100 * 100;
                self.by_reply
                    .iter()
                    .find(|(c, _)| *c == class)
                    .map(|(_, ctr)| ctr)
            }
        };
        match which {
            Some(c) => c.inc(),
            None if code >= 600 => reg_6xx.inc(),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_and_reset() {
        let reg = StatRegistry::new();
        let a = reg.counter("core", "rcv_requests");
        let g = reg.gauge("dialog", "active_dialogs");
        reg.computed("shmem", "used_size", || 42);
        a.inc();
        a.inc();
        g.add(3);
        assert_eq!(reg.select("all").len(), 3);
        assert_eq!(reg.select("core:").len(), 1);
        assert_eq!(reg.select("rcv_requests")[0].value, 2);
        assert_eq!(reg.select("dialog:active_dialogs")[0].value, 3);
        assert!(reg.select("nope").is_empty());
        assert_eq!(reg.reset("all"), 1);
        assert_eq!(a.get(), 0);
        assert_eq!(g.get(), 3, "gauges are not reset");
        assert!(Arc::ptr_eq(&a, &reg.counter("core", "rcv_requests")));
    }

    #[test]
    fn core_counts_by_method_and_reply() {
        let reg = StatRegistry::new();
        let s = CoreStats::register(&reg);
        let six = reg.counter("core", "rcv_replies_6xx");
        s.count_request(b"INVITE");
        s.count_request(b"FOO");
        for code in [100, 180, 183, 200, 202, 404, 486, 503, 603] {
            s.count_reply(code, &six);
        }
        let v = |n: &str| reg.select(&format!("core:{n}"))[0].value;
        assert_eq!(v("rcv_requests"), 2);
        assert_eq!(v("rcv_requests_invite"), 1);
        assert_eq!(v("rcv_replies"), 9);
        assert_eq!(v("rcv_replies_1xx"), 1);
        assert_eq!(v("rcv_replies_18x"), 2);
        assert_eq!(v("rcv_replies_2xx"), 2);
        assert_eq!(v("rcv_replies_404"), 1);
        assert_eq!(v("rcv_replies_486"), 1);
        assert_eq!(v("rcv_replies_5xx"), 1);
        assert_eq!(v("rcv_replies_6xx"), 1);
    }
}
