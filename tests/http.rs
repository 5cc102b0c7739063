//! The HTTP/1.1 framer and routes over a real Unix socket: keep-alive, pipelining, chunked
//! bodies, limits and their statuses, and the process lifecycle (socket file, signals).

mod support;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

fn read_all(c: &mut impl Read) -> Vec<u8> {
    let mut v = Vec::new();
    let _ = c.read_to_end(&mut v);
    v
}

#[test]
fn keep_alive_and_pipelining_in_order() {
    let s = Server::start(&[]);
    // Three requests in one write; answers come back whole and in order.
    let (mut c, mut carry) = check_pipelined_in_order(&s);
    // Still open: a fourth request on the same connection.
    c.write_all(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let r = read_response_paced(&mut c, &mut carry, Pace::FAST).unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.header("connection"), None, "404 keeps the connection");
}

#[test]
fn chunked_echo_whole_and_byte_by_byte() {
    let s = Server::start(&[]);
    let body: Vec<u8> = (0..20_000u32).map(|i| (i * 7) as u8).collect();
    let req = chunked_post("/echo", "application/x-test", &body, false);
    let r = roundtrip(&s, &req);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-test"));
    assert!(r.body == body);
    let mut c = s.connect();
    for b in &req {
        c.write_all(std::slice::from_ref(b)).unwrap();
    }
    assert!(read_response(&mut c).body == body);
    // Content-Length body, then a second request on the same connection.
    c.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut carry = Vec::new();
    assert_eq!(
        read_response_paced(&mut c, &mut carry, Pace::FAST)
            .unwrap()
            .body,
        b"hello"
    );
    assert_eq!(
        read_response_paced(&mut c, &mut carry, Pace::FAST)
            .unwrap()
            .status,
        200
    );
}

#[test]
fn http10_and_connection_close_end_the_connection() {
    let s = Server::start(&[]);
    for req in [&b"GET /healthz HTTP/1.0\r\n\r\n"[..], b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"] {
        let mut c = s.connect();
        c.write_all(req).unwrap();
        let r = read_response(&mut c);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("connection"), Some("close"));
        assert!(read_all(&mut c).is_empty(), "nothing after a closing response");
    }
}

