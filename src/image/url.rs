//! The URL interface: `POST /cdn-cgi/image/<options>` with the image as the request body.
//!
//! `<options>` is Cloudflare's comma-separated `key=value` list (`width=800,fit=cover,f=auto`).
//! It becomes one transform element (so the same parser, ranges and fixed order as the binding
//! apply) plus the output settings. Choices where Cloudflare's docs are silent:
//! - an unknown key is refused (9401, naming it) rather than ignored, since a typo would
//!   otherwise silently serve the wrong image;
//! - `format` absent: the input's own format (GIF/AVIF/WebP/PNG/JPEG);
//!   `format=auto`: AVIF when `Accept` lists `image/avif`, else WebP when it lists
//!   `image/webp`, else the input's format — and the response carries `Vary: Accept`;
//! - `format=json`: `{"width","height","original":{"file_size","width","height","format"}}`
//!   with the size the transform produces;
//! - `onerror=redirect` is accepted and has no effect (there is no origin URL to redirect to).

use super::decode::{self, Format};
use super::encode::{Encoded, Output};
use super::ops::Transform;
use super::pipeline::{Element, Input, Job};
use super::{color, ImageError};
use crate::config::Limits;
use bytes::Bytes;
use serde_json::{Map, Value};

/// Longest options segment accepted (bytes).
pub const MAX_OPTIONS_LEN: usize = 4096;

/// What `format=` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Absent: the input's own format.
    Original,
    /// `auto`: negotiated from `Accept`.
    Auto,
    Json,
    Fixed(Output),
}

/// Parsed URL options.
#[derive(Debug)]
pub struct UrlOptions {
    pub transform: Map<String, Value>,
    pub want: Want,
    pub quality: Option<u8>,
    pub background: Option<image::Rgba<u8>>,
    pub anim: bool,
}

fn num(key: &str, v: &str) -> Result<Value, ImageError> {
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .and_then(serde_json::Number::from_f64)
        .map(Value::Number)
        .ok_or_else(|| ImageError::option(format!("{key} must be a number, got {v:?}")))
}

/// `gravity=0.5x0.25` (fractions) or a keyword.
fn gravity(v: &str) -> Result<Value, ImageError> {
    if let Some((x, y)) = v.split_once('x') {
        if let (Ok(x), Ok(y)) = (x.parse::<f64>(), y.parse::<f64>()) {
            return Ok(serde_json::json!({ "x": x, "y": y }));
        }
    }
    Ok(Value::String(v.to_string()))
}

/// `trim=top;right;bottom;left` or `trim=border`.
fn trim(v: &str) -> Result<Value, ImageError> {
    if v == "border" {
        return Ok(Value::String(v.into()));
    }
    let sides: Vec<&str> = v.split(';').collect();
    if sides.len() != 4 {
        return Err(ImageError::option(format!(
            "trim must be top;right;bottom;left or border, got {v:?}"
        )));
    }
    let mut m = Map::new();
    for (key, s) in ["top", "right", "bottom", "left"].iter().zip(sides) {
        m.insert(key.to_string(), num("trim", s)?);
    }
    Ok(Value::Object(m))
}

fn trim_map(t: &mut Map<String, Value>) -> &mut Map<String, Value> {
    let entry = t.entry("trim").or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        // `trim=border` then `trim.x=`: keep border detection, add the field.
        *entry = serde_json::json!({ "border": true });
    }
    entry.as_object_mut().expect("object")
}

fn output_format(v: &str) -> Result<Want, ImageError> {
    Ok(match v {
        "auto" => Want::Auto,
        "json" => Want::Json,
        "avif" => Want::Fixed(Output::Avif),
        "webp" => Want::Fixed(Output::Webp),
        "jpeg" | "jpg" | "baseline-jpeg" => Want::Fixed(Output::Jpeg),
        "png" => Want::Fixed(Output::Png),
        "gif" => Want::Fixed(Output::Gif),
        other => {
            return Err(ImageError::option(format!(
            "format must be auto, avif, webp, jpeg, baseline-jpeg, png, gif or json, got {other:?}"
        )))
        }
    })
}

