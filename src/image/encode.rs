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

    /// Whether this format can carry an animation.
    pub fn animates(self) -> bool {
        matches!(self, Output::Gif | Output::Webp)
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

/// A format's per-side output limit (9413 beyond it).
fn side_limit((w, h): (u32, u32), limit: u32, name: &str) -> Result<(), ImageError> {
    if w > limit || h > limit {
        return Err(ImageError::new(
            Code::ImageTooLarge,
            format!("{name} output is limited to {limit} px per side; the image is {w}x{h}"),
        ));
    }
    Ok(())
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

/// JPEG output is progressive when the image has at least this many pixels (below it the extra
/// scans cost more bytes than they save)…
pub const PROGRESSIVE_MIN_PIXELS: u64 = 100 * 100;
/// …and at most this many (a progressive encoder holds every coefficient of the image).
pub const PROGRESSIVE_MAX_PIXELS: u64 = 16 * 1024 * 1024;

/// Encodes `img` as `out` at `quality` (1..=100). `copyright` (the input's EXIF notice) is
/// kept in JPEG output; every other piece of metadata is stripped.
pub fn encode(
    mut img: RgbaImage,
    out: Output,
    quality: Option<u8>,
    background: Option<Rgba<u8>>,
    copyright: Option<&str>,
    limits: &Limits,
) -> Result<Encoded, ImageError> {
    let (w, h) = img.dimensions();
    let q = quality.unwrap_or(DEFAULT_QUALITY);
    let side_limit = |limit: u32, name: &str| side_limit((w, h), limit, name);
    if let Some(bg) = background {
        flatten(&mut img, bg);
    }
    let mut bytes = Vec::new();
    match out {
        Output::Jpeg => {
            flatten(&mut img, Rgba([255, 255, 255, 255]));
            let mut enc = jpeg_encoder::Encoder::new(&mut bytes, q);
            let px = w as u64 * h as u64;
            let progressive = (PROGRESSIVE_MIN_PIXELS..=PROGRESSIVE_MAX_PIXELS).contains(&px);
            enc.set_progressive(progressive);
            // Optimised Huffman tables for progressive output, as libjpeg does. Not for baseline:
            // jpeg-encoder 0.7.1 writes undecodable colour data with optimised tables in baseline
            // mode (`tests/images_meta.rs` checks both). Chroma averaged, not point-sampled.
            enc.set_optimized_huffman_tables(progressive);
            enc.set_chroma_subsampling_method(jpeg_encoder::ChromaSubsamplingMethod::Average);
            if copyright.is_some() {
                enc.add_exif_metadata(&super::meta::exif_segment(copyright))
                    .map_err(|e| encode_error("JPEG", e))?;
            }
            enc.encode(
                img.as_raw(),
                w as u16,
                h as u16,
                jpeg_encoder::ColorType::Rgba,
            )
            .map_err(|e| encode_error("JPEG", e))?;
        }
        Output::Png => {
            if let Some((palette, alpha, indexes)) = png_palette(&img) {
                let mut enc = png::Encoder::new(&mut bytes, w, h);
                enc.set_color(png::ColorType::Indexed);
                enc.set_depth(png::BitDepth::Eight);
                enc.set_compression(png::Compression::Fast);
                enc.set_palette(palette);
                if alpha.iter().any(|a| *a != 255) {
                    enc.set_trns(alpha);
                }
                enc.write_header()
                    .and_then(|mut wr| wr.write_image_data(&indexes))
                    .map_err(|e| encode_error("PNG", e))?;
                return Ok(Encoded {
                    bytes,
                    mime: out.mime(),
                    width: w,
                    height: h,
                });
            }
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

/// An image of at most 256 distinct RGBA colours as a palette PNG's parts: RGB palette, alpha
/// per entry, one index per pixel. `None` when it has more colours (then the PNG is truecolour:
/// a palette is used only when it is lossless).
fn png_palette(img: &RgbaImage) -> Option<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    let mut colours: Vec<[u8; 4]> = Vec::with_capacity(256);
    let mut index_of: std::collections::HashMap<u32, u8> =
        std::collections::HashMap::with_capacity(256);
    let mut indexes = Vec::with_capacity(img.width() as usize * img.height() as usize);
    let mut last: Option<([u8; 4], u8)> = None;
    for p in img.pixels() {
        let c = p.0;
        let i = match last {
            Some((lc, li)) if lc == c => li,
            _ => {
                let key = u32::from_le_bytes(c);
                let i = match index_of.get(&key) {
                    Some(&i) => i,
                    None if colours.len() < 256 => {
                        colours.push(c);
                        let i = (colours.len() - 1) as u8;
                        index_of.insert(key, i);
                        i
                    }
                    None => return None,
                };
                last = Some((c, i));
                i
            }
        };
        indexes.push(i);
    }
    let palette = colours.iter().flat_map(|c| [c[0], c[1], c[2]]).collect();
    let alpha = colours.iter().map(|c| c[3]).collect();
    Some((palette, alpha, indexes))
}

/// Encodes an animation (`frames` all of one size, each with its display time) as an animated
/// GIF or WebP that loops forever.
pub fn encode_animation(
    mut frames: Vec<(RgbaImage, u32)>,
    out: Output,
    quality: Option<u8>,
    background: Option<Rgba<u8>>,
    limits: &Limits,
) -> Result<Encoded, ImageError> {
    let (w, h) = frames
        .first()
        .map(|(f, _)| f.dimensions())
        .ok_or_else(|| encode_error("animation", "no frames"))?;
    if frames.iter().any(|(f, _)| f.dimensions() != (w, h)) {
        return Err(encode_error("animation", "frames differ in size"));
    }
    if let Some(bg) = background {
        for (f, _) in &mut frames {
            flatten(f, bg);
        }
    }
    let q = quality.unwrap_or(DEFAULT_QUALITY);
    let mut bytes = Vec::new();
    match out {
        Output::Gif => {
            use image::{Delay, Frame};
            let mut enc = image::codecs::gif::GifEncoder::new(&mut bytes);
            enc.set_repeat(image::codecs::gif::Repeat::Infinite)
                .map_err(|e| encode_error("GIF", e))?;
            enc.encode_frames(
                frames.into_iter().map(|(img, ms)| {
                    Frame::from_parts(img, 0, 0, Delay::from_numer_denom_ms(ms, 1))
                }),
            )
            .map_err(|e| encode_error("GIF", e))?;
        }
        Output::Webp => {
            side_limit((w, h), limits.webp_max_dimension, "WebP")?;
            let mut config = webp::WebPConfig::new()
                .map_err(|_| encode_error("WebP", "configuration failed"))?;
            config.lossless = i32::from(q >= 100);
            config.quality = if q >= 100 { 100.0 } else { q as f32 };
            let mut enc = webp::AnimEncoder::new(w, h, &config);
            enc.set_loop_count(0);
            let mut t = 0i32;
            for (img, ms) in &frames {
                enc.add_frame(webp::AnimFrame::from_rgba(img.as_raw(), w, h, t));
                t = t.saturating_add(i32::try_from(*ms).unwrap_or(i32::MAX));
            }
            let mem = enc
                .try_encode()
                .map_err(|e| encode_error("WebP", format!("{e:?}")))?;
            bytes.extend_from_slice(&mem);
        }
        other => return encode(frames.swap_remove(0).0, other, quality, None, None, limits),
    }
    Ok(Encoded {
        bytes,
        mime: out.mime(),
        width: w,
        height: h,
    })
}
