//! `bufprobe`: what the kernel does with a response's bytes, seen from both ends.
//!
//! Starts the real server (`lastbyte serve --trace-writes …`) with a chosen send buffer, reads
//! `/bytes/<size>` responses with a chosen reader profile (transport, SO_RCVBUF, read size,
//! pace, delay, keep-alive or close), samples the client socket's `SIOCINQ` (on AF_UNIX the
//! exact payload queued but not yet read) on a second thread, and joins those samples to the
//! server's write trace on `CLOCK_MONOTONIC`. Writes `NAME.csv`, `NAME.png`, `NAME.svg` (queued
//! but unread bytes over time, cumulative bytes sent vs read, send completion sizes) and keeps
//! the trace as `NAME-trace.jsonl`.
//!
//! Each response is checked against independent evidence: the trace's sum of send results
//! must equal its head bytes plus the `Content-Length`, and both must equal the bytes the
//! client read (and the body must be the `/bytes` pattern). Exit 0 only when every check
//! holds, 1 otherwise, 2 on usage errors.
//!
//! `--preset readme` runs the scenario set of the README section "What the kernel does with
//! your bytes" into `--out` and writes `summary.md` there.

#[path = "launch.rs"]
mod launch;

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use plotters::prelude::*;
use serde_json::Value;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Chart size in pixels.
const CHART: (u32, u32) = (1100, 960);
/// Read timeout of the client socket: a stalled response fails the run instead of hanging.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on the client's samples and read events kept per scenario.
const MAX_POINTS: usize = 500_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Transport {
    Unix,
    Tcp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Preset {
    /// The README's scenarios: AF_UNIX vs TCP, default vs 16 KiB SO_SNDBUF, fast vs slow
    /// reader, keep-alive vs close, and `--confirm delivered`.
    Readme,
}

#[derive(Parser, Debug, Clone)]
#[command(
    name = "bufprobe",
    version,
    about = "Reader profile vs the real server: client SIOCINQ joined to the server's write trace, CSV and charts"
)]
struct Args {
    /// The lastbyte binary [default: `lastbyte` beside this program]
    #[arg(long)]
    server: Option<PathBuf>,
    /// Run a scenario set into --out (the profile flags below are then ignored)
    #[arg(long, value_enum)]
    preset: Option<Preset>,
    #[arg(long, value_enum, default_value_t = Transport::Unix)]
    transport: Transport,
    /// Response size, `/bytes/<size>` (suffix K = 1024, M = 1048576)
    #[arg(long, default_value = "2M")]
    size: String,
    /// Responses to read, one after another
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    responses: u32,
    /// `Connection: close`, a new connection per response [default: keep-alive, one connection]
    #[arg(long)]
    close: bool,
    /// The server's SO_SNDBUF (`--send-buffer`; 0 = the kernel's default)
    #[arg(long, default_value_t = 0)]
    sndbuf: usize,
    /// The client's SO_RCVBUF (0 = the kernel's default)
    #[arg(long, default_value_t = 0)]
    rcvbuf: usize,
    /// Largest single read (bytes)
    #[arg(long, default_value_t = 65536, value_parser = clap::value_parser!(u64).range(1..=16 << 20))]
    read_size: u64,
    /// Reading pace in body bytes per second (0 = as fast as possible)
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Wait this long after sending each request before reading (milliseconds)
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    delay: u64,
    /// Client SIOCINQ sample interval (microseconds)
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(20..=1_000_000))]
    sample_us: u64,
    /// Extra server flag (repeatable), e.g. `--server-arg=--confirm --server-arg=delivered`
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Output folder
    #[arg(long, default_value = "bufprobe-out")]
    out: PathBuf,
    /// Scenario name (the output files' stem)
    #[arg(long, default_value = "probe")]
    name: String,
    /// Chart title [default: the profile]
    #[arg(long)]
    title: Option<String>,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let (num, mul) = match s.as_bytes().last() {
        Some(b'K') => (&s[..s.len() - 1], 1024),
        Some(b'M') => (&s[..s.len() - 1], 1 << 20),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .filter(|n| *n > 0 && *n <= 64 << 20)
        .ok_or_else(|| format!("--size: expected 1..=64M with an optional K or M, got {s:?}"))
}

fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Unread bytes in a socket's receive queue (`SIOCINQ`), or `None` if the fd is gone.
fn inq(fd: RawFd) -> Option<u64> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int we own; a stale fd only makes it fail.
    let r = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    (r == 0).then_some(n as u64)
}

fn pattern_byte(i: u64) -> u8 {
    ((i / 4) as u32).to_le_bytes()[(i % 4) as usize]
}

