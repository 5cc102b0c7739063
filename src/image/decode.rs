//! Decoding: sniff the format from the bytes, check limits from the header, decode to RGBA8
//! with EXIF orientation applied.

use super::{avif, meta, Code, ImageError};
use crate::config::Limits;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbaImage};
use std::io::Cursor;

/// Input formats this build decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Png,
    Gif,
    Webp,
    Avif,
}

impl Format {
    pub fn mime(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::Gif => "image/gif",
            Format::Webp => "image/webp",
            Format::Avif => "image/avif",
        }
    }

    fn image_format(self) -> Option<ImageFormat> {
        match self {
            Format::Jpeg => Some(ImageFormat::Jpeg),
            Format::Png => Some(ImageFormat::Png),
            Format::Gif => Some(ImageFormat::Gif),
            Format::Webp => Some(ImageFormat::WebP),
            Format::Avif => None,
        }
    }
}

/// Identifies the format from magic bytes; file names and content types are never trusted.
pub fn sniff(data: &[u8]) -> Option<Format> {
    if data.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(Format::Jpeg)
    } else if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Format::Png)
    } else if data.starts_with(b"GIF87a") || data.starts_with(b"GIF89a") {
        Some(Format::Gif)
    } else if data.len() >= 12 && &data[..4] == b"RIFF" && &data[8..12] == b"WEBP" {
        Some(Format::Webp)
    } else if avif::is_avif(data) {
        Some(Format::Avif)
    } else {
        None
    }
}

/// What `/info` reports: format and dimensions after EXIF orientation, from the header only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    pub format: Format,
    pub width: u32,
    pub height: u32,
}

fn not_an_image(data: &[u8]) -> ImageError {
    if data.is_empty() {
        ImageError::new(Code::NotAnImage, "Input is empty, not an image")
    } else {
        ImageError::new(Code::NotAnImage, "Input is not an image")
    }
}

fn corrupt(format: Format, e: impl std::fmt::Display) -> ImageError {
    ImageError::new(
        Code::Corrupt,
        format!("could not decode {} input: {e}", format.mime()),
    )
}

fn map_image_error(format: Format, e: image::ImageError) -> ImageError {
    match e {
        image::ImageError::Limits(l) => ImageError::new(
            Code::ImageTooLarge,
            format!("image exceeds the decoding limits: {l}"),
        ),
        image::ImageError::Unsupported(u) => ImageError::new(
            Code::NotAnImage,
            format!("{} variant this build cannot decode: {u}", format.mime()),
        ),
        other => corrupt(format, other),
    }
}

fn reader<'a>(data: &'a [u8], format: Format, limits: &Limits) -> ImageReader<Cursor<&'a [u8]>> {
    let mut r = ImageReader::new(Cursor::new(data));
    if let Some(f) = format.image_format() {
        r.set_format(f);
    }
    // Dimensions are checked by `check_limits` (with a clearer message); this bounds memory.
    let mut l = image::Limits::default();
    // RGBA8 of the largest allowed image plus a decoder-side copy.
    l.max_alloc = Some(limits.max_pixels.saturating_mul(8).max(64 << 20));
    r.limits(l);
    r
}

/// Checks dimensions against the limits (before any pixel is decoded).
pub fn check_limits(width: u32, height: u32, limits: &Limits) -> Result<(), ImageError> {
    if width == 0 || height == 0 {
        return Err(ImageError::new(Code::Corrupt, "image has a zero dimension"));
    }
    if width > limits.max_dimension || height > limits.max_dimension {
        return Err(ImageError::new(
            Code::ImageTooLarge,
            format!(
                "image is {width}x{height}; the limit is {} px per side",
                limits.max_dimension
            ),
        ));
    }
    let pixels = width as u64 * height as u64;
    if pixels > limits.max_pixels {
        return Err(ImageError::new(
            Code::ImageTooLarge,
            format!(
                "image is {width}x{height} ({:.1} megapixels); the limit is {:.1}",
                pixels as f64 / 1e6,
                limits.max_pixels as f64 / 1e6
            ),
        ));
    }
    Ok(())
}

