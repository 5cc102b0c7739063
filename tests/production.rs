//! Running it in production: several rings under mixed load, graceful drain with slow readers,
//! the shutdown deadline, systemd socket activation and readiness notification, the socket's
//! mode and owner, a saturated CPU pool, and `/metrics`.

mod support;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use support::*;

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes()
}

/// The value of one sample line of `/metrics` (`name{labels} value`).
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
        .parse()
        .unwrap()
}

fn metrics(s: &Server) -> String {
    let r = roundtrip(s, &get("/metrics"));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    r.text()
}

/// A `/transform` of the whole photo to AVIF (slow enough to hold a CPU thread), closing.
fn avif_job(photo: &[u8]) -> Vec<u8> {
    transform_request(
        &[
            ("image", photo),
            ("transforms", b"[]"),
            ("output_format", b"image/avif"),
        ],
        true,
    )
}

fn small_photo() -> Vec<u8> {
    fixture("images/dune_1680x1050_exif.jpg")
}

#[test]
fn many_clients_over_two_rings_get_exact_responses() {
    let s = Server::start(&[
        "--workers",
        "2",
        "--cpu-threads",
        "2",
        "--queue-depth",
        "64",
    ]);
    let photo = Arc::new(small_photo());
    const CLIENTS: usize = 12;
    const ROUNDS: usize = 6;
    let sock = s.sock.clone();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (sock, photo) = (sock.clone(), photo.clone());
            std::thread::spawn(move || {
                let mut conn = UnixStream::connect(&sock).unwrap();
                conn.set_read_timeout(Some(Duration::from_secs(60)))
                    .unwrap();
                let mut carry = Vec::new();
                let mut outputs = Vec::new();
                for round in 0..ROUNDS {
                    if (c + round) % 2 == 0 {
                        let n = 100_000 + 7919 * (c * ROUNDS + round);
                        conn.write_all(&get(&format!("/bytes/{n}"))).unwrap();
                        let r = read_response_paced(&mut conn, &mut carry, Pace::FAST).unwrap();
                        assert_eq!(r.status, 200);
                        assert_eq!(r.body.len(), n);
                        assert_eq!(pattern_mismatch(&r.body), None);
                    } else {
                        let req = transform_request(
                            &[
                                ("image", &photo),
                                ("transforms", br#"[{"imageIndex":0,"width":200}]"#),
                                ("output_format", b"image/webp"),
                            ],
                            false,
                        );
                        conn.write_all(&req).unwrap();
                        let r = read_response_paced(&mut conn, &mut carry, Pace::FAST).unwrap();
                        assert_eq!(r.status, 200, "{}", r.text());
                        outputs.push(r.body);
                    }
                }
                outputs
            })
        })
        .collect();
    let outputs: Vec<Vec<u8>> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(outputs.len(), CLIENTS * ROUNDS / 2);
    // The same job gives the same bytes whichever ring and CPU thread ran it.
    assert_eq!(decode(&outputs[0]).dimensions(), (200, 125));
    assert!(outputs.iter().all(|o| o == &outputs[0]));
    // Both rings accepted connections from the one shared Unix listener.
    let m = metrics(&s);
    let per_ring: Vec<f64> = (0..2)
        .map(|i| {
            metric(
                &m,
                &format!("lastbyte_ring_connections_total{{ring=\"{i}\"}}"),
            )
        })
        .collect();
    assert_eq!(per_ring.iter().sum::<f64>(), (CLIENTS + 2) as f64, "{m}");
    assert!(per_ring.iter().all(|&n| n >= 1.0), "{per_ring:?}");
    let (code, stats) = s.stop();
    assert_eq!(code, 0);
    assert_eq!(stats["responses_failed"], 0);
}

/// Starts `n` GETs of `/bytes/<len>` on separate connections and reads each head, so every
/// response is under way; returns the connections with what was read past the head.
fn start_responses(s: &Server, n: usize, len: usize) -> Vec<(UnixStream, Vec<u8>)> {
    (0..n)
        .map(|_| {
            let mut c = s.connect();
            c.write_all(&get(&format!("/bytes/{len}"))).unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while find(&buf, b"\r\n\r\n").is_none() {
                let k = c.read(&mut chunk).unwrap();
                assert!(k > 0, "EOF before the head");
                buf.extend_from_slice(&chunk[..k]);
            }
            (c, buf)
        })
        .collect()
}

