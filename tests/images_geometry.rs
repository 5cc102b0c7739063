//! Geometry and formats through the real server: all 8 EXIF orientations × every fit mode give
//! upright images in the requested box; a white glyph on transparent keeps white edges when
//! downscaled (premultiplied resize); odd and tiny sizes round-trip through every output format
//! and decode with an independent decoder at the right size.

mod support;
use image::{Rgba, RgbaImage};
use support::*;

fn encode(img: &RgbaImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    match format {
        image::ImageFormat::Jpeg => image::DynamicImage::ImageRgba8(img.clone())
            .to_rgb8()
            .write_to(&mut out, format)
            .unwrap(),
        _ => img.write_to(&mut out, format).unwrap(),
    }
    out.into_inner()
}

fn transform(s: &Server, input: &[u8], transforms: &str, format: &str) -> Response {
    let parts: Vec<(&str, &[u8])> = vec![
        ("image", input),
        ("transforms", transforms.as_bytes()),
        ("output_format", format.as_bytes()),
    ];
    roundtrip(s, &transform_request(&parts, false))
}

const RED: Rgba<u8> = Rgba([255, 0, 0, 255]);
const GREEN: Rgba<u8> = Rgba([0, 255, 0, 255]);
const BLUE: Rgba<u8> = Rgba([0, 0, 255, 255]);

/// 60×40 upright: left half red, top-right green, bottom-right blue — no symmetry, so any
/// wrong flip or turn shows.
fn upright() -> RgbaImage {
    RgbaImage::from_fn(60, 40, |x, y| match (x < 30, y < 20) {
        (true, _) => RED,
        (false, true) => GREEN,
        (false, false) => BLUE,
    })
}