/// The canvas size a WebP file declares (`VP8 `, `VP8L` or `VP8X` first chunk), read from the
/// RIFF container directly: the WebP decoder reports 0×0 for a header without image data, and a
/// bomb must be judged by what it declares.
fn webp_declared_size(data: &[u8]) -> Option<(u32, u32)> {
    let fourcc = data.get(12..16)?;
    let p = data.get(20..)?;
    let le = |b: &[u8]| b.iter().rev().fold(0u32, |acc, x| (acc << 8) | *x as u32);
    match fourcc {
        b"VP8 " if p.get(3..6)? == [0x9d, 0x01, 0x2a] => {
            Some((le(p.get(6..8)?) & 0x3fff, le(p.get(8..10)?) & 0x3fff))
        }
        b"VP8L" if *p.first()? == 0x2f => {
            let bits = le(p.get(1..5)?);
            Some(((bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1))
        }
        b"VP8X" => Some((le(p.get(4..7)?) + 1, le(p.get(7..10)?) + 1)),
        _ => None,
    }
}

/// Reads format and oriented dimensions from the header, without decoding pixels.
pub fn probe(data: &[u8]) -> Result<Info, ImageError> {
    let format = sniff(data).ok_or_else(|| not_an_image(data))?;
    if format == Format::Avif {
        let (width, height) = avif::dimensions(data).map_err(|e| corrupt(format, e))?;
        return Ok(Info {
            format,
            width,
            height,
        });
    }
    let mut r = ImageReader::new(Cursor::new(data));
    if let Some(f) = format.image_format() {
        r.set_format(f);
    }
    r.no_limits();
    let mut dec = r.into_decoder().map_err(|e| map_image_error(format, e))?;
    let (w, h) = match dec.dimensions() {
        (0, _) | (_, 0) if format == Format::Webp => webp_declared_size(data).unwrap_or((0, 0)),
        d => d,
    };
    let swap = dec.orientation().map(swaps_axes).unwrap_or(false);
    let (width, height) = if swap { (h, w) } else { (w, h) };
    Ok(Info {
        format,
        width,
        height,
    })
}

fn swaps_axes(o: image::metadata::Orientation) -> bool {
    use image::metadata::Orientation::*;
    matches!(o, Rotate90 | Rotate270 | Rotate90FlipH | Rotate270FlipH)
}

/// Decodes to straight-alpha RGBA8, orientation applied, limits checked from the header first.
pub fn decode(data: &[u8], limits: &Limits) -> Result<(Format, RgbaImage), ImageError> {
    let format = sniff(data).ok_or_else(|| not_an_image(data))?;
    if format == Format::Webp {
        if let Some((w, h)) = webp_declared_size(data) {
            check_limits(w, h, limits)?;
        }
    }
    if format == Format::Avif {
        let (w, h) = avif::dimensions(data).map_err(|e| corrupt(format, e))?;
        check_limits(w, h, limits)?;
        let img = avif::decode_rgba(data).map_err(|e| corrupt(format, e))?;
        return Ok((format, img));
    }
    let mut dec = reader(data, format, limits)
        .into_decoder()
        .map_err(|e| map_image_error(format, e))?;
    let (w, h) = dec.dimensions();
    check_limits(w, h, limits)?;
    let orientation = dec.orientation().ok();
    let icc = dec.icc_profile().ok().flatten();
    let mut img = DynamicImage::from_decoder(dec).map_err(|e| map_image_error(format, e))?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    let mut img = img.into_rgba8();
    if let Some(icc) = icc {
        meta::to_srgb(&mut img, &icc);
    }
    Ok((format, img))
}

/// JPEG shrink-on-load: decodes a JPEG at 1/`divisor` (2, 4 or 8) of its size in the DCT
/// domain (`jpeg-decoder`'s scaled IDCT), orientation and ICC profile applied like [`decode`].
/// `None` when the data is no JPEG, or this decoder cannot take it (CMYK, 16-bit, arithmetic
/// coding, a corrupt stream): the caller then decodes at full size, which reports any error.
pub fn decode_jpeg_scaled(
    data: &[u8],
    limits: &Limits,
    divisor: u32,
) -> Result<Option<RgbaImage>, ImageError> {
    if divisor < 2 || sniff(data) != Some(Format::Jpeg) {
        return Ok(None);
    }
    let mut dec = reader(data, Format::Jpeg, limits)
        .into_decoder()
        .map_err(|e| map_image_error(Format::Jpeg, e))?;
    let (w, h) = dec.dimensions();
    check_limits(w, h, limits)?;
    let orientation = dec.orientation().ok();
    drop(dec);
    let mut j = jpeg_decoder::Decoder::new(Cursor::new(data));
    let (rw, rh) = (w.div_ceil(divisor), h.div_ceil(divisor));
    if j.scale(rw as u16, rh as u16).is_err() {
        return Ok(None);
    }
    let Ok(pixels) = j.decode() else {
        return Ok(None);
    };
    let Some(info) = j.info() else {
        return Ok(None);
    };
    let (dw, dh) = (info.width as u32, info.height as u32);
    let rgba: Vec<u8> = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => pixels
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        jpeg_decoder::PixelFormat::L8 => pixels.iter().flat_map(|&l| [l, l, l, 255]).collect(),
        _ => return Ok(None),
    };
    let Some(img) = RgbaImage::from_raw(dw, dh, rgba) else {
        return Ok(None);
    };
    let mut img = DynamicImage::ImageRgba8(img);
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    let mut img = img.into_rgba8();
    if let Some(icc) = j.icc_profile() {
        meta::to_srgb(&mut img, &icc);
    }
    Ok(Some(img))
}

/// The EXIF `Copyright` of an encoded image (JPEG, PNG, WebP), read from its header.
pub fn copyright(data: &[u8]) -> Option<String> {
    let format = sniff(data)?.image_format()?;
    let mut r = ImageReader::new(Cursor::new(data));
    r.set_format(format);
    r.no_limits();
    let exif = r.into_decoder().ok()?.exif_metadata().ok()??;
    meta::copyright(&exif)
}

