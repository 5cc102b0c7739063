//! Draw elements: composite image `c` onto image `t` with opacity and edge offsets.

use super::{ops::number, ImageError};
use image::RgbaImage;
use serde_json::{Map, Value};

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
}

fn offset(map: &Map<String, Value>, key: &str) -> Result<Option<i64>, ImageError> {
    match number(map, key)? {
        None => Ok(None),
        Some(v) if v.abs() <= 1e6 => Ok(Some(v.round() as i64)),
        Some(v) => Err(ImageError::option(format!("{key} out of range: {v}"))),
    }
}

impl Draw {
    pub fn parse(
        source: usize,
        target: usize,
        map: &Map<String, Value>,
    ) -> Result<Draw, ImageError> {
        match map.get("repeat") {
            None | Some(Value::Null) | Some(Value::Bool(false)) => {}
            Some(v) => {
                return Err(ImageError::unsupported(format!(
                    "draw option `repeat` ({v})"
                )))
            }
        }
        match map.get("composite") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s == "over" => {}
            Some(v) => {
                return Err(ImageError::unsupported(format!(
                    "draw option `composite` ({v})"
                )))
            }
        }
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

    /// Composites `overlay` onto `base` (source-over, straight alpha, opacity applied).
    pub fn apply(&self, base: &mut RgbaImage, overlay: &RgbaImage) {
        let (x0, y0) = self.position(base.dimensions(), overlay.dimensions());
        let (bw, bh) = (base.width() as i64, base.height() as i64);
        for (ox, oy, src) in overlay.enumerate_pixels() {
            let (x, y) = (x0 + ox as i64, y0 + oy as i64);
            if x < 0 || y < 0 || x >= bw || y >= bh {
                continue;
            }
            let dst = base.get_pixel_mut(x as u32, y as u32);
            let sa = src[3] as f32 / 255.0 * self.opacity;
            if sa <= 0.0 {
                continue;
            }
            let da = dst[3] as f32 / 255.0;
            let oa = sa + da * (1.0 - sa);
            for c in 0..3 {
                let v = (src[c] as f32 * sa + dst[c] as f32 * da * (1.0 - sa)) / oa;
                dst[c] = v.round().clamp(0.0, 255.0) as u8;
            }
            dst[3] = (oa * 255.0).round() as u8;
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
        assert!(draw(r#"{"repeat":true}"#)
            .unwrap_err()
            .message
            .contains("repeat"));
        assert!(draw(r#"{"composite":"xor"}"#)
            .unwrap_err()
            .message
            .contains("composite"));
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
