//! The write trace (`--trace-writes`) and `--confirm delivered`, against the real server:
//! the trace's arithmetic under a small send buffer (many short sends) over AF_UNIX and TCP,
//! joined to the bytes the client read; the delivered-confirmation wait, its timeout, and a
//! peer that leaves unread. Also the `bufprobe` tool end to end.

mod support;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64()
        .unwrap_or_else(|| panic!("{k} is not a number in {v}"))
}

/// Reads one response in 8 KiB reads with pauses; returns (head + body bytes, body).
fn read_paced(s: &mut impl Read) -> (usize, Vec<u8>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let mut want = usize::MAX;
    while got.len() < want {
        std::thread::sleep(Duration::from_micros(300));
        let n = s.read(&mut buf[..8192.min(want - got.len())]).unwrap();
        assert!(n > 0, "EOF after {} bytes", got.len());
        got.extend_from_slice(&buf[..n]);
        if want == usize::MAX {
            if let Some(i) = find(&got, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&got[..i]).to_ascii_lowercase();
                let len: usize = head
                    .split("content-length: ")
                    .nth(1)
                    .and_then(|r| r.split("\r\n").next())
                    .unwrap()
                    .parse()
                    .unwrap();
                want = i + 4 + len;
            }
        }
    }
    let i = find(&got, b"\r\n\r\n").unwrap();
    (got.len(), got[i + 4..].to_vec())
}

/// Checks every response's send records against its summary and the client's byte counts
/// (in request order), and returns the summaries.
fn check_trace(
    trace: &[Value],
    client: &[(usize, usize)],
    unit: &str,
    min_short: u64,
) -> Vec<Value> {
    let summaries: Vec<&Value> = trace
        .iter()
        .filter(|v| v["type"] == "response" && v["status"] != 100)
        .collect();
    assert_eq!(summaries.len(), client.len(), "one summary per response");
    let mut total_short = 0;
    for (s, (read, content_length)) in summaries.iter().zip(client) {
        let key = (u(s, "conn"), u(s, "req"));
        let sends: Vec<&Value> = trace
            .iter()
            .filter(|v| v["type"] == "send" && (u(v, "conn"), u(v, "req")) == key)
            .collect();
        let total = u(s, "head_bytes") + u(s, "body_bytes");
        let mut offset = 0;
        let mut last_ns = 0;
        let mut short = 0;
        for v in &sends {
            assert_eq!(u(v, "offset"), offset, "offsets are contiguous: {v}");
            let (sub, res) = (u(v, "submitted"), u(v, "result"));
            assert!(res > 0 && res <= sub, "0 < result <= submitted: {v}");
            assert!(
                sub <= total - offset,
                "never more than the unsent tail: {v}"
            );
            assert!(u(v, "ns") >= last_ns, "time goes forward: {v}");
            assert_eq!(v["outq_unit"], unit);
            assert!(v["outq"].is_u64(), "a queue sample after each send: {v}");
            if unit == "tcp_payload_bytes" {
                assert!(
                    u(v, "unsent") <= u(v, "outq"),
                    "unsent is part of outq: {v}"
                );
            }
            short += u64::from(res < sub);
            last_ns = u(v, "ns");
            offset += res;
        }
        assert_eq!(offset, total, "sum of results = head + body: {s}");
        assert_eq!(u(s, "sent"), total);
        assert_eq!(u(s, "sends"), sends.len() as u64);
        assert_eq!(u(s, "short_sends"), short);
        assert_eq!(u(s, "body_bytes"), *content_length as u64);
        assert_eq!(total, *read as u64, "the client read exactly what was sent");
        assert!(u(s, "drained_ns") >= last_ns);
        assert_eq!(s["outcome"], "complete");
        total_short += short;
    }
    assert!(
        total_short >= min_short,
        "a 4 KiB send buffer makes many short sends, saw {total_short}"
    );
    summaries.into_iter().cloned().collect()
}

/// The server with a 4 KiB send buffer, one ring and a write trace (also on TCP with `tcp`).
fn small_buffer_server(tcp: bool) -> (tempfile::TempDir, std::path::PathBuf, Server) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.jsonl");
    let p = path.to_str().unwrap();
    let args = [
        "--send-buffer",
        "4096",
        "--workers",
        "1",
        "--trace-writes",
        p,
    ];
    let s = if tcp {
        Server::start_tcp(&args)
    } else {
        Server::start(&args)
    };
    (dir, path, s)
}

