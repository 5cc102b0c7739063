//! lastbyte: an image-transformation server for Linux edge nodes whose responses are never
//! silently cut short.
//!
//! Data flows one way:
//!
//! ```text
//! socket bytes ─ io::ring recv completion
//!   ─ http::parse::parse_head → RequestHead          (sans-IO, httparse)
//!   ─ http::body::BodyReader (Content-Length | chunked, bounded)
//!   ─ conn: route → pool job (image::pipeline) or an immediate response
//!   ─ respond::Response → io::ledger::Ledger (head + body, no copy of the body)
//!   ─ send completions → Ledger::complete → Drained
//!   ─ keep-alive: next request | close: shutdown(SHUT_WR) (needs Drained) → linger → close
//! ```
//!
//! [`conn::Conn`] is the only module that joins http, image and io. CPU-heavy work runs on
//! [`pool::Pool`], never on the ring thread.

pub mod cli;
pub mod config;
pub mod conn;
pub mod engine_hyper;
pub mod handlers;
pub mod http;
pub mod image;
pub mod io;
pub mod metrics;
pub mod pool;
pub mod respond;
pub mod route;
pub mod server;
pub mod stats;
pub mod trace;
pub mod worker;
