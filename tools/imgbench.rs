//! `imgbench`: lastbyte's image pipeline against in-process libvips on the same photo and
//! outputs, measured side by side in one run.
//!
//! ```text
//! cargo run --release --bin imgbench -- [--photo PATH] [--width 800] [--quality 80] [--runs 7]
//! ```
//!
//! For each of JPEG, WebP and AVIF at `--width` px it times the whole job from the encoded
//! photo (decode, resize, encode) in lastbyte (`Job::run`, the code `/transform` runs on a pool
//! thread) and in libvips (`thumbnail_buffer` → `write_to_buffer` through pyvips with the
//! operation cache off and `VIPS_CONCURRENCY=1`: one thread, like one lastbyte job). Each
//! engine runs in its own child process so its peak RSS is its own; the two alternate, pair by
//! pair, `--rounds` times, and the table reports medians over every run. Quality is compared,
//! not assumed: each output's PSNR is computed against one full-quality reference (the photo
//! decoded at full size and resized with Lanczos3 in `image`, an implementation neither engine
//! uses), next to its size in bytes.
//!
//! The libvips side needs `pip install pyvips pyvips-binary`; `imgbench` runs that itself when
//! `import pyvips` fails.

use clap::Parser;
use lastbyte::config::Limits;
use lastbyte::image::encode::Output;
use lastbyte::image::ops::Transform;
use lastbyte::image::pipeline::{Element, Input, Job};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(about = "lastbyte's pipeline vs in-process libvips, side by side")]
struct Args {
    /// The photo (default: the largest corpus photo under $LASTBYTE_CORPUS, else the repo's
    /// 2560x1600 fixture).
    #[arg(long)]
    photo: Option<PathBuf>,
    #[arg(long, default_value_t = 800)]
    width: u32,
    #[arg(long, default_value_t = 80)]
    quality: u8,
    /// Timed runs per engine, format and round (after one warm-up).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Alternating rounds (lastbyte, libvips, lastbyte, …).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// AVIF encoder speed for lastbyte (1-10), as `--avif-speed`.
    #[arg(long, default_value_t = 6)]
    avif_speed: u8,
    /// Child mode: run lastbyte's side and print its JSON (used by the parent).
    #[arg(long, hide = true)]
    child: Option<PathBuf>,
}

const FORMATS: [&str; 3] = ["jpeg", "webp", "avif"];

fn limits(avif_speed: u8) -> Limits {
    Limits {
        max_pixels: 100_000_000,
        max_dimension: 12_000,
        avif_max_dimension: 4096,
        webp_max_dimension: 16_383,
        avif_speed,
        max_frames: 1000,
        max_animation_pixels: 50_000_000,
    }
}

