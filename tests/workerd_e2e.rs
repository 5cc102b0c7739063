//! End-to-end test through the real Cloudflare Workers runtime.
//!
//! `tests/workerd/` holds a tiny Worker (`worker.js`) whose `env.IMAGES` is workerd's own Images
//! binding (`cloudflare-internal:images-api`), with its transport pointed at an `external` service
//! (`config.capnp`). This test
//!
//! 1. installs the pinned `workerd` npm package (`npm ci`) into a copy of `tests/workerd/` under
//!    `<target>/workerd-e2e/harness/` (reused while `package-lock.json` is unchanged),
//! 2. starts the `lastbyte` binary on a Unix socket, then workerd with
//!    `--external-addr images-backend=unix:<that socket>`,
//! 3. sends HTTP requests to the Worker and checks that every image that comes back decodes, is in
//!    the requested format and has the expected size.
//!
//! All checks run even when some fail; the test then fails with the list of failed checks and
//! prints the server and workerd logs. Logs and response bodies stay in `<target>/workerd-e2e/`.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use image::RgbaImage;

/// The workerd release pinned in `tests/workerd/package.json`.
const WORKERD_VERSION: &str = "1.20261123.1";
/// How long the server and workerd may take to accept connections.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long one request to the Worker may take (AVIF encoding included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Per-channel tolerance when comparing JPEG pixels with the source image.
const JPEG_TOLERANCE: u8 = 30;
/// `GENERIC_SPEC` of the shared harness's `run-client.sh`.
const GENERIC_SPEC: &str = r#"{"ops":[{"transform":{"width":40}},{"draw":{"src":"overlay","ops":[{"transform":{"rotate":90}},{"draw":{"src":"overlay2","options":{"opacity":0.5}}}],"options":{"top":3,"left":3}}}],"output":{"format":"image/webp","quality":80}}"#;

// ---------------------------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------------------------

/// `tests/workerd/` in the source tree (read-only as far as this test is concerned).
fn harness_source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/workerd")
}

/// `<target>/workerd-e2e/`: the writable place for the harness copy, logs and outputs.
fn work_root() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("workerd-e2e")
}

fn base_png_path() -> PathBuf {
    harness_source().join("fixtures/base.png")
}

// ---------------------------------------------------------------------------------------------
// Installing workerd
// ---------------------------------------------------------------------------------------------

