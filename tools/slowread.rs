//! `slowread`: a verifying slow-reader HTTP/1.1 client for lastbyte.
//!
//! Sends K requests from C threads (Unix socket or TCP), reads each response at a chosen pace,
//! and checks that it arrived whole: the status, a `Content-Length`, exactly that many body
//! bytes before EOF or reset, the `/bytes/<n>` pattern byte by byte (an FNV-1a 64 digest of
//! any other body, optionally compared), and after `Connection: close` a clean EOF right after
//! the body. The last stdout line is the summary:
//!
//! `truncated X of K (complete C, failed F: reason=count, …) bytes=B elapsed=Ss`
//!
//! X counts responses that began and were cut short. Exit 0 only if every response was
//! complete and valid, 1 otherwise, 2 on usage errors. `--verbose` adds a line per response
//! on stderr.

use clap::{ArgGroup, CommandFactory, Parser};
use socket2::{Domain, SockAddr, Socket, Type};
use std::collections::BTreeMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;

#[derive(Parser, Debug)]
#[command(
    name = "slowread",
    version,
    about = "Verifying slow-reader HTTP/1.1 client"
)]
#[command(group(ArgGroup::new("target").required(true).args(["unix", "tcp"])))]
#[command(group(ArgGroup::new("body").args(["body_file", "declare_body", "send_body"])))]
#[command(group(ArgGroup::new("pacing").args(["rate", "sleep_us"])))]
struct Args {
    /// Unix socket path of the server
    #[arg(long)]
    unix: Option<PathBuf>,
    /// TCP address of the server (HOST:PORT)
    #[arg(long)]
    tcp: Option<String>,
    #[arg(long, default_value = "GET")]
    method: String,
    #[arg(long, default_value = "/bytes/2M")]
    path: String,
    /// Extra request header (repeatable)
    #[arg(long = "header", value_name = "K: V")]
    headers: Vec<String>,
    /// Send this file as the request body
    #[arg(long, value_name = "F")]
    body_file: Option<PathBuf>,
    /// Declare `Content-Length: N` but never send the body
    #[arg(long, value_name = "N")]
    declare_body: Option<u64>,
    /// Declare and send N bytes (the /bytes pattern) from a writer thread while reading
    #[arg(long, value_name = "N")]
    send_body: Option<u64>,
    /// Add `Expect: 100-continue`; a body is sent only after `100 Continue`
    #[arg(long)]
    expect_continue: bool,
    /// Add `Connection: close` and expect EOF right after the response
    #[arg(long, conflicts_with = "per_conn")]
    close: bool,
    /// Requests per keep-alive connection (a new one when the server closes)
    #[arg(long, value_name = "R", default_value_t = 1, value_parser = between(1, u64::MAX))]
    per_conn: u64,
    /// SO_RCVBUF of the client socket, set before connect
    #[arg(long, value_name = "BYTES")]
    rcvbuf: Option<usize>,
    /// Wait after sending a request before reading its response
    #[arg(long, value_name = "MS", default_value_t = 0, value_parser = between(0, 600_000))]
    delay: u64,
    /// Random extra delay per request, 0..=MS, from --seed and the request index
    #[arg(long, value_name = "MS", default_value_t = 0, value_parser = between(0, 600_000))]
    jitter: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Largest single read
    #[arg(long, value_name = "BYTES", default_value_t = 16384, value_parser = between(1, 16 << 20))]
    read_size: u64,
    /// Read each response at most this fast
    #[arg(long, value_name = "BYTES_PER_SEC", value_parser = between(1, u64::MAX))]
    rate: Option<u64>,
    /// Sleep before every read
    #[arg(long, value_name = "N")]
    sleep_us: Option<u64>,
    /// Total requests (≤ 100000)
    #[arg(short = 'k', long, value_name = "K", default_value_t = 1, value_parser = between(1, 100_000))]
    requests: u64,
    /// Client threads (≤ 1024)
    #[arg(short = 'c', long, value_name = "C", default_value_t = 1, value_parser = between(1, 1024))]
    concurrency: u64,
    /// Per response: read and write timeout
    #[arg(long, value_name = "SECS", default_value_t = 30.0, value_parser = secs)]
    timeout: f64,
    /// Whole run: requests not started by then fail as `max-time`
    #[arg(long, value_name = "SECS", default_value_t = 600.0, value_parser = secs)]
    max_time: f64,
    /// Expected response status
    #[arg(long, default_value_t = 200)]
    status: u16,
    /// Expected FNV-1a 64 digest of every body (hex)
    #[arg(long, value_name = "HEX")]
    expect_digest: Option<String>,
    /// One line per response on stderr
    #[arg(short, long)]
    verbose: bool,
}

