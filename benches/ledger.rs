//! The write ledger over the send-completion patterns bufprobe measured (README, "What the
//! kernel does with your bytes"): head + body pushed, then `prepare` / `complete` until drained.
//!
//! - `1k_whole`: a 1 KiB response taken in one send (keep-alive small responses);
//! - `2m_tcp_whole`: 2 MiB taken in one completion (TCP loopback, 4 MiB of buffer);
//! - `2m_unix_slow`: 2 MiB in ~178 KiB completions (AF_UNIX, default buffer, slow reader);
//! - `2m_sndbuf16k`: 2 MiB in ~32 KiB completions (AF_UNIX, `--send-buffer 16384`).
//!
//! `cargo bench --bench ledger` (add `-- --quick` for a short run).

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lastbyte::io::ledger::{Ledger, Sent, MAX_IOVECS};
use std::hint::black_box;

const HEAD: usize = 140;

/// Drains a ledger of `head` + `body`, each send taking at most `per_send` bytes; returns the
/// number of sends.
fn drain(head: &Bytes, body: &Bytes, per_send: usize) -> u64 {
    let mut l = Ledger::new();
    l.push(head.clone());
    l.push(body.clone());
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; MAX_IOVECS];
    loop {
        let n = l.prepare(&mut iov);
        let offered: usize = iov[..n].iter().map(|v| v.iov_len).sum();
        match l.complete(black_box(offered.min(per_send))) {
            Ok(Sent::More) => {}
            Ok(Sent::Drained(_)) => return l.sends(),
            Err(e) => panic!("ledger: {e:?}"),
        }
    }
}

fn benches(c: &mut Criterion) {
    let head = Bytes::from(vec![b'h'; HEAD]);
    let mut g = c.benchmark_group("ledger");
    for (name, body_len, per_send) in [
        ("1k_whole", 1024, usize::MAX),
        ("2m_tcp_whole", 2 << 20, usize::MAX),
        ("2m_unix_slow", 2 << 20, 178 * 1024),
        ("2m_sndbuf16k", 2 << 20, 32 * 1024),
    ] {
        let body = Bytes::from(vec![7u8; body_len]);
        // Per send completion accounted: the ledger never touches the bytes themselves.
        g.throughput(Throughput::Elements(drain(&head, &body, per_send)));
        g.bench_function(name, |b| b.iter(|| drain(&head, &body, per_send)));
    }
    g.finish();
}

criterion_group!(ledger, benches);
criterion_main!(ledger);
