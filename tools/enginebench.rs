//! `enginebench`: lastbyte's io_uring engine against `--engine hyper` on the same machine, the
//! same routes and the same work, in one run; and the hyper 1.10 truncation reproduced.
//!
//! It starts three servers — `lastbyte` (io_uring), `lastbyte --engine hyper` (the hyper in
//! this crate's Cargo.lock) and the reproduction build `lastbyte-hyper110 --engine hyper`
//! (hyper 1.10.1, tools/hyper110) — each with `--workers 1 --cpu-threads 1`, all pinned to one
//! core; the load generator, `h2load --h1` (Debian's nghttp2-client, installed if missing and
//! allowed), runs pinned to another core with one thread. Every throughput workload runs once
//! per engine per round, alternating which engine goes first; the table gives medians. Server
//! CPU comes from `/proc/<pid>/stat` over each run, h2load's from `getrusage`; a run whose
//! h2load used ≥ 95 % of its core is flagged as tool-bound. The AF_UNIX socketpair copy
//! throughput is measured in the same run as the physical limit for `/bytes/2M`. Truncations
//! are counted by `slowread` (this crate's verifying client): `POST /bytes/2M` with a declared
//! body never sent (Unix) or an upload the handler never reads (TCP), `Connection: close`, a
//! slow reader.
//!
//! Writes `<out>/enginebench.md` (the table), `<out>/runs.csv` (every run) and
//! `<out>/ratios.png|svg` (the chart), and prints the table. Exit 0 when every run completed
//! (targets missed are reported, not failed), 1 when a run could not be made, 2 on usage errors.

#[path = "launch.rs"]
mod launch;

use clap::Parser;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The lock files that pin each build's hyper; the table names the versions they hold.
static MAIN_LOCK: &str = include_str!("../Cargo.lock");
static REPRO_LOCK: &str = include_str!("hyper110/Cargo.lock");

const CHART: (u32, u32) = (1100, 820);
const BOUNDARY: &str = "enginebench-boundary-7d1c3f";

#[derive(Parser, Debug, Clone)]
#[command(
    name = "enginebench",
    version,
    about = "lastbyte (io_uring) vs --engine hyper, side by side; the hyper 1.10 truncation reproduced"
)]
struct Args {
    /// Rounds; each throughput workload runs once per engine per round, alternating the order
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// Seconds of h2load load per run
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=120))]
    duration: u32,
    /// h2load connections for GET /bytes/1K
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1000))]
    connections: u32,
    /// Requests in flight per connection for the pipelined /bytes/1K run
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(2..=256))]
    pipeline: u32,
    /// Photo for /transform (default: the colorfulcups 2560x1600 JPEG in tests/fixtures)
    #[arg(long)]
    photo: Option<PathBuf>,
    /// Requests per truncation workload per round
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    trunc_requests: u64,
    /// The lastbyte binary (default: next to this one)
    #[arg(long)]
    lastbyte: Option<PathBuf>,
    /// The hyper 1.10.1 reproduction binary (default: build tools/hyper110 into this target dir)
    #[arg(long)]
    hyper110: Option<PathBuf>,
    /// Core the servers run on
    #[arg(long, default_value_t = 0)]
    server_cpu: usize,
    /// Core h2load and slowread run on
    #[arg(long, default_value_t = 1)]
    client_cpu: usize,
    /// Output directory
    #[arg(long, default_value = "bench-out/engines")]
    out: PathBuf,
    /// Only these parts (comma-separated): 1k, 1k-pipe, 2m, transform, limit, truncation
    #[arg(long, value_delimiter = ',', value_parser = ["1k", "1k-pipe", "2m", "transform", "limit", "truncation"])]
    only: Vec<String>,
}

