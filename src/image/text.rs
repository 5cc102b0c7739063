//! Text images for `text_input` (the canvas) and `draw_text` (an overlay): the JSON that
//! `IMAGES.text(text, {font, size, color})` sends, rendered with the bundled font.
//!
//! Choices (Cloudflare documents none of these): every `font` name renders with the one bundled
//! face, DejaVu Sans (a Latin-1 subset, Bitstream Vera licence, `fonts/LICENSE`); characters it
//! lacks render as its replacement glyph. `size` is the em in pixels, as CSS `font-size` (default
//! [`DEFAULT_SIZE`]); `color` is a CSS colour (default black). The image is exactly one line
//! height per line (`\n` breaks lines) and as wide as the widest line, on a transparent
//! background, anti-aliased by glyph coverage.

use super::{color, Code, ImageError};
use crate::config::Limits;
use ab_glyph::{point, Font, FontRef, PxScale, ScaleFont};
use image::{Rgba, RgbaImage};
use serde_json::Value;

/// DejaVu Sans, subset to Latin-1 and common punctuation (41 KB).
pub static FONT: &[u8] = include_bytes!("fonts/DejaVuSans-Latin1.ttf");
/// Em size in pixels when `size` is absent.
pub const DEFAULT_SIZE: f32 = 16.0;
/// Largest `size` accepted (pixels).
pub const MAX_SIZE: f64 = 1000.0;
/// Longest `text` accepted (characters).
pub const MAX_CHARS: usize = 4096;

#[derive(Debug, Clone, PartialEq)]
pub struct TextSpec {
    pub text: String,
    pub size: f32,
    pub color: Rgba<u8>,
}