/// Copies `tests/workerd/` to `<target>/workerd-e2e/harness/` and runs `npm ci` there unless
/// `node_modules` was already installed from the same `package-lock.json`. Returns the copy.
fn install_harness() -> PathBuf {
    let src = harness_source();
    let dir = work_root().join("harness");
    copy_harness_files(&src, &dir);

    let lock =
        fs::read(src.join("package-lock.json")).expect("read tests/workerd/package-lock.json");
    let stamp = dir.join("node_modules/.lastbyte-e2e-installed-lock");
    let installed = fs::read(&stamp).is_ok_and(|s| s == lock) && workerd_binary(&dir).is_some();
    if installed {
        println!("workerd-e2e: reusing {}/node_modules", dir.display());
        return dir;
    }

    require_npm();
    let started = Instant::now();
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .output()
        .expect("run `npm ci`");
    assert!(
        out.status.success(),
        "`npm ci` in {} failed ({}):\n{}{}",
        dir.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        workerd_binary(&dir).is_some(),
        "`npm ci` succeeded but no workerd binary is in {}/node_modules",
        dir.display()
    );
    fs::write(&stamp, &lock).expect("write install stamp");
    println!(
        "workerd-e2e: npm ci took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    dir
}

/// Writes fresh copies of the harness files (not `node_modules`) into `dst`.
fn copy_harness_files(src: &Path, dst: &Path) {
    fs::create_dir_all(dst.join("fixtures")).expect("create harness dir");
    let files = [
        "package.json",
        "package-lock.json",
        "config.capnp",
        "worker.js",
    ];
    let fixtures = fs::read_dir(src.join("fixtures"))
        .expect("read tests/workerd/fixtures")
        .map(|e| e.expect("fixture entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .map(|p| Path::new("fixtures").join(p.file_name().unwrap()));
    for rel in files.iter().map(PathBuf::from).chain(fixtures) {
        // read + write rather than fs::copy: the copy must stay writable for the next run.
        let bytes = fs::read(src.join(&rel)).unwrap_or_else(|e| panic!("read {rel:?}: {e}"));
        fs::write(dst.join(&rel), bytes).unwrap_or_else(|e| panic!("write {rel:?}: {e}"));
    }
}

fn require_npm() {
    match Command::new("npm").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`npm --version` failed ({}): {}. This test needs npm to install workerd {WORKERD_VERSION}.",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "npm not found ({e}). This end-to-end test installs workerd {WORKERD_VERSION} with \
             `npm ci`: install Node.js (>= 16) and npm, e.g. `apt-get install nodejs npm`."
        ),
    }
}

/// The workerd executable inside `node_modules`, as `run-client.sh` picks it.
fn workerd_binary(dir: &Path) -> Option<PathBuf> {
    [
        "node_modules/@cloudflare/workerd-linux-64/bin/workerd",
        "node_modules/workerd/bin/workerd",
    ]
    .iter()
    .map(|rel| dir.join(rel))
    .find(|p| p.is_file())
}

// ---------------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------------

/// A running child process with its stdout+stderr in a log file. Dropping it kills the process;
/// when dropped during a panic it also prints the log.
struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &'static str, mut cmd: Command, log: PathBuf) -> Proc {
        let file = fs::File::create(&log).unwrap_or_else(|e| panic!("create {log:?}: {e}"));
        let err = file.try_clone().expect("clone log handle");
        cmd.stdin(Stdio::null()).stdout(file).stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {name} ({cmd:?}): {e}"));
        Proc { name, child, log }
    }

    /// Waits until `sock` accepts a connection; panics if the process exits or time runs out.
    fn wait_for_socket(&mut self, sock: &Path) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited during startup ({status})", self.name);
            }
            if UnixStream::connect(sock).is_ok() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{} did not accept connections on {} within {STARTUP_TIMEOUT:?}",
                    self.name,
                    sock.display()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn print_log(&self) {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(200)..];
        eprintln!(
            "----- {} log ({}, last {} lines) -----\n{}\n----- end of {} log -----",
            self.name,
            self.log.display(),
            tail.len(),
            tail.join("\n"),
            self.name
        );
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            self.print_log();
        }
    }
}

fn start_lastbyte(sock: &Path, log: PathBuf) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lastbyte"));
    cmd.arg("serve").arg("--unix").arg(sock);
    let mut proc = Proc::spawn("lastbyte", cmd, log);
    proc.wait_for_socket(sock);
    proc
}

fn start_workerd(harness: &Path, backend_sock: &Path, client_sock: &Path, log: PathBuf) -> Proc {
    let bin = workerd_binary(harness).expect("workerd binary (install_harness checked it)");
    let mut cmd = Command::new(bin);
    cmd.current_dir(harness)
        .env("PWD", harness) // workerd logs a warning when PWD and the working dir disagree
        .args(["serve", "config.capnp", "--verbose", "--external-addr"])
        .arg(format!("images-backend=unix:{}", backend_sock.display()))
        .arg("-s")
        .arg(format!("http=unix:{}", client_sock.display()));
    let mut proc = Proc::spawn("workerd", cmd, log);
    proc.wait_for_socket(client_sock);
    proc
}

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client over a Unix socket
// ---------------------------------------------------------------------------------------------

struct Response {
    status: u16,
    /// Header names lowercased, in arrival order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A short description for assertion messages: status, content type and the start of a
    /// textual body.
    fn describe(&self) -> String {
        let ct = self.header("content-type").unwrap_or("-");
        let text: String = String::from_utf8_lossy(&self.body[..self.body.len().min(300)]).into();
        let body = if text.chars().all(|c| !c.is_control() || c.is_whitespace()) {
            format!("{text:?}")
        } else {
            format!("<{} bytes>", self.body.len())
        };
        format!("status {}, content-type {ct}, body {body}", self.status)
    }
}

