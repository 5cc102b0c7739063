//! One transform element: parsed from the binding's JSON, applied in Cloudflare's fixed order
//! (trim, flip, rotate, resize — width/height refer to the axes after rotation, times `dpr` —
//! then blur, sharpen, colour factors, then border). Options that need a model this server does
//! not have (`gravity=face`, `segment`) are refused by name (9401), never silently ignored.

use super::adjust::{self, Border, Colour};
use super::saliency::{self, Focus};
use super::trim::Trim;
use super::{color, ImageError};
use crate::config::Limits;
use fast_image_resize as fir;
use image::{imageops, Rgba, RgbaImage};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    ScaleDown,
    Contain,
    Cover,
    Crop,
    Pad,
    Squeeze,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Gravity {
    /// Fractions of the space left over (0 = left/top, 0.5 = centre, 1 = right/bottom).
    Remainder { x: f64, y: f64 },
    /// A point (fractions of the image) to centre the crop on, as far as it fits.
    BoxCenter { x: f64, y: f64 },
    /// `auto` / `entropy`: placed by [`saliency::place`] once the window size is known.
    Focus(Focus),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flip {
    H,
    V,
    Hv,
}

/// One `{"imageIndex": i, ...}` element.
#[derive(Debug, Clone, PartialEq)]
pub struct Transform {
    pub image_index: usize,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fit: Fit,
    pub gravity: Gravity,
    pub background: Option<Rgba<u8>>,
    pub flip: Option<Flip>,
    /// Clockwise quarter turns.
    pub quarter_turns: u8,
    pub blur: Option<f32>,
    pub trim: Option<Trim>,
    pub sharpen: Option<f32>,
    pub colour: Colour,
    pub border: Option<Border>,
    /// Multiplies `width`, `height` and border widths (1 when absent).
    pub dpr: f64,
}

/// Largest `dpr` accepted. Cloudflare documents no maximum; the output limits bound the result
/// anyway, and this keeps the arithmetic far from overflow.
pub const DPR_MAX: f64 = 10.0;

/// Keys Cloudflare defines for the URL/`fetch` interface that the binding never sends inside a
/// transform element: refused by name rather than silently ignored.
const NOT_HERE: &[&str] = &["compression", "metadata", "anim", "onerror"];

/// Options that need a machine-learning model this server does not ship (9401, documented).
fn needs_model(what: &str) -> ImageError {
    ImageError::option(format!(
        "{what} needs a detection model, which this server does not have"
    ))
}

pub(super) fn number(map: &Map<String, Value>, key: &str) -> Result<Option<f64>, ImageError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(Some)
            .ok_or_else(|| ImageError::option(format!("{key} must be a number, got {s:?}"))),
        Some(other) => Err(ImageError::option(format!(
            "{key} must be a number, got {other}"
        ))),
    }
}

fn string<'a>(map: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, ImageError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ImageError::option(format!(
            "{key} must be a string, got {other}"
        ))),
    }
}

fn dimension(map: &Map<String, Value>, key: &str) -> Result<Option<u32>, ImageError> {
    match number(map, key)? {
        None => Ok(None),
        Some(v) if (1.0..=1e6).contains(&v) => Ok(Some(v.round() as u32)),
        Some(v) => Err(ImageError::option(format!(
            "{key} must be a positive number of pixels, got {v}"
        ))),
    }
}

