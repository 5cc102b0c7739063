//! `multipart::split` on an arbitrary body, with a fixed boundary and a fuzzer-chosen one:
//! never panics; every part's data is a sub-slice of the body, in order, each followed by the
//! delimiter; and the parts it returns, written out again as a plain multipart body, split back
//! into the same parts.
//!
//! Input: `[n, content-type (n bytes), body...]`. The chosen boundary is
//! `multipart::boundary(content-type)` when that accepts it, else the content type itself.
#![no_main]

use bytes::Bytes;
use lastbyte::http::multipart::{boundary, split, Part, MAX_PARTS, MAX_PART_HEAD};
use libfuzzer_sys::fuzz_target;

/// The fixed boundary (the seed corpus has bodies rewritten to use it).
const FIXED: &str = "------------------------fuzzfuzzfuzzfuzz";

fn check(body: &Bytes, b: &str) {
    let Ok(parts) = split(body, b) else {
        return;
    };
    assert!(parts.len() <= MAX_PARTS);
    let base = body.as_ptr() as usize;
    let inner = [&b"\r\n--"[..], b.as_bytes()].concat();
    let mut prev_end = 0;
    for p in &parts {
        let start = (p.data.as_ptr() as usize).wrapping_sub(base);
        assert!(
            start <= body.len() && p.data.len() <= body.len() - start,
            "part data is not inside the body"
        );
        assert_eq!(&body[start..start + p.data.len()], &p.data[..]);
        assert!(start >= prev_end, "parts overlap or go backwards");
        let end = start + p.data.len();
        assert!(
            body[end..].starts_with(&inner),
            "part data not followed by the delimiter"
        );
        prev_end = end + inner.len();
    }
    round_trip(&parts, b);
}

/// Writes `parts` as a minimal body and splits it again.
fn round_trip(parts: &[Part], b: &str) {
    let mut body = Vec::new();
    for p in parts {
        let mut head = format!("content-disposition: form-data; name=\"{}\"", p.name);
        if let Some(f) = &p.filename {
            head.push_str(&format!("; filename=\"{f}\""));
        }
        if head.len() > MAX_PART_HEAD {
            return;
        }
        body.extend_from_slice(format!("--{b}\r\n{head}\r\n\r\n").as_bytes());
        body.extend_from_slice(&p.data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{b}--\r\n").as_bytes());
    let again = split(&Bytes::from(body), b).expect("rewritten body rejected");
    assert_eq!(again.len(), parts.len());
    for (a, p) in again.iter().zip(parts) {
        assert_eq!(a.name, p.name);
        assert_eq!(a.filename, p.filename);
        assert_eq!(a.data, p.data);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n).min(rest.len());
    let ct = String::from_utf8_lossy(&rest[..n]);
    let body = Bytes::copy_from_slice(&rest[n..]);
    let chosen = boundary(&ct).unwrap_or_else(|_| ct.clone().into_owned());
    check(&body, FIXED);
    check(&body, &chosen);
});
