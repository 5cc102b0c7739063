//! One connection as an explicit state machine; the only module that joins http, image and io.
//!
//! The ring loop feeds it completions (`on_recv`, `on_send`, `on_shutdown`, `on_linger`,
//! `on_job_done`) and gets back a [`Next`]: the one operation to submit next. At most one
//! operation is in flight per connection, so its buffers are never shared with the kernel twice.

use crate::config::{Config, Confirm};
use crate::handlers;
use crate::http::body::BodyReader;
use crate::http::parse::{self, BodyFraming, HeadStatus, Method, RequestHead};
use crate::image::{Code, ImageError};
use crate::io::ledger::{Drained, Ledger, LedgerError, Sent, MAX_IOVECS};
use crate::io::sys;
use crate::metrics::Metrics;
use crate::pool::Work;
use crate::respond::{self, Response};
use crate::route::{self, Route};
use crate::stats::Stats;
use crate::trace::{Queue, QueueSample, ResponseTrace, SendEvent, Tracer};
use bytes::Bytes;
use io_uring::types::Timespec;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Smallest free space offered to a recv while reading a request (bytes).
const MIN_READ: usize = 16 * 1024;
/// Read buffer kept by a connection waiting for its next request (bytes): the memory an idle
/// keep-alive connection holds, besides the `Conn` itself.
pub const IDLE_BUF: usize = 4 * 1024;
/// First and longest poll interval of `--confirm delivered`.
const CONFIRM_FIRST_STEP: Duration = Duration::from_micros(100);
const CONFIRM_MAX_STEP: Duration = Duration::from_millis(5);
/// Interim response for `Expect: 100-continue`.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// State shared by every connection of a server.
pub struct Shared {
    pub config: Config,
    pub stats: Arc<Stats>,
    pub metrics: Arc<Metrics>,
    /// Request ids, unique across rings.
    next_request: AtomicU64,
    /// Connection ids, unique across rings (logs and traces join on them).
    pub next_connection: AtomicU64,
    pattern: OnceLock<Bytes>,
    /// SIGTERM/SIGINT arrived: stop accepting, finish what is in flight.
    draining: AtomicBool,
    /// A second signal or the drain deadline: stop now.
    aborting: AtomicBool,
    /// Open connections across all rings (for `--max-connections`).
    pub open_connections: AtomicUsize,
    /// The write trace (`--trace-writes`), if on.
    pub tracer: Option<Arc<Tracer>>,
}

impl Shared {
    pub fn new(config: Config, stats: Arc<Stats>, metrics: Arc<Metrics>) -> Shared {
        Shared {
            config,
            stats,
            metrics,
            next_request: AtomicU64::new(1),
            next_connection: AtomicU64::new(1),
            pattern: OnceLock::new(),
            draining: AtomicBool::new(false),
            aborting: AtomicBool::new(false),
            open_connections: AtomicUsize::new(0),
            tracer: None,
        }
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// The response as it will be sent, counted: the binding form on binding routes, error
    /// responses and the per-route series. Both engines answer through it.
    pub fn finish_response(&self, r: Response, binding: bool, route: &'static str) -> Response {
        let r = if binding { respond::as_binding(r) } else { r };
        if r.status >= 400 {
            Stats::inc(&self.stats.error_responses);
        }
        self.metrics.count_response(route, r.status, r.code);
        r
    }

    pub fn start_aborting(&self) {
        self.aborting.store(true, Ordering::SeqCst);
    }

    pub fn aborting(&self) -> bool {
        self.aborting.load(Ordering::SeqCst)
    }

    /// The `/bytes` pattern, built once: byte i = byte i%4 of the little-endian u32 i/4.
    pub fn pattern(&self) -> &Bytes {
        self.pattern.get_or_init(|| {
            let cap = self.config.bytes_cap;
            let mut v = Vec::with_capacity(cap + 4);
            let mut i = 0u32;
            while v.len() < cap {
                v.extend_from_slice(&i.to_le_bytes());
                i = i.wrapping_add(1);
            }
            v.truncate(cap);
            Bytes::from(v)
        })
    }
}

/// The operation the ring must submit next for a connection.
pub enum Next {
    /// Receive into [`Conn::recv_buf`].
    Recv,
    /// Send [`Conn::prepare_send`].
    Send,
    /// Run on the CPU pool, then call [`Conn::on_job_done`].
    Job(Work),
    /// Half-close; the proof that every byte was confirmed comes with it.
    Shutdown(Drained),
    /// Receive and discard, with [`Conn::linger_timeout`] as a linked deadline.
    Linger,
    /// `--confirm delivered`: wait [`Conn::confirm_wait`], then call [`Conn::on_confirm_tick`].
    ConfirmWait,
    /// Close the socket.
    Close,
}

/// Which deadline a connection is under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerKind {
    /// Waiting for the first byte of a request (`--idle-timeout`).
    Idle,
    /// A request head under way, from its first byte (`--header-timeout`, total).
    Head,
    /// Waiting for more request-body bytes (`--body-timeout`, reset by progress).
    Body,
    /// A response making no send progress (`--write-stall-timeout`, reset by progress).
    WriteStall,
}

