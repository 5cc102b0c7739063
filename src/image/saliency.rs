//! `gravity=auto` and `gravity=entropy`: where a `cover`/`crop` window goes when the caller does
//! not say. Both work on a thumbnail of at most [`ANALYSIS_SIDE`] px, so they cost well under a
//! millisecond per megapixel of input and never allocate more than a small map.
//!
//! - `auto` — saliency by the *maximum symmetric surround* method (Achanta & Süsstrunk, ICIP
//!   2010), the method Cloudflare names for `gravity=auto`: each pixel's saliency is the squared
//!   CIELAB distance between the (slightly blurred) pixel and the mean of the largest window
//!   centred on it that fits in the image. The crop window with the largest total saliency wins
//!   (summed with an integral image over every position).
//! - `entropy` — like libvips' `interesting=entropy`: repeatedly cut the edge slice whose
//!   luminance histogram has the lower Shannon entropy until the window fits.

use image::{imageops, RgbaImage};

/// Longest side of the analysis thumbnail (pixels).
pub const ANALYSIS_SIDE: u32 = 128;

/// Which detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Auto,
    Entropy,
}

/// Returns the top-left corner (source pixels) of the `cw`×`ch` window to keep in `img`.
pub fn place(img: &RgbaImage, cw: f64, ch: f64, focus: Focus) -> (f64, f64) {
    let (w, h) = img.dimensions();
    let (sw, sh) = (w as f64, h as f64);
    if cw >= sw && ch >= sh {
        return (0.0, 0.0);
    }
    let scale = (ANALYSIS_SIDE as f64 / sw.max(sh)).min(1.0);
    let (tw, th) = (
        ((sw * scale).round() as u32).max(1),
        ((sh * scale).round() as u32).max(1),
    );
    let thumb = if (tw, th) == (w, h) {
        img.clone()
    } else {
        imageops::thumbnail(img, tw, th)
    };
    // Window size on the thumbnail, at least one pixel.
    let (kx, ky) = (tw as f64 / sw, th as f64 / sh);
    let ww = ((cw * kx).round() as u32).clamp(1, tw);
    let wh = ((ch * ky).round() as u32).clamp(1, th);
    let (x, y) = match focus {
        Focus::Auto => best_window(&saliency(&thumb), tw, th, ww, wh),
        Focus::Entropy => entropy_window(&luma(&thumb), tw, th, ww, wh),
    };
    (
        (x as f64 / kx).clamp(0.0, (sw - cw).max(0.0)),
        (y as f64 / ky).clamp(0.0, (sh - ch).max(0.0)),
    )
}

fn srgb_to_linear(v: u8) -> f32 {
    let c = v as f32 / 255.0;
    if c <= 0.04045 {
        c / 12.92
    } else {
        ((c + 0.055) / 1.055).powf(2.4)
    }
}

/// CIELAB (D65) of each pixel, alpha-weighted towards white so transparent areas are plain.
fn lab(img: &RgbaImage) -> Vec<[f32; 3]> {
    let f = |t: f32| {
        if t > 0.008856 {
            t.cbrt()
        } else {
            7.787 * t + 16.0 / 116.0
        }
    };
    img.pixels()
        .map(|p| {
            let a = p[3] as f32 / 255.0;
            let lin = |c: u8| srgb_to_linear(c) * a + (1.0 - a);
            let (r, g, b) = (lin(p[0]), lin(p[1]), lin(p[2]));
            let x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047;
            let y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
            let z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883;
            let (fx, fy, fz) = (f(x), f(y), f(z));
            [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
        })
        .collect()
}

/// Summed-area table with a zero first row and column: `(w+1)×(h+1)`.
fn integral(values: impl Fn(usize) -> f64, w: usize, h: usize) -> Vec<f64> {
    let mut s = vec![0.0; (w + 1) * (h + 1)];
    for y in 0..h {
        let mut row = 0.0;
        for x in 0..w {
            row += values(y * w + x);
            s[(y + 1) * (w + 1) + x + 1] = s[y * (w + 1) + x + 1] + row;
        }
    }
    s
}

fn rect_sum(s: &[f64], w: usize, x0: usize, y0: usize, x1: usize, y1: usize) -> f64 {
    let at = |x: usize, y: usize| s[y * (w + 1) + x];
    at(x1, y1) - at(x0, y1) - at(x1, y0) + at(x0, y0)
}

/// Maximum-symmetric-surround saliency, one value per thumbnail pixel.
fn saliency(img: &RgbaImage) -> Vec<f64> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let blurred = if w >= 3 && h >= 3 {
        imageops::blur(img, 1.0)
    } else {
        img.clone()
    };
    let lab = lab(&blurred);
    let sums: Vec<Vec<f64>> = (0..3)
        .map(|c| integral(|i| lab[i][c] as f64, w, h))
        .collect();
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        let oy = y.min(h - 1 - y);
        for x in 0..w {
            let ox = x.min(w - 1 - x);
            let (x0, y0, x1, y1) = (x - ox, y - oy, x + ox + 1, y + oy + 1);
            let n = ((x1 - x0) * (y1 - y0)) as f64;
            let d: f64 = (0..3)
                .map(|c| {
                    let mean = rect_sum(&sums[c], w, x0, y0, x1, y1) / n;
                    let v = mean - lab[y * w + x][c] as f64;
                    v * v
                })
                .sum();
            out.push(d);
        }
    }
    out
}

