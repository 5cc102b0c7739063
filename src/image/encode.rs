//! Encoding to the requested output format.

use super::{Code, ImageError};
use crate::config::Limits;
use image::{ExtendedColorType, ImageEncoder, Rgba, RgbaImage};

/// Output formats (`output_format`, verbatim from the binding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Jpeg,
    Png,
    Webp,
    Avif,
    Gif,
    /// Raw 8-bit RGB pixels, row-major, no header.
    Rgb,
    /// Raw 8-bit RGBA pixels, row-major, no header.
    Rgba,
}

impl Output {
    pub fn parse(s: &str) -> Result<Output, ImageError> {
        Ok(match s.trim() {
            "image/jpeg" | "image/jpg" => Output::Jpeg,
            "image/png" => Output::Png,
            "image/webp" => Output::Webp,
            "image/avif" => Output::Avif,
            "image/gif" => Output::Gif,
            "rgb" => Output::Rgb,
            "rgba" => Output::Rgba,
            other => {
                return Err(ImageError::option(format!(
                    "unsupported output format {other:?}"
                )))
            }
        })
    }

    pub fn mime(self) -> &'static str {
        match self {
            Output::Jpeg => "image/jpeg",
            Output::Png => "image/png",
            Output::Webp => "image/webp",
            Output::Avif => "image/avif",
            Output::Gif => "image/gif",
            Output::Rgb | Output::Rgba => "application/octet-stream",
        }
    }
}

/// Default quality when `output_quality` is absent (Cloudflare's default).
pub const DEFAULT_QUALITY: u8 = 85;

/// An encoded image.
#[derive(Debug)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    pub mime: &'static str,
    pub width: u32,
    pub height: u32,
}

fn encode_error(what: &str, e: impl std::fmt::Display) -> ImageError {
    ImageError::new(Code::Corrupt, format!("could not encode {what}: {e}"))
}

fn is_opaque(img: &RgbaImage) -> bool {
    img.pixels().all(|p| p[3] == 255)
}

/// Composites `img` over a solid colour, leaving it opaque when the colour is.
pub fn flatten(img: &mut RgbaImage, bg: Rgba<u8>) {
    let ba = bg[3] as f32 / 255.0;
    for p in img.pixels_mut() {
        if p[3] == 255 {
            continue;
        }
        let sa = p[3] as f32 / 255.0;
        let oa = sa + ba * (1.0 - sa);
        for c in 0..3 {
            let v = if oa > 0.0 {
                (p[c] as f32 * sa + bg[c] as f32 * ba * (1.0 - sa)) / oa
            } else {
                0.0
            };
            p[c] = v.round() as u8;
        }
        p[3] = (oa * 255.0).round() as u8;
    }
}

fn rgb_bytes(img: &RgbaImage) -> Vec<u8> {
    img.pixels().flat_map(|p| [p[0], p[1], p[2]]).collect()
}

/// Encodes `img` as `out` at `quality` (1..=100).
pub fn encode(
    mut img: RgbaImage,
    out: Output,
    quality: Option<u8>,
    background: Option<Rgba<u8>>,
    limits: &Limits,
) -> Result<Encoded, ImageError> {
    let (w, h) = img.dimensions();
    let q = quality.unwrap_or(DEFAULT_QUALITY);
    let side_limit = |limit: u32, name: &str| {
        if w > limit || h > limit {
            Err(ImageError::new(
                Code::ImageTooLarge,
                format!("{name} output is limited to {limit} px per side; the image is {w}x{h}"),
            ))
        } else {
            Ok(())
        }
    };
    if let Some(bg) = background {
        flatten(&mut img, bg);
    }
    let mut bytes = Vec::new();
    match out {
        Output::Jpeg => {
            flatten(&mut img, Rgba([255, 255, 255, 255]));
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, q)
                .write_image(&rgb_bytes(&img), w, h, ExtendedColorType::Rgb8)
                .map_err(|e| encode_error("JPEG", e))?;
        }
        Output::Png => {
            let enc = image::codecs::png::PngEncoder::new_with_quality(
                &mut bytes,
                image::codecs::png::CompressionType::Fast,
                image::codecs::png::FilterType::Adaptive,
            );
            if is_opaque(&img) {
                enc.write_image(&rgb_bytes(&img), w, h, ExtendedColorType::Rgb8)
            } else {
                enc.write_image(img.as_raw(), w, h, ExtendedColorType::Rgba8)
            }
            .map_err(|e| encode_error("PNG", e))?;
        }
        Output::Webp => {
            side_limit(limits.webp_max_dimension, "WebP")?;
            let opaque = is_opaque(&img);
            let rgb;
            let enc = if opaque {
                rgb = rgb_bytes(&img);
                webp::Encoder::from_rgb(&rgb, w, h)
            } else {
                webp::Encoder::from_rgba(img.as_raw(), w, h)
            };
            let mem = if q >= 100 {
                enc.encode_simple(true, 100.0)
            } else {
                enc.encode_simple(false, q as f32)
            }
            .map_err(|e| encode_error("WebP", format!("{e:?}")))?;
            bytes.extend_from_slice(&mem);
        }
        Output::Avif => {
            side_limit(limits.avif_max_dimension, "AVIF")?;
            let enc = ravif::Encoder::new()
                .with_quality(q as f32)
                .with_alpha_quality(q as f32)
                .with_speed(limits.avif_speed);
            let pixels: Vec<ravif::RGBA8> = img
                .pixels()
                .map(|p| ravif::RGBA8::new(p[0], p[1], p[2], p[3]))
                .collect();
            let res = if is_opaque(&img) {
                let rgb: Vec<ravif::RGB8> = pixels.iter().map(|p| p.rgb()).collect();
                enc.encode_rgb(ravif::Img::new(&rgb[..], w as usize, h as usize))
            } else {
                enc.encode_rgba(ravif::Img::new(&pixels[..], w as usize, h as usize))
            };
            bytes = res.map_err(|e| encode_error("AVIF", e))?.avif_file;
        }
        Output::Gif => {
            image::codecs::gif::GifEncoder::new(&mut bytes)
                .encode(img.as_raw(), w, h, ExtendedColorType::Rgba8)
                .map_err(|e| encode_error("GIF", e))?;
        }
        Output::Rgb => bytes = rgb_bytes(&img),
        Output::Rgba => bytes = img.into_raw(),
    }
    Ok(Encoded {
        bytes,
        mime: out.mime(),
        width: w,
        height: h,
    })
}
