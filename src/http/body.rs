//! Request bodies: a bounded `Content-Length` reader and a chunked decoder (RFC 9112 §7.1).
//!
//! Both are sans-IO: [`BodyReader::feed`] takes the bytes at hand and says how many it consumed,
//! appending decoded data to a sink (or discarding it), so the same code reads bodies the server
//! needs and discards bodies it ignores.

/// Longest chunk-size line extension accepted (bytes).
pub const MAX_CHUNK_EXT: usize = 4096;
/// Most trailer bytes accepted after the last chunk (they are discarded).
pub const MAX_TRAILERS: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// More body than the limit allows (413).
    TooLarge,
    /// A chunk-size line that is not hex digits, overflows, or has a bad extension (400).
    ChunkSizeInvalid,
    /// Missing CRLF after chunk data (400).
    ChunkDataUnterminated,
    /// Trailer section too large or malformed (400).
    TrailersInvalid,
}

impl BodyError {
    pub fn message(self) -> &'static str {
        match self {
            BodyError::TooLarge => "request body too large",
            BodyError::ChunkSizeInvalid => "invalid chunk size line",
            BodyError::ChunkDataUnterminated => "chunk data not followed by CRLF",
            BodyError::TrailersInvalid => "invalid or oversized trailers",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading hex digits; `digits` counts them.
    Size {
        size: u64,
        digits: u8,
    },
    /// After `;` on the size line; `len` counts extension bytes.
    Ext {
        size: u64,
        len: usize,
    },
    /// After CR on the size line.
    SizeLf {
        size: u64,
    },
    Data {
        left: u64,
    },
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer field line; `colon`: the name has ended (a field line needs one).
    TrailerLine {
        colon: bool,
    },
    /// After CR at the start of a line: expecting LF to end the body.
    FinalLf,
    /// After CR inside a trailer line.
    TrailerLf,
    Done,
}

/// Decodes one request body.
#[derive(Debug, Clone)]
pub struct BodyReader {
    kind: Kind,
    /// Decoded bytes so far.
    received: u64,
    /// Most decoded bytes allowed.
    limit: u64,
    /// Trailer bytes seen after the last chunk.
    trailer_bytes: usize,
}

#[derive(Debug, Clone)]
enum Kind {
    Length { left: u64 },
    Chunked(Chunk),
}

/// Outcome of [`BodyReader::feed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fed {
    /// Input bytes consumed (the rest belongs to the next request).
    pub consumed: usize,
    /// The body is complete.
    pub done: bool,
}

impl BodyReader {
    /// A `Content-Length` body; fails at once when `len` exceeds `limit`.
    pub fn length(len: u64, limit: u64) -> Result<BodyReader, BodyError> {
        if len > limit {
            return Err(BodyError::TooLarge);
        }
        Ok(BodyReader {
            kind: Kind::Length { left: len },
            received: 0,
            limit,
            trailer_bytes: 0,
        })
    }

    pub fn chunked(limit: u64) -> BodyReader {
        BodyReader {
            kind: Kind::Chunked(Chunk::Size { size: 0, digits: 0 }),
            received: 0,
            limit,
            trailer_bytes: 0,
        }
    }

