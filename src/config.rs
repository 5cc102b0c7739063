//! Configuration: raw command-line/environment arguments ([`ServeArgs`]) and the validated
//! [`Config`] the server runs with. Every flag has an environment twin (`LASTBYTE_*`).

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "lastbyte",
    version,
    about = "Image-transformation server over io_uring; responses are never silently cut short"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server until SIGTERM/SIGINT.
    Serve(ServeArgs),
    /// Validate the configuration (flags, environment, --config file) and print it.
    CheckConfig(ServeArgs),
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// Which HTTP/1.1 front end serves the routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    /// lastbyte's own framer, ledger and io_uring loop (the product).
    Uring,
    /// hyper's HTTP/1 server on tokio with the same routes, handlers and pool (a comparison
    /// baseline for benchmarks; see README, "Performance").
    Hyper,
}

/// When a response on a closing connection is done (see `--confirm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Confirm {
    /// The kernel accepted every byte (the ledger drained).
    Queued,
    /// And the socket's send queue emptied (peer acknowledged / read it), bounded in time.
    Delivered,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// TOML file of defaults: `max_body = 1048576`, `header_timeout = 2.5`, … (any flag, with
    /// `_` or `-`). Precedence: flags, then environment, then this file, then built-in defaults.
    #[arg(long, env = "LASTBYTE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Unix socket path to listen on. With neither --unix nor --tcp:
    /// $XDG_RUNTIME_DIR/lastbyte.sock, or /tmp/lastbyte.sock when XDG_RUNTIME_DIR is unset.
    #[arg(long, env = "LASTBYTE_UNIX")]
    pub unix: Option<PathBuf>,
    /// Permissions of the Unix socket file, octal (e.g. 660); default: as the umask leaves it.
    #[arg(long, env = "LASTBYTE_UNIX_MODE", value_parser = parse_mode)]
    pub unix_mode: Option<u32>,
    /// Owner of the Unix socket file: `USER[:GROUP]` (names or numeric ids).
    #[arg(long, env = "LASTBYTE_UNIX_OWNER")]
    pub unix_owner: Option<String>,
    /// TCP address to listen on (e.g. 127.0.0.1:8080).
    #[arg(long, env = "LASTBYTE_TCP")]
    pub tcp: Option<SocketAddr>,
    /// HTTP front end: `uring` (lastbyte's own) or `hyper` (hyper's HTTP/1 server on tokio,
    /// the same routes, handlers, pool and limits; a benchmark baseline)
    #[arg(long, env = "LASTBYTE_ENGINE", value_enum, default_value_t = Engine::Uring)]
    pub engine: Engine,
    /// I/O rings, each on its own thread (0 = one per core).
    #[arg(long, env = "LASTBYTE_WORKERS", default_value_t = 0)]
    pub workers: usize,
    /// Threads running image jobs (0 = one per core).
    #[arg(long, env = "LASTBYTE_CPU_THREADS", default_value_t = 0)]
    pub cpu_threads: usize,
    /// Image jobs that may wait for a CPU thread; beyond it requests get 503 (9522).
    #[arg(long, env = "LASTBYTE_QUEUE_DEPTH", default_value_t = 64)]
    pub queue_depth: usize,
    /// Largest request body (bytes) on /transform, /info and /echo (9402 / 413 beyond).
    #[arg(long, env = "LASTBYTE_MAX_BODY", default_value_t = 100 * 1024 * 1024)]
    pub max_body: u64,
    /// Largest request head (request line + headers, bytes); 431 beyond.
    #[arg(long, env = "LASTBYTE_MAX_HEAD", default_value_t = 64 * 1024)]
    pub max_head: usize,
    /// Largest image area in megapixels, checked from the header before decoding (9413).
    #[arg(long, env = "LASTBYTE_MAX_MEGAPIXELS", default_value_t = 100.0)]
    pub max_megapixels: f64,
    /// Largest image side in pixels, input and output (9413).
    #[arg(long, env = "LASTBYTE_MAX_DIMENSION", default_value_t = 12_000)]
    pub max_dimension: u32,
    /// Largest AVIF output side in pixels (9413 beyond).
    #[arg(long, env = "LASTBYTE_AVIF_MAX_DIMENSION", default_value_t = 4096)]
    pub avif_max_dimension: u32,
    /// Most frames an animated GIF/WebP input may have when its animation is kept (9413).
    #[arg(long, env = "LASTBYTE_MAX_FRAMES", default_value_t = 1000)]
    pub max_frames: u32,
    /// Largest total area of an animation's frames, in megapixels (9413): the decoded frames
    /// of one job are held at once.
    #[arg(
        long,
        env = "LASTBYTE_MAX_ANIMATION_MEGAPIXELS",
        default_value_t = 50.0
    )]
    pub max_animation_megapixels: f64,
    /// AVIF encoder speed, 1 (slowest, smallest) to 10 (fastest).
    #[arg(long, env = "LASTBYTE_AVIF_SPEED", default_value_t = 6)]
    pub avif_speed: u8,
    /// Largest n for /bytes/<n>; the shared pattern buffer has this size (413 beyond).
    #[arg(long, env = "LASTBYTE_BYTES_CAP", default_value_t = 64 * 1024 * 1024)]
    pub bytes_cap: usize,
    /// Unread request body (bytes) discarded to keep a connection alive after a response that
    /// did not need it; a larger one closes the connection (with a lingering close).
    #[arg(long, env = "LASTBYTE_DISCARD_MAX", default_value_t = 1024 * 1024)]
    pub discard_max: u64,
    /// After a half-close, read and discard until EOF for at most this long (seconds).
    #[arg(long, env = "LASTBYTE_LINGER_TIMEOUT", default_value = "5", value_parser = parse_secs)]
    pub linger_timeout: Duration,
    /// After a half-close, read and discard at most this many bytes before closing.
    #[arg(long, env = "LASTBYTE_LINGER_MAX", default_value_t = 64 * 1024 * 1024)]
    pub linger_max: u64,
    /// Deadline for a whole request head, from its first byte (slowloris); 408 and close.
    #[arg(long, env = "LASTBYTE_HEADER_TIMEOUT", default_value = "10", value_parser = parse_secs)]
    pub header_timeout: Duration,
    /// Longest wait for more request-body bytes (progress timeout); 408 and close.
    #[arg(long, env = "LASTBYTE_BODY_TIMEOUT", default_value = "30", value_parser = parse_secs)]
    pub body_timeout: Duration,
    /// Longest wait for the first byte of a request on an open connection; then close.
    #[arg(long, env = "LASTBYTE_IDLE_TIMEOUT", default_value = "60", value_parser = parse_secs)]
    pub idle_timeout: Duration,
    /// Longest time a response may make no send progress (the peer reads nothing); then the
    /// response is aborted, counted and logged. The only timer that cuts a response.
    #[arg(long, env = "LASTBYTE_WRITE_STALL_TIMEOUT", default_value = "30", value_parser = parse_secs)]
    pub write_stall_timeout: Duration,
    /// Most open connections; beyond it a new connection gets 503 and is closed.
    #[arg(long, env = "LASTBYTE_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// On SIGTERM/SIGINT, wait at most this long (seconds) for responses in flight.
    #[arg(long, env = "LASTBYTE_SHUTDOWN_TIMEOUT", default_value = "30", value_parser = parse_secs)]
    pub shutdown_timeout: Duration,
    /// SO_SNDBUF for accepted connections in bytes (0 = the kernel's default and autotuning).
    /// Small values make large responses take many partial sends (buffer studies, tests).
    #[arg(long, env = "LASTBYTE_SEND_BUFFER", default_value_t = 0)]
    pub send_buffer: usize,
    /// Write a JSON-lines trace of every send completion and every response to this file
    /// (off by default). See README, "What the kernel does with your bytes".
    #[arg(long, env = "LASTBYTE_TRACE_WRITES", value_name = "PATH")]
    pub trace_writes: Option<PathBuf>,
    /// When a response on a closing connection counts as done before the half-close:
    /// `queued` = every byte accepted by the kernel (the ledger drained); `delivered` = also
    /// wait (bounded by --confirm-timeout) until the socket's send queue is empty (TCP: every
    /// byte acknowledged by the peer; AF_UNIX: every byte read by the peer).
    #[arg(long, env = "LASTBYTE_CONFIRM", value_enum, default_value_t = Confirm::Queued)]
    pub confirm: Confirm,
    /// The longest `--confirm delivered` waits for the send queue to empty (seconds); then the
    /// connection is half-closed anyway and the wait is counted as timed out.
    #[arg(long, env = "LASTBYTE_CONFIRM_TIMEOUT", default_value = "5", value_parser = parse_secs)]
    pub confirm_timeout: Duration,
    /// Log filter (tracing EnvFilter syntax), e.g. info, debug, lastbyte=trace.
    #[arg(long, env = "LASTBYTE_LOG", default_value = "info")]
    pub log: String,
    /// Log line format: one request per line, human-readable or JSON.
    #[arg(long, env = "LASTBYTE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
}

fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim(), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("not an octal file mode: {s:?}"))
}

/// Applies a TOML config file as defaults by setting `LASTBYTE_*` variables that are not set
/// already, so flags and the environment still win. Unknown keys are an error.
pub fn apply_config_file(path: &std::path::Path, known: &[String]) -> Result<(), String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("--config {}: {e}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("--config {}: {e}", path.display()))?;
    for (key, value) in table {
        let id = key.replace('-', "_");
        if !known.contains(&id) || id == "config" {
            return Err(format!(
                "--config {}: unknown setting {key:?}",
                path.display()
            ));
        }
        let v = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(format!(
                    "--config {}: {key} must be a string or number, got {other:?}",
                    path.display()
                ))
            }
        };
        let var = format!("LASTBYTE_{}", id.to_ascii_uppercase());
        if std::env::var_os(&var).is_none() {
            std::env::set_var(var, v);
        }
    }
    Ok(())
}

/// Parses seconds, fractional allowed (`0.5`).
fn parse_secs(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("not a number of seconds: {s:?}"))?;
    if !v.is_finite() || !(0.0..=1e9).contains(&v) {
        return Err(format!("seconds out of range: {s:?}"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// Image limits, shared by the pipeline.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_pixels: u64,
    pub max_dimension: u32,
    pub avif_max_dimension: u32,
    pub webp_max_dimension: u32,
    pub avif_speed: u8,
    /// Animated inputs whose animation is kept: frame count and total frame area.
    pub max_frames: u32,
    pub max_animation_pixels: u64,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub unix: Option<PathBuf>,
    pub unix_mode: Option<u32>,
    pub unix_owner: Option<String>,
    pub tcp: Option<SocketAddr>,
    pub engine: Engine,
    pub workers: usize,
    pub cpu_threads: usize,
    pub queue_depth: usize,
    pub max_body: u64,
    pub max_head: usize,
    pub bytes_cap: usize,
    pub discard_max: u64,
    pub linger_timeout: Duration,
    pub linger_max: u64,
    pub shutdown_timeout: Duration,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub write_stall_timeout: Duration,
    pub max_connections: usize,
    pub send_buffer: usize,
    pub trace_writes: Option<PathBuf>,
    pub confirm: Confirm,
    pub confirm_timeout: Duration,
    pub limits: Limits,
}

/// WebP's format limit on a side (pixels).
pub const WEBP_MAX_DIMENSION: u32 = 16_383;

/// The default Unix socket path (see DESIGN.md).
pub fn default_socket_path() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("lastbyte.sock"),
        _ => PathBuf::from("/tmp/lastbyte.sock"),
    }
}

