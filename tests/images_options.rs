//! Every transform and draw option through the real server: trim, colour factors, sharpen,
//! border, dpr, zoom, gravity auto/entropy, model-only options refused, draw repeat and
//! composite modes. Inputs are synthetic PNGs built here, so every expected pixel is known.

mod support;
use image::{Rgba, RgbaImage};
use support::*;

fn png(img: &RgbaImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// One `/transform` to PNG; panics unless it is a 200 image.
fn run(s: &Server, inputs: &[&RgbaImage], transforms: &str) -> RgbaImage {
    let r = run_raw(s, inputs, transforms, "image/png");
    assert_eq!(r.status, 200, "{transforms}: {}", r.text());
    assert_eq!(sniff(&r.body), "image/png");
    decode(&r.body)
}

fn run_raw(s: &Server, inputs: &[&RgbaImage], transforms: &str, format: &str) -> Response {
    let encoded: Vec<Vec<u8>> = inputs.iter().map(|i| png(i)).collect();
    let mut parts: Vec<(&str, &[u8])> = Vec::new();
    for (i, e) in encoded.iter().enumerate() {
        parts.push((if i == 0 { "image" } else { "draw_image" }, e));
    }
    parts.push(("transforms", transforms.as_bytes()));
    parts.push(("output_format", format.as_bytes()));
    roundtrip(s, &transform_request(&parts, false))
}

const WHITE: Rgba<u8> = Rgba([255, 255, 255, 255]);
const RED: Rgba<u8> = Rgba([255, 0, 0, 255]);

/// 40x30 white with a red 10x6 block at (12, 8).
fn framed() -> RgbaImage {
    RgbaImage::from_fn(40, 30, |x, y| {
        if (12..22).contains(&x) && (8..14).contains(&y) {
            RED
        } else {
            WHITE
        }
    })
}

#[test]
fn trim_edges_and_border() {
    let s = Server::start(&[]);
    let img = framed();
    let out = run(&s, &[&img], r#"[{"imageIndex":0,"trim":"border"}]"#);
    assert_eq!(out.dimensions(), (10, 6));
    assert!(out.pixels().all(|p| *p == RED));
    let out = run(
        &s,
        &[&img],
        r##"[{"imageIndex":0,"trim":{"border":{"color":"#ffffff","tolerance":0,"keep":2}}}]"##,
    );
    assert_eq!(out.dimensions(), (14, 10));
    let out = run(
        &s,
        &[&img],
        r#"[{"imageIndex":0,"trim":{"top":1,"right":2,"bottom":3,"left":4}}]"#,
    );
    assert_eq!(out.dimensions(), (34, 26));
    let out = run(
        &s,
        &[&img],
        r#"[{"imageIndex":0,"trim":{"left":12,"top":8,"width":5,"height":2}}]"#,
    );
    assert_eq!(out.dimensions(), (5, 2));
    assert!(out.pixels().all(|p| *p == RED));
    // Trim happens before rotate and resize (Cloudflare's fixed order).
    let out = run(
        &s,
        &[&img],
        r#"[{"imageIndex":0,"trim":"border","rotate":90,"width":3}]"#,
    );
    assert_eq!(out.dimensions(), (3, 5));
    let r = run_raw(
        &s,
        &[&img],
        r#"[{"imageIndex":0,"trim":{"left":30,"right":10}}]"#,
        "image/png",
    );
    assert_eq!(r.binding_code(), Some(9401), "{}", r.text());
    assert!(r.text().contains("trim"), "{}", r.text());
}

#[test]
fn colour_sharpen_border_dpr() {
    let s = Server::start(&[]);
    let grey = RgbaImage::from_pixel(8, 8, Rgba([100, 100, 100, 255]));
    let px = |t: &str| run(&s, &[&grey], t).get_pixel(4, 4).0;
    assert_eq!(
        px(r#"[{"imageIndex":0,"brightness":2}]"#),
        [200, 200, 200, 255]
    );
    assert_eq!(
        px(r#"[{"imageIndex":0,"brightness":0}]"#),
        [100, 100, 100, 255]
    );
    assert!(px(r#"[{"imageIndex":0,"contrast":2}]"#)[0] < 80);
    assert!(px(r#"[{"imageIndex":0,"gamma":2}]"#)[0] > 150);
    assert!(px(r#"[{"imageIndex":0,"gamma":0.5}]"#)[0] < 50);
    let red = RgbaImage::from_pixel(8, 8, RED);
    let p = run(&s, &[&red], r#"[{"imageIndex":0,"saturation":0}]"#)
        .get_pixel(1, 1)
        .0;
    assert!(p[0] == p[1] && p[1] == p[2], "greyscale {p:?}");
    // Sharpen steepens an edge.
    let edge = RgbaImage::from_fn(16, 16, |x, _| {
        if x < 8 {
            Rgba([80, 80, 80, 255])
        } else {
            Rgba([160, 160, 160, 255])
        }
    });
    let out = run(&s, &[&edge], r#"[{"imageIndex":0,"sharpen":3}]"#);
    assert!(out.get_pixel(7, 4)[0] < 80 && out.get_pixel(8, 4)[0] > 160);
    // Border after the resize; dpr scales width, height and the border.
    let out = run(
        &s,
        &[&framed()],
        r##"[{"imageIndex":0,"width":10,"dpr":2,"border":{"color":"#00ff00","width":1}}]"##,
    );
    assert_eq!(out.dimensions(), (20 + 4, 15 + 4));
    assert_eq!(out.get_pixel(0, 0).0, [0, 255, 0, 255]);
    assert_eq!(out.get_pixel(23, 18).0, [0, 255, 0, 255]);
    assert_eq!(out.get_pixel(2, 2).0, [255, 255, 255, 255]);
    let out = run(
        &s,
        &[&framed()],
        r#"[{"imageIndex":0,"border":{"top":1,"bottom":2,"left":3,"right":4}}]"#,
    );
    assert_eq!(out.dimensions(), (47, 33));
    assert_eq!(
        out.get_pixel(0, 0).0,
        [0, 0, 0, 255],
        "default colour black"
    );
    // zoom is accepted (it only tunes gravity=face) and validated.
    assert_eq!(
        run(&s, &[&grey], r#"[{"imageIndex":0,"zoom":0.5}]"#).dimensions(),
        (8, 8)
    );
    for (t, needle) in [
        (r#"[{"imageIndex":0,"zoom":3}]"#, "zoom"),
        (r#"[{"imageIndex":0,"dpr":0}]"#, "dpr"),
        (r#"[{"imageIndex":0,"sharpen":11}]"#, "sharpen"),
        (r#"[{"imageIndex":0,"brightness":-1}]"#, "brightness"),
        (r#"[{"imageIndex":0,"border":{"width":-2}}]"#, "border"),
        (r#"[{"imageIndex":0,"segment":"foreground"}]"#, "segment"),
        (
            r#"[{"imageIndex":0,"fit":"cover","width":4,"height":4,"gravity":"face"}]"#,
            "gravity=face",
        ),
    ] {
        let r = run_raw(&s, &[&grey], t, "image/png");
        assert_eq!((r.status, r.binding_code()), (400, Some(9401)), "{t}");
        assert!(r.text().contains(needle), "{t}: {}", r.text());
    }
    // A border past the output limits is a 9413, not an allocation.
    let s = Server::start(&["--max-dimension", "100"]);
    let r = run_raw(
        &s,
        &[&grey],
        r#"[{"imageIndex":0,"border":{"width":60}}]"#,
        "image/png",
    );
    assert_eq!(r.binding_code(), Some(9413), "{}", r.text());
}

/// Flat grey 300x100 with a busy checkerboard subject at x 220..280.
fn subject_right() -> RgbaImage {
    RgbaImage::from_fn(300, 100, |x, y| {
        if (220..280).contains(&x) && (20..80).contains(&y) {
            if (x / 4 + y / 4) % 2 == 0 {
                Rgba([220, 30, 30, 255])
            } else {
                Rgba([30, 30, 220, 255])
            }
        } else {
            Rgba([128, 128, 128, 255])
        }
    })
}

#[test]
fn gravity_auto_and_entropy_keep_the_subject() {
    let s = Server::start(&[]);
    let img = subject_right();
    // Pixels that are not the flat grey background.
    let colourful = |o: &RgbaImage| {
        o.pixels()
            .filter(|p| (0..3).any(|c| (p[c] as i32 - 128).abs() > 40))
            .count()
    };
    for g in ["auto", "entropy"] {
        let t =
            format!(r#"[{{"imageIndex":0,"width":50,"height":50,"fit":"cover","gravity":"{g}"}}]"#);
        let out = run(&s, &[&img], &t);
        assert_eq!(out.dimensions(), (50, 50));
        // The subject is 60x60 of the 100x100 window → 30x30 of the 50x50 output (less a
        // little for resampling at its edges).
        assert!(
            colourful(&out) > 700,
            "{g}: subject lost ({})",
            colourful(&out)
        );
    }
    // Centre gravity misses it entirely: the test would fail for a centred crop.
    let out = run(
        &s,
        &[&img],
        r#"[{"imageIndex":0,"width":50,"height":50,"fit":"cover"}]"#,
    );
    assert_eq!(colourful(&out), 0);
}

#[test]
fn draw_repeat_and_composite() {
    let s = Server::start(&[]);
    let base = RgbaImage::from_pixel(20, 10, WHITE);
    let tile = RgbaImage::from_pixel(3, 3, RED);
    let out = run(
        &s,
        &[&base, &tile],
        r#"[{"drawImageIndex":1,"targetImageIndex":0,"repeat":true}]"#,
    );
    assert!(out.pixels().all(|p| *p == RED));
    let out = run(
        &s,
        &[&base, &tile],
        r#"[{"drawImageIndex":1,"targetImageIndex":0,"repeat":"x","bottom":0}]"#,
    );
    for (x, y, p) in out.enumerate_pixels() {
        assert_eq!(*p == RED, y >= 7, "({x},{y})");
    }
    let out = run(
        &s,
        &[&base, &tile],
        r#"[{"drawImageIndex":1,"targetImageIndex":0,"repeat":"y","left":2,"opacity":0.5}]"#,
    );
    assert_eq!(out.get_pixel(3, 0).0, [255, 128, 128, 255]);
    assert_eq!(out.get_pixel(0, 0).0, [255, 255, 255, 255]);
    // `in` keeps the overlay only where the target is, and clears the rest of the target.
    let half = RgbaImage::from_fn(20, 10, |x, _| {
        if x < 10 {
            Rgba([0, 0, 255, 255])
        } else {
            Rgba([0, 0, 0, 0])
        }
    });
    let big_red = RgbaImage::from_pixel(20, 4, RED);
    let out = run(
        &s,
        &[&half, &big_red],
        r#"[{"drawImageIndex":1,"targetImageIndex":0,"composite":"in","top":0}]"#,
    );
    assert_eq!(out.get_pixel(2, 1).0, [255, 0, 0, 255]);
    assert_eq!(out.get_pixel(15, 1)[3], 0);
    assert_eq!(out.get_pixel(2, 8)[3], 0, "outside the overlay is cleared");
    for (mode, inside_opaque, outside_opaque) in [
        ("over", [255, 0, 0, 255], [255, 0, 0, 255]),
        ("atop", [255, 0, 0, 255], [0, 0, 0, 0]),
        ("out", [0, 0, 0, 0], [255, 0, 0, 255]),
        ("xor", [0, 0, 0, 0], [255, 0, 0, 255]),
        ("lighter", [255, 0, 255, 255], [255, 0, 0, 255]),
    ] {
        let t = format!(
            r#"[{{"drawImageIndex":1,"targetImageIndex":0,"composite":"{mode}","top":0}}]"#
        );
        let out = run(&s, &[&half, &big_red], &t);
        let (a, b) = (out.get_pixel(2, 1).0, out.get_pixel(15, 1).0);
        let norm = |p: [u8; 4]| if p[3] == 0 { [0; 4] } else { p };
        assert_eq!(
            (norm(a), norm(b)),
            (inside_opaque, outside_opaque),
            "{mode}"
        );
    }
}

#[test]
fn all_options_capture_without_segment() {
    // The `all_options` capture's transforms minus `segment` (which needs a model): every
    // other option applies, into raw RGBA.
    let s = Server::start(&[]);
    let img = image::load_from_memory(&fixture("images/debian_spacefun_logo_rgba.png"))
        .unwrap()
        .resize(64, 48, image::imageops::FilterType::Triangle)
        .to_rgba8();
    let t = r##"[{"imageIndex":0,"width":50,"height":40,"fit":"pad","background":"rgb(0,0,0)",
        "gravity":{"x":0.25,"y":0.75,"mode":"remainder"},"blur":2,"brightness":1.1,"contrast":0.9,
        "gamma":1.2,"saturation":0.5,"sharpen":1.5,"flip":"hv","rotate":270,
        "border":{"color":"#00ff00","width":2},
        "trim":{"top":1,"bottom":2,"left":3,"right":4,"border":{"color":"#fff","tolerance":10,"keep":1}},
        "dpr":2},
        {"imageIndex":0,"trim":"border","border":{"top":1,"bottom":1,"left":2,"right":2}}]"##;
    let r = run_raw(&s, &[&img], t, "rgba");
    assert_eq!(r.status, 200, "{}", r.text());
    let w: usize = r.header("x-image-width").unwrap().parse().unwrap();
    let h: usize = r.header("x-image-height").unwrap().parse().unwrap();
    assert_eq!(r.body.len(), w * h * 4);
    // pad to 100x80 (dpr 2) + 4 px green border each side; the second element trims that
    // uniform green border away again and adds 2+2 / 1+1.
    assert_eq!((w, h), (100 + 4, 80 + 2));
}