impl Transform {
    pub fn parse(image_index: usize, map: &Map<String, Value>) -> Result<Transform, ImageError> {
        for key in NOT_HERE {
            if map.contains_key(*key) {
                return Err(ImageError::unsupported(format!("transform option `{key}`")));
            }
        }
        match map.get("segment") {
            None | Some(Value::Null) => {}
            Some(v) => return Err(needs_model(&format!("segment={v}"))),
        }
        // `zoom` only tunes `gravity=face` (0–1); validated, and meaningless without faces.
        if let Some(z) = number(map, "zoom")? {
            if !(0.0..=1.0).contains(&z) {
                return Err(ImageError::option(format!(
                    "zoom must be between 0 and 1, got {z}"
                )));
            }
        }
        let dpr = match number(map, "dpr")? {
            None => 1.0,
            Some(d) if d > 0.0 && d <= DPR_MAX => d,
            Some(d) => {
                return Err(ImageError::option(format!(
                    "dpr must be greater than 0 and at most {DPR_MAX}, got {d}"
                )))
            }
        };
        let fit = match string(map, "fit")? {
            None | Some("scale-down") => Fit::ScaleDown,
            Some("contain") => Fit::Contain,
            Some("cover") => Fit::Cover,
            Some("crop") => Fit::Crop,
            Some("pad") => Fit::Pad,
            Some("squeeze") => Fit::Squeeze,
            Some(other) => return Err(ImageError::option(format!("invalid fit {other:?}"))),
        };
        let gravity = parse_gravity(map.get("gravity"))?;
        let background = match string(map, "background")? {
            None => None,
            Some(s) => Some(
                color::parse(s)
                    .ok_or_else(|| ImageError::option(format!("invalid background {s:?}")))?,
            ),
        };
        let flip = match string(map, "flip")? {
            None => None,
            Some("h") => Some(Flip::H),
            Some("v") => Some(Flip::V),
            Some("hv") | Some("vh") => Some(Flip::Hv),
            Some(other) => return Err(ImageError::option(format!("invalid flip {other:?}"))),
        };
        let quarter_turns = match number(map, "rotate")? {
            None => 0,
            Some(r) if r == 0.0 || r == 90.0 || r == 180.0 || r == 270.0 => (r / 90.0) as u8,
            Some(r) => {
                return Err(ImageError::option(format!(
                    "rotate must be 0, 90, 180 or 270, got {r}"
                )))
            }
        };
        let blur = match number(map, "blur")? {
            None => None,
            Some(b) if (0.0..=250.0).contains(&b) => (b > 0.0).then_some(b as f32),
            Some(b) => {
                return Err(ImageError::option(format!(
                    "blur must be between 1 and 250, got {b}"
                )))
            }
        };
        let scaled = |v: Option<u32>| v.map(|v| ((v as f64 * dpr).round() as u32).max(1));
        Ok(Transform {
            image_index,
            width: scaled(dimension(map, "width")?),
            height: scaled(dimension(map, "height")?),
            fit,
            gravity,
            background,
            flip,
            quarter_turns,
            blur,
            trim: Trim::parse(map.get("trim"))?,
            sharpen: adjust::parse_sharpen(map)?,
            colour: Colour::parse(map)?,
            border: Border::parse(map.get("border"))?,
            dpr,
        })
    }

    /// Applies this element to `img` in Cloudflare's fixed order.
    pub fn apply(&self, img: RgbaImage, limits: &Limits) -> Result<RgbaImage, ImageError> {
        self.apply_shrunk(img, None, limits)
    }

    /// How much smaller than `upright` (the input's size, orientation applied) the input may be
    /// decoded for this element without losing detail: the largest of 8, 4, 2 that keeps the
    /// decoded source region at least as large as the output, or 1. Never with `trim`, whose
    /// edges are input pixels.
    pub fn shrink_divisor(&self, (w, h): (u32, u32)) -> u32 {
        if self.trim.is_some() || (self.width.is_none() && self.height.is_none()) {
            return 1;
        }
        let src = if self.quarter_turns % 2 == 1 {
            (h, w)
        } else {
            (w, h)
        };
        let p = plan(src, self.width, self.height, self.fit, self.gravity);
        let (cw, ch) = p
            .crop
            .map_or((src.0 as f64, src.1 as f64), |(_, _, cw, ch)| (cw, ch));
        let ratio = (cw / p.out.0 as f64).min(ch / p.out.1 as f64);
        [8, 4, 2]
            .into_iter()
            .find(|d| *d as f64 <= ratio)
            .unwrap_or(1)
    }

    /// [`Transform::apply`] on an image decoded smaller than the input (shrink-on-load):
    /// `shrunk_from` is the input's upright size, so the geometry is planned exactly as for the
    /// full-size input.
    pub fn apply_shrunk(
        &self,
        img: RgbaImage,
        shrunk_from: Option<(u32, u32)>,
        limits: &Limits,
    ) -> Result<RgbaImage, ImageError> {
        let img = match &self.trim {
            Some(t) => t.apply(img)?,
            None => img,
        };
        let img = match self.flip {
            None => img,
            Some(Flip::H) => imageops::flip_horizontal(&img),
            Some(Flip::V) => imageops::flip_vertical(&img),
            Some(Flip::Hv) => imageops::rotate180(&img),
        };
        let img = match self.quarter_turns {
            1 => imageops::rotate90(&img),
            2 => imageops::rotate180(&img),
            3 => imageops::rotate270(&img),
            _ => img,
        };
        let source = shrunk_from.map(|(w, h)| {
            if self.quarter_turns % 2 == 1 {
                (h, w)
            } else {
                (w, h)
            }
        });
        let img = self.resize(img, source, limits)?;
        let mut img = match self.blur {
            Some(radius) => imageops::fast_blur(&img, radius / 2.0),
            None => img,
        };
        if let Some(s) = self.sharpen {
            adjust::sharpen(&mut img, s);
        }
        self.colour.apply(&mut img);
        Ok(match &self.border {
            None => img,
            Some(b) => {
                let (cw, ch) = b.canvas(img.dimensions(), self.dpr);
                check_output(cw, ch, limits)?;
                b.apply(img, self.dpr)
            }
        })
    }