impl Args {
    fn wants(&self, part: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| p == part)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Engine {
    Lastbyte,
    Hyper,
    Hyper110,
}

impl Engine {
    fn label(self) -> String {
        match self {
            Engine::Lastbyte => "lastbyte".into(),
            Engine::Hyper => format!("hyper {}", locked("hyper", MAIN_LOCK)),
            Engine::Hyper110 => format!("hyper {}", locked("hyper", REPRO_LOCK)),
        }
    }
}

/// The version of `name` a Cargo.lock pins.
fn locked(name: &str, lock: &str) -> String {
    let key = format!("name = \"{name}\"\nversion = \"");
    lock.find(&key)
        .and_then(|i| {
            let rest = &lock[i + key.len()..];
            rest.find('"').map(|j| rest[..j].to_string())
        })
        .unwrap_or_else(|| "?".into())
}

/// Pins the child to `cpu` before exec.
fn pin(cmd: &mut Command, cpu: usize) {
    // SAFETY: the closure only calls sched_setaffinity(2) on a stack value, which is
    // async-signal-safe, between fork and exec.
    unsafe {
        cmd.pre_exec(move || pin_current(cpu));
    }
}

/// Pins the calling thread to `cpu`.
fn pin_current(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; zeroed is a valid empty set; CPU_SET bounds-checks.
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        set
    };
    // SAFETY: a valid set of the size passed, for the calling thread (0).
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// User + system CPU seconds of a live process, from `/proc/<pid>/stat`.
fn proc_cpu(pid: u32) -> io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .ok_or_else(|| io::Error::other("bad /proc stat"))?;
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields after the command: state is field 3, utime 14, stime 15.
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok((tick(11) + tick(12)) as f64 / hz)
}

/// CPU seconds of all waited-for children so far.
fn children_cpu() -> f64 {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

struct Server {
    child: Child,
    dir: PathBuf,
    sock: PathBuf,
    tcp: String,
}

impl Server {
    fn start(engine: Engine, bin: &Path, cpu: usize) -> io::Result<Server> {
        let dir =
            std::env::temp_dir().join(format!("enginebench-{}-{:?}", std::process::id(), engine));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let sock = dir.join("s.sock");
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg("--unix")
            .arg(&sock)
            .args([
                "--tcp",
                "127.0.0.1:0",
                "--workers",
                "1",
                "--cpu-threads",
                "1",
            ])
            .args(["--log", "warn", "--engine"])
            .arg(if engine == Engine::Lastbyte {
                "uring"
            } else {
                "hyper"
            })
            .stdin(Stdio::null())
            .stderr(Stdio::null());
        pin(&mut cmd, cpu);
        let (child, tcp) = launch::spawn_listening(&mut cmd, 2)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", bin.display())))?;
        Ok(Server {
            child,
            dir,
            sock,
            tcp: tcp.ok_or_else(|| io::Error::other("no TCP listener reported"))?,
        })
    }

    fn cpu(&self) -> f64 {
        proc_cpu(self.child.id()).unwrap_or(f64::NAN)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        launch::terminate(&mut self.child);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One h2load throughput workload.
struct Workload {
    key: &'static str,
    /// Chart label.
    short: &'static str,
    title: String,
    path: &'static str,
    conns: u32,
    pipeline: u32,
    /// POST body file and its content type.
    data: Option<(PathBuf, String)>,
    /// Body bytes per response, for throughput.
    body: u64,
}

/// What one h2load run measured.
#[derive(Clone, Debug, Default)]
struct Run {
    rps: f64,
    done: u64,
    non2xx: u64,
    failed: u64,
    wall: f64,
    server_cpu: f64,
    client_cpu: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl Run {
    fn cpu_per_req_us(&self) -> f64 {
        self.server_cpu / self.done.max(1) as f64 * 1e6
    }
    fn client_util(&self) -> f64 {
        self.client_cpu / self.wall.max(1e-9)
    }
}

fn h2load(a: &Args, srv: &Server, w: &Workload, log: &Path) -> io::Result<Run> {
    let mut cmd = Command::new("h2load");
    cmd.arg("--h1")
        .arg(format!("--base-uri=unix:{}", srv.sock.display()))
        .args(["-t", "1", "-c"])
        .arg(w.conns.to_string())
        .arg("-m")
        .arg(w.pipeline.to_string())
        .arg("-D")
        .arg(a.duration.to_string())
        .arg(format!("--log-file={}", log.display()));
    if let Some((file, ct)) = &w.data {
        cmd.arg("-d")
            .arg(file)
            .arg("-H")
            .arg(format!("content-type: {ct}"));
    }
    cmd.arg(format!("http://localhost{}", w.path))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    pin(&mut cmd, a.client_cpu);
    let (cpu0, kids0, t0) = (srv.cpu(), children_cpu(), Instant::now());
    let mut child = cmd.spawn().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("h2load: {e} (apt-get install nghttp2-client)"),
        )
    })?;
    let mut out = String::new();
    let mut err = String::new();
    let mut so = child.stdout.take().expect("piped");
    let mut se = child.stderr.take().expect("piped");
    let eh = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let _ = so.read_to_string(&mut out);
    let deadline = Instant::now() + Duration::from_secs(u64::from(a.duration) + 60);
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other("h2load did not finish"));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    err.push_str(&eh.join().unwrap_or_default());
    let wall = t0.elapsed().as_secs_f64();
    let (cpu1, kids1) = (srv.cpu(), children_cpu());
    if !status.success() {
        return Err(io::Error::other(format!("h2load failed: {out}{err}")));
    }
    let mut r = parse_h2load(&out)
        .ok_or_else(|| io::Error::other(format!("unreadable h2load output:\n{out}{err}")))?;
    r.wall = wall;
    r.server_cpu = cpu1 - cpu0;
    r.client_cpu = kids1 - kids0;
    let mut lat: Vec<u64> = std::fs::read_to_string(log)?
        .lines()
        .filter_map(|l| l.split('\t').nth(2)?.trim().parse().ok())
        .collect();
    lat.sort_unstable();
    let pct = |p: f64| {
        if lat.is_empty() {
            f64::NAN
        } else {
            let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
            lat[i] as f64 / 1000.0
        }
    };
    r.p50_ms = pct(0.50);
    r.p99_ms = pct(0.99);
    let _ = std::fs::remove_file(log);
    Ok(r)
}

