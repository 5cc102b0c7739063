//! Seeded random-input properties of the sans-IO HTTP/1.1 framer (the same properties the
//! `fuzz/` targets check, in the normal suite and deterministic):
//!
//! - `parse::parse_head` never panics, and the whole buffer, the buffer fed one byte at a time,
//!   and the buffer split in two at every byte (passing `scanned` on) give the same outcome;
//! - `body::BodyReader::chunked` never panics, consumes no more than it is given, decodes no more
//!   than its limit, gives the same data / consumption / error whole, byte by byte and split at
//!   every byte, and an accepted body's data encoded again as chunks decodes to the same bytes;
//! - `multipart::split` never panics, every part's data is a slice of the body in order, and
//!   bodies built here from known parts split back into exactly those parts.
//!
//! Inputs: the real binding captures in `tests/fixtures/wire/`, random mutations of them, and
//! generated requests / bodies. A failing check prints the input that broke it.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::Path;

use bytes::Bytes;
use lastbyte::http::body::{BodyError, BodyReader};
use lastbyte::http::multipart::{self, MAX_PARTS};
use lastbyte::http::parse::{parse_head, BodyFraming, HeadError, HeadStatus, Method};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const SEED: u64 = 0x1a57_b47e_f4a3_0001;
/// The server's default `--max-head`.
const MAX_HEAD: usize = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// Inputs

struct Capture {
    name: String,
    raw: Vec<u8>,
    body: Vec<u8>,
    json: serde_json::Value,
}

fn captures() -> Vec<Capture> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wire");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "raw").then(|| p.file_stem().unwrap().to_string_lossy().into())
        })
        .collect();
    names.sort();
    assert!(names.len() >= 20, "expected the wire captures in {dir:?}");
    names
        .into_iter()
        .map(|name| {
            let read = |ext: &str| std::fs::read(dir.join(format!("{name}.{ext}"))).unwrap();
            let json = serde_json::from_slice(&read("json")).unwrap();
            Capture {
                raw: read("raw"),
                body: read("body"),
                json,
                name,
            }
        })
        .collect()
}

/// Head length of a capture (the captures are well-formed).
fn head_len(raw: &[u8]) -> usize {
    match parse_head(raw, 0, MAX_HEAD) {
        Ok(HeadStatus::Complete(h)) => h.head_len,
        other => panic!("capture head: {other:?}"),
    }
}

/// Runs `f`; if it panics, prints `input` (escaped) first so the case can be reproduced.
fn on<T>(what: &str, input: &[u8], f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(p) => {
            eprintln!(
                "{what}: failing input ({} bytes): b\"{}\"",
                input.len(),
                input.escape_ascii()
            );
            resume_unwind(p)
        }
    }
}

const INTERESTING: &[u8] = b"\r\n\r\n \t:;,=\"-0019afAFxX\0\x7f\x80\xff/?%";

/// A few random edits of `src`, biased towards the bytes that frame things.
fn mutate(rng: &mut StdRng, src: &[u8], hot: &[usize]) -> Vec<u8> {
    let mut v = src.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let len = v.len();
        let at = if !hot.is_empty() && rng.random_bool(0.7) {
            let h = hot[rng.random_range(0..hot.len())];
            (h + rng.random_range(0..6)).saturating_sub(3).min(len)
        } else {
            rng.random_range(0..=len)
        };
        let byte = if rng.random_bool(0.6) {
            INTERESTING[rng.random_range(0..INTERESTING.len())]
        } else {
            rng.random()
        };
        match rng.random_range(0..8) {
            0 | 1 if at < len => v[at] = byte,
            2 => v.insert(at, byte),
            3 if at < len => {
                let n = rng.random_range(1..=8).min(len - at);
                v.drain(at..at + n);
            }
            4 => v.truncate(at),
            5 if at < len => {
                let n = rng.random_range(1..=16).min(len - at);
                let copy = v[at..at + n].to_vec();
                let to = rng.random_range(0..=len);
                v.splice(to..to, copy);
            }
            6 => {
                let s: &[u8] =
                    [&b"\r\n"[..], b"\n", b"\r", b"\r\n\r\n", b"\n\n"][rng.random_range(0..5)];
                v.splice(at..at, s.iter().copied());
            }
            _ if at < len && v[at].is_ascii_hexdigit() => {
                v[at] = b"0123456789abcdefABCDEF"[rng.random_range(0..22)]
            }
            _ => v.insert(at, byte),
        }
    }
    v
}