/// Sends one `POST path` with `body` and `Connection: close`, reads the response to EOF.
fn post(sock: &Path, path: &str, body: &[u8]) -> Result<Response, String> {
    let mut stream = UnixStream::connect(sock).map_err(|e| format!("connect {sock:?}: {e}"))?;
    stream.set_read_timeout(Some(REQUEST_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(REQUEST_TIMEOUT)).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: client\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body))
        .map_err(|e| format!("send POST {path}: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("read response to POST {path}: {e}"))?;
    parse_response(&raw).map_err(|e| format!("response to POST {path}: {e}"))
}

fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let end = find(raw, b"\r\n\r\n").ok_or("no end of headers (connection closed early?)")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "non-UTF-8 response head")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers = lines
        .map(|line| {
            let (name, value) = line.split_once(':').ok_or(format!("bad header {line:?}"))?;
            Ok((name.trim().to_ascii_lowercase(), value.trim().to_string()))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let mut resp = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let rest = &raw[end + 4..];
    let chunked = resp
        .header("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    resp.body = if chunked {
        dechunk(rest)?
    } else if let Some(len) = resp.header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| format!("bad content-length {len:?}"))?;
        rest.get(..len)
            .ok_or(format!("body has {} of {len} bytes", rest.len()))?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(resp)
}

/// Decodes a `Transfer-Encoding: chunked` body (chunk extensions and trailers are ignored).
fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = find(data, b"\r\n").ok_or("truncated chunk size line")?;
        let line = std::str::from_utf8(&data[..line_end]).map_err(|_| "bad chunk size line")?;
        let hex = line.split(';').next().unwrap_or_default().trim();
        let size =
            usize::from_str_radix(hex, 16).map_err(|_| format!("bad chunk size {line:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(body); // trailers, if any, follow; nothing in them matters here
        }
        let chunk = data.get(..size).ok_or("truncated chunk")?;
        body.extend_from_slice(chunk);
        data = data
            .get(size..)
            .and_then(|d| d.strip_prefix(b"\r\n"))
            .ok_or("chunk not followed by CRLF")?;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Percent-encodes everything except RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Image checks
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Format {
    Avif,
    Webp,
    Jpeg,
    Png,
    Gif,
}

impl Format {
    fn mime(self) -> &'static str {
        match self {
            Format::Avif => "image/avif",
            Format::Webp => "image/webp",
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::Gif => "image/gif",
        }
    }

    /// Identifies the format from the leading bytes.
    fn sniff(bytes: &[u8]) -> Option<Format> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Format::Png)
        } else if bytes.starts_with(b"GIF8") {
            Some(Format::Gif)
        } else if bytes.starts_with(b"\xFF\xD8\xFF") {
            Some(Format::Jpeg)
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(Format::Webp)
        } else if ftyp_brands(bytes).iter().any(|b| b == b"avif") {
            Some(Format::Avif)
        } else {
            None
        }
    }

    fn decode(self, bytes: &[u8]) -> Result<RgbaImage, String> {
        match self {
            Format::Avif => lastbyte::image::avif::decode_rgba(bytes)
                .map_err(|e| format!("lastbyte::image::avif::decode_rgba: {e:?}")),
            _ => image::load_from_memory(bytes)
                .map(|img| img.to_rgba8())
                .map_err(|e| format!("image::load_from_memory: {e}")),
        }
    }
}

/// The major and compatible brands of a leading ISO-BMFF `ftyp` box (empty if there is none).
fn ftyp_brands(bytes: &[u8]) -> Vec<[u8; 4]> {
    if bytes.len() < 16 || &bytes[4..8] != b"ftyp" {
        return Vec::new();
    }
    let size = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
    let end = size.clamp(16, bytes.len());
    let major = bytes[8..12].try_into().unwrap();
    let compatible = bytes[16..end]
        .chunks_exact(4)
        .map(|c| c.try_into().unwrap());
    std::iter::once(major).chain(compatible).collect()
}

