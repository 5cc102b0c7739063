//! No truncation: large responses to slow readers arrive whole, byte-exact, over Unix and TCP,
//! including the exact hyper 1.10 failure (a declared request body that is never read).
//!
//! The checker is first shown to catch a truncation: a test double that half-closes while
//! its response is still buffered (hyper ≤ 1.10's behaviour) is reported as truncated.

mod support;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;
use support::*;

const TWO_MIB: usize = 2 << 20;
/// The hyper 1.10 reproduction: a declared 1 MiB upload the handler never reads.
const UNREAD_UPLOAD: &str =
    "POST /bytes/2M HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\nConnection: close\r\n\r\n";

/// Slow: 16 KiB reads with a pause, well below the server's send rate.
const SLOW: Pace = Pace {
    read_size: 16 * 1024,
    sleep: Duration::from_micros(400),
};

/// Reads one `/bytes/2M` response slowly, verifies length and pattern, and that the server
/// then closes cleanly (EOF after the last byte).
fn check_bytes_response(s: &mut impl Read) -> Result<(), String> {
    let r = read_response_paced(s, &mut Vec::new(), SLOW).map_err(|t| {
        format!(
            "truncated: {} of {} body bytes ({:?})",
            t.got, t.expected, t.error
        )
    })?;
    if r.status != 200 || r.body.len() != TWO_MIB {
        return Err(format!("status {} with {} bytes", r.status, r.body.len()));
    }
    if let Some(i) = pattern_mismatch(&r.body) {
        return Err(format!("body differs from the pattern at byte {i}"));
    }
    let mut rest = Vec::new();
    match s.read_to_end(&mut rest) {
        Ok(_) if rest.is_empty() => Ok(()),
        Ok(_) => Err(format!("{} bytes after the response", rest.len())),
        Err(e) => Err(format!("after the response: {e}")),
    }
}

fn small_rcvbuf(s: &UnixStream) {
    socket2::SockRef::from(s)
        .set_recv_buffer_size(16 * 1024)
        .unwrap();
}

/// A server that does what hyper ≤ 1.10 did: write what the socket takes at once, then
/// `shutdown(SHUT_WR)` with the rest of the body still in its own buffer, and close.
fn early_shutdown_double(path: &std::path::Path) -> std::thread::JoinHandle<()> {
    let l = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            c.read_exact(&mut b).unwrap();
            head.push(b[0]);
        }
        let body: Vec<u8> = (0..TWO_MIB).map(pattern_byte).collect();
        let mut out = format!("HTTP/1.1 200 OK\r\nContent-Length: {TWO_MIB}\r\n\r\n").into_bytes();
        out.extend_from_slice(&body);
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
            "the double should not manage to send everything at once"
        );
        c.shutdown(std::net::Shutdown::Write).unwrap();
    })
}

#[test]
fn checker_catches_an_early_shutdown() {
    let dir = tempfile::Builder::new()
        .prefix("lb")
        .tempdir_in("/tmp")
        .unwrap();
    let path = dir.path().join("double.sock");
    let h = early_shutdown_double(&path);
    let mut c = UnixStream::connect(&path).unwrap();
    small_rcvbuf(&c);
    c.write_all(UNREAD_UPLOAD.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(100)); // let the double fill the socket
    let err = check_bytes_response(&mut c).expect_err("the double truncates");
    assert!(err.starts_with("truncated:"), "{err}");
    h.join().unwrap();
}