fn output(fmt: &str) -> Output {
    match fmt {
        "jpeg" => Output::Jpeg,
        "webp" => Output::Webp,
        _ => Output::Avif,
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// lastbyte's side, in this (child) process: JSON like the libvips script's.
fn run_child(args: &Args, photo: &Path, outdir: &Path) {
    let data = bytes::Bytes::from(std::fs::read(photo).expect("read photo"));
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&format!(r#"{{"width":{}}}"#, args.width)).unwrap();
    let transform = Transform::parse(0, &map).expect("transform");
    let limits = limits(args.avif_speed);
    let mut formats = serde_json::Map::new();
    for fmt in FORMATS {
        let mut times = Vec::new();
        let mut last = Vec::new();
        for i in 0..=args.runs {
            let job = Job {
                inputs: vec![Input::Encoded(data.clone())],
                elements: vec![Element::Transform(transform.clone())],
                output: output(fmt),
                quality: Some(args.quality),
                background: None,
                anim: None,
            };
            let t0 = Instant::now();
            let out = job.run(&limits).expect("lastbyte job");
            let ms = t0.elapsed().as_secs_f64() * 1000.0;
            if i > 0 {
                times.push(ms);
            }
            last = out.bytes;
        }
        std::fs::write(outdir.join(format!("lastbyte.{fmt}")), &last).unwrap();
        formats.insert(
            fmt.into(),
            serde_json::json!({"ms": times, "bytes": last.len()}),
        );
    }
    let v = serde_json::json!({"formats": formats, "peak_rss_kib": peak_rss_kib()});
    println!("{v}");
}

fn ensure_pyvips() {
    let ok = Command::new("python3")
        .args(["-c", "import pyvips"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("imgbench: installing pyvips and pyvips-binary with pip");
        let st = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "pyvips", "pyvips-binary"])
            .status()
            .expect("run pip");
        assert!(st.success(), "pip install pyvips pyvips-binary failed");
    }
}

fn json_of(cmd: &mut Command) -> serde_json::Value {
    let out = cmd.output().expect("run child");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or("")).expect("child JSON")
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn psnr(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    if a.dimensions() != b.dimensions() {
        return f64::NAN;
    }
    let se: f64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| {
            let d = *x as f64 - *y as f64;
            d * d
        })
        .sum();
    let mse = se / a.as_raw().len() as f64;
    10.0 * (255.0f64 * 255.0 / mse.max(1e-9)).log10()
}

fn decode_rgb(bytes: &[u8]) -> image::RgbImage {
    if bytes.len() > 12 && &bytes[4..8] == b"ftyp" {
        let img = lastbyte::image::avif::decode_rgba(bytes).expect("AVIF decodes");
        return image::DynamicImage::ImageRgba8(img).to_rgb8();
    }
    image::load_from_memory(bytes).expect("decodes").to_rgb8()
}

fn default_photo() -> PathBuf {
    if let Some(c) = std::env::var_os("LASTBYTE_CORPUS") {
        let p = Path::new(&c).join("photos/kleiber_6028x3391_baseline.jpg");
        if p.exists() {
            return p;
        }
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/images/colorfulcups_2560x1600_progressive.jpg")
}

fn main() {
    let args = Args::parse();
    let photo = args.photo.clone().unwrap_or_else(default_photo);
    if let Some(outdir) = &args.child {
        run_child(&args, &photo, outdir);
        return;
    }
    ensure_pyvips();
    let outdir = tempfile_dir();
    let me = std::env::current_exe().expect("own path");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/vips_bench.py");
    let (mut lb, mut vips) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        eprintln!("imgbench: round {} of {}", round + 1, args.rounds);
        lb.push(json_of(
            Command::new(&me)
                .arg("--child")
                .arg(&outdir)
                .arg("--photo")
                .arg(&photo)
                .args(["--width", &args.width.to_string()])
                .args(["--quality", &args.quality.to_string()])
                .args(["--runs", &args.runs.to_string()])
                .args(["--avif-speed", &args.avif_speed.to_string()]),
        ));
        let mut cmd = Command::new("python3");
        cmd.env("VIPS_CONCURRENCY", "1")
            .arg(&script)
            .arg(&photo)
            .arg(args.width.to_string())
            .arg(args.quality.to_string())
            .arg(args.runs.to_string())
            .arg(&outdir)
            .args(FORMATS);
        vips.push(json_of(&mut cmd));
    }
    // The reference: full-size decode (EXIF orientation applied) and an independent Lanczos3.
    let src = std::fs::read(&photo).unwrap();
    let mut full = image::ImageReader::new(std::io::Cursor::new(&src))
        .with_guessed_format()
        .unwrap()
        .into_decoder()
        .unwrap();
    let orientation = image::ImageDecoder::orientation(&mut full).ok();
    let mut full = image::DynamicImage::from_decoder(full).unwrap();
    if let Some(o) = orientation {
        full.apply_orientation(o);
    }
    let (fw, fh) = (full.width(), full.height());
    let version = vips[0]["libvips"].as_u64().unwrap_or(0);
    println!(
        "photo: {} ({fw}x{fh}), {} px wide, quality {}, {} rounds x {} runs per engine; \
         libvips {}.{} via pyvips, VIPS_CONCURRENCY=1, cache off; lastbyte AVIF speed {}, libvips AVIF effort 2\n",
        photo.file_name().unwrap().to_string_lossy(),
        args.width,
        args.quality,
        args.rounds,
        args.runs,
        version / 100,
        version % 100,
        args.avif_speed,
    );
    println!("| output | lastbyte ms | libvips ms | lastbyte / libvips | bytes (lastbyte / libvips) | PSNR dB vs reference (lastbyte / libvips) |");
    println!("|---|---|---|---|---|---|");
    for fmt in FORMATS {
        let times = |runs: &[serde_json::Value]| -> Vec<f64> {
            runs.iter()
                .flat_map(|r| {
                    r["formats"][fmt]["ms"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                })
                .filter_map(|v| v.as_f64())
                .collect()
        };
        let (mut tl, mut tv) = (times(&lb), times(&vips));
        let (ml, mv) = (median(&mut tl), median(&mut tv));
        let ol = std::fs::read(outdir.join(format!("lastbyte.{fmt}"))).unwrap();
        let ov = std::fs::read(outdir.join(format!("vips.{fmt}"))).unwrap();
        let (il, iv) = (decode_rgb(&ol), decode_rgb(&ov));
        let reference = image::imageops::resize(
            &full.to_rgb8(),
            il.width(),
            il.height(),
            image::imageops::FilterType::Lanczos3,
        );
        let vref = if iv.dimensions() == il.dimensions() {
            reference.clone()
        } else {
            image::imageops::resize(
                &full.to_rgb8(),
                iv.width(),
                iv.height(),
                image::imageops::FilterType::Lanczos3,
            )
        };
        println!(
            "| {fmt} {}x{} | {ml:.1} | {mv:.1} | **{:.2}** | {} / {} | {:.2} / {:.2} |",
            il.width(),
            il.height(),
            ml / mv,
            ol.len(),
            ov.len(),
            psnr(&il, &reference),
            psnr(&iv, &vref),
        );
    }
    let peak = |runs: &[serde_json::Value]| {
        runs.iter()
            .filter_map(|r| r["peak_rss_kib"].as_u64())
            .max()
            .unwrap_or(0)
    };
    println!(
        "\npeak RSS of the benchmarking process: lastbyte {} MiB, libvips {} MiB (Python interpreter included)",
        peak(&lb) / 1024,
        peak(&vips) / 1024
    );
    let _ = std::fs::remove_dir_all(&outdir);
}

fn tempfile_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("imgbench-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
