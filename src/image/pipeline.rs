//! The binding protocol's job: multipart parts in, one encoded image (or an error) out.
//! Runs on the CPU pool, never on a ring thread.

use super::decode::{self, Info};
use super::draw::Draw;
use super::encode::{self, Encoded, Output};
use super::ops::Transform;
use super::text::TextSpec;
use super::{color, Code, ImageError};
use crate::config::Limits;
use crate::http::multipart::Part;
use bytes::Bytes;
use image::{Rgba, RgbaImage};
use serde_json::{Map, Value};

/// All images of one job together may hold at most this many times `--max-megapixels` of
/// decoded pixels: one image at the limit plus overlays, while a request of many large overlays
/// (each within the limit) cannot multiply a job's memory.
pub const JOB_PIXELS_FACTOR: u64 = 2;

/// A canvas decoded smaller than its input, with the input's upright size.
type Shrunk = (RgbaImage, (u32, u32));

/// One element of `transforms`, in array order.
#[derive(Debug, Clone, PartialEq)]
pub enum Element {
    Transform(Transform),
    Draw(Draw),
}

/// One input image: encoded bytes, or text to render.
#[derive(Debug, Clone)]
pub enum Input {
    Encoded(Bytes),
    Text(TextSpec),
}

impl Input {
    fn load(&self, limits: &Limits) -> Result<RgbaImage, ImageError> {
        match self {
            Input::Encoded(data) => Ok(decode::decode(data, limits)?.1),
            Input::Text(t) => t.render(limits),
        }
    }
}

/// A parsed `/transform` request.
#[derive(Debug)]
pub struct Job {
    /// Image 0 is the canvas; overlays follow in wire order (`draw_image` and `draw_text`
    /// share one index sequence).
    pub inputs: Vec<Input>,
    pub elements: Vec<Element>,
    pub output: Output,
    pub quality: Option<u8>,
    pub background: Option<Rgba<u8>>,
    /// `anim`: `Some(false)` takes the first frame of an animated input; otherwise an
    /// animated GIF/WebP canvas stays animated when the output format can carry it.
    pub anim: Option<bool>,
}

fn utf8(part: &Part) -> Result<&str, ImageError> {
    std::str::from_utf8(&part.data)
        .map_err(|_| ImageError::option(format!("part `{}` is not UTF-8 text", part.name)))
}

fn index(map: &Map<String, Value>, key: &str) -> Result<Option<usize>, ImageError> {
    match map.get(key) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(|v| Some(v as usize))
            .ok_or_else(|| ImageError::option(format!("{key} must be a non-negative integer"))),
        Some(other) => Err(ImageError::option(format!(
            "{key} must be an integer, got {other}"
        ))),
    }
}

impl Job {
    /// Builds a job from the binding's multipart parts (see BINDING.md).
    pub fn from_parts(parts: Vec<Part>) -> Result<Job, ImageError> {
        let mut inputs = Vec::new();
        let mut transforms = None;
        let mut output = None;
        let mut quality = None;
        let mut background = None;
        let mut anim = None;
        for part in parts {
            match part.name.as_str() {
                "image" | "text_input" => {
                    if !inputs.is_empty() {
                        return Err(ImageError::option(
                            "more than one canvas part (`image` or `text_input`)",
                        ));
                    }
                    inputs.push(if part.name == "image" {
                        Input::Encoded(part.data)
                    } else {
                        Input::Text(TextSpec::parse(&part.name, &part.data)?)
                    });
                }
                "draw_image" | "draw_text" => {
                    if inputs.is_empty() {
                        return Err(ImageError::option(format!(
                            "`{}` before the canvas part",
                            part.name
                        )));
                    }
                    inputs.push(if part.name == "draw_image" {
                        Input::Encoded(part.data)
                    } else {
                        Input::Text(TextSpec::parse(&part.name, &part.data)?)
                    });
                }
                "transforms" => transforms = Some(utf8(&part)?.to_string()),
                "output_format" => output = Some(Output::parse(utf8(&part)?)?),
                "output_quality" => {
                    let s = utf8(&part)?.trim();
                    let q: f64 = s.parse().map_err(|_| {
                        ImageError::option(format!("output_quality must be a number, got {s:?}"))
                    })?;
                    if !(1.0..=100.0).contains(&q) {
                        return Err(ImageError::option(format!(
                            "output_quality must be between 1 and 100, got {s}"
                        )));
                    }
                    quality = Some(q.round() as u8);
                }
                "background" => {
                    let s = utf8(&part)?;
                    background =
                        Some(color::parse(s).ok_or_else(|| {
                            ImageError::option(format!("invalid background {s:?}"))
                        })?);
                }
                "anim" => match utf8(&part)?.trim() {
                    "false" => anim = Some(false),
                    "true" => anim = Some(true),
                    other => {
                        return Err(ImageError::option(format!(
                            "anim must be true or false, got {other:?}"
                        )))
                    }
                },
                _ => {}
            }
        }
        if inputs.is_empty() {
            return Err(ImageError::option("missing `image` (or `text_input`) part"));
        }
        let output = output.ok_or_else(|| ImageError::option("missing `output_format` part"))?;
        let elements = parse_transforms(transforms.as_deref().unwrap_or("[]"), inputs.len())?;
        Ok(Job {
            inputs,
            elements,
            output,
            quality,
            background,
            anim,
        })
    }