/// Decodes `%XX` escapes (`background=%23ff0000`); malformed escapes are an error.
fn percent_decode(s: &str) -> Result<String, ImageError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| ImageError::option("malformed %-escape in the options"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ImageError::option("options are not UTF-8"))
}

impl UrlOptions {
    pub fn parse(options: &str) -> Result<UrlOptions, ImageError> {
        if options.len() > MAX_OPTIONS_LEN {
            return Err(ImageError::option(format!(
                "options are longer than {MAX_OPTIONS_LEN} bytes"
            )));
        }
        let options = percent_decode(options)?;
        let mut o = UrlOptions {
            transform: Map::new(),
            want: Want::Original,
            quality: None,
            background: None,
            anim: true,
        };
        for item in options.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, v) = item
                .split_once('=')
                .ok_or_else(|| ImageError::option(format!("option {item:?} is not key=value")))?;
            let t = &mut o.transform;
            match key {
                "width" | "w" => _ = t.insert("width".into(), num(key, v)?),
                "height" | "h" => _ = t.insert("height".into(), num(key, v)?),
                "dpr" | "blur" | "brightness" | "contrast" | "gamma" | "saturation" | "sharpen"
                | "rotate" | "zoom" => _ = t.insert(key.into(), num(key, v)?),
                "fit" | "flip" | "segment" => _ = t.insert(key.into(), Value::String(v.into())),
                "gravity" | "g" => _ = t.insert("gravity".into(), gravity(v)?),
                "trim" => _ = t.insert("trim".into(), trim(v)?),
                "trim.top" | "trim.right" | "trim.bottom" | "trim.left" | "trim.width"
                | "trim.height" => {
                    let n = num(key, v)?;
                    trim_map(t).insert(key["trim.".len()..].into(), n);
                }
                "trim.border.color" | "trim.border.tolerance" | "trim.border.keep" => {
                    let val = if key == "trim.border.color" {
                        Value::String(v.into())
                    } else {
                        num(key, v)?
                    };
                    let tm = trim_map(t);
                    let b = tm
                        .entry("border")
                        .or_insert_with(|| Value::Object(Map::new()));
                    if !b.is_object() {
                        *b = Value::Object(Map::new());
                    }
                    b.as_object_mut()
                        .expect("object")
                        .insert(key["trim.border.".len()..].into(), val);
                }
                "background" => {
                    o.background =
                        Some(color::parse(v).ok_or_else(|| {
                            ImageError::option(format!("invalid background {v:?}"))
                        })?);
                    t.insert("background".into(), Value::String(v.into()));
                }
                "quality" | "q" => {
                    let q: f64 = v.trim().parse().map_err(|_| {
                        ImageError::option(format!("quality must be a number, got {v:?}"))
                    })?;
                    if !(1.0..=100.0).contains(&q) {
                        return Err(ImageError::option(format!(
                            "quality must be between 1 and 100, got {v}"
                        )));
                    }
                    o.quality = Some(q.round() as u8);
                }
                "format" | "f" => o.want = output_format(v)?,
                "anim" => {
                    o.anim = match v {
                        "true" => true,
                        "false" => false,
                        _ => {
                            return Err(ImageError::option(format!(
                                "anim must be true or false, got {v:?}"
                            )))
                        }
                    }
                }
                // Accepted without effect (see the module docs).
                "onerror" | "metadata" | "compression" | "slow-connection-quality" => {}
                other => {
                    return Err(ImageError::option(format!("unknown option {other:?}")));
                }
            }
        }
        Ok(o)
    }
}

fn same_as(format: Format) -> Output {
    match format {
        Format::Jpeg => Output::Jpeg,
        Format::Png => Output::Png,
        Format::Gif => Output::Gif,
        Format::Webp => Output::Webp,
        Format::Avif => Output::Avif,
    }
}

