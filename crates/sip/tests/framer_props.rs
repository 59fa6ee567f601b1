//! Properties of the stream framer: framing does not depend on how the stream is cut into
//! reads, valid traffic comes out frame for frame, and no input makes it panic.

use proptest::prelude::*;
use sable_sip::{Frame, FramerLimits, ParseError, StreamFramer};

/// One unit of generated traffic.
#[derive(Debug, Clone)]
enum Item {
    /// A whole message (header section + body).
    Message(Vec<u8>),
    /// `CRLF CRLF`.
    Ping,
    /// A single `CRLF`; only generated directly before a message, where it is unambiguous.
    Pong,
}

impl Item {
    fn bytes(&self) -> &[u8] {
        match self {
            Item::Message(m) => m,
            Item::Ping => b"\r\n\r\n",
            Item::Pong => b"\r\n",
        }
    }

    fn frame(&self) -> Frame {
        match self {
            Item::Message(m) => Frame::Message(m.clone().into()),
            Item::Ping => Frame::Ping,
            Item::Pong => Frame::Pong,
        }
    }
}

fn start_line() -> impl Strategy<Value = String> {
    prop_oneof![
        ("[A-Z]{3,9}", "[a-z]{1,8}", "[a-z]{1,12}")
            .prop_map(|(m, u, h)| format!("{m} sip:{u}@{h}.example SIP/2.0")),
        (100u16..700, "[A-Za-z ]{0,20}").prop_map(|(c, r)| format!("SIP/2.0 {c} {r}")),
    ]
}

/// A header line (with its CRLF) that is not a Content-Length; values may be folded.
fn other_header() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            Just("Via".to_string()),
            Just("v".to_string()),
            Just("Content-Type".to_string()),
            Just("Content-Length-Extra".to_string()),
            Just("lx".to_string()),
            "[A-Za-z][A-Za-z0-9-]{0,15}".prop_filter("not a Content-Length", |n| {
                !n.eq_ignore_ascii_case("content-length") && !n.eq_ignore_ascii_case("l")
            }),
        ],
        "[ \t]{0,2}",
        prop::collection::vec("[ -~]{0,30}", 1..3),
    )
        .prop_map(|(name, ws, parts)| {
            // Every part after the first is a continuation line (a fold).
            let value = parts.join("\r\n ");
            format!("{name}{ws}: {value}\r\n")
        })
}

/// A Content-Length header (with its CRLF) announcing `len`, in one of its spellings.
fn content_length(len: usize) -> impl Strategy<Value = String> {
    (
        prop_oneof![
            Just("Content-Length"),
            Just("content-length"),
            Just("CONTENT-LENGTH"),
            Just("l"),
            Just("L"),
        ],
        "[ \t]{0,2}",
        prop_oneof![
            Just(""),
            Just(" "),
            Just("\t"),
            Just("\r\n "),
            Just(" \r\n\t ")
        ],
        0usize..3,
        "[ \t]{0,2}",
    )
        .prop_map(move |(name, before_colon, lws, zeros, trailing)| {
            let zeros = "0".repeat(zeros);
            format!("{name}{before_colon}:{lws}{zeros}{len}{trailing}\r\n")
        })
}

fn message() -> impl Strategy<Value = Vec<u8>> {
    (
        start_line(),
        prop::collection::vec(other_header(), 0..6),
        prop::collection::vec(any::<u8>(), 0..300),
        any::<prop::sample::Index>(),
    )
        .prop_flat_map(|(start, headers, body, at)| {
            content_length(body.len()).prop_map(move |cl| {
                let mut headers = headers.clone();
                let at = at.index(headers.len() + 1);
                headers.insert(at, cl);
                let mut m = format!("{start}\r\n{}\r\n", headers.concat()).into_bytes();
                m.extend_from_slice(&body);
                m
            })
        })
}

fn traffic() -> impl Strategy<Value = Vec<Item>> {
    prop::collection::vec(
        prop_oneof![
            4 => message().prop_map(Item::Message),
            2 => Just(Item::Ping),
            1 => Just(Item::Pong),
        ],
        0..12,
    )
    .prop_map(|items| {
        // A lone CRLF is only a pong when a message follows it: elsewhere it could be read
        // together with the next CRLF as a ping.
        let mut kept: Vec<Item> = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let before_message = matches!(items.get(i + 1), Some(Item::Message(_)));
            if matches!(item, Item::Pong) && !before_message {
                continue;
            }
            kept.push(item.clone());
        }
        kept
    })
}