    /// Decodes every input, applies the elements in array order, encodes image 0. An animated
    /// canvas is rendered frame by frame (the overlays decoded once) and encoded animated.
    pub fn run(self, limits: &Limits) -> Result<Encoded, ImageError> {
        if let Some(frames) = self.animation(limits)? {
            let first = &frames[0].image;
            let overlays = self.load(1, first.width() as u64 * first.height() as u64, limits)?;
            let mut out = Vec::with_capacity(frames.len());
            for frame in frames {
                let mut images = Vec::with_capacity(self.inputs.len());
                images.push(frame.image);
                images.extend(overlays.iter().cloned());
                out.push((self.apply(images, limits)?, frame.delay_ms));
            }
            return encode::encode_animation(
                out,
                self.output,
                self.quality,
                self.background,
                limits,
            );
        }
        let canvas = self.render(limits)?;
        // The metadata policy keeps one thing: the canvas's EXIF copyright, in JPEG output.
        let copyright = match (&self.inputs[0], self.output) {
            (Input::Encoded(data), Output::Jpeg) => decode::copyright(data),
            _ => None,
        };
        encode::encode(
            canvas,
            self.output,
            self.quality,
            self.background,
            copyright.as_deref(),
            limits,
        )
    }

    /// The canvas's frames, when it is animated and the animation is kept.
    fn animation(&self, limits: &Limits) -> Result<Option<Vec<decode::Frame>>, ImageError> {
        match &self.inputs[0] {
            Input::Encoded(data) if self.output.animates() && self.anim != Some(false) => {
                decode::decode_animation(data, limits)
            }
            _ => Ok(None),
        }
    }

    /// The size image 0 has after every element (for `format=json`).
    pub fn dimensions(&self, limits: &Limits) -> Result<(u32, u32), ImageError> {
        Ok(self.render(limits)?.dimensions())
    }

    /// Decodes every input and applies the elements in array order; returns image 0.
    fn render(&self, limits: &Limits) -> Result<RgbaImage, ImageError> {
        if let Some((canvas, from)) = self.shrink_on_load(limits)? {
            let held = canvas.width() as u64 * canvas.height() as u64;
            let mut images = vec![canvas];
            images.extend(self.load(1, held, limits)?);
            return self.apply_from(images, Some(from), limits);
        }
        self.apply(self.load(0, 0, limits)?, limits)
    }

    /// A JPEG canvas whose first element shrinks it by 2× or more is decoded smaller (DCT
    /// scaling); returns it with the full upright size it stands for.
    fn shrink_on_load(&self, limits: &Limits) -> Result<Option<Shrunk>, ImageError> {
        let (Input::Encoded(data), Some(Element::Transform(t))) =
            (&self.inputs[0], self.elements.first())
        else {
            return Ok(None);
        };
        if t.image_index != 0 || decode::sniff(data) != Some(decode::Format::Jpeg) {
            return Ok(None);
        }
        let info = decode::probe(data)?;
        let full = (info.width, info.height);
        let divisor = t.shrink_divisor(full);
        Ok(decode::decode_jpeg_scaled(data, limits, divisor)?.map(|img| (img, full)))
    }

