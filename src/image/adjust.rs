//! Per-pixel filters applied after the resize, in this order: blur (in `ops`), sharpen,
//! brightness, contrast, gamma, saturation; then the border.
//!
//! Cloudflare's documented semantics: each colour factor is a multiplier where 1.0 is no change
//! and 0 is ignored — except `saturation`, where 0 is greyscale. Where the docs are silent this
//! module chooses (and the README documents):
//! - `brightness` b: every channel × b (CSS `brightness()`).
//! - `contrast` c: `(v − ½)·c + ½` around mid-grey (CSS `contrast()`).
//! - `gamma` g: `v^(1/g)`, so 0.5 darkens and 2.0 lightens, as the docs say.
//! - `saturation` s: Rec. 709 luma `Y`, then `Y + (v − Y)·s` per channel (CSS `saturate()`).
//! - `sharpen` 0–10: an unsharp mask, σ = [`SHARPEN_SIGMA`], amount = sharpen × [`SHARPEN_GAIN`].
//!
//! All work on straight-alpha RGBA8 and leave alpha untouched.

use super::{color, ops::number, ImageError};
use image::{Rgba, RgbaImage};
use serde_json::{Map, Value};

/// Largest `sharpen` (Cloudflare's documented range is 0–10).
pub const SHARPEN_MAX: f64 = 10.0;
/// Gaussian σ (pixels) of the unsharp mask's blur.
pub const SHARPEN_SIGMA: f32 = 1.0;
/// Unsharp-mask amount per unit of `sharpen` (sharpen 1 adds 0.5× the high-pass detail).
pub const SHARPEN_GAIN: f32 = 0.5;
/// Largest colour factor accepted for brightness, contrast, gamma and saturation. Cloudflare
/// documents no maximum; beyond this every pixel is already saturated to black or white.
pub const FACTOR_MAX: f64 = 100.0;
/// Largest border side in pixels (after `dpr`); the output limits still apply to the result.
pub const BORDER_MAX: f64 = 2000.0;
/// Border colour when `border` has no `color` (Cloudflare documents none).
pub const BORDER_DEFAULT_COLOR: Rgba<u8> = Rgba([0, 0, 0, 255]);

/// Colour factors; `None` when absent or 0 (Cloudflare: "0 is ignored").
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Colour {
    pub brightness: Option<f32>,
    pub contrast: Option<f32>,
    pub gamma: Option<f32>,
    /// 0 is meaningful here: greyscale.
    pub saturation: Option<f32>,
}

fn factor(map: &Map<String, Value>, key: &str) -> Result<Option<f64>, ImageError> {
    match number(map, key)? {
        None => Ok(None),
        Some(v) if (0.0..=FACTOR_MAX).contains(&v) => Ok(Some(v)),
        Some(v) => Err(ImageError::option(format!(
            "{key} must be between 0 and {FACTOR_MAX}, got {v}"
        ))),
    }
}

impl Colour {
    pub fn parse(map: &Map<String, Value>) -> Result<Colour, ImageError> {
        let nonzero = |v: Option<f64>| v.filter(|v| *v > 0.0).map(|v| v as f32);
        Ok(Colour {
            brightness: nonzero(factor(map, "brightness")?),
            contrast: nonzero(factor(map, "contrast")?),
            gamma: nonzero(factor(map, "gamma")?),
            saturation: factor(map, "saturation")?.map(|v| v as f32),
        })
    }

    fn is_identity(&self) -> bool {
        let one = |v: Option<f32>| v.is_none_or(|v| v == 1.0);
        one(self.brightness) && one(self.contrast) && one(self.gamma) && one(self.saturation)
    }

    /// The brightness → contrast → gamma table for one channel value.
    fn lut(&self) -> [u8; 256] {
        let mut t = [0u8; 256];
        for (i, out) in t.iter_mut().enumerate() {
            let mut v = i as f32 / 255.0;
            if let Some(b) = self.brightness {
                v *= b;
            }
            if let Some(c) = self.contrast {
                v = (v - 0.5) * c + 0.5;
            }
            v = v.clamp(0.0, 1.0);
            if let Some(g) = self.gamma {
                v = v.powf(1.0 / g);
            }
            *out = (v * 255.0).round().clamp(0.0, 255.0) as u8;
        }
        t
    }

