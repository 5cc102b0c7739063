//! `--engine hyper`, the benchmark baseline, against the io_uring engine: the same request gives
//! the same response head bytes (the `date` value aside, which is checked for its format) and the
//! same body bytes, over Unix and TCP; the hyper engine drains on SIGTERM like the product.

mod support;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use support::*;

/// One raw response: head bytes (through the blank line) and body bytes.
fn exchange(mut c: impl Read + Write, request: &[u8], head_only: bool) -> (Vec<u8>, Vec<u8>) {
    c.write_all(request).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = c.read(&mut chunk).unwrap();
        assert!(
            n > 0,
            "EOF inside the head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = buf[..end].to_vec();
    let text = String::from_utf8(head.clone()).unwrap();
    let len: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .unwrap_or_else(|| panic!("no content-length in {text:?}"))
        .parse()
        .unwrap();
    let want = if head_only { 0 } else { len };
    let mut body = buf[end..].to_vec();
    while body.len() < want {
        let n = c.read(&mut chunk).unwrap();
        assert!(n > 0, "EOF at {} of {want} body bytes", body.len());
        body.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(body.len(), want, "bytes after the body");
    (head, body)
}

/// The head with the `date` value replaced, after checking it is an IMF-fixdate.
fn without_date(head: &[u8]) -> String {
    let text = String::from_utf8(head.to_vec()).unwrap();
    let mut dates = 0;
    let lines: Vec<String> = text
        .split("\r\n")
        .map(|l| match l.strip_prefix("date: ") {
            Some(v) => {
                dates += 1;
                assert!(
                    httpdate::parse_http_date(v).is_ok() && v.ends_with(" GMT") && v.len() == 29,
                    "date {v:?} is not an IMF-fixdate"
                );
                "date: <now>".to_string()
            }
            None => l.to_string(),
        })
        .collect();
    assert_eq!(dates, 1, "one date header in {text:?}");
    lines.join("\r\n")
}

fn requests() -> Vec<(&'static str, Vec<u8>)> {
    let photo = fixture("images/landscape_6.jpg");
    let (ct, body) = multipart(&[
        ("image", &photo),
        ("transforms", br#"[{"imageIndex":0,"width":300}]"#),
        ("output_format", b"image/png"),
    ]);
    let mut transform = format!(
        "POST /transform HTTP/1.1\r\nHost: x\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    transform.extend_from_slice(&body);
    let mut bad_image = b"POST /transform HTTP/1.1\r\nHost: x\r\n".to_vec();
    let (ct, body) = multipart(&[("image", b"not an image at all")]);
    bad_image.extend_from_slice(
        format!(
            "Content-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    bad_image.extend_from_slice(&body);
    vec![
        ("bytes", b"GET /bytes/10 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("bytes 300K", b"GET /bytes/300K HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("head", b"HEAD /bytes/100 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("health", b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("404", b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("405", b"GET /transform HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("bad range", b"GET /bytes/lots HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        (
            "close",
            b"GET /bytes/3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        ),
        (
            "echo",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: a/b\r\nContent-Length: 5\r\n\r\nhello"
                .to_vec(),
        ),
        (
            "too large",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n".to_vec(),
        ),
        (
            "not multipart",
            b"POST /transform HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 3\r\n\r\nabc"
                .to_vec(),
        ),
        ("bad image", bad_image),
        ("transform", transform),
    ]
}

#[test]
fn both_engines_answer_with_the_same_bytes() {
    let max = ["--max-body", "1000000"];
    let uring = Server::start_tcp(&max);
    let hyper = Server::start_tcp(&[&max[..], &["--engine", "hyper"]].concat());
    for (what, req) in requests() {
        let head_only = req.starts_with(b"HEAD ");
        for tcp in [false, true] {
            let one = |s: &Server| {
                if tcp {
                    exchange(TcpStream::connect(s.tcp.unwrap()).unwrap(), &req, head_only)
                } else {
                    exchange(s.connect(), &req, head_only)
                }
            };
            let (uh, ub) = one(&uring);
            let (hh, hb) = one(&hyper);
            assert_eq!(
                without_date(&uh),
                without_date(&hh),
                "{what} (tcp {tcp}): heads differ"
            );
            assert!(ub == hb, "{what} (tcp {tcp}): bodies differ");
            if what == "transform" {
                assert_eq!(sniff(&ub), "image/png");
                assert_eq!(decode(&ub).width(), 300);
            }
        }
    }
    // Both counted the same requests on /metrics (the scrape itself included).
    let metric = |s: &Server| {
        let (_, b) = exchange(
            s.connect(),
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
            false,
        );
        let text = String::from_utf8(b).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("lastbyte_requests_total "))
            .map(str::to_string)
    };
    assert_eq!(metric(&uring), metric(&hyper));
}

#[test]
fn hyper_engine_keeps_alive_and_pipelines_in_order() {
    let s = Server::start(&["--engine", "hyper"]);
    check_pipelined_in_order(&s);
}

#[test]
fn hyper_engine_drains_on_sigterm() {
    let s = Server::start_tcp(&["--engine", "hyper", "--shutdown-timeout", "5"]);
    // A slow reader holds a 4 MiB response when SIGTERM arrives; it still gets every byte.
    let mut c = TcpStream::connect(s.tcp.unwrap()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET /bytes/4M HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 1024];
    let n = c.read(&mut first).unwrap();
    assert!(n > 0);
    s.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(200));
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    let mut all = first[..n].to_vec();
    all.extend_from_slice(&rest);
    let end = find(&all, b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&all[..end]).into_owned();
    assert!(head.contains("content-length: 4194304"), "{head}");
    assert_eq!(all.len() - end, 4 << 20);
    assert_eq!(pattern_mismatch(&all[end..]), None);
    let (code, stats) = s.wait();
    assert_eq!(code, 0, "drained exit");
    assert!(
        stats.get("requests").copied().unwrap_or(0) >= 1,
        "{stats:?}"
    );
}

#[test]
fn hyper_engine_applies_the_head_deadline() {
    let s = Server::start(&["--engine", "hyper", "--header-timeout", "1"]);
    let mut c = s.connect();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let t0 = std::time::Instant::now();
    let mut rest = Vec::new();
    // hyper closes the connection without a response when the head is late.
    let r = c.read_to_end(&mut rest);
    let waited = t0.elapsed();
    assert!(r.is_ok(), "{r:?}");
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(5),
        "closed after {waited:?}"
    );
    // A prompt client is still served.
    let mut c = s.connect();
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut c).text(), "ok\n");
}
