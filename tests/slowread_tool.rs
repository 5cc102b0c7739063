//! The `slowread` tool against the real server in each request mode (declared-never-sent body,
//! sent body over TCP, keep-alive, `Expect: 100-continue`, a slow rate), and against an
//! early-shutdown test double, whose truncations it must report with exit code 1.

mod support;
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::process::Command;
use support::*;

const TWO_MIB: usize = 2 << 20;

/// Runs the tool; returns its exit code, its summary (last stdout line), stdout and stderr.
fn slowread(args: &str) -> (i32, String, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_slowread"))
        .args(args.split_whitespace())
        .output()
        .expect("run slowread");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let summary = stdout.lines().last().unwrap_or_default().to_string();
    (out.status.code().unwrap_or(-1), summary, stdout, stderr)
}

/// Exit 0 and `truncated 0 of K (complete K, failed 0: none)`.
fn assert_all_complete(args: &str, k: usize) -> (String, String) {
    let (code, summary, stdout, stderr) = slowread(args);
    let want = format!("truncated 0 of {k} (complete {k}, failed 0: none) bytes=");
    assert!(
        summary.starts_with(&want) && code == 0,
        "exit {code}, summary {summary:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    (summary, stderr)
}

/// Seconds from the summary's `elapsed=S.SSs`.
fn elapsed(summary: &str) -> f64 {
    let e = summary.rsplit("elapsed=").next().unwrap();
    e.trim_end_matches('s').parse().unwrap()
}

fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[test]
fn declared_body_never_sent_with_close_over_unix() {
    let s = Server::start(&[]);
    let sock = s.sock.to_str().unwrap();
    let args = format!(
        "--unix {sock} --method POST --path /bytes/2M --declare-body 1048576 --close \
         --rcvbuf 16384 --delay 5 --jitter 20 --read-size 16384 --sleep-us 400 -k 16 -c 4"
    );
    let (summary, _) = assert_all_complete(&args, 16);
    assert!(
        summary.contains(&format!("bytes={} ", 16 * TWO_MIB)),
        "{summary}"
    );
    let (code, st) = s.stop();
    assert_eq!(code, 0);
    assert_eq!(st["responses_failed"], 0);
    assert_eq!(st["half_closes"], 16);
    assert!(st["short_sends"] > 0, "short sends must happen: {st:?}");
}

#[test]
fn sent_body_with_close_over_tcp() {
    let s = Server::start_tcp(&["--send-buffer", "65536"]);
    let addr = s.tcp.unwrap().to_string();
    let args = format!(
        "--tcp {addr} --method POST --send-body 1048576 --close --rcvbuf 32768 --delay 10 \
         --sleep-us 400 -k 8 -c 2"
    );
    assert_all_complete(&args, 8);
    let (code, st) = s.stop();
    assert_eq!(code, 0);
    assert_eq!(st["responses_failed"], 0);
    assert!(
        st["linger_bytes"] > 0,
        "the upload was drained after the half-close: {st:?}"
    );
    assert!(st["short_sends"] > 0, "short sends must happen: {st:?}");
}

#[test]
fn keep_alive_several_requests_per_connection() {
    let s = Server::start(&[]);
    let sock = s.sock.to_str().unwrap();
    // A small body (below --discard-max) is discarded after each response: connections stay.
    let args = format!(
        "--unix {sock} --method POST --path /bytes/512K --send-body 65536 --per-conn 4 \
         --rcvbuf 16384 --sleep-us 200 -k 12 -c 3 -v"
    );
    let (_, verbose) = assert_all_complete(&args, 12);
    let lines: Vec<&str> = verbose
        .lines()
        .filter(|l| l.starts_with("request "))
        .collect();
    assert_eq!(lines.len(), 12, "{verbose}");
    // Threads take requests from a shared counter, so how many each makes varies; every
    // connection carries up to 4 (sequence numbers .0 to .3).
    let seqs: Vec<usize> = lines
        .iter()
        .map(|l| {
            l.split(':')
                .next()
                .unwrap()
                .rsplit('.')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    let opened = seqs.iter().filter(|q| **q == 0).count();
    assert!((3..=6).contains(&opened), "{verbose}");
    assert!(
        seqs.contains(&3) && seqs.iter().all(|q| *q <= 3),
        "{verbose}"
    );
    let (code, st) = s.stop();
    assert_eq!(code, 0);
    assert_eq!(st["responses_failed"], 0);
    assert_eq!(st["discarded_bytes"], 12 * 65536);
}

#[test]
fn expect_continue() {
    let s = Server::start(&[]);
    let sock = s.sock.to_str().unwrap();
    // /echo reads the body: `100 Continue`, then the body, echoed (keep-alive, 2 per conn).
    let digest = format!("{:016x}", fnv1a((0..300_000).map(pattern_byte)));
    let args = format!(
        "--unix {sock} --method POST --path /echo --send-body 300000 --expect-continue \
         --expect-digest {digest} --per-conn 2 -k 4 -v"
    );
    let (_, verbose) = assert_all_complete(&args, 4);
    assert_eq!(
        verbose.matches("100-continue, status 200").count(),
        4,
        "{verbose}"
    );
    // /bytes does not read it: the final response comes first, the body is never sent and
    // the server closes the connection.
    let args = format!(
        "--unix {sock} --method POST --path /bytes/1M --send-body 65536 --expect-continue \
         --per-conn 3 --rcvbuf 16384 --sleep-us 100 -k 3 -v"
    );
    let (_, verbose) = assert_all_complete(&args, 3);
    assert!(!verbose.contains("100-continue"), "{verbose}");
    assert_eq!(verbose.matches(".0: status 200").count(), 3, "{verbose}");
    let (code, st) = s.stop();
    assert_eq!(code, 0);
    assert_eq!(st["responses_failed"], 0);
}

#[test]
fn slow_rate() {
    let s = Server::start(&[]);
    let sock = s.sock.to_str().unwrap();
    // 1 MiB at 4 MB/s: at least ~0.26 s per response.
    let args = format!(
        "--unix {sock} --path /bytes/1M --rate 4000000 --read-size 8192 --rcvbuf 16384 -k 2 \
         -c 2"
    );
    let (summary, _) = assert_all_complete(&args, 2);
    assert!(elapsed(&summary) >= 0.2, "{summary}");
    let (code, st) = s.stop();
    assert_eq!((code, st["responses_failed"]), (0, 0));
}

/// What hyper ≤ 1.10 did, for `n` connections in turn: write what the socket takes at once,
/// then `shutdown(SHUT_WR)` with the rest of the body still in its own buffer, and close.
fn early_shutdown_double(path: &std::path::Path, n: usize) -> std::thread::JoinHandle<()> {
    let l = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        let body: Vec<u8> = (0..TWO_MIB).map(pattern_byte).collect();
        let mut out = format!("HTTP/1.1 200 OK\r\nContent-Length: {TWO_MIB}\r\n\r\n").into_bytes();
        out.extend_from_slice(&body);
        for _ in 0..n {
            let (mut c, _) = l.accept().unwrap();
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                c.read_exact(&mut b).unwrap();
                head.push(b[0]);
            }
            c.set_nonblocking(true).unwrap();
            let mut sent = 0;
            while sent < out.len() {
                match c.write(&out[sent..]) {
                    Ok(n) => sent += n,
                    Err(_) => break, // WouldBlock: "the rest is still buffered"
                }
            }
            assert!(
                sent < out.len(),
                "the double should not send everything at once"
            );
            c.shutdown(std::net::Shutdown::Write).unwrap();
        }
    })
}

