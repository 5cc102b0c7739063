//! Every file of the shared image corpus (`LASTBYTE_CORPUS`, CI: `../shared/corpus`) through
//! `/info` and `/transform` on the real server: a correct image at the size its MANIFEST gives,
//! or a clean error with the right binding code — bombs and corrupt headers must fail, files
//! with lying names are sniffed by content — and the server's memory stays bounded throughout.

mod support;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use support::*;

/// What a corpus file must produce.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Decodes: `/info` and `/transform` succeed at the manifest's size (after orientation).
    Image,
    /// A decompression bomb: `/transform` refuses it from the header (413 / 9413) before
    /// allocating pixels; `/info`, which never decodes pixels, reports the declared size.
    TooLarge,
    /// A variant this build's decoder does not implement (12-bit or arithmetic-coded JPEG):
    /// a clean 9516 (or 9412) on both routes, naming what is unsupported.
    Unsupported,
    /// Not an image: 415 / 9412 on both routes.
    NotImage,
    /// Corrupt data: `/transform` answers 9516, or (for damage a decoder may tolerate) a
    /// correct image; `/info` may succeed from an intact header.
    CorruptOrImage,
    /// Corrupt data that must fail: `/transform` answers 9516 (or 9412 when not even the
    /// format's header survives).
    Corrupt,
}

/// Expectations for the hostile files and the few formats this build refuses, from the
/// MANIFEST's "tests" column. Everything else must decode.
fn expectation(rel: &str) -> Expect {
    use Expect::*;
    match rel {
        "hostile/bomb_gif_65535x65535.gif"
        | "hostile/bomb_jpeg_sof_65535x65535.jpg"
        | "hostile/bomb_png_header_50000x50000_rgba.png"
        | "hostile/bomb_png_valid_50000x50000_1bit.png"
        | "hostile/bomb_webp_vp8l_16384x16384.webp" => TooLarge,
        "hostile/empty.jpg"
        | "hostile/html_named.jpg"
        | "hostile/random_bytes.png"
        | "hostile/pngsuite_xs1n0g01_bad_signature.png" => NotImage,
        // A PNG signature and nothing else: recognised as PNG, then corrupt.
        "hostile/png_magic_only.png" => Corrupt,
        "jpeg/12bit_precision.jpg" | "jpeg/arithmetic_coded.jpg" => Unsupported,
        "hostile/jpeg_bytes_named.png" | "hostile/png_bytes_named.jpg" => Image,
        "hostile/bad_crc_idat_real.png"
        | "hostile/corrupt_entropy_data.jpg"
        | "hostile/truncated_photo_40pct.jpg" => CorruptOrImage,
        r if r.starts_with("hostile/") => Corrupt,
        _ => Image,
    }
}

fn corpus_dir() -> Option<PathBuf> {
    match std::env::var_os("LASTBYTE_CORPUS") {
        Some(d) => Some(PathBuf::from(d)),
        None => {
            eprintln!(
                "LASTBYTE_CORPUS is not set: the corpus-wide test is skipped \
                 (CI sets it to ../shared/corpus)"
            );
            None
        }
    }
}

/// `(file, WxH)` rows of the MANIFEST's table (`WxH` as stored, before orientation).
fn manifest(dir: &Path) -> BTreeMap<String, Option<(u32, u32)>> {
    let text = std::fs::read_to_string(dir.join("manifest.json")).expect("manifest.json");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    rows.iter()
        .map(|r| {
            let file = r["file"].as_str().unwrap().to_string();
            let dims = r["dimensions"].as_str().and_then(|d| {
                let (w, h) = d.split_once('x')?;
                Some((w.trim().parse().ok()?, h.trim().parse().ok()?))
            });
            (file, dims)
        })
        .collect()
}

/// Sizes the MANIFEST does not give, or gives as another tool read them: hostile files derived
/// from a known image, the GIF's logical screen (the MANIFEST gives its first frame), the AVIF
/// clean-aperture crop (`clap` applied), and the `irot` sample (stored turned, upright 722×1024).
fn known_size(rel: &str) -> Option<(u32, u32)> {
    Some(match rel {
        "hostile/jpeg_bytes_named.png" | "hostile/corrupt_entropy_data.jpg" => (1680, 1050),
        "hostile/truncated_photo_40pct.jpg" => (6028, 3391),
        "hostile/png_bytes_named.jpg" => (32, 32),
        "hostile/bad_crc_idat_real.png" => (2048, 2048),
        "gif/any_disposal.gif" => (32, 32),
        "avif/kimono_crop.avif" => (385, 330),
        "avif/kimono_rotate90.avif" => (722, 1024),
        _ => return None,
    })
}

/// The upright size: the EXIF orientation examples 5–8 are stored transposed.
fn upright(rel: &str, (w, h): (u32, u32)) -> (u32, u32) {
    if let Some(d) = known_size(rel) {
        return d;
    }
    let transposed = ["5", "6", "7", "8"]
        .iter()
        .any(|n| rel == format!("jpeg/orientation/landscape_{n}.jpg"));
    if transposed {
        (h, w)
    } else {
        (w, h)
    }
}

