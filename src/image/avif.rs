//! AVIF still-image decoding in pure Rust (no `nasm`, no system libdav1d, no cmake).
//!
//! * Container: [`avif_parse`] (1.x) extracts the AV1 payloads of the primary item and of
//!   its alpha auxiliary item. avif-parse 1.x does not expose item properties, so a small,
//!   bounds-checked ISOBMFF walker in this file reads the primary item's `ispe`, `irot`,
//!   `imir`, `clap` and `colr` (nclx) properties from the `meta` box.
//! * Bitstream: `rav1d` (the Rust port of dav1d, built without its assembly) through its
//!   dav1d-compatible C API, with 2 worker threads / 2 frame contexts per decode: rav1d 1.1.0
//!   aborts the process on any decode error when it has a single frame context (see
//!   `decode_av1`).
//! * Colour: YUV → RGB with the matrix coefficients from the `colr` nclx box when present
//!   (otherwise from the AV1 sequence header), BT.601 when unspecified; full or limited range
//!   as signalled in the AV1 sequence header; 8/10/12-bit input, 8-bit RGBA output; chroma is
//!   upsampled bilinearly (centre-sited, like libavif's default). An ICC profile (`colr`
//!   prof/rICC) is applied (pixels converted to sRGB, see `meta`); nclx transfer functions and
//!   colour primaries are *not* converted: the pixels are returned as coded (for the usual
//!   sRGB/BT.709 content that is what a browser shows).
//! * Transforms: `clap` (clean aperture crop), then `irot`, then `imir`, the order MIAF
//!   mandates.
//!
//! Not supported (clean `Err`): grid (tiled collage) primary items, animated-only files
//! (an `avis` file whose `meta` box has a still primary item decodes that item), and
//! images over [`MAX_SIDE`] pixels per side or [`MAX_PIXELS`] pixels in total, which are
//! refused before any pixel is decoded.

use std::ffi::c_void;
use std::fmt;
use std::mem::MaybeUninit;
use std::ptr::{self, NonNull};

use image::RgbaImage;
use rav1d::include::dav1d::data::Dav1dData;
use rav1d::include::dav1d::dav1d::{Dav1dContext, Dav1dLogger, Dav1dSettings};
use rav1d::include::dav1d::headers::{
    Dav1dSequenceHeader, DAV1D_PIXEL_LAYOUT_I400, DAV1D_PIXEL_LAYOUT_I420, DAV1D_PIXEL_LAYOUT_I422,
    DAV1D_PIXEL_LAYOUT_I444,
};
use rav1d::include::dav1d::picture::Dav1dPicture;
use rav1d::src::lib::{
    dav1d_close, dav1d_data_unref, dav1d_data_wrap, dav1d_default_settings, dav1d_get_picture,
    dav1d_open, dav1d_parse_sequence_header, dav1d_picture_unref, dav1d_send_data,
};
use rav1d::src::send_sync_non_null::SendSyncNonNull;
use rav1d::Dav1dResult;

/// Largest accepted width or height, in pixels.
pub const MAX_SIDE: u32 = 16_384;
/// Largest accepted pixel count (268 megapixels, i.e. 16384 × 16384).
pub const MAX_PIXELS: u64 = 16_384 * 16_384;

/// Any failure to read or decode an AVIF file (malformed, truncated, unsupported, too large).
#[derive(Debug)]
pub struct AvifError(pub String);

impl fmt::Display for AvifError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AVIF: {}", self.0)
    }
}

impl std::error::Error for AvifError {}

fn err<T>(msg: impl Into<String>) -> Result<T, AvifError> {
    Err(AvifError(msg.into()))
}

/// Sniffs the `ftyp` box: true when the major or a compatible brand is `avif` or `avis`, or
/// `mif1`/`msf1` (generic HEIF) without any HEVC/JPEG brand (which would make it HEIC).
pub fn is_avif(data: &[u8]) -> bool {
    let Some(brands) = ftyp_brands(data) else {
        return false;
    };
    let has = |b: &[u8; 4]| brands.iter().any(|x| x == b);
    if has(b"avif") || has(b"avis") {
        return true;
    }
    const OTHER_CODECS: [&[u8; 4]; 9] = [
        b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"jpeg",
    ];
    (has(b"mif1") || has(b"msf1")) && !OTHER_CODECS.iter().any(|b| has(b))
}

/// Width and height from the container (`ispe`) with `clap` and `irot` applied, without
/// decoding pixels. Falls back to the AV1 sequence header's maximum frame size when the
/// primary item has no `ispe`. Does not enforce [`MAX_SIDE`]/[`MAX_PIXELS`].
pub fn dimensions(data: &[u8]) -> Result<(u32, u32), AvifError> {
    let info = parse_container(data, false)?;
    let (w, h) = match info.props.ispe {
        Some(wh) => wh,
        None => {
            let avif = read_items(data)?;
            let seq = parse_sequence_header(&avif.primary_item)?;
            (
                u32::try_from(seq.max_width).unwrap_or(0),
                u32::try_from(seq.max_height).unwrap_or(0),
            )
        }
    };
    if w == 0 || h == 0 {
        return err("zero image size");
    }
    let (w, h) = match info.props.clap.and_then(|c| c.rect(w, h)) {
        Some((_, _, cw, ch)) => (cw, ch),
        None => (w, h),
    };
    Ok(if info.props.irot % 2 == 1 {
        (h, w)
    } else {
        (w, h)
    })
}