    pub fn apply(&self, img: &mut RgbaImage) {
        if self.is_identity() {
            return;
        }
        let lut = self.lut();
        let sat = self.saturation.filter(|s| *s != 1.0);
        for p in img.pixels_mut() {
            let [r, g, b] = [lut[p[0] as usize], lut[p[1] as usize], lut[p[2] as usize]];
            match sat {
                None => {
                    p[0] = r;
                    p[1] = g;
                    p[2] = b;
                }
                Some(s) => {
                    let (r, g, b) = (r as f32, g as f32, b as f32);
                    let y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
                    let f = |v: f32| (y + (v - y) * s).round().clamp(0.0, 255.0) as u8;
                    p[0] = f(r);
                    p[1] = f(g);
                    p[2] = f(b);
                }
            }
        }
    }
}

/// Parses `sharpen` (0–10; 0 = none).
pub fn parse_sharpen(map: &Map<String, Value>) -> Result<Option<f32>, ImageError> {
    match number(map, "sharpen")? {
        None => Ok(None),
        Some(v) if (0.0..=SHARPEN_MAX).contains(&v) => Ok((v > 0.0).then_some(v as f32)),
        Some(v) => Err(ImageError::option(format!(
            "sharpen must be between 0 and {SHARPEN_MAX}, got {v}"
        ))),
    }
}

/// Unsharp mask on the colour channels: `v + amount·(v − blur(v))`.
pub fn sharpen(img: &mut RgbaImage, strength: f32) {
    if img.width() < 3 || img.height() < 3 {
        return;
    }
    let blurred = image::imageops::fast_blur(img, SHARPEN_SIGMA);
    let amount = strength * SHARPEN_GAIN;
    for (p, b) in img.pixels_mut().zip(blurred.pixels()) {
        for c in 0..3 {
            let v = p[c] as f32;
            p[c] = (v + amount * (v - b[c] as f32)).round().clamp(0.0, 255.0) as u8;
        }
    }
}

/// `border`: `{color, width}` or `{color, top, right, bottom, left}`, widths in CSS pixels
/// (multiplied by `dpr`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Border {
    pub color: Rgba<u8>,
    /// top, right, bottom, left, in CSS pixels.
    pub sides: [f64; 4],
}

