//! Timers, limits and close paths under hostile or slow clients, over real sockets.

mod support;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::*;

fn read_to_end(c: &mut impl Read) -> (Vec<u8>, Option<std::io::Error>) {
    let mut v = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return (v, None),
            Ok(n) => v.extend_from_slice(&buf[..n]),
            Err(e) => return (v, Some(e)),
        }
    }
}

#[test]
fn slowloris_head_gets_408_at_the_total_deadline() {
    let s = Server::start(&["--header-timeout", "0.4"]);
    let mut c = s.connect();
    let start = Instant::now();
    // One byte every 50 ms: steady progress, but the head never completes in time.
    let line = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut sent = 0;
    c.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while start.elapsed() < Duration::from_secs(5) {
        if sent < line.len() {
            let _ = c.write(&line[sent..sent + 1]).map(|n| sent += n);
        }
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let elapsed = start.elapsed();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(
        elapsed >= Duration::from_millis(400) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    let (_, st) = s.stop();
    assert_eq!(st["header_timeouts"], 1);
}

#[test]
fn idle_keep_alive_connection_is_closed() {
    let s = Server::start(&["--idle-timeout", "0.3"]);
    let mut c = s.connect();
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let start = Instant::now();
    assert_eq!(read_response(&mut c).status, 200);
    let (rest, err) = read_to_end(&mut c);
    assert!(
        rest.is_empty() && err.is_none(),
        "a quiet close, no bytes: {rest:?} {err:?}"
    );
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "{:?}",
        start.elapsed()
    );
    // A connection that never sends anything is closed the same way.
    let mut quiet = s.connect();
    let (rest, _) = read_to_end(&mut quiet);
    assert!(rest.is_empty());
    let (_, st) = s.stop();
    assert_eq!(st["idle_timeouts"], 2);
}

#[test]
fn body_timeout_is_a_progress_timeout() {
    let s = Server::start(&["--body-timeout", "0.4"]);
    // Progress every 150 ms for ~1.2 s: never cut.
    let mut c = s.connect();
    c.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n")
        .unwrap();
    for b in b"abcdefgh" {
        std::thread::sleep(Duration::from_millis(150));
        c.write_all(std::slice::from_ref(b)).unwrap();
    }
    assert_eq!(read_response(&mut c).body, b"abcdefgh");
    // A stalled body: 408, then close.
    let mut c = s.connect();
    c.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\nabc")
        .unwrap();
    let r = read_response(&mut c);
    assert_eq!(r.status, 408);
    assert_eq!(r.header("connection"), Some("close"));
    let (_, st) = s.stop();
    assert_eq!(st["body_timeouts"], 1);
}

#[test]
fn write_stall_aborts_only_a_response_that_makes_no_progress() {
    // Every other timer is far shorter than the slow response below: none of them may cut it.
    let s = Server::start(&[
        "--write-stall-timeout",
        "0.5",
        "--send-buffer",
        "65536",
        "--idle-timeout",
        "0.3",
        "--header-timeout",
        "0.3",
        "--body-timeout",
        "0.3",
    ]);
    // A slow reader that keeps making progress (a read every 200 ms, ~1.6 s in all) is never
    // cut.
    let mut c = s.connect();
    c.write_all(b"GET /bytes/1M HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let slow = Pace {
        read_size: 128 * 1024,
        sleep: Duration::from_millis(200),
    };
    let r = read_response_paced(&mut c, &mut Vec::new(), slow)
        .expect("a progressing reader is never cut");
    assert_eq!(pattern_mismatch(&r.body), None);
    // A reader that reads nothing: aborted after the stall timeout; what it then reads is
    // visibly short (EOF before Content-Length), never a clean-looking short body.
    let mut c = s.connect();
    c.write_all(b"GET /bytes/16M HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let t = read_response_paced(&mut c, &mut Vec::new(), Pace::FAST).expect_err("aborted");
    assert!(t.got < t.expected, "{t:?}");
    // The abort is logged with the bytes confirmed against the bytes owed.
    let log = s.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("write stalled"))
        .unwrap_or_else(|| panic!("no abort line in:\n{log}"));
    assert!(
        line.contains("confirmed=") && line.contains("owed="),
        "{line}"
    );
    let (_, st) = s.stop();
    assert_eq!(st["write_stall_aborts"], 1);
    assert_eq!(st["responses_failed"], 1);
}

#[test]
fn connection_cap_refuses_with_503() {
    let s = Server::start(&["--max-connections", "3"]);
    // Wait (bounded) until the server has closed the readiness probe: only the connection
    // asking is open.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let m = roundtrip(&s, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").text();
        if m.lines().any(|l| l == "lastbyte_connections_open 1") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{m}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Hold three connections.
    let held: Vec<_> = (0..3).map(|_| s.connect()).collect();
    std::thread::sleep(Duration::from_millis(100));
    let mut extra = s.connect();
    let r = read_response(&mut extra);
    assert_eq!(r.status, 503);
    assert_eq!(r.header("connection"), Some("close"));
    drop(held);
    drop(extra);
    // Once the server has seen the closes, a new client is served again.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let r = roundtrip(&s, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503);
        assert!(std::time::Instant::now() < deadline, "still refused");
    }
    let (_, st) = s.stop();
    assert!(st["connections_refused"] >= 1);
}

