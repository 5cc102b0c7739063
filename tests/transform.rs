//! `/transform` and `/info` over a real Unix socket with the real binary and real photos.

mod support;
use support::*;

fn transform(server: &Server, parts: &[(&str, &[u8])]) -> Response {
    roundtrip(server, &transform_request(parts, false))
}

#[test]
fn photo_to_800px_webp_quality_shapes_size() {
    let s = Server::start(&[]);
    let photo = fixture("images/colorfulcups_2560x1600_progressive.jpg");
    let t = br#"[{"imageIndex":0,"width":800}]"#;
    let mut sizes = Vec::new();
    for q in [b"30", b"90"] {
        let r = transform(
            &s,
            &[
                ("image", &photo),
                ("transforms", t),
                ("output_format", b"image/webp"),
                ("output_quality", q),
            ],
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("content-type"), Some("image/webp"));
        assert_eq!(sniff(&r.body), "image/webp");
        let img = decode(&r.body);
        assert_eq!(img.dimensions(), (800, 500));
        sizes.push(r.body.len());
    }
    assert!(
        sizes[0] * 2 < sizes[1],
        "q30 ({}) should be markedly smaller than q90 ({})",
        sizes[0],
        sizes[1]
    );
}

#[test]
fn photo_to_800px_avif_decodes_to_pixels() {
    let s = Server::start(&["--avif-speed", "10"]);
    let photo = fixture("images/colorfulcups_2560x1600_progressive.jpg");
    let r = transform(
        &s,
        &[
            ("image", &photo),
            ("transforms", br#"[{"imageIndex":0,"width":800}]"#),
            ("output_format", b"image/avif"),
            ("output_quality", b"60"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(sniff(&r.body), "image/avif");
    let img = decode(&r.body);
    assert_eq!(img.dimensions(), (800, 500));
    // Compare with the same resize done by an independent path (image's own decoder and
    // resize): a real pixel decode, not only a header, and close to the source.
    let reference = image::load_from_memory(&photo)
        .unwrap()
        .resize_exact(800, 500, image::imageops::FilterType::Triangle)
        .to_rgba8();
    let mad: f64 = img
        .pixels()
        .zip(reference.pixels())
        .map(|(a, b)| {
            (0..3)
                .map(|c| (a[c] as f64 - b[c] as f64).abs())
                .sum::<f64>()
        })
        .sum::<f64>()
        / (800.0 * 500.0 * 3.0);
    assert!(
        mad < 12.0,
        "mean abs difference {mad:.1} too large for the same picture"
    );
}

#[test]
fn jpeg_background_png_overlay_with_opacity() {
    let s = Server::start(&[]);
    let photo = fixture("images/dune_1680x1050_exif.jpg");
    let logo = fixture("images/debian_spacefun_logo_rgba.png");
    let transforms = br#"[{"imageIndex":0,"width":800},{"drawImageIndex":1,"targetImageIndex":0,"opacity":0.8,"top":40,"left":60}]"#;
    let with = transform(
        &s,
        &[
            ("image", &photo),
            ("draw_image", &logo),
            ("transforms", transforms),
            ("output_format", b"image/jpeg"),
        ],
    );
    assert_eq!(with.status, 200, "{}", with.text());
    assert_eq!(sniff(&with.body), "image/jpeg");
    let without = transform(
        &s,
        &[
            ("image", &photo),
            ("transforms", br#"[{"imageIndex":0,"width":800}]"#),
            ("output_format", b"image/jpeg"),
        ],
    );
    let (a, b) = (decode(&with.body), decode(&without.body));
    assert_eq!(a.dimensions(), (800, 500));
    // The logo is 425x137 at (60, 40): find an opaque logo pixel and check it shows.
    let logo_img = image::load_from_memory(&logo).unwrap().to_rgba8();
    let diff = |p: &image::Rgba<u8>, q: &image::Rgba<u8>| {
        (0..3)
            .map(|c| (p[c] as i32 - q[c] as i32).abs())
            .max()
            .unwrap()
    };
    // The opaque logo pixel that contrasts most with the photo beneath it.
    let (lx, ly, _) = logo_img
        .enumerate_pixels()
        .filter(|(_, _, p)| p[3] == 255)
        .max_by_key(|(x, y, p)| diff(p, b.get_pixel(60 + x, 40 + y)))
        .expect("an opaque logo pixel");
    let inside = (60 + lx, 40 + ly);
    let want = logo_img.get_pixel(lx, ly);
    let got = a.get_pixel(inside.0, inside.1);
    let bg = b.get_pixel(inside.0, inside.1);
    assert!(
        diff(got, bg) > 25,
        "overlay not visible at {inside:?}: {got:?} vs background {bg:?}"
    );
    // 80% logo + 20% background, within JPEG tolerance.
    let blend: Vec<i32> = (0..3)
        .map(|c| (want[c] as f32 * 0.8 + bg[c] as f32 * 0.2) as i32)
        .collect();
    assert!(
        (0..3).all(|c| (got[c] as i32 - blend[c]).abs() < 40),
        "{got:?} vs blend {blend:?}"
    );
    // Far from the overlay the two renders agree.
    for (x, y) in [(700, 400), (10, 480), (790, 10)] {
        assert!(
            diff(a.get_pixel(x, y), b.get_pixel(x, y)) < 12,
            "pixel ({x},{y}) changed outside the overlay"
        );
    }
}

#[test]
fn info_reports_oriented_dimensions() {
    let s = Server::start(&[]);
    let img = fixture("images/landscape_6.jpg");
    let (ct, body) = multipart(&[("image", &img)]);
    let r = roundtrip(&s, &chunked_post("/info", &ct, &body, false));
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["format"], "image/jpeg");
    assert_eq!(v["file_size"], img.len());
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(1800), Some(1200))
    );
    // And the pixels are turned too.
    let r = transform(
        &s,
        &[
            ("image", &img),
            ("transforms", br#"[{"imageIndex":0,"width":180}]"#),
            ("output_format", b"image/png"),
        ],
    );
    assert_eq!(decode(&r.body).dimensions(), (180, 120));
}

#[test]
fn errors_carry_binding_codes() {
    let s = Server::start(&["--max-body", "2000000"]);
    let t = br#"[{"imageIndex":0,"width":10}]"#;
    /// Input, transforms JSON, expected status and code, and a word the message must contain.
    type Case<'a> = (Vec<u8>, &'a [u8], u16, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            fixture("images/html_named.jpg"),
            t,
            415,
            9412,
            "not an image",
        ),
        (
            fixture("images/bomb_png_header_50000x50000_rgba.png"),
            t,
            413,
            9413,
            "50000x50000",
        ),
        (
            fixture("images/truncated_30pct.png"),
            t,
            422,
            9516,
            "decode",
        ),
        (
            fixture("images/dune_1680x1050_exif.jpg"),
            b"[{\"imageIndex\":0,\"width\":",
            400,
            9401,
            "transforms JSON",
        ),
        (
            fixture("images/dune_1680x1050_exif.jpg"),
            br#"[{"imageIndex":0,"sharpen":20}]"#,
            400,
            9401,
            "sharpen",
        ),
        (
            fixture("images/dune_1680x1050_exif.jpg"),
            br#"[{"imageIndex":0,"fit":"cover","width":5,"height":5,"gravity":"face"}]"#,
            400,
            9401,
            "gravity=face",
        ),
        (
            fixture("images/dune_1680x1050_exif.jpg"),
            br#"[{"imageIndex":3,"width":5}]"#,
            400,
            9401,
            "imageIndex 3",
        ),
    ];
    for (img, transforms, status, code, needle) in cases {
        let r = transform(
            &s,
            &[
                ("image", &img),
                ("transforms", transforms),
                ("output_format", b"image/png"),
            ],
        );
        assert_eq!(
            (r.status, r.binding_code()),
            (status, Some(code)),
            "{}",
            r.text()
        );
        assert!(
            r.text().starts_with(&format!("ERROR {code}: ")),
            "{}",
            r.text()
        );
        assert!(
            r.text().contains(needle),
            "{:?} should mention {needle:?}",
            r.text()
        );
    }
    // Over the body limit: 9402 before reading the rest (declared Content-Length).
    let big = vec![0u8; 3_000_000];
    let mut req = format!("POST /transform HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: {}\r\n\r\n", big.len()).into_bytes();
    req.extend_from_slice(&big[..1000]);
    let r = roundtrip(&s, &req);
    assert_eq!(
        (r.status, r.binding_code()),
        (413, Some(9402)),
        "{}",
        r.text()
    );
    // Chunked past the limit: 9402 too.
    let (ct, body) = multipart(&[("image", &big)]);
    let r = roundtrip(&s, &chunked_post("/transform", &ct, &body, false));
    assert_eq!(
        (r.status, r.binding_code()),
        (413, Some(9402)),
        "{}",
        r.text()
    );
    // An unsupported output format and a malformed text part name themselves.
    let img = fixture("images/dune_1680x1050_exif.jpg");
    let r = transform(
        &s,
        &[
            ("image", &img),
            ("transforms", b"[]"),
            ("output_format", b"image/bmp"),
        ],
    );
    assert_eq!(r.binding_code(), Some(9401));
    assert!(r.text().contains("image/bmp"));
    let r = transform(
        &s,
        &[
            ("text_input", br#"{"text":5}"#),
            ("transforms", b"[]"),
            ("output_format", b"image/png"),
        ],
    );
    assert_eq!(r.binding_code(), Some(9401));
    assert!(r.text().contains("text_input"));
}

#[test]
fn fit_modes_and_pad_background() {
    let s = Server::start(&[]);
    let img = fixture("images/dune_1680x1050_exif.jpg");
    for (t, dims) in [
        (
            r#"{"imageIndex":0,"width":200,"height":200,"fit":"contain"}"#,
            (200, 125),
        ),
        (
            r#"{"imageIndex":0,"width":200,"height":200,"fit":"scale-down"}"#,
            (200, 125),
        ),
        (
            r#"{"imageIndex":0,"width":200,"height":200,"fit":"cover"}"#,
            (200, 200),
        ),
        (
            r#"{"imageIndex":0,"width":200,"height":200,"fit":"crop"}"#,
            (200, 200),
        ),
        (
            r##"{"imageIndex":0,"width":200,"height":200,"fit":"pad","background":"#ff0000"}"##,
            (200, 200),
        ),
        (
            r#"{"imageIndex":0,"width":4000,"fit":"scale-down"}"#,
            (1680, 1050),
        ),
        (r#"{"imageIndex":0,"rotate":270,"height":100}"#, (63, 100)),
        (
            r#"{"imageIndex":0,"flip":"hv","width":100,"blur":10}"#,
            (100, 63),
        ),
    ] {
        let transforms = format!("[{t}]");
        let r = transform(
            &s,
            &[
                ("image", &img),
                ("transforms", transforms.as_bytes()),
                ("output_format", b"image/png"),
            ],
        );
        assert_eq!(r.status, 200, "{t}: {}", r.text());
        let out = decode(&r.body);
        assert_eq!(out.dimensions(), dims, "{t}");
        if t.contains("pad") {
            assert_eq!(out.get_pixel(100, 2).0, [255, 0, 0, 255], "pad colour");
        }
    }
    // Raw rgba output: no header, dimensions in headers.
    let r = transform(
        &s,
        &[
            ("image", &img),
            ("transforms", br#"[{"imageIndex":0,"width":10}]"#),
            ("output_format", b"rgba"),
        ],
    );
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(
        (r.header("x-image-width"), r.header("x-image-height")),
        (Some("10"), Some("6"))
    );
    assert_eq!(r.body.len(), 10 * 6 * 4);
}

#[test]
fn framing_errors_on_binding_routes_carry_the_binding_code() {
    let s = Server::start(&["--header-timeout", "0.5"]);
    let mp = "Host: x\r\nContent-Type: multipart/form-data; boundary=XyZ\r\n";
    let cases: Vec<(String, u16)> = vec![
        (
            format!("POST /transform HTTP/1.1\r\n{mp}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc"),
            400,
        ),
        (
            format!("POST /info HTTP/1.1\r\n{mp}Content-Length: 3\r\nContent-Length: 4\r\n\r\nabc"),
            400,
        ),
        (
            format!("POST /transform HTTP/1.1\r\n{mp}Transfer-Encoding: gzip\r\n\r\n"),
            501,
        ),
        (
            format!("POST /transform HTTP/1.1\r\n{mp}Expect: 200-ok\r\nContent-Length: 1\r\n\r\nx"),
            417,
        ),
        ("GET /transform HTTP/1.1\r\nHost: x\r\n\r\n".to_string(), 405),
        // The head never completes: 408 at the head deadline, still in the binding's terms.
        ("POST /transform HTTP/1.1\r\nHost: x\r\n".to_string(), 408),
    ];
    for (req, status) in cases {
        let r = roundtrip(&s, req.as_bytes());
        let what = req.lines().next().unwrap().to_string();
        assert_eq!(r.status, status, "{what}");
        assert_eq!(r.binding_code(), Some(9401), "{what}: {}", r.text());
        assert!(r.text().starts_with("ERROR 9401: "), "{what}: {}", r.text());
    }
    // Elsewhere the same errors stay plain text.
    let r = roundtrip(
        &s,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
    );
    assert_eq!((r.status, r.binding_code()), (501, None));
    let r = roundtrip(&s, b"GET /transform HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.header("allow"), Some("POST"));
}

#[test]
fn unused_overlays_are_not_decoded_and_a_job_has_a_pixel_budget() {
    // 1 MP per image, 2 MP per job.
    let s = Server::start(&["--max-megapixels", "1"]);
    let big = {
        let img = image::RgbaImage::from_pixel(1000, 1000, image::Rgba([9, 9, 9, 255]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    };
    // Canvas plus five overlays no element uses: only the canvas is decoded.
    let mut parts: Vec<(&str, &[u8])> = vec![("image", &big)];
    for _ in 0..5 {
        parts.push(("draw_image", &big));
    }
    parts.push(("transforms", br#"[{"imageIndex":0,"width":10}]"#));
    parts.push(("output_format", b"image/png"));
    let r = transform(&s, &parts);
    assert_eq!(r.status, 200, "{}", r.text());
    // Two overlays drawn: three 1 MP images exceed the 2 MP job budget.
    let mut parts: Vec<(&str, &[u8])> =
        vec![("image", &big), ("draw_image", &big), ("draw_image", &big)];
    parts.push((
        "transforms",
        br#"[{"drawImageIndex":1,"targetImageIndex":0},{"drawImageIndex":2,"targetImageIndex":0}]"#,
    ));
    parts.push(("output_format", b"image/png"));
    let r = transform(&s, &parts);
    assert_eq!(
        (r.status, r.binding_code()),
        (413, Some(9413)),
        "{}",
        r.text()
    );
    assert!(r.text().contains("megapixels in all"), "{}", r.text());
}