    /// Resizes per the fit rules, planned on `source` (the size `img` stands for; its own size
    /// when `None`) and carried out on `img`.
    fn resize(
        &self,
        img: RgbaImage,
        source: Option<(u32, u32)>,
        limits: &Limits,
    ) -> Result<RgbaImage, ImageError> {
        let src = source.unwrap_or(img.dimensions());
        let mut plan = plan(src, self.width, self.height, self.fit, self.gravity);
        if src != img.dimensions() {
            let (iw, ih) = (img.width() as f64, img.height() as f64);
            let (sx, sy) = (iw / src.0 as f64, ih / src.1 as f64);
            plan.crop = plan.crop.map(|(x, y, w, h)| {
                let (x, y) = ((x * sx).min(iw - 1.0), (y * sy).min(ih - 1.0));
                (x, y, (w * sx).min(iw - x), (h * sy).min(ih - y))
            });
        }
        let (cw, ch) = plan.canvas;
        check_output(cw as u64, ch as u64, limits)?;
        if let (Gravity::Focus(focus), Some((_, _, w, h))) = (self.gravity, plan.crop) {
            let (x, y) = saliency::place(&img, w, h, focus);
            plan.crop = Some((x, y, w, h));
        }
        let scaled = if plan.out == img.dimensions() && plan.crop.is_none() {
            img
        } else {
            resample(&img, plan.crop, plan.out)?
        };
        Ok(match plan.pad_at {
            None => scaled,
            Some((x, y)) => {
                let bg = self.background.unwrap_or(Rgba([255, 255, 255, 255]));
                let mut canvas = RgbaImage::from_pixel(cw, ch, bg);
                imageops::overlay(&mut canvas, &scaled, x as i64, y as i64);
                canvas
            }
        })
    }
}

/// The output limits (side and area) for an intermediate or final size.
fn check_output(w: u64, h: u64, limits: &Limits) -> Result<(), ImageError> {
    if w > limits.max_dimension as u64
        || h > limits.max_dimension as u64
        || w.saturating_mul(h) > limits.max_pixels
    {
        return Err(ImageError::new(
            super::Code::ImageTooLarge,
            format!("the result would be {w}x{h}, over the output limits"),
        ));
    }
    Ok(())
}

fn parse_gravity(v: Option<&Value>) -> Result<Gravity, ImageError> {
    let centre = Gravity::Remainder { x: 0.5, y: 0.5 };
    match v {
        None | Some(Value::Null) => Ok(centre),
        Some(Value::String(s)) => match s.as_str() {
            "center" | "centre" => Ok(centre),
            "left" => Ok(Gravity::Remainder { x: 0.0, y: 0.5 }),
            "right" => Ok(Gravity::Remainder { x: 1.0, y: 0.5 }),
            "top" => Ok(Gravity::Remainder { x: 0.5, y: 0.0 }),
            "bottom" => Ok(Gravity::Remainder { x: 0.5, y: 1.0 }),
            "auto" => Ok(Gravity::Focus(Focus::Auto)),
            "entropy" => Ok(Gravity::Focus(Focus::Entropy)),
            "face" => Err(needs_model("gravity=face")),
            other => Err(ImageError::option(format!("invalid gravity {other:?}"))),
        },
        Some(Value::Object(m)) => {
            let x = number(m, "x")?.unwrap_or(0.5);
            let y = number(m, "y")?.unwrap_or(0.5);
            if !(0.0..=1.0).contains(&x) || !(0.0..=1.0).contains(&y) {
                return Err(ImageError::option(
                    "gravity x and y must be between 0 and 1",
                ));
            }
            match string(m, "mode")? {
                None | Some("remainder") => Ok(Gravity::Remainder { x, y }),
                Some("box-center") => Ok(Gravity::BoxCenter { x, y }),
                Some(other) => Err(ImageError::option(format!(
                    "invalid gravity mode {other:?}"
                ))),
            }
        }
        Some(other) => Err(ImageError::option(format!("invalid gravity {other}"))),
    }
}