/// One frame of an animation: the whole canvas, composed, and how long it shows.
#[derive(Debug)]
pub struct Frame {
    pub image: RgbaImage,
    pub delay_ms: u32,
}

/// Decodes every frame of an animated GIF or WebP, checking the frame count and the total
/// frame area against the limits as frames arrive (so a long animation is refused before it is
/// all in memory). `None` for other formats and for single-frame files.
pub fn decode_animation(data: &[u8], limits: &Limits) -> Result<Option<Vec<Frame>>, ImageError> {
    use image::AnimationDecoder;
    let format = match sniff(data) {
        Some(f @ (Format::Gif | Format::Webp)) => f,
        _ => return Ok(None),
    };
    let err = |e| map_image_error(format, e);
    let frames = match format {
        Format::Gif => {
            let dec = image::codecs::gif::GifDecoder::new(Cursor::new(data)).map_err(err)?;
            let (w, h) = image::ImageDecoder::dimensions(&dec);
            check_limits(w, h, limits)?;
            dec.into_frames()
        }
        _ => {
            if let Some((w, h)) = webp_declared_size(data) {
                check_limits(w, h, limits)?;
            }
            let dec = image::codecs::webp::WebPDecoder::new(Cursor::new(data)).map_err(err)?;
            if !dec.has_animation() {
                return Ok(None);
            }
            let (w, h) = image::ImageDecoder::dimensions(&dec);
            check_limits(w, h, limits)?;
            dec.into_frames()
        }
    };
    let mut out: Vec<Frame> = Vec::new();
    let mut area = 0u64;
    for frame in frames {
        let frame = frame.map_err(err)?;
        let (num, den) = frame.delay().numer_denom_ms();
        let image = frame.into_buffer();
        area += image.width() as u64 * image.height() as u64;
        if out.len() as u32 >= limits.max_frames {
            return Err(ImageError::new(
                Code::ImageTooLarge,
                format!(
                    "animation has more than {} frames (the limit)",
                    limits.max_frames
                ),
            ));
        }
        if area > limits.max_animation_pixels {
            return Err(ImageError::new(
                Code::ImageTooLarge,
                format!(
                    "animation frames exceed {:.1} megapixels in total (the limit)",
                    limits.max_animation_pixels as f64 / 1e6
                ),
            ));
        }
        out.push(Frame {
            image,
            delay_ms: num.checked_div(den).unwrap_or(0),
        });
    }
    Ok((out.len() > 1).then_some(out))
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
    fn sniffs_magic_not_names() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\nxxxx"), Some(Format::Png));
        assert_eq!(sniff(b"\xff\xd8\xff\xe0"), Some(Format::Jpeg));
        assert_eq!(sniff(b"<!DOCTYPE html>"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn header_limits_reject_before_decoding() {
        // IHDR declares 50000x50000 RGBA (10 GB decoded) with a tiny IDAT.
        let png = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/images/bomb_png_header_50000x50000_rgba.png"
        ))
        .unwrap();
        let e = decode(&png, &limits()).unwrap_err();
        assert_eq!(e.code, Code::ImageTooLarge, "{e}");
        assert!(e.message.contains("50000x50000"), "{e}");
        // /info still reports it, from the header alone.
        let info = probe(&png).unwrap();
        assert_eq!((info.width, info.height), (50_000, 50_000));
    }

    #[test]
    fn webp_bomb_is_judged_by_its_declared_size() {
        // VP8L header declaring 16384x16384 with no image data.
        let mut webp = b"RIFF\x19\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00\x2f".to_vec();
        webp.extend_from_slice(&[0xff, 0xff, 0xff, 0x1f]);
        webp.extend_from_slice(&[0; 9]);
        assert_eq!(webp_declared_size(&webp), Some((16384, 16384)));
        let e = decode(&webp, &limits()).unwrap_err();
        assert_eq!(e.code, Code::ImageTooLarge, "{e}");
        let info = probe(&webp).unwrap();
        assert_eq!((info.width, info.height), (16384, 16384));
        // Lossy and extended headers.
        let mut vp8 = b"RIFF\0\0\0\0WEBPVP8 \0\0\0\0".to_vec();
        vp8.extend_from_slice(&[0, 0, 0, 0x9d, 0x01, 0x2a, 0x64, 0x00, 0x32, 0x00]);
        assert_eq!(webp_declared_size(&vp8), Some((100, 50)));
        let mut vp8x = b"RIFF\0\0\0\0WEBPVP8X\0\0\0\0".to_vec();
        vp8x.extend_from_slice(&[0x10, 0, 0, 0, 0xc7, 0, 0, 0x63, 0, 0]);
        assert_eq!(webp_declared_size(&vp8x), Some((200, 100)));
        assert_eq!(webp_declared_size(b"RIFF"), None);
    }
}