/// Reads h2load's summary: `finished in 5.00s, 52066.60 req/s, …`, `requests: … done, …
/// succeeded, … failed`, `status codes: N 2xx, …`.
fn parse_h2load(out: &str) -> Option<Run> {
    let mut r = Run::default();
    let num_before = |line: &str, suffix: &str| -> Option<f64> {
        let i = line.find(suffix)?;
        line[..i].rsplit([' ', ',']).next()?.trim().parse().ok()
    };
    let mut seen = 0;
    for line in out.lines() {
        if line.starts_with("finished in ") {
            r.rps = num_before(line, " req/s")?;
            seen += 1;
        } else if let Some(rest) = line.strip_prefix("requests: ") {
            r.done = num_before(rest, " done")? as u64;
            r.failed = num_before(rest, " failed")? as u64 + num_before(rest, " errored")? as u64;
            seen += 1;
        } else if let Some(rest) = line.strip_prefix("status codes: ") {
            let ok = num_before(rest, " 2xx")? as u64;
            r.non2xx = r.done.saturating_sub(ok);
            seen += 1;
        }
    }
    (seen == 3).then_some(r)
}

/// AF_UNIX socketpair copy throughput (bytes/s) over `pairs` socketpairs at once, as many as
/// the `/bytes/2M` workload has connections: per pair a writer thread on `wcpu` writing 2 MiB
/// buffers and a reader thread on `rcpu` reading 256 KiB at a time, for `secs`.
fn socketpair_limit(pairs: u32, secs: f64, wcpu: usize, rcpu: usize) -> io::Result<f64> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    let t0 = Instant::now();
    for _ in 0..pairs {
        let (mut w, mut r) = UnixStream::pair()?;
        writers.push(std::thread::spawn(move || {
            let _ = pin_current(wcpu);
            let buf = vec![0x5au8; 2 << 20];
            while w.write_all(&buf).is_ok() {}
        }));
        let s = stop.clone();
        readers.push(std::thread::spawn(move || -> io::Result<u64> {
            pin_current(rcpu)?;
            let mut buf = vec![0u8; 256 << 10];
            let mut n = 0u64;
            while !s.load(Ordering::Relaxed) {
                n += r.read(&mut buf)? as u64;
            }
            Ok(n)
        }));
    }
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for r in readers {
        total += r
            .join()
            .map_err(|_| io::Error::other("reader panicked"))??;
    }
    let t = t0.elapsed().as_secs_f64();
    // The readers' ends are dropped: each writer's next write fails with EPIPE and it ends.
    for w in writers {
        let _ = w.join();
    }
    Ok(total as f64 / t)
}

/// What a truncation workload counted (from slowread's summary line).
#[derive(Clone, Copy, Debug, Default)]
struct Trunc {
    truncated: u64,
    complete: u64,
    of: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum TruncKind {
    /// Unix socket, `Content-Length` declared, body never sent.
    UnixDeclared,
    /// TCP, the upload sent while reading, never read by the handler.
    TcpUpload,
}

impl TruncKind {
    fn title(self) -> &'static str {
        match self {
            TruncKind::UnixDeclared => "Unix: POST /bytes/2M, 1 MiB body declared, never sent",
            TruncKind::TcpUpload => "TCP: POST /bytes/2M, 1 MiB body sent, never read",
        }
    }
}

