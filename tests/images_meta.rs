//! Output encodings and the metadata policy through the real server: progressive JPEG (but not
//! for tiny images), palette PNG only when lossless, EXIF copyright kept in JPEG output with
//! orientation 1 and everything else stripped, and embedded ICC profiles converted to sRGB.

mod support;
use image::{ImageEncoder, Rgba, RgbaImage};
use support::*;

fn transform(s: &Server, input: &[u8], transforms: &str, format: &str) -> Vec<u8> {
    let parts: Vec<(&str, &[u8])> = vec![
        ("image", input),
        ("transforms", transforms.as_bytes()),
        ("output_format", format.as_bytes()),
    ];
    let r = roundtrip(s, &transform_request(&parts, false));
    assert_eq!(r.status, 200, "{}", r.text());
    r.body
}

/// The JPEG frame markers (SOF0 baseline, SOF2 progressive …) present in a JPEG stream.
fn sof_markers(jpeg: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 2;
    while i + 4 <= jpeg.len() && jpeg[i] == 0xFF {
        let m = jpeg[i + 1];
        if m == 0xDA {
            break;
        }
        if (0xC0..=0xCF).contains(&m) && m != 0xC4 && m != 0xC8 && m != 0xCC {
            out.push(m);
        }
        i += 2 + u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]) as usize;
    }
    out
}

fn png_bytes(img: &RgbaImage, icc: Option<Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = image::codecs::png::PngEncoder::new(&mut out);
    if let Some(icc) = icc {
        enc.set_icc_profile(icc).unwrap();
    }
    enc.write_image(
        img.as_raw(),
        img.width(),
        img.height(),
        image::ExtendedColorType::Rgba8,
    )
    .unwrap();
    out
}