/// What to do once the response in the ledger is drained.
enum After {
    /// Keep the connection; first discard what is left of an unread request body.
    KeepAlive { discard: Option<BodyReader> },
    /// Half-close, linger, close.
    Close,
    /// The ledger held `100 Continue`; now read the body.
    ReadBody(Box<BodyState>),
}

/// A request whose body is being read before it is handled.
struct BodyState {
    head: RequestHead,
    route: Route,
    reader: BodyReader,
    body: Vec<u8>,
}

/// One request, for its log line and metrics.
struct ReqLog {
    id: u64,
    route: &'static str,
    started: Instant,
    /// Request bytes consumed (head and body framing).
    bytes_in: u64,
    /// The ledger's confirmed count when the request started (bytes out = the difference).
    out_base: u64,
    status: u16,
    code: u16,
}

/// What the response to a request needs to know about it.
#[derive(Clone, Copy)]
struct ReqCtx {
    head_method: bool,
    keep_alive: bool,
}

enum State {
    /// Waiting for (more of) a request head; `scanned` bytes were already searched.
    Head {
        scanned: usize,
    },
    Body(Box<BodyState>),
    /// A job is on the pool.
    Job(ReqCtx),
    Writing(After),
    /// Discarding an unread body before the next request.
    Discard(BodyReader),
    /// Every byte is queued; `--confirm delivered` waits for the send queue to empty before
    /// the half-close (until `deadline`), polling every `step` (doubling up to a bound).
    Confirming {
        proof: Drained,
        deadline: Instant,
        step: Duration,
    },
    /// `shutdown(SHUT_WR)` in flight.
    HalfClosing,
    /// Reading and discarding until EOF after the half-close.
    Lingering {
        deadline: Instant,
        bytes: u64,
    },
    Closed,
}

pub struct Conn {
    pub id: u64,
    buf: Vec<u8>,
    /// Unconsumed input is `buf[pos..len]`.
    pos: usize,
    len: usize,
    state: State,
    ledger: Ledger,
    iov: [libc::iovec; MAX_IOVECS],
    msg: libc::msghdr,
    linger_ts: Timespec,
    /// The server is draining: close after the current response.
    draining: bool,
    /// The deadline of the operation in flight, if it has one.
    timer: Option<(TimerKind, Instant)>,
    /// The ring cancelled the operation in flight because `timer` expired.
    expired: bool,
    /// The request being served, if any.
    req: Option<ReqLog>,
    /// The request being answered is on a binding path (`/transform`, `/info`), so every
    /// error response carries the binding's error code.
    binding: bool,
    /// Which ring serves this connection, and the peer's credentials (Unix sockets).
    ring: usize,
    peer: Option<(i32, u32)>,
    /// The socket, for send-queue samples (the ring owns it; no I/O is done on it here).
    fd: RawFd,
    queue: Queue,
    tracer: Option<Arc<Tracer>>,
    /// The response being traced, from its push to its close (only with a tracer).
    rtrace: Option<ResponseTrace>,
    confirm_ts: Timespec,
}

/// How a connection is set up besides its id.
pub struct ConnInit {
    pub ring: usize,
    pub peer: Option<(i32, u32)>,
    pub fd: RawFd,
    pub queue: Queue,
    pub tracer: Option<Arc<Tracer>>,
}

impl Conn {
    pub fn new(id: u64, init: ConnInit) -> Box<Conn> {
        Box::new(Conn {
            id,
            buf: Vec::new(),
            pos: 0,
            len: 0,
            state: State::Head { scanned: 0 },
            ledger: Ledger::new(),
            iov: [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; MAX_IOVECS],
            // SAFETY: msghdr is plain data; all-zero is a valid empty header.
            msg: unsafe { std::mem::zeroed() },
            linger_ts: Timespec::new(),
            draining: false,
            timer: None,
            expired: false,
            req: None,
            binding: false,
            ring: init.ring,
            peer: init.peer,
            fd: init.fd,
            queue: init.queue,
            tracer: init.tracer,
            rtrace: None,
            confirm_ts: Timespec::new(),
        })
    }

    /// The deadline of the operation in flight, if any.
    pub fn deadline(&self) -> Option<Instant> {
        self.timer.map(|(_, t)| t)
    }

    /// The ring is cancelling the operation in flight because its deadline passed.
    pub fn expire(&mut self) {
        self.expired = true;
    }