/// Pushes `input` in chunks whose sizes cycle through `sizes`, calling `next_frame` until
/// `Ok(None)` after every push; checks the invariants that hold for any input.
fn run(
    input: &[u8],
    sizes: &[usize],
    limits: FramerLimits,
) -> (Vec<Frame>, Option<ParseError>, usize) {
    let mut f = StreamFramer::new(limits);
    let mut frames = Vec::new();
    let mut pushed = 0usize;
    let mut returned = 0usize;
    let mut rest = input;
    let mut i = 0;
    while !rest.is_empty() {
        let size = sizes
            .get(i % sizes.len().max(1))
            .copied()
            .unwrap_or(1)
            .max(1);
        i += 1;
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        f.push(chunk);
        pushed += chunk.len();
        loop {
            match f.next_frame() {
                Ok(Some(frame)) => {
                    returned += match &frame {
                        Frame::Message(m) => {
                            assert!(!matches!(m.first(), Some(b'\r' | b'\n' | b' ' | b'\t')));
                            assert!(m.windows(4).any(|w| w == b"\r\n\r\n"));
                            assert!(m.len() <= limits.max_header_bytes + limits.max_body_bytes);
                            m.len()
                        }
                        Frame::Ping => 4,
                        Frame::Pong => 2,
                    };
                    frames.push(frame);
                }
                Ok(None) => break,
                Err(e) => {
                    assert!(f.is_failed());
                    assert_eq!(f.next_frame(), Err(e.clone()), "errors are final");
                    return (frames, Some(e), f.buffered());
                }
            }
            assert!(returned + f.buffered() <= pushed);
        }
    }
    (frames, None, f.buffered())
}

/// Bytes that are likely to exercise the framer: fragments of SIP framing mixed with noise.
fn noisy_stream() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            Just(b"\r\n".to_vec()),
            Just(b"\r\n\r\n".to_vec()),
            Just(b"\r".to_vec()),
            Just(b"\n".to_vec()),
            Just(b" ".to_vec()),
            Just(b"\t".to_vec()),
            Just(b"INVITE sip:a@b SIP/2.0\r\n".to_vec()),
            Just(b"Content-Length: ".to_vec()),
            Just(b"l:".to_vec()),
            Just(b"Content-Length:\r\n ".to_vec()),
            Just(b"0".to_vec()),
            Just(b"5".to_vec()),
            Just(b"-".to_vec()),
            Just(b"99999999999999999999999".to_vec()),
            Just(b"X: y\r\n".to_vec()),
            prop::collection::vec(any::<u8>(), 1..16),
        ],
        0..60,
    )
    .prop_map(|parts| parts.concat())
}

fn limits() -> impl Strategy<Value = FramerLimits> {
    prop_oneof![
        Just(FramerLimits::default()),
        (0usize..80, 0usize..40, any::<bool>()).prop_map(|(h, b, a)| FramerLimits {
            max_header_bytes: h,
            max_body_bytes: b,
            accept_no_content_length: a,
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn valid_traffic_comes_out_frame_for_frame_in_any_chunking(
        items in traffic(),
        sizes in prop::collection::vec(1usize..64, 1..16),
    ) {
        let input: Vec<u8> = items.iter().flat_map(|i| i.bytes().to_vec()).collect();
        let expected: Vec<Frame> = items.iter().map(Item::frame).collect();
        let (frames, error, buffered) = run(&input, &sizes, FramerLimits::default());
        prop_assert_eq!(error, None);
        prop_assert_eq!(frames, expected);
        prop_assert_eq!(buffered, 0);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        input in prop::collection::vec(any::<u8>(), 0..2048),
        sizes in prop::collection::vec(1usize..300, 1..8),
        limits in limits(),
    ) {
        run(&input, &sizes, limits);
    }

    #[test]
    fn framing_does_not_depend_on_how_the_stream_is_cut(
        input in noisy_stream(),
        sizes in prop::collection::vec(1usize..40, 1..8),
        limits in limits(),
    ) {
        let whole = run(&input, &[input.len().max(1)], limits);
        let cut = run(&input, &sizes, limits);
        prop_assert_eq!(cut, whole);
    }
}