fn between(lo: u64, hi: u64) -> clap::builder::RangedU64ValueParser {
    clap::value_parser!(u64).range(lo..=hi)
}

/// Seconds, fractional, in (0, 86400].
fn secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x > 0.0 && x <= 86400.0 => Ok(x),
        _ => Err("expected seconds in (0, 86400]".into()),
    }
}

enum Body {
    None,
    Declared(u64),
    File(Arc<Vec<u8>>),
    Pattern(u64),
}

/// Everything a worker needs, validated.
struct Plan {
    a: Args,
    addr: SockAddr,
    head: Vec<u8>,
    body: Body,
    timeout: Duration,
    deadline: Instant,
    head_method: bool,
    /// n of a `/bytes/<n>` path: the body is checked against the pattern.
    pattern_len: Option<u64>,
    digest: Option<u64>,
}

/// A usage error: clap's message format and exit code 2.
fn usage(msg: impl std::fmt::Display) -> ! {
    let kind = clap::error::ErrorKind::ValueValidation;
    Args::command().error(kind, msg).exit()
}

fn plan(a: Args) -> Plan {
    if a.declare_body.is_some() && a.per_conn > 1 {
        usage("--declare-body leaves its body pending: no --per-conn > 1");
    }
    if [&a.method, &a.path]
        .iter()
        .any(|s| s.is_empty() || s.contains(char::is_whitespace))
    {
        usage("--method and --path must be non-empty and without whitespace");
    }
    let addr = match (&a.unix, &a.tcp) {
        (Some(p), _) => SockAddr::unix(p).unwrap_or_else(|e| usage(format!("--unix: {e}"))),
        (None, Some(t)) => match t.to_socket_addrs().map(|mut i| i.next()) {
            Ok(Some(addr)) => addr.into(),
            _ => usage(format!("--tcp {t}: not a resolvable HOST:PORT")),
        },
        (None, None) => usage("one of --unix or --tcp is required"),
    };
    let body = match (&a.body_file, a.declare_body, a.send_body) {
        (Some(f), _, _) => match std::fs::read(f) {
            Ok(b) => Body::File(Arc::new(b)),
            Err(e) => usage(format!("--body-file {}: {e}", f.display())),
        },
        (_, Some(n), _) => Body::Declared(n),
        (_, _, Some(n)) => Body::Pattern(n),
        _ => Body::None,
    };
    let digest = a.expect_digest.as_ref().map(|d| {
        u64::from_str_radix(d.trim_start_matches("0x"), 16)
            .unwrap_or_else(|_| usage(format!("--expect-digest {d}: not hex")))
    });
    let head =
        build_head(&a, &body).unwrap_or_else(|h| usage(format!("--header {h:?}: expected 'K: V'")));
    Plan {
        addr,
        head,
        body,
        timeout: Duration::from_secs_f64(a.timeout),
        deadline: Instant::now() + Duration::from_secs_f64(a.max_time),
        head_method: a.method.eq_ignore_ascii_case("HEAD"),
        pattern_len: bytes_path_len(&a.path),
        digest,
        a,
    }
}