    /// Decoded bytes so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Declared length still to come, for `Content-Length` bodies.
    pub fn remaining_declared(&self) -> Option<u64> {
        match self.kind {
            Kind::Length { left } => Some(left),
            Kind::Chunked(_) => None,
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(
            self.kind,
            Kind::Length { left: 0 } | Kind::Chunked(Chunk::Done)
        )
    }

    /// Consumes body bytes from `input`, appending decoded data to `sink` when given.
    pub fn feed(&mut self, input: &[u8], mut sink: Option<&mut Vec<u8>>) -> Result<Fed, BodyError> {
        match &mut self.kind {
            Kind::Length { left } => {
                let n = (*left).min(input.len() as u64) as usize;
                if let Some(s) = sink {
                    s.extend_from_slice(&input[..n]);
                }
                *left -= n as u64;
                self.received += n as u64;
                Ok(Fed {
                    consumed: n,
                    done: *left == 0,
                })
            }
            Kind::Chunked(_) => {
                let mut i = 0;
                while i < input.len() && !self.is_done() {
                    i += self.step_chunked(&input[i..], sink.as_deref_mut())?;
                }
                Ok(Fed {
                    consumed: i,
                    done: self.is_done(),
                })
            }
        }
    }

    /// One transition of the chunked state machine; returns bytes consumed (≥ 1).
    fn step_chunked(
        &mut self,
        input: &[u8],
        sink: Option<&mut Vec<u8>>,
    ) -> Result<usize, BodyError> {
        let Kind::Chunked(state) = &mut self.kind else {
            unreachable!("step_chunked on a Content-Length body")
        };
        let b = input[0];
        let next = match *state {
            Chunk::Size { size, digits } => match b {
                b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                    let d = (b as char).to_digit(16).unwrap_or(0) as u64;
                    if digits >= 15 {
                        return Err(BodyError::ChunkSizeInvalid);
                    }
                    Chunk::Size {
                        size: size * 16 + d,
                        digits: digits + 1,
                    }
                }
                b';' if digits > 0 => Chunk::Ext { size, len: 0 },
                b'\r' if digits > 0 => Chunk::SizeLf { size },
                _ => return Err(BodyError::ChunkSizeInvalid),
            },
            Chunk::Ext { size, len } => match b {
                b'\r' => Chunk::SizeLf { size },
                _ if len >= MAX_CHUNK_EXT => return Err(BodyError::ChunkSizeInvalid),
                0x21..=0x7e | b' ' | b'\t' => Chunk::Ext { size, len: len + 1 },
                _ => return Err(BodyError::ChunkSizeInvalid),
            },
            Chunk::SizeLf { size } => match b {
                b'\n' if size == 0 => Chunk::TrailerStart,
                b'\n' if self.received.saturating_add(size) > self.limit => {
                    return Err(BodyError::TooLarge)
                }
                b'\n' => Chunk::Data { left: size },
                _ => return Err(BodyError::ChunkSizeInvalid),
            },
            Chunk::Data { left } => {
                let n = left.min(input.len() as u64) as usize;
                if let Some(s) = sink {
                    s.extend_from_slice(&input[..n]);
                }
                self.received += n as u64;
                let left = left - n as u64;
                *state = if left == 0 {
                    Chunk::DataCr
                } else {
                    Chunk::Data { left }
                };
                return Ok(n);
            }
            Chunk::DataCr if b == b'\r' => Chunk::DataLf,
            Chunk::DataLf if b == b'\n' => Chunk::Size { size: 0, digits: 0 },
            Chunk::DataCr | Chunk::DataLf => return Err(BodyError::ChunkDataUnterminated),
            Chunk::TrailerStart => match b {
                b'\r' => Chunk::FinalLf,
                // A field line starts with its name: not empty, not folded.
                b'\n' | b':' | b' ' | b'\t' => return Err(BodyError::TrailersInvalid),
                _ => self.trailer_byte(Chunk::TrailerLine { colon: false })?,
            },
            Chunk::FinalLf if b == b'\n' => Chunk::Done,
            Chunk::FinalLf => return Err(BodyError::TrailersInvalid),
            Chunk::TrailerLine { colon } => match b {
                b'\r' if colon => self.trailer_byte(Chunk::TrailerLf)?,
                b'\r' | b'\n' | 0 => return Err(BodyError::TrailersInvalid),
                b':' => self.trailer_byte(Chunk::TrailerLine { colon: true })?,
                _ => self.trailer_byte(Chunk::TrailerLine { colon })?,
            },
            Chunk::TrailerLf if b == b'\n' => self.trailer_byte(Chunk::TrailerStart)?,
            Chunk::TrailerLf => return Err(BodyError::TrailersInvalid),
            Chunk::Done => return Ok(0),
        };
        if let Kind::Chunked(state) = &mut self.kind {
            *state = next;
        }
        Ok(1)
    }