#[test]
fn jpeg_is_progressive_unless_tiny() {
    let s = Server::start(&[]);
    let photo = fixture("images/dune_1680x1050_exif.jpg");
    let big = transform(
        &s,
        &photo,
        r#"[{"imageIndex":0,"width":800}]"#,
        "image/jpeg",
    );
    assert_eq!(sof_markers(&big), vec![0xC2], "800 px: progressive");
    let tiny = transform(&s, &photo, r#"[{"imageIndex":0,"width":40}]"#, "image/jpeg");
    assert_eq!(sof_markers(&tiny), vec![0xC0], "40 px: baseline");
    // Both decode to the picture (an encoder bug once turned baseline colours to garbage):
    // compared with the same resize written losslessly.
    for (jpeg, width) in [(&big, 800), (&tiny, 40)] {
        let t = format!(r#"[{{"imageIndex":0,"width":{width}}}]"#);
        let png = decode(&transform(&s, &photo, &t, "image/png"));
        let got = decode(jpeg);
        assert_eq!(got.dimensions(), png.dimensions());
        let mse = got
            .pixels()
            .zip(png.pixels())
            .flat_map(|(a, b)| (0..3).map(move |c| (a[c] as f64 - b[c] as f64).powi(2)))
            .sum::<f64>()
            / (got.width() * got.height() * 3) as f64;
        let psnr = 10.0 * (255.0f64 * 255.0 / mse.max(1e-9)).log10();
        assert!(
            psnr > 28.0,
            "{width} px JPEG: PSNR {psnr:.1} dB against the PNG"
        );
    }
}

#[test]
fn png_uses_a_palette_only_when_it_is_lossless() {
    let s = Server::start(&[]);
    // Four colours, one half transparent: palette with tRNS, pixels exact.
    let few = RgbaImage::from_fn(40, 30, |x, y| match (x < 20, y < 15) {
        (true, true) => Rgba([255, 0, 0, 255]),
        (true, false) => Rgba([0, 255, 0, 128]),
        (false, true) => Rgba([0, 0, 255, 255]),
        (false, false) => Rgba([10, 20, 30, 0]),
    });
    let out = transform(&s, &png_bytes(&few, None), "[]", "image/png");
    assert_eq!(out[25], 3, "IHDR colour type: indexed");
    assert_eq!(decode(&out), few);
    // Thousands of colours: truecolour, exact.
    let many = RgbaImage::from_fn(64, 64, |x, y| Rgba([(x * 4) as u8, (y * 4) as u8, 77, 255]));
    let out = transform(&s, &png_bytes(&many, None), "[]", "image/png");
    assert_eq!(out[25], 2, "IHDR colour type: RGB");
    assert_eq!(decode(&out), many);
}

/// `Exif\0\0` APP1 segment inserted after SOI.
fn with_exif(jpeg: &[u8], tiff: &[u8]) -> Vec<u8> {
    let mut seg = b"Exif\0\0".to_vec();
    seg.extend_from_slice(tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((seg.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&seg);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn exif_of(bytes: &[u8]) -> Option<Vec<u8>> {
    use image::ImageDecoder;
    let mut d = image::codecs::jpeg::JpegDecoder::new(std::io::Cursor::new(bytes)).ok()?;
    d.exif_metadata().ok()?
}

#[test]
fn jpeg_keeps_the_copyright_and_nothing_else() {
    let s = Server::start(&[]);
    let img = RgbaImage::from_pixel(64, 48, Rgba([90, 120, 150, 255]));
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
        .write_image(
            &image::DynamicImage::ImageRgba8(img).to_rgb8(),
            64,
            48,
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    let notice = "(c) 2026 A. Photographer, all rights reserved";
    let input = with_exif(&jpeg, &lastbyte::image::meta::exif_segment(Some(notice)));
    let out = transform(&s, &input, r#"[{"imageIndex":0,"width":32}]"#, "image/jpeg");
    let exif = exif_of(&out).expect("JPEG output has an EXIF segment");
    assert_eq!(
        lastbyte::image::meta::copyright(&exif).as_deref(),
        Some(notice)
    );
    // Without a copyright in the input, the output has no EXIF at all.
    let plain = transform(&s, &jpeg, r#"[{"imageIndex":0,"width":32}]"#, "image/jpeg");
    assert_eq!(exif_of(&plain), None);
    // PNG output strips it.
    let png = transform(&s, &input, "[]", "image/png");
    assert!(find(&png, b"eXIf").is_none() && find(&png, notice.as_bytes()).is_none());
}

/// A minimal ICC v2 RGB display profile: linear curves and the given D50 colorants.
fn icc_profile(colorants: [[f64; 3]; 3]) -> Vec<u8> {
    let s15 = |v: f64| ((v * 65536.0).round() as i32).to_be_bytes();
    let xyz = |c: [f64; 3]| {
        let mut t = b"XYZ \0\0\0\0".to_vec();
        for v in c {
            t.extend_from_slice(&s15(v));
        }
        t
    };
    let curv = b"curv\0\0\0\0\0\0\0\0".to_vec(); // count 0: identity
    let tags: Vec<(&[u8; 4], Vec<u8>)> = vec![
        (b"rXYZ", xyz(colorants[0])),
        (b"gXYZ", xyz(colorants[1])),
        (b"bXYZ", xyz(colorants[2])),
        (b"wtpt", xyz([0.9642, 1.0, 0.8249])),
        (b"rTRC", curv.clone()),
        (b"gTRC", curv.clone()),
        (b"bTRC", curv),
    ];
    let mut offset = 128 + 4 + 12 * tags.len();
    let mut table = (tags.len() as u32).to_be_bytes().to_vec();
    let mut data = Vec::new();
    for (sig, body) in &tags {
        table.extend_from_slice(*sig);
        table.extend_from_slice(&(offset as u32).to_be_bytes());
        table.extend_from_slice(&(body.len() as u32).to_be_bytes());
        data.extend_from_slice(body);
        offset += body.len();
    }
    let total = 128 + table.len() + data.len();
    let mut h = vec![0u8; 128];
    h[0..4].copy_from_slice(&(total as u32).to_be_bytes());
    h[8..12].copy_from_slice(&[2, 0x10, 0, 0]);
    h[12..16].copy_from_slice(b"mntr");
    h[16..20].copy_from_slice(b"RGB ");
    h[20..24].copy_from_slice(b"XYZ ");
    h[36..40].copy_from_slice(b"acsp");
    h[68..72].copy_from_slice(&s15(0.9642));
    h[72..76].copy_from_slice(&s15(1.0));
    h[76..80].copy_from_slice(&s15(0.8249));
    [h, table, data].concat()
}

#[test]
fn embedded_icc_profiles_are_converted_to_srgb() {
    let s = Server::start(&[]);
    // sRGB's own colorants (D50), and the same with red and green swapped: a pixel that is
    // pure red in the swapped profile is sRGB green.
    let (r, g, b) = (
        [0.4361, 0.2225, 0.0139],
        [0.3851, 0.7169, 0.0971],
        [0.1431, 0.0606, 0.7141],
    );
    let swapped = icc_profile([g, r, b]);
    let red = RgbaImage::from_pixel(8, 8, Rgba([255, 0, 0, 255]));
    let out = decode(&transform(
        &s,
        &png_bytes(&red, Some(swapped)),
        "[]",
        "image/png",
    ));
    let p = out.get_pixel(4, 4);
    assert!(
        p[0] < 40 && p[1] > 215 && p[2] < 40,
        "converted pixel {p:?}"
    );
    // An sRGB-like profile keeps the colour.
    let same = icc_profile([r, g, b]);
    let out = decode(&transform(
        &s,
        &png_bytes(&red, Some(same)),
        "[]",
        "image/png",
    ));
    let p = out.get_pixel(4, 4);
    assert!(p[0] > 215 && p[1] < 40 && p[2] < 40, "kept pixel {p:?}");
}