/// Offsets just after each `\n` in `buf` (line starts: where framing lives in heads).
fn line_starts(buf: &[u8]) -> Vec<usize> {
    let mut v = vec![0];
    v.extend(memchr::memchr_iter(b'\n', buf).map(|i| i + 1));
    v
}

// ---------------------------------------------------------------------------------------------
// Heads

#[derive(Debug, PartialEq)]
enum HeadOutcome {
    Partial,
    /// `Debug` of the `RequestHead` (it has no `PartialEq`).
    Complete(String),
    Err(HeadError),
}

fn outcome(buf: &[u8], max_head: usize, r: Result<HeadStatus, HeadError>) -> HeadOutcome {
    match r {
        Ok(HeadStatus::Partial { scanned }) => {
            assert!(scanned <= buf.len(), "scanned {scanned} > {}", buf.len());
            HeadOutcome::Partial
        }
        Ok(HeadStatus::Complete(h)) => {
            assert!(h.head_len > 0 && h.head_len <= buf.len().min(max_head));
            assert_eq!(buf[h.head_len - 1], b'\n', "head does not end a line");
            HeadOutcome::Complete(format!("{h:?}"))
        }
        Err(e) => HeadOutcome::Err(e),
    }
}

/// Parses `buf` whole, byte by byte, and split in two at every byte; all must agree.
fn check_head(buf: &[u8], max_head: usize) -> HeadOutcome {
    on("parse_head", buf, || {
        let whole = outcome(buf, max_head, parse_head(buf, 0, max_head));
        // One byte at a time, as a slow client sends it.
        let mut scanned = 0;
        let mut drip = HeadOutcome::Partial;
        for n in 1..=buf.len() {
            match parse_head(&buf[..n], scanned, max_head) {
                Ok(HeadStatus::Partial { scanned: s }) => scanned = s,
                r => {
                    drip = outcome(&buf[..n], max_head, r);
                    break;
                }
            }
        }
        assert_eq!(whole, drip, "whole vs one byte at a time");
        // Two reads, split at every byte.
        for k in 0..buf.len() {
            let split = match parse_head(&buf[..k], 0, max_head) {
                Ok(HeadStatus::Partial { scanned }) => {
                    outcome(buf, max_head, parse_head(buf, scanned, max_head))
                }
                r => outcome(&buf[..k], max_head, r),
            };
            assert_eq!(whole, split, "whole vs split at {k}");
        }
        whole
    })
}

#[test]
fn heads_of_captures_whole_drip_and_split_agree() {
    for c in captures() {
        let n = head_len(&c.raw);
        // The head with the start of its body after it, and the whole request.
        let with_body = &c.raw[..(n + 64).min(c.raw.len())];
        let HeadOutcome::Complete(h) = check_head(with_body, MAX_HEAD) else {
            panic!("{}: head not complete", c.name)
        };
        assert!(h.contains("body: Chunked"), "{}: {h}", c.name);
        assert!(
            matches!(check_head(&c.raw[..n - 1], MAX_HEAD), HeadOutcome::Partial),
            "{}",
            c.name
        );
    }
}

#[test]
fn mutated_capture_heads_agree() {
    let mut rng = StdRng::seed_from_u64(SEED);
    let caps = captures();
    let mut seen = [0usize; 3];
    for i in 0..1500 {
        let c = &caps[i % caps.len()];
        let n = head_len(&c.raw);
        let src = &c.raw[..(n + 16).min(c.raw.len())];
        let m = mutate(&mut rng, src, &line_starts(&src[..n]));
        // Mostly the server's limit; sometimes one the head may cross.
        let max_head = [MAX_HEAD, MAX_HEAD, MAX_HEAD, 1024, 200, 64][rng.random_range(0..6)];
        match check_head(&m, max_head) {
            HeadOutcome::Partial => seen[0] += 1,
            HeadOutcome::Complete(_) => seen[1] += 1,
            HeadOutcome::Err(_) => seen[2] += 1,
        }
    }
    // The mutations must reach all three outcomes for the test to mean anything.
    assert!(
        seen.iter().all(|&n| n > 50),
        "partial/complete/error: {seen:?}"
    );
}