    /// Decodes the inputs from index `from` on that some element uses (the canvas always),
    /// within the job's pixel budget (`already` pixels are held elsewhere). An overlay no
    /// element refers to stays empty: it is never decoded.
    fn load(
        &self,
        from: usize,
        already: u64,
        limits: &Limits,
    ) -> Result<Vec<RgbaImage>, ImageError> {
        let budget = limits.max_pixels.saturating_mul(JOB_PIXELS_FACTOR);
        let mut held = already;
        let mut images = Vec::with_capacity(self.inputs.len() - from);
        for (i, input) in self.inputs.iter().enumerate().skip(from) {
            if i != 0 && !self.uses(i) {
                images.push(RgbaImage::new(0, 0));
                continue;
            }
            let img = input.load(limits)?;
            held += img.width() as u64 * img.height() as u64;
            if held > budget {
                return Err(ImageError::new(
                    Code::ImageTooLarge,
                    format!(
                        "the images of this request hold more than {:.1} megapixels in all",
                        budget as f64 / 1e6
                    ),
                ));
            }
            images.push(img);
        }
        Ok(images)
    }

    /// Whether any element transforms or draws image `i`.
    fn uses(&self, i: usize) -> bool {
        self.elements.iter().any(|el| match el {
            Element::Transform(t) => t.image_index == i,
            Element::Draw(d) => d.source == i || d.target == i,
        })
    }

    /// Applies the elements in array order to decoded images; returns image 0.
    fn apply(&self, images: Vec<RgbaImage>, limits: &Limits) -> Result<RgbaImage, ImageError> {
        self.apply_from(images, None, limits)
    }

    /// [`Job::apply`], where the canvas may have been decoded smaller than `shrunk_from` (its
    /// upright size) for the first element.
    fn apply_from(
        &self,
        mut images: Vec<RgbaImage>,
        shrunk_from: Option<(u32, u32)>,
        limits: &Limits,
    ) -> Result<RgbaImage, ImageError> {
        for (k, el) in self.elements.iter().enumerate() {
            match el {
                Element::Transform(t) => {
                    let img = std::mem::take(&mut images[t.image_index]);
                    let from = if k == 0 { shrunk_from } else { None };
                    images[t.image_index] = t.apply_shrunk(img, from, limits)?;
                }
                Element::Draw(d) => {
                    let overlay = std::mem::take(&mut images[d.source]);
                    d.apply(&mut images[d.target], &overlay);
                    images[d.source] = overlay;
                }
            }
        }
        Ok(images.swap_remove(0))
    }
}

fn parse_transforms(json: &str, images: usize) -> Result<Vec<Element>, ImageError> {
    let v: Value = serde_json::from_str(json)
        .map_err(|e| ImageError::option(format!("invalid transforms JSON: {e}")))?;
    let Value::Array(items) = v else {
        return Err(ImageError::option("transforms must be a JSON array"));
    };
    let check = |i: usize, what: &str| {
        if i < images {
            Ok(i)
        } else {
            Err(ImageError::option(format!(
                "{what} {i} refers to no image (there are {images})"
            )))
        }
    };
    items
        .iter()
        .map(|item| {
            let Value::Object(map) = item else {
                return Err(ImageError::option(
                    "each transforms element must be an object",
                ));
            };
            if let Some(src) = index(map, "drawImageIndex")? {
                let target = index(map, "targetImageIndex")?
                    .ok_or_else(|| ImageError::option("draw element without targetImageIndex"))?;
                let (src, target) = (
                    check(src, "drawImageIndex")?,
                    check(target, "targetImageIndex")?,
                );
                if src == target {
                    return Err(ImageError::option("an image cannot be drawn onto itself"));
                }
                Ok(Element::Draw(Draw::parse(src, target, map)?))
            } else {
                let i = index(map, "imageIndex")?
                    .ok_or_else(|| ImageError::option("transform element without imageIndex"))?;
                Ok(Element::Transform(Transform::parse(
                    check(i, "imageIndex")?,
                    map,
                )?))
            }
        })
        .collect()
}

/// Parses a `/transform` body and runs it.
pub fn transform(parts: Vec<Part>, limits: &Limits) -> Result<Encoded, ImageError> {
    Job::from_parts(parts)?.run(limits)
}

/// `/info`: `{"format","file_size","width","height"}` from the `image` part.
pub fn info(parts: Vec<Part>) -> Result<String, ImageError> {
    let image = parts
        .into_iter()
        .find(|p| p.name == "image")
        .ok_or_else(|| ImageError::option("missing `image` part"))?;
    let Info {
        format,
        width,
        height,
    } = decode::probe(&image.data)?;
    Ok(serde_json::json!({
        "format": format.mime(),
        "file_size": image.data.len(),
        "width": width,
        "height": height,
    })
    .to_string())
}

/// Maps a panic in a job to an internal error (the pool catches it).
pub fn panicked() -> ImageError {
    ImageError::new(Code::Internal, "internal error while processing the image")
}
