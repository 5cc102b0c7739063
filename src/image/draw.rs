//! Draw elements: composite image `c` onto image `t` with opacity, edge offsets, tiling
//! (`repeat`) and a Porter–Duff `composite` mode.
//!
//! Semantics (Cloudflare's `draw()` options; choices where its docs are silent):
//! - an axis with neither offset is centred; both `top` and `bottom` (or `left` and `right`) is
//!   an error (9401);
//! - `repeat: true` tiles the overlay over the whole target, `"x"` along the row it sits on,
//!   `"y"` along its column; the tile grid is anchored at the overlay's computed position;
//! - `composite` follows Porter & Duff (1984) on straight alpha with `opacity` scaling the
//!   overlay's alpha. As in libvips, the overlay counts as transparent outside the area it
//!   covers, so `in` and `out` clear the target outside it; `over`, `atop`, `xor` and `lighter`
//!   leave it unchanged there.

use super::{ops::number, ImageError};
use image::RgbaImage;
use serde_json::{Map, Value};

/// Porter–Duff operators the binding may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Composite {
    Over,
    In,
    Out,
    Atop,
    Xor,
    /// `plus`: colours and alphas add, clamped.
    Lighter,
}

/// Which axes the overlay is tiled along.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Repeat {
    pub x: bool,
    pub y: bool,
}

/// One `{"drawImageIndex": c, "targetImageIndex": t, ...}` element.
#[derive(Debug, Clone, PartialEq)]
pub struct Draw {
    pub source: usize,
    pub target: usize,
    pub opacity: f32,
    pub top: Option<i64>,
    pub left: Option<i64>,
    pub bottom: Option<i64>,
    pub right: Option<i64>,
    pub repeat: Repeat,
    pub composite: Composite,
}

fn offset(map: &Map<String, Value>, key: &str) -> Result<Option<i64>, ImageError> {
    match number(map, key)? {
        None => Ok(None),
        Some(v) if v.abs() <= 1e6 => Ok(Some(v.round() as i64)),
        Some(v) => Err(ImageError::option(format!("{key} out of range: {v}"))),
    }
}

fn parse_repeat(v: Option<&Value>) -> Result<Repeat, ImageError> {
    let (x, y) = match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => (false, false),
        Some(Value::Bool(true)) => (true, true),
        Some(Value::String(s)) => match s.as_str() {
            "x" => (true, false),
            "y" => (false, true),
            "true" | "xy" => (true, true),
            "false" => (false, false),
            other => {
                return Err(ImageError::option(format!(
                    "repeat must be true, false, \"x\" or \"y\", got {other:?}"
                )))
            }
        },
        Some(other) => {
            return Err(ImageError::option(format!(
                "repeat must be true, false, \"x\" or \"y\", got {other}"
            )))
        }
    };
    Ok(Repeat { x, y })
}

fn parse_composite(v: Option<&Value>) -> Result<Composite, ImageError> {
    Ok(match v {
        None | Some(Value::Null) => Composite::Over,
        Some(Value::String(s)) => match s.as_str() {
            "over" => Composite::Over,
            "in" => Composite::In,
            "out" => Composite::Out,
            "atop" => Composite::Atop,
            "xor" => Composite::Xor,
            "lighter" => Composite::Lighter,
            other => {
                return Err(ImageError::option(format!(
                    "composite must be over, in, out, atop, xor or lighter, got {other:?}"
                )))
            }
        },
        Some(other) => {
            return Err(ImageError::option(format!(
                "composite must be a string, got {other}"
            )))
        }
    })
}

/// One pixel of `op`: straight-alpha source `s` (alpha already × opacity) onto `d`.
fn blend(op: Composite, s: [f32; 4], d: [f32; 4]) -> [f32; 4] {
    let (sa, da) = (s[3], d[3]);
    // (source factor, destination factor) on premultiplied colour and alpha.
    let (fs, fd) = match op {
        Composite::Over => (1.0, 1.0 - sa),
        Composite::In => (da, 0.0),
        Composite::Out => (1.0 - da, 0.0),
        Composite::Atop => (da, 1.0 - sa),
        Composite::Xor => (1.0 - da, 1.0 - sa),
        Composite::Lighter => (1.0, 1.0),
    };
    let oa = (sa * fs + da * fd).min(1.0);
    let mut o = [0.0; 4];
    if oa > 0.0 {
        for c in 0..3 {
            o[c] = ((s[c] * sa * fs + d[c] * da * fd).min(1.0) / oa).min(1.0);
        }
    }
    o[3] = oa;
    o
}