/// Generated well-formed requests: agreement, and the fields come out as written.
#[test]
fn generated_heads_parse_as_written() {
    let mut rng = StdRng::seed_from_u64(SEED + 1);
    let methods = [
        ("GET", Method::Get),
        ("HEAD", Method::Head),
        ("POST", Method::Post),
        ("PUT", Method::Put),
        ("DELETE", Method::Delete),
        ("OPTIONS", Method::Options),
        ("PATCH", Method::Patch),
        ("PROPFIND", Method::Other),
    ];
    let pchars = b"abcXYZ019-._~!$&'()*+,;=:@%/";
    for _ in 0..400 {
        let (mtext, method) = methods[rng.random_range(0..methods.len())];
        let mut path = String::from("/");
        for _ in 0..rng.random_range(0..40) {
            path.push(pchars[rng.random_range(0..pchars.len())] as char);
        }
        let query = rng.random_bool(0.3).then(|| "x=1&y=%20".to_string());
        let target = match (&query, rng.random_bool(0.2)) {
            (Some(q), false) => format!("{path}?{q}"),
            (Some(q), true) => format!("http://h.example{path}?{q}"),
            (None, false) => path.clone(),
            (None, true) => format!("http://h.example{path}"),
        };
        let minor = rng.random_range(0..2u8);
        let mut lines = vec![format!("{mtext} {target} HTTP/1.{minor}")];
        let mut fields = Vec::new();
        if minor == 1 || rng.random_bool(0.5) {
            fields.push("Host: h.example".to_string());
        }
        let framing = match rng.random_range(0..3) {
            0 => BodyFraming::None,
            1 => {
                let n = rng.random_range(0..1_000_000u64);
                fields.push(format!("Content-Length: {n}"));
                if n == 0 {
                    BodyFraming::None
                } else {
                    BodyFraming::Length(n)
                }
            }
            _ => {
                fields.push("transfer-encoding:  chunked ".to_string());
                BodyFraming::Chunked
            }
        };
        let close = rng.random_bool(0.3);
        let keep = rng.random_bool(0.3);
        match (close, keep) {
            (true, true) => fields.push("Connection: keep-alive, close".to_string()),
            (true, false) => fields.push("Connection: close".to_string()),
            (false, true) => fields.push("connection: Keep-Alive".to_string()),
            (false, false) => {}
        }
        let expect = framing != BodyFraming::None && rng.random_bool(0.3);
        if expect {
            fields.push("Expect: 100-continue".to_string());
        }
        let ct = rng
            .random_bool(0.5)
            .then_some("multipart/form-data; boundary=xyz");
        if let Some(ct) = ct {
            fields.push(format!("Content-Type: {ct}"));
        }
        for i in 0..rng.random_range(0..6) {
            fields.push(format!("X-Extra-{i}: v{i} \t value"));
        }
        // Header order does not matter.
        for _ in 0..fields.len() {
            let (a, b) = (
                rng.random_range(0..fields.len()),
                rng.random_range(0..fields.len()),
            );
            fields.swap(a, b);
        }
        lines.extend(fields);
        let mut req = lines.join("\r\n").into_bytes();
        req.extend_from_slice(b"\r\n\r\n");
        let len = req.len();
        req.extend_from_slice(b"BODY BYTES");

        let HeadOutcome::Complete(_) = check_head(&req, MAX_HEAD) else {
            panic!("{}", String::from_utf8_lossy(&req));
        };
        let Ok(HeadStatus::Complete(h)) = parse_head(&req, 0, MAX_HEAD) else {
            unreachable!()
        };
        let ctx = String::from_utf8_lossy(&req);
        assert_eq!(h.method, method, "{ctx}");
        assert_eq!(h.path, path, "{ctx}");
        assert_eq!(h.query, query, "{ctx}");
        assert_eq!(h.minor_version, minor, "{ctx}");
        assert_eq!(h.body, framing, "{ctx}");
        assert_eq!(h.expect_continue, expect, "{ctx}");
        assert_eq!(h.content_type.as_deref(), ct, "{ctx}");
        // HTTP/1.0 with Transfer-Encoding always closes (RFC 9112 §6.1).
        let te_10 = minor == 0 && framing == BodyFraming::Chunked;
        assert_eq!(
            h.keep_alive,
            !close && !te_10 && (minor == 1 || keep),
            "{ctx}"
        );
        assert_eq!(h.head_len, len, "{ctx}");

        // The same request with bare LF line ends, and with random damage: agreement only.
        let lf: Vec<u8> = req[..len].iter().copied().filter(|&b| b != b'\r').collect();
        assert!(matches!(
            check_head(&lf, MAX_HEAD),
            HeadOutcome::Complete(_)
        ));
        let m = mutate(&mut rng, &req[..len], &line_starts(&req[..len]));
        check_head(&m, MAX_HEAD);
    }
}

