//! Core statistics, with Kamailio's names (group `core`).

use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonic counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Kamailio's `core:` statistics.
#[derive(Debug, Default)]
pub struct CoreStats {
    pub rcv_requests: Counter,
    pub rcv_replies: Counter,
    pub fwd_requests: Counter,
    pub fwd_replies: Counter,
    pub drop_requests: Counter,
    pub drop_replies: Counter,
    pub err_requests: Counter,
    pub err_replies: Counter,
    pub bad_uris_rcvd: Counter,
    pub unsupported_methods: Counter,
    pub bad_msg_hdr: Counter,
    /// Sable's own: malformed input that got a 400.
    pub parse_errors_replied: Counter,
    /// Sable's own: malformed input dropped without reply.
    pub parse_errors_dropped: Counter,
}

impl CoreStats {
    /// (name, value) pairs with Kamailio's names.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("rcv_requests", self.rcv_requests.get()),
            ("rcv_replies", self.rcv_replies.get()),
            ("fwd_requests", self.fwd_requests.get()),
            ("fwd_replies", self.fwd_replies.get()),
            ("drop_requests", self.drop_requests.get()),
            ("drop_replies", self.drop_replies.get()),
            ("err_requests", self.err_requests.get()),
            ("err_replies", self.err_replies.get()),
            ("bad_URIs_rcvd", self.bad_uris_rcvd.get()),
            ("unsupported_methods", self.unsupported_methods.get()),
            ("bad_msg_hdr", self.bad_msg_hdr.get()),
            ("parse_errors_replied", self.parse_errors_replied.get()),
            ("parse_errors_dropped", self.parse_errors_dropped.get()),
        ]
    }
}