impl Draw {
    pub fn parse(
        source: usize,
        target: usize,
        map: &Map<String, Value>,
    ) -> Result<Draw, ImageError> {
        let opacity = match number(map, "opacity")? {
            None => 1.0,
            Some(o) if (0.0..=1.0).contains(&o) => o as f32,
            Some(o) => {
                return Err(ImageError::option(format!(
                    "opacity must be between 0 and 1, got {o}"
                )))
            }
        };
        let d = Draw {
            source,
            target,
            opacity,
            top: offset(map, "top")?,
            left: offset(map, "left")?,
            bottom: offset(map, "bottom")?,
            right: offset(map, "right")?,
            repeat: parse_repeat(map.get("repeat"))?,
            composite: parse_composite(map.get("composite"))?,
        };
        if d.top.is_some() && d.bottom.is_some() {
            return Err(ImageError::option(
                "draw: top and bottom cannot both be set",
            ));
        }
        if d.left.is_some() && d.right.is_some() {
            return Err(ImageError::option(
                "draw: left and right cannot both be set",
            ));
        }
        Ok(d)
    }

    /// Top-left corner of the overlay on the base; an axis with no offset is centred.
    pub fn position(&self, base: (u32, u32), overlay: (u32, u32)) -> (i64, i64) {
        let axis = |near: Option<i64>, far: Option<i64>, b: u32, o: u32| match (near, far) {
            (Some(n), _) => n,
            (None, Some(f)) => b as i64 - o as i64 - f,
            (None, None) => (b as i64 - o as i64) / 2,
        };
        (
            axis(self.left, self.right, base.0, overlay.0),
            axis(self.top, self.bottom, base.1, overlay.1),
        )
    }

