//! The chunked decoder on arbitrary bytes: never panics; decoding the input whole and split in
//! two at a fuzzer-chosen point gives the same data, consumption and outcome; it never consumes
//! more than it was given nor decodes more than the limit; decoding into no sink agrees; and an
//! accepted body's data, encoded again as chunks, decodes to the same bytes.
//!
//! Input: `[ctl, split_hi, split_lo, body...]`. `ctl & 7` picks the limit, `ctl >> 3` the chunk
//! size of the re-encoding.
#![no_main]

use lastbyte::http::body::{BodyError, BodyReader};
use libfuzzer_sys::fuzz_target;

const LIMITS: [u64; 8] = [0, 1, 16, 255, 4096, 1 << 20, u64::MAX, 1 << 20];

#[derive(PartialEq)]
struct Decoded {
    /// Decoded data (also what was decoded before an error).
    out: Vec<u8>,
    consumed: usize,
    done: bool,
    err: Option<BodyError>,
    received: u64,
}

/// Feeds `input` in consecutive pieces ending at `cuts` (then at the end).
fn decode(input: &[u8], limit: u64, cuts: &[usize], sink: bool) -> Decoded {
    let mut r = BodyReader::chunked(limit);
    let mut out = Vec::new();
    let mut consumed = 0;
    let mut done = false;
    let mut err = None;
    for &end in cuts.iter().chain(std::iter::once(&input.len())) {
        let piece = &input[consumed..end.max(consumed)];
        match r.feed(piece, sink.then_some(&mut out)) {
            Ok(f) => {
                assert!(f.consumed <= piece.len(), "consumed more than given");
                assert!(
                    f.done || f.consumed == piece.len(),
                    "stopped early, not done"
                );
                assert_eq!(f.done, r.is_done());
                consumed += f.consumed;
                if f.done {
                    done = true;
                    break;
                }
            }
            Err(e) => {
                // An error says nothing of consumption: the connection is done.
                consumed = 0;
                err = Some(e);
                break;
            }
        }
    }
    let received = r.received();
    if sink {
        assert_eq!(received, out.len() as u64, "received vs sink");
    }
    assert!(received <= limit, "decoded {received} > limit {limit}");
    Decoded {
        out,
        consumed,
        done,
        err,
        received,
    }
}

/// Short `Debug`: the data as its length and a few bytes around the first difference matter
/// more than the whole of it.
impl std::fmt::Debug for Decoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tail = &self.out[self.out.len().saturating_sub(16)..];
        write!(
            f,
            "Decoded {{ out: {} bytes ending b\"{}\", consumed: {}, done: {}, err: {:?}, received: {} }}",
            self.out.len(),
            tail.escape_ascii(),
            self.consumed,
            self.done,
            self.err,
            self.received
        )
    }
}

fn encode(data: &[u8], chunk: usize, upper: bool) -> Vec<u8> {
    let mut v = Vec::with_capacity(data.len() + 64);
    for c in data.chunks(chunk) {
        let size = if upper {
            format!("{:X}\r\n", c.len())
        } else {
            format!("{:x}\r\n", c.len())
        };
        v.extend_from_slice(size.as_bytes());
        v.extend_from_slice(c);
        v.extend_from_slice(b"\r\n");
    }
    v.extend_from_slice(b"0\r\n\r\n");
    v
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let limit = LIMITS[(data[0] & 7) as usize];
    let chunk = (data[0] >> 3) as usize + 1;
    let input = &data[3..];
    let split = usize::from(u16::from_be_bytes([data[1], data[2]])) % (input.len() + 1);

    let whole = decode(input, limit, &[], true);
    assert!(whole.consumed <= input.len());
    let halves = decode(input, limit, &[split], true);
    assert_eq!(whole, halves, "whole vs split at {split}");
    let discard = decode(input, limit, &[split], false);
    assert_eq!(
        (whole.consumed, whole.done, whole.err, whole.received),
        (
            discard.consumed,
            discard.done,
            discard.err,
            discard.received
        ),
        "with sink vs without"
    );

    if whole.done {
        assert!(whole.err.is_none());
        let again = encode(&whole.out, chunk, data[0] & 0x80 != 0);
        let re = decode(&again, limit, &[split.min(again.len())], true);
        assert_eq!(re.err, None, "re-encoded body rejected");
        assert!(re.done, "re-encoded body not complete");
        assert_eq!(re.consumed, again.len());
        assert_eq!(re.out, whole.out, "re-encoded body decodes differently");
    }
});