#[test]
fn tcp_client_still_uploading_reads_the_whole_error_response() {
    let s = Server::start_tcp(&["--max-body", "100000"]);
    let upload = 8 << 20;
    // Every close path with an upload still arriving: refused by size (with and without
    // `Expect`), a framing error, an unsupported coding, and a route that never reads it.
    let cases = [
        (format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {upload}\r\n\r\n"), 413),
        (
            format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {upload}\r\nExpect: 100-continue\r\n\r\n"),
            413,
        ),
        (
            format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {upload}\r\nContent-Length: 1\r\n\r\n"),
            400,
        ),
        (
            "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n".to_string(),
            501,
        ),
        (format!("POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: {upload}\r\n\r\n"), 404),
    ];
    for (head, status) in cases {
        let mut c = TcpStream::connect(s.tcp.unwrap()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        c.write_all(head.as_bytes()).unwrap();
        let mut w = c.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            let chunk = vec![b'x'; 64 * 1024];
            let mut sent = 0;
            while sent < upload {
                match w.write(&chunk) {
                    Ok(n) => sent += n,
                    Err(_) => break,
                }
            }
            sent
        });
        let r = read_response(&mut c);
        assert_eq!(r.status, status, "{head:?}");
        assert!(!r.body.is_empty());
        let (rest, err) = read_to_end(&mut c);
        assert!(
            rest.is_empty() && err.is_none(),
            "{head:?}: clean EOF, no reset: {err:?}"
        );
        writer.join().unwrap();
    }
    let (_, st) = s.stop();
    // Every upload was read to the client's EOF, none cut by the linger bounds (a cut would
    // close with unread bytes: a reset).
    assert!(st["linger_bytes"] >= 4 * upload as u64, "{st:?}");
    assert_eq!(st["linger_cut"], 0);
}