impl TextSpec {
    /// Parses the JSON of a `text_input` or `draw_text` part.
    pub fn parse(part: &str, json: &[u8]) -> Result<TextSpec, ImageError> {
        let bad = |m: String| ImageError::option(format!("`{part}` part: {m}"));
        let v: Value =
            serde_json::from_slice(json).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        let Value::Object(m) = v else {
            return Err(bad("must be a JSON object".into()));
        };
        let text = match m.get("text") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => return Err(bad(format!("text must be a string, got {other}"))),
            None => return Err(bad("missing `text`".into())),
        };
        if text.chars().count() > MAX_CHARS {
            return Err(bad(format!("text is longer than {MAX_CHARS} characters")));
        }
        let size = match m.get("size") {
            None | Some(Value::Null) => DEFAULT_SIZE,
            Some(Value::Number(n)) => match n.as_f64() {
                Some(s) if (1.0..=MAX_SIZE).contains(&s) => s as f32,
                _ => {
                    return Err(bad(format!(
                        "size must be between 1 and {MAX_SIZE}, got {n}"
                    )))
                }
            },
            Some(other) => return Err(bad(format!("size must be a number, got {other}"))),
        };
        let color = match m.get("color") {
            None | Some(Value::Null) => Rgba([0, 0, 0, 255]),
            Some(Value::String(s)) => {
                color::parse(s).ok_or_else(|| bad(format!("invalid color {s:?}")))?
            }
            Some(other) => return Err(bad(format!("color must be a string, got {other}"))),
        };
        match m.get("font") {
            None | Some(Value::Null) | Some(Value::String(_)) => {}
            Some(other) => return Err(bad(format!("font must be a string, got {other}"))),
        }
        Ok(TextSpec { text, size, color })
    }

    /// Renders the text; the size is checked against the limits before allocating.
    pub fn render(&self, limits: &Limits) -> Result<RgbaImage, ImageError> {
        let font = FontRef::try_from_slice(FONT)
            .map_err(|e| ImageError::new(Code::Internal, format!("bundled font: {e}")))?;
        // `PxScale` is the ascent-to-descent height; `size` is the em, as in CSS.
        let upem = font.units_per_em().unwrap_or(2048.0);
        let scale = PxScale::from(self.size * font.height_unscaled() / upem);
        let sf = font.as_scaled(scale);
        let line_h = sf.ascent() - sf.descent();
        let lines: Vec<&str> = self.text.split('\n').collect();
        let width_of = |line: &str| {
            let mut x = 0.0f32;
            let mut prev = None;
            for c in line.chars() {
                let id = sf.glyph_id(c);
                if let Some(p) = prev {
                    x += sf.kern(p, id);
                }
                x += sf.h_advance(id);
                prev = Some(id);
            }
            x
        };
        let w = lines.iter().map(|l| width_of(l)).fold(0.0, f32::max).ceil() as u64;
        let h = (line_h * lines.len() as f32).ceil() as u64;
        let (w, h) = (w.max(1), h.max(1));
        if w > limits.max_dimension as u64
            || h > limits.max_dimension as u64
            || w * h > limits.max_pixels
        {
            return Err(ImageError::new(
                Code::ImageTooLarge,
                format!("text would render at {w}x{h}, over the output limits"),
            ));
        }
        let (w, h) = (w as u32, h as u32);
        let mut coverage = vec![0f32; (w * h) as usize];
        for (i, line) in lines.iter().enumerate() {
            let baseline = sf.ascent() + line_h * i as f32;
            let mut x = 0.0f32;
            let mut prev = None;
            for c in line.chars() {
                let id = sf.glyph_id(c);
                if let Some(p) = prev {
                    x += sf.kern(p, id);
                }
                let glyph = id.with_scale_and_position(scale, point(x, baseline));
                x += sf.h_advance(id);
                prev = Some(id);
                let Some(outline) = font.outline_glyph(glyph) else {
                    continue;
                };
                let b = outline.px_bounds();
                outline.draw(|gx, gy, cov| {
                    let (px, py) = (b.min.x as i64 + gx as i64, b.min.y as i64 + gy as i64);
                    if px >= 0 && py >= 0 && (px as u32) < w && (py as u32) < h {
                        let c = &mut coverage[(py as u32 * w + px as u32) as usize];
                        *c = c.max(cov.min(1.0));
                    }
                });
            }
        }
        let Rgba([r, g, b, a]) = self.color;
        Ok(RgbaImage::from_fn(w, h, |x, y| {
            let cov = coverage[(y * w + x) as usize];
            Rgba([r, g, b, (cov * a as f32).round() as u8])
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_pixels: 100_000_000,
            max_dimension: 12_000,
            avif_max_dimension: 4096,
            webp_max_dimension: 16_383,
            avif_speed: 8,
            max_frames: 1000,
            max_animation_pixels: 50_000_000,
        }
    }

    #[test]
    fn renders_inked_text_of_plausible_size() {
        let t = TextSpec::parse(
            "draw_text",
            br##"{"text":"Hello","font":"Arial","size":12,"color":"#ffffff"}"##,
        )
        .unwrap();
        let img = t.render(&limits()).unwrap();
        let (w, h) = img.dimensions();
        assert!((25..45).contains(&w) && (12..18).contains(&h), "{w}x{h}");
        let inked = img.pixels().filter(|p| p[3] > 128).count();
        assert!(inked > 20, "only {inked} inked pixels");
        assert!(img.pixels().all(|p| p[0] == 255 && p[1] == 255));
        // Two lines are twice as tall; a bigger size is bigger.
        let two = TextSpec::parse("t", br#"{"text":"Hello\nHi","size":12}"#)
            .unwrap()
            .render(&limits())
            .unwrap();
        assert_eq!(two.height(), 2 * h);
        let big = TextSpec::parse("t", br#"{"text":"Hello","size":48}"#)
            .unwrap()
            .render(&limits())
            .unwrap();
        assert!(big.width() > 3 * w);
        // Characters outside the subset still render (replacement glyph), never panic.
        TextSpec::parse("t", "{\"text\":\"日本 \u{1F600}\"}".as_bytes())
            .unwrap()
            .render(&limits())
            .unwrap();
    }

    #[test]
    fn rejects_bad_specs_and_huge_renders() {
        for bad in [
            &br#"{"font":"Arial"}"#[..],
            br#"{"text":5}"#,
            br#"{"text":"x","size":0}"#,
            br#"{"text":"x","size":5000}"#,
            br#"{"text":"x","color":"nope"}"#,
            br#"[1]"#,
            b"not json",
        ] {
            let e = TextSpec::parse("text_input", bad).unwrap_err();
            assert_eq!(e.code, Code::InvalidOption);
            assert!(e.message.contains("text_input"), "{e}");
        }
        let long = format!(r#"{{"text":"{}","size":1000}}"#, "W".repeat(100));
        let e = TextSpec::parse("t", long.as_bytes())
            .unwrap()
            .render(&limits())
            .unwrap_err();
        assert_eq!(e.code, Code::ImageTooLarge);
    }
}
