//! Colour and metadata policy.
//!
//! - **ICC profiles**: an embedded profile (JPEG APP2, PNG iCCP, WebP ICCP, AVIF `colr`) is applied on
//!   decode: pixels are converted to sRGB with `qcms` (perceptual intent), and outputs carry no
//!   profile, so every output is sRGB. A profile `qcms` cannot build an RGB transform from
//!   (grey or CMYK profiles, malformed data) leaves the pixels as decoded; that case is counted
//!   in [`ICC_UNUSABLE`] and logged at `debug`.
//! - **Metadata**: stripped by default. The one exception: JPEG output keeps the input's EXIF
//!   `Copyright` (tag 0x8298), in a minimal EXIF segment that also says orientation 1 (pixels
//!   are always written upright).

use image::RgbaImage;
use std::sync::atomic::{AtomicU64, Ordering};

/// Embedded profiles that could not be applied (see the module docs).
pub static ICC_UNUSABLE: AtomicU64 = AtomicU64::new(0);

/// Longest copyright notice carried over (bytes); longer ones are cut at a char boundary.
const COPYRIGHT_MAX: usize = 1024;

/// Converts `img` from the colour space `icc` describes to sRGB, in place. Returns whether a
/// conversion was applied.
pub fn to_srgb(img: &mut RgbaImage, icc: &[u8]) -> bool {
    let Some(src) = qcms::Profile::new_from_slice(icc, false) else {
        ICC_UNUSABLE.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            len = icc.len(),
            "embedded ICC profile not parsed; pixels left as decoded"
        );
        return false;
    };
    let mut dst = qcms::Profile::new_sRGB();
    dst.precache_output_transform();
    let Some(t) = qcms::Transform::new(&src, &dst, qcms::DataType::RGBA8, qcms::Intent::Perceptual)
    else {
        ICC_UNUSABLE.fetch_add(1, Ordering::Relaxed);
        tracing::debug!("embedded ICC profile has no RGB transform; pixels left as decoded");
        return false;
    };
    t.apply(img.as_mut());
    true
}

/// The EXIF `Copyright` of raw EXIF data (a TIFF structure, without the `Exif\0\0` prefix).
pub fn copyright(exif: &[u8]) -> Option<String> {
    let exif = exif::Reader::new().read_raw(exif.to_vec()).ok()?;
    let field = exif.get_field(exif::Tag::Copyright, exif::In::PRIMARY)?;
    let exif::Value::Ascii(parts) = &field.value else {
        return None;
    };
    let text: Vec<String> = parts
        .iter()
        .map(|p| {
            String::from_utf8_lossy(p)
                .trim_end_matches('\0')
                .trim()
                .to_string()
        })
        .filter(|p| !p.is_empty())
        .collect();
    let mut s = text.join(" ");
    if s.is_empty() {
        return None;
    }
    if s.len() > COPYRIGHT_MAX {
        let mut end = COPYRIGHT_MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    Some(s)
}

/// A minimal little-endian TIFF/EXIF structure: Orientation = 1 and, if given, Copyright.
pub fn exif_segment(copyright: Option<&str>) -> Vec<u8> {
    let text = copyright.map(|c| {
        let mut b: Vec<u8> = c.bytes().filter(|b| *b != 0).collect();
        b.push(0);
        b
    });
    let entries: u16 = if text.is_some() { 2 } else { 1 };
    let ifd_len = 2 + 12 * entries as u32 + 4;
    let data_offset = 8 + ifd_len;
    let mut t = Vec::new();
    t.extend_from_slice(b"II*\0");
    t.extend_from_slice(&8u32.to_le_bytes());
    t.extend_from_slice(&entries.to_le_bytes());
    // Orientation (0x0112), SHORT, count 1, value 1.
    t.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0, 1, 0, 0, 0]);
    if let Some(text) = &text {
        // Copyright (0x8298), ASCII, count, value inline when ≤ 4 bytes else an offset.
        t.extend_from_slice(&[0x98, 0x82, 2, 0]);
        t.extend_from_slice(&(text.len() as u32).to_le_bytes());
        if text.len() <= 4 {
            let mut v = text.clone();
            v.resize(4, 0);
            t.extend_from_slice(&v);
        } else {
            t.extend_from_slice(&data_offset.to_le_bytes());
        }
    }
    t.extend_from_slice(&0u32.to_le_bytes());
    if let Some(text) = text.filter(|t| t.len() > 4) {
        t.extend_from_slice(&text);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exif_segment_round_trips_the_copyright() {
        let seg = exif_segment(Some("© 2026 Example Photographer"));
        assert_eq!(
            copyright(&seg).as_deref(),
            Some("© 2026 Example Photographer")
        );
        let short = exif_segment(Some("ab"));
        assert_eq!(copyright(&short).as_deref(), Some("ab"));
        let none = exif_segment(None);
        assert_eq!(copyright(&none), None);
        let e = exif::Reader::new().read_raw(none).unwrap();
        let o = e
            .get_field(exif::Tag::Orientation, exif::In::PRIMARY)
            .unwrap();
        assert_eq!(o.value.get_uint(0), Some(1));
    }

    #[test]
    fn srgb_profile_is_identity_and_garbage_is_refused() {
        let mut img = RgbaImage::from_pixel(2, 2, image::Rgba([200, 100, 50, 255]));
        assert!(!to_srgb(&mut img, b"not a profile"));
        assert_eq!(img.get_pixel(0, 0).0, [200, 100, 50, 255]);
    }
}