/// The geometry of one resize.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// Source rectangle (x, y, w, h) to scale, when cropping.
    pub crop: Option<(f64, f64, f64, f64)>,
    /// Size the (cropped) source is scaled to.
    pub out: (u32, u32),
    /// Final canvas size (differs from `out` only with padding).
    pub canvas: (u32, u32),
    /// Where the scaled image sits on the canvas, when padding.
    pub pad_at: Option<(u32, u32)>,
}

fn px(v: f64) -> u32 {
    (v.round() as u32).max(1)
}

/// Computes a resize per Cloudflare's fit rules. With one dimension the other follows the
/// aspect ratio; `scale-down` and `crop` never enlarge.
pub fn plan(src: (u32, u32), w: Option<u32>, h: Option<u32>, fit: Fit, g: Gravity) -> Plan {
    let (sw, sh) = (src.0 as f64, src.1 as f64);
    let never_enlarge = matches!(fit, Fit::ScaleDown | Fit::Crop);
    let simple = |scale: f64| {
        let scale = if never_enlarge { scale.min(1.0) } else { scale };
        let out = (px(sw * scale), px(sh * scale));
        Plan {
            crop: None,
            out,
            canvas: out,
            pad_at: None,
        }
    };
    let (w, h) = match (w, h) {
        (None, None) => return simple(1.0),
        (Some(w), None) => return simple(w as f64 / sw),
        (None, Some(h)) => return simple(h as f64 / sh),
        (Some(w), Some(h)) => (w as f64, h as f64),
    };
    match fit {
        Fit::Squeeze => {
            let out = (px(w), px(h));
            Plan {
                crop: None,
                out,
                canvas: out,
                pad_at: None,
            }
        }
        Fit::ScaleDown | Fit::Contain => simple((w / sw).min(h / sh)),
        Fit::Pad => {
            let p = simple((w / sw).min(h / sh));
            let canvas = (px(w), px(h));
            let x = (canvas.0.saturating_sub(p.out.0)) / 2;
            let y = (canvas.1.saturating_sub(p.out.1)) / 2;
            Plan {
                canvas,
                pad_at: Some((x, y)),
                ..p
            }
        }
        Fit::Cover | Fit::Crop => {
            let mut scale = (w / sw).max(h / sh);
            if fit == Fit::Crop {
                scale = scale.min(1.0);
            }
            // Target size, never larger than the scaled source.
            let tw = w.min(sw * scale);
            let th = h.min(sh * scale);
            let (cw, ch) = (tw / scale, th / scale);
            let (cx, cy) = match g {
                Gravity::Remainder { x, y } => ((sw - cw) * x, (sh - ch) * y),
                Gravity::BoxCenter { x, y } => (
                    (x * sw - cw / 2.0).clamp(0.0, sw - cw),
                    (y * sh - ch / 2.0).clamp(0.0, sh - ch),
                ),
                // Placed later from the pixels; centred here.
                Gravity::Focus(_) => ((sw - cw) / 2.0, (sh - ch) / 2.0),
            };
            let out = (px(tw), px(th));
            Plan {
                crop: Some((cx, cy, cw, ch)),
                out,
                canvas: out,
                pad_at: None,
            }
        }
    }
}