    /// Sets the deadline for the operation about to be submitted. Only a response that makes
    /// no progress at all can be cut (write stall); progress pushes every timer but the head's.
    pub fn update_timer(&mut self, next: &Next, sh: &Shared) {
        let now = Instant::now();
        let c = &sh.config;
        self.expired = false;
        self.timer = match (next, &self.state) {
            (Next::Recv, State::Head { .. }) if self.pos == self.len => {
                Some((TimerKind::Idle, now + c.idle_timeout))
            }
            (Next::Recv, State::Head { .. }) => match self.timer {
                Some((TimerKind::Head, t)) => Some((TimerKind::Head, t)),
                _ => Some((TimerKind::Head, now + c.header_timeout)),
            },
            (Next::Recv, State::Body(_) | State::Discard(_)) => {
                Some((TimerKind::Body, now + c.body_timeout))
            }
            (Next::Send, _) => Some((TimerKind::WriteStall, now + c.write_stall_timeout)),
            _ => None,
        };
    }

    /// A connection over `--max-connections`: answer 503 and close.
    pub fn refuse(&mut self, sh: &Shared) -> Next {
        Stats::inc(&sh.stats.connections_refused);
        let ctx = ReqCtx {
            head_method: false,
            keep_alive: false,
        };
        let r = Response::text(503, "too many connections").with_header("retry-after", "1".into());
        self.respond(r.closing(), ctx, None, sh)
    }

    /// A recv was cancelled because its deadline passed.
    fn recv_timed_out(&mut self, sh: &Shared) -> Next {
        let st = &sh.stats;
        let ctx = ReqCtx {
            head_method: false,
            keep_alive: false,
        };
        match self.timer.map(|(k, _)| k) {
            Some(TimerKind::Head) => {
                Stats::inc(&st.header_timeouts);
                let path = parse::peek_path(&self.buf[self.pos..self.len]);
                self.binding = path.is_some_and(respond::is_binding_path);
                let label = path_label(path);
                let n = self.len - self.pos;
                self.begin_request(sh, label, n);
                self.respond(
                    Response::text(408, "request head timed out").closing(),
                    ctx,
                    None,
                    sh,
                )
            }
            Some(TimerKind::Body) => {
                Stats::inc(&st.body_timeouts);
                self.respond(
                    Response::text(408, "request body timed out").closing(),
                    ctx,
                    None,
                    sh,
                )
            }
            _ => {
                Stats::inc(&st.idle_timeouts);
                self.close()
            }
        }
    }

    /// The first operation for a new connection.
    pub fn start(&mut self) -> Next {
        Next::Recv
    }

