//! Fuzzes `StreamFramer`: the input is one TCP stream, pushed in chunks whose sizes derive
//! from its first octets (the whole input is pushed, those octets included, so the seed
//! corpus of plain `.sip` files stays meaningful).
//!
//! Checked for every input, with the default limits and with small ones:
//! - nothing panics;
//! - every `Frame::Message` starts with an octet other than CR or LF, contains CRLF CRLF and
//!   is at most `max_header_bytes + max_body_bytes + 4` octets long;
//! - the octets returned as frames plus those still buffered never exceed those pushed;
//! - an error is final (the next call returns it again);
//! - the frames and the error do not depend on how the stream was cut into reads.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sable_sip::{Frame, FramerLimits, ParseError, StreamFramer};

/// What a run produced: the frames, the error that ended it (if any), the octets left over.
type Outcome = (Vec<Frame>, Option<ParseError>, usize);

fn run(input: &[u8], sizes: &[usize], limits: FramerLimits) -> Outcome {
    let mut framer = StreamFramer::new(limits);
    let mut frames = Vec::new();
    let mut pushed = 0usize;
    let mut returned = 0usize;
    let mut rest = input;
    let mut next_size = sizes.iter().copied().cycle();
    while !rest.is_empty() {
        let size = next_size.next().unwrap_or(rest.len()).clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        framer.push(chunk);
        pushed += chunk.len();
        loop {
            match framer.next_frame() {
                Ok(Some(frame)) => {
                    returned += match &frame {
                        Frame::Message(m) => {
                            assert!(
                                !matches!(m.first(), None | Some(b'\r' | b'\n')),
                                "message starts with CR/LF or is empty"
                            );
                            assert!(
                                m.windows(4).any(|w| w == b"\r\n\r\n"),
                                "message without the end of its header section"
                            );
                            assert!(
                                m.len() <= limits.max_header_bytes + limits.max_body_bytes + 4,
                                "message over the limits"
                            );
                            m.len()
                        }
                        Frame::Ping => 4,
                        Frame::Pong => 2,
                    };
                    frames.push(frame);
                    assert!(
                        returned + framer.buffered() <= pushed,
                        "more octets consumed than pushed"
                    );
                }
                Ok(None) => break,
                Err(e) => {
                    assert!(framer.is_failed());
                    assert_eq!(framer.next_frame(), Err(e.clone()), "errors are final");
                    return (frames, Some(e), framer.buffered());
                }
            }
        }
        assert!(returned + framer.buffered() <= pushed);
    }
    (frames, None, framer.buffered())
}

fuzz_target!(|data: &[u8]| {
    // Chunk sizes 1..=32 from the first four octets; a zero octet means "drip one by one".
    let sizes: Vec<usize> = data
        .iter()
        .take(4)
        .map(|&b| if b == 0 { 1 } else { usize::from(b % 32) + 1 })
        .collect();
    let small = FramerLimits {
        max_header_bytes: 200,
        max_body_bytes: 100,
        accept_no_content_length: data.len() % 2 == 1,
    };
    for limits in [FramerLimits::default(), small] {
        let whole = run(data, &[data.len().max(1)], limits);
        let cut = run(data, &sizes, limits);
        assert_eq!(cut, whole, "framing depends on how the stream is cut");
    }
});