/// The server under test, started with a write trace.
struct Server {
    child: Child,
    dir: PathBuf,
    sock: PathBuf,
    tcp: Option<String>,
    trace: PathBuf,
}

impl Server {
    fn start(bin: &Path, a: &Args) -> io::Result<Server> {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "bufprobe-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        let sock = dir.join("s.sock");
        let trace = dir.join("trace.jsonl");
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg("--unix")
            .arg(&sock)
            .args(["--workers", "1", "--log", "warn"])
            .arg("--trace-writes")
            .arg(&trace)
            .arg("--send-buffer")
            .arg(a.sndbuf.to_string());
        if a.transport == Transport::Tcp {
            cmd.args(["--tcp", "127.0.0.1:0"]);
        }
        cmd.args(&a.server_args)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit());
        let want = if a.transport == Transport::Tcp { 2 } else { 1 };
        let (child, tcp) = launch::spawn_listening(&mut cmd, want)
            .map_err(|e| io::Error::new(e.kind(), format!("start {}: {e}", bin.display())))?;
        Ok(Server {
            child,
            dir,
            sock,
            tcp,
            trace,
        })
    }

    /// SIGTERM, bounded wait, then the trace's text.
    fn stop(mut self) -> io::Result<String> {
        if !launch::terminate(&mut self.child) {
            return Err(io::Error::other("the server did not exit after SIGTERM"));
        }
        std::fs::read_to_string(&self.trace)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn fd(&self) -> RawFd {
        match self {
            Stream::Unix(s) => s.as_raw_fd(),
            Stream::Tcp(s) => s.as_raw_fd(),
        }
    }
    fn io(&mut self) -> &mut dyn ReadWrite {
        match self {
            Stream::Unix(s) => s,
            Stream::Tcp(s) => s,
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn connect(server: &Server, a: &Args) -> io::Result<Stream> {
    use socket2::{Domain, SockAddr, Socket, Type};
    let (domain, addr) = match &server.tcp {
        Some(t) => {
            let sa: std::net::SocketAddr = t
                .parse()
                .map_err(|_| io::Error::other(format!("bad address {t}")))?;
            (Domain::IPV4, SockAddr::from(sa))
        }
        None => (Domain::UNIX, SockAddr::unix(&server.sock)?),
    };
    let s = Socket::new(domain, Type::STREAM, None)?;
    if a.rcvbuf > 0 {
        s.set_recv_buffer_size(a.rcvbuf)?;
    }
    s.connect(&addr)?;
    s.set_read_timeout(Some(READ_TIMEOUT))?;
    Ok(match &server.tcp {
        Some(_) => Stream::Tcp(s.into()),
        None => Stream::Unix(s.into()),
    })
}

/// What the client saw: SIOCINQ samples and reads, on `CLOCK_MONOTONIC`.
#[derive(Default)]
struct ClientLog {
    /// (mono_ns, SIOCINQ, bytes read so far)
    samples: Vec<(u64, u64, u64)>,
    /// (mono_ns, bytes of this read, bytes read so far)
    reads: Vec<(u64, u64, u64)>,
    /// Per response: bytes read (head + body) and its `Content-Length`.
    responses: Vec<(u64, u64)>,
}

/// Reads one response at the profile's pace; returns (bytes read, Content-Length).
fn read_one(
    s: &mut Stream,
    a: &Args,
    read_total: &AtomicU64,
    log: &Mutex<ClientLog>,
    bar: &ProgressBar,
) -> Result<(u64, u64), String> {
    let mut buf = vec![0u8; a.read_size as usize];
    let mut head = Vec::new();
    let mut got = 0u64;
    let record = |n: usize| {
        let total = read_total.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        bar.inc(n as u64);
        let mut l = log.lock().unwrap_or_else(|p| p.into_inner());
        if l.reads.len() < MAX_POINTS {
            l.reads.push((mono_ns(), n as u64, total));
        }
    };
    let head_end = loop {
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if head.len() > 64 * 1024 {
            return Err("response head over 64 KiB".into());
        }
        match s.io().read(&mut buf) {
            Ok(0) => return Err(format!("EOF after {} head bytes", head.len())),
            Ok(n) => {
                record(n);
                got += n as u64;
                head.extend_from_slice(&buf[..n]);
            }
            Err(e) => return Err(format!("read error in the head: {e}")),
        }
    };
    let text = String::from_utf8_lossy(&head[..head_end]).into_owned();
    if !text.starts_with("HTTP/1.1 200 ") {
        return Err(format!(
            "unexpected status line {:?}",
            text.lines().next().unwrap_or("")
        ));
    }
    let len: u64 = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .ok_or("no Content-Length")?;
    let mut body = 0u64;
    let check = |bytes: &[u8], at: u64| -> Result<(), String> {
        for (i, b) in bytes.iter().enumerate() {
            let pos = at + i as u64;
            if *b != pattern_byte(pos) {
                return Err(format!("body byte {pos} is not the /bytes pattern"));
            }
        }
        Ok(())
    };
    let early = &head[head_end..];
    if early.len() as u64 > len {
        return Err("more bytes than Content-Length".into());
    }
    check(early, 0)?;
    body += early.len() as u64;
    let started = Instant::now();
    while body < len {
        if a.rate > 0 {
            let due = Duration::from_secs_f64(body as f64 / a.rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let want = (len - body).min(a.read_size) as usize;
        match s.io().read(&mut buf[..want]) {
            Ok(0) => return Err(format!("EOF after {body} of {len} body bytes (truncated)")),
            Ok(n) => {
                record(n);
                check(&buf[..n], body)?;
                body += n as u64;
                got += n as u64;
            }
            Err(e) => {
                return Err(format!(
                    "read error after {body} of {len} body bytes: {e} (truncated)"
                ))
            }
        }
    }
    if a.close {
        // After `Connection: close` the next thing is a clean EOF.
        match s.io().read(&mut buf[..1]) {
            Ok(0) => {}
            Ok(_) => return Err("bytes after the response on a closing connection".into()),
            Err(e) => return Err(format!("no clean EOF after the response: {e}")),
        }
    }
    Ok((got, len))
}

/// One tiny request first, so the server's one-time work (building the `/bytes` pattern
/// buffer) is not in the picture; its response is left out of the figures.
fn warm_up(server: &Server, a: &Args) -> Result<(), String> {
    let mut s = connect(server, a).map_err(|e| format!("connect: {e}"))?;
    s.io()
        .write_all(b"GET /bytes/1 HTTP/1.1\r\nHost: bufprobe\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("warm-up: {e}"))?;
    let mut sink = Vec::new();
    s.io()
        .read_to_end(&mut sink)
        .map_err(|e| format!("warm-up: {e}"))?;
    if !sink.starts_with(b"HTTP/1.1 200 ") {
        return Err("warm-up request failed".into());
    }
    Ok(())
}

/// Runs the client side of a scenario; the sampler runs beside it.
fn run_client(server: &Server, a: &Args, size: u64) -> Result<ClientLog, String> {
    let log = Arc::new(Mutex::new(ClientLog::default()));
    let fd = Arc::new(AtomicI32::new(-1));
    let read_total = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (log, fd, read_total, stop) =
            (log.clone(), fd.clone(), read_total.clone(), stop.clone());
        let every = Duration::from_micros(a.sample_us);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let f = fd.load(Ordering::Acquire);
                if f >= 0 {
                    if let Some(q) = inq(f) {
                        let t = mono_ns();
                        let r = read_total.load(Ordering::Relaxed);
                        let mut l = log.lock().unwrap_or_else(|p| p.into_inner());
                        if l.samples.len() < MAX_POINTS {
                            l.samples.push((t, q, r));
                        }
                    }
                }
                std::thread::sleep(every);
            }
        })
    };
    let bar = ProgressBar::with_draw_target(
        Some(size * a.responses as u64),
        ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(a.name.clone());
    let result = (|| -> Result<(), String> {
        let mut conn: Option<Stream> = None;
        for _ in 0..a.responses {
            let s = match &mut conn {
                Some(s) => s,
                None => {
                    let s = connect(server, a).map_err(|e| format!("connect: {e}"))?;
                    fd.store(s.fd(), Ordering::Release);
                    conn.insert(s)
                }
            };
            let close = if a.close { "Connection: close\r\n" } else { "" };
            let req = format!("GET /bytes/{size} HTTP/1.1\r\nHost: bufprobe\r\n{close}\r\n");
            s.io()
                .write_all(req.as_bytes())
                .map_err(|e| format!("send request: {e}"))?;
            if a.delay > 0 {
                std::thread::sleep(Duration::from_millis(a.delay));
            }
            let r = read_one(s, a, &read_total, &log, &bar)?;
            log.lock()
                .unwrap_or_else(|p| p.into_inner())
                .responses
                .push(r);
            if a.close {
                fd.store(-1, Ordering::Release);
                conn = None;
            }
        }
        fd.store(-1, Ordering::Release);
        Ok(())
    })();
    bar.finish_and_clear();
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    result?;
    let log = std::mem::take(&mut *log.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(log)
}

/// One send completion from the trace.
struct Send {
    mono: u64,
    result: i64,
    submitted: u64,
    outq: Option<u64>,
    /// Index of the response it belongs to.
    response: usize,
}

/// One response summary from the trace.
struct Resp {
    sent: u64,
    head: u64,
    body: u64,
    sends: u64,
    short_sends: u64,
    drained_ns: Option<u64>,
    half_close_ns: Option<u64>,
    confirmed_ns: Option<u64>,
    /// `CLOCK_MONOTONIC` when the response was put in the ledger (the zero of the `_ns` times).
    start_mono: u64,
}

impl Resp {
    fn at(&self, ns: Option<u64>) -> Option<u64> {
        ns.map(|n| self.start_mono + n)
    }
}

struct Trace {
    sends: Vec<Send>,
    responses: Vec<Resp>,
    outq_unit: String,
}

/// Parses the trace; the first `skip` responses (by request id) are left out with their sends.
fn parse_trace(text: &str, skip: usize) -> Result<Trace, String> {
    let mut keyed: Vec<((u64, u64), Resp)> = Vec::new();
    // (conn, req), then a send's mono_ns, result, submitted and outq.
    type RawSend = ((u64, u64), u64, i64, u64, Option<u64>);
    let mut raw_sends: Vec<RawSend> = Vec::new();
    let mut unit = String::from("none");
    for (i, line) in text.lines().enumerate() {
        let v: Value =
            serde_json::from_str(line).map_err(|e| format!("trace line {}: {e}", i + 1))?;
        let u = |k: &str| v[k].as_u64();
        let key = (u("conn").unwrap_or(0), u("req").unwrap_or(0));
        match v["type"].as_str() {
            Some("send") => {
                if let Some(q) = v["outq_unit"].as_str() {
                    unit = q.to_string();
                }
                raw_sends.push((
                    key,
                    u("mono_ns").unwrap_or(0),
                    v["result"].as_i64().unwrap_or(0),
                    u("submitted").unwrap_or(0),
                    u("outq"),
                ));
            }
            Some("response") if u("status") != Some(100) => keyed.push((
                key,
                Resp {
                    sent: u("sent").unwrap_or(0),
                    head: u("head_bytes").unwrap_or(0),
                    body: u("body_bytes").unwrap_or(0),
                    sends: u("sends").unwrap_or(0),
                    short_sends: u("short_sends").unwrap_or(0),
                    drained_ns: u("drained_ns"),
                    half_close_ns: u("half_close_ns"),
                    confirmed_ns: u("confirmed_ns"),
                    start_mono: u("mono_ns")
                        .unwrap_or(0)
                        .saturating_sub(u("ns").unwrap_or(0)),
                },
            )),
            _ => {}
        }
    }
    // Request ids grow in the order requests arrive; the client sends one at a time.
    keyed.sort_by_key(|(k, _)| k.1);
    keyed.drain(..skip.min(keyed.len()));
    let index = |k: (u64, u64)| keyed.iter().position(|(kk, _)| *kk == k);
    let mut sends = Vec::with_capacity(raw_sends.len());
    for (k, mono, result, submitted, outq) in raw_sends {
        if let Some(response) = index(k) {
            sends.push(Send {
                mono,
                result,
                submitted,
                outq,
                response,
            });
        }
    }
    Ok(Trace {
        sends,
        responses: keyed.into_iter().map(|(_, r)| r).collect(),
        outq_unit: unit,
    })
}

/// A scenario's measured figures (one row of the preset's summary).
struct Figures {
    name: String,
    profile: String,
    ok: bool,
    sends: u64,
    short_sends: u64,
    median_send: u64,
    max_send: u64,
    max_inq: u64,
    max_outq: u64,
    outq_unit: String,
    /// Median over responses of time from drained to half-close, and to confirmed.
    half_close_after_drain_ms: Option<f64>,
    confirm_after_drain_ms: Option<f64>,
    elapsed_ms: f64,
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

fn median_f(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

fn kib(n: u64) -> String {
    format!("{:.1} KiB", n as f64 / 1024.0)
}

fn profile_text(a: &Args, size: u64) -> String {
    let t = match a.transport {
        Transport::Unix => "AF_UNIX",
        Transport::Tcp => "TCP loopback",
    };
    let buf = |n: usize| {
        if n == 0 {
            "default".to_string()
        } else {
            format!("{} KiB", n / 1024)
        }
    };
    let reader = if a.rate == 0 {
        "fast reader".to_string()
    } else {
        format!("reader {:.0} MB/s", a.rate as f64 / 1e6)
    };
    let extra = if a.server_args.is_empty() {
        String::new()
    } else {
        format!(", server {}", a.server_args.join(" "))
    };
    format!(
        "{t}, {}x {}, {}, SO_SNDBUF {}, SO_RCVBUF {}, {reader}, reads of {}{extra}",
        a.responses,
        kib(size).replace(".0 KiB", " KiB"),
        if a.close { "close" } else { "keep-alive" },
        buf(a.sndbuf),
        buf(a.rcvbuf),
        kib(a.read_size).replace(".0 KiB", " KiB"),
    )
}

/// Runs one scenario end to end: server, client, trace, checks, CSV and charts.
fn run_scenario(bin: &Path, a: &Args) -> Result<Figures, String> {
    let size = parse_size(&a.size)?;
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let profile = profile_text(a, size);
    let server = Server::start(bin, a).map_err(|e| e.to_string())?;
    warm_up(&server, a)?;
    let t0 = mono_ns();
    let client = run_client(&server, a, size);
    let elapsed_ms = (mono_ns() - t0) as f64 / 1e6;
    let trace_text = server.stop().map_err(|e| format!("trace: {e}"))?;
    let client = client?;
    let trace = parse_trace(&trace_text, 1)?;
    let stem = a.out.join(&a.name);
    std::fs::write(stem.with_extension("trace.jsonl"), &trace_text)
        .map_err(|e| format!("write trace: {e}"))?;

    println!("bufprobe {}: {profile}", a.name);
    let mut ok = trace.responses.len() == client.responses.len();
    if !ok {
        println!(
            "MISMATCH: the trace has {} responses, the client read {}",
            trace.responses.len(),
            client.responses.len()
        );
    }
    for (i, (r, (read, len))) in trace.responses.iter().zip(&client.responses).enumerate() {
        let sum: i64 = trace
            .sends
            .iter()
            .filter(|s| s.response == i && s.result > 0)
            .map(|s| s.result)
            .sum();
        let good =
            sum as u64 == r.sent && r.sent == r.head + r.body && r.body == *len && r.sent == *read;
        ok &= good;
        println!(
            "response {}: trace sum of results {} = head {} + Content-Length {}; client read {}: {}",
            i + 1,
            sum,
            r.head,
            r.body,
            read,
            if good { "ok" } else { "MISMATCH" }
        );
    }
    let results: Vec<u64> = trace
        .sends
        .iter()
        .filter(|s| s.result > 0)
        .map(|s| s.result as u64)
        .collect();
    let ms = |v: Option<u64>| v.map(|n| n as f64 / 1e6);
    let fig = Figures {
        name: a.name.clone(),
        profile: profile.clone(),
        ok,
        sends: trace.responses.iter().map(|r| r.sends).sum(),
        short_sends: trace.responses.iter().map(|r| r.short_sends).sum(),
        median_send: median(results.clone()),
        max_send: results.iter().copied().max().unwrap_or(0),
        max_inq: client.samples.iter().map(|s| s.1).max().unwrap_or(0),
        max_outq: trace.sends.iter().filter_map(|s| s.outq).max().unwrap_or(0),
        outq_unit: trace.outq_unit.clone(),
        half_close_after_drain_ms: median_f(
            trace
                .responses
                .iter()
                .filter_map(|r| Some(ms(r.half_close_ns)? - ms(r.drained_ns)?))
                .collect(),
        ),
        confirm_after_drain_ms: median_f(
            trace
                .responses
                .iter()
                .filter_map(|r| Some(ms(r.confirmed_ns)? - ms(r.drained_ns)?))
                .collect(),
        ),
        elapsed_ms,
    };
    println!(
        "sends {} (short {}), completion median {}, max {}; client SIOCINQ max {}; server SIOCOUTQ max {} ({})",
        fig.sends,
        fig.short_sends,
        kib(fig.median_send),
        kib(fig.max_send),
        kib(fig.max_inq),
        kib(fig.max_outq),
        fig.outq_unit
    );
    if let Some(h) = fig.half_close_after_drain_ms {
        println!("half-close {h:.3} ms after the ledger drained (median)");
    }
    if let Some(c) = fig.confirm_after_drain_ms {
        println!(
            "send queue empty (--confirm delivered) {c:.3} ms after the ledger drained (median)"
        );
    }
    write_csv(&stem.with_extension("csv"), t0, &client, &trace)?;
    let title = a.title.clone().unwrap_or(profile);
    draw(
        &stem.with_extension("png"),
        &stem.with_extension("svg"),
        &title,
        t0,
        &client,
        &trace,
    )?;
    println!(
        "wrote {0}.csv {0}.png {0}.svg {0}.trace.jsonl",
        stem.display()
    );
    Ok(fig)
}

fn write_csv(path: &Path, t0: u64, c: &ClientLog, t: &Trace) -> Result<(), String> {
    // (mono, line) merged by time.
    let mut rows: Vec<(u64, String)> = Vec::new();
    let ms = |m: u64| m.saturating_sub(t0) as f64 / 1e6;
    let mut sent = 0u64;
    for s in &t.sends {
        sent += s.result.max(0) as u64;
        let outq = s.outq.map_or(String::new(), |q| q.to_string());
        rows.push((
            s.mono,
            format!(
                "{:.4},send,{},{},{},{},,,{},{}",
                ms(s.mono),
                s.response + 1,
                s.submitted,
                s.result,
                sent,
                outq,
                t.outq_unit
            ),
        ));
    }
    for (m, n, total) in &c.reads {
        rows.push((
            m.to_owned(),
            format!("{:.4},read,,,{n},,{total},,,", ms(*m)),
        ));
    }
    for (m, q, total) in &c.samples {
        rows.push((
            m.to_owned(),
            format!("{:.4},sample,,,,,{total},{q},,", ms(*m)),
        ));
    }
    rows.sort_by_key(|r| r.0);
    let mut out = String::from(
        "t_ms,event,response,submitted,result,sent_total,read_total,client_inq,server_outq,outq_unit\n",
    );
    for (_, r) in rows {
        out.push_str(&r);
        out.push('\n');
    }
    std::fs::write(path, out).map_err(|e| format!("{}: {e}", path.display()))
}

fn draw(
    png: &Path,
    svg: &Path,
    title: &str,
    t0: u64,
    c: &ClientLog,
    t: &Trace,
) -> Result<(), String> {
    let (w, h) = CHART;
    let mut pixels = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, CHART).into_drawing_area();
        plot(root, title, t0, c, t).map_err(|e| format!("chart: {e}"))?;
    }
    let img = image::RgbImage::from_raw(w, h, pixels).ok_or("chart buffer size")?;
    img.save(png)
        .map_err(|e| format!("{}: {e}", png.display()))?;
    let root = SVGBackend::new(svg, CHART).into_drawing_area();
    plot(root, title, t0, c, t).map_err(|e| format!("chart: {e}"))
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

type Chart<'a, DB> = ChartContext<
    'a,
    DB,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// One panel: a caption, time in ms across, `unit` up to `ymax`.
fn panel<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
    unit: &str,
    end: f64,
    ymax: f64,
) -> Result<Chart<'a, DB>, Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let mut ch = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 15))
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..end, 0.0..ymax)?;
    ch.configure_mesh()
        .x_desc("ms")
        .y_desc(unit)
        .label_style(("sans-serif", 12))
        .draw()?;
    Ok(ch)
}

fn legend<'a, DB: DrawingBackend + 'a>(
    ch: &mut Chart<'a, DB>,
    pos: SeriesLabelPosition,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    ch.configure_series_labels()
        .position(pos)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .draw()?;
    Ok(())
}

fn plot<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    t0: u64,
    c: &ClientLog,
    t: &Trace,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 18))?;
    let panels = root.split_evenly((3, 1));
    let ms = |m: u64| m.saturating_sub(t0) as f64 / 1e6;
    let end = c
        .samples
        .iter()
        .map(|s| s.0)
        .chain(c.reads.iter().map(|r| r.0))
        .chain(t.sends.iter().map(|s| s.mono))
        .map(ms)
        .fold(1.0f64, f64::max);
    let k = |n: u64| n as f64 / 1024.0;

    // 1. Queued but unread.
    let ymax = c
        .samples
        .iter()
        .map(|s| k(s.1))
        .chain(t.sends.iter().filter_map(|s| s.outq.map(k)))
        .fold(1.0f64, f64::max)
        * 1.1;
    let mut ch = panel(
        &panels[0],
        "Queued, not yet read: client SIOCINQ (payload) and server SIOCOUTQ after each send",
        "KiB",
        end,
        ymax,
    )?;
    ch.draw_series(LineSeries::new(
        c.samples.iter().map(|s| (ms(s.0), k(s.1))),
        &BLUE,
    ))?
    .label("client SIOCINQ (unread payload)")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
    let outq_label = if t.outq_unit == "unix_kmem_bytes" {
        "server SIOCOUTQ (AF_UNIX: kernel memory, not payload)"
    } else {
        "server SIOCOUTQ (TCP: unacknowledged payload)"
    };
    ch.draw_series(
        t.sends
            .iter()
            .filter_map(|s| Some(Circle::new((ms(s.mono), k(s.outq?)), 3, RED.filled()))),
    )?
    .label(outq_label)
    .legend(|(x, y)| Circle::new((x + 8, y), 3, RED.filled()));
    legend(&mut ch, SeriesLabelPosition::UpperRight)?;

    // 2. Cumulative bytes sent vs read.
    let mib = |n: u64| n as f64 / 1048576.0;
    // A step: the sum stays flat between completions.
    let mut sent = 0u64;
    let mut sent_pts: Vec<(f64, f64)> = vec![(0.0, 0.0)];
    for s in &t.sends {
        let x = ms(s.mono);
        sent_pts.push((x, mib(sent)));
        sent += s.result.max(0) as u64;
        sent_pts.push((x, mib(sent)));
    }
    let read_pts: Vec<(f64, f64)> = std::iter::once((0.0, 0.0))
        .chain(c.reads.iter().map(|r| (ms(r.0), mib(r.2))))
        .collect();
    let ymax = sent_pts
        .iter()
        .chain(&read_pts)
        .map(|p| p.1)
        .fold(0.01f64, f64::max)
        * 1.05;
    let mut ch = panel(
        &panels[1],
        "Cumulative bytes: accepted by the kernel (send completions) vs read by the client",
        "MiB",
        end,
        ymax,
    )?;
    ch.draw_series(LineSeries::new(sent_pts, &RED))?
        .label("sent (sum of send results)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED));
    ch.draw_series(LineSeries::new(read_pts, &BLUE))?
        .label("read by the client")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
    // When each response's ledger drained, when it was confirmed delivered, when it was
    // half-closed.
    let green = RGBColor(0, 150, 0);
    for (pick, color, label) in [
        (0, BLACK, "ledger drained (every byte queued)"),
        (1, green, "send queue empty (--confirm delivered)"),
        (2, MAGENTA, "half-close"),
    ] {
        let marks: Vec<f64> = t
            .responses
            .iter()
            .filter_map(|r| {
                let ns = [r.drained_ns, r.confirmed_ns, r.half_close_ns][pick];
                r.at(ns).map(ms)
            })
            .collect();
        if marks.is_empty() {
            continue;
        }
        let style = ShapeStyle::from(color).stroke_width(1);
        ch.draw_series(
            marks
                .iter()
                .map(|x| PathElement::new(vec![(*x, 0.0), (*x, ymax)], style)),
        )?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x + 8, y - 6), (x + 8, y + 6)], style));
    }
    legend(&mut ch, SeriesLabelPosition::LowerRight)?;

    // 3. Completion sizes.
    let ymax = t
        .sends
        .iter()
        .map(|s| k(s.result.max(0) as u64))
        .fold(1.0f64, f64::max)
        * 1.1;
    let mut ch = panel(
        &panels[2],
        "Send completions: bytes each send took (red: short, the tail was resubmitted)",
        "KiB",
        end,
        ymax,
    )?;
    ch.draw_series(t.sends.iter().filter(|s| s.result > 0).map(|s| {
        let short = (s.result as u64) < s.submitted;
        let color = if short { RED } else { BLUE };
        Circle::new((ms(s.mono), k(s.result as u64)), 3, color.filled())
    }))?;
    root.present()?;
    Ok(())
}

