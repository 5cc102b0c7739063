//! The URL interface, `POST /cdn-cgi/image/<options>`, over the real server: Cloudflare's option
//! syntax, `format=auto` from `Accept` with `Vary: Accept`, `format=json`, errors.

mod support;
use support::*;

fn post(s: &Server, options: &str, accept: Option<&str>, body: &[u8]) -> Response {
    let mut req = format!(
        "POST /cdn-cgi/image/{options} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n{}\r\n",
        body.len(),
        accept
            .map(|a| format!("Accept: {a}\r\n"))
            .unwrap_or_default()
    )
    .into_bytes();
    req.extend_from_slice(body);
    roundtrip(s, &req)
}

#[test]
fn format_auto_negotiates_and_varies() {
    let s = Server::start(&["--avif-speed", "10"]);
    let photo = fixture("images/dune_1680x1050_exif.jpg");
    for (accept, mime) in [
        (
            Some("image/avif,image/webp,image/apng,*/*;q=0.8"),
            "image/avif",
        ),
        (Some("image/webp,*/*"), "image/webp"),
        (Some("image/avif;q=0,image/webp"), "image/webp"),
        (Some("*/*"), "image/jpeg"),
        (None, "image/jpeg"),
    ] {
        let r = post(&s, "width=160,format=auto,quality=70", accept, &photo);
        assert_eq!(r.status, 200, "{accept:?}: {}", r.text());
        assert_eq!(r.header("content-type"), Some(mime), "{accept:?}");
        assert_eq!(sniff(&r.body), mime);
        assert_eq!(r.header("vary"), Some("Accept"), "{accept:?}");
        assert_eq!(decode(&r.body).dimensions(), (160, 100));
    }
    // An explicit format does not vary.
    let r = post(&s, "w=80,f=png", Some("image/webp"), &photo);
    assert_eq!(r.header("content-type"), Some("image/png"));
    assert_eq!(r.header("vary"), None);
    assert_eq!(decode(&r.body).dimensions(), (80, 50));
}

#[test]
fn options_syntax_and_json() {
    let s = Server::start(&[]);
    let photo = fixture("images/dune_1680x1050_exif.jpg");
    // Aliases, gravity as XxY, trim as top;right;bottom;left, a trailing source path, escapes.
    let r = post(
        &s,
        "w=50,h=50,fit=pad,background=%23ff0000,g=0x1,trim=0;0;50;0,dpr=2/some/origin.jpg",
        None,
        &photo,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    let img = decode(&r.body);
    assert_eq!(img.dimensions(), (100, 100));
    let p = img.get_pixel(50, 2);
    assert!(p[0] > 200 && p[1] < 60, "pad colour {p:?}");
    let r = post(&s, "width=100,format=json", None, &photo);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"width":100,"height":63,"original":{
            "file_size": photo.len(), "width":1680, "height":1050, "format":"image/jpeg"}})
    );
    // PNG in, no format: PNG out.
    let logo = fixture("images/debian_spacefun_logo_rgba.png");
    let r = post(&s, "width=40", None, &logo);
    assert_eq!(r.header("content-type"), Some("image/png"));
}

#[test]
fn url_errors_carry_codes() {
    let s = Server::start(&[]);
    let photo = fixture("images/dune_1680x1050_exif.jpg");
    for (opts, body, status, code, needle) in [
        ("widht=10", &photo[..], 400, 9401, "widht"),
        ("width=abc", &photo[..], 400, 9401, "width"),
        ("format=bmp", &photo[..], 400, 9401, "format"),
        (
            "gravity=face,fit=cover,w=5,h=5",
            &photo[..],
            400,
            9401,
            "face",
        ),
        ("width=10", b"<html></html>", 415, 9412, "not an image"),
        ("width=10", b"", 415, 9412, "empty"),
    ] {
        let r = post(&s, opts, None, body);
        assert_eq!(
            (r.status, r.binding_code()),
            (status, Some(code)),
            "{opts}: {}",
            r.text()
        );
        assert!(r.text().contains(needle), "{opts}: {}", r.text());
    }
    let r = roundtrip(
        &s,
        b"GET /cdn-cgi/image/width=10/x.jpg HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(r.status, 405);
}
