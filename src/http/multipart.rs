//! `multipart/form-data` (RFC 7578) splitting for the binding protocol.
//!
//! The whole body is in memory (the image needs all of it), so [`split`] returns parts as
//! zero-copy slices of the body `Bytes`.

use bytes::Bytes;
use memchr::memmem;

/// Most parts accepted in one body.
pub const MAX_PARTS: usize = 64;
/// Longest part-header block accepted (bytes).
pub const MAX_PART_HEAD: usize = 8 * 1024;

#[derive(Debug, Clone)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub data: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartError(pub String);

fn err(m: impl Into<String>) -> MultipartError {
    MultipartError(m.into())
}

/// The `boundary` parameter of a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Result<String, MultipartError> {
    let mut params = content_type.split(';');
    let mime = params.next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("multipart/form-data") {
        return Err(err(format!("expected multipart/form-data, got {mime:?}")));
    }
    for p in params {
        if let Some((k, v)) = p.split_once('=') {
            if k.trim().eq_ignore_ascii_case("boundary") {
                let v = v.trim().trim_matches('"');
                if v.is_empty() || v.len() > 70 {
                    return Err(err("invalid multipart boundary"));
                }
                return Ok(v.to_string());
            }
        }
    }
    Err(err("multipart content type without boundary"))
}

/// Splits `body` into its parts.
pub fn split(body: &Bytes, boundary: &str) -> Result<Vec<Part>, MultipartError> {
    let delim = format!("--{boundary}");
    let delim = delim.as_bytes();
    // The first delimiter may be preceded by a preamble; the binding sends none.
    let mut pos =
        memmem::find(body, delim).ok_or_else(|| err("multipart boundary not found"))? + delim.len();
    let inner = {
        let mut d = b"\r\n".to_vec();
        d.extend_from_slice(delim);
        d
    };
    let finder = memmem::Finder::new(&inner);
    let mut parts = Vec::new();
    loop {
        let rest = &body[pos..];
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        // Transport padding then CRLF after the delimiter.
        let line_end =
            memchr::memchr(b'\n', rest).ok_or_else(|| err("truncated multipart body"))?;
        if rest[..line_end]
            .iter()
            .any(|&b| b != b' ' && b != b'\t' && b != b'\r')
        {
            return Err(err("garbage after multipart boundary"));
        }
        let head_start = pos + line_end + 1;
        let head_rel = find_blank_line(&body[head_start..])
            .ok_or_else(|| err("multipart part headers not terminated"))?;
        if head_rel.0 > MAX_PART_HEAD {
            return Err(err("multipart part headers too large"));
        }
        let head = std::str::from_utf8(&body[head_start..head_start + head_rel.0])
            .map_err(|_| err("non-UTF-8 multipart part headers"))?;
        let (name, filename) = disposition(head)?;
        let data_start = head_start + head_rel.1;
        let data_end = finder
            .find(&body[data_start..])
            .map(|i| data_start + i)
            .ok_or_else(|| err("multipart part not terminated by a boundary"))?;
        if parts.len() == MAX_PARTS {
            return Err(err(format!("more than {MAX_PARTS} multipart parts")));
        }
        parts.push(Part {
            name,
            filename,
            data: body.slice(data_start..data_end),
        });
        pos = data_end + inner.len();
    }
}

/// Finds the empty line ending a part's headers: returns (headers length, data offset).
fn find_blank_line(buf: &[u8]) -> Option<(usize, usize)> {
    if buf.starts_with(b"\r\n") {
        return Some((0, 2));
    }
    memmem::find(buf, b"\r\n\r\n").map(|i| (i, i + 4))
}

/// Parses `content-disposition: form-data; name="N"; filename="F"` from a part's headers.
fn disposition(head: &str) -> Result<(String, Option<String>), MultipartError> {
    for line in head.split("\r\n") {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        if !k.trim().eq_ignore_ascii_case("content-disposition") {
            continue;
        }
        let mut name = None;
        let mut filename = None;
        for param in v.split(';').skip(1) {
            if let Some((pk, pv)) = param.split_once('=') {
                let pv = pv.trim().trim_matches('"').to_string();
                match pk.trim().to_ascii_lowercase().as_str() {
                    "name" => name = Some(pv),
                    "filename" => filename = Some(pv),
                    _ => {}
                }
            }
        }
        return name
            .map(|n| (n, filename))
            .ok_or_else(|| err("multipart part without a name"));
    }
    Err(err("multipart part without content-disposition"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundary_param() {
        assert_eq!(
            boundary("multipart/form-data; boundary=--abc").unwrap(),
            "--abc"
        );
        assert_eq!(
            boundary("multipart/form-data; boundary=\"x y\"").unwrap(),
            "x y"
        );
        assert!(boundary("text/plain").is_err());
        assert!(boundary("multipart/form-data").is_err());
    }

    #[test]
    fn splits_binding_capture() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/wire/");
        let body = Bytes::from(std::fs::read(format!("{dir}mixed_overlays.body")).unwrap());
        let b = "--------------------------";
        let start = body.iter().position(|&c| c != b'-').unwrap();
        let digits = std::str::from_utf8(&body[start..start + 24]).unwrap();
        let parts = split(&body, &format!("{b}{digits}")).unwrap();
        let names: Vec<_> = parts.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "image",
                "draw_image",
                "draw_text",
                "draw_image",
                "transforms",
                "output_format",
                "output_quality"
            ]
        );
        assert_eq!(parts[0].filename.as_deref(), Some("image"));
        assert_eq!(&parts[0].data[..4], b"\x89PNG");
        assert_eq!(&parts[5].data[..], b"image/avif");
    }

    #[test]
    fn rejects_truncated() {
        let body =
            Bytes::from_static(b"--b\r\ncontent-disposition: form-data; name=\"a\"\r\n\r\nxyz");
        assert!(split(&body, "b").is_err());
        let body = Bytes::from_static(b"--b\r\n\r\nxyz\r\n--b--\r\n");
        assert!(split(&body, "b").is_err());
        let body = Bytes::from_static(
            b"--b\r\ncontent-disposition: form-data; name=\"a\"\r\n\r\nxyz\r\n--b--\r\n",
        );
        let p = split(&body, "b").unwrap();
        assert_eq!(&p[0].data[..], b"xyz");
    }
}