/// The request head: request line, `Host` (unless given), extra headers, `Content-Length`,
/// `Expect`, `Connection: close`. A malformed `--header` is returned as the error.
fn build_head(a: &Args, body: &Body) -> Result<Vec<u8>, String> {
    let mut h = format!("{} {} HTTP/1.1\r\n", a.method, a.path);
    let mut host = false;
    for raw in &a.headers {
        match raw.split_once(':') {
            Some((k, v)) if !k.trim().is_empty() && !raw.contains(['\r', '\n']) => {
                host |= k.trim().eq_ignore_ascii_case("host");
                h.push_str(&format!("{}: {}\r\n", k.trim(), v.trim()));
            }
            _ => return Err(raw.clone()),
        }
    }
    if !host {
        h.push_str("Host: localhost\r\n");
    }
    match body {
        Body::None => {}
        Body::Declared(n) | Body::Pattern(n) => h.push_str(&format!("Content-Length: {n}\r\n")),
        Body::File(b) => h.push_str(&format!("Content-Length: {}\r\n", b.len())),
    }
    if a.expect_continue {
        h.push_str("Expect: 100-continue\r\n");
    }
    if a.close {
        h.push_str("Connection: close\r\n");
    }
    h.push_str("\r\n");
    Ok(h.into_bytes())
}

/// n of `/bytes/<n>` (`K` = 1024, `M` = 1048576 suffixes), parsed as the server does.
fn bytes_path_len(path: &str) -> Option<u64> {
    let s = path.split('?').next()?.strip_prefix("/bytes/")?;
    let (digits, mult) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 1024),
        b'M' | b'm' => (&s[..s.len() - 1], 1 << 20),
        _ => (s, 1),
    };
    if digits.is_empty() || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

/// The `/bytes` pattern: byte i = byte i%4 of the little-endian u32 i/4.
fn pattern_byte(i: u64) -> u8 {
    ((i / 4) as u32).to_le_bytes()[(i % 4) as usize]
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// SplitMix64: the per-request jitter, reproducible from `--seed` and the request index.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn connect(plan: &Plan) -> io::Result<Socket> {
    let s = Socket::new(plan.addr.domain(), Type::STREAM, None)?;
    if let Some(n) = plan.a.rcvbuf {
        s.set_recv_buffer_size(n)?;
    }
    s.set_read_timeout(Some(plan.timeout))?;
    // Also bounds a Unix connect waiting on a full backlog (Linux uses SO_SNDTIMEO).
    s.set_write_timeout(Some(plan.timeout))?;
    match plan.addr.domain() {
        Domain::UNIX => s.connect(&plan.addr)?,
        _ => s.connect_timeout(&plan.addr, plan.timeout)?,
    }
    Ok(s)
}

/// Why a response is not complete and valid. `truncated`: it began and was cut short.
struct Failure {
    reason: &'static str,
    detail: String,
    truncated: bool,
}

fn fail(reason: &'static str, detail: impl Into<String>) -> Failure {
    let detail = detail.into();
    #[rustfmt::skip]
    return Failure { reason, detail, truncated: false };
}

/// A response that began and was cut short after `got` bytes.
fn cut(reason: &'static str, got: u64, what: impl std::fmt::Display) -> Failure {
    let detail = format!("got {got} {what}");
    #[rustfmt::skip]
    return Failure { reason, detail, truncated: true };
}

/// `return Err(fail(reason, format!(…)))`
macro_rules! bail {
    ($reason:expr, $($fmt:tt)+) => {
        return Err(fail($reason, format!($($fmt)+)))
    };
}

/// `phase` 0: head, 1: body, 2: after the body.
fn io_reason(e: &io::Error, phase: usize) -> &'static str {
    const R: [[&str; 3]; 3] = [
        ["timeout-in-head", "reset-in-head", "error-in-head"],
        ["timeout-in-body", "reset-in-body", "error-in-body"],
        ["no-eof", "reset-after-body", "error-after-body"],
    ];
    R[phase][match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => 0,
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => 1,
        _ => 2,
    }]
}

/// What one response turned out to be.
#[derive(Default)]
struct Outcome {
    conn: usize,
    seq: usize,
    continued: bool,
    status: u16,
    length: Option<u64>,
    got: u64,
    digest: u64,
    server_close: bool,
}

/// Paced, deadline-bounded reads for one response.
struct Reader<'a> {
    sock: &'a Socket,
    a: &'a Args,
    deadline: Instant,
    start: Instant,
    read: u64,
}