#[test]
fn limits_and_malformed_requests() {
    let s = Server::start(&["--max-body", "65536"]);
    let long_header = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(70_000)
    );
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (long_header.into_bytes(), 431),
        (
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 999999\r\n\r\n".to_vec(),
            413,
        ),
        (
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffff\r\n"
                .to_vec(),
            413,
        ),
        (
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
            400,
        ),
        (
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
                .to_vec(),
            400,
        ),
        (
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(),
            501,
        ),
        (b"GET / HTTP/1.1\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n".to_vec(), 505),
        (b"G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400),
        (
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n0\r\n\r\n"
                .to_vec(),
            400,
        ),
        (
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -4\r\n\r\nWiki".to_vec(),
            400,
        ),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/1.x\r\nHost: x\r\n\r\n".to_vec(), 400),
        (
            format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(64 * 1024)).into_bytes(),
            414,
        ),
        (
            b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: tea\r\nContent-Length: 1\r\n\r\nx"
                .to_vec(),
            417,
        ),
        (
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4;x\x01\r\nWiki\r\n0\r\n\r\n"
                .to_vec(),
            400,
        ),
    ];
    for (req, status) in cases {
        let mut c = s.connect();
        c.write_all(&req).unwrap();
        let r = read_response(&mut c);
        assert_eq!(
            r.status,
            status,
            "{:?}",
            String::from_utf8_lossy(&req[..req.len().min(80)])
        );
        assert!(!r.body.is_empty(), "error responses have a short text body");
        assert_eq!(r.header("connection"), Some("close"));
        // Closed after the response: nothing more is served on the connection.
        let _ = c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest);
        assert!(rest.is_empty(), "served after a framing error");
    }
    let r = roundtrip(&s, b"GET /transform HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
    let r = roundtrip(&s, b"BREW / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 501);
    let r = roundtrip(&s, b"GET /bytes/65M HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 413);
    let r = roundtrip(&s, b"GET /bytes/12Q HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 400);
}

#[test]
fn head_and_expect_continue() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    c.write_all(
        b"HEAD /bytes/10 HTTP/1.1\r\nHost: x\r\n\r\nGET /bytes/3 HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while find(&got, b"\r\n\r\n\x00\x00\x00").is_none() {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("content-length: 10\r\n"), "{text}");
    // The HEAD response has no body: the next bytes are the GET's head.
    let second = find(&got, b"HTTP/1.1 200 OK\r\n")
        .map(|i| find(&got[i + 1..], b"HTTP/1.1 200").unwrap() + i + 1)
        .unwrap();
    assert!(got[..second].ends_with(b"\r\n\r\n"));
    // Expect: 100-continue gets the interim response before the body is sent.
    let mut c = s.connect();
    c.write_all(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let mut interim = [0u8; 25];
    c.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    c.write_all(b"abcd").unwrap();
    assert_eq!(read_response(&mut c).body, b"abcd");
}

#[test]
fn unread_small_body_is_discarded_and_connection_kept() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    // /bytes does not read bodies: the 10-byte upload is discarded, the next request served.
    c.write_all(b"POST /bytes/4 HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789GET /bytes/2 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut carry = Vec::new();
    let a = read_response_paced(&mut c, &mut carry, Pace::FAST).unwrap();
    assert_eq!((a.body.len(), a.header("connection")), (4, None));
    let b = read_response_paced(&mut c, &mut carry, Pace::FAST).unwrap();
    assert_eq!(b.body, [0, 0]);
}

#[test]
fn stale_socket_reused_live_socket_refused() {
    let dir = tempfile::Builder::new()
        .prefix("lb")
        .tempdir_in("/tmp")
        .unwrap();
    let path = dir.path().join("s.sock");
    // A stale file: bound, then the listener is gone.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let mut child = Command::new(env!("CARGO_BIN_EXE_lastbyte"))
        .args(["serve", "--unix"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut ok = false;
    for _ in 0..500 {
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(ok, "server did not replace the stale socket");
    // A second server on the same live socket refuses to start.
    let out = Command::new(env!("CARGO_BIN_EXE_lastbyte"))
        .args(["serve", "--unix"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("another server is listening"));
    // SIGINT: clean exit, socket file removed.
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert!(child.wait().unwrap().success());
    assert!(!path.exists());
}

#[test]
fn default_socket_path_is_printed() {
    let dir = tempfile::Builder::new()
        .prefix("lb")
        .tempdir_in("/tmp")
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lastbyte"))
        .arg("serve")
        .env("XDG_RUNTIME_DIR", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let want = dir.path().join("lastbyte.sock");
    assert_eq!(
        line.trim(),
        format!("lastbyte listening on unix:{}", want.display())
    );
    let mut c = std::os::unix::net::UnixStream::connect(&want).unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut c).status, 200);
    drop(c);
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}

#[test]
fn sigterm_finishes_a_response_in_flight() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    c.write_all(b"GET /bytes/4M HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut idle = s.connect();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    read_response(&mut idle);
    std::thread::sleep(Duration::from_millis(100));
    s.signal(libc::SIGTERM);
    // The idle keep-alive connection is closed; the slow response still arrives whole.
    assert!(read_all(&mut idle).is_empty());
    drop(idle); // our EOF ends the server's lingering close of that connection
    let slow = Pace {
        read_size: 64 * 1024,
        sleep: Duration::from_millis(1),
    };
    let r =
        read_response_paced(&mut c, &mut Vec::new(), slow).expect("whole response after SIGTERM");
    assert_eq!(r.body.len(), 4 << 20);
    assert_eq!(
        r.header("connection"),
        None,
        "the head was sent before the signal"
    );
    assert!(read_all(&mut c).is_empty());
    let (code, st) = s.wait();
    assert_eq!(code, 0);
    assert_eq!(st["responses_failed"], 0);
    assert_eq!(st["shutdown_aborts"], 0);
}

#[test]
fn root_page_and_404_keep_the_connection() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let r = read_response(&mut c);
    assert_eq!(r.status, 200);
    let page = r.text();
    assert!(
        page.contains("lastbyte") && page.contains("/transform"),
        "{page}"
    );
    // 404 on an unknown path, and the same connection serves the next request.
    c.write_all(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let r = read_response(&mut c);
    assert_eq!(r.status, 404);
    assert_eq!(r.header("connection"), None);
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut c).status, 200);
}

/// Reads until the first response head is complete; returns the raw bytes so far.
fn first_head(c: &mut std::os::unix::net::UnixStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while find(&buf, b"\r\n\r\n").is_none() {
        let n = c.read(&mut chunk).unwrap();
        assert!(n > 0, "EOF before a response head");
        buf.extend_from_slice(&chunk[..n]);
    }
    buf
}

#[test]
fn expect_continue_only_when_the_body_will_be_read() {
    let s = Server::start(&["--max-body", "65536"]);
    // /bytes does not use a body: the final response comes at once, never a 100 first.
    let mut c = s.connect();
    c.write_all(
        b"POST /bytes/10 HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    )
    .unwrap();
    let head = first_head(&mut c);
    assert!(
        head.starts_with(b"HTTP/1.1 200 "),
        "{}",
        String::from_utf8_lossy(&head)
    );
    // A body over the limit: 413 at once, without waiting for the body, and no 100.
    let mut c = s.connect();
    c.write_all(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 999999\r\n\r\n",
    )
    .unwrap();
    let head = first_head(&mut c);
    assert!(
        head.starts_with(b"HTTP/1.1 413 "),
        "{}",
        String::from_utf8_lossy(&head)
    );
    // A wrong method: 405 at once.
    let mut c = s.connect();
    c.write_all(
        b"PUT /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    )
    .unwrap();
    let head = first_head(&mut c);
    assert!(
        head.starts_with(b"HTTP/1.1 405 "),
        "{}",
        String::from_utf8_lossy(&head)
    );
    // /echo will read it: 100 Continue first, then the echo once the body is sent.
    let mut c = s.connect();
    c.write_all(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    )
    .unwrap();
    let head = first_head(&mut c);
    assert_eq!(head, b"HTTP/1.1 100 Continue\r\n\r\n");
    c.write_all(b"hello").unwrap();
    let r = read_response(&mut c);
    assert_eq!((r.status, &r.body[..]), (200, &b"hello"[..]));
}

#[test]
fn http10_with_transfer_encoding_closes_after_the_response() {
    let s = Server::start(&[]);
    let mut c = s.connect();
    c.write_all(
        b"POST /echo HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /healthz HTTP/1.0\r\n\r\n",
    )
    .unwrap();
    let r = read_response(&mut c);
    assert_eq!((r.status, &r.body[..]), (200, &b"abc"[..]));
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    assert!(
        rest.is_empty(),
        "the pipelined request was served: {:?}",
        String::from_utf8_lossy(&rest)
    );
}
