//! The HTTP/1.1 framer: sans-IO parsers and writers, no sockets here.
//!
//! - [`parse`]: request heads (around `httparse`), rescanning only new bytes.
//! - [`body`]: `Content-Length` and chunked request bodies, bounded.
//! - [`head`]: response heads.
//! - [`multipart`]: `multipart/form-data` splitting for the binding protocol.

pub mod body;
pub mod head;
pub mod multipart;
pub mod parse;
