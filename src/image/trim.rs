//! `trim`: the first step of a transform element, on the decoded (upright) image.
//!
//! Forms (BINDING.md): `"border"`, or `{top, right, bottom, left, width, height,
//! border: bool | {color, tolerance, keep}}`. Edge values are pixels of the input; `width` and
//! `height` give the size kept after the `left`/`top` cut (they win over `right`/`bottom`).
//! Border detection runs after the edge cut, inside what is left: the border colour is `color`
//! or, without one, the top-left pixel; a pixel belongs to the border when every channel
//! (alpha included) is within `tolerance` (0–255, default [`DEFAULT_TOLERANCE`]) of it; `keep`
//! pixels of border are left on each side. An image that is all border is left as it is.
//! A trim that would leave nothing is an error (9401), not an empty image.

use super::{color, ops::number, ImageError};
use image::{Rgba, RgbaImage};
use serde_json::{Map, Value};

/// Tolerance of `trim=border` without one (libvips' `find_trim` default threshold).
pub const DEFAULT_TOLERANCE: u8 = 10;
/// Largest edge or size value accepted (pixels); larger ones cannot fit any allowed input.
pub const EDGE_MAX: f64 = 1e6;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BorderTrim {
    /// `None`: the top-left pixel's colour.
    pub color: Option<Rgba<u8>>,
    pub tolerance: u8,
    pub keep: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Trim {
    pub top: u32,
    pub right: u32,
    pub bottom: u32,
    pub left: u32,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub border: Option<BorderTrim>,
}

const AUTO_BORDER: BorderTrim = BorderTrim {
    color: None,
    tolerance: DEFAULT_TOLERANCE,
    keep: 0,
};

fn edge(m: &Map<String, Value>, key: &str) -> Result<Option<u32>, ImageError> {
    match number(m, key)? {
        None => Ok(None),
        Some(v) if (0.0..=EDGE_MAX).contains(&v) => Ok(Some(v.round() as u32)),
        Some(v) => Err(ImageError::option(format!(
            "trim.{key} must be a non-negative number of pixels, got {v}"
        ))),
    }
}

/// `trim.width` / `trim.height`: the size kept, so at least one pixel.
fn kept(m: &Map<String, Value>, key: &str) -> Result<Option<u32>, ImageError> {
    match edge(m, key)? {
        Some(0) => Err(ImageError::option(format!(
            "trim.{key} must be at least 1 pixel, got 0"
        ))),
        v => Ok(v),
    }
}

fn parse_border(v: &Value) -> Result<Option<BorderTrim>, ImageError> {
    match v {
        Value::Null | Value::Bool(false) => Ok(None),
        Value::Bool(true) => Ok(Some(AUTO_BORDER)),
        Value::Object(m) => {
            let color = match m.get("color") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(color::parse(s).ok_or_else(|| {
                    ImageError::option(format!("invalid trim.border.color {s:?}"))
                })?),
                Some(other) => {
                    return Err(ImageError::option(format!(
                        "trim.border.color must be a string, got {other}"
                    )))
                }
            };
            let tolerance = match number(m, "tolerance")? {
                None => DEFAULT_TOLERANCE,
                Some(t) if (0.0..=255.0).contains(&t) => t.round() as u8,
                Some(t) => {
                    return Err(ImageError::option(format!(
                        "trim.border.tolerance must be between 0 and 255, got {t}"
                    )))
                }
            };
            let keep = edge(m, "keep")?.unwrap_or(0);
            Ok(Some(BorderTrim {
                color,
                tolerance,
                keep,
            }))
        }
        other => Err(ImageError::option(format!(
            "trim.border must be true, false or {{color, tolerance, keep}}, got {other}"
        ))),
    }
}

impl Trim {
    pub fn parse(v: Option<&Value>) -> Result<Option<Trim>, ImageError> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s == "border" => Ok(Some(Trim {
                border: Some(AUTO_BORDER),
                ..Trim::default()
            })),
            Some(Value::Object(m)) => Ok(Some(Trim {
                top: edge(m, "top")?.unwrap_or(0),
                right: edge(m, "right")?.unwrap_or(0),
                bottom: edge(m, "bottom")?.unwrap_or(0),
                left: edge(m, "left")?.unwrap_or(0),
                width: kept(m, "width")?,
                height: kept(m, "height")?,
                border: m.get("border").map(parse_border).transpose()?.flatten(),
            })),
            Some(other) => Err(ImageError::option(format!(
                "trim must be \"border\" or an object, got {other}"
            ))),
        }
    }

    /// The rectangle (x, y, w, h) of `img` that this trim keeps.
    pub fn rect(&self, img: &RgbaImage) -> Result<(u32, u32, u32, u32), ImageError> {
        let (w, h) = img.dimensions();
        let too_much = || {
            ImageError::option(format!(
                "trim would remove the whole {w}x{h} image (top {}, right {}, bottom {}, left {})",
                self.top, self.right, self.bottom, self.left
            ))
        };
        let axis = |size: u32, near: u32, far: u32, keep: Option<u32>| {
            let avail = size.checked_sub(near).filter(|a| *a > 0)?;
            let len = match keep {
                Some(k) => k.min(avail),
                None => avail.checked_sub(far).filter(|l| *l > 0)?,
            };
            Some((near, len))
        };
        let (x, cw) = axis(w, self.left, self.right, self.width).ok_or_else(too_much)?;
        let (y, ch) = axis(h, self.top, self.bottom, self.height).ok_or_else(too_much)?;
        Ok(match self.border {
            None => (x, y, cw, ch),
            Some(b) => border_rect(img, (x, y, cw, ch), b),
        })
    }

    pub fn apply(&self, img: RgbaImage) -> Result<RgbaImage, ImageError> {
        let (x, y, w, h) = self.rect(&img)?;
        if (x, y, w, h) == (0, 0, img.width(), img.height()) {
            return Ok(img);
        }
        Ok(image::imageops::crop_imm(&img, x, y, w, h).to_image())
    }
}

