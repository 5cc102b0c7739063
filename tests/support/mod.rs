//! Shared test support: start the real binary on a temp-dir socket, speak HTTP/1.1 to it,
//! read responses slowly, decode images with independent decoders.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn fixture(rel: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// How [`Server::launch`] starts the binary.
#[derive(Default)]
pub struct Launch {
    /// Also listen on an ephemeral 127.0.0.1 port.
    pub tcp: bool,
    /// Pass the Unix socket as systemd would (see [`Server::start_activated`]).
    pub activated: bool,
    pub env: Vec<(String, String)>,
}

/// The real server binary on a Unix socket in a short temp dir (socket paths ≤ 107 bytes).
pub struct Server {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub sock: PathBuf,
    pub tcp: Option<std::net::SocketAddr>,
    stderr: PathBuf,
}

impl Server {
    pub fn start(extra: &[&str]) -> Server {
        Self::start_with(extra, false)
    }

    /// Also listens on an ephemeral 127.0.0.1 port.
    pub fn start_tcp(extra: &[&str]) -> Server {
        Self::start_with(extra, true)
    }

    fn start_with(extra: &[&str], tcp: bool) -> Server {
        Self::launch(
            extra,
            Launch {
                tcp,
                ..Launch::default()
            },
        )
    }

    /// Starts with extra environment variables.
    pub fn start_env(extra: &[&str], env: &[(&str, &str)]) -> Server {
        Self::launch(
            extra,
            Launch {
                env: env
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..Launch::default()
            },
        )
    }

    /// Starts as systemd socket activation does: this process binds the Unix socket and the
    /// server inherits it as fd 3 with `LISTEN_FDS=1` and `LISTEN_PID` set to the server's own
    /// pid (`sh -c 'exec …'` keeps the pid, so `$$` is it). No `--unix` is passed.
    pub fn start_activated(extra: &[&str]) -> Server {
        Self::launch(
            extra,
            Launch {
                activated: true,
                ..Launch::default()
            },
        )
    }