/// The output for `want`, the input's format and the client's `Accept`.
pub fn negotiate(want: Want, input: Format, accept: Option<&str>) -> Output {
    let accepts = |mime: &str| {
        accept.is_some_and(|a| {
            a.split(',').any(|item| {
                let mut it = item.split(';');
                let m = it.next().unwrap_or("").trim();
                // `q=0` means "not acceptable".
                let refused = it.any(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.trim().parse::<f32>().ok())
                        == Some(0.0)
                });
                m.eq_ignore_ascii_case(mime) && !refused
            })
        })
    };
    match want {
        Want::Fixed(o) => o,
        Want::Auto if accepts("image/avif") => Output::Avif,
        Want::Auto if accepts("image/webp") => Output::Webp,
        Want::Auto | Want::Original | Want::Json => same_as(input),
    }
}

/// The result of a URL-interface request.
pub enum UrlResult {
    Image { encoded: Encoded, vary_accept: bool },
    Json(String),
}

/// Runs `options` on `body`.
pub fn run(
    options: &str,
    accept: Option<&str>,
    body: Bytes,
    limits: &Limits,
) -> Result<UrlResult, ImageError> {
    let o = UrlOptions::parse(options)?;
    let transform = Transform::parse(0, &o.transform)?;
    let info = decode::probe(&body)?;
    let output = negotiate(o.want, info.format, accept);
    let job = Job {
        inputs: vec![Input::Encoded(body.clone())],
        elements: vec![Element::Transform(transform)],
        output,
        quality: o.quality,
        background: o.background,
        anim: Some(o.anim),
    };
    if o.want == Want::Json {
        let (w, h) = job.dimensions(limits)?;
        return Ok(UrlResult::Json(
            serde_json::json!({
                "width": w,
                "height": h,
                "original": {
                    "file_size": body.len(),
                    "width": info.width,
                    "height": info.height,
                    "format": info.format.mime(),
                },
            })
            .to_string(),
        ));
    }
    Ok(UrlResult::Image {
        encoded: job.run(limits)?,
        vary_accept: o.want == Want::Auto,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cloudflare_syntax() {
        let o = UrlOptions::parse("w=800,h=600,fit=cover,g=0.25x0.75,q=70,f=auto,trim=1;2;3;4")
            .unwrap();
        assert_eq!(o.want, Want::Auto);
        assert_eq!(o.quality, Some(70));
        let t = Transform::parse(0, &o.transform).unwrap();
        assert_eq!((t.width, t.height), (Some(800), Some(600)));
        let tr = t.trim.unwrap();
        assert_eq!((tr.top, tr.right, tr.bottom, tr.left), (1, 2, 3, 4));
        let o = UrlOptions::parse("trim=border,trim.border.tolerance=5,trim.left=2").unwrap();
        let tr = Transform::parse(0, &o.transform).unwrap().trim.unwrap();
        assert_eq!((tr.left, tr.border.unwrap().tolerance), (2, 5));
        assert!(UrlOptions::parse("widht=3")
            .unwrap_err()
            .message
            .contains("widht"));
        assert!(UrlOptions::parse("width").is_err());
        assert!(UrlOptions::parse("format=bmp").is_err());
        assert!(UrlOptions::parse("q=0").is_err());
        assert!(UrlOptions::parse("background=%23ff0000")
            .unwrap()
            .background
            .is_some());
        assert!(UrlOptions::parse("background=%2").is_err());
    }

    #[test]
    fn negotiates_from_accept() {
        let f = Format::Jpeg;
        let n = |a: Option<&str>| negotiate(Want::Auto, f, a);
        assert_eq!(n(Some("image/avif,image/webp,*/*")), Output::Avif);
        assert_eq!(n(Some("image/webp,*/*;q=0.8")), Output::Webp);
        assert_eq!(n(Some("image/avif;q=0, image/webp")), Output::Webp);
        assert_eq!(n(Some("*/*")), Output::Jpeg);
        assert_eq!(n(None), Output::Jpeg);
        assert_eq!(negotiate(Want::Original, Format::Png, None), Output::Png);
        assert_eq!(
            negotiate(Want::Fixed(Output::Webp), Format::Png, None),
            Output::Webp
        );
    }
}
