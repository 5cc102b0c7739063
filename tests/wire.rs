//! Every captured binding request, replayed byte for byte over one kept-alive connection,
//! gets a well-framed response with the right content.

mod support;
use std::io::Write;
use support::*;

enum Want {
    Image(&'static str, u32, u32),
    Info,
    Code(u16, &'static str),
}

fn expectation(name: &str) -> Want {
    use Want::*;
    match name {
        "single" | "err_404" | "err_500" | "err_header" | "err_header_200" | "no_ctype" => {
            Image("image/avif", 32, 43)
        }
        "chained" => Image("image/webp", 32, 43),
        "draw" => Image("image/jpeg", 64, 48),
        "nested" => Image("image/png", 48, 36),
        "anim" => Image("image/webp", 64, 48),
        "output_only" => Image("image/png", 64, 48),
        "base64_input" => Image("image/gif", 10, 8),
        "chain_generic" => Image("image/webp", 40, 30),
        "info" | "info_bad_json" | "info_base64" | "info_err_500" | "info_err_header"
        | "info_svg" => Info,
        "info_notimage" | "transform_notimage" => Code(9412, "not an image"),
        "draw_repeat" => Image("image/png", 64, 48),
        "quality" => Image("image/jpeg", 40, 30),
        // `segment` needs a model this server does not ship: refused by name.
        "all_options" => Code(9401, "segment"),
        "text_draw" => Image("image/png", 64, 48),
        "mixed_overlays" => Image("image/avif", 64, 48),
        // "Canvas" in the bundled DejaVu Sans at the default 16 px; width 100 never enlarges.
        "text_canvas" => Image("image/png", 59, 19),
        other => panic!("no expectation for capture {other}"),
    }
}

#[test]
fn every_capture_replayed_on_one_connection() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wire");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".raw").map(str::to_string))
        .collect();
    names.sort();
    assert!(names.len() >= 27, "captures missing: {names:?}");
    let s = Server::start(&["--avif-speed", "10"]);
    let mut conn = s.connect();
    let mut carry = Vec::new();
    for name in &names {
        let raw = std::fs::read(dir.join(format!("{name}.raw"))).unwrap();
        conn.write_all(&raw).unwrap();
        let r = read_response_paced(&mut conn, &mut carry, Pace::FAST)
            .unwrap_or_else(|t| panic!("{name}: truncated {t:?}"));
        match expectation(name) {
            Want::Image(mime, w, h) => {
                assert_eq!(r.status, 200, "{name}: {}", r.text());
                assert_eq!(sniff(&r.body), mime, "{name}: output format");
                assert_eq!(r.header("content-type"), Some(mime), "{name}");
                assert_eq!(decode(&r.body).dimensions(), (w, h), "{name}: dimensions");
            }
            Want::Info => {
                assert_eq!(r.status, 200, "{name}: {}", r.text());
                let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
                assert_eq!(
                    v,
                    serde_json::json!({"format":"image/png","file_size":6321,"width":64,"height":48}),
                    "{name}"
                );
            }
            Want::Code(code, needle) => {
                assert_eq!(r.binding_code(), Some(code), "{name}: {}", r.text());
                assert!(r.status >= 400, "{name}");
                assert!(
                    r.text().starts_with(&format!("ERROR {code}: ")) && r.text().contains(needle),
                    "{name}: {:?} should name {needle:?}",
                    r.text()
                );
            }
        }
    }
    assert!(carry.is_empty());
    drop(conn);
    let (code, stats) = s.stop();
    assert_eq!(code, 0);
    assert_eq!(stats["requests"], names.len() as u64);
    // The readiness probe plus the one kept-alive connection that carried every capture.
    assert_eq!(stats["connections"], 2);
}

#[test]
fn capture_fed_one_byte_at_a_time() {
    let s = Server::start(&["--avif-speed", "10"]);
    let raw = fixture("wire/draw.raw");
    let mut conn = s.connect();
    for b in &raw {
        conn.write_all(std::slice::from_ref(b)).unwrap();
    }
    let r = read_response(&mut conn);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(decode(&r.body).dimensions(), (64, 48));
}