    /// Whether the connection waits for a new request with nothing buffered (safe to close
    /// when draining).
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Head { .. }) && self.pos == self.len
    }

    pub fn set_draining(&mut self) {
        self.draining = true;
    }

    /// Free space to receive into; valid until the next call that touches the buffer.
    pub fn recv_buf(&mut self) -> (*mut u8, usize) {
        if self.pos == self.len {
            self.pos = 0;
            self.len = 0;
            if matches!(self.state, State::Head { .. }) {
                // Between requests: hold only a small buffer (bounded idle memory).
                if self.buf.len() != IDLE_BUF {
                    self.buf = vec![0; IDLE_BUF];
                }
                return (self.buf.as_mut_ptr(), IDLE_BUF);
            }
        }
        if self.buf.len() - self.len < MIN_READ {
            if self.pos > 0 {
                self.buf.copy_within(self.pos..self.len, 0);
                self.len -= self.pos;
                self.pos = 0;
            }
            if self.buf.len() - self.len < MIN_READ {
                self.buf
                    .resize(self.len + MIN_READ.max(self.buf.len() / 2), 0);
            }
        }
        let free = &mut self.buf[self.len..];
        (free.as_mut_ptr(), free.len())
    }

    /// The msghdr for the next send (the ledger's unsent tail); valid until its completion.
    pub fn prepare_send(&mut self) -> *const libc::msghdr {
        let n = self.ledger.prepare(&mut self.iov);
        debug_assert!(n > 0, "send with nothing owed");
        self.msg.msg_iov = self.iov.as_mut_ptr();
        self.msg.msg_iovlen = n as _;
        &self.msg
    }

    /// The linger deadline as a relative timespec; valid while the connection lives.
    pub fn linger_timeout(&self) -> *const Timespec {
        &self.linger_ts
    }

    fn stats<'a>(&self, sh: &'a Shared) -> &'a Stats {
        &sh.stats
    }

    /// A recv completed with `res` (bytes, 0 = EOF, or -errno).
    pub fn on_recv(&mut self, res: i32, sh: &Shared) -> Next {
        if res == -libc::ECANCELED && self.expired {
            return self.recv_timed_out(sh);
        }
        if res == -libc::ECANCELED && self.draining && self.is_idle() {
            // Draining: an idle keep-alive connection is half-closed (the client sees EOF
            // and knows to retry elsewhere), then lingered like any other close.
            return self.half_close();
        }
        if res <= 0 {
            if res == -libc::ECONNRESET {
                Stats::inc(&self.stats(sh).econnreset);
            }
            // A request whose body never arrived whole ends here, logged as such.
            self.log_request(sh, "client-closed");
            // EOF or error: nothing more can be read; whatever was half-received is dropped
            // (the client closed before finishing its request, so no response is owed).
            return self.close();
        }
        self.len += res as usize;
        Stats::add(&sh.stats.bytes_read, res as u64);
        self.drive(sh)
    }

    /// Processes buffered input until an operation is needed.
    fn drive(&mut self, sh: &Shared) -> Next {
        loop {
            match std::mem::replace(&mut self.state, State::Closed) {
                State::Head { scanned } => {
                    if self.pos == self.len {
                        self.state = State::Head { scanned: 0 };
                        return Next::Recv;
                    }
                    let input = &self.buf[self.pos..self.len];
                    match parse::parse_head(input, scanned, sh.config.max_head) {
                        Ok(HeadStatus::Partial { scanned }) => {
                            self.state = State::Head { scanned };
                            return Next::Recv;
                        }
                        Ok(HeadStatus::Complete(head)) => {
                            self.pos += head.head_len;
                            self.binding = respond::is_binding_path(&head.path);
                            let label = route::route(head.method, &head.path).label();
                            self.begin_request(sh, label, head.head_len);
                            if let Some(next) = self.start_request(head, sh) {
                                return next;
                            }
                        }
                        Err(e) => {
                            let ctx = ReqCtx {
                                head_method: false,
                                keep_alive: false,
                            };
                            let path = parse::peek_path(input);
                            self.binding = path.is_some_and(respond::is_binding_path);
                            let label = path_label(path);
                            let n = self.len - self.pos;
                            self.begin_request(sh, label, n);
                            return self.respond(respond::head_error(&e), ctx, None, sh);
                        }
                    }
                }
                State::Body(mut b) => {
                    let input = &self.buf[self.pos..self.len];
                    match b.reader.feed(input, Some(&mut b.body)) {
                        Ok(fed) => {
                            self.pos += fed.consumed;
                            Stats::add(&sh.stats.bytes_received, fed.consumed as u64);
                            if let Some(r) = &mut self.req {
                                r.bytes_in += fed.consumed as u64;
                            }
                            if fed.done {
                                return self.dispatch(*b, sh);
                            }
                            self.state = State::Body(b);
                            return Next::Recv;
                        }
                        Err(e) => {
                            let ctx = ctx_of(&b.head, self.draining);
                            return self.respond(
                                respond::body_error(&b.head.path, e),
                                ctx,
                                None,
                                sh,
                            );
                        }
                    }
                }
                State::Discard(mut reader) => {
                    let input = &self.buf[self.pos..self.len];
                    match reader.feed(input, None) {
                        Ok(fed) => {
                            self.pos += fed.consumed;
                            Stats::add(&sh.stats.discarded_bytes, fed.consumed as u64);
                            if fed.done {
                                self.state = State::Head { scanned: 0 };
                                continue;
                            }
                            self.state = State::Discard(reader);
                            return Next::Recv;
                        }
                        // A broken or oversized body after the response: framing is lost.
                        // Half-close and linger, so the unread bytes cannot become a reset.
                        Err(_) => return self.half_close(),
                    }
                }
                other => {
                    self.state = other;
                    unreachable!("drive in a state that does not read");
                }
            }
        }
    }

    /// Routes a parsed head. Returns `None` to keep driving (a body to read).
    fn start_request(&mut self, head: RequestHead, sh: &Shared) -> Option<Next> {
        let route = route::route(head.method, &head.path);
        let ctx = ctx_of(&head, self.draining);
        let reader = match head.body {
            BodyFraming::None => None,
            BodyFraming::Length(n) => match BodyReader::length(n, sh.config.max_body) {
                Ok(r) => Some(r),
                // Refused before reading: answer at once; the unread body is lingered away.
                Err(e) if route.needs_body() => {
                    return Some(self.respond(respond::body_error(&head.path, e), ctx, None, sh))
                }
                // Not needed anyway: discard (or close) after the response.
                Err(_) => BodyReader::length(n, u64::MAX).ok(),
            },
            BodyFraming::Chunked => Some(BodyReader::chunked(if route.needs_body() {
                sh.config.max_body
            } else {
                sh.config.discard_max
            })),
        };
        if route.needs_body() {
            let reader = reader.unwrap_or_else(|| BodyReader::length(0, 0).expect("empty body"));
            // Reserve for what is declared only up to 16 KiB: a declared length is a promise,
            // not bytes; the buffer grows (doubling) as the body actually arrives. Thousands of
            // clients declaring 16 MiB and sending 3 bytes must not reserve 16 MiB each, and
            // larger up-front reservations left the heap fragmented (RSS crept from 69 to
            // 227 MB over rounds of 3,000 such clients at 64 KiB; ~110 MB at 16 KiB).
            let cap = reader
                .remaining_declared()
                .unwrap_or(64 * 1024)
                .min(16 << 10) as usize;
            let state = Box::new(BodyState {
                head,
                route,
                reader,
                body: Vec::with_capacity(cap),
            });
            if state.head.expect_continue && !state.reader.is_done() && self.pos == self.len {
                self.trace_response(100, CONTINUE.len(), 0);
                self.ledger.push(Bytes::from_static(CONTINUE));
                self.state = State::Writing(After::ReadBody(state));
                return Some(Next::Send);
            }
            self.state = State::Body(state);
            return None;
        }
        let mut response = immediate(&route, sh);
        let unread = reader.filter(|r| !r.is_done());
        if head.expect_continue && unread.is_some() {
            // The client waits for `100 Continue` that will not come: the body may never
            // arrive, so do not wait for it on this connection.
            response = response.closing();
        }
        Some(self.respond(response, ctx, unread, sh))
    }

    /// A body route's body is complete: echo it, or hand the work to the pool.
    fn dispatch(&mut self, b: BodyState, sh: &Shared) -> Next {
        let ctx = ctx_of(&b.head, self.draining);
        let body = Bytes::from(b.body);
        match body_job(b.route, b.head.content_type, b.head.accept, body, sh) {
            BodyJob::Now(r) => self.respond(r, ctx, None, sh),
            BodyJob::Pool(work) => {
                self.state = State::Job(ctx);
                Next::Job(work)
            }
        }
    }

    /// The pool refused the job: answer busy.
    pub fn busy(&mut self, sh: &Shared) -> Next {
        Stats::inc(&sh.stats.jobs_busy);
        let e = ImageError::new(Code::Busy, "the server is busy; retry later");
        self.on_job_done(Response::binding_error(&e), sh)
    }

    pub fn on_job_done(&mut self, r: Response, sh: &Shared) -> Next {
        match std::mem::replace(&mut self.state, State::Closed) {
            State::Job(ctx) => self.respond(r, ctx, None, sh),
            other => {
                self.state = other;
                debug_assert!(false, "job result for a connection not waiting for one");
                Next::Close
            }
        }
    }

    /// Puts a response in the ledger and decides what follows it.
    fn respond(
        &mut self,
        r: Response,
        ctx: ReqCtx,
        unread: Option<BodyReader>,
        sh: &Shared,
    ) -> Next {
        let route = self.req.as_ref().map_or("other", |req| req.route);
        let r = sh.finish_response(r, self.binding, route);
        if let Some(req) = &mut self.req {
            req.status = r.status;
            req.code = r.code;
        }
        // An unread body is discarded to keep the connection only when it is small and its
        // size is known or bounded; otherwise the connection closes (with a lingering close).
        let discard_ok = unread.as_ref().is_none_or(|u| {
            u.remaining_declared()
                .is_none_or(|left| left <= sh.config.discard_max)
        });
        let close = r.close || !ctx.keep_alive || self.draining || !discard_ok;
        let head = r.head(close);
        let body_len = if ctx.head_method { 0 } else { r.body.len() };
        self.trace_response(r.status, head.len(), body_len);
        self.ledger.push(head);
        if !ctx.head_method {
            self.ledger.push(r.body);
        }
        let after = if close {
            After::Close
        } else {
            After::KeepAlive { discard: unread }
        };
        self.state = State::Writing(after);
        Next::Send
    }

    /// Starts tracing a response about to be pushed into the ledger (with `--trace-writes`).
    fn trace_response(&mut self, status: u16, head: usize, body: usize) {
        if self.tracer.is_none() {
            return;
        }
        self.finish_trace("superseded");
        let req = self.req.as_ref().map_or(0, |r| r.id);
        let base = self.ledger.confirmed();
        self.rtrace = Some(ResponseTrace::new(
            self.id,
            req,
            status,
            head as u64,
            body as u64,
            base,
        ));
    }

    /// Writes the traced response's summary record, if one is being traced.
    fn finish_trace(&mut self, outcome: &str) {
        if let (Some(t), Some(rt)) = (&self.tracer, self.rtrace.take()) {
            rt.finish(t, outcome);
        }
    }

    /// A send completed with `res` (bytes or -errno).
    pub fn on_send(&mut self, res: i32, sh: &Shared) -> Next {
        let st = &sh.stats;
        Stats::inc(&st.sends);
        let submitted: usize = self.iov[..self.msg.msg_iovlen]
            .iter()
            .map(|v| v.iov_len)
            .sum();
        if let (Some(t), Some(rt)) = (&self.tracer, &mut self.rtrace) {
            let e = SendEvent {
                offset: self.ledger.confirmed() - rt.base,
                submitted,
                result: res,
                queue: self.queue,
                sample: QueueSample::take(self.fd, self.queue),
            };
            rt.on_send(t, &e);
        }
        if res == -libc::ECANCELED && self.expired {
            Stats::inc(&st.write_stall_aborts);
            let secs = sh.config.write_stall_timeout.as_secs_f64();
            return self.fail_response(
                sh,
                &format!("write stalled for {secs}s: the peer reads nothing"),
            );
        }
        if res < 0 {
            let c = match -res {
                libc::EPIPE => &st.epipe,
                libc::ECONNRESET => &st.econnreset,
                _ => &st.send_errors,
            };
            Stats::inc(c);
            return self.fail_response(
                sh,
                &format!("send failed: {}", std::io::Error::from_raw_os_error(-res)),
            );
        }
        sh.metrics.send_sizes.observe(res as f64);
        match self.ledger.complete(res as usize) {
            Ok(Sent::More) => {
                Stats::add(&st.bytes_sent, res as u64);
                if (res as usize) < submitted {
                    Stats::inc(&st.short_sends);
                }
                Next::Send
            }
            Ok(Sent::Drained(proof)) => {
                Stats::add(&st.bytes_sent, res as u64);
                if (res as usize) < submitted {
                    Stats::inc(&st.short_sends);
                }
                self.drained(proof, sh)
            }
            Err(LedgerError::WriteZero) => {
                Stats::inc(&st.write_zero);
                self.fail_response(sh, "send accepted 0 bytes (WriteZero)")
            }
            Err(e) => self.fail_response(sh, &format!("ledger error: {e:?}")),
        }
    }

    /// The response could not be delivered whole: count it, log it, close (the client sees
    /// EOF before `Content-Length`).
    fn fail_response(&mut self, sh: &Shared, why: &str) -> Next {
        Stats::inc(&sh.stats.responses_failed);
        tracing::info!(
            conn = self.id,
            confirmed = self.ledger.confirmed(),
            owed = self.ledger.owed(),
            "response failed: {why}"
        );
        self.log_request(sh, "failed");
        self.finish_trace("failed");
        self.ledger = Ledger::new();
        self.close()
    }

    fn drained(&mut self, proof: Drained, sh: &Shared) -> Next {
        let State::Writing(after) = std::mem::replace(&mut self.state, State::Closed) else {
            unreachable!("send completion outside Writing");
        };
        if let Some(rt) = &mut self.rtrace {
            rt.on_drained();
        }
        match after {
            After::ReadBody(b) => {
                self.finish_trace("complete");
                self.state = State::Body(b);
                self.drive(sh)
            }
            After::KeepAlive { discard } => {
                Stats::inc(&sh.stats.responses_complete);
                self.log_request(sh, "complete");
                self.finish_trace("complete");
                self.state = match discard {
                    Some(r) => State::Discard(r),
                    None => State::Head { scanned: 0 },
                };
                self.drive(sh)
            }
            After::Close => {
                Stats::inc(&sh.stats.responses_complete);
                self.log_request(sh, "complete");
                if sh.config.confirm == Confirm::Delivered {
                    self.state = State::Confirming {
                        proof,
                        deadline: Instant::now() + sh.config.confirm_timeout,
                        step: CONFIRM_FIRST_STEP,
                    };
                    return self.confirm_check(sh);
                }
                self.state = State::HalfClosing;
                Next::Shutdown(proof)
            }
        }
    }

    /// `--confirm delivered`: half-closes once the send queue is empty (TCP: the peer
    /// acknowledged every byte; AF_UNIX: the peer read every byte) and the socket has no
    /// pending error (a peer that reset or left with the response unread empties the queue
    /// too), or at the deadline; otherwise waits and looks again.
    fn confirm_check(&mut self, sh: &Shared) -> Next {
        let State::Confirming { deadline, step, .. } = &mut self.state else {
            unreachable!("confirm check outside Confirming");
        };
        let now = Instant::now();
        let queued = sys::outq(self.fd);
        let empty = matches!(queued, Ok(0));
        if !empty && now < *deadline {
            let wait = (*step).min(*deadline - now);
            *step = (*step * 2).min(CONFIRM_MAX_STEP);
            self.confirm_ts = Timespec::new()
                .sec(wait.as_secs())
                .nsec(wait.subsec_nanos());
            return Next::ConfirmWait;
        }
        let State::Confirming { proof, .. } =
            std::mem::replace(&mut self.state, State::HalfClosing)
        else {
            unreachable!()
        };
        let err = sys::socket_error(self.fd).ok().flatten();
        match (empty, err) {
            (true, None) => {
                Stats::inc(&sh.stats.confirm_delivered);
                if let Some(rt) = &mut self.rtrace {
                    rt.on_confirmed();
                }
            }
            (true, Some(e)) => {
                Stats::inc(&sh.stats.confirm_failed);
                tracing::info!(conn = self.id, "delivery not confirmed: {e}");
            }
            (false, _) => {
                Stats::inc(&sh.stats.confirm_timeouts);
                let secs = sh.config.confirm_timeout.as_secs_f64();
                tracing::info!(
                    conn = self.id,
                    outq = queued.map_or(-1, |q| q as i64),
                    "delivery not confirmed within {secs}s"
                );
            }
        }
        Next::Shutdown(proof)
    }

    /// The `--confirm delivered` poll interval, for the timer op.
    pub fn confirm_wait(&self) -> *const Timespec {
        &self.confirm_ts
    }

    /// The `--confirm delivered` timer fired.
    pub fn on_confirm_tick(&mut self, sh: &Shared) -> Next {
        if !matches!(self.state, State::Confirming { .. }) {
            debug_assert!(false, "confirm tick outside Confirming");
            return self.close();
        }
        self.confirm_check(sh)
    }

    /// A request starts: counted, in flight until its log line.
    fn begin_request(&mut self, sh: &Shared, route: &'static str, bytes_in: usize) {
        Stats::inc(&sh.stats.requests);
        Stats::inc(&sh.stats.requests_in_flight);
        self.req = Some(ReqLog {
            id: sh.next_request.fetch_add(1, Ordering::Relaxed),
            route,
            started: Instant::now(),
            bytes_in: bytes_in as u64,
            out_base: self.ledger.confirmed(),
            status: 0,
            code: 0,
        });
    }

    /// The shutdown deadline passed with this connection still open: a response it owed is
    /// counted as failed and logged, with the bytes confirmed against the bytes owed.
    /// At the shutdown deadline: whether the connection is mid-exchange — a request being
    /// read or run, or a response with bytes still owed — and is therefore reset. Otherwise
    /// every response it carried is whole in the kernel (waiting for a keep-alive request,
    /// discarding a body, confirming, half-closed, lingering) and a plain close lets the
    /// kernel still deliver it.
    pub fn mid_exchange(&self) -> bool {
        match &self.state {
            State::Body(_) | State::Job(_) => true,
            State::Writing(_) => self.ledger.owed() > 0,
            _ => false,
        }
    }

    pub fn abort(&mut self, sh: &Shared) {
        if matches!(self.state, State::Writing(_)) && self.ledger.owed() > 0 {
            Stats::inc(&sh.stats.responses_failed);
            tracing::info!(
                conn = self.id,
                confirmed = self.ledger.confirmed(),
                owed = self.ledger.owed(),
                "response failed: aborted at the shutdown deadline"
            );
        }
        self.log_request(sh, "aborted");
        self.finish_trace("aborted");
    }

    /// The request's one log line (at `info`, target `lastbyte::request`).
    fn log_request(&mut self, sh: &Shared, outcome: &str) {
        let Some(r) = self.req.take() else { return };
        Stats::dec(&sh.stats.requests_in_flight);
        let (pid, uid) = self.peer.unwrap_or((0, 0));
        tracing::info!(
            target: "lastbyte::request",
            id = r.id,
            conn = self.id,
            ring = self.ring,
            route = r.route,
            status = r.status,
            code = r.code,
            bytes_in = r.bytes_in,
            bytes_out = self.ledger.confirmed() - r.out_base,
            us = r.started.elapsed().as_micros() as u64,
            peer_pid = pid,
            peer_uid = uid,
            outcome,
        );
    }

    /// Half-closes after a drained response (between requests, the ledger is empty).
    fn half_close(&mut self) -> Next {
        match self.ledger.drained_if_empty() {
            Some(proof) => {
                self.state = State::HalfClosing;
                Next::Shutdown(proof)
            }
            None => unreachable!("half_close with bytes owed"),
        }
    }

    /// The half-close completed: start the lingering close.
    pub fn on_shutdown(&mut self, res: i32, sh: &Shared) -> Next {
        if res < 0 {
            return self.close();
        }
        Stats::inc(&sh.stats.half_closes);
        let buffered = (self.len - self.pos) as u64;
        if let Some(rt) = &mut self.rtrace {
            rt.on_half_close(buffered);
        }
        Stats::add(&sh.stats.linger_bytes, buffered);
        self.pos = self.len;
        self.state = State::Lingering {
            deadline: Instant::now() + sh.config.linger_timeout,
            bytes: buffered,
        };
        self.linger_next(sh)
    }

    /// A lingering recv completed with `res` (bytes, 0 = EOF, -ECANCELED = deadline).
    pub fn on_linger(&mut self, res: i32, sh: &Shared) -> Next {
        if res <= 0 {
            if res < 0 {
                Stats::inc(&sh.stats.linger_cut);
            }
            return self.close();
        }
        Stats::add(&sh.stats.linger_bytes, res as u64);
        if let Some(rt) = &mut self.rtrace {
            rt.on_linger(res as u64);
        }
        if let State::Lingering { bytes, .. } = &mut self.state {
            *bytes += res as u64;
        }
        self.pos = self.len;
        self.linger_next(sh)
    }

    fn linger_next(&mut self, sh: &Shared) -> Next {
        let State::Lingering { deadline, bytes } = self.state else {
            unreachable!("linger outside Lingering");
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left == Duration::ZERO || bytes > sh.config.linger_max {
            Stats::inc(&sh.stats.linger_cut);
            return self.close();
        }
        self.linger_ts = Timespec::new()
            .sec(left.as_secs())
            .nsec(left.subsec_nanos());
        Next::Linger
    }

    /// Whether the next recv completion belongs to the lingering close.
    pub fn is_lingering(&self) -> bool {
        matches!(self.state, State::Lingering { .. })
    }

    fn close(&mut self) -> Next {
        let done = self.rtrace.as_ref().is_some_and(|t| t.drained());
        self.finish_trace(if done { "complete" } else { "closed" });
        self.state = State::Closed;
        Next::Close
    }
}