/// Lanczos3 resampling of an RGBA8 image in premultiplied alpha (no dark fringes).
pub fn resample(
    img: &RgbaImage,
    crop: Option<(f64, f64, f64, f64)>,
    out: (u32, u32),
) -> Result<RgbaImage, ImageError> {
    let internal = |e: &dyn std::fmt::Display| {
        ImageError::new(super::Code::Internal, format!("resize failed: {e}"))
    };
    let (w, h) = img.dimensions();
    let src = fir::images::ImageRef::new(w, h, img.as_raw(), fir::PixelType::U8x4)
        .map_err(|e| internal(&e))?;
    let mut dst = fir::images::Image::new(out.0, out.1, fir::PixelType::U8x4);
    let mut opts = fir::ResizeOptions::new()
        .resize_alg(fir::ResizeAlg::Convolution(fir::FilterType::Lanczos3))
        .use_alpha(true);
    if let Some((x, y, cw, ch)) = crop {
        opts = opts.crop(x, y, cw, ch);
    }
    fir::Resizer::new()
        .resize(&src, &mut dst, &opts)
        .map_err(|e| internal(&e))?;
    RgbaImage::from_raw(out.0, out.1, dst.into_vec())
        .ok_or_else(|| internal(&"resize produced a short buffer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: Gravity = Gravity::Remainder { x: 0.5, y: 0.5 };

    #[test]
    fn fit_rules() {
        // BINDING.md's worked example: 64x48 rotated → 48x64, width 32 → 32x43.
        assert_eq!(
            plan((48, 64), Some(32), None, Fit::ScaleDown, C).out,
            (32, 43)
        );
        // scale-down never enlarges; contain does.
        assert_eq!(
            plan((100, 50), Some(200), None, Fit::ScaleDown, C).out,
            (100, 50)
        );
        assert_eq!(
            plan((100, 50), Some(200), None, Fit::Contain, C).out,
            (200, 100)
        );
        assert_eq!(
            plan((100, 50), Some(50), Some(50), Fit::Contain, C).out,
            (50, 25)
        );
        // cover fills and crops; crop never enlarges.
        let p = plan((100, 50), Some(50), Some(50), Fit::Cover, C);
        assert_eq!((p.out, p.crop), ((50, 50), Some((25.0, 0.0, 50.0, 50.0))));
        let p = plan((40, 20), Some(50), Some(50), Fit::Crop, C);
        assert_eq!(p.out, (40, 20));
        let p = plan(
            (100, 50),
            Some(50),
            Some(50),
            Fit::Cover,
            Gravity::Remainder { x: 0.0, y: 0.5 },
        );
        assert_eq!(p.crop, Some((0.0, 0.0, 50.0, 50.0)));
        // pad fits and centres on the requested canvas.
        let p = plan((100, 50), Some(60), Some(60), Fit::Pad, C);
        assert_eq!(
            (p.out, p.canvas, p.pad_at),
            ((60, 30), (60, 60), Some((0, 15)))
        );
        assert_eq!(
            plan((100, 50), Some(10), Some(90), Fit::Squeeze, C).out,
            (10, 90)
        );
    }

    #[test]
    fn refuses_what_is_not_implemented_by_name() {
        let m: Map<String, Value> =
            serde_json::from_str(r#"{"width":10,"segment":"foreground"}"#).unwrap();
        let e = Transform::parse(0, &m).unwrap_err();
        assert!(e.message.contains("segment"), "{e}");
        let m: Map<String, Value> =
            serde_json::from_str(r#"{"gravity":"face","fit":"cover"}"#).unwrap();
        assert!(Transform::parse(0, &m)
            .unwrap_err()
            .message
            .contains("gravity=face"));
        let m: Map<String, Value> = serde_json::from_str(r#"{"zoom":2}"#).unwrap();
        assert!(Transform::parse(0, &m).is_err());
        let m: Map<String, Value> = serde_json::from_str(r#"{"dpr":0}"#).unwrap();
        assert!(Transform::parse(0, &m).is_err());
        let m: Map<String, Value> =
            serde_json::from_str(r#"{"dpr":2,"width":10,"height":7}"#).unwrap();
        let t = Transform::parse(0, &m).unwrap();
        assert_eq!((t.width, t.height), (Some(20), Some(14)));
        let m: Map<String, Value> = serde_json::from_str(r#"{"whatever":1,"rotate":90}"#).unwrap();
        assert_eq!(Transform::parse(0, &m).unwrap().quarter_turns, 1);
        let m: Map<String, Value> = serde_json::from_str(r#"{"rotate":45}"#).unwrap();
        assert!(Transform::parse(0, &m).is_err());
    }

    #[test]
    fn premultiplied_resize_has_no_dark_fringe() {
        // Left half opaque white, right half fully transparent black.
        let img = RgbaImage::from_fn(64, 8, |x, _| {
            if x < 32 {
                Rgba([255, 255, 255, 255])
            } else {
                Rgba([0, 0, 0, 0])
            }
        });
        let out = resample(&img, None, (16, 2)).unwrap();
        for p in out.pixels().filter(|p| p[3] > 20) {
            assert!(p[0] > 240, "dark fringe {p:?}");
        }
    }
}