#[test]
fn sigterm_drains_slow_readers_byte_exact_and_exits_zero() {
    let s = Server::start(&["--workers", "2", "--shutdown-timeout", "120"]);
    const N: usize = 60;
    const LEN: usize = 1 << 20;
    let conns = start_responses(&s, N, LEN);
    let go = Arc::new(Barrier::new(N + 1));
    let readers: Vec<_> = conns
        .into_iter()
        .map(|(mut c, buf)| {
            let go = go.clone();
            std::thread::spawn(move || {
                go.wait();
                let mut carry = buf;
                let slow = Pace {
                    read_size: 32 * 1024,
                    sleep: Duration::from_millis(10),
                };
                let r = read_response_paced(&mut c, &mut carry, slow);
                // After the response, the drained connection is half-closed: EOF.
                let mut rest = [0u8; 16];
                (r, c.read(&mut rest).ok())
            })
        })
        .collect();
    s.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(200));
    // Draining: the listener is closed, so new clients are refused or never served.
    assert!(
        UnixStream::connect(&s.sock).is_err(),
        "still accepting while draining"
    );
    go.wait();
    for t in readers {
        let (r, after) = t.join().unwrap();
        let r = r.expect("a response cut short by the drain");
        assert_eq!(r.body.len(), LEN);
        assert_eq!(pattern_mismatch(&r.body), None);
        assert_eq!(after, Some(0), "no EOF after the drained response");
    }
    let (code, stats) = s.wait();
    assert_eq!(code, 0);
    assert_eq!(stats["shutdown_aborts"], 0);
    assert_eq!(stats["responses_failed"], 0);
    assert!(stats["responses_complete"] >= N as u64);
}

#[test]
fn shutdown_deadline_aborts_are_counted_and_never_clean() {
    let s = Server::start(&["--shutdown-timeout", "1"]);
    const N: usize = 20;
    const LEN: usize = 4 << 20;
    let conns = start_responses(&s, N, LEN);
    let t0 = Instant::now();
    s.signal(libc::SIGTERM);
    // Nobody reads until the server is gone.
    let (code, stats) = s.wait();
    assert!(t0.elapsed() < Duration::from_secs(15));
    assert_eq!(code, 3, "an aborted drain exits 3");
    let mut short = 0;
    for (mut c, buf) in conns {
        let mut carry = buf;
        match read_response_paced(&mut c, &mut carry, Pace::FAST) {
            Ok(r) => assert_eq!(pattern_mismatch(&r.body), None),
            Err(t) => {
                // Short of its Content-Length: never mistaken for a whole body.
                assert!(t.got < t.expected, "{t:?}");
                short += 1;
            }
        }
    }
    // 4 MiB does not fit in an AF_UNIX socket's buffers: every response was cut, and counted.
    assert_eq!(short, N);
    assert_eq!(stats["shutdown_aborts"], N as u64);
    // Each cut response is also a failed response, with its log line.
    assert_eq!(stats["responses_failed"], N as u64);
}

