//! Framer throughput on a real binding capture (`tests/fixtures/wire/mixed_overlays.raw`, the
//! largest): request head parsed whole and drip-fed one byte at a time, its chunked body
//! decoded, and the de-chunked multipart body split into parts.
//!
//! `cargo bench --bench parse` (add `-- --quick` for a short run).

use std::hint::black_box;
use std::path::Path;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lastbyte::http::body::BodyReader;
use lastbyte::http::multipart;
use lastbyte::http::parse::{parse_head, HeadStatus, RequestHead};

const CAPTURE: &str = "mixed_overlays";
const MAX_HEAD: usize = 64 * 1024;

fn fixture(ext: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/wire")
        .join(format!("{CAPTURE}.{ext}"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

fn complete(r: Result<HeadStatus, lastbyte::http::parse::HeadError>) -> RequestHead {
    match r {
        Ok(HeadStatus::Complete(h)) => h,
        other => panic!("capture head: {other:?}"),
    }
}

fn benches(c: &mut Criterion) {
    let raw = fixture("raw");
    let head = complete(parse_head(&raw, 0, MAX_HEAD));
    let head_bytes = &raw[..head.head_len];
    let chunked = &raw[head.head_len..];
    let body = Bytes::from(fixture("body"));
    let boundary = multipart::boundary(head.content_type.as_deref().unwrap()).unwrap();

    let mut g = c.benchmark_group("head");
    g.throughput(Throughput::Bytes(head_bytes.len() as u64));
    g.bench_function("whole", |b| {
        b.iter(|| complete(parse_head(black_box(head_bytes), 0, MAX_HEAD)))
    });
    g.bench_function("drip_1_byte", |b| {
        b.iter(|| {
            let buf = black_box(head_bytes);
            let mut scanned = 0;
            for n in 1..buf.len() {
                match parse_head(&buf[..n], scanned, MAX_HEAD) {
                    Ok(HeadStatus::Partial { scanned: s }) => scanned = s,
                    other => panic!("early: {other:?}"),
                }
            }
            complete(parse_head(buf, scanned, MAX_HEAD))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("chunked");
    g.throughput(Throughput::Bytes(chunked.len() as u64));
    let mut out = Vec::with_capacity(body.len());
    g.bench_function("decode", |b| {
        b.iter(|| {
            out.clear();
            let mut r = BodyReader::chunked(1 << 20);
            let fed = r.feed(black_box(chunked), Some(&mut out)).unwrap();
            assert!(fed.done);
            fed.consumed
        })
    });
    g.bench_function("discard", |b| {
        b.iter(|| {
            let mut r = BodyReader::chunked(1 << 20);
            let fed = r.feed(black_box(chunked), None).unwrap();
            assert!(fed.done);
            fed.consumed
        })
    });
    g.finish();

    let mut g = c.benchmark_group("multipart");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("split", |b| {
        b.iter(|| multipart::split(black_box(&body), &boundary).unwrap())
    });
    g.finish();
}

criterion_group!(framer, benches);
criterion_main!(framer);