/// Checks that `resp` is a successful image answer: status 200, Content-Type `format`, bytes of
/// that format that decode to `width`x`height`. Returns the decoded pixels.
fn expect_image(
    resp: &Response,
    format: Format,
    (width, height): (u32, u32),
) -> Result<RgbaImage, String> {
    if resp.status != 200 {
        return Err(format!("expected 200, got {}", resp.describe()));
    }
    let ct = resp.header("content-type").unwrap_or("<none>");
    if ct.split(';').next().unwrap_or_default().trim() != format.mime() {
        return Err(format!(
            "Content-Type is {ct}, expected {} ({})",
            format.mime(),
            resp.describe()
        ));
    }
    match Format::sniff(&resp.body) {
        Some(f) if f == format => {}
        other => {
            return Err(format!(
                "body is {other:?} by its bytes, expected {format:?}; first bytes {:02x?}",
                &resp.body[..resp.body.len().min(16)]
            ))
        }
    }
    let img = format.decode(&resp.body)?;
    if img.dimensions() != (width, height) {
        return Err(format!(
            "{format:?} decodes to {}x{}, expected {width}x{height}",
            img.width(),
            img.height()
        ));
    }
    Ok(img)
}

/// Largest difference over the R, G and B channels of two pixels.
fn max_rgb_diff(a: image::Rgba<u8>, b: image::Rgba<u8>) -> u8 {
    (0..3).map(|i| a[i].abs_diff(b[i])).max().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

/// What every check gets: the Worker's socket, the input image and a place to keep outputs.
struct Ctx {
    client_sock: PathBuf,
    base_png: Vec<u8>,
    out_dir: PathBuf,
}

impl Ctx {
    /// POSTs `body` to the Worker and keeps the response body as `out/<name>.out`.
    fn post(&self, name: &str, path: &str, body: &[u8]) -> Result<Response, String> {
        let resp = post(&self.client_sock, path, body)?;
        let _ = fs::write(self.out_dir.join(format!("{name}.out")), &resp.body);
        Ok(resp)
    }

    fn scenario(&self, scenario: &str) -> Result<Response, String> {
        self.post(scenario, &format!("/t?scenario={scenario}"), &self.base_png)
    }

    fn chain(&self, name: &str, spec: &str) -> Result<Response, String> {
        self.post(
            name,
            &format!("/chain?spec={}", percent_encode(spec)),
            &self.base_png,
        )
    }

    fn base_image(&self) -> RgbaImage {
        image::load_from_memory(&self.base_png)
            .expect("decode base.png")
            .to_rgba8()
    }
}

/// transform {width 32, rotate 90} → AVIF: 64x48 rotated to 48x64, then width 32 → 32x43.
fn check_single(ctx: &Ctx) -> Result<(), String> {
    expect_image(&ctx.scenario("single")?, Format::Avif, (32, 43)).map(drop)
}

/// rotate 90, width 32, blur 5 as three transforms → WebP 32x43.
fn check_chained(ctx: &Ctx) -> Result<(), String> {
    expect_image(&ctx.scenario("chained")?, Format::Webp, (32, 43)).map(drop)
}

/// overlay.png (16x16 red, alpha 160) drawn at opacity 0.5, top 4, left 8 → JPEG 64x48, with
/// the overlay visible where it was drawn and the base untouched elsewhere.
fn check_draw(ctx: &Ctx) -> Result<(), String> {
    let out = expect_image(&ctx.scenario("draw")?, Format::Jpeg, (64, 48))?;
    let base = ctx.base_image();
    let (ix, iy) = (8 + 8, 4 + 8);
    let (inside, under) = (*out.get_pixel(ix, iy), *base.get_pixel(ix, iy));
    if max_rgb_diff(inside, under) <= JPEG_TOLERANCE || inside[0] <= under[0] {
        return Err(format!(
            "pixel ({ix},{iy}) inside the overlay is {inside:?}, base.png has {under:?}: \
             expected a visible red tint"
        ));
    }
    let (fx, fy) = (60, 44);
    let (far, orig) = (*out.get_pixel(fx, fy), *base.get_pixel(fx, fy));
    if max_rgb_diff(far, orig) > JPEG_TOLERANCE {
        return Err(format!(
            "pixel ({fx},{fy}) outside the overlay is {far:?}, base.png has {orig:?} \
             (tolerance {JPEG_TOLERANCE})"
        ));
    }
    Ok(())
}

/// width 48, a nested overlay chain drawn bottom/right, blur 1 → PNG 48x36.
fn check_nested(ctx: &Ctx) -> Result<(), String> {
    expect_image(&ctx.scenario("nested")?, Format::Png, (48, 36)).map(drop)
}

/// width 60 at quality 20 and 95 → both `format` 60x45, the q20 one markedly smaller.
fn check_quality(ctx: &Ctx, format: Format) -> Result<(), String> {
    let mut sizes = Vec::new();
    for quality in [20, 95] {
        let spec = format!(
            r#"{{"ops":[{{"transform":{{"width":60}}}}],"output":{{"format":"{}","quality":{quality}}}}}"#,
            format.mime()
        );
        let name = format!("quality_{format:?}_q{quality}").to_lowercase();
        let resp = ctx.chain(&name, &spec)?;
        expect_image(&resp, format, (60, 45)).map_err(|e| format!("quality {quality}: {e}"))?;
        sizes.push(resp.body.len());
    }
    let (q20, q95) = (sizes[0], sizes[1]);
    // "Markedly": at most 70 % of the q95 size.
    if q20 * 10 > q95 * 7 {
        return Err(format!(
            "quality 20 gave {q20} bytes, quality 95 gave {q95} bytes: expected q20 ≤ 70% of q95"
        ));
    }
    println!("    {format:?} 60x45: q20 = {q20} bytes, q95 = {q95} bytes");
    Ok(())
}

/// info(base.png) → {format: "image/png", fileSize: <file length>, width: 64, height: 48}.
fn check_info(ctx: &Ctx) -> Result<(), String> {
    let resp = ctx.post("info", "/info", &ctx.base_png)?;
    if resp.status != 200 {
        return Err(format!("expected 200, got {}", resp.describe()));
    }
    let json: serde_json::Value = serde_json::from_slice(&resp.body)
        .map_err(|e| format!("not JSON ({e}): {}", resp.describe()))?;
    let file_len = fs::metadata(base_png_path()).expect("stat base.png").len();
    assert_eq!(file_len, 6321, "fixture base.png changed size");
    let expected = serde_json::json!({
        "format": "image/png",
        "fileSize": file_len,
        "width": 64,
        "height": 48,
    });
    for (key, want) in expected.as_object().unwrap() {
        if json.get(key) != Some(want) {
            return Err(format!(
                "{key} is {:?}, expected {want} (got {json})",
                json.get(key)
            ));
        }
    }
    Ok(())
}

/// The Worker's answer for an ImagesError the binding threw: 502 with `{error, code, name}`.
fn binding_error(resp: &Response) -> Result<serde_json::Value, String> {
    if resp.status != 502 {
        return Err(format!(
            "expected 502 (binding error), got {}",
            resp.describe()
        ));
    }
    serde_json::from_slice(&resp.body)
        .map_err(|e| format!("error body is not JSON ({e}): {}", resp.describe()))
}

/// A body that is no image → the binding throws ImagesError 9412 (Worker answers 502).
fn check_not_an_image(ctx: &Ctx) -> Result<(), String> {
    let resp = ctx.post(
        "transform_notimage",
        "/t?scenario=single",
        b"this is not an image",
    )?;
    let json = binding_error(&resp)?;
    if json["code"] != 9412 {
        return Err(format!("expected error code 9412, got {json}"));
    }
    Ok(())
}

/// run-client.sh's generic chain (width 40, rotated overlay with a nested overlay2) → WebP 40x30.
fn check_chain_generic(ctx: &Ctx) -> Result<(), String> {
    expect_image(
        &ctx.chain("chain_generic", GENERIC_SPEC)?,
        Format::Webp,
        (40, 30),
    )
    .map(drop)
}

/// Whether two images differ visibly at a pixel.
fn changed(a: &RgbaImage, b: &RgbaImage, (x, y): (u32, u32)) -> bool {
    max_rgb_diff(*a.get_pixel(x, y), *b.get_pixel(x, y)) > 8
}

/// overlay tiled over everything at opacity 0.25, overlay2 repeated along the bottom → PNG
/// 64x48, changed all over and along the bottom row.
fn check_draw_repeat(ctx: &Ctx) -> Result<(), String> {
    let out = expect_image(&ctx.scenario("draw_repeat")?, Format::Png, (64, 48))?;
    let base = ctx.base_image();
    for p in [(1, 1), (40, 20), (20, 30), (60, 10)] {
        if !changed(&out, &base, p) {
            return Err(format!("pixel {p:?} shows no tiled overlay"));
        }
    }
    for p in [(2, 45), (30, 46), (61, 47)] {
        if !changed(&out, &base, p) {
            return Err(format!("pixel {p:?} shows no overlay2 along the bottom"));
        }
    }
    Ok(())
}

/// cover 40x30 with gravity auto, JPEG q42 on a red background → JPEG 40x30.
fn check_quality_scenario(ctx: &Ctx) -> Result<(), String> {
    expect_image(&ctx.scenario("quality")?, Format::Jpeg, (40, 30)).map(drop)
}

/// anim=false, WebP q90 → WebP 64x48.
fn check_anim(ctx: &Ctx) -> Result<(), String> {
    expect_image(&ctx.scenario("anim")?, Format::Webp, (64, 48)).map(drop)
}

/// No transform, PNG out → the base image's pixels exactly.
fn check_output_only(ctx: &Ctx) -> Result<(), String> {
    let out = expect_image(&ctx.scenario("output_only")?, Format::Png, (64, 48))?;
    if out != ctx.base_image() {
        return Err("PNG output differs from base.png".into());
    }
    Ok(())
}

/// Every option at once, `segment` among them: segment needs a model this server does not
/// ship, so the binding reports 9401 naming it (documented), never a silent no-op.
fn check_all_options(ctx: &Ctx) -> Result<(), String> {
    let resp = ctx.scenario("all_options")?;
    let json = binding_error(&resp)?;
    let message = json["error"].as_str().unwrap_or_default();
    if json["code"] != 9401 || !message.contains("segment") {
        return Err(format!("expected 9401 naming segment, got {json}"));
    }
    Ok(())
}

/// base64 text in, decoded by the binding; width 10 → GIF 10x8.
fn check_base64_input(ctx: &Ctx) -> Result<(), String> {
    let b64 = base64_encode(&ctx.base_png);
    let resp = ctx.post("base64_input", "/t?scenario=base64_input", b64.as_bytes())?;
    expect_image(&resp, Format::Gif, (10, 8)).map(drop)
}

fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// White "Hello" (size 12) drawn at (2,2) → PNG 64x48 with white text pixels there.
fn check_text_draw(ctx: &Ctx) -> Result<(), String> {
    let out = expect_image(&ctx.scenario("text_draw")?, Format::Png, (64, 48))?;
    let base = ctx.base_image();
    let white = (2..34)
        .flat_map(|x| (2..16).map(move |y| (x, y)))
        .filter(|&(x, y)| {
            let p = out.get_pixel(x, y);
            p[0] > 230 && p[1] > 230 && p[2] > 230 && changed(&out, &base, (x, y))
        })
        .count();
    if white < 10 {
        return Err(format!("only {white} white text pixels near (2,2)"));
    }
    if changed(&out, &base, (60, 44)) {
        return Err("pixel (60,44), far from the text, changed".into());
    }
    Ok(())
}

/// An image, a text and a transformed image overlay → AVIF 64x48.
fn check_mixed_overlays(ctx: &Ctx) -> Result<(), String> {
    expect_image(&ctx.scenario("mixed_overlays")?, Format::Avif, (64, 48)).map(drop)
}

/// A text canvas ("Canvas"), width 100 with the default scale-down → a PNG at most 100 wide
/// with visible glyphs.
fn check_text_canvas(ctx: &Ctx) -> Result<(), String> {
    let resp = ctx.scenario("text_canvas")?;
    if resp.status != 200 || Format::sniff(&resp.body) != Some(Format::Png) {
        return Err(format!("expected a PNG, got {}", resp.describe()));
    }
    let img = Format::Png.decode(&resp.body)?;
    if img.width() == 0 || img.width() > 100 || img.height() == 0 {
        return Err(format!("text canvas is {}x{}", img.width(), img.height()));
    }
    let inked = img.pixels().filter(|p| p[3] > 128).count();
    if inked < 20 {
        return Err(format!("only {inked} opaque pixels: no glyphs"));
    }
    println!(
        "    text canvas {}x{}, {inked} inked pixels",
        img.width(),
        img.height()
    );
    Ok(())
}

/// The HTTP client's own parsing, chunked bodies included (workerd streams some answers).
#[test]
fn http_client_parses_chunked_and_sized_bodies() {
    let chunked =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: image/png\r\n\r\n\
                    4\r\nabcd\r\n3;ext=1\r\nefg\r\n0\r\nX-Trailer: 1\r\n\r\n";
    let resp = parse_response(chunked).expect("chunked response");
    assert_eq!((resp.status, resp.body.as_slice()), (200, &b"abcdefg"[..]));
    assert_eq!(resp.header("Content-Type"), Some("image/png"));

    let sized = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 2\r\n\r\n{}";
    let resp = parse_response(sized).expect("sized response");
    assert_eq!((resp.status, resp.body.as_slice()), (502, &b"{}"[..]));

    assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort").is_err());
    assert_eq!(percent_encode(r#"{"a":1} x"#), "%7B%22a%22%3A1%7D%20x");
}

type Check = fn(&Ctx) -> Result<(), String>;

const CHECKS: &[(&str, Check)] = &[
    ("single (AVIF 32x43)", check_single),
    ("chained (WebP 32x43)", check_chained),
    ("draw (JPEG 64x48, overlay pixels)", check_draw),
    ("nested (PNG 48x36)", check_nested),
    ("quality webp q20 < q95 (60x45)", |c| {
        check_quality(c, Format::Webp)
    }),
    ("quality jpeg q20 < q95 (60x45)", |c| {
        check_quality(c, Format::Jpeg)
    }),
    ("info (png 64x48, fileSize 6321)", check_info),
    ("not an image (502, code 9412)", check_not_an_image),
    ("chain_generic (WebP 40x30)", check_chain_generic),
    ("draw_repeat (PNG 64x48, tiled)", check_draw_repeat),
    ("quality scenario (JPEG 40x30)", check_quality_scenario),
    ("anim=false (WebP 64x48)", check_anim),
    ("output_only (PNG = base)", check_output_only),
    ("all_options (9401: segment)", check_all_options),
    ("base64_input (GIF 10x8)", check_base64_input),
    ("text_draw (PNG 64x48, white text)", check_text_draw),
    ("mixed_overlays (AVIF 64x48)", check_mixed_overlays),
    ("text_canvas (PNG <= 100 wide)", check_text_canvas),
];

/// Runs one check, turning a panic inside it (a decoder, say) into a failure.
fn run_check(ctx: &Ctx, check: Check) -> Result<(), String> {
    panic::catch_unwind(AssertUnwindSafe(|| check(ctx))).unwrap_or_else(|payload| {
        let msg = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Err(format!("panicked: {msg}"))
    })
}

#[test]
fn workerd_images_binding_against_lastbyte() {
    let harness = install_harness();
    let root = work_root();
    let (logs, out_dir) = (root.join("logs"), root.join("out"));
    fs::create_dir_all(&logs).unwrap();
    fs::create_dir_all(&out_dir).unwrap();

    // Unix socket paths are limited to 107 bytes: keep them short, under /tmp.
    let sockets = tempfile::Builder::new()
        .prefix("lb")
        .tempdir_in("/tmp")
        .expect("temp dir for sockets");
    let backend_sock = sockets.path().join("images.sock");
    let client_sock = sockets.path().join("client.sock");

    let server = start_lastbyte(&backend_sock, logs.join("lastbyte.log"));
    let workerd = start_workerd(
        &harness,
        &backend_sock,
        &client_sock,
        logs.join("workerd.log"),
    );

    let ctx = Ctx {
        client_sock,
        base_png: fs::read(base_png_path()).expect("read base.png"),
        out_dir,
    };
    let mut failed = Vec::new();
    for (name, check) in CHECKS {
        match run_check(&ctx, *check) {
            Ok(()) => println!("PASS  {name}"),
            Err(e) => {
                println!("FAIL  {name}: {e}");
                failed.push(format!("{name}: {e}"));
            }
        }
    }
    println!(
        "logs: {}, response bodies: {}",
        logs.display(),
        ctx.out_dir.display()
    );
    if !failed.is_empty() {
        // Dropping the processes during the panic prints their logs.
        panic!(
            "{} of {} workerd end-to-end checks failed:\n  {}",
            failed.len(),
            CHECKS.len(),
            failed.join("\n  ")
        );
    }
    drop(workerd);
    drop(server);
}