fn post(s: &Server, route: &str, parts: &[(&str, &[u8])]) -> Response {
    let (ct, body) = multipart(parts);
    roundtrip(s, &chunked_post(route, &ct, &body, true))
}

#[test]
fn every_corpus_file_gives_an_image_or_the_right_error() {
    let Some(dir) = corpus_dir() else { return };
    let files = manifest(&dir);
    assert!(files.len() >= 70, "manifest lists {} files", files.len());
    let s = Server::start(&["--cpu-threads", "2"]);
    let mut failures = Vec::new();
    let mut peak_rss = 0;
    for (rel, dims) in &files {
        let bytes = std::fs::read(dir.join(rel)).unwrap();
        let expect = expectation(rel);
        let info = post(&s, "/info", &[("image", &bytes)]);
        let out = post(
            &s,
            "/transform",
            &[
                ("image", &bytes),
                ("transforms", br#"[{"imageIndex":0,"width":64}]"#),
                ("output_format", b"image/png"),
            ],
        );
        peak_rss = peak_rss.max(rss_kib(s.pid()));
        let got = (
            info.status,
            info.binding_code(),
            out.status,
            out.binding_code(),
        );
        let verdict = match expect {
            Expect::Image => check_image(rel, *dims, &info, &out),
            Expect::TooLarge => expect_codes(got, &[(200, 0)], &[(413, 9413)]),
            Expect::Unsupported => expect_codes(
                got,
                &[(422, 9516), (415, 9412)],
                &[(422, 9516), (415, 9412)],
            ),
            Expect::NotImage => expect_codes(got, &[(415, 9412)], &[(415, 9412)]),
            Expect::CorruptOrImage => {
                if out.status == 200 {
                    check_image(rel, *dims, &info, &out)
                } else {
                    expect_codes(got, &[(200, 0), (422, 9516)], &[(422, 9516)])
                }
            }
            Expect::Corrupt => expect_codes(
                got,
                &[(200, 0), (422, 9516), (415, 9412)],
                &[(422, 9516), (415, 9412)],
            ),
        };
        eprintln!(
            "{rel}: {expect:?} -> info {} {:?}, transform {} {:?}{}",
            info.status,
            info.binding_code(),
            out.status,
            out.binding_code(),
            match &verdict {
                Ok(()) => String::new(),
                Err(e) => format!("  FAIL: {e}"),
            }
        );
        if let Err(e) = verdict {
            failures.push(format!("{rel}: {e}"));
        }
    }
    eprintln!("peak server RSS over the corpus: {} MiB", peak_rss / 1024);
    // The largest legitimate decode is a 17.9 MP photo (~72 MB as RGBA); bombs declaring
    // gigabytes must never be allocated.
    assert!(peak_rss < 1024 * 1024, "server RSS reached {peak_rss} KiB");
    let (code, stats) = s.stop();
    assert_eq!(code, 0);
    assert_eq!(stats["jobs_panicked"], 0);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `/info` (status, code) must be one of `info_ok`; `/transform` one of `out_ok`.
fn expect_codes(
    (is, ic, ts, tc): (u16, Option<u16>, u16, Option<u16>),
    info_ok: &[(u16, u16)],
    out_ok: &[(u16, u16)],
) -> Result<(), String> {
    let ok = |s: u16, c: Option<u16>, allowed: &[(u16, u16)]| {
        allowed
            .iter()
            .any(|(as_, ac)| s == *as_ && c.unwrap_or(0) == *ac)
    };
    if !ok(is, ic, info_ok) {
        return Err(format!(
            "/info answered {is} {ic:?}, expected one of {info_ok:?}"
        ));
    }
    if !ok(ts, tc, out_ok) {
        return Err(format!(
            "/transform answered {ts} {tc:?}, expected one of {out_ok:?}"
        ));
    }
    Ok(())
}

fn check_image(
    rel: &str,
    dims: Option<(u32, u32)>,
    info: &Response,
    out: &Response,
) -> Result<(), String> {
    if info.status != 200 {
        return Err(format!("/info: {} {}", info.status, info.text()));
    }
    if out.status != 200 {
        return Err(format!("/transform: {} {}", out.status, out.text()));
    }
    let j: serde_json::Value =
        serde_json::from_slice(&info.body).map_err(|e| format!("/info JSON: {e}"))?;
    let got = (
        j["width"].as_u64().unwrap_or(0) as u32,
        j["height"].as_u64().unwrap_or(0) as u32,
    );
    let Some(dims) = dims.or(known_size(rel)) else {
        return Err("manifest has no dimensions".into());
    };
    let (w, h) = upright(rel, dims);
    if got != (w, h) {
        return Err(format!(
            "/info says {got:?}, manifest (upright) {:?}",
            (w, h)
        ));
    }
    if sniff(&out.body) != "image/png" {
        return Err(format!("/transform gave {}", sniff(&out.body)));
    }
    let img = decode(&out.body);
    // width=64 with the default scale-down: never enlarged, aspect kept.
    let ew = w.min(64);
    let eh = ((h as f64 * ew as f64 / w as f64).round() as u32).max(1);
    if img.width() != ew || img.height().abs_diff(eh) > 1 {
        return Err(format!(
            "output {}x{}, expected {ew}x{eh}",
            img.width(),
            img.height()
        ));
    }
    Ok(())
}