#[test]
fn unread_declared_body_slow_reader_unix_40_of_40() {
    let s = Server::start(&[]);
    let sock = s.sock.clone();
    // 4 concurrent slow readers × 10 requests each.
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let sock = sock.clone();
            std::thread::spawn(move || {
                (0..10)
                    .map(|i| {
                        let mut c = UnixStream::connect(&sock).unwrap();
                        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                        small_rcvbuf(&c);
                        c.write_all(UNREAD_UPLOAD.as_bytes()).unwrap();
                        // Start reading late, so the response fills the socket first.
                        std::thread::sleep(Duration::from_millis(5 + (w * 7 + i) % 20));
                        check_bytes_response(&mut c)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<Result<(), String>> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    let failures: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "truncated {} of 40: {failures:?}",
        failures.len()
    );
    let (code, st) = s.stop();
    assert_eq!(code, 0);
    assert_eq!(st["responses_complete"], 40);
    assert_eq!(st["responses_failed"], 0);
    assert_eq!(
        st["half_closes"], 40,
        "every close was a half-close after a drained ledger"
    );
    assert!(
        st["short_sends"] > 0,
        "the test must exercise short sends: {st:?}"
    );
    assert!(st["bytes_sent"] >= 40 * TWO_MIB as u64);
}

#[test]
fn unread_upload_actually_sent_over_tcp() {
    // A small send buffer so 2 MiB cannot go in one send on TCP loopback either.
    let s = Server::start_tcp(&["--send-buffer", "65536"]);
    let addr = s.tcp.unwrap();
    for i in 0..20 {
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.set_recv_buffer_size(32 * 1024).unwrap();
        sock.connect(&addr.into()).unwrap();
        let mut c: TcpStream = sock.into();
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        c.write_all(UNREAD_UPLOAD.as_bytes()).unwrap();
        // The client really sends its 1 MiB upload, which the handler never reads.
        let mut w = c.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            let chunk = vec![b'u'; 64 * 1024];
            for _ in 0..16 {
                if w.write_all(&chunk).is_err() {
                    return false;
                }
            }
            true
        });
        std::thread::sleep(Duration::from_millis(10));
        let r = check_bytes_response(&mut c);
        assert!(r.is_ok(), "request {i}: {r:?}");
        assert!(writer.join().unwrap(), "request {i}: upload was refused");
    }
    let (code, st) = s.stop();
    assert_eq!(code, 0);
    assert_eq!(st["responses_failed"], 0);
    assert!(
        st["linger_bytes"] > 0,
        "the unread upload was drained after the half-close"
    );
    assert!(
        st["short_sends"] > 0,
        "the test must exercise short sends: {st:?}"
    );
}

/// `/transform` producing 2.5 MB (raw RGBA 1000x625) to a slow reader.
fn big_transform(close: bool) -> Vec<u8> {
    let photo = fixture("images/dune_1680x1050_exif.jpg");
    transform_request(
        &[
            ("image", &photo),
            ("transforms", br#"[{"imageIndex":0,"width":1000}]"#),
            ("output_format", b"rgba"),
        ],
        close,
    )
}

fn check_big_transform(r: &Response) {
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        (r.header("x-image-width"), r.header("x-image-height")),
        (Some("1000"), Some("625"))
    );
    assert_eq!(r.body.len(), 1000 * 625 * 4);
    assert!(r.body.len() > TWO_MIB);
}

#[test]
fn big_transform_output_to_slow_reader_keep_alive_and_close() {
    let s = Server::start(&[]);
    // Keep-alive: three responses on one connection, each read slowly.
    let mut c = s.connect();
    small_rcvbuf(&c);
    let mut carry = Vec::new();
    let mut first: Option<Vec<u8>> = None;
    for i in 0..3 {
        c.write_all(&big_transform(false)).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        let r = read_response_paced(&mut c, &mut carry, SLOW)
            .unwrap_or_else(|t| panic!("keep-alive {i}: {t:?}"));
        check_big_transform(&r);
        match &first {
            None => first = Some(r.body),
            Some(f) => assert!(
                f == &r.body,
                "keep-alive {i}: output differs from the first"
            ),
        }
    }
    drop(c);
    // Close: the response, then a clean EOF.
    for i in 0..3 {
        let mut c = s.connect();
        small_rcvbuf(&c);
        c.write_all(&big_transform(true)).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        let r = read_response_paced(&mut c, &mut Vec::new(), SLOW)
            .unwrap_or_else(|t| panic!("close {i}: {t:?}"));
        check_big_transform(&r);
        assert!(first.as_ref() == Some(&r.body));
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
    }
    let (code, st) = s.stop();
    assert_eq!(code, 0);
    assert_eq!(st["responses_complete"], 6);
    assert_eq!(st["responses_failed"], 0);
    assert!(
        st["short_sends"] > 0,
        "the test must exercise short sends: {st:?}"
    );
}
