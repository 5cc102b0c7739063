//! Image work: decode → ops (per transform element, Cloudflare's fixed order) → draw → encode.
//! Nothing here knows about sockets or HTTP; [`pipeline`] is the entry point the CPU pool runs.

pub mod adjust;
pub mod avif;
pub mod color;
pub mod decode;
pub mod draw;
pub mod encode;
pub mod meta;
pub mod ops;
pub mod pipeline;
pub mod saliency;
pub mod text;
pub mod trim;
pub mod url;

use std::fmt;

/// The binding's error codes (DESIGN.md's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Invalid or unsupported option, malformed multipart or `transforms` JSON (400).
    InvalidOption,
    /// Input too large in bytes (413).
    InputTooLarge,
    /// Not an image, or a format this build cannot decode (415).
    NotAnImage,
    /// Image too large: area, dimension or frames over the limit (413).
    ImageTooLarge,
    /// The image could not be decoded or encoded (422).
    Corrupt,
    /// The job queue is full (503).
    Busy,
    /// Internal error (500).
    Internal,
}

impl Code {
    pub fn number(self) -> u16 {
        match self {
            Code::InvalidOption => 9401,
            Code::InputTooLarge => 9402,
            Code::NotAnImage => 9412,
            Code::ImageTooLarge => 9413,
            Code::Corrupt => 9516,
            Code::Busy => 9522,
            Code::Internal => 9523,
        }
    }

    pub fn status(self) -> u16 {
        match self {
            Code::InvalidOption => 400,
            Code::InputTooLarge => 413,
            Code::NotAnImage => 415,
            Code::ImageTooLarge => 413,
            Code::Corrupt => 422,
            Code::Busy => 503,
            Code::Internal => 500,
        }
    }
}

/// An image-processing failure: a code and a message for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageError {
    pub code: Code,
    pub message: String,
}

impl ImageError {
    pub fn new(code: Code, message: impl Into<String>) -> ImageError {
        ImageError {
            code,
            message: message.into(),
        }
    }

    pub fn option(message: impl Into<String>) -> ImageError {
        ImageError::new(Code::InvalidOption, message)
    }

    /// An option or value recognised but not implemented in this build: never a silent no-op.
    pub fn unsupported(what: impl fmt::Display) -> ImageError {
        ImageError::new(
            Code::InvalidOption,
            format!("{what} is not supported by this server yet"),
        )
    }
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ERROR {}: {}", self.code.number(), self.message)
    }
}

impl std::error::Error for ImageError {}