impl ServeArgs {
    pub fn validate(self) -> Result<Config, String> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if !(1..=10).contains(&self.avif_speed) {
            return Err("--avif-speed must be 1..=10".into());
        }
        if self.max_megapixels.is_nan() || self.max_megapixels <= 0.0 {
            return Err("--max-megapixels must be positive".into());
        }
        if self.max_animation_megapixels.is_nan() || self.max_animation_megapixels <= 0.0 {
            return Err("--max-animation-megapixels must be positive".into());
        }
        if self.max_frames == 0 {
            return Err("--max-frames must be at least 1".into());
        }
        if self.workers > 256 {
            return Err("--workers must be at most 256".into());
        }
        if self.queue_depth == 0 {
            return Err("--queue-depth must be at least 1".into());
        }
        for (name, d) in [
            ("--header-timeout", self.header_timeout),
            ("--body-timeout", self.body_timeout),
            ("--idle-timeout", self.idle_timeout),
            ("--write-stall-timeout", self.write_stall_timeout),
        ] {
            if d < Duration::from_millis(10) {
                return Err(format!("{name} must be at least 0.01 seconds"));
            }
        }
        if self.max_connections == 0 {
            return Err("--max-connections must be at least 1".into());
        }
        if self.max_head < 1024 {
            return Err("--max-head must be at least 1024".into());
        }
        let unix = match (&self.unix, &self.tcp) {
            // Under socket activation the passed sockets replace the default one.
            (None, None) if std::env::var_os("LISTEN_FDS").is_none() => Some(default_socket_path()),
            (u, _) => u.clone(),
        };
        Ok(Config {
            unix,
            unix_mode: self.unix_mode,
            unix_owner: self.unix_owner,
            tcp: self.tcp,
            engine: self.engine,
            workers: if self.workers == 0 {
                cores
            } else {
                self.workers
            },
            cpu_threads: if self.cpu_threads == 0 {
                cores
            } else {
                self.cpu_threads
            },
            queue_depth: self.queue_depth,
            max_body: self.max_body,
            max_head: self.max_head,
            bytes_cap: self.bytes_cap,
            discard_max: self.discard_max,
            linger_timeout: self.linger_timeout,
            linger_max: self.linger_max,
            shutdown_timeout: self.shutdown_timeout,
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
            idle_timeout: self.idle_timeout,
            write_stall_timeout: self.write_stall_timeout,
            max_connections: self.max_connections,
            send_buffer: self.send_buffer,
            trace_writes: self.trace_writes,
            confirm: self.confirm,
            confirm_timeout: self.confirm_timeout,
            limits: Limits {
                max_pixels: (self.max_megapixels * 1e6) as u64,
                max_dimension: self.max_dimension,
                avif_max_dimension: self.avif_max_dimension,
                webp_max_dimension: WEBP_MAX_DIMENSION,
                avif_speed: self.avif_speed,
                max_frames: self.max_frames,
                max_animation_pixels: (self.max_animation_megapixels * 1e6) as u64,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn seconds() {
        assert_eq!(super::parse_secs("0.5").unwrap().as_millis(), 500);
        assert!(super::parse_secs("-1").is_err());
        assert!(super::parse_secs("x").is_err());
    }
}