/// Random bytes and random text lines: only agreement and no panic.
#[test]
fn random_heads_agree() {
    let mut rng = StdRng::seed_from_u64(SEED + 2);
    let alphabet = b"GETPOST /HTTP1.0\r\n\r\n:; \t,Host:a\x00\x80";
    for _ in 0..800 {
        let len = rng.random_range(0..120);
        let buf: Vec<u8> = if rng.random_bool(0.5) {
            (0..len).map(|_| rng.random()).collect()
        } else {
            (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect()
        };
        check_head(&buf, [MAX_HEAD, 32][rng.random_range(0..2)]);
    }
}

/// Request lines around the server's request-line limit (16 KiB) and a missing line end, under
/// head limits below, at and above it: the outcome must not depend on how the bytes arrive.
#[test]
fn long_request_lines_agree() {
    for max_head in [1024, 16 * 1024, MAX_HEAD] {
        for len in [1000, 16 * 1024 - 1, 16 * 1024 + 1, 20_000] {
            let mut req =
                format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(len)).into_bytes();
            check_head(&req, max_head);
            req.retain(|&b| b != b'\n');
            check_head(&req, max_head);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Chunked bodies

#[derive(Debug, PartialEq)]
struct Decoded {
    out: Vec<u8>,
    consumed: usize,
    done: bool,
    err: Option<BodyError>,
}

/// Feeds `input` in consecutive pieces ending at each of `cuts`, then at the end.
fn decode(input: &[u8], limit: u64, cuts: impl IntoIterator<Item = usize>) -> Decoded {
    let mut r = BodyReader::chunked(limit);
    let mut out = Vec::with_capacity(input.len());
    let mut consumed = 0;
    let mut done = false;
    let mut err = None;
    for end in cuts.into_iter().chain([input.len()]) {
        let piece = &input[consumed..end.max(consumed)];
        match r.feed(piece, Some(&mut out)) {
            Ok(f) => {
                assert!(f.consumed <= piece.len(), "consumed more than given");
                assert!(f.done || f.consumed == piece.len(), "stopped early");
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
    assert_eq!(r.received(), out.len() as u64);
    assert!(r.received() <= limit, "decoded past the limit");
    Decoded {
        out,
        consumed,
        done,
        err,
    }
}

/// Chunked encoding of `data` in chunks of the given sizes (cycled; each ≥ 1).
fn encode(data: &[u8], sizes: &[usize], upper: bool) -> Vec<u8> {
    let mut v = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].clamp(1, rest.len());
        i += 1;
        let line = if upper {
            format!("{n:X}\r\n")
        } else {
            format!("{n:x}\r\n")
        };
        v.extend_from_slice(line.as_bytes());
        v.extend_from_slice(&rest[..n]);
        v.extend_from_slice(b"\r\n");
        rest = &rest[n..];
    }
    v.extend_from_slice(b"0\r\n\r\n");
    v
}

/// Decodes whole, byte by byte and split in two at every byte (or at `samples` random points
/// when given); all must agree. An accepted body re-encodes to the same bytes.
fn check_chunked(rng: &mut StdRng, input: &[u8], limit: u64, samples: Option<usize>) -> Decoded {
    on("chunked", input, || {
        let whole = decode(input, limit, []);
        let drip = decode(input, limit, 1..input.len());
        assert_eq!(whole, drip, "whole vs one byte at a time");
        let points: Vec<usize> = match samples {
            None => (0..=input.len()).collect(),
            Some(n) => (0..n).map(|_| rng.random_range(0..=input.len())).collect(),
        };
        for k in points {
            assert_eq!(whole, decode(input, limit, [k]), "whole vs split at {k}");
        }
        if whole.done {
            assert_eq!(whole.err, None);
            let sizes: Vec<usize> = (0..rng.random_range(1..4))
                .map(|_| rng.random_range(1..=whole.out.len().max(1)))
                .collect();
            let again = encode(&whole.out, &sizes, rng.random_bool(0.5));
            let re = decode(&again, limit, []);
            assert!(re.done && re.err.is_none(), "re-encoding rejected: {re:?}");
            assert_eq!(re.consumed, again.len());
            assert_eq!(re.out, whole.out, "re-encoding decodes differently");
        }
        whole
    })
}

/// Offsets of the chunk-size lines and data CRLFs of a valid chunked body.
fn chunk_framing(body: &[u8]) -> Vec<usize> {
    let mut hot = Vec::new();
    let mut pos = 0;
    while let Some(nl) = body[pos..].iter().position(|&b| b == b'\n') {
        let line = &body[pos..pos + nl];
        hot.extend(pos..=pos + nl);
        let digits = line.split(|&b| b == b';' || b == b'\r').next().unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(digits).unwrap(), 16).unwrap();
        pos += nl + 1;
        if size == 0 {
            hot.extend(pos..body.len());
            break;
        }
        pos += size;
        hot.extend([pos, pos + 1]);
        pos += 2;
    }
    hot
}

#[test]
fn chunked_captures_decode_to_their_bodies() {
    let mut rng = StdRng::seed_from_u64(SEED + 3);
    for c in captures() {
        let chunked = &c.raw[head_len(&c.raw)..];
        let mut input = chunked.to_vec();
        input.extend_from_slice(b"POST /next HTTP/1.1\r\n");
        let d = check_chunked(&mut rng, &input, 1 << 20, None);
        assert_eq!(d.err, None, "{}", c.name);
        assert!(d.done, "{}", c.name);
        assert_eq!(d.consumed, chunked.len(), "{}", c.name);
        assert_eq!(d.out, c.body, "{}", c.name);
        // A limit one byte short of the body is refused as too large.
        let short = decode(chunked, c.body.len() as u64 - 1, []);
        assert_eq!(short.err, Some(BodyError::TooLarge), "{}", c.name);
    }
}

#[test]
fn mutated_chunked_captures_agree() {
    let mut rng = StdRng::seed_from_u64(SEED + 4);
    let caps = captures();
    let mut seen = [0usize; 3];
    for i in 0..300 {
        let c = &caps[i % caps.len()];
        let chunked = &c.raw[head_len(&c.raw)..];
        let m = mutate(&mut rng, chunked, &chunk_framing(chunked));
        let limit = [1 << 20, 1 << 20, c.body.len() as u64, 4096][rng.random_range(0..4)];
        // Every split point for some; a random sample for the rest, to keep the suite quick.
        let samples = (i % 10 != 0).then_some(64);
        let d = check_chunked(&mut rng, &m, limit, samples);
        seen[match (d.done, d.err) {
            (true, _) => 0,
            (false, None) => 1,
            (false, Some(_)) => 2,
        }] += 1;
    }
    assert!(seen.iter().all(|&n| n > 10), "done/partial/error: {seen:?}");
}

/// Generated bodies (random chunking, hex case, leading zeros, extensions, trailers): they
/// decode to the data put in, stop exactly at their end, and honour the limit.
#[test]
fn generated_chunked_bodies_decode_and_mutants_agree() {
    let mut rng = StdRng::seed_from_u64(SEED + 5);
    for _ in 0..1500 {
        let data: Vec<u8> = (0..rng.random_range(0..300))
            .map(|_| rng.random())
            .collect();
        let mut body = Vec::new();
        let mut rest = &data[..];
        let size_line = |rng: &mut StdRng, n: usize| {
            let zeros = "0".repeat(rng.random_range(0..3));
            let hex = if rng.random_bool(0.5) {
                format!("{zeros}{n:x}")
            } else {
                format!("{zeros}{n:X}")
            };
            let ext = match rng.random_range(0..4) {
                0 => ";a=b",
                1 => ";name=\"quoted value\"; x",
                2 => "; \t",
                _ => "",
            };
            format!("{hex}{ext}\r\n")
        };
        while !rest.is_empty() {
            let n = rng.random_range(1..=rest.len());
            body.extend_from_slice(size_line(&mut rng, n).as_bytes());
            body.extend_from_slice(&rest[..n]);
            body.extend_from_slice(b"\r\n");
            rest = &rest[n..];
        }
        body.extend_from_slice(size_line(&mut rng, 0).as_bytes());
        for i in 0..rng.random_range(0..3) {
            body.extend_from_slice(format!("X-Trailer-{i}: v\t{i}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        let end = body.len();
        body.extend_from_slice(b"GET / HTTP/1.1\r\n");

        let limit = match rng.random_range(0..3) {
            0 => u64::MAX,
            1 => data.len() as u64,
            _ => rng.random_range(0..=data.len() as u64),
        };
        let d = check_chunked(&mut rng, &body, limit, Some(32));
        if data.len() as u64 <= limit {
            assert!(d.done && d.err.is_none(), "{d:?}");
            assert_eq!(d.out, data);
            assert_eq!(d.consumed, end);
        } else {
            assert_eq!(d.err, Some(BodyError::TooLarge));
        }

        let m = mutate(&mut rng, &body[..end], &chunk_framing(&body[..end]));
        check_chunked(&mut rng, &m, u64::MAX, None);
    }
}

#[test]
fn random_chunked_bytes_agree() {
    let mut rng = StdRng::seed_from_u64(SEED + 6);
    let alphabet = b"0123456789abcdefABCDEF;= \t\r\n\r\nxX-";
    for _ in 0..1500 {
        let len = rng.random_range(0..64);
        let buf: Vec<u8> = if rng.random_bool(0.3) {
            (0..len).map(|_| rng.random()).collect()
        } else {
            (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect()
        };
        let limit = [u64::MAX, 16][rng.random_range(0..2)];
        check_chunked(&mut rng, &buf, limit, None);
    }
}

// ---------------------------------------------------------------------------------------------
// Multipart

/// `split` on `body`: no panic; when accepted, every part's data is a slice of the body, in
/// order, each followed by the delimiter.
fn check_split(body: &Bytes, boundary: &str) -> Option<Vec<multipart::Part>> {
    on(&format!("split (boundary {boundary:?})"), body, || {
        let parts = multipart::split(body, boundary).ok()?;
        assert!(parts.len() <= MAX_PARTS);
        let inner = [&b"\r\n--"[..], boundary.as_bytes()].concat();
        let base = body.as_ptr() as usize;
        let mut prev_end = 0;
        for p in &parts {
            let start = (p.data.as_ptr() as usize).wrapping_sub(base);
            assert!(
                start <= body.len() && p.data.len() <= body.len() - start,
                "part data is not a slice of the body"
            );
            assert!(start >= prev_end, "parts overlap or go backwards");
            let end = start + p.data.len();
            assert!(
                body[end..].starts_with(&inner),
                "data not followed by delimiter"
            );
            prev_end = end + inner.len();
        }
        Some(parts)
    })
}

#[test]
fn multipart_captures_split_into_their_parts() {
    for c in captures() {
        let head = match parse_head(&c.raw, 0, MAX_HEAD) {
            Ok(HeadStatus::Complete(h)) => h,
            other => panic!("{other:?}"),
        };
        let b = multipart::boundary(head.content_type.as_deref().unwrap()).unwrap();
        assert_eq!(b, c.json["boundary"].as_str().unwrap(), "{}", c.name);
        let body = Bytes::from(c.body.clone());
        let parts = check_split(&body, &b).unwrap_or_else(|| panic!("{}", c.name));
        let want = c.json["parts"].as_array().unwrap();
        assert_eq!(parts.len(), want.len(), "{}", c.name);
        for (p, w) in parts.iter().zip(want) {
            assert_eq!(p.name, w["name"].as_str().unwrap(), "{}", c.name);
            assert_eq!(p.filename.as_deref(), w["filename"].as_str(), "{}", c.name);
            assert_eq!(
                p.data.len() as u64,
                w["size"].as_u64().unwrap(),
                "{}",
                c.name
            );
        }
    }
}

#[test]
fn mutated_multipart_captures_do_not_panic() {
    let mut rng = StdRng::seed_from_u64(SEED + 7);
    let caps = captures();
    let mut accepted = 0;
    for i in 0..3000 {
        let c = &caps[i % caps.len()];
        let b = c.json["boundary"].as_str().unwrap();
        // Mutate around delimiters and part headers.
        let hot: Vec<usize> = line_starts(&c.body)
            .into_iter()
            .filter(|&i| c.body[i..].starts_with(b"--") || c.body[i..].starts_with(b"content-"))
            .collect();
        let m = Bytes::from(mutate(&mut rng, &c.body, &hot));
        accepted += usize::from(check_split(&m, b).is_some());
        check_split(&m, "--");
        check_split(&m, "");
    }
    assert!(
        (100..2900).contains(&accepted),
        "accepted {accepted} of 3000"
    );
}

/// RFC 2046 `bchars` (no trailing space).
const BCHARS: &[u8] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? ";

fn random_boundary(rng: &mut StdRng) -> String {
    match rng.random_range(0..4) {
        0 => format!(
            "--------------------------{:024}",
            rng.random_range(0..u64::MAX)
        ),
        1 => "b".to_string(),
        _ => {
            let n = rng.random_range(1..=70);
            let mut s: String = (0..n)
                .map(|_| BCHARS[rng.random_range(0..BCHARS.len())] as char)
                .collect();
            // No leading (trimmed as a parameter) or trailing (not a bchar) space.
            s = s.trim_matches(' ').to_string();
            if s.is_empty() {
                s.push('x');
            }
            s
        }
    }
}

/// Part data that tempts the splitter: CRLFs, dashes and pieces of the delimiter.
fn tricky_data(rng: &mut StdRng, boundary: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for _ in 0..rng.random_range(0..8) {
        match rng.random_range(0..6) {
            0 => v.extend_from_slice(b"\r\n"),
            1 => v.extend_from_slice(b"\r\n--"),
            2 => {
                v.extend_from_slice(b"--");
                v.extend_from_slice(boundary.as_bytes());
            }
            3 => {
                let cut = rng.random_range(0..boundary.len());
                v.extend_from_slice(b"\r\n--");
                v.extend_from_slice(&boundary.as_bytes()[..cut]);
            }
            4 => v.extend_from_slice(b"\r\n\r\n"),
            _ => v.extend((0..rng.random_range(0..200)).map(|_| rng.random::<u8>())),
        }
    }
    v
}

#[test]
fn generated_multipart_bodies_split_into_their_parts() {
    let mut rng = StdRng::seed_from_u64(SEED + 8);
    for _ in 0..1500 {
        let b = random_boundary(&mut rng);
        let ct = if rng.random_bool(0.5) {
            format!("multipart/form-data; boundary={b}")
        } else {
            format!("Multipart/Form-Data;charset=utf-8; Boundary=\"{b}\"")
        };
        assert_eq!(multipart::boundary(&ct).unwrap(), b, "{ct}");
        let delim = format!("--{b}");
        let inner = format!("\r\n--{b}");

        let mut body = Vec::new();
        if rng.random_bool(0.2) {
            // A preamble, ending in CRLF as RFC 2046 requires, without the delimiter.
            body.extend_from_slice(b"This is a preamble.\r\n");
        }
        let mut want = Vec::new();
        let nparts = rng.random_range(0..6);
        for i in 0..nparts {
            let name = [
                "image",
                "transforms",
                "output_format",
                "draw_image",
                "x y",
                "ü",
            ][rng.random_range(0..6)];
            let filename = rng.random_bool(0.4).then(|| format!("f{i}.png"));
            let data = loop {
                let d = tricky_data(&mut rng, &b);
                // The delimiter must not occur in the data, nor straddle its end.
                let probe = [&d[..], inner.as_bytes()].concat();
                if memchr::memmem::find(&probe, inner.as_bytes()) == Some(d.len()) {
                    break d;
                }
            };
            body.extend_from_slice(delim.as_bytes());
            if rng.random_bool(0.2) {
                body.extend_from_slice(b" \t "); // transport padding
            }
            body.extend_from_slice(b"\r\n");
            let mut fields = Vec::new();
            let disp = match &filename {
                Some(f) if rng.random_bool(0.5) => {
                    format!("Content-Disposition: form-data; filename=\"{f}\"; name=\"{name}\"")
                }
                Some(f) => {
                    format!("content-disposition: form-data; name=\"{name}\"; filename=\"{f}\"")
                }
                None => format!("content-disposition: form-data; name=\"{name}\""),
            };
            fields.push(disp);
            if rng.random_bool(0.3) {
                fields.insert(
                    rng.random_range(0..2),
                    "Content-Type: image/png".to_string(),
                );
            }
            body.extend_from_slice(fields.join("\r\n").as_bytes());
            body.extend_from_slice(b"\r\n\r\n");
            body.extend_from_slice(&data);
            body.extend_from_slice(b"\r\n");
            want.push((name.to_string(), filename, data));
        }
        body.extend_from_slice(delim.as_bytes());
        body.extend_from_slice(b"--");
        if rng.random_bool(0.5) {
            body.extend_from_slice(b"\r\nepilogue");
        }
        let body = Bytes::from(body);
        let parts = check_split(&body, &b)
            .unwrap_or_else(|| panic!("rejected: {:?}", multipart::split(&body, &b)));
        assert_eq!(parts.len(), want.len());
        for (p, (name, filename, data)) in parts.iter().zip(&want) {
            assert_eq!(&p.name, name);
            assert_eq!(&p.filename, filename);
            assert_eq!(&p.data[..], &data[..]);
        }

        // Damaged versions, and the body under the wrong boundary: no panic.
        let m = Bytes::from(mutate(&mut rng, &body, &line_starts(&body)));
        check_split(&m, &b);
        check_split(&body, &random_boundary(&mut rng));
    }
}

#[test]
fn boundary_param_never_panics() {
    let mut rng = StdRng::seed_from_u64(SEED + 9);
    let alphabet = "multipart/form-data;boundary= \"\tü=;,";
    let chars: Vec<char> = alphabet.chars().collect();
    for _ in 0..5000 {
        let s: String = (0..rng.random_range(0..60))
            .map(|_| chars[rng.random_range(0..chars.len())])
            .collect();
        let s = if rng.random_bool(0.5) {
            format!("multipart/form-data; boundary={s}")
        } else {
            s
        };
        if let Ok(b) = on("boundary", s.as_bytes(), || multipart::boundary(&s)) {
            assert!(!b.is_empty() && b.len() <= 70, "{s:?} -> {b:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fuzzer findings

/// Replays the saved fuzzer crash inputs (`tests/fixtures/fuzz/TARGET-crash-N`, in the input
/// layout of `fuzz/fuzz_targets/TARGET.rs`) through the same checks.
#[test]
fn fuzz_crash_fixtures_replay() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(SEED);
    for e in entries {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let data = std::fs::read(&path).unwrap();
        let target = name.split("-crash-").next().unwrap();
        eprintln!("replaying {name}");
        match target {
            "head_parser" if data.len() >= 2 => {
                const MAX_HEADS: [usize; 8] =
                    [64, 256, 1024, 4096, 8192, 16 * 1024, 64 * 1024, 64 * 1024];
                check_head(&data[2..], MAX_HEADS[usize::from(data[0] & 7)]);
            }
            "chunked" if data.len() >= 3 => {
                const LIMITS: [u64; 8] = [0, 1, 16, 255, 4096, 1 << 20, u64::MAX, 1 << 20];
                check_chunked(&mut rng, &data[3..], LIMITS[usize::from(data[0] & 7)], None);
            }
            "multipart" if !data.is_empty() => {
                let n = usize::from(data[0]).min(data.len() - 1);
                let ct = String::from_utf8_lossy(&data[1..1 + n]).into_owned();
                let body = Bytes::copy_from_slice(&data[1 + n..]);
                let chosen = multipart::boundary(&ct).unwrap_or_else(|_| ct.clone());
                check_split(&body, "------------------------fuzzfuzzfuzzfuzz");
                check_split(&body, &chosen);
            }
            _ => panic!("{name}: unknown target or too short"),
        }
    }
}
