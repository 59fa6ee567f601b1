//! The header index of a message with up to 32 header values is built without touching the
//! heap; typed views of the hot headers are parsed in place too.
//!
//! This test binary installs a counting global allocator, so it lives in its own file.

// Test code: a panic is a failed assertion.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use sable_sip::{Edits, HeaderName, Message};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

#[allow(unsafe_code)]
// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let before = ALLOCATIONS.with(Cell::get);
    let r = f();
    (ALLOCATIONS.with(Cell::get) - before, r)
}

const INVITE: &[u8] = include_bytes!("../benches/data/invite.sip");

#[test]
fn indexing_an_invite_allocates_nothing() {
    let (n, headers) = allocations_during(|| {
        let m = Message::parse(INVITE).unwrap();
        m.headers().len()
    });
    assert!(headers > 12);
    assert_eq!(n, 0, "Message::parse allocated {n} times");
}

#[test]
fn thirty_two_header_values_stay_inline() {
    let mut msg = b"OPTIONS sip:a@example.com SIP/2.0\r\n".to_vec();
    for i in 0..32 {
        msg.extend_from_slice(format!("X-H{i}: value {i}\r\n").as_bytes());
    }
    msg.extend_from_slice(b"\r\n");
    let (n, spilled) = allocations_during(|| Message::parse(&msg).unwrap().headers_spilled());
    assert!(!spilled);
    assert_eq!(n, 0);
}

#[test]
fn hot_typed_views_allocate_nothing() {
    let (n, _) = allocations_during(|| {
        let m = Message::parse(INVITE).unwrap();
        let via = m.top_via().unwrap().branch().map(<[u8]>::len);
        let tags = (m.from().unwrap().tag(), m.to().unwrap().tag().is_none());
        let ids = (m.call_id().unwrap().len(), m.cseq().unwrap().number);
        let ruri = m.request_uri().unwrap().as_bytes().len();
        (via, tags.1, ids, ruri)
    });
    assert_eq!(n, 0, "typed views allocated {n} times");
}

#[test]
fn serializing_into_a_reused_buffer_allocates_only_for_inserted_text() {
    let m = Message::parse(INVITE).unwrap();
    let mut out = Vec::with_capacity(4096);
    let mut e = Edits::new();
    let (n, _) = allocations_during(|| {
        let mf = m.header(HeaderName::MaxForwards).unwrap();
        e.replace_value(mf, b"69").unwrap();
        e.serialize(&m, &mut out);
    });
    // One allocation: the owned copy of the replacement text.
    assert!(n <= 1, "{n} allocations");
}
