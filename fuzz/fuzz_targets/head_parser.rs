//! `parse_head` on arbitrary bytes: never panics, and parsing the whole buffer at once agrees
//! with feeding it as a growing buffer (one byte at a time, and in fuzzer-chosen steps, passing
//! the previous `scanned` as `prev_len` as the connection does).
//!
//! Input: `[limit, step_seed, request bytes...]`. `limit` picks `max_head`; `step_seed` seeds the
//! sizes of the steps of the second drip-feed.
#![no_main]

use lastbyte::http::parse::{parse_head, HeadError, HeadStatus};
use libfuzzer_sys::fuzz_target;

const MAX_HEADS: [usize; 8] = [64, 256, 1024, 4096, 8192, 16 * 1024, 64 * 1024, 64 * 1024];

/// A comparable outcome (`RequestHead` has no `PartialEq`: compare its `Debug` text).
#[derive(Debug, PartialEq)]
enum Outcome {
    Partial,
    Complete(String),
    Err(HeadError),
}

fn check_status(buf: &[u8], max_head: usize, r: Result<HeadStatus, HeadError>) -> Outcome {
    match r {
        Ok(HeadStatus::Partial { scanned }) => {
            assert!(scanned <= buf.len(), "scanned {scanned} > {}", buf.len());
            Outcome::Partial
        }
        Ok(HeadStatus::Complete(h)) => {
            assert!(
                h.head_len > 0 && h.head_len <= buf.len(),
                "head_len {}",
                h.head_len
            );
            assert!(
                h.head_len <= max_head,
                "head_len {} > {max_head}",
                h.head_len
            );
            assert_eq!(buf[h.head_len - 1], b'\n', "head does not end a line");
            Outcome::Complete(format!("{h:?}"))
        }
        Err(e) => Outcome::Err(e),
    }
}

/// Feeds `buf` as a growing prefix whose length grows by `step()` bytes each call.
fn drip(buf: &[u8], max_head: usize, mut step: impl FnMut() -> usize) -> Outcome {
    let mut scanned = 0;
    let mut n = 0;
    loop {
        n = (n + step().max(1)).min(buf.len());
        let prefix = &buf[..n];
        match parse_head(prefix, scanned, max_head) {
            Ok(HeadStatus::Partial { scanned: s }) => {
                assert!(s <= n);
                scanned = s;
                if n == buf.len() {
                    return Outcome::Partial;
                }
            }
            r => return check_status(prefix, max_head, r),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let max_head = MAX_HEADS[(data[0] & 7) as usize];
    let mut seed = u32::from(data[1]) | 0x100;
    let buf = &data[2..];

    let whole = check_status(buf, max_head, parse_head(buf, 0, max_head));
    if let Outcome::Complete(_) = &whole {
        // The bytes after the head do not matter.
        let Ok(HeadStatus::Complete(h)) = parse_head(buf, 0, max_head) else {
            unreachable!()
        };
        let head = &buf[..h.head_len];
        assert_eq!(
            check_status(head, max_head, parse_head(head, 0, max_head)),
            whole,
            "head alone"
        );
    }
    if buf.is_empty() {
        return;
    }
    let bytewise = drip(buf, max_head, || 1);
    assert_eq!(whole, bytewise, "whole vs one byte at a time");
    let stepped = drip(buf, max_head, || {
        // xorshift: steps of 1..=64 bytes, chosen by the fuzzer's seed byte.
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        (seed % 64) as usize + 1
    });
    assert_eq!(whole, stepped, "whole vs fuzzer-chosen steps");
});