    pub fn launch(extra: &[&str], how: Launch) -> Server {
        let tcp = how.tcp;
        let dir = tempfile::Builder::new()
            .prefix("lb")
            .tempdir_in("/tmp")
            .unwrap();
        let sock = dir.path().join("s.sock");
        let stderr = dir.path().join("stderr.log");
        let stdout = dir.path().join("stdout.log");
        let tcp_addr = tcp.then(|| {
            // Pick a free port; the tiny race with other processes is acceptable in tests.
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        });
        let bin = env!("CARGO_BIN_EXE_lastbyte");
        let mut cmd;
        let mut inherited = None;
        if how.activated {
            let l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
            cmd = Command::new("sh");
            cmd.arg("-c")
                .arg(r#"LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@""#)
                .arg(bin)
                .arg("serve");
            let fd = std::os::fd::AsRawFd::as_raw_fd(&l);
            // SAFETY: dup2/fcntl are async-signal-safe; nothing is allocated after fork.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                    if fd == 3 {
                        libc::fcntl(3, libc::F_SETFD, 0);
                    } else if libc::dup2(fd, 3) != 3 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            inherited = Some(l);
        } else {
            cmd = Command::new(bin);
            cmd.arg("serve").arg("--unix").arg(&sock);
        }
        cmd.envs(how.env);
        if let Some(a) = tcp_addr {
            cmd.arg("--tcp").arg(a.to_string());
        }
        cmd.args(extra)
            .env("LASTBYTE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap());
        let child = cmd.spawn().expect("spawn lastbyte");
        // The server holds its own copy of an inherited socket now.
        drop(inherited);
        let s = Server {
            child: Some(child),
            dir,
            sock,
            tcp: tcp_addr,
            stderr,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if UnixStream::connect(&s.sock).is_ok()
                && tcp_addr.is_none_or(|a| std::net::TcpStream::connect(a).is_ok())
            {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "server did not start: {}",
                s.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn connect(&self) -> UnixStream {
        let s = UnixStream::connect(&self.sock).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        s
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout.log")).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// SIGTERM, wait for exit (bounded), return the exit code and the counters it logged.
    pub fn stop(self) -> (i32, HashMap<String, u64>) {
        self.signal(libc::SIGTERM);
        self.wait()
    }

    /// Waits (bounded) for an exit already under way; returns the code and the counters.
    pub fn wait(mut self) -> (i32, HashMap<String, u64>) {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("server did not exit after SIGTERM: {}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        (status.code().unwrap_or(-1), stats(&self.stderr()))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Parses the `stats: k=v …` line the server logs at exit.
pub fn stats(log: &str) -> HashMap<String, u64> {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("stats: "))
        .unwrap_or_else(|| panic!("no stats line in server log:\n{log}"));
    let tail = &line[line.find("stats: ").unwrap() + 7..];
    tail.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The binding error code from `cf-images-binding: err=NNNN`.
    pub fn binding_code(&self) -> Option<u16> {
        self.header("cf-images-binding")?
            .strip_prefix("err=")?
            .parse()
            .ok()
    }
}

/// How a client reads a response.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub read_size: usize,
    pub sleep: Duration,
}

impl Pace {
    pub const FAST: Pace = Pace {
        read_size: 256 * 1024,
        sleep: Duration::ZERO,
    };
}

/// A response that ended before its `Content-Length`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncated {
    pub status: u16,
    pub expected: usize,
    pub got: usize,
    pub error: Option<String>,
}

/// Reads one response (head + `Content-Length` body) at `pace`. Leftover bytes of a
/// following response stay in `carry`.
pub fn read_response_paced(
    s: &mut impl Read,
    carry: &mut Vec<u8>,
    pace: Pace,
) -> Result<Response, Truncated> {
    let mut buf = std::mem::take(carry);
    let mut chunk = vec![0u8; pace.read_size];
    let fail = |status, expected, got, e: Option<String>| Truncated {
        status,
        expected,
        got,
        error: e,
    };
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut chunk) {
            Ok(0) => return Err(fail(0, 0, buf.len(), Some("EOF in head".into()))),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(fail(0, 0, buf.len(), Some(e.to_string()))),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    if status == 100 {
        carry.extend_from_slice(&buf[head_end..]);
        return read_response_paced(s, carry, pace);
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().expect("numeric Content-Length"))
        .expect("response without Content-Length");
    let mut body = buf.split_off(head_end);
    while body.len() < len {
        if !pace.sleep.is_zero() {
            std::thread::sleep(pace.sleep);
        }
        let want = pace.read_size.min(len - body.len()).max(1);
        match s.read(&mut chunk[..want]) {
            Ok(0) => return Err(fail(status, len, body.len(), None)),
            Ok(n) => body.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(fail(status, len, body.len(), Some(e.to_string()))),
        }
    }
    *carry = body.split_off(len);
    Ok(Response {
        status,
        headers,
        body,
    })
}

pub fn read_response(s: &mut impl Read) -> Response {
    read_response_paced(s, &mut Vec::new(), Pace::FAST).expect("complete response")
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Sends one request and reads its response over a new connection.
pub fn roundtrip(server: &Server, request: &[u8]) -> Response {
    let mut s = server.connect();
    s.write_all(request).unwrap();
    read_response(&mut s)
}

/// A `multipart/form-data` body as the binding sends it (no part Content-Type).
pub fn multipart(parts: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "--------------------------123456789012345678901234";
    let mut body = Vec::new();
    for (name, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let file = matches!(*name, "image" | "draw_image");
        let disp = if file {
            format!("content-disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\n\r\n")
        } else {
            format!("content-disposition: form-data; name=\"{name}\"\r\n\r\n")
        };
        body.extend_from_slice(disp.as_bytes());
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A chunked `POST` of `body` to `path` in ≤4 KiB chunks, like the binding.
pub fn chunked_post(path: &str, content_type: &str, body: &[u8], close: bool) -> Vec<u8> {
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nTransfer-Encoding: chunked\r\nHost: js.images.cloudflare.com\r\nContent-Type: {content_type}\r\n{}\r\n",
        if close { "Connection: close\r\n" } else { "" }
    )
    .into_bytes();
    for c in body.chunks(4096) {
        r.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        r.extend_from_slice(c);
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(b"0\r\n\r\n");
    r
}

/// A binding `/transform` request for these parts.
pub fn transform_request(parts: &[(&str, &[u8])], close: bool) -> Vec<u8> {
    let (ct, body) = multipart(parts);
    chunked_post("/transform", &ct, &body, close)
}

/// The format of encoded bytes, sniffed from magic numbers.
pub fn sniff(b: &[u8]) -> &'static str {
    if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        "image/jpeg"
    } else if b.starts_with(b"\x89PNG") {
        "image/png"
    } else if b.starts_with(b"GIF8") {
        "image/gif"
    } else if b.len() > 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        "image/webp"
    } else if b.len() > 12 && &b[4..8] == b"ftyp" && (&b[8..12] == b"avif" || &b[8..12] == b"avis")
    {
        "image/avif"
    } else {
        "unknown"
    }
}

/// Decodes with decoders independent of the encoders that produced the bytes: `image`'s
/// zune-jpeg / png / image-webp / gif decoders, and rav1d for AVIF (the encoder is rav1e).
pub fn decode(b: &[u8]) -> image::RgbaImage {
    if sniff(b) == "image/avif" {
        return lastbyte::image::avif::decode_rgba(b).expect("AVIF decodes");
    }
    image::load_from_memory(b)
        .unwrap_or_else(|e| panic!("{} output does not decode: {e}", sniff(b)))
        .to_rgba8()
}

/// A process's resident set size in KiB (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// The `/bytes` pattern: byte i = byte i%4 of the little-endian u32 i/4.
pub fn pattern_byte(i: usize) -> u8 {
    ((i / 4) as u32).to_le_bytes()[i % 4]
}

/// Index of the first byte that differs from the `/bytes` pattern.
pub fn pattern_mismatch(body: &[u8]) -> Option<usize> {
    body.iter()
        .enumerate()
        .position(|(i, b)| *b != pattern_byte(i))
}

/// Sends `/bytes/5`, `/healthz` and `/bytes/1K` pipelined in one write and checks that the
/// answers come back whole and in order; returns the connection and its unread carry.
pub fn check_pipelined_in_order(s: &Server) -> (UnixStream, Vec<u8>) {
    let mut c = s.connect();
    c.write_all(b"GET /bytes/5 HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /bytes/1K HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut carry = Vec::new();
    let a = read_response_paced(&mut c, &mut carry, Pace::FAST).unwrap();
    let b = read_response_paced(&mut c, &mut carry, Pace::FAST).unwrap();
    let d = read_response_paced(&mut c, &mut carry, Pace::FAST).unwrap();
    assert_eq!(a.body, [0, 0, 0, 0, 1]);
    assert_eq!(b.text(), "ok\n");
    assert_eq!(d.body.len(), 1024);
    assert_eq!(pattern_mismatch(&d.body), None);
    (c, carry)
}