impl Reader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let wait = match self.a.rate {
            Some(r) => (self.start + Duration::from_secs_f64(self.read as f64 / r as f64))
                .saturating_duration_since(Instant::now()),
            None => Duration::from_micros(self.a.sleep_us.unwrap_or(0)),
        };
        std::thread::sleep(wait.min(self.deadline.saturating_duration_since(Instant::now())));
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ErrorKind::TimedOut.into());
        }
        self.sock.set_read_timeout(Some(left))?;
        let n = buf.len().min(self.a.read_size as usize);
        let mut sock = self.sock;
        let n = match sock.read(&mut buf[..n]) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => Err(ErrorKind::TimedOut.into()),
            r => r,
        }?;
        self.read += n as u64;
        Ok(n)
    }
}

/// A complete response head: its length in bytes, status, `Content-Length`, `Connection: close`.
type Head = (usize, u16, Option<u64>, bool);

fn parse_head(buf: &[u8]) -> Result<Option<Head>, Failure> {
    let mut hs = [httparse::EMPTY_HEADER; 128];
    let mut resp = httparse::Response::new(&mut hs);
    let n = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            bail!("head-too-large", "{} bytes", buf.len())
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(fail("bad-head", e.to_string())),
    };
    let (mut cl, mut close) = (Ok(None), false);
    for h in resp.headers.iter() {
        let v = String::from_utf8_lossy(h.value);
        if h.name.eq_ignore_ascii_case("content-length") {
            cl = match (cl, v.trim().parse::<u64>()) {
                (Ok(None), Ok(n)) => Ok(Some(n)),
                (Ok(Some(m)), Ok(n)) if m == n => Ok(Some(n)),
                _ => Err(v.into_owned()),
            };
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(fail("transfer-encoding", v));
        } else if h.name.eq_ignore_ascii_case("connection") {
            close |= v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"));
        }
    }
    let cl = cl.map_err(|v| fail("bad-content-length", v))?;
    Ok(Some((n, resp.code.unwrap_or(0), cl, close)))
}

/// Reads and verifies one response. `100 Continue` calls `on_continue`; other interim
/// responses fail.
fn read_response(
    r: &mut Reader,
    plan: &Plan,
    out: &mut Outcome,
    on_continue: &mut dyn FnMut(),
) -> Result<(), Failure> {
    let mut chunk = vec![0u8; (plan.a.read_size as usize).min(256 * 1024)];
    let mut carry = Vec::new();
    let (status, length) = loop {
        match parse_head(&carry)? {
            Some((n, 100, ..)) => {
                carry.drain(..n);
                out.continued = true;
                on_continue();
                continue;
            }
            Some((_, s, ..)) if s < 200 => bail!("interim", "status {s}"),
            Some((n, status, length, close)) => {
                carry.drain(..n);
                (out.status, out.length, out.server_close) = (status, length, close);
                break (status, length);
            }
            None => {}
        }
        let started = !carry.is_empty();
        match r.read(&mut chunk) {
            Ok(0) if started => return Err(cut("eof-in-head", carry.len() as u64, "head bytes")),
            Ok(0) => return Err(fail("no-response", "EOF before any byte")),
            Ok(n) => carry.extend_from_slice(&chunk[..n]),
            Err(e) if started => return Err(cut(io_reason(&e, 0), carry.len() as u64, e)),
            Err(e) => return Err(fail(io_reason(&e, 0), e.to_string())),
        }
    };
    let Some(length) = length else {
        bail!("no-content-length", "status {status}");
    };
    let expected = if plan.head_method { 0 } else { length };
    // The body, verified as it streams.
    let (mut mismatch, mut digest) = (None, FNV_OFFSET);
    let mut take = |bytes: &[u8], at: u64| {
        digest = fnv1a(digest, bytes);
        if plan.pattern_len.is_some() && mismatch.is_none() {
            let i = (0u64..)
                .zip(bytes)
                .position(|(i, b)| *b != pattern_byte(at + i));
            mismatch = i.map(|i| at + i as u64);
        }
    };
    let first = carry.len().min(expected as usize);
    take(&carry[..first], 0);
    carry.drain(..first);
    out.got = first as u64;
    while out.got < expected {
        let want = chunk.len().min((expected - out.got) as usize);
        match r.read(&mut chunk[..want]) {
            Ok(0) => return Err(cut("eof-in-body", out.got, format!("of {expected}"))),
            Ok(n) => {
                take(&chunk[..n], out.got);
                out.got += n as u64;
            }
            Err(e) => {
                return Err(cut(
                    io_reason(&e, 1),
                    out.got,
                    format!("of {expected}: {e}"),
                ))
            }
        }
    }
    out.digest = digest;
    if status != plan.a.status {
        bail!("status", "{status}, expected {}", plan.a.status);
    }
    if let Some(n) = plan.pattern_len.filter(|_| !plan.head_method) {
        if length != n {
            bail!("length", "Content-Length {length}, path says {n}");
        }
        if let Some(i) = mismatch {
            bail!("pattern", "differs from the pattern at byte {i}");
        }
    }
    if let Some(d) = plan.digest.filter(|d| *d != digest) {
        bail!("digest", "fnv1a64={digest:016x}, expected {d:016x}");
    }
    let mut extra = carry.len() as u64;
    if plan.a.close || out.server_close {
        // The connection ends here: nothing more, then a clean EOF.
        loop {
            match r.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => extra += n as u64,
                Err(e) => return Err(fail(io_reason(&e, 2), e.to_string())),
            }
        }
    }
    if extra > 0 {
        bail!("extra-bytes", "{extra} bytes after the body");
    }
    Ok(())
}