/// Decodes the primary image (8/10/12-bit; 4:2:0, 4:2:2, 4:4:4 or monochrome; with the
/// alpha auxiliary image when present, un-premultiplied if flagged `prem`) to 8-bit RGBA,
/// with `clap`, `irot` and `imir` applied.
pub fn decode_rgba(data: &[u8]) -> Result<RgbaImage, AvifError> {
    // Walks every top-level box, so a file cut short fails here, before any decoding.
    let info = parse_container(data, true)?;
    if let Some(t) = info.primary_type {
        if &t == b"grid" {
            return err("grid (tiled) AVIF images are not supported");
        }
        if &t != b"av01" {
            return err(format!("primary item type '{}' is not av01", fourcc(&t)));
        }
    }
    if let Some((w, h)) = info.props.ispe {
        check_size(w as u64, h as u64)?;
    }
    let avif = read_items(data)?;

    // Size checks from the AV1 sequence headers, before any frame is decoded.
    let seq = parse_sequence_header(&avif.primary_item)?;
    check_size(seq.max_width as u64, seq.max_height as u64)?;
    if let Some(alpha) = avif.alpha_item.as_deref() {
        let aseq = parse_sequence_header(alpha)?;
        check_size(aseq.max_width as u64, aseq.max_height as u64)?;
    }

    let nclx_matrix = info.props.nclx_matrix;
    let mut img = decode_av1(&avif.primary_item, |frame| {
        if let Some((w, h)) = info.props.ispe {
            if (w as usize, h as usize) != (frame.width, frame.height) {
                return err(format!(
                    "ispe {w}x{h} does not match the AV1 frame size {}x{}",
                    frame.width, frame.height
                ));
            }
        }
        let matrix = match nclx_matrix {
            Some(mc) if mc != 2 => mc,
            _ => frame.matrix,
        };
        frame_to_rgba(frame, matrix)
    })?;

    if let Some(alpha) = avif.alpha_item.as_deref() {
        decode_av1(alpha, |frame| apply_alpha(frame, &mut img))?;
        if avif.premultiplied_alpha {
            unpremultiply(&mut img);
        }
    }

    let props = &info.props;
    if let Some((x, y, w, h)) = props.clap.and_then(|c| c.rect(img.width(), img.height())) {
        if (x, y, w, h) != (0, 0, img.width(), img.height()) {
            img = image::imageops::crop_imm(&img, x, y, w, h).to_image();
        }
    }
    // irot: anti-clockwise rotation by 90° × angle.
    img = match props.irot {
        1 => image::imageops::rotate270(&img),
        2 => image::imageops::rotate180(&img),
        3 => image::imageops::rotate90(&img),
        _ => img,
    };
    // imir (ISO/IEC 23008-12:2022): axis 0 exchanges top and bottom, axis 1 left and right.
    img = match props.imir {
        Some(0) => image::imageops::flip_vertical(&img),
        Some(_) => image::imageops::flip_horizontal(&img),
        None => img,
    };
    // An ICC profile converts the pixels to sRGB, as for every other input format.
    if let Some(icc) = &props.icc {
        super::meta::to_srgb(&mut img, icc);
    }
    Ok(img)
}

fn check_size(w: u64, h: u64) -> Result<(), AvifError> {
    if w == 0 || h == 0 {
        return err("zero image size");
    }
    if w > MAX_SIDE as u64 || h > MAX_SIDE as u64 || w * h > MAX_PIXELS {
        return err(format!(
            "image {w}x{h} exceeds the limit of {MAX_SIDE} px per side / {MAX_PIXELS} pixels"
        ));
    }
    Ok(())
}

fn fourcc(t: &[u8; 4]) -> String {
    t.iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Container (ISOBMFF / HEIF) walking
// ---------------------------------------------------------------------------------------

/// Iterates over the boxes in `data`; yields `Err` (and then stops) on a header that is
/// cut short or a box whose size runs past the end of `data`.
struct Boxes<'a> {
    data: &'a [u8],
}

impl<'a> Iterator for Boxes<'a> {
    type Item = Result<([u8; 4], &'a [u8]), AvifError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.data.is_empty() {
            return None;
        }
        let d = std::mem::take(&mut self.data);
        let fail = |m: &str| Some(Err(AvifError(m.to_string())));
        if d.len() < 8 {
            return fail("truncated box header");
        }
        let size32 = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
        let typ = [d[4], d[5], d[6], d[7]];
        let (mut header, size) = match size32 {
            0 => (8usize, d.len() as u64),
            1 => {
                if d.len() < 16 {
                    return fail("truncated box header");
                }
                let mut b = [0u8; 8];
                b.copy_from_slice(&d[8..16]);
                (16, u64::from_be_bytes(b))
            }
            n => (8, n as u64),
        };
        if &typ == b"uuid" {
            header += 16;
        }
        if size < header as u64 || size > d.len() as u64 {
            return fail(&format!(
                "'{}' box size {size} does not fit the {} bytes available (truncated file?)",
                fourcc(&typ),
                d.len()
            ));
        }
        let size = size as usize;
        self.data = &d[size..];
        Some(Ok((typ, &d[header..size])))
    }
}

fn boxes(data: &[u8]) -> Boxes<'_> {
    Boxes { data }
}

/// Big-endian field reader over a box payload.
struct Fields<'a> {
    d: &'a [u8],
}

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], AvifError> {
        if self.d.len() < n {
            return err("truncated box");
        }
        let (a, b) = self.d.split_at(n);
        self.d = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, AvifError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, AvifError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, AvifError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn fourcc(&mut self) -> Result<[u8; 4], AvifError> {
        let b = self.take(4)?;
        Ok([b[0], b[1], b[2], b[3]])
    }
    /// FullBox header: (version, flags).
    fn full(&mut self) -> Result<(u8, u32), AvifError> {
        let v = self.u32()?;
        Ok(((v >> 24) as u8, v & 0x00ff_ffff))
    }
}

/// `clap` property: rationals as (numerator, denominator).
#[derive(Clone, Copy, Debug)]
struct Clap {
    width: (u32, u32),
    height: (u32, u32),
    horiz_off: (i32, u32),
    vert_off: (i32, u32),
}

impl Clap {
    /// The crop rectangle (x, y, w, h) for a `w`×`h` image, or `None` when the clean
    /// aperture is malformed or does not fit (then the property is ignored). A centre that
    /// falls between pixels is rounded down to the pixel grid.
    fn rect(&self, w: u32, h: u32) -> Option<(u32, u32, u32, u32)> {
        fn axis(size: u32, extent: (u32, u32), off: (i32, u32)) -> Option<(u32, u32)> {
            let (en, ed) = extent;
            let (on, od) = off;
            if ed == 0 || od == 0 || en % ed != 0 {
                return None;
            }
            let len = (en / ed) as i64;
            if len <= 0 || len > size as i64 {
                return None;
            }
            // start = off + (size - len) / 2 = (2·on + (size - len)·od) / (2·od)
            let num = 2 * on as i64 + (size as i64 - len) * od as i64;
            let start = num.div_euclid(2 * od as i64);
            if start < 0 || start + len > size as i64 {
                return None;
            }
            Some((start as u32, len as u32))
        }
        let (x, cw) = axis(w, self.width, self.horiz_off)?;
        let (y, ch) = axis(h, self.height, self.vert_off)?;
        Some((x, y, cw, ch))
    }
}

#[derive(Default, Debug)]
struct PrimaryProps {
    ispe: Option<(u32, u32)>,
    /// Anti-clockwise quarter turns (0..=3).
    irot: u8,
    /// Mirror axis (0 or 1) when an `imir` property is present.
    imir: Option<u8>,
    clap: Option<Clap>,
    /// Matrix coefficients of the first `colr` box of type nclx.
    nclx_matrix: Option<u32>,
    /// The ICC profile of the first `colr` box of type `prof` or `rICC`.
    icc: Option<Vec<u8>>,
}

#[derive(Debug)]
struct ContainerInfo {
    primary_type: Option<[u8; 4]>,
    props: PrimaryProps,
}

fn ftyp_brands(data: &[u8]) -> Option<Vec<[u8; 4]>> {
    let (typ, payload) = boxes(data).next()?.ok()?;
    if &typ != b"ftyp" || payload.len() < 8 {
        return None;
    }
    let mut brands = vec![[payload[0], payload[1], payload[2], payload[3]]];
    brands.extend(
        payload[8..]
            .chunks_exact(4)
            .map(|c| [c[0], c[1], c[2], c[3]]),
    );
    Some(brands)
}