impl Border {
    pub fn parse(v: Option<&Value>) -> Result<Option<Border>, ImageError> {
        let m = match v {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Object(m)) => m,
            Some(other) => {
                return Err(ImageError::option(format!(
                    "border must be an object {{color, width}} or {{top, right, bottom, left}}, got {other}"
                )))
            }
        };
        let color = match m.get("color") {
            None | Some(Value::Null) => BORDER_DEFAULT_COLOR,
            Some(Value::String(s)) => color::parse(s)
                .ok_or_else(|| ImageError::option(format!("invalid border color {s:?}")))?,
            Some(other) => {
                return Err(ImageError::option(format!(
                    "border color must be a string, got {other}"
                )))
            }
        };
        let side = |key: &str| -> Result<Option<f64>, ImageError> {
            match number(m, key)? {
                None => Ok(None),
                Some(v) if (0.0..=BORDER_MAX).contains(&v) => Ok(Some(v)),
                Some(v) => Err(ImageError::option(format!(
                    "border {key} must be between 0 and {BORDER_MAX}, got {v}"
                ))),
            }
        };
        let all = side("width")?;
        let mut sides = [0.0; 4];
        for (i, key) in ["top", "right", "bottom", "left"].iter().enumerate() {
            sides[i] = side(key)?.or(all).unwrap_or(0.0);
        }
        Ok(Some(Border { color, sides }))
    }

    /// Side widths in device pixels.
    pub fn pixels(&self, dpr: f64) -> [u32; 4] {
        self.sides.map(|s| (s * dpr).round() as u32)
    }

    /// The canvas size with this border around `(w, h)`.
    pub fn canvas(&self, (w, h): (u32, u32), dpr: f64) -> (u64, u64) {
        let [t, r, b, l] = self.pixels(dpr);
        (
            w as u64 + l as u64 + r as u64,
            h as u64 + t as u64 + b as u64,
        )
    }

    /// Surrounds `img` with the border (the caller has checked the canvas against the limits).
    pub fn apply(&self, img: RgbaImage, dpr: f64) -> RgbaImage {
        let [t, _, _, l] = self.pixels(dpr);
        let (cw, ch) = self.canvas(img.dimensions(), dpr);
        if (cw, ch) == (img.width() as u64, img.height() as u64) {
            return img;
        }
        let mut canvas = RgbaImage::from_pixel(cw as u32, ch as u32, self.color);
        image::imageops::replace(&mut canvas, &img, l as i64, t as i64);
        canvas
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn colour_factors() {
        let mut img = RgbaImage::from_pixel(2, 2, Rgba([100, 150, 200, 77]));
        Colour::parse(&map(r#"{"brightness":2}"#))
            .unwrap()
            .apply(&mut img);
        assert_eq!(img.get_pixel(0, 0).0, [200, 255, 255, 77]);
        // 0 is ignored for brightness, contrast and gamma.
        let c = Colour::parse(&map(r#"{"brightness":0,"contrast":0,"gamma":0}"#)).unwrap();
        assert!(c.is_identity());
        // saturation 0 is greyscale.
        let mut img = RgbaImage::from_pixel(1, 1, Rgba([255, 0, 0, 255]));
        Colour::parse(&map(r#"{"saturation":0}"#))
            .unwrap()
            .apply(&mut img);
        let p = img.get_pixel(0, 0);
        assert!(p[0] == p[1] && p[1] == p[2] && p[0] == 54, "{p:?}");
        // contrast pivots on mid-grey; gamma 2 lightens, 0.5 darkens.
        let one = |json: &str, v: u8| {
            let mut img = RgbaImage::from_pixel(1, 1, Rgba([v, v, v, 255]));
            Colour::parse(&map(json)).unwrap().apply(&mut img);
            img.get_pixel(0, 0)[0]
        };
        assert_eq!(one(r#"{"contrast":2}"#, 60), 0);
        assert_eq!(one(r#"{"contrast":0.5}"#, 0), 64);
        assert!(one(r#"{"gamma":2}"#, 64) > 100);
        assert!(one(r#"{"gamma":0.5}"#, 64) < 30);
        assert!(Colour::parse(&map(r#"{"gamma":-1}"#)).is_err());
        assert!(Colour::parse(&map(r#"{"contrast":"x"}"#)).is_err());
    }

    #[test]
    fn sharpen_raises_edge_contrast() {
        let mut img = RgbaImage::from_fn(16, 16, |x, _| {
            if x < 8 {
                Rgba([80, 80, 80, 255])
            } else {
                Rgba([160, 160, 160, 255])
            }
        });
        sharpen(&mut img, 4.0);
        assert!(img.get_pixel(7, 8)[0] < 80 && img.get_pixel(8, 8)[0] > 160);
        assert_eq!(img.get_pixel(0, 8)[0], 80, "flat areas unchanged");
        assert!(parse_sharpen(&map(r#"{"sharpen":11}"#)).is_err());
        assert_eq!(parse_sharpen(&map(r#"{"sharpen":0}"#)).unwrap(), None);
    }

    #[test]
    fn borders() {
        let b = Border::parse(Some(&serde_json::json!({"color":"#00ff00","width":2})))
            .unwrap()
            .unwrap();
        let out = b.apply(RgbaImage::from_pixel(3, 2, Rgba([0, 0, 0, 255])), 1.0);
        assert_eq!(out.dimensions(), (7, 6));
        assert_eq!(out.get_pixel(0, 0).0, [0, 255, 0, 255]);
        assert_eq!(out.get_pixel(2, 2).0, [0, 0, 0, 255]);
        let b = Border::parse(Some(
            &serde_json::json!({"top":1,"bottom":1,"left":2,"right":3}),
        ))
        .unwrap()
        .unwrap();
        assert_eq!(
            b.apply(RgbaImage::new(3, 2), 2.0).dimensions(),
            (3 + 10, 2 + 4)
        );
        assert!(Border::parse(Some(&serde_json::json!(5))).is_err());
        assert!(Border::parse(Some(&serde_json::json!({"width":-1}))).is_err());
    }
}