/// The `ww`×`wh` window with the largest sum of `map`; ties go to the most central one.
fn best_window(map: &[f64], w: u32, h: u32, ww: u32, wh: u32) -> (u32, u32) {
    let (wu, hu) = (w as usize, h as usize);
    let s = integral(|i| map[i], wu, hu);
    let (cx, cy) = ((w - ww) as f64 / 2.0, (h - wh) as f64 / 2.0);
    let mut best = (f64::MIN, f64::MAX, 0, 0);
    for y in 0..=(h - wh) {
        for x in 0..=(w - ww) {
            let (xu, yu) = (x as usize, y as usize);
            let v = rect_sum(&s, wu, xu, yu, xu + ww as usize, yu + wh as usize);
            let dist = (x as f64 - cx).abs() + (y as f64 - cy).abs();
            // Saliency sums are compared with a relative epsilon so flat images stay centred.
            let eps = best.0.abs() * 1e-9;
            if v > best.0 + eps || ((v - best.0).abs() <= eps && dist < best.1) {
                best = (v, dist, x, y);
            }
        }
    }
    (best.2, best.3)
}

fn luma(img: &RgbaImage) -> Vec<u8> {
    img.pixels()
        .map(|p| {
            let y = 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32;
            let a = p[3] as f32 / 255.0;
            (y * a + 255.0 * (1.0 - a)).round() as u8
        })
        .collect()
}

/// Shannon entropy (bits) of the luminance histogram of a rectangle.
fn entropy(l: &[u8], w: usize, x0: usize, y0: usize, x1: usize, y1: usize) -> f64 {
    let mut hist = [0u32; 256];
    for y in y0..y1 {
        for &v in &l[y * w + x0..y * w + x1] {
            hist[v as usize] += 1;
        }
    }
    let n = ((x1 - x0) * (y1 - y0)) as f64;
    hist.iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// libvips-style entropy crop: cut the less interesting edge slice until the window fits.
fn entropy_window(l: &[u8], w: u32, h: u32, ww: u32, wh: u32) -> (u32, u32) {
    let wu = w as usize;
    let (mut x0, mut x1, mut y0, mut y1) = (0usize, w as usize, 0usize, h as usize);
    while x1 - x0 > ww as usize {
        let excess = x1 - x0 - ww as usize;
        let slice = excess.min(((x1 - x0) / 16).max(1));
        let left = entropy(l, wu, x0, y0, x0 + slice, y1);
        let right = entropy(l, wu, x1 - slice, y0, x1, y1);
        if left < right {
            x0 += slice;
        } else {
            x1 -= slice;
        }
    }
    while y1 - y0 > wh as usize {
        let excess = y1 - y0 - wh as usize;
        let slice = excess.min(((y1 - y0) / 16).max(1));
        let top = entropy(l, wu, x0, y0, x1, y0 + slice);
        let bottom = entropy(l, wu, x0, y1 - slice, x1, y1);
        if top < bottom {
            y0 += slice;
        } else {
            y1 -= slice;
        }
    }
    (x0 as u32, y0 as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgba;

    /// Flat grey 300x100 with a busy red/blue checkerboard in the square at x 220..280.
    fn subject_right() -> RgbaImage {
        RgbaImage::from_fn(300, 100, |x, y| {
            if (220..280).contains(&x) && (20..80).contains(&y) {
                if (x / 4 + y / 4) % 2 == 0 {
                    Rgba([220, 30, 30, 255])
                } else {
                    Rgba([30, 30, 220, 255])
                }
            } else {
                Rgba([128, 128, 128, 255])
            }
        })
    }

    #[test]
    fn both_detectors_find_the_subject() {
        let img = subject_right();
        for focus in [Focus::Auto, Focus::Entropy] {
            let (x, y) = place(&img, 100.0, 100.0, focus);
            assert_eq!(y, 0.0);
            assert!(
                x <= 220.0 && x + 100.0 >= 280.0,
                "{focus:?}: window at {x} misses the subject at 220..280"
            );
        }
    }

    #[test]
    fn flat_image_stays_centred_and_sizes_are_safe() {
        let flat = RgbaImage::from_pixel(200, 50, Rgba([9, 9, 9, 255]));
        let (x, _) = place(&flat, 50.0, 50.0, Focus::Auto);
        assert!((x - 75.0).abs() <= 2.0, "{x}");
        let tiny = RgbaImage::from_pixel(1, 1, Rgba([0, 0, 0, 0]));
        assert_eq!(place(&tiny, 1.0, 1.0, Focus::Auto), (0.0, 0.0));
        let line = RgbaImage::from_pixel(1000, 1, Rgba([0, 0, 0, 255]));
        let (x, y) = place(&line, 3.0, 1.0, Focus::Entropy);
        assert!((0.0..=997.0).contains(&x) && y == 0.0);
        let (x, _) = place(&line, 3.0, 1.0, Focus::Auto);
        assert!((0.0..=997.0).contains(&x));
    }
}