/// Reads the primary item's type and properties from the `meta` box. With `whole_file`,
/// every top-level box is checked to fit in `data` (so a truncated file is an error);
/// otherwise the walk stops at `meta`.
fn parse_container(data: &[u8], whole_file: bool) -> Result<ContainerInfo, AvifError> {
    if !is_avif(data) {
        return err("not an AVIF file (no avif/avis/mif1 brand in ftyp)");
    }
    let mut meta = None;
    for b in boxes(data) {
        let (typ, payload) = b?;
        if &typ == b"meta" && meta.is_none() {
            meta = Some(payload);
            if !whole_file {
                break;
            }
        }
    }
    let Some(meta) = meta else {
        return err("no meta box (image sequences without a still image are not supported)");
    };
    parse_meta(meta)
}

fn parse_meta(meta: &[u8]) -> Result<ContainerInfo, AvifError> {
    let mut f = Fields { d: meta };
    f.full()?;
    let mut primary = None;
    let mut item_types: Vec<(u32, [u8; 4])> = Vec::new();
    let mut ipco: Vec<([u8; 4], &[u8])> = Vec::new();
    let mut ipma: Vec<(u32, u16)> = Vec::new(); // (item id, 1-based property index)
    for b in boxes(f.d) {
        let (typ, payload) = b?;
        let mut p = Fields { d: payload };
        match &typ {
            b"pitm" => {
                let (v, _) = p.full()?;
                primary = Some(if v == 0 { p.u16()? as u32 } else { p.u32()? });
            }
            b"iinf" => {
                let (v, _) = p.full()?;
                if v == 0 {
                    p.u16()?;
                } else {
                    p.u32()?;
                }
                for e in boxes(p.d) {
                    let (etyp, epayload) = e?;
                    if &etyp != b"infe" {
                        continue;
                    }
                    let mut e = Fields { d: epayload };
                    let (ev, _) = e.full()?;
                    if ev < 2 {
                        continue;
                    }
                    let id = if ev == 2 { e.u16()? as u32 } else { e.u32()? };
                    e.u16()?; // item_protection_index
                    item_types.push((id, e.fourcc()?));
                }
            }
            b"iprp" => {
                for c in boxes(payload) {
                    let (ctyp, cpayload) = c?;
                    match &ctyp {
                        b"ipco" => {
                            for prop in boxes(cpayload) {
                                ipco.push(prop?);
                            }
                        }
                        b"ipma" => parse_ipma(cpayload, &mut ipma)?,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let Some(primary) = primary else {
        return err("no pitm (primary item) box");
    };
    let primary_type = item_types
        .iter()
        .find(|(id, _)| *id == primary)
        .map(|(_, t)| *t);

    let mut props = PrimaryProps::default();
    for &(_, index) in ipma.iter().filter(|(id, _)| *id == primary) {
        let Some(&(typ, payload)) = (index as usize).checked_sub(1).and_then(|i| ipco.get(i))
        else {
            continue; // index 0 means "no property"; out of range ones are ignored
        };
        let mut p = Fields { d: payload };
        match &typ {
            b"ispe" if props.ispe.is_none() => {
                p.full()?;
                props.ispe = Some((p.u32()?, p.u32()?));
            }
            b"irot" => props.irot = p.u8()? & 3,
            b"imir" => props.imir = Some(p.u8()? & 1),
            b"clap" => {
                let v: Vec<u32> = (0..8).map(|_| p.u32()).collect::<Result<_, _>>()?;
                props.clap = Some(Clap {
                    width: (v[0], v[1]),
                    height: (v[2], v[3]),
                    horiz_off: (v[4] as i32, v[5]),
                    vert_off: (v[6] as i32, v[7]),
                });
            }
            b"colr" => match &p.fourcc()? {
                b"nclx" if props.nclx_matrix.is_none() => {
                    p.u16()?; // colour primaries
                    p.u16()?; // transfer characteristics
                    props.nclx_matrix = Some(p.u16()? as u32);
                }
                b"prof" | b"rICC" if props.icc.is_none() => props.icc = Some(p.d.to_vec()),
                _ => {}
            },
            _ => {}
        }
    }
    Ok(ContainerInfo {
        primary_type,
        props,
    })
}

fn parse_ipma(payload: &[u8], out: &mut Vec<(u32, u16)>) -> Result<(), AvifError> {
    let mut p = Fields { d: payload };
    let (version, flags) = p.full()?;
    let count = p.u32()?;
    for _ in 0..count {
        // Every entry takes at least 3 bytes, so a huge `count` fails at the end of the box.
        let id = if version < 1 {
            p.u16()? as u32
        } else {
            p.u32()?
        };
        let n = p.u8()?;
        for _ in 0..n {
            let index = if flags & 1 != 0 {
                p.u16()? & 0x7fff
            } else {
                (p.u8()? & 0x7f) as u16
            };
            out.push((id, index));
        }
    }
    Ok(())
}

/// Extracts the AV1 payloads with avif-parse. avif-parse insists on the major brand `avif`,
/// so files with another major brand (`mif1`, `avis`, …) that passed [`is_avif`] are handed
/// over with the major brand rewritten (the bytes are chained, not copied).
fn read_items(data: &[u8]) -> Result<avif_parse::AvifData, AvifError> {
    use std::io::Read;
    let map = |e: avif_parse::Error| AvifError(format!("container: {e}"));
    if data.len() >= 12 && &data[8..12] != b"avif" {
        let mut head = [0u8; 12];
        head.copy_from_slice(&data[..12]);
        head[8..12].copy_from_slice(b"avif");
        let mut reader = (&head[..]).chain(&data[12..]);
        avif_parse::read_avif(&mut reader).map_err(map)
    } else {
        let mut reader = data;
        avif_parse::read_avif(&mut reader).map_err(map)
    }
}

// ---------------------------------------------------------------------------------------
// AV1 decoding with rav1d
// ---------------------------------------------------------------------------------------

/// Parses the first sequence header OBU of an AV1 payload without decoding anything.
fn parse_sequence_header(obus: &[u8]) -> Result<Dav1dSequenceHeader, AvifError> {
    if obus.is_empty() {
        return err("empty AV1 payload");
    }
    let mut out = MaybeUninit::<Dav1dSequenceHeader>::uninit();
    // SAFETY: `out` is valid for writes of a `Dav1dSequenceHeader`; the pointer/length pair
    // comes from a live `&[u8]` of exactly that length, which dav1d only reads.
    let r = unsafe {
        dav1d_parse_sequence_header(
            Some(NonNull::from(&mut out).cast()),
            NonNull::new(obus.as_ptr().cast_mut()),
            obus.len(),
        )
    };
    if r.0 != 0 {
        return err(format!("invalid AV1 sequence header (error {})", r.0));
    }
    // SAFETY: on success dav1d_parse_sequence_header wrote a complete header into `out`
    // (it writes only after parsing succeeded); the struct is plain old data.
    Ok(unsafe { out.assume_init() })
}

const DAV1D_EAGAIN: i32 = -libc::EAGAIN;
/// Upper bound on send/get round trips for one still image (normally 2 or 3).
const MAX_DECODE_ROUNDS: usize = 64;
/// Worker threads and frame contexts per decoder; must be >= 2 (see `decode_av1`).
const DECODER_THREADS: i32 = 2;

/// A decoder context, closed on drop.
struct Context(Option<Dav1dContext>);

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: `self.0` came from `dav1d_open` and is closed only here (dav1d_close
        // takes it out of the Option, so a second call would be a no-op).
        unsafe { dav1d_close(Some(NonNull::from(&mut self.0))) };
    }
}

/// Input data owned by rav1d (or empty), unreferenced on drop.
struct Data(Dav1dData);

impl Drop for Data {
    fn drop(&mut self) {
        // SAFETY: `self.0` is either default (empty) or was filled by `dav1d_data_wrap` and
        // updated only by `dav1d_send_data`; unref of either is valid.
        unsafe { dav1d_data_unref(Some(NonNull::from(&mut self.0))) };
    }
}

/// An output picture (or an empty one), unreferenced on drop.
struct Picture(Dav1dPicture);

impl Drop for Picture {
    fn drop(&mut self) {
        // SAFETY: `self.0` is either default (empty) or was filled by a successful
        // `dav1d_get_picture`; unref of either is valid.
        unsafe { dav1d_picture_unref(Some(NonNull::from(&mut self.0))) };
    }
}

/// Free callback for the input buffer handed to `dav1d_data_wrap`: `ptr` is the start of a
/// leaked `Box<[u8]>` whose length is in the leaked `Box<usize>` behind `cookie`.
unsafe extern "C" fn free_boxed_slice(ptr: *const u8, cookie: Option<SendSyncNonNull<c_void>>) {
    let Some(cookie) = cookie else {
        return; // cannot happen (we always pass a cookie); leaking is the safe choice
    };
    // SAFETY: the cookie was made by `SendSyncNonNull::from_box(Box<usize>)` in `wrap_data`
    // and rav1d calls this callback exactly once, so the box is reclaimed exactly once.
    let len = *unsafe { Box::from_raw(cookie.cast::<usize>().as_ptr().as_ptr()) };
    let slice = ptr::slice_from_raw_parts_mut(ptr.cast_mut(), len);
    // SAFETY: `ptr` and `len` are those of the `Box<[u8]>` leaked in `wrap_data` (rav1d passes
    // back the pointer it was given), reclaimed exactly once, here.
    drop(unsafe { Box::from_raw(slice) });
}

/// Copies `payload` into a buffer owned by rav1d's reference counting.
fn wrap_data(payload: &[u8]) -> Result<Data, AvifError> {
    let len = payload.len();
    let raw: *mut [u8] = Box::into_raw(payload.to_vec().into_boxed_slice());
    let cookie = SendSyncNonNull::from_box(Box::new(len)).cast::<c_void>();
    let mut data = Data(Dav1dData::default());
    // SAFETY: `data.0` is a valid `Dav1dData` to write; `raw` points to `len` initialised
    // bytes that stay valid until `free_boxed_slice` (which deallocates them) is called.
    let r = unsafe {
        dav1d_data_wrap(
            Some(NonNull::from(&mut data.0)),
            NonNull::new(raw.cast::<u8>()),
            len,
            Some(free_boxed_slice),
            Some(cookie),
        )
    };
    if r.0 != 0 {
        // dav1d_data_wrap only fails in its argument validation, before taking ownership.
        // SAFETY: ownership was not transferred, so both boxes are still ours to free.
        unsafe {
            drop(Box::from_raw(raw));
            drop(Box::from_raw(cookie.cast::<usize>().as_ptr().as_ptr()));
        }
        return err(format!("cannot wrap AV1 data (error {})", r.0));
    }
    Ok(data)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Layout {
    I400,
    I420,
    I422,
    I444,
}

/// One plane of a decoded picture, as bytes (2 per sample, native endian, above 8 bits).
struct Plane<'a> {
    bytes: &'a [u8],
    stride: usize,
    width: usize,
    height: usize,
}

impl Plane<'_> {
    fn row(&self, y: usize) -> &[u8] {
        let start = y.min(self.height - 1) * self.stride;
        &self.bytes[start..]
    }
}

/// A decoded AV1 frame, borrowed from a rav1d picture.
struct Frame<'a> {
    width: usize,
    height: usize,
    bit_depth: u32,
    layout: Layout,
    /// Matrix coefficients from the sequence header.
    matrix: u32,
    full_range: bool,
    y: Plane<'a>,
    /// Cb and Cr planes (absent for monochrome).
    uv: Option<(Plane<'a>, Plane<'a>)>,
}

/// Decodes one AV1 still image and hands the first output frame to `f`.
fn decode_av1<R>(
    payload: &[u8],
    f: impl FnOnce(&Frame<'_>) -> Result<R, AvifError>,
) -> Result<R, AvifError> {
    if payload.is_empty() {
        return err("empty AV1 payload");
    }
    let mut settings = MaybeUninit::<Dav1dSettings>::uninit();
    // SAFETY: `settings` is valid for writes; dav1d_default_settings fully initialises it.
    unsafe { dav1d_default_settings(NonNull::from(&mut settings).cast()) };
    // SAFETY: initialised just above.
    let mut s = unsafe { settings.assume_init() };
    // NOT n_threads = 1 / max_frame_delay = 1: with a single frame context (n_fc =
    // min(max_frame_delay, n_threads) == 1) rav1d 1.1.0 panics on *any* frame decode error
    // (`on_error` unwraps a frame header that `rav1d_decode_frame_exit` already took,
    // memorysafety/rav1d#1497, fix in the unmerged #1496/#1503), and since the panic leaves
    // through an `extern "C"` fn it aborts the whole process. Two frame contexts take the
    // frame-threading error path instead, which returns EINVAL; the price is two short-lived
    // worker threads per decode and the delayed output that the drain loop below handles.
    s.n_threads = DECODER_THREADS;
    s.max_frame_delay = DECODER_THREADS;
    s.all_layers = 0; // only the highest spatial layer, like libavif
    s.frame_size_limit = MAX_PIXELS as u32;
    // SAFETY: no callback, so there is nothing that could be called unsafely.
    s.logger = unsafe { Dav1dLogger::new(None, None) };

    let mut ctx = Context(None);
    // SAFETY: both pointers come from live locals of the right types.
    let r = unsafe { dav1d_open(Some(NonNull::from(&mut ctx.0)), Some(NonNull::from(&mut s))) };
    let Some(c) = ctx.0.filter(|_| r.0 == 0) else {
        return err(format!("cannot create AV1 decoder (error {})", r.0));
    };

    let mut data = wrap_data(payload)?;
    let mut pic = Picture(Dav1dPicture::default());
    let mut got = false;
    for _ in 0..MAX_DECODE_ROUNDS {
        if data.0.sz > 0 {
            // SAFETY: `c` is open (closed only when `ctx` drops, after this); `data.0` is a
            // valid Dav1dData that dav1d may consume from.
            let r = unsafe { dav1d_send_data(Some(c), Some(NonNull::from(&mut data.0))) };
            if r.0 != 0 && r.0 != DAV1D_EAGAIN {
                return err(decode_error("AV1 decoding failed", r));
            }
        }
        // SAFETY: `c` is open; `pic.0` is an empty picture that dav1d overwrites.
        let r = unsafe { dav1d_get_picture(Some(c), Some(NonNull::from(&mut pic.0))) };
        if r.0 == 0 {
            got = true;
            break;
        }
        if r.0 != DAV1D_EAGAIN {
            return err(decode_error("AV1 decoding failed", r));
        }
        if data.0.sz == 0 {
            // All data sent, still no picture: drain once more then give up (the loop bound
            // also protects against a decoder that neither consumes nor outputs).
            continue;
        }
    }
    if !got {
        return err("AV1 payload produced no picture (truncated or corrupt data?)");
    }
    let frame = frame_view(&pic.0)?;
    f(&frame)
}

fn decode_error(what: &str, r: Dav1dResult) -> String {
    match -r.0 {
        libc::EINVAL => format!("{what}: invalid data"),
        libc::ENOMEM => format!("{what}: out of memory"),
        libc::ERANGE => format!("{what}: frame too large"),
        libc::ENOPROTOOPT => format!("{what}: unsupported feature"),
        _ => format!("{what} (error {})", r.0),
    }
}

/// Borrows the planes of a picture returned by `dav1d_get_picture`, after checking that the
/// reported geometry is sane.
fn frame_view(p: &Dav1dPicture) -> Result<Frame<'_>, AvifError> {
    let (w, h) = (p.p.w, p.p.h);
    if w <= 0 || h <= 0 {
        return err("decoder returned an empty picture");
    }
    check_size(w as u64, h as u64)?;
    let (width, height) = (w as usize, h as usize);
    let bit_depth = match p.p.bpc {
        8 => 8,
        10 => 10,
        12 => 12,
        b => return err(format!("unsupported bit depth {b}")),
    };
    let layout = match p.p.layout {
        DAV1D_PIXEL_LAYOUT_I400 => Layout::I400,
        DAV1D_PIXEL_LAYOUT_I420 => Layout::I420,
        DAV1D_PIXEL_LAYOUT_I422 => Layout::I422,
        DAV1D_PIXEL_LAYOUT_I444 => Layout::I444,
        l => return err(format!("unsupported pixel layout {l}")),
    };
    let Some(seq) = p.seq_hdr else {
        return err("decoded picture has no sequence header");
    };
    // SAFETY: `seq_hdr` points into the sequence-header reference that the picture holds, so
    // it stays valid for as long as `p` is borrowed.
    let seq = unsafe { seq.as_ref() };
    let bps = if bit_depth > 8 { 2 } else { 1 };

    let plane = |i: usize, pw: usize, ph: usize| -> Result<Plane<'_>, AvifError> {
        let Some(ptr) = p.data[i] else {
            return err("decoded picture is missing a plane");
        };
        let stride = p.stride[i.min(1)];
        let row_bytes = pw * bps;
        if stride <= 0 || (stride as usize) < row_bytes {
            return err("decoded picture has an unsupported stride");
        }
        let stride = stride as usize;
        let len = (ph - 1)
            .checked_mul(stride)
            .and_then(|n| n.checked_add(row_bytes))
            .ok_or_else(|| AvifError("plane size overflow".into()))?;
        // SAFETY: rav1d's default picture allocator (we install no custom one) gives every
        // plane `stride × align128(h >> ss_ver)` zero-initialised bytes from one buffer, which
        // covers the `(ph - 1) × stride + pw × bps` bytes used here. The buffer is kept alive by
        // the picture reference `p`, which outlives the returned borrow, and rav1d does not
        // write to a picture after returning it.
        let bytes = unsafe { std::slice::from_raw_parts(ptr.as_ptr().cast::<u8>(), len) };
        Ok(Plane {
            bytes,
            stride,
            width: pw,
            height: ph,
        })
    };

    let y = plane(0, width, height)?;
    let uv = match layout {
        Layout::I400 => None,
        _ => {
            let (sx, sy) = match layout {
                Layout::I420 => (1, 1),
                Layout::I422 => (1, 0),
                _ => (0, 0),
            };
            let (cw, ch) = ((width + sx) >> sx, (height + sy) >> sy);
            Some((plane(1, cw, ch)?, plane(2, cw, ch)?))
        }
    };
    Ok(Frame {
        width,
        height,
        bit_depth,
        layout,
        matrix: seq.mtrx,
        full_range: seq.color_range != 0,
        y,
        uv,
    })
}

// ---------------------------------------------------------------------------------------
// Colour conversion
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Matrix {
    /// Y'CbCr with the coefficients of R from Cr, G from Cb and Cr, B from Cb.
    YCbCr {
        cr_r: f32,
        cb_g: f32,
        cr_g: f32,
        cb_b: f32,
    },
    /// MC 0: the planes are G, B, R.
    Identity,
    /// MC 8: Y, Cg, Co.
    YCgCo,
}

/// Matrix for the H.273 matrix-coefficients code. Codes without a plain Kr/Kb form
/// (2 unspecified, 11 SMPTE ST 2085, 12/13 chromaticity-derived, 14 ICtCp, reserved ones)
/// fall back to BT.601; 10 (BT.2020 constant luminance) is approximated by the
/// non-constant-luminance matrix.
fn matrix_for(mc: u32) -> Matrix {
    let (kr, kb) = match mc {
        0 => return Matrix::Identity,
        8 => return Matrix::YCgCo,
        1 => (0.2126, 0.0722),
        4 => (0.30, 0.11),
        7 => (0.212, 0.087),
        9 | 10 => (0.2627, 0.0593),
        _ => (0.299, 0.114), // 5, 6 (BT.601) and the fallbacks above
    };
    let kg = 1.0 - kr - kb;
    Matrix::YCbCr {
        cr_r: 2.0 * (1.0 - kr),
        cb_g: 2.0 * kb * (1.0 - kb) / kg,
        cr_g: 2.0 * kr * (1.0 - kr) / kg,
        cb_b: 2.0 * (1.0 - kb),
    }
}

/// Lookup tables from code value to normalised luma (0..1) and chroma (-0.5..0.5).
fn luts(bit_depth: u32, full_range: bool) -> (Vec<f32>, Vec<f32>) {
    let n = 1usize << bit_depth;
    let max = (n - 1) as f32;
    let shift = (bit_depth - 8) as i32;
    let (y_off, y_scale, c_scale) = if full_range {
        (0.0, 1.0 / max, 1.0 / max)
    } else {
        (
            (16 << shift) as f32,
            1.0 / (219 << shift) as f32,
            1.0 / (224 << shift) as f32,
        )
    };
    let c_off = (1 << (bit_depth - 1)) as f32;
    let y = (0..n).map(|v| (v as f32 - y_off) * y_scale).collect();
    let c = (0..n).map(|v| (v as f32 - c_off) * c_scale).collect();
    (y, c)
}

#[inline(always)]
fn sample<const HBD: bool>(row: &[u8], x: usize) -> usize {
    if HBD {
        u16::from_ne_bytes([row[2 * x], row[2 * x + 1]]) as usize
    } else {
        row[x] as usize
    }
}

#[inline(always)]
fn to_u8(v: f32) -> u8 {
    // `as` saturates (and maps NaN to 0), so this never wraps.
    (v * 255.0 + 0.5) as u8
}

fn frame_to_rgba(frame: &Frame<'_>, matrix: u32) -> Result<RgbaImage, AvifError> {
    let len = frame
        .width
        .checked_mul(frame.height)
        .and_then(|n| n.checked_mul(4))
        .ok_or_else(|| AvifError("image too large".into()))?;
    let mut out = Vec::new();
    out.try_reserve_exact(len)
        .map_err(|_| AvifError("out of memory for the RGBA buffer".into()))?;
    out.resize(len, 0);
    if frame.bit_depth > 8 {
        convert::<true>(frame, matrix_for(matrix), &mut out);
    } else {
        convert::<false>(frame, matrix_for(matrix), &mut out);
    }
    RgbaImage::from_raw(frame.width as u32, frame.height as u32, out)
        .ok_or_else(|| AvifError("RGBA buffer size mismatch".into()))
}

fn convert<const HBD: bool>(frame: &Frame<'_>, matrix: Matrix, out: &mut [u8]) {
    let (ylut, mut clut) = luts(frame.bit_depth, frame.full_range);
    let max = ylut.len() - 1;
    let w = frame.width;
    let Some((u_plane, v_plane)) = &frame.uv else {
        for (y, orow) in out.chunks_exact_mut(w * 4).enumerate() {
            let yrow = frame.y.row(y);
            for (x, px) in orow.chunks_exact_mut(4).enumerate() {
                let g = to_u8(ylut[sample::<HBD>(yrow, x).min(max)]);
                px.copy_from_slice(&[g, g, g, 255]);
            }
        }
        return;
    };
    if matches!(matrix, Matrix::Identity) {
        clut = ylut.clone(); // all three planes are R'G'B' samples
    }
    let (ss_x, ss_y) = match frame.layout {
        Layout::I420 => (true, true),
        Layout::I422 => (true, false),
        _ => (false, false),
    };
    let cw = u_plane.width;
    let ch = u_plane.height;
    let mut ubuf = vec![0f32; cw];
    let mut vbuf = vec![0f32; cw];
    for (y, orow) in out.chunks_exact_mut(w * 4).enumerate() {
        // Vertical chroma interpolation (3/4 nearest + 1/4 neighbour row for 4:2:0).
        let (j0, j1, w0) = if ss_y {
            let j = (y >> 1).min(ch - 1);
            let nb = if y & 1 == 0 {
                j.saturating_sub(1)
            } else {
                (j + 1).min(ch - 1)
            };
            (j, nb, 0.75f32)
        } else {
            (y.min(ch - 1), y.min(ch - 1), 1.0f32)
        };
        let (u0, u1) = (u_plane.row(j0), u_plane.row(j1));
        let (v0, v1) = (v_plane.row(j0), v_plane.row(j1));
        for i in 0..cw {
            ubuf[i] = w0 * clut[sample::<HBD>(u0, i).min(max)]
                + (1.0 - w0) * clut[sample::<HBD>(u1, i).min(max)];
            vbuf[i] = w0 * clut[sample::<HBD>(v0, i).min(max)]
                + (1.0 - w0) * clut[sample::<HBD>(v1, i).min(max)];
        }
        let yrow = frame.y.row(y);
        for (x, px) in orow.chunks_exact_mut(4).enumerate() {
            let (cb, cr) = if ss_x {
                let i = (x >> 1).min(cw - 1);
                let nb = if x & 1 == 0 {
                    i.saturating_sub(1)
                } else {
                    (i + 1).min(cw - 1)
                };
                (
                    0.75 * ubuf[i] + 0.25 * ubuf[nb],
                    0.75 * vbuf[i] + 0.25 * vbuf[nb],
                )
            } else {
                (ubuf[x], vbuf[x])
            };
            let luma = ylut[sample::<HBD>(yrow, x).min(max)];
            let (r, g, b) = match matrix {
                Matrix::YCbCr {
                    cr_r,
                    cb_g,
                    cr_g,
                    cb_b,
                } => (
                    luma + cr_r * cr,
                    luma - cb_g * cb - cr_g * cr,
                    luma + cb_b * cb,
                ),
                Matrix::Identity => (cr, luma, cb),
                Matrix::YCgCo => {
                    let t = luma - cb;
                    (t + cr, luma + cb, t - cr)
                }
            };
            px.copy_from_slice(&[to_u8(r), to_u8(g), to_u8(b), 255]);
        }
    }
}

/// Writes the alpha auxiliary image's luma into the alpha channel of `img`.
fn apply_alpha(frame: &Frame<'_>, img: &mut RgbaImage) -> Result<(), AvifError> {
    if (frame.width, frame.height) != (img.width() as usize, img.height() as usize) {
        return err(format!(
            "alpha plane {}x{} does not match the image {}x{}",
            frame.width,
            frame.height,
            img.width(),
            img.height()
        ));
    }
    let (ylut, _) = luts(frame.bit_depth, frame.full_range);
    let max = ylut.len() - 1;
    let w = frame.width;
    let hbd = frame.bit_depth > 8;
    for (y, orow) in img.chunks_exact_mut(w * 4).enumerate() {
        let arow = frame.y.row(y);
        for (x, px) in orow.chunks_exact_mut(4).enumerate() {
            let s = if hbd {
                sample::<true>(arow, x)
            } else {
                sample::<false>(arow, x)
            };
            px[3] = to_u8(ylut[s.min(max)]);
        }
    }
    Ok(())
}

/// Converts premultiplied colour (`prem` reference) back to straight alpha.
fn unpremultiply(img: &mut RgbaImage) {
    for px in img.pixels_mut() {
        let a = px[3] as u32;
        if a == 0 {
            px.0 = [0, 0, 0, 0];
        } else if a < 255 {
            for c in &mut px.0[..3] {
                *c = ((*c as u32 * 255 + a / 2) / a).min(255) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::Instant;

    fn corpus() -> Option<PathBuf> {
        match std::env::var_os("LASTBYTE_CORPUS") {
            Some(p) => Some(PathBuf::from(p)),
            None => {
                println!("LASTBYTE_CORPUS not set; skipping");
                None
            }
        }
    }

    fn read(dir: &std::path::Path, rel: &str) -> Vec<u8> {
        let p = dir.join(rel);
        std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
    }

    /// Mean absolute difference over all channels of two same-sized images.
    fn mae(a: &RgbaImage, b: &RgbaImage) -> f64 {
        assert_eq!(a.dimensions(), b.dimensions());
        let sum: u64 = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(&x, &y)| (x as i32 - y as i32).unsigned_abs() as u64)
            .sum();
        sum as f64 / a.as_raw().len() as f64
    }

    fn channel_stats(img: &RgbaImage, c: usize) -> (f64, u8, u8) {
        let mut sum = 0u64;
        let (mut lo, mut hi) = (255u8, 0u8);
        for px in img.pixels() {
            sum += px[c] as u64;
            lo = lo.min(px[c]);
            hi = hi.max(px[c]);
        }
        (sum as f64 / (img.width() * img.height()) as f64, lo, hi)
    }

    #[test]
    fn hato_8bit_420() {
        let Some(dir) = corpus() else { return };
        let data = read(&dir, "avif/hato_3082x2048_8bit_420.avif");
        assert!(is_avif(&data));
        assert_eq!(dimensions(&data).unwrap(), (3082, 2048));
        let t = Instant::now();
        let img = decode_rgba(&data).unwrap();
        println!("hato 3082x2048 decode_rgba: {:?}", t.elapsed());
        assert_eq!(img.dimensions(), (3082, 2048));
        assert!(img.pixels().all(|p| p[3] == 255));
        for c in 0..3 {
            let (mean, lo, hi) = channel_stats(&img, c);
            println!("hato channel {c}: mean {mean:.1} min {lo} max {hi}");
            assert!(
                (20.0..235.0).contains(&mean) && hi - lo > 100,
                "flat channel {c}"
            );
        }
    }

    #[test]
    fn fox_10bit_matches_8bit_444() {
        let Some(dir) = corpus() else { return };
        let data = read(&dir, "avif/fox_10bit_420.avif");
        assert_eq!(dimensions(&data).unwrap(), (1204, 800));
        let img10 = decode_rgba(&data).unwrap();
        assert_eq!(img10.dimensions(), (1204, 800));
        // The 4:4:4 8-bit file is the same picture with one column less.
        let img8 = decode_rgba(&read(&dir, "avif/fox_8bit_444_odd_width.avif")).unwrap();
        assert_eq!(img8.dimensions(), (1203, 800));
        let crop10 = image::imageops::crop_imm(&img10, 0, 0, 1203, 800).to_image();
        let d = mae(&crop10, &img8);
        println!("fox 10-bit 4:2:0 vs 8-bit 4:4:4 MAE {d:.2}");
        assert!(d < 6.0, "10-bit and 8-bit fox differ too much: {d}");
    }

    #[test]
    fn fox_monochrome() {
        let Some(dir) = corpus() else { return };
        let data = read(&dir, "avif/fox_8bit_monochrome.avif");
        let img = decode_rgba(&data).unwrap();
        assert_eq!(img.dimensions(), dimensions(&data).unwrap());
        assert_eq!(img.dimensions(), (1204, 800));
        assert!(img
            .pixels()
            .all(|p| p[0] == p[1] && p[1] == p[2] && p[3] == 255));
        let (mean, lo, hi) = channel_stats(&img, 0);
        assert!((20.0..235.0).contains(&mean) && hi - lo > 100);
    }

    #[test]
    fn plum_blossom_alpha_matches_png() {
        let Some(dir) = corpus() else { return };
        let data = read(&dir, "avif/plum_blossom_alpha.avif");
        assert_eq!(dimensions(&data).unwrap(), (2048, 2048));
        let img = decode_rgba(&data).unwrap();
        assert_eq!(img.dimensions(), (2048, 2048));
        let transparent = img.pixels().filter(|p| p[3] < 255).count();
        assert!(transparent > 0, "no pixel has alpha < 255");
        // The alpha plane was coded losslessly from this PNG.
        let png_path = dir.join("png/alpha/plum_blossom_2048_rgba.png");
        if let Ok(png) = std::fs::read(&png_path) {
            let png = image::load_from_memory(&png).unwrap().to_rgba8();
            let alpha_diff = img
                .pixels()
                .zip(png.pixels())
                .map(|(a, b)| (a[3] as i32 - b[3] as i32).unsigned_abs() as u64)
                .sum::<u64>() as f64
                / (2048.0 * 2048.0);
            // Colour where the PNG is opaque enough to matter.
            let (mut sum, mut n) = (0u64, 0u64);
            for (a, b) in img.pixels().zip(png.pixels()) {
                if b[3] > 128 {
                    for c in 0..3 {
                        sum += (a[c] as i32 - b[c] as i32).unsigned_abs() as u64;
                    }
                    n += 3;
                }
            }
            let color_diff = sum as f64 / n.max(1) as f64;
            println!("plum: alpha MAE {alpha_diff:.3}, colour MAE (alpha>128) {color_diff:.2}");
            assert!(alpha_diff < 1.0, "alpha differs from the PNG: {alpha_diff}");
            assert!(
                color_diff < 8.0,
                "colour differs from the PNG: {color_diff}"
            );
        }
    }

    #[test]
    fn red_icc_profile_is_applied() {
        let Some(dir) = corpus() else { return };
        let data = read(&dir, "avif/red_icc_8bit.avif");
        assert_eq!(dimensions(&data).unwrap(), (800, 800));
        let img = decode_rgba(&data).unwrap();
        assert_eq!(img.dimensions(), (800, 800));
        // A colour wheel on black whose ICC profile ("colr" prof) permutes the colours so that
        // red shows at 12 o'clock *only when the profile is applied* (the coded colour there is
        // blue, as any decoder that ignores ICC shows).
        let top = img.get_pixel(400, 80).0;
        let corner = img.get_pixel(10, 10).0;
        println!("red_icc: pixel (400, 80) = {top:?}, corner = {corner:?}");
        assert!(
            top[0] > 200 && top[1] < 60 && top[0] > 2 * top[2],
            "{top:?}"
        );
        assert!(corner[..3].iter().all(|&c| c < 24), "{corner:?}");
    }

    #[test]
    fn animated_avifs_still_item_or_clean_error() {
        let Some(dir) = corpus() else { return };
        let data = read(&dir, "avif/star_animated.avifs");
        assert!(is_avif(&data));
        match decode_rgba(&data) {
            Ok(img) => {
                println!("star_animated.avifs: still item {:?}", img.dimensions());
                assert_eq!(img.dimensions(), (159, 159));
                assert_eq!(dimensions(&data).unwrap(), (159, 159));
            }
            Err(e) => println!("star_animated.avifs: {e}"),
        }
    }

    #[test]
    fn sniffing() {
        let Some(dir) = corpus() else { return };
        for f in [
            "jpeg/grayscale_2560x1600.jpg",
            "png/alpha/plum_blossom_2048_rgba.png",
        ] {
            let data = read(&dir, f);
            assert!(!is_avif(&data), "{f}");
            assert!(
                decode_rgba(&data).is_err() && dimensions(&data).is_err(),
                "{f}"
            );
        }
        assert!(is_avif(&read(&dir, "avif/fox_8bit_monochrome.avif")));
        assert!(is_avif(b"\0\0\0\x18ftypmif1\0\0\0\0mif1miaf"));
        assert!(!is_avif(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic"));
    }

    #[test]
    fn kimono_transforms() {
        let Some(dir) = corpus() else { return };
        // Both files store a transformed picture plus the property that undoes it, so
        // correctly decoded they show the same upright 722x1024 kimono.
        let rot = read(&dir, "avif/kimono_rotate90.avif");
        let mir = read(&dir, "avif/kimono_mirror_horizontal.avif");
        let crop = read(&dir, "avif/kimono_crop.avif");
        assert_eq!(dimensions(&rot).unwrap(), (722, 1024));
        assert_eq!(dimensions(&mir).unwrap(), (722, 1024));
        assert_eq!(dimensions(&crop).unwrap(), (385, 330));
        let rot = decode_rgba(&rot).unwrap();
        let mir = decode_rgba(&mir).unwrap();
        let crop = decode_rgba(&crop).unwrap();
        assert_eq!(rot.dimensions(), (722, 1024));
        assert_eq!(crop.dimensions(), (385, 330));
        let d = mae(&rot, &mir);
        println!("kimono rotate90 vs mirror MAE {d:.2}");
        assert!(d < 6.0, "irot/imir results disagree: {d}");
        // clap: 385x330 around the centre offset by (103, -308): origin (271.5 → 271, 39).
        let region = image::imageops::crop_imm(&mir, 271, 39, 385, 330).to_image();
        let d = mae(&region, &crop);
        println!("kimono crop vs region MAE {d:.2}");
        assert!(d < 8.0, "clap region differs: {d}");
    }

    #[test]
    fn truncated_is_err() {
        let Some(dir) = corpus() else { return };
        let data = read(&dir, "hostile/truncated_50pct.avif");
        let e = decode_rgba(&data).unwrap_err();
        println!("truncated: {e}");
        // Every shorter prefix of a real file fails cleanly as well.
        let full = read(&dir, "avif/kimono_crop.avif");
        for cut in (0..full.len()).step_by(997) {
            assert!(decode_rgba(&full[..cut]).is_err());
            let _ = dimensions(&full[..cut]);
        }
    }

    #[test]
    fn truncated_av1_payload_is_err() {
        let (_, file) = encode_gradient(64, 48, true);
        let items = read_items(&file).unwrap();
        let payload: &[u8] = &items.primary_item;
        for cut in [1, payload.len() / 4, payload.len() / 2, payload.len() - 1] {
            assert!(
                decode_av1(&payload[..cut], |_| Ok(())).is_err(),
                "cut {cut}"
            );
        }
        assert!(decode_av1(&[], |_| Ok(())).is_err());
        assert!(parse_sequence_header(&payload[..2]).is_err());
    }

    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn random_bytes_are_err() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for len in [0usize, 1, 7, 12, 100, 4096] {
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            assert!(decode_rgba(&bytes).is_err());
            assert!(dimensions(&bytes).is_err());
            assert!(!is_avif(&bytes));
            // Random bytes behind a valid ftyp box reach the box walker.
            let mut with_ftyp = b"\0\0\0\x14ftypavif\0\0\0\0mif1".to_vec();
            with_ftyp.extend_from_slice(&bytes);
            assert!(is_avif(&with_ftyp));
            assert!(decode_rgba(&with_ftyp).is_err());
            assert!(dimensions(&with_ftyp).is_err());
        }
    }

    fn encode_gradient(w: usize, h: usize, alpha: bool) -> (Vec<ravif::RGBA8>, Vec<u8>) {
        let pixels: Vec<ravif::RGBA8> = (0..w * h)
            .map(|i| {
                let (x, y) = (i % w, i / w);
                ravif::RGBA8::new(
                    (x * 255 / (w - 1)) as u8,
                    (y * 255 / (h - 1)) as u8,
                    ((x + y) * 255 / (w + h - 2)) as u8,
                    if alpha {
                        (64 + x * 191 / (w - 1)) as u8
                    } else {
                        255
                    },
                )
            })
            .collect();
        let enc = ravif::Encoder::new()
            .with_quality(80.)
            .with_speed(8)
            .encode_rgba(ravif::Img::new(&pixels[..], w, h))
            .unwrap();
        (pixels, enc.avif_file)
    }

    #[test]
    fn ravif_round_trip() {
        for alpha in [false, true] {
            let (w, h) = (64usize, 48usize);
            let (pixels, file) = encode_gradient(w, h, alpha);
            assert!(is_avif(&file));
            assert_eq!(dimensions(&file).unwrap(), (w as u32, h as u32));
            let img = decode_rgba(&file).unwrap();
            assert_eq!(img.dimensions(), (w as u32, h as u32));
            let sum: u64 = img
                .pixels()
                .zip(&pixels)
                .map(|(a, b)| {
                    [(a[0], b.r), (a[1], b.g), (a[2], b.b), (a[3], b.a)]
                        .iter()
                        .map(|&(p, q)| (p as i32 - q as i32).unsigned_abs() as u64)
                        .sum::<u64>()
                })
                .sum();
            let mae = sum as f64 / (w * h * 4) as f64;
            println!("ravif round trip (alpha: {alpha}): MAE {mae:.2}");
            assert!(mae < 10.0, "round-trip MAE {mae}");
        }
    }

    #[test]
    fn corrupted_payloads_do_not_panic() {
        let (_, file) = encode_gradient(32, 32, true);
        let mut rng = XorShift(0x1234_5678_9abc_def1);
        let mut errors = 0;
        for round in 0..1000 {
            let mut bad = file.clone();
            let flips = 1 + (round % 8);
            for _ in 0..flips {
                let i = (rng.next() as usize) % bad.len();
                bad[i] ^= 1 << (rng.next() % 8);
            }
            if decode_rgba(&bad).is_err() {
                errors += 1;
            }
            let _ = dimensions(&bad);
        }
        println!("corrupted payloads: {errors}/1000 rejected, the rest decoded");
    }

    #[test]
    fn size_limit_refused_before_decoding() {
        let (_, file) = encode_gradient(16, 16, false);
        // Patch the ispe property to claim 20000x20000.
        let pos = file.windows(4).position(|w| w == b"ispe").unwrap();
        let mut bad = file.clone();
        bad[pos + 8..pos + 12].copy_from_slice(&20000u32.to_be_bytes());
        bad[pos + 12..pos + 16].copy_from_slice(&20000u32.to_be_bytes());
        assert_eq!(dimensions(&bad).unwrap(), (20000, 20000));
        let e = decode_rgba(&bad).unwrap_err();
        assert!(e.0.contains("exceeds"), "{e}");
    }
}
