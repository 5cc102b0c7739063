//! Animated inputs: animated GIF/WebP in → animated GIF/WebP out (every frame transformed and
//! drawn on), the first frame with `anim=false` or a still output format, and the frame limits.

mod support;
use image::AnimationDecoder;
use support::*;

fn transform(s: &Server, parts: &[(&str, &[u8])]) -> Response {
    roundtrip(s, &transform_request(parts, false))
}

/// Every frame of an animated output, decoded with `image`'s decoders.
fn frames(bytes: &[u8]) -> Vec<image::RgbaImage> {
    let c = std::io::Cursor::new(bytes);
    let f = match sniff(bytes) {
        "image/gif" => image::codecs::gif::GifDecoder::new(c)
            .unwrap()
            .into_frames(),
        "image/webp" => {
            let d = image::codecs::webp::WebPDecoder::new(c).unwrap();
            if !d.has_animation() {
                return vec![decode(bytes)];
            }
            d.into_frames()
        }
        other => panic!("not an animation format: {other}"),
    };
    f.map(|f| f.unwrap().into_buffer()).collect()
}

#[test]
fn animated_gif_and_webp_stay_animated() {
    let s = Server::start(&[]);
    let gif = fixture("images/star_animated.gif");
    let webp = fixture("images/animated.webp");
    for (input, n, format, width) in [
        (&gif, 4, "image/gif", 80),
        (&gif, 4, "image/webp", 80),
        (&webp, 6, "image/webp", 100),
        (&webp, 6, "image/gif", 50),
    ] {
        let t = format!(r#"[{{"imageIndex":0,"width":{width}}}]"#);
        let r = transform(
            &s,
            &[
                ("image", input),
                ("transforms", t.as_bytes()),
                ("output_format", format.as_bytes()),
                ("output_quality", b"80"),
            ],
        );
        assert_eq!(r.status, 200, "{format}: {}", r.text());
        assert_eq!(sniff(&r.body), format);
        let f = frames(&r.body);
        assert_eq!(f.len(), n, "{format} from {}", sniff(input));
        for img in &f {
            assert_eq!(img.width(), width);
        }
        // The frames differ: it is an animation, not one frame repeated.
        assert!(
            f.windows(2).any(|w| w[0] != w[1]),
            "{format}: all frames equal"
        );
    }
}

#[test]
fn overlay_is_drawn_on_every_frame() {
    let s = Server::start(&[]);
    let gif = fixture("images/star_animated.gif");
    let red = image::RgbaImage::from_pixel(20, 20, image::Rgba([255, 0, 0, 255]));
    let mut png = std::io::Cursor::new(Vec::new());
    red.write_to(&mut png, image::ImageFormat::Png).unwrap();
    let png = png.into_inner();
    let r = transform(
        &s,
        &[
            ("image", &gif),
            ("draw_image", &png),
            (
                "transforms",
                br#"[{"drawImageIndex":1,"targetImageIndex":0,"top":0,"left":0}]"#,
            ),
            ("output_format", b"image/gif"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let f = frames(&r.body);
    assert_eq!(f.len(), 4);
    for img in &f {
        let p = img.get_pixel(5, 5);
        assert!(
            p[0] > 200 && p[1] < 60 && p[2] < 60,
            "overlay missing: {p:?}"
        );
    }
}

#[test]
fn first_frame_when_asked_or_when_the_output_cannot_animate() {
    let s = Server::start(&[]);
    let gif = fixture("images/star_animated.gif");
    let r = transform(
        &s,
        &[
            ("image", &gif),
            ("transforms", b"[]"),
            ("output_format", b"image/gif"),
            ("anim", b"false"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(frames(&r.body).len(), 1);
    let r = transform(
        &s,
        &[
            ("image", &gif),
            ("transforms", b"[]"),
            ("output_format", b"image/png"),
        ],
    );
    assert_eq!(r.status, 200);
    assert_eq!(decode(&r.body).dimensions(), (159, 159));
}

#[test]
fn frame_limits_refuse_long_animations() {
    let s = Server::start(&["--max-frames", "3"]);
    let gif = fixture("images/star_animated.gif");
    let parts = |anim: &'static [u8]| -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("transforms", b"[]".to_vec()),
            ("output_format", b"image/gif".to_vec()),
            ("anim", anim.to_vec()),
        ]
    };
    let send = |anim: &'static [u8]| {
        let mut p: Vec<(&str, &[u8])> = vec![("image", &gif)];
        let rest = parts(anim);
        for (k, v) in &rest {
            p.push((k, v));
        }
        transform(&s, &p)
    };
    let r = send(b"true");
    assert_eq!(
        (r.status, r.binding_code()),
        (413, Some(9413)),
        "{}",
        r.text()
    );
    assert!(r.text().contains("frames"), "{}", r.text());
    // Its first frame alone is fine.
    assert_eq!(send(b"false").status, 200);
    let s = Server::start(&["--max-animation-megapixels", "0.05"]);
    let r = transform(
        &s,
        &[
            ("image", &gif),
            ("transforms", b"[]"),
            ("output_format", b"image/webp"),
        ],
    );
    assert_eq!(
        (r.status, r.binding_code()),
        (413, Some(9413)),
        "{}",
        r.text()
    );
}