/// Bytes a non-blocking writer puts into a connected socket pair before `EAGAIN`, in writes
/// of `write` bytes.
fn capacity(tcp: bool, sndbuf: usize, write: usize) -> io::Result<u64> {
    use socket2::Socket;
    let (w, _r): (Socket, Box<dyn std::any::Any>) = if tcp {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        let c = TcpStream::connect(l.local_addr()?)?;
        let (r, _) = l.accept()?;
        (Socket::from(c), Box::new(r))
    } else {
        let (a, b) = UnixStream::pair()?;
        (Socket::from(a), Box::new(b))
    };
    if sndbuf > 0 {
        w.set_send_buffer_size(sndbuf)?;
    }
    w.set_nonblocking(true)?;
    let chunk = vec![0u8; write];
    let mut total = 0u64;
    let mut idle = 0;
    // TCP loopback may take a moment to move bytes to the receiver; stop after 50 ms of EAGAIN.
    while idle < 50 {
        match (&w).write(&chunk) {
            Ok(n) => {
                total += n as u64;
                idle = 0;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                idle += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e),
        }
        if total > 256 << 20 {
            break;
        }
    }
    Ok(total)
}

fn readme_scenarios(base: &Args) -> Vec<Args> {
    let mk = |name: &str, t: Transport, responses: u32, close: bool, sndbuf: usize, rate: u64| {
        let mut a = base.clone();
        a.name = name.into();
        a.transport = t;
        a.size = "2M".into();
        a.responses = responses;
        a.close = close;
        a.sndbuf = sndbuf;
        a.rcvbuf = 0;
        a.rate = rate;
        a.read_size = if rate > 0 { 16384 } else { 65536 };
        a.delay = 0;
        a.server_args.clear();
        a.title = None;
        a
    };
    const SLOW: u64 = 8_000_000;
    let mut v = vec![
        mk("unix-fast-keepalive", Transport::Unix, 3, false, 0, 0),
        mk("unix-slow-close", Transport::Unix, 1, true, 0, SLOW),
        mk(
            "unix-sndbuf16k-slow-close",
            Transport::Unix,
            1,
            true,
            16384,
            SLOW,
        ),
        mk("unix-slow-keepalive", Transport::Unix, 2, false, 0, SLOW),
        mk("tcp-fast-keepalive", Transport::Tcp, 3, false, 0, 0),
        mk("tcp-slow-close", Transport::Tcp, 1, true, 0, SLOW),
        mk(
            "tcp-sndbuf16k-slow-close",
            Transport::Tcp,
            1,
            true,
            16384,
            SLOW,
        ),
    ];
    let mut confirm = mk("unix-slow-close-confirm", Transport::Unix, 1, true, 0, SLOW);
    confirm.server_args = vec!["--confirm".into(), "delivered".into()];
    v.push(confirm);
    let mut confirm = mk("tcp-slow-close-confirm", Transport::Tcp, 1, true, 0, SLOW);
    confirm.server_args = vec!["--confirm".into(), "delivered".into()];
    v.push(confirm);
    v
}