#[test]
fn responses_whole_in_the_kernel_survive_the_deadline() {
    // 2 MiB fits in TCP loopback's buffers (~4 MiB): the ledger drains at once and the
    // connection lingers, its response unread, when the deadline aborts the drain. It is closed
    // plainly, not reset, so the kernel still delivers every byte after the process is gone.
    let s = Server::start_tcp(&["--shutdown-timeout", "1", "--linger-timeout", "30"]);
    let mut c = std::net::TcpStream::connect(s.tcp.unwrap()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    c.write_all(b"GET /bytes/2M HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    s.signal(libc::SIGTERM);
    let (code, stats) = s.wait();
    assert_eq!(code, 3, "the lingering connection outlived the deadline");
    let r = read_response(&mut c);
    assert_eq!(r.body.len(), 2 << 20);
    assert_eq!(pattern_mismatch(&r.body), None);
    assert_eq!(stats["responses_complete"], 1);
    assert_eq!(stats["responses_failed"], 0);
}

#[test]
fn tcp_aborts_reset_the_connection() {
    let s = Server::start_tcp(&["--shutdown-timeout", "1", "--send-buffer", "65536"]);
    let addr = s.tcp.unwrap();
    let mut conns: Vec<std::net::TcpStream> = (0..4)
        .map(|_| {
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            // A small receive buffer keeps most of the response in the server.
            socket2::SockRef::from(&c)
                .set_recv_buffer_size(16384)
                .unwrap();
            c.write_all(&get("/bytes/32M")).unwrap();
            let mut b = [0u8; 1024];
            assert!(c.read(&mut b).unwrap() > 0);
            c
        })
        .collect();
    s.signal(libc::SIGTERM);
    let (code, stats) = s.wait();
    assert_eq!(code, 3);
    assert_eq!(stats["shutdown_aborts"], 4);
    for c in &mut conns {
        let mut sink = vec![0u8; 1 << 16];
        let end = loop {
            match c.read(&mut sink) {
                Ok(0) => break "EOF".to_string(),
                Ok(_) => {}
                Err(e) => break e.kind().to_string(),
            }
        };
        assert!(
            end.contains("reset"),
            "aborted TCP response ended with {end}"
        );
    }
}

#[test]
fn socket_activation_serves_the_inherited_socket() {
    let mut s = Server::start_activated(&["--workers", "2"]);
    let r = roundtrip(&s, &get("/bytes/300000"));
    assert_eq!(r.status, 200);
    assert_eq!(pattern_mismatch(&r.body), None);
    let r = roundtrip(&s, &get("/healthz"));
    assert_eq!(r.status, 200);
    assert!(
        s.stdout().contains("(fd 3, socket activation)"),
        "{}",
        s.stdout()
    );
    s.signal(libc::SIGTERM);
    let child = s.child.as_mut().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    // The socket file belongs to whoever passed it; the server leaves it in place.
    assert!(s.sock.exists());
    assert!(stats(&s.stderr())["requests"] >= 2);
}

#[test]
fn activation_env_for_another_process_is_ignored() {
    // LISTEN_PID names someone else: the variables are not for this process, so the server
    // binds its own socket as usual.
    let s = Server::start_env(&[], &[("LISTEN_PID", "1"), ("LISTEN_FDS", "1")]);
    assert_eq!(roundtrip(&s, &get("/healthz")).status, 200);
    assert_eq!(s.stop().0, 0);
}

fn recv_notify(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).expect("no sd_notify message");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn notify_socket_gets_ready_and_stopping() {
    let dir = tempfile::Builder::new()
        .prefix("lbn")
        .tempdir_in("/tmp")
        .unwrap();
    let path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let s = Server::start_env(
        &["--workers", "2"],
        &[("NOTIFY_SOCKET", path.to_str().unwrap())],
    );
    let ready = recv_notify(&sock);
    assert_eq!(ready, format!("READY=1\nMAINPID={}", s.pid()));
    assert_eq!(roundtrip(&s, &get("/healthz")).status, 200);
    s.signal(libc::SIGTERM);
    assert_eq!(recv_notify(&sock), "STOPPING=1");
    assert_eq!(s.wait().0, 0);

    // An abstract socket name (`@…`), as systemd also uses.
    let name = format!("lastbyte-test-{}", std::process::id());
    let addr =
        <std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(
            name.as_bytes(),
        )
        .unwrap();
    let sock = UnixDatagram::bind_addr(&addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let s = Server::start_env(&[], &[("NOTIFY_SOCKET", &format!("@{name}"))]);
    assert!(recv_notify(&sock).starts_with("READY=1\n"));
    s.signal(libc::SIGTERM);
    assert_eq!(recv_notify(&sock), "STOPPING=1");
    assert_eq!(s.wait().0, 0);
}

#[test]
fn unix_socket_mode_and_owner_are_applied() {
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let owner = format!("{uid}:{gid}");
    let s = Server::start(&["--unix-mode", "600", "--unix-owner", &owner]);
    let meta = std::fs::metadata(&s.sock).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!((meta.uid(), meta.gid()), (uid, gid));
    assert_eq!(s.stop().0, 0);

    // An owner that does not exist stops the server at start, with a message.
    let dir = tempfile::Builder::new()
        .prefix("lbo")
        .tempdir_in("/tmp")
        .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lastbyte"))
        .args(["serve", "--unix-owner", "no-such-user-lastbyte", "--unix"])
        .arg(dir.path().join("s.sock"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no user \"no-such-user-lastbyte\""), "{err}");
    // A bad mode is a usage error.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lastbyte"))
        .args(["serve", "--unix-mode", "999"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn saturated_pool_refuses_fast_while_healthz_answers() {
    let s = Server::start(&[
        "--cpu-threads",
        "1",
        "--queue-depth",
        "1",
        "--avif-speed",
        "10",
    ]);
    let photo = small_photo();
    let slow_job = avif_job(&photo);
    // One job runs, one waits in the queue.
    let mut busy = Vec::new();
    for _ in 0..2 {
        let mut c = s.connect();
        c.write_all(&slow_job).unwrap();
        busy.push(c);
        std::thread::sleep(Duration::from_millis(300));
    }
    for _ in 0..4 {
        let r = roundtrip(&s, &slow_job);
        assert_eq!(r.status, 503, "{}", r.text());
        assert_eq!(r.binding_code(), Some(9522));
        assert_eq!(r.header("retry-after"), Some("1"));
        assert!(r.text().starts_with("ERROR 9522: "), "{}", r.text());
    }
    // Refused at once: the running job has not even finished.
    busy[0].set_nonblocking(true).unwrap();
    let mut b = [0u8; 1];
    let e = busy[0].read(&mut b).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
    busy[0].set_nonblocking(false).unwrap();
    let r = roundtrip(&s, &get("/healthz"));
    assert_eq!(r.status, 200);
    let r = roundtrip(&s, &get("/bytes/100000"));
    assert_eq!(pattern_mismatch(&r.body), None);
    let m = metrics(&s);
    assert_eq!(metric(&m, "lastbyte_jobs_busy_total"), 4.0);
    // The accepted jobs still complete.
    for mut c in busy {
        let r = read_response_paced(&mut c, &mut Vec::new(), Pace::FAST)
            .unwrap_or_else(|t| panic!("{t:?}: {}", s.stderr()));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(sniff(&r.body), "image/avif");
    }
    let (code, stats) = s.stop();
    assert_eq!(code, 0);
    assert_eq!(stats["jobs_busy"], 4);
}

#[test]
fn metrics_count_exactly_what_happened() {
    let s = Server::start(&["--send-buffer", "8192"]);
    for req in [get("/"), get("/nope"), get("/bytes/1M")] {
        roundtrip(&s, &req);
    }
    let bad = transform_request(
        &[
            ("image", b"not an image"),
            ("transforms", b"[]"),
            ("output_format", b"image/png"),
        ],
        false,
    );
    assert_eq!(roundtrip(&s, &bad).binding_code(), Some(9412));
    // A client can read a whole response before the server has taken the completion of its
    // last send: wait (bounded) until the four responses are accounted for.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut polls = 0;
    let m = loop {
        polls += 1;
        let m = metrics(&s);
        if metric(&m, "lastbyte_responses_complete_total") >= 4.0 || Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let series = |route: &str, status: u16, code: u16| {
        metric(
            &m,
            &format!(
                "lastbyte_responses_total{{route=\"{route}\",status=\"{status}\",code=\"{code}\"}}"
            ),
        )
    };
    assert_eq!(series("root", 200, 0), 1.0, "{m}");
    assert_eq!(series("other", 404, 0), 1.0, "{m}");
    assert_eq!(series("bytes", 200, 0), 1.0, "{m}");
    assert_eq!(series("transform", 415, 9412), 1.0, "{m}");
    // The readiness probe, four request connections and the metrics polls; the last is still
    // open.
    assert_eq!(
        metric(&m, "lastbyte_connections_total"),
        5.0 + polls as f64,
        "{m}"
    );
    // Earlier connections may still be lingering for their client's close.
    assert!(metric(&m, "lastbyte_connections_open") >= 1.0, "{m}");
    assert_eq!(metric(&m, "lastbyte_requests_in_flight"), 1.0, "{m}");
    // An 8 KiB send buffer cuts a 1 MiB response into many short sends; the histogram of
    // completion sizes holds every send.
    let sends = metric(&m, "lastbyte_sends_total");
    assert!(metric(&m, "lastbyte_short_sends_total") >= 10.0, "{m}");
    assert_eq!(metric(&m, "lastbyte_send_completion_bytes_count"), sends);
    assert_eq!(
        metric(&m, "lastbyte_send_completion_bytes_sum"),
        metric(&m, "lastbyte_bytes_sent_total")
    );
    assert_eq!(s.stop().0, 0);
}

fn check_config(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_lastbyte"));
    cmd.arg("check-config").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn config_file_environment_and_flags_in_that_order() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lastbyte.toml");
    std::fs::write(
        &file,
        "max_body = 1048576\nheader-timeout = 2.5\nqueue_depth = 7\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    // The file supplies defaults; the environment overrides it; a flag overrides both.
    let out = check_config(
        &["--config", f, "--queue-depth", "9"],
        &[
            ("LASTBYTE_HEADER_TIMEOUT", "4"),
            ("LASTBYTE_QUEUE_DEPTH", "8"),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("max_body: 1048576"), "{text}");
    assert!(text.contains("header_timeout: 4s"), "{text}");
    assert!(text.contains("queue_depth: 9"), "{text}");

    // An unknown key, a value of the wrong kind, and an invalid value are each refused, named.
    std::fs::write(&file, "max_bodee = 1\n").unwrap();
    let out = check_config(&["--config", f], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown setting \"max_bodee\""));
    std::fs::write(&file, "max_body = [1]\n").unwrap();
    let out = check_config(&["--config", f], &[]);
    assert_eq!(out.status.code(), Some(2));
    std::fs::write(&file, "max_body = \"lots\"\n").unwrap();
    let out = check_config(&["--config", f], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("max-body"));
}

#[test]
fn json_logs_have_one_line_per_request() {
    let s = Server::start(&["--log-format", "json"]);
    let r = roundtrip(&s, &get("/bytes/1000"));
    assert_eq!(r.status, 200);
    let r = roundtrip(&s, &get("/nope"));
    assert_eq!(r.status, 404);
    s.signal(libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !s.stderr().contains("stats: ") {
        assert!(Instant::now() < deadline, "no exit line: {}", s.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = s.stderr();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let requests: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|v| v["target"] == "lastbyte::request")
        .map(|v| &v["fields"])
        .collect();
    assert_eq!(requests.len(), 2, "{log}");
    // Two rings log independently: the lines may come in either order.
    let by = |route: &str| *requests.iter().find(|r| r["route"] == route).unwrap();
    let (a, b) = (by("bytes"), by("other"));
    assert_eq!(
        (a["route"].as_str(), a["status"].as_u64()),
        (Some("bytes"), Some(200))
    );
    assert_eq!(
        (b["route"].as_str(), b["status"].as_u64()),
        (Some("other"), Some(404))
    );
    // bytes_out is the whole response: head plus the 1000-byte body.
    let out = a["bytes_out"].as_u64().unwrap();
    assert!(out > 1000 && out < 1300, "{a}");
    assert!(a["bytes_in"].as_u64().unwrap() > 0);
    for r in [a, b] {
        for key in ["id", "conn", "code", "us", "ring"] {
            assert!(r.get(key).is_some(), "{key} missing in {r}");
        }
    }
    assert_ne!(a["id"], b["id"]);
    assert_eq!(s.wait().0, 0);
}

#[test]
fn a_client_gone_mid_body_ends_its_request() {
    let s = Server::start(&[]);
    for _ in 0..10 {
        let mut c = s.connect();
        c.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
            .unwrap();
        drop(c);
    }
    std::thread::sleep(Duration::from_millis(200));
    let text = metrics(&s);
    // Only the /metrics request itself is in flight.
    assert_eq!(metric(&text, "lastbyte_requests_in_flight"), 1.0, "{text}");
    let log = s.stderr();
    assert_eq!(
        log.matches("outcome=\"client-closed\"").count(),
        10,
        "{log}"
    );
}

#[test]
fn queued_jobs_of_clients_that_left_are_not_run() {
    let s = Server::start(&[
        "--cpu-threads",
        "1",
        "--queue-depth",
        "8",
        "--avif-speed",
        "10",
    ]);
    let photo = small_photo();
    let slow_job = avif_job(&photo);
    // One job occupies the only CPU thread; three clients queue a job each and leave.
    let mut running = s.connect();
    running.write_all(&slow_job).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    for _ in 0..3 {
        let mut c = s.connect();
        c.write_all(&slow_job).unwrap();
        std::thread::sleep(Duration::from_millis(10));
        drop(c);
    }
    // A client that half-closes after its request is still served.
    let small = transform_request(
        &[
            ("image", &photo),
            ("transforms", br#"[{"imageIndex":0,"width":64}]"#),
            ("output_format", b"image/png"),
        ],
        true,
    );
    let mut half = s.connect();
    half.write_all(&small).unwrap();
    half.shutdown(std::net::Shutdown::Write).unwrap();
    let r = read_response_paced(&mut running, &mut Vec::new(), Pace::FAST).unwrap();
    assert_eq!(r.status, 200);
    let r = read_response_paced(&mut half, &mut Vec::new(), Pace::FAST).unwrap();
    assert_eq!((r.status, sniff(&r.body)), (200, "image/png"));
    let (code, stats) = s.stop();
    assert_eq!(code, 0);
    assert_eq!(stats["jobs_cancelled"], 3, "{stats:?}");
    assert_eq!(stats["jobs"], 2);
}