    fn trailer_byte(&mut self, next: Chunk) -> Result<Chunk, BodyError> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > MAX_TRAILERS {
            return Err(BodyError::TrailersInvalid);
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` whole and byte by byte; both must agree.
    fn decode(input: &[u8], limit: u64) -> Result<(Vec<u8>, usize), BodyError> {
        let mut r = BodyReader::chunked(limit);
        let mut out = Vec::new();
        let whole = r.feed(input, Some(&mut out)).and_then(|f| {
            if f.done {
                Ok((out, f.consumed))
            } else {
                Err(BodyError::ChunkDataUnterminated)
            }
        });
        let mut r = BodyReader::chunked(limit);
        let mut out = Vec::new();
        let mut consumed = 0;
        let mut drip = Err(BodyError::ChunkDataUnterminated);
        for b in input {
            match r.feed(std::slice::from_ref(b), Some(&mut out)) {
                Ok(f) => {
                    consumed += f.consumed;
                    if f.done {
                        drip = Ok((out.clone(), consumed));
                        break;
                    }
                }
                Err(e) => {
                    drip = Err(e);
                    break;
                }
            }
        }
        assert_eq!(whole, drip);
        // Split in two at every byte; bytes a feed leaves unconsumed are offered again.
        for cut in 0..input.len() {
            let mut r = BodyReader::chunked(limit);
            let mut out = Vec::new();
            let mut pos = 0;
            let mut end = cut;
            let split = loop {
                match r.feed(&input[pos..end], Some(&mut out)) {
                    Err(e) => break Err(e),
                    Ok(f) if f.done => break Ok((out, pos + f.consumed)),
                    Ok(f) => {
                        pos += f.consumed;
                        if end == input.len() {
                            break Err(BodyError::ChunkDataUnterminated);
                        }
                        end = input.len();
                    }
                }
            };
            assert_eq!(whole, split, "split at {cut}");
        }
        whole
    }

    #[test]
    fn chunked_basic_with_ext_and_trailers() {
        let (out, n) = decode(
            b"4;a=b\r\nWiki\r\n5\r\npedia\r\n0\r\nX-T: 1\r\n\r\nNEXT",
            100,
        )
        .unwrap();
        assert_eq!(out, b"Wikipedia");
        assert_eq!(n, 36);
    }

    #[test]
    fn chunked_binding_capture() {
        let raw = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/wire/draw.raw"
        ))
        .unwrap();
        let body = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/wire/draw.body"
        ))
        .unwrap();
        let start = crate::http::parse::find_head_end(&raw, 0).unwrap();
        let (out, n) = decode(&raw[start..], 1 << 20).unwrap();
        assert_eq!(out, body);
        assert_eq!(start + n, raw.len());
    }

    #[test]
    fn chunked_rejects() {
        for (bad, want) in [
            (&b" 4\r\nWiki\r\n0\r\n\r\n"[..], BodyError::ChunkSizeInvalid),
            (b"4 \r\nWiki\r\n0\r\n\r\n", BodyError::ChunkSizeInvalid),
            (b"-4\r\nWiki\r\n0\r\n\r\n", BodyError::ChunkSizeInvalid),
            (b"0x4\r\nWiki\r\n0\r\n\r\n", BodyError::ChunkSizeInvalid),
            (b"ffffffffffffffffff\r\n", BodyError::ChunkSizeInvalid),
            (b"4\r\nWikiXX0\r\n\r\n", BodyError::ChunkDataUnterminated),
            (b"4\nWiki\r\n0\r\n\r\n", BodyError::ChunkSizeInvalid),
            (b"fff\r\n", BodyError::TooLarge),
            (b"0\r\nX\n\r\n", BodyError::TrailersInvalid),
            (b"0\r\nbad trailer\r\n\r\n", BodyError::TrailersInvalid),
            (b"0\r\n: v\r\n\r\n", BodyError::TrailersInvalid),
            (b"0\r\n folded: v\r\n\r\n", BodyError::TrailersInvalid),
            (b"4;\x01\r\nWiki\r\n0\r\n\r\n", BodyError::ChunkSizeInvalid),
            (b"\r\nWiki\r\n0\r\n\r\n", BodyError::ChunkSizeInvalid),
        ] {
            assert_eq!(
                decode(bad, 100).unwrap_err(),
                want,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn chunk_extensions_and_trailers_are_bounded() {
        let ext = |n: usize| format!("4;x={}\r\nWiki\r\n0\r\n\r\n", "e".repeat(n));
        assert_eq!(
            decode(ext(MAX_CHUNK_EXT - 100).as_bytes(), 100).unwrap().0,
            b"Wiki"
        );
        assert_eq!(
            decode(ext(MAX_CHUNK_EXT).as_bytes(), 100).unwrap_err(),
            BodyError::ChunkSizeInvalid
        );
        let trailers = |n: usize| format!("0\r\nX-T: {}\r\n\r\n", "t".repeat(n));
        assert_eq!(decode(trailers(1000).as_bytes(), 100).unwrap().0, b"");
        assert_eq!(
            decode(trailers(MAX_TRAILERS).as_bytes(), 100).unwrap_err(),
            BodyError::TrailersInvalid
        );
    }

    #[test]
    fn length_body_bounded() {
        assert_eq!(
            BodyReader::length(101, 100).unwrap_err(),
            BodyError::TooLarge
        );
        let mut r = BodyReader::length(5, 100).unwrap();
        let mut out = Vec::new();
        assert_eq!(
            r.feed(b"abc", Some(&mut out)).unwrap(),
            Fed {
                consumed: 3,
                done: false
            }
        );
        assert_eq!(
            r.feed(b"deNEXT", None).unwrap(),
            Fed {
                consumed: 2,
                done: true
            }
        );
        assert_eq!(out, b"abc");
        assert_eq!(r.received(), 5);
    }
}