fn summary_md(figs: &[Figures], caps: &str) -> String {
    let mut s = String::from(
        "| scenario | profile | sends (short) | completion median / max | client SIOCINQ max | server SIOCOUTQ max | half-close after drain | queue empty after drain | elapsed | checks |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let opt = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.2} ms"));
    for f in figs {
        let unit = if f.outq_unit == "unix_kmem_bytes" {
            " (kmem)"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} ({}) | {} / {} | {} | {}{} | {} | {} | {:.0} ms | {} |",
            f.name,
            f.profile,
            f.sends,
            f.short_sends,
            kib(f.median_send),
            kib(f.max_send),
            kib(f.max_inq),
            kib(f.max_outq),
            unit,
            opt(f.half_close_after_drain_ms),
            opt(f.confirm_after_drain_ms),
            f.elapsed_ms,
            if f.ok { "ok" } else { "MISMATCH" }
        );
    }
    s.push('\n');
    s.push_str(caps);
    s
}

fn capacities() -> String {
    let mut s = String::from(
        "Bytes a non-blocking writer puts into a connected pair before EAGAIN (nobody reads):\n\n",
    );
    for (name, tcp, sndbuf) in [
        ("AF_UNIX, default SO_SNDBUF", false, 0),
        ("AF_UNIX, SO_SNDBUF 16 KiB", false, 16384),
        ("TCP loopback, default buffers", true, 0),
        ("TCP loopback, SO_SNDBUF 16 KiB", true, 16384),
    ] {
        let _ = write!(s, "- {name}:");
        for write in [4096, 1 << 20] {
            match capacity(tcp, sndbuf, write) {
                Ok(n) => {
                    let _ = write!(s, " {n} bytes in writes of {}", kib(write as u64));
                }
                Err(e) => {
                    let _ = write!(s, " error {e} in writes of {}", kib(write as u64));
                }
            }
            s.push_str(if write == 4096 { ";" } else { "\n" });
        }
    }
    s
}

fn main() {
    let a = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    if let Err(e) = parse_size(&a.size) {
        eprintln!("bufprobe: {e}");
        std::process::exit(2);
    }
    launch::register_font();
    let bin = a.server.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("lastbyte")))
            .unwrap_or_else(|| PathBuf::from("lastbyte"))
    });
    let scenarios = match a.preset {
        Some(Preset::Readme) => readme_scenarios(&a),
        None => vec![a.clone()],
    };
    let mut figs = Vec::new();
    let mut ok = true;
    for s in &scenarios {
        match run_scenario(&bin, s) {
            Ok(f) => {
                ok &= f.ok;
                figs.push(f);
            }
            Err(e) => {
                println!("bufprobe {}: FAILED: {e}", s.name);
                ok = false;
            }
        }
        println!();
    }
    if a.preset.is_some() {
        let md = summary_md(&figs, &capacities());
        let path = a.out.join("summary.md");
        if let Err(e) = std::fs::write(&path, &md) {
            eprintln!("bufprobe: {}: {e}", path.display());
            ok = false;
        }
        print!("{md}");
        println!("wrote {}", path.display());
    }
    std::process::exit(if ok { 0 } else { 1 });
}