/// Responses that need no body and no CPU pool (both engines).
pub fn immediate(route: &Route, sh: &Shared) -> Response {
    match route {
        Route::Bytes(n) if *n > sh.config.bytes_cap as u64 => Response::text(
            413,
            &format!("/bytes is limited to {} bytes", sh.config.bytes_cap),
        ),
        Route::Bytes(n) => Response::new(
            200,
            "application/octet-stream",
            sh.pattern().slice(..*n as usize),
        ),
        Route::BadBytes => Response::text(
            400,
            "expected /bytes/<n> with n digits and an optional K or M",
        ),
        Route::Healthz => Response::text(200, "ok"),
        Route::Metrics => Response::new(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            sh.metrics
                .render(&sh.stats, sh.open_connections.load(Ordering::Relaxed)),
        ),
        Route::Root => handlers::root_page(),
        Route::NotFound => Response::text(404, "not found"),
        Route::NotImplemented => Response::text(501, "method not implemented").closing(),
        Route::MethodNotAllowed(allow) => {
            Response::text(405, "method not allowed").with_header("allow", allow.to_string())
        }
        Route::Transform | Route::Info | Route::Echo | Route::ImageUrl(_) => {
            unreachable!("body routes are dispatched after reading the body")
        }
    }
}

/// What a body route does once its body is complete (both engines).
pub enum BodyJob {
    /// Answer now (`/echo`).
    Now(Response),
    /// Run on the CPU pool.
    Pool(Work),
}