/// Sends the request body from its own thread; with `go` (Expect: 100-continue) only once
/// `100 Continue` arrived. Returns whether the whole body was sent.
fn spawn_writer(
    w: Socket,
    body: &Body,
    go: Option<mpsc::Receiver<()>>,
    wait: Duration,
) -> Option<std::thread::JoinHandle<io::Result<bool>>> {
    let (file, n) = match body {
        Body::File(b) => (Some(Arc::clone(b)), b.len() as u64),
        Body::Pattern(n) => (None, *n),
        Body::None | Body::Declared(_) => return None,
    };
    Some(std::thread::spawn(move || {
        if go.is_some_and(|go| go.recv_timeout(wait).is_err()) {
            return Ok(false); // a final response came first, or nothing at all
        }
        if let Some(b) = file {
            (&w).write_all(&b)?;
            return Ok(true);
        }
        let (mut buf, mut off) = (vec![0u8; 64 * 1024], 0u64);
        while off < n {
            let len = buf.len().min((n - off) as usize);
            for (i, b) in (0u64..).zip(&mut buf[..len]) {
                *b = pattern_byte(off + i);
            }
            (&w).write_all(&buf[..len])?;
            off += len as u64;
        }
        Ok(true)
    }))
}

static CONNS: AtomicUsize = AtomicUsize::new(0);

/// One request on the worker's connection (opened if needed); a connection that may carry
/// another request is left in `slot`.
fn run_request(
    plan: &Plan,
    slot: &mut Option<(Socket, usize, usize)>,
    idx: usize,
    out: &mut Outcome,
) -> Result<(), Failure> {
    let (sock, conn, seq) = match slot.take() {
        Some(c) => c,
        None => match connect(plan) {
            Ok(s) => (s, CONNS.fetch_add(1, Ordering::Relaxed), 0),
            Err(e) => return Err(fail("connect", e.to_string())),
        },
    };
    (out.conn, out.seq) = (conn, seq);
    if let Err(e) = (&sock).write_all(&plan.head) {
        return Err(fail("send-head", e.to_string()));
    }
    let (go_tx, go_rx) = match plan.a.expect_continue {
        true => {
            let (tx, rx) = mpsc::channel();
            (Some(tx), Some(rx))
        }
        false => (None, None),
    };
    let writer = match sock.try_clone() {
        Ok(w) => spawn_writer(w, &plan.body, go_rx, plan.timeout),
        Err(e) => return Err(fail("clone", e.to_string())),
    };
    let jitter = splitmix(plan.a.seed ^ splitmix(idx as u64)) % (plan.a.jitter + 1);
    std::thread::sleep(Duration::from_millis(plan.a.delay + jitter));
    let now = Instant::now();
    let deadline = (now + plan.timeout).min(plan.deadline.max(now));
    let mut reader = Reader {
        sock: &sock,
        a: &plan.a,
        deadline,
        start: now,
        read: 0,
    };
    let mut on_continue = || {
        if let Some(tx) = &go_tx {
            let _ = tx.send(());
        }
    };
    let res = read_response(&mut reader, plan, out, &mut on_continue);
    drop(go_tx); // a writer still waiting for `100 Continue` gives up
    if res.is_err() {
        let _ = sock.shutdown(Shutdown::Both); // unblocks the writer
    }
    let upload = writer.map(|w| w.join().unwrap_or(Ok(false)));
    res?;
    let body_sent = match upload {
        Some(Err(e)) => return Err(fail("upload", e.to_string())),
        Some(Ok(sent)) => sent,
        None => !matches!(plan.body, Body::Declared(_)),
    };
    if body_sent && !plan.a.close && !out.server_close && ((seq + 1) as u64) < plan.a.per_conn {
        *slot = Some((sock, conn, seq + 1));
    }
    Ok(())
}