fn truncations(a: &Args, slowread: &Path, srv: &Server, kind: TruncKind) -> io::Result<Trunc> {
    let mut cmd = Command::new(slowread);
    match kind {
        TruncKind::UnixDeclared => {
            cmd.arg("--unix").arg(&srv.sock);
            cmd.args(["--declare-body", "1048576"]);
        }
        TruncKind::TcpUpload => {
            cmd.arg("--tcp").arg(&srv.tcp);
            cmd.args(["--send-body", "1048576"]);
        }
    }
    cmd.args(["--method", "POST", "--path", "/bytes/2M", "--close"])
        .args(["-k", &a.trunc_requests.to_string(), "-c", "8"])
        // A slow reader: up to 64 KiB per read, 1 ms before each, 0–5 ms before the first.
        .args([
            "--read-size",
            "65536",
            "--sleep-us",
            "1000",
            "--jitter",
            "5",
        ])
        .args(["--timeout", "20", "--max-time", "600"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    pin(&mut cmd, a.client_cpu);
    let out = cmd
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", slowread.display())))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with("truncated "))
        .ok_or_else(|| io::Error::other(format!("no slowread summary in {text:?}")))?;
    // truncated X of K (complete C, …
    let w: Vec<&str> = line.split_whitespace().collect();
    let num = |i: usize| {
        w.get(i)
            .and_then(|v| v.trim_matches(|c: char| !c.is_ascii_digit()).parse().ok())
            .ok_or_else(|| io::Error::other(format!("unreadable summary {line:?}")))
    };
    Ok(Trunc {
        truncated: num(1)?,
        of: num(3)?,
        complete: num(5)?,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Formats with thousands separators and `d` decimals.
fn num(x: f64, d: usize) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    let s = format!("{x:.d$}");
    let (int, frac) = s.split_once('.').map_or((s.as_str(), ""), |(i, f)| (i, f));
    let mut out = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 && c != '-' {
            out.push(',');
        }
        out.push(c);
    }
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// One compared metric: values for lastbyte and hyper, and which way is better.
struct Metric {
    workload: String,
    short: &'static str,
    name: &'static str,
    unit: &'static str,
    decimals: usize,
    lastbyte: f64,
    hyper: f64,
    higher_is_better: bool,
}

impl Metric {
    fn ratio(&self) -> f64 {
        self.lastbyte / self.hyper
    }
    /// How many times better lastbyte is (> 1: better), whichever way the metric points.
    fn advantage(&self) -> f64 {
        if self.higher_is_better {
            self.ratio()
        } else {
            1.0 / self.ratio()
        }
    }
}

fn photo_default() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/images/colorfulcups_2560x1600_progressive.jpg")
}

/// The multipart body of a `/transform` to 800 px WebP, written to `dir`.
fn transform_body(photo: &Path, dir: &Path) -> io::Result<(PathBuf, String)> {
    let img = std::fs::read(photo)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", photo.display())))?;
    let mut b = Vec::new();
    let part = |b: &mut Vec<u8>, name: &str, file: bool, data: &[u8]| {
        let fname = if file {
            format!("; filename=\"{name}\"")
        } else {
            String::new()
        };
        b.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\ncontent-disposition: form-data; name=\"{name}\"{fname}\r\n\r\n"
            )
            .as_bytes(),
        );
        b.extend_from_slice(data);
        b.extend_from_slice(b"\r\n");
    };
    part(&mut b, "image", true, &img);
    part(
        &mut b,
        "transforms",
        false,
        br#"[{"imageIndex":0,"width":800}]"#,
    );
    part(&mut b, "output_format", false, b"image/webp");
    part(&mut b, "output_quality", false, b"80");
    b.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    let path = dir.join("transform.multipart");
    std::fs::write(&path, b)?;
    Ok((path, format!("multipart/form-data; boundary={BOUNDARY}")))
}

/// h2load on PATH, or installed from Debian's nghttp2-client when running as root.
fn ensure_h2load() -> io::Result<()> {
    let have = || {
        Command::new("h2load")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if have() {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(io::Error::other(
            "h2load not found: install Debian's nghttp2-client (sudo apt-get install nghttp2-client)",
        ));
    }
    eprintln!("enginebench: h2load not found; installing nghttp2-client");
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !apt(&["install", "-y", "-q", "nghttp2-client"]) {
        apt(&["update", "-q"]);
        apt(&["install", "-y", "-q", "nghttp2-client"]);
    }
    if have() {
        Ok(())
    } else {
        Err(io::Error::other("could not install nghttp2-client"))
    }
}

/// The hyper 1.10.1 reproduction binary: given, or built from tools/hyper110 into the target
/// directory this tool runs from, with the same profile.
fn ensure_hyper110(a: &Args, exe_dir: &Path) -> io::Result<PathBuf> {
    if let Some(p) = &a.hyper110 {
        return Ok(p.clone());
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/hyper110/Cargo.toml");
    let target = exe_dir
        .parent()
        .ok_or_else(|| io::Error::other("no target directory"))?;
    let release = exe_dir.file_name().is_some_and(|n| n == "release");
    eprintln!(
        "enginebench: building the hyper {} reproduction ({})",
        locked("hyper", REPRO_LOCK),
        manifest.display()
    );
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args(["build", "--quiet", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target);
    if release {
        cmd.arg("--release");
    }
    let st = cmd.status()?;
    if !st.success() {
        return Err(io::Error::other("building tools/hyper110 failed"));
    }
    Ok(exe_dir.join("lastbyte-hyper110"))
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
    // SAFETY: sysconf has no preconditions.
    let cores = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize;
    if a.server_cpu >= cores || a.client_cpu >= cores || (a.server_cpu == a.client_cpu && cores > 1)
    {
        eprintln!(
            "enginebench: --server-cpu and --client-cpu must be two different cores below {cores}"
        );
        std::process::exit(2);
    }
    match run(&a) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("enginebench: {e}");
            std::process::exit(1);
        }
    }
}

fn run(a: &Args) -> io::Result<()> {
    launch::register_font();
    let exe = std::env::current_exe()?;
    let exe_dir = exe
        .parent()
        .ok_or_else(|| io::Error::other("no exe dir"))?
        .to_path_buf();
    let lastbyte = a
        .lastbyte
        .clone()
        .unwrap_or_else(|| exe_dir.join("lastbyte"));
    let slowread = exe_dir.join("slowread");
    for p in [&lastbyte, &slowread] {
        if !p.exists() {
            return Err(io::Error::other(format!(
                "{} not found: run `cargo build --release` first",
                p.display()
            )));
        }
    }
    if exe_dir.file_name().is_some_and(|n| n != "release") {
        eprintln!("enginebench: warning: not a release build; the figures compare debug builds");
    }
    let load = ["1k", "1k-pipe", "2m", "transform"];
    if load.iter().any(|w| a.wants(w)) {
        ensure_h2load()?;
    }
    let hyper110 = ensure_hyper110(a, &exe_dir)?;
    std::fs::create_dir_all(&a.out)?;
    let work = std::env::temp_dir().join(format!("enginebench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let photo = a.photo.clone().unwrap_or_else(photo_default);
    let data = transform_body(&photo, &work)?;
    let workloads = vec![
        Workload {
            key: "1k",
            short: "1K keep-alive",
            title: format!("GET /bytes/1K keep-alive, {} conns", a.connections),
            path: "/bytes/1K",
            conns: a.connections,
            pipeline: 1,
            data: None,
            body: 1024,
        },
        Workload {
            key: "1k-pipe",
            short: "1K pipelined",
            title: format!(
                "GET /bytes/1K pipelined, {} conns x {} deep",
                a.connections, a.pipeline
            ),
            path: "/bytes/1K",
            conns: a.connections,
            pipeline: a.pipeline,
            data: None,
            body: 1024,
        },
        Workload {
            key: "2m",
            short: "2M keep-alive",
            title: "GET /bytes/2M keep-alive, 4 conns".into(),
            path: "/bytes/2M",
            conns: 4,
            pipeline: 1,
            data: None,
            body: 2 << 20,
        },
        Workload {
            key: "transform",
            short: "transform to 800 px WebP",
            title: format!(
                "POST /transform {} to 800 px WebP q80, 2 conns",
                photo.file_name().unwrap_or_default().to_string_lossy()
            ),
            path: "/transform",
            conns: 2,
            pipeline: 1,
            data: Some(data),
            body: 0,
        },
    ];
    let workloads: Vec<Workload> = workloads.into_iter().filter(|w| a.wants(w.key)).collect();
    let engines = [Engine::Lastbyte, Engine::Hyper, Engine::Hyper110];
    let mut servers = BTreeMap::new();
    for e in engines {
        let bin = if e == Engine::Hyper110 {
            &hyper110
        } else {
            &lastbyte
        };
        servers.insert(e, Server::start(e, bin, a.server_cpu)?);
    }
    println!(
        "enginebench: {} round(s) x {} s per run; servers on cpu {}, clients on cpu {}",
        a.rounds, a.duration, a.server_cpu, a.client_cpu
    );
    let mut csv = String::from(
        "round,workload,engine,requests_per_s,done,non_2xx,failed,wall_s,server_cpu_s,client_cpu_s,cpu_per_request_us,p50_ms,p99_ms,client_util\n",
    );
    let mut runs: BTreeMap<(&str, Engine), Vec<Run>> = BTreeMap::new();
    let mut limits = Vec::new();
    let mut truncs: BTreeMap<(TruncKind, Engine), Vec<Trunc>> = BTreeMap::new();
    // A short warm-up per engine (discarded): first connections, allocator, page cache.
    for e in [Engine::Lastbyte, Engine::Hyper] {
        let Some(w) = workloads.first() else { break };
        let warm = Args {
            duration: 1,
            ..a.clone()
        };
        h2load(&warm, &servers[&e], w, &work.join("warm.log"))?;
    }
    for round in 1..=a.rounds {
        let order = if round % 2 == 1 {
            [Engine::Lastbyte, Engine::Hyper]
        } else {
            [Engine::Hyper, Engine::Lastbyte]
        };
        for w in &workloads {
            for e in order {
                let r = h2load(a, &servers[&e], w, &work.join("h2load.log"))?;
                let flag = if r.client_util() >= 0.95 {
                    " TOOL-BOUND"
                } else {
                    ""
                };
                println!(
                    "round {round} {:<10} {:<14} {:>10} req/s  server cpu {:>5.1}%  h2load cpu {:>5.1}%  p99 {:>8.2} ms{}{flag}",
                    w.key,
                    e.label(),
                    num(r.rps, 0),
                    r.server_cpu / r.wall * 100.0,
                    r.client_util() * 100.0,
                    r.p99_ms,
                    if r.non2xx + r.failed > 0 {
                        format!("  ({} non-2xx, {} failed)", r.non2xx, r.failed)
                    } else {
                        String::new()
                    },
                );
                let _ = writeln!(
                    csv,
                    "{round},{},{},{:.2},{},{},{},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3}",
                    w.key,
                    e.label(),
                    r.rps,
                    r.done,
                    r.non2xx,
                    r.failed,
                    r.wall,
                    r.server_cpu,
                    r.client_cpu,
                    r.cpu_per_req_us(),
                    r.p50_ms,
                    r.p99_ms,
                    r.client_util()
                );
                runs.entry((w.key, e)).or_default().push(r);
            }
        }
        if a.wants("limit") || a.wants("2m") {
            let lim = socketpair_limit(4, f64::from(a.duration), a.server_cpu, a.client_cpu)?;
            println!(
                "round {round} socketpair copy limit {:.2} GiB/s",
                lim / f64::from(1u32 << 30)
            );
            limits.push(lim);
        }
        if !a.wants("truncation") {
            continue;
        }
        for kind in [TruncKind::UnixDeclared, TruncKind::TcpUpload] {
            for e in engines {
                let t = truncations(a, &slowread, &servers[&e], kind)?;
                println!(
                    "round {round} truncation {:?} {:<14} truncated {} of {} (complete {})",
                    kind,
                    e.label(),
                    t.truncated,
                    t.of,
                    t.complete
                );
                truncs.entry((kind, e)).or_default().push(t);
            }
        }
    }
    drop(servers);
    let _ = std::fs::remove_dir_all(&work);

    // The table.
    let med = |k: &str, e: Engine, f: &dyn Fn(&Run) -> f64| {
        median(
            runs.get(&(k, e))
                .map_or(vec![], |v| v.iter().map(f).collect()),
        )
    };
    let limit = median(limits.clone());
    let gib = f64::from(1u32 << 30);
    let mut metrics = Vec::new();
    for w in &workloads {
        let m = |name, unit, decimals, higher, f: &dyn Fn(&Run) -> f64| Metric {
            workload: w.title.clone(),
            short: w.short,
            name,
            unit,
            decimals,
            lastbyte: med(w.key, Engine::Lastbyte, f),
            hyper: med(w.key, Engine::Hyper, f),
            higher_is_better: higher,
        };
        if w.body >= 1 << 20 {
            let body = w.body as f64;
            metrics.push(m("throughput", "GiB/s", 2, true, &|r| r.rps * body / gib));
            metrics.push(m("server CPU per response", "µs", 0, false, &|r| {
                r.cpu_per_req_us()
            }));
            metrics.push(m("share of the socketpair limit", "%", 1, true, &|r| {
                r.rps * body / limit * 100.0
            }));
        } else {
            metrics.push(m("requests/s", "", 0, true, &|r| r.rps));
            if w.data.is_none() {
                metrics.push(m("server CPU per request", "µs", 2, false, &|r| {
                    r.cpu_per_req_us()
                }));
            }
        }
        metrics.push(m("p99 latency", "ms", 2, false, &|r| r.p99_ms));
    }
    let hl = Engine::Hyper.label();
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| workload | metric | lastbyte | {hl} | lastbyte / hyper |\n|---|---|---:|---:|---:|"
    );
    let mut last = String::new();
    for m in &metrics {
        let wl = if m.workload == last {
            String::new()
        } else {
            m.workload.clone()
        };
        last = m.workload.clone();
        let unit = if m.unit.is_empty() {
            String::new()
        } else {
            format!(" {}", m.unit)
        };
        let _ = writeln!(
            md,
            "| {wl} | {} | {}{unit} | {}{unit} | {:.2}× |",
            m.name,
            num(m.lastbyte, m.decimals),
            num(m.hyper, m.decimals),
            m.ratio()
        );
    }
    if !limits.is_empty() {
        let _ = writeln!(
            md,
            "| AF_UNIX socketpair copy, 4 pairs, 2 MiB writes / 256 KiB reads (the limit) | throughput | {} GiB/s | | |",
            num(limit / gib, 2)
        );
    }
    // Load-generator and server CPU, so tool-bound runs are visible.
    let _ = writeln!(
        md,
        "\nCPU use during the runs (medians; one core each; h2load ≥ 95 % = tool-bound):\n\n| workload | lastbyte server | lastbyte's h2load | {hl} server | {hl}'s h2load |\n|---|---:|---:|---:|---:|"
    );
    let mut bound = Vec::new();
    for w in &workloads {
        let util = |e| med(w.key, e, &|r: &Run| r.server_cpu / r.wall * 100.0);
        let cl = |e| med(w.key, e, &|r: &Run| r.client_util() * 100.0);
        for e in [Engine::Lastbyte, Engine::Hyper] {
            if cl(e) >= 95.0 {
                bound.push(format!("{} ({})", w.key, e.label()));
            }
        }
        let _ = writeln!(
            md,
            "| {} | {:.0} % | {:.0} % | {:.0} % | {:.0} % |",
            w.title,
            util(Engine::Lastbyte),
            cl(Engine::Lastbyte),
            util(Engine::Hyper),
            cl(Engine::Hyper)
        );
    }
    let errors: u64 = runs.values().flatten().map(|r| r.non2xx + r.failed).sum();
    if a.wants("truncation") {
        let _ = writeln!(
            md,
            "\nTruncated responses (slowread, `Connection: close`, up to 64 KiB per read with 1 ms before each; {} requests x {} round(s) per cell):\n\n| workload | lastbyte | {hl} | {} |\n|---|---:|---:|---:|",
            a.trunc_requests,
            a.rounds,
            Engine::Hyper110.label()
        );
        for kind in [TruncKind::UnixDeclared, TruncKind::TcpUpload] {
            let cell = |e| {
                let v = truncs.get(&(kind, e)).cloned().unwrap_or_default();
                let t: u64 = v.iter().map(|t| t.truncated).sum();
                let of: u64 = v.iter().map(|t| t.of).sum();
                format!("{t} of {of}")
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                kind.title(),
                cell(Engine::Lastbyte),
                cell(Engine::Hyper),
                cell(Engine::Hyper110)
            );
        }
    }
    let _ = writeln!(
        md,
        "\nEvery run: non-2xx or failed h2load requests: {errors}; tool-bound runs (median): {}.",
        if bound.is_empty() {
            "none".to_string()
        } else {
            bound.join(", ")
        }
    );
    print!("\n{md}");
    std::fs::write(a.out.join("enginebench.md"), &md)?;
    std::fs::write(a.out.join("runs.csv"), &csv)?;
    let title = format!(
        "lastbyte vs {hl}: how many times better (> 1: lastbyte better), medians of {} round(s)",
        a.rounds
    );
    let mut trunc_bars: Vec<Bar> = Vec::new();
    for kind in [TruncKind::UnixDeclared, TruncKind::TcpUpload] {
        for e in engines {
            let Some(v) = truncs.get(&(kind, e)) else {
                continue;
            };
            let t: u64 = v.iter().map(|t| t.truncated).sum();
            let of: u64 = v.iter().map(|t| t.of).sum::<u64>().max(1);
            let color = if t > 0 { RED.mix(0.7) } else { GREEN.mix(0.7) };
            let short = match kind {
                TruncKind::UnixDeclared => "Unix, declared body",
                TruncKind::TcpUpload => "TCP, unread upload",
            };
            trunc_bars.push((
                format!("{short}: {}", e.label()),
                t as f64 * 100.0 / of as f64,
                color,
                format!("{t} of {of}"),
            ));
        }
    }
    let png = a.out.join("ratios.png");
    let svg = a.out.join("ratios.svg");
    let (w, h) = CHART;
    let mut pixels = vec![0u8; (w * h * 3) as usize];
    chart(
        BitMapBackend::with_buffer(&mut pixels, CHART).into_drawing_area(),
        &title,
        &metrics,
        &trunc_bars,
    )
    .map_err(|e| io::Error::other(format!("chart: {e}")))?;
    image::RgbImage::from_raw(w, h, pixels)
        .ok_or_else(|| io::Error::other("chart buffer size"))?
        .save(&png)
        .map_err(|e| io::Error::other(format!("{}: {e}", png.display())))?;
    chart(
        SVGBackend::new(&svg, CHART).into_drawing_area(),
        &title,
        &metrics,
        &trunc_bars,
    )
    .map_err(|e| io::Error::other(format!("chart: {e}")))?;
    println!(
        "wrote {}, {}, {} and {}",
        a.out.join("enginebench.md").display(),
        a.out.join("runs.csv").display(),
        png.display(),
        svg.display()
    );
    Ok(())
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// One horizontal bar: label, length, colour, the text at its end.
type Bar = (String, f64, RGBAColor, String);

/// The advantage bars (parity line at 1) and, below them when measured, the truncation bars.
fn chart<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    metrics: &[Metric],
    truncs: &[Bar],
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let bars: Vec<Bar> = metrics
        .iter()
        .map(|m| {
            let adv = if m.advantage().is_finite() {
                m.advantage()
            } else {
                0.0
            };
            let color = if adv >= 1.0 {
                GREEN.mix(0.7)
            } else {
                RED.mix(0.7)
            };
            (
                format!("{}: {}", m.short, m.name),
                adv,
                color,
                format!("{adv:.2}×"),
            )
        })
        .collect();
    let xmax = bars.iter().map(|b| b.1).fold(1.5f64, f64::max) * 1.15;
    let (top, bottom) = if truncs.is_empty() {
        (root.clone(), None)
    } else {
        let (t, b) = root.split_vertically(CHART.1 * 62 / 100);
        (t, Some(b))
    };
    hbars(
        &top,
        title,
        &bars,
        xmax,
        "times better than hyper (higher-is-better metrics: lastbyte / hyper; lower-is-better: hyper / lastbyte)",
        Some(1.0),
    )?;
    if let Some(b) = bottom {
        hbars(
            &b,
            "Responses cut short (slowread, Connection: close, slow reader)",
            truncs,
            115.0,
            "% of responses truncated",
            None,
        )?;
    }
    root.present()?;
    Ok(())
}

fn hbars<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
    bars: &[Bar],
    xmax: f64,
    x_desc: &str,
    parity: Option<f64>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let n = bars.len();
    let mut ch = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 17))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(330)
        .build_cartesian_2d(0f64..xmax, 0f64..n as f64)?;
    ch.configure_mesh()
        .disable_y_mesh()
        .x_labels(10)
        .light_line_style(WHITE)
        .y_labels(n * 2 + 1)
        .y_label_formatter(&|y| {
            let i = y.floor() as usize;
            if (y.fract() - 0.5).abs() < 0.01 && i < n {
                bars[n - 1 - i].0.clone()
            } else {
                String::new()
            }
        })
        .x_desc(x_desc)
        .label_style(("sans-serif", 12))
        .draw()?;
    ch.draw_series(bars.iter().enumerate().map(|(i, b)| {
        let y = (n - 1 - i) as f64;
        Rectangle::new([(0.0, y + 0.15), (b.1, y + 0.85)], b.2.filled())
    }))?;
    ch.draw_series(bars.iter().enumerate().map(|(i, b)| {
        let y = (n - 1 - i) as f64;
        Text::new(
            b.3.clone(),
            (b.1.max(0.0) + xmax * 0.01, y + 0.65),
            ("sans-serif", 12),
        )
    }))?;
    if let Some(x) = parity {
        ch.draw_series(std::iter::once(PathElement::new(
            vec![(x, 0.0), (x, n as f64)],
            BLACK.stroke_width(2),
        )))?;
    }
    Ok(())
}