/// The work for a body route: `content_type` and `accept` are the request's headers.
pub fn body_job(
    route: Route,
    content_type: Option<String>,
    accept: Option<String>,
    body: Bytes,
    sh: &Shared,
) -> BodyJob {
    let ct = content_type;
    BodyJob::Pool(match route {
        Route::Echo => {
            let ct = ct.unwrap_or_else(|| "application/octet-stream".into());
            return BodyJob::Now(Response::new(200, &ct, body));
        }
        Route::Transform => {
            let limits = sh.config.limits.clone();
            timed(sh, move || {
                handlers::transform(ct.as_deref(), body, &limits)
            })
        }
        Route::Info => timed(sh, move || handlers::info(ct.as_deref(), body)),
        Route::ImageUrl(options) => {
            let limits = sh.config.limits.clone();
            timed(sh, move || {
                handlers::image_url(&options, accept.as_deref(), body, &limits)
            })
        }
        _ => unreachable!("only body routes are dispatched"),
    })
}

/// The metrics/log label for a request known only by its (partial) request line.
fn path_label(path: Option<&str>) -> &'static str {
    match path {
        Some("/transform") => "transform",
        Some("/info") => "info",
        _ => "other",
    }
}

/// Wraps a pool job so its duration is recorded by output type.
fn timed(sh: &Shared, f: impl FnOnce() -> Response + Send + 'static) -> Work {
    let m = sh.metrics.clone();
    Box::new(move || {
        let t = Instant::now();
        let r = f();
        let output = if r.status == 200 {
            r.headers
                .iter()
                .find(|(k, _)| *k == "content-type")
                .map_or("unknown", |(_, v)| v.as_str())
        } else {
            "error"
        };
        m.observe_job(output, t.elapsed());
        r
    })
}

fn ctx_of(head: &RequestHead, draining: bool) -> ReqCtx {
    ReqCtx {
        head_method: head.method == Method::Head,
        keep_alive: head.keep_alive && !draining,
    }
}