    /// Composites `overlay` onto `base` with this element's mode, opacity and tiling.
    pub fn apply(&self, base: &mut RgbaImage, overlay: &RgbaImage) {
        let (ow, oh) = (overlay.width() as i64, overlay.height() as i64);
        if ow == 0 || oh == 0 {
            return;
        }
        let (x0, y0) = self.position(base.dimensions(), overlay.dimensions());
        // Overlay coordinate covering base coordinate `v` on one axis, if any.
        let cover = |v: i64, origin: i64, size: i64, tiled: bool| {
            let o = v - origin;
            if tiled {
                Some(o.rem_euclid(size))
            } else {
                (0..size).contains(&o).then_some(o)
            }
        };
        // Only `in` and `out` change pixels the overlay does not cover.
        let touches_outside = matches!(self.composite, Composite::In | Composite::Out);
        let fast_over = self.composite == Composite::Over;
        let (bw, bh) = (base.width() as i64, base.height() as i64);
        for y in 0..bh {
            let oy = cover(y, y0, oh, self.repeat.y);
            if oy.is_none() && !touches_outside {
                continue;
            }
            for x in 0..bw {
                let ox = oy.and_then(|oy| cover(x, x0, ow, self.repeat.x).map(|ox| (ox, oy)));
                let src = match ox {
                    Some((ox, oy)) => {
                        let p = overlay.get_pixel(ox as u32, oy as u32);
                        [
                            p[0] as f32 / 255.0,
                            p[1] as f32 / 255.0,
                            p[2] as f32 / 255.0,
                            p[3] as f32 / 255.0 * self.opacity,
                        ]
                    }
                    None if touches_outside => [0.0; 4],
                    None => continue,
                };
                if fast_over && src[3] <= 0.0 {
                    continue;
                }
                let dst = base.get_pixel_mut(x as u32, y as u32);
                let d = dst.0.map(|v| v as f32 / 255.0);
                let o = blend(self.composite, src, d);
                dst.0 = o.map(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgba;

    fn draw(json: &str) -> Result<Draw, ImageError> {
        Draw::parse(1, 0, &serde_json::from_str(json).unwrap())
    }

    #[test]
    fn positions() {
        let d = draw(r#"{"top":4,"left":8}"#).unwrap();
        assert_eq!(d.position((64, 48), (16, 16)), (8, 4));
        let d = draw(r#"{"bottom":2,"right":2}"#).unwrap();
        assert_eq!(d.position((48, 36), (12, 9)), (34, 25));
        let d = draw("{}").unwrap();
        assert_eq!(d.position((64, 48), (16, 16)), (24, 16));
        assert!(draw(r#"{"top":1,"bottom":1}"#).is_err());
        assert!(draw(r#"{"repeat":"z"}"#)
            .unwrap_err()
            .message
            .contains("repeat"));
        assert!(draw(r#"{"composite":"multiply"}"#)
            .unwrap_err()
            .message
            .contains("composite"));
    }

    #[test]
    fn repeat_tiles() {
        let ov = RgbaImage::from_pixel(2, 2, Rgba([255, 0, 0, 255]));
        let white = Rgba([255, 255, 255, 255]);
        let mut base = RgbaImage::from_pixel(7, 5, white);
        draw(r#"{"repeat":true}"#).unwrap().apply(&mut base, &ov);
        assert!(base.pixels().all(|p| p.0 == [255, 0, 0, 255]));
        // "x": only the rows the overlay sits on (bottom: 0 → rows 3, 4).
        let mut base = RgbaImage::from_pixel(7, 5, white);
        draw(r#"{"repeat":"x","bottom":0,"right":0}"#)
            .unwrap()
            .apply(&mut base, &ov);
        for (x, y, p) in base.enumerate_pixels() {
            let red = y >= 3;
            assert_eq!(p.0[1] == 0, red, "({x},{y}) {p:?}");
        }
        // "y": only the columns (left: 1 → columns 1, 2).
        let mut base = RgbaImage::from_pixel(7, 5, white);
        draw(r#"{"repeat":"y","left":1}"#)
            .unwrap()
            .apply(&mut base, &ov);
        for (x, _, p) in base.enumerate_pixels() {
            assert_eq!(p.0[1] == 0, x == 1 || x == 2, "column {x}");
        }
    }

    #[test]
    fn porter_duff_modes() {
        // Half-transparent blue destination, opaque red 2x2 source at (0, 0) on a 4x1 base.
        let run = |mode: &str| {
            let mut base = RgbaImage::from_pixel(4, 1, Rgba([0, 0, 255, 128]));
            let ov = RgbaImage::from_pixel(2, 1, Rgba([255, 0, 0, 255]));
            draw(&format!(r#"{{"composite":"{mode}","left":0,"top":0}}"#))
                .unwrap()
                .apply(&mut base, &ov);
            (base.get_pixel(0, 0).0, base.get_pixel(3, 0).0)
        };
        let blue = [0, 0, 255, 128];
        assert_eq!(run("over"), ([255, 0, 0, 255], blue));
        assert_eq!(run("in"), ([255, 0, 0, 128], [0, 0, 0, 0]));
        assert_eq!(run("out"), ([255, 0, 0, 127], [0, 0, 0, 0]));
        assert_eq!(run("atop"), ([255, 0, 0, 128], blue));
        assert_eq!(run("xor"), ([255, 0, 0, 127], blue));
        assert_eq!(run("lighter"), ([255, 0, 128, 255], blue));
    }

    #[test]
    fn opacity_blends() {
        let mut base = RgbaImage::from_pixel(4, 4, Rgba([0, 0, 0, 255]));
        let ov = RgbaImage::from_pixel(2, 2, Rgba([255, 255, 255, 255]));
        draw(r#"{"opacity":0.5,"top":0,"left":0}"#)
            .unwrap()
            .apply(&mut base, &ov);
        assert_eq!(base.get_pixel(0, 0)[0], 128);
        assert_eq!(base.get_pixel(3, 3)[0], 0);
    }
}