#[derive(Default)]
struct Tally {
    complete: usize,
    truncated: usize,
    bytes: u64,
    reasons: BTreeMap<&'static str, usize>,
    digests: BTreeMap<u64, usize>,
}

impl Tally {
    fn add(&mut self, verbose: bool, idx: usize, out: &Outcome, res: Result<(), Failure>) {
        self.bytes += out.got;
        let line = format!(
            "request {idx} conn {}.{}: {}status {} length {} got {}",
            out.conn,
            out.seq,
            if out.continued { "100-continue, " } else { "" },
            out.status,
            out.length.map_or("-".into(), |n| n.to_string()),
            out.got,
        );
        match res {
            Ok(()) => {
                self.complete += 1;
                *self.digests.entry(out.digest).or_default() += 1;
                if verbose {
                    eprintln!("{line} fnv1a64={:016x} ok", out.digest);
                }
            }
            Err(f) => {
                self.truncated += usize::from(f.truncated);
                *self.reasons.entry(f.reason).or_default() += 1;
                if verbose {
                    eprintln!("{line} FAIL {}: {}", f.reason, f.detail);
                }
            }
        }
    }
}

fn main() {
    let plan = plan(Args::parse());
    let start = Instant::now();
    let next = AtomicUsize::new(0);
    let tally = Mutex::new(Tally::default());
    std::thread::scope(|s| {
        for _ in 0..plan.a.concurrency.min(plan.a.requests) {
            s.spawn(|| {
                let mut slot = None;
                loop {
                    let idx = next.fetch_add(1, Ordering::Relaxed);
                    if idx as u64 >= plan.a.requests {
                        return;
                    }
                    let mut out = Outcome::default();
                    let res = match Instant::now() < plan.deadline {
                        true => run_request(&plan, &mut slot, idx, &mut out),
                        false => Err(fail("max-time", "not started before --max-time")),
                    };
                    tally.lock().unwrap().add(plan.a.verbose, idx, &out, res);
                }
            });
        }
    });
    let t = tally.into_inner().unwrap();
    if plan.pattern_len.is_none() && !t.digests.is_empty() {
        match t.digests.len() {
            1 => println!(
                "fnv1a64={:016x} ({} bodies)",
                t.digests.keys().next().unwrap(),
                t.complete
            ),
            n => println!("fnv1a64: {n} distinct digests over {} bodies", t.complete),
        }
    }
    let failed = plan.a.requests as usize - t.complete;
    let reasons: Vec<String> = t.reasons.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let reasons = if reasons.is_empty() {
        "none".into()
    } else {
        reasons.join(", ")
    };
    println!(
        "truncated {} of {} (complete {}, failed {failed}: {reasons}) bytes={} elapsed={:.2}s",
        t.truncated,
        plan.a.requests,
        t.complete,
        t.bytes,
        start.elapsed().as_secs_f64()
    );
    std::process::exit(i32::from(failed > 0));
}