/// Shrinks `r` to the content that differs from the border colour, plus `keep`.
fn border_rect(img: &RgbaImage, r: (u32, u32, u32, u32), b: BorderTrim) -> (u32, u32, u32, u32) {
    let (x0, y0, w, h) = r;
    let bg = b.color.unwrap_or(*img.get_pixel(x0, y0));
    let tol = b.tolerance as i16;
    let is_bg = |x: u32, y: u32| {
        let p = img.get_pixel(x, y);
        (0..4).all(|c| (p[c] as i16 - bg[c] as i16).abs() <= tol)
    };
    let row_bg = |y: u32| (x0..x0 + w).all(|x| is_bg(x, y));
    let col_bg = |x: u32, ya: u32, yb: u32| (ya..yb).all(|y| is_bg(x, y));
    let Some(top) = (y0..y0 + h).find(|&y| !row_bg(y)) else {
        return r; // all border: leave it
    };
    let bottom = (y0..y0 + h).rev().find(|&y| !row_bg(y)).unwrap_or(top);
    let left = (x0..x0 + w)
        .find(|&x| !col_bg(x, top, bottom + 1))
        .unwrap_or(x0);
    let right = (x0..x0 + w)
        .rev()
        .find(|&x| !col_bg(x, top, bottom + 1))
        .unwrap_or(left);
    let nx = left.saturating_sub(b.keep).max(x0);
    let ny = top.saturating_sub(b.keep).max(y0);
    let ex = right.saturating_add(b.keep).min(x0 + w - 1);
    let ey = bottom.saturating_add(b.keep).min(y0 + h - 1);
    (nx, ny, ex - nx + 1, ey - ny + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// 20x10 white with a red 4x3 block at (5, 2) and a near-white speck at (0, 9).
    fn framed() -> RgbaImage {
        let mut img = RgbaImage::from_pixel(20, 10, Rgba([255, 255, 255, 255]));
        for y in 2..5 {
            for x in 5..9 {
                img.put_pixel(x, y, Rgba([255, 0, 0, 255]));
            }
        }
        img.put_pixel(0, 9, Rgba([250, 250, 250, 255]));
        img
    }

    fn rect(v: serde_json::Value) -> Result<(u32, u32, u32, u32), ImageError> {
        Trim::parse(Some(&v)).unwrap().unwrap().rect(&framed())
    }

    #[test]
    fn edges_and_sizes() {
        assert_eq!(
            rect(json!({"top":1,"right":2,"bottom":3,"left":4})).unwrap(),
            (4, 1, 14, 6)
        );
        assert_eq!(
            rect(json!({"left":2,"top":1,"width":5,"height":50})).unwrap(),
            (2, 1, 5, 9)
        );
        let e = rect(json!({"left":10,"right":10})).unwrap_err();
        assert!(e.message.contains("whole"), "{e}");
        assert!(Trim::parse(Some(&json!({"top":-1}))).is_err());
        assert!(Trim::parse(Some(&json!("edges"))).is_err());
    }

    #[test]
    fn border_detection() {
        // Tolerance 10 swallows the near-white speck.
        assert_eq!(rect(json!("border")).unwrap(), (5, 2, 4, 3));
        assert_eq!(
            rect(json!({"border":{"tolerance":0}})).unwrap(),
            (0, 2, 9, 8)
        );
        assert_eq!(
            rect(json!({"border":{"color":"#fff","keep":1}})).unwrap(),
            (4, 1, 6, 5)
        );
        // Edge trim first, then detection inside.
        assert_eq!(rect(json!({"left":6,"border":true})).unwrap(), (6, 2, 3, 3));
        // A colour that is not the border: nothing matches it at the edges.
        assert_eq!(
            rect(json!({"border":{"color":"#000"}})).unwrap(),
            (0, 0, 20, 10)
        );
        // All border: unchanged.
        let plain = RgbaImage::from_pixel(5, 5, Rgba([1, 2, 3, 255]));
        let t = Trim::parse(Some(&json!("border"))).unwrap().unwrap();
        assert_eq!(t.rect(&plain).unwrap(), (0, 0, 5, 5));
    }
}