#[test]
fn status_codes_over_the_socket() {
    let s = Server::start(&[]);
    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(64 * 1024));
    let r = roundtrip(&s, long.as_bytes());
    assert_eq!(r.status, 414);
    let r = roundtrip(
        &s,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: tea\r\nContent-Length: 1\r\n\r\nx",
    );
    assert_eq!(r.status, 417);
    let mut many = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
    for i in 0..1000 {
        many.push_str(&format!("X-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(roundtrip(&s, many.as_bytes()).status, 431);
    // Accepted: a 4,000-character query, 4 KiB header values, 50 fields, 64 KiB /echo body.
    let mut ok = format!("POST /echo?{} HTTP/1.1\r\nHost: x\r\n", "q".repeat(4000));
    for i in 0..50 {
        ok.push_str(&format!(
            "X-{i}: {}\r\n",
            if i < 4 { "v".repeat(4096) } else { "v".into() }
        ));
    }
    let body = vec![b'b'; 64 * 1024];
    ok.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut req = ok.into_bytes();
    req.extend_from_slice(&body);
    let r = roundtrip(&s, &req);
    assert_eq!(r.status, 200);
    assert!(r.body == body);
}

#[test]
fn thousand_idle_and_slow_connections_do_not_block_a_new_client() {
    let s = Server::start(&[]);
    // Warm up: the first requests allocate what every later one reuses.
    for _ in 0..3 {
        roundtrip(&s, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    let before = rss_kib(s.pid());
    let mut conns = Vec::new();
    for i in 0..1000 {
        let mut c = s.connect();
        match i % 3 {
            0 => {}                                                    // idle, never sends
            1 => c.write_all(b"GET /healthz HTTP/1.1\r\nHo").unwrap(), // slowloris
            _ => {
                // a keep-alive connection after one request
                c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    .unwrap();
                read_response(&mut c);
            }
        }
        conns.push(c);
    }
    std::thread::sleep(Duration::from_millis(200));
    let after = rss_kib(s.pid());
    let per_conn = (after.saturating_sub(before)) * 1024 / 1000;
    println!("server RSS {before} KiB -> {after} KiB with 1000 idle/slow connections: {per_conn} bytes each");
    let start = Instant::now();
    let r = roundtrip(&s, b"GET /bytes/1K HTTP/1.1\r\nHost: x\r\n\r\n");
    let took = start.elapsed();
    println!("new client served in {took:?}");
    assert_eq!(r.status, 200);
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(per_conn < 32 * 1024, "{per_conn} bytes per idle connection");
    drop(conns);
    let (code, _) = s.stop();
    assert_eq!(code, 0);
}

#[test]
fn request_pipelined_after_close_is_not_served_and_response_arrives_whole_over_tcp() {
    let s = Server::start_tcp(&[]);
    let mut c = TcpStream::connect(s.tcp.unwrap()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // A large response, then a pipelined request (with a body) that must not be served.
    let mut req = b"GET /bytes/8M HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec();
    req.extend_from_slice(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n");
    req.extend(std::iter::repeat_n(b'p', 100_000));
    c.write_all(&req).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let r =
        read_response_paced(&mut c, &mut Vec::new(), Pace::FAST).expect("whole response, no reset");
    assert_eq!(r.body.len(), 8 << 20);
    assert_eq!(pattern_mismatch(&r.body), None);
    let (rest, err) = read_to_end(&mut c);
    assert!(
        rest.is_empty() && err.is_none(),
        "{} extra bytes, {err:?}",
        rest.len()
    );
    drop(c); // EOF ends the server's lingering close
    let (_, st) = s.stop();
    assert_eq!(st["requests"], 1, "the pipelined request was not served");
}

#[test]
fn declared_but_unsent_bodies_reserve_no_memory_up_front() {
    let vm_kib = |pid: i32| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmSize:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    };
    let s = Server::start(&["--max-body", "16777216"]);
    let before = vm_kib(s.pid());
    // 300 clients each declare a 16 MiB upload and send 3 bytes of it.
    let mut conns = Vec::new();
    for _ in 0..300 {
        let mut c = s.connect();
        c.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 16777216\r\n\r\nabc")
            .unwrap();
        conns.push(c);
    }
    // Served meanwhile: the requests above are all read.
    let r = roundtrip(&s, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    std::thread::sleep(Duration::from_millis(200));
    let grown = vm_kib(s.pid()).saturating_sub(before);
    // 300 x 16 MiB would be 4.7 GiB of address space.
    assert!(grown < 512 * 1024, "address space grew by {grown} KiB");
    drop(conns);
}
