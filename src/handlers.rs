//! Request handlers that need the whole body: they join the multipart splitter and the image
//! pipeline and produce a [`Response`]. No I/O; the binding handlers run on the CPU pool.

use crate::config::Limits;
use crate::http::multipart::{self, Part};
use crate::image::url::{self, UrlResult};
use crate::image::{pipeline, ImageError};
use crate::respond::Response;
use bytes::Bytes;

fn parts(content_type: Option<&str>, body: &Bytes) -> Result<Vec<Part>, ImageError> {
    let ct = content_type.ok_or_else(|| ImageError::option("missing Content-Type"))?;
    let boundary = multipart::boundary(ct).map_err(|e| ImageError::option(e.0))?;
    multipart::split(body, &boundary).map_err(|e| ImageError::option(e.0))
}

/// `POST /transform`.
pub fn transform(content_type: Option<&str>, body: Bytes, limits: &Limits) -> Response {
    let result = parts(content_type, &body).and_then(|p| pipeline::transform(p, limits));
    match result {
        Ok(enc) => {
            let mut r = Response::new(200, enc.mime, enc.bytes);
            if enc.mime == "application/octet-stream" {
                r = r
                    .with_header("x-image-width", enc.width.to_string())
                    .with_header("x-image-height", enc.height.to_string());
            }
            r
        }
        Err(e) => Response::binding_error(&e),
    }
}

/// `POST /cdn-cgi/image/<options>`: the URL interface on the raw request body.
pub fn image_url(options: &str, accept: Option<&str>, body: Bytes, limits: &Limits) -> Response {
    match url::run(options, accept, body, limits) {
        Ok(UrlResult::Image {
            encoded,
            vary_accept,
        }) => {
            let r = Response::new(200, encoded.mime, encoded.bytes);
            if vary_accept {
                r.with_header("vary", "Accept".to_string())
            } else {
                r
            }
        }
        Ok(UrlResult::Json(json)) => Response::new(200, "application/json", json),
        Err(e) => Response::binding_error(&e),
    }
}

/// `POST /info`.
pub fn info(content_type: Option<&str>, body: Bytes) -> Response {
    match parts(content_type, &body).and_then(pipeline::info) {
        Ok(json) => Response::new(200, "application/json", json),
        Err(e) => Response::binding_error(&e),
    }
}

/// A panicking job becomes this response (the pool catches the panic).
pub fn internal_error() -> Response {
    Response::binding_error(&pipeline::panicked())
}

/// The `GET /` page.
pub fn root_page() -> Response {
    Response::text(
        200,
        &format!(
            "lastbyte {}\n\
             routes:\n  \
             POST /transform          Images binding protocol (multipart)\n  \
             POST /info               {{format, file_size, width, height}}\n  \
             POST /cdn-cgi/image/<o>  URL-interface options on the request body\n  \
             POST /echo               the decoded request body\n  \
             GET|HEAD|POST /bytes/<n> n deterministic bytes (K, M suffixes)\n  \
             GET /healthz             liveness\n  \
             GET /metrics             Prometheus text format",
            env!("CARGO_PKG_VERSION")
        ),
    )
}