/// A JPEG whose pixels are `upright` stored so that EXIF orientation `o` displays it upright,
/// with an APP1 Exif segment carrying that orientation.
fn oriented_jpeg(o: u8) -> Vec<u8> {
    use image::metadata::Orientation;
    // Displaying applies T_o to the stored pixels, so store T_o⁻¹(upright): every orientation
    // is its own inverse except the quarter turns 6 and 8, which undo each other.
    let inverse = match o {
        6 => 8,
        8 => 6,
        o => o,
    };
    let mut stored = image::DynamicImage::ImageRgba8(upright());
    stored.apply_orientation(Orientation::from_exif(inverse).unwrap());
    let jpeg = encode(&stored.to_rgba8(), image::ImageFormat::Jpeg);
    // TIFF, little-endian: one IFD entry, Orientation (0x0112) SHORT = o.
    let mut exif = b"Exif\0\0II*\0\x08\0\0\0\x01\0\x12\x01\x03\0\x01\0\0\0".to_vec();
    exif.extend_from_slice(&[o, 0, 0, 0, 0, 0, 0, 0]);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((exif.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&exif);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn close(a: Rgba<u8>, b: Rgba<u8>) -> bool {
    a.0.iter().zip(b.0).all(|(x, y)| x.abs_diff(y) < 60)
}

#[test]
fn every_orientation_and_fit_is_upright_in_the_box() {
    let s = Server::start(&[]);
    // Box 30×30 on a 60×40 (upright) input.
    let fits = [
        ("scale-down", (30, 20)),
        ("contain", (30, 20)),
        ("cover", (30, 30)),
        ("crop", (30, 30)),
        ("pad", (30, 30)),
        ("squeeze", (30, 30)),
    ];
    for o in 1..=8u8 {
        let jpeg = oriented_jpeg(o);
        let (ct, body) = multipart(&[("image", &jpeg)]);
        let info = roundtrip(&s, &chunked_post("/info", &ct, &body, false));
        let j: serde_json::Value = serde_json::from_slice(&info.body).unwrap();
        assert_eq!(
            (j["width"].as_u64(), j["height"].as_u64()),
            (Some(60), Some(40)),
            "o={o}"
        );
        for (fit, (w, h)) in fits {
            let t = format!(r#"[{{"imageIndex":0,"width":30,"height":30,"fit":"{fit}"}}]"#);
            let r = transform(&s, &jpeg, &t, "image/png");
            assert_eq!(r.status, 200, "o={o} fit={fit}: {}", r.text());
            let img = decode(&r.body);
            assert_eq!(img.dimensions(), (w, h), "o={o} fit={fit}");
            let at =
                |fx: f32, fy: f32| *img.get_pixel((fx * w as f32) as u32, (fy * h as f32) as u32);
            for (fx, fy, want, name) in [
                (0.2, 0.5, RED, "left red"),
                (0.8, 0.25, GREEN, "top-right green"),
                (0.8, 0.75, BLUE, "bottom-right blue"),
            ] {
                assert!(
                    close(at(fx, fy), want),
                    "o={o} fit={fit}: {name} is {:?}",
                    at(fx, fy)
                );
            }
        }
    }
}

#[test]
fn downscaled_white_glyph_on_transparent_keeps_white_edges() {
    let s = Server::start(&[]);
    // A white disc on fully transparent *black*: a straight-alpha resize would mix the black
    // of the transparent pixels into the edge and leave a dark halo.
    let glyph = RgbaImage::from_fn(200, 200, |x, y| {
        let (dx, dy) = (x as f32 - 100.0, y as f32 - 100.0);
        if dx * dx + dy * dy < 70.0 * 70.0 {
            Rgba([255, 255, 255, 255])
        } else {
            Rgba([0, 0, 0, 0])
        }
    });
    let png = encode(&glyph, image::ImageFormat::Png);
    for format in ["image/png", "image/webp", "rgba"] {
        let q = if format == "image/webp" { "100" } else { "85" };
        let parts: Vec<(&str, &[u8])> = vec![
            ("image", &png),
            ("transforms", br#"[{"imageIndex":0,"width":37}]"#),
            ("output_format", format.as_bytes()),
            ("output_quality", q.as_bytes()),
        ];
        let r = roundtrip(&s, &transform_request(&parts, false));
        assert_eq!(r.status, 200, "{format}: {}", r.text());
        let img = if format == "rgba" {
            RgbaImage::from_raw(37, 37, r.body.clone()).expect("37x37 RGBA")
        } else {
            decode(&r.body)
        };
        let mut edge = 0;
        for p in img.pixels() {
            if p[3] > 8 {
                if p[3] < 247 {
                    edge += 1;
                }
                assert!(
                    p[0].min(p[1]).min(p[2]) >= 240,
                    "{format}: dark fringe pixel {p:?}"
                );
            }
        }
        assert!(
            edge > 20,
            "{format}: the edge is anti-aliased ({edge} partial pixels)"
        );
    }
}

#[test]
fn odd_and_tiny_sizes_round_trip_through_every_format() {
    let s = Server::start(&["--avif-speed", "10"]);
    let sizes = [(1, 1), (1, 9), (9, 1), (3, 3), (15, 15), (101, 57)];
    let formats = [
        ("image/jpeg", "85"),
        ("image/png", "85"),
        ("image/webp", "80"),
        ("image/webp", "100"),
        ("image/avif", "60"),
        ("image/gif", "85"),
        ("rgb", "85"),
        ("rgba", "85"),
    ];
    for (w, h) in sizes {
        let img = RgbaImage::from_fn(w, h, |x, y| {
            Rgba([
                (x * 255 / w.max(1)) as u8,
                (y * 255 / h.max(1)) as u8,
                128,
                255,
            ])
        });
        let png = encode(&img, image::ImageFormat::Png);
        for (format, q) in formats {
            let parts: Vec<(&str, &[u8])> = vec![
                ("image", &png),
                ("transforms", b"[]"),
                ("output_format", format.as_bytes()),
                ("output_quality", q.as_bytes()),
            ];
            let r = roundtrip(&s, &transform_request(&parts, false));
            assert_eq!(r.status, 200, "{w}x{h} {format}: {}", r.text());
            let what = format!("{w}x{h} {format} q={q}");
            match format {
                "rgb" | "rgba" => {
                    let ch = if format == "rgb" { 3 } else { 4 };
                    assert_eq!(r.body.len(), (w * h * ch) as usize, "{what}");
                    assert_eq!(r.header("x-image-width"), Some(w.to_string().as_str()));
                    assert_eq!(r.header("x-image-height"), Some(h.to_string().as_str()));
                }
                _ => {
                    assert_eq!(sniff(&r.body), format, "{what}");
                    assert_eq!(r.header("content-type"), Some(format), "{what}");
                    let out = decode(&r.body);
                    assert_eq!(out.dimensions(), (w, h), "{what}");
                    // Lossless outputs give the pixels back exactly.
                    if format == "image/png" || (format == "image/webp" && q == "100") {
                        assert_eq!(out, img, "{what}");
                    }
                }
            }
        }
    }
}

fn psnr(a: &RgbaImage, b: &RgbaImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let mut se = 0f64;
    for (p, q) in a.pixels().zip(b.pixels()) {
        for c in 0..3 {
            let d = p[c] as f64 - q[c] as f64;
            se += d * d;
        }
    }
    let mse = se / (a.width() as f64 * a.height() as f64 * 3.0);
    10.0 * (255.0f64 * 255.0 / mse.max(1e-9)).log10()
}

#[test]
fn shrink_on_load_keeps_size_and_picture() {
    let s = Server::start(&[]);
    let photo = support::fixture("images/dune_1680x1050_exif.jpg");
    let full = image::load_from_memory(&photo).unwrap().to_rgba8();
    // 1680x1050 → 400 wide (4× smaller: decoded at 1/4), and a cover crop on the left edge
    // (decoded at 1/2), each against a full-size decode resized independently.
    let cases = [
        (r#"[{"imageIndex":0,"width":400}]"#, (400, 250), None),
        (
            r#"[{"imageIndex":0,"width":300,"height":300,"fit":"cover","gravity":"left"}]"#,
            (300, 300),
            Some((0u32, 0u32, 1050u32, 1050u32)),
        ),
    ];
    for (t, (w, h), crop) in cases {
        let out = decode(&transform(&s, &photo, t, "image/png").body);
        assert_eq!(out.dimensions(), (w, h), "{t}");
        let src = match crop {
            Some((x, y, cw, ch)) => image::imageops::crop_imm(&full, x, y, cw, ch).to_image(),
            None => full.clone(),
        };
        let reference = image::imageops::resize(&src, w, h, image::imageops::FilterType::Lanczos3);
        let p = psnr(&out, &reference);
        assert!(p > 30.0, "{t}: PSNR {p:.1} dB against a full-size decode");
    }
}