#[test]
fn trace_arithmetic_under_a_small_send_buffer_over_unix() {
    let (_dir, path, s) = small_buffer_server(false);
    let mut c = s.connect();
    let mut seen = Vec::new();
    c.write_all(b"GET /bytes/1M HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let (n, body) = read_paced(&mut c);
    assert_eq!(pattern_mismatch(&body), None);
    seen.push((n, body.len()));
    c.write_all(b"GET /bytes/300K HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (n, body) = read_paced(&mut c);
    seen.push((n, body.len()));
    assert_eq!(c.read(&mut [0u8; 1]).unwrap(), 0, "EOF after close");
    drop(c);
    let (code, stats) = s.stop();
    assert_eq!(code, 0);
    let trace = records(&path);
    let sums = check_trace(&trace, &seen, "unix_kmem_bytes", 50);
    assert_eq!(
        sums[0]["half_close_ns"],
        Value::Null,
        "keep-alive: no half-close"
    );
    assert!(u(&sums[1], "half_close_ns") >= u(&sums[1], "drained_ns"));
    // The trace agrees with the server's own counters.
    let sends = trace.iter().filter(|v| v["type"] == "send").count() as u64;
    assert_eq!(stats["sends"], sends);
}

#[test]
fn trace_arithmetic_under_a_small_send_buffer_over_tcp() {
    let (_dir, path, s) = small_buffer_server(true);
    let mut c = std::net::TcpStream::connect(s.tcp.unwrap()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    // A request with a body the handler does not read, then close: the lingering close
    // discards it after the half-close, and the trace counts it.
    c.write_all(
        b"POST /bytes/512K HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 5000000\r\n\r\n",
    )
    .unwrap();
    let writer = {
        let mut w = c.try_clone().unwrap();
        std::thread::spawn(move || {
            let chunk = vec![7u8; 65536];
            let mut sent = 0;
            while sent < 5_000_000 {
                let n = chunk.len().min(5_000_000 - sent);
                if w.write_all(&chunk[..n]).is_err() {
                    break;
                }
                sent += n;
            }
        })
    };
    let (n, body) = read_paced(&mut c);
    assert_eq!(pattern_mismatch(&body), None);
    assert_eq!(c.read(&mut [0u8; 1]).unwrap(), 0, "EOF after close");
    writer.join().unwrap();
    drop(c);
    assert_eq!(s.stop().0, 0);
    let trace = records(&path);
    let sums = check_trace(&trace, &[(n, body.len())], "tcp_payload_bytes", 5);
    assert!(u(&sums[0], "half_close_ns") >= u(&sums[0], "drained_ns"));
    assert!(
        u(&sums[0], "lingered") > 0,
        "upload bytes were read and discarded after the half-close: {}",
        sums[0]
    );
}

/// One 120 KiB response with `Connection: close` (it fits in the AF_UNIX socket buffers, so
/// the ledger drains at once), read only after `pause`; returns the response's trace summary
/// and the server's counters.
fn confirm_run(extra: &[&str], pause: Duration) -> (Value, std::collections::HashMap<String, u64>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.jsonl");
    let mut args = vec!["--workers", "1", "--trace-writes", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    let s = Server::start(&args);
    let mut c = s.connect();
    c.write_all(b"GET /bytes/120K HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    std::thread::sleep(pause);
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    let body = &got[find(&got, b"\r\n\r\n").unwrap() + 4..];
    assert_eq!(
        body.len(),
        120 << 10,
        "the whole body arrives in every mode"
    );
    assert_eq!(pattern_mismatch(body), None);
    drop(c);
    let (code, stats) = s.stop();
    assert_eq!(code, 0);
    let sum = records(&path)
        .into_iter()
        .find(|v| v["type"] == "response")
        .unwrap();
    assert_eq!(u(&sum, "sends"), 1, "one send took it all: {sum}");
    (sum, stats)
}

#[test]
fn confirm_delivered_waits_until_the_reader_has_read_everything() {
    let pause = Duration::from_millis(400);
    // Default: the half-close follows the drained ledger at once, with the whole response
    // still unread in the client's receive queue.
    let (sum, stats) = confirm_run(&[], pause);
    let gap = u(&sum, "half_close_ns") - u(&sum, "drained_ns");
    assert!(gap < 300_000_000, "queued: no wait ({gap} ns)");
    assert_eq!(sum["confirmed_ns"], Value::Null);
    assert_eq!(stats["confirm_delivered"], 0);
    // Delivered: it waits until the reader took the last byte (AF_UNIX send queue empty).
    let (sum, stats) = confirm_run(&["--confirm", "delivered"], pause);
    let wait = u(&sum, "confirmed_ns") - u(&sum, "drained_ns");
    assert!(
        wait >= 300_000_000,
        "delivered waits for the paused reader ({wait} ns)"
    );
    assert!(u(&sum, "half_close_ns") >= u(&sum, "confirmed_ns"));
    assert_eq!(stats["confirm_delivered"], 1);
    assert_eq!(stats["confirm_timeouts"], 0);
}

#[test]
fn confirm_delivered_is_bounded_by_its_timeout() {
    let (sum, stats) = confirm_run(
        &["--confirm", "delivered", "--confirm-timeout", "0.2"],
        Duration::from_millis(800),
    );
    assert_eq!(stats["confirm_timeouts"], 1, "{stats:?} {sum}");
    assert_eq!(stats["confirm_delivered"], 0);
    assert_eq!(sum["confirmed_ns"], Value::Null);
    let gap = u(&sum, "half_close_ns") - u(&sum, "drained_ns");
    assert!(
        (150_000_000..700_000_000).contains(&gap),
        "half-closed at the timeout ({gap} ns)"
    );
}

#[test]
fn confirm_delivered_counts_a_peer_that_left_unread_as_failed() {
    let s = Server::start(&["--confirm", "delivered", "--confirm-timeout", "10"]);
    let mut c = s.connect();
    // Fits in the socket buffers: the ledger drains at once, then the server waits.
    c.write_all(b"GET /bytes/100K HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    drop(c);
    let started = Instant::now();
    let (code, stats) = s.stop();
    assert_eq!(code, 0);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "not held to the timeout"
    );
    assert_eq!(stats["confirm_failed"], 1, "{stats:?}");
    assert_eq!(stats["confirm_delivered"], 0);
}

#[test]
fn bufprobe_joins_its_samples_to_the_trace_and_the_figures_agree() {
    let out = tempfile::tempdir().unwrap();
    let run = |extra: &str| {
        let o = Command::new(env!("CARGO_BIN_EXE_bufprobe"))
            .args(["--server", env!("CARGO_BIN_EXE_lastbyte")])
            .args(["--out", out.path().to_str().unwrap()])
            .args(extra.split_whitespace())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "bufprobe {extra}: {stdout}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        stdout
    };
    let stdout = run(
        "--name small --size 1M --responses 2 --sndbuf 16384 --rcvbuf 16384 --rate 20000000 \
         --read-size 8192",
    );
    let oks = stdout.lines().filter(|l| l.ends_with(": ok")).count();
    assert_eq!(oks, 2, "{stdout}");
    let csv = std::fs::read_to_string(out.path().join("small.csv")).unwrap();
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().starts_with("t_ms,event,"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let sends: Vec<&Vec<&str>> = rows.iter().filter(|r| r[1] == "send").collect();
    let samples = rows.iter().filter(|r| r[1] == "sample").count();
    assert!(
        sends.len() > 10 && samples > 10,
        "{} sends, {samples} samples",
        sends.len()
    );
    // Independent evidence: the CSV's last sent_total and read_total are both the bytes of
    // two whole responses, as the trace file beside it says.
    let last_sent: u64 = sends.last().unwrap()[5].parse().unwrap();
    let last_read: u64 = rows.iter().rev().find(|r| r[1] == "read").unwrap()[6]
        .parse()
        .unwrap();
    // The trace also holds the probe's 1-byte warm-up request, which the figures leave out.
    let trace = records(&out.path().join("small.trace.jsonl"));
    let total: u64 = trace
        .iter()
        .filter(|v| v["type"] == "response" && u(v, "body_bytes") == 1 << 20)
        .map(|v| u(v, "head_bytes") + u(v, "body_bytes"))
        .sum();
    let responses = trace.iter().filter(|v| v["type"] == "response").count();
    assert_eq!(responses, 3, "the warm-up and two 1 MiB responses");
    assert_eq!(last_sent, total);
    assert_eq!(last_read, total);
    for ext in ["png", "svg"] {
        let p = out.path().join(format!("small.{ext}"));
        assert!(
            std::fs::metadata(&p).unwrap().len() > 5000,
            "{}",
            p.display()
        );
    }
    let png = image::open(out.path().join("small.png")).unwrap();
    assert_eq!((png.width(), png.height()), (1100, 960));
    // TCP, close, with the delivered confirmation.
    let stdout = run(
        "--name tcp --transport tcp --size 512K --close --responses 2 --rate 20000000 \
         --server-arg=--confirm --server-arg=delivered",
    );
    assert_eq!(stdout.lines().filter(|l| l.ends_with(": ok")).count(), 2);
    assert!(
        stdout.contains("send queue empty (--confirm delivered)"),
        "{stdout}"
    );
}

#[test]
fn bufprobe_usage_errors_exit_2() {
    for args in ["--size 0", "--size 65M", "--responses 0", "--transport x"] {
        let o = Command::new(env!("CARGO_BIN_EXE_bufprobe"))
            .args(args.split_whitespace())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args}");
    }
}