#[test]
fn reports_the_truncation_of_an_early_shutdown_double() {
    let dir = tempfile::Builder::new()
        .prefix("lb")
        .tempdir_in("/tmp")
        .unwrap();
    let path = dir.path().join("double.sock");
    let h = early_shutdown_double(&path, 3);
    let p = path.display();
    let args = format!(
        "--unix {p} --method POST --declare-body 1048576 --close \
         --rcvbuf 16384 --delay 100 --timeout 10 -k 3 -v"
    );
    let (code, summary, _, stderr) = slowread(&args);
    h.join().unwrap();
    assert_eq!(code, 1, "{summary}\n{stderr}");
    assert!(
        summary.starts_with("truncated 3 of 3 (complete 0, failed 3: "),
        "{summary}\n{stderr}"
    );
    assert_eq!(
        stderr.matches("FAIL eof-in-body: got ").count(),
        3,
        "{stderr}"
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        "--unix /nonexistent --declare-body 1 --send-body 1",
        "--unix /nonexistent -c 5000",
        "--unix /nonexistent -k 100001",
        "--unix /nonexistent --close --per-conn 2",
        "--unix /nonexistent --rate 0",
        "--path /bytes/1",
    ] {
        let (code, ..) = slowread(args);
        assert_eq!(code, 2, "{args:?}");
    }
}
