//! The write trace (`--trace-writes PATH`): what every send completion said, as JSON lines.
//!
//! One `send` record per send completion and one `response` record per response (a `100
//! Continue` is a response of its own, status 100). Records carry the connection id and the
//! request id of the request log line, and two clocks: `ns`, time since the response was put in
//! the ledger, and `mono_ns`, `CLOCK_MONOTONIC` (the same clock as any other process's, so a
//! client can join its own samples to the server's records).
//!
//! After each completion the socket's send queue is sampled (`outq`), and its unit is named:
//! on TCP `SIOCOUTQ` is payload bytes not yet acknowledged (and `unsent`, `SIOCOUTQNSD`, the
//! part not yet sent); on AF_UNIX it is kernel memory charged to the socket (the `truesize` of
//! the buffers the peer has not yet read), not payload. Only the reader's `SIOCINQ` is exact
//! payload on AF_UNIX.
//!
//! [`ResponseTrace`] is the sans-IO bookkeeping; [`Tracer`] owns the file. Off by default: the
//! connection then holds no trace and pays one branch per completion.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::fd::RawFd;
use std::path::Path;
use std::sync::Mutex;

use crate::io::sys;

/// What a socket's send-queue sample measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// AF_UNIX: `SIOCOUTQ` is kernel memory (skb truesize) the peer has not yet freed.
    UnixKmem,
    /// TCP: `SIOCOUTQ` is payload not yet acknowledged; `SIOCOUTQNSD` payload not yet sent.
    TcpPayload,
    /// Another family (not sampled).
    Other,
}

impl Queue {
    /// Classifies a connected socket.
    pub fn of(fd: RawFd) -> Queue {
        match sys::socket_family(fd) {
            Ok(libc::AF_UNIX) => Queue::UnixKmem,
            Ok(libc::AF_INET | libc::AF_INET6) => Queue::TcpPayload,
            _ => Queue::Other,
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Queue::UnixKmem => "unix_kmem_bytes",
            Queue::TcpPayload => "tcp_payload_bytes",
            Queue::Other => "none",
        }
    }
}

/// One sample of a socket's send queue.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueSample {
    pub outq: Option<usize>,
    /// TCP only: bytes not yet sent (`SIOCOUTQNSD`).
    pub unsent: Option<usize>,
}

impl QueueSample {
    pub fn take(fd: RawFd, q: Queue) -> QueueSample {
        match q {
            Queue::UnixKmem => QueueSample {
                outq: sys::outq(fd).ok(),
                unsent: None,
            },
            Queue::TcpPayload => QueueSample {
                outq: sys::outq(fd).ok(),
                unsent: sys::outq_unsent(fd).ok(),
            },
            Queue::Other => QueueSample::default(),
        }
    }
}

/// The trace file. Lines are buffered and written whole; the buffer is flushed after every
/// `response` record, so a finished response's records are on disk when its client has it.
pub struct Tracer {
    out: Mutex<BufWriter<File>>,
}

impl Tracer {
    pub fn create(path: &Path) -> io::Result<Tracer> {
        let f = File::create(path)?;
        Ok(Tracer {
            out: Mutex::new(BufWriter::with_capacity(64 * 1024, f)),
        })
    }

    fn write(&self, line: &str, flush: bool) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        // A full disk must not take the server down: the trace is best effort.
        let _ = out.write_all(line.as_bytes());
        if flush {
            let _ = out.flush();
        }
    }

    pub fn flush(&self) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = out.flush();
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        self.flush();
    }
}

/// One response's running totals, from the moment it is put in the ledger to its close.
#[derive(Debug)]
pub struct ResponseTrace {
    pub conn: u64,
    pub req: u64,
    pub status: u16,
    pub head_bytes: u64,
    pub body_bytes: u64,
    /// The ledger's confirmed count when the response was pushed (offsets are relative to it).
    pub base: u64,
    started_mono: u64,
    sends: u64,
    short_sends: u64,
    /// Sum of positive send results.
    sent: u64,
    drained_ns: Option<u64>,
    confirmed_ns: Option<u64>,
    half_close_ns: Option<u64>,
    lingered: u64,
}

/// A completed send, as the trace records it.
pub struct SendEvent {
    /// Bytes of this response confirmed before this send.
    pub offset: u64,
    pub submitted: usize,
    /// The completion's result: bytes, or `-errno`.
    pub result: i32,
    pub queue: Queue,
    pub sample: QueueSample,
}

impl ResponseTrace {
    pub fn new(conn: u64, req: u64, status: u16, head: u64, body: u64, base: u64) -> Self {
        ResponseTrace {
            conn,
            req,
            status,
            head_bytes: head,
            body_bytes: body,
            base,
            started_mono: sys::monotonic_ns(),
            sends: 0,
            short_sends: 0,
            sent: 0,
            drained_ns: None,
            confirmed_ns: None,
            half_close_ns: None,
            lingered: 0,
        }
    }

    fn since_start(&self, now: u64) -> u64 {
        now.saturating_sub(self.started_mono)
    }

    /// Accounts one send completion and writes its record.
    pub fn on_send(&mut self, t: &Tracer, e: &SendEvent) {
        let now = sys::monotonic_ns();
        self.sends += 1;
        if e.result > 0 {
            self.sent += e.result as u64;
            if (e.result as usize) < e.submitted {
                self.short_sends += 1;
            }
        }
        let mut s = String::with_capacity(256);
        let _ = write!(
            s,
            r#"{{"type":"send","conn":{},"req":{},"offset":{},"submitted":{},"result":{},"ns":{},"mono_ns":{},"outq_unit":"{}""#,
            self.conn,
            self.req,
            e.offset,
            e.submitted,
            e.result,
            self.since_start(now),
            now,
            e.queue.unit()
        );
        if let Some(q) = e.sample.outq {
            let _ = write!(s, r#","outq":{q}"#);
        }
        if let Some(u) = e.sample.unsent {
            let _ = write!(s, r#","unsent":{u}"#);
        }
        s.push_str("}\n");
        t.write(&s, false);
    }

    /// The ledger confirmed the last byte.
    pub fn on_drained(&mut self) {
        self.drained_ns = Some(self.since_start(sys::monotonic_ns()));
    }

    /// `--confirm delivered` saw the send queue empty.
    pub fn on_confirmed(&mut self) {
        self.confirmed_ns = Some(self.since_start(sys::monotonic_ns()));
    }

    /// The half-close completed; `buffered` request bytes were already read and are discarded.
    pub fn on_half_close(&mut self, buffered: u64) {
        self.half_close_ns = Some(self.since_start(sys::monotonic_ns()));
        self.lingered += buffered;
    }

    /// Request bytes read and discarded by the lingering close.
    pub fn on_linger(&mut self, n: u64) {
        self.lingered += n;
    }

    /// Writes the response's summary record (and flushes the file).
    pub fn finish(self, t: &Tracer, outcome: &str) {
        let opt = |v: Option<u64>| v.map_or_else(|| "null".to_string(), |v| v.to_string());
        let now = sys::monotonic_ns();
        let line = format!(
            concat!(
                r#"{{"type":"response","conn":{},"req":{},"status":{},"head_bytes":{},"#,
                r#""body_bytes":{},"sent":{},"sends":{},"short_sends":{},"drained_ns":{},"#,
                r#""confirmed_ns":{},"half_close_ns":{},"lingered":{},"ns":{},"mono_ns":{},"#,
                r#""outcome":"{}"}}"#,
                "\n"
            ),
            self.conn,
            self.req,
            self.status,
            self.head_bytes,
            self.body_bytes,
            self.sent,
            self.sends,
            self.short_sends,
            opt(self.drained_ns),
            opt(self.confirmed_ns),
            opt(self.half_close_ns),
            self.lingered,
            self.since_start(now),
            now,
            outcome
        );
        t.write(&line, true);
    }

    pub fn drained(&self) -> bool {
        self.drained_ns.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).expect(l))
            .collect()
    }

    #[test]
    fn records_are_json_and_add_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let t = Tracer::create(&path).unwrap();
        let mut r = ResponseTrace::new(7, 9, 200, 100, 1000, 5);
        let mut offset = 0;
        for (submitted, result) in [(1100, 400), (700, 700)] {
            let e = SendEvent {
                offset,
                submitted,
                result,
                queue: Queue::TcpPayload,
                sample: QueueSample {
                    outq: Some(12),
                    unsent: Some(3),
                },
            };
            r.on_send(&t, &e);
            offset += result as u64;
        }
        r.on_drained();
        r.on_half_close(4);
        r.on_linger(6);
        r.finish(&t, "complete");
        let v = lines(&path);
        assert_eq!(v.len(), 3);
        assert_eq!(v[0]["type"], "send");
        assert_eq!(v[0]["outq_unit"], "tcp_payload_bytes");
        assert_eq!(v[1]["offset"], 400);
        assert_eq!(v[1]["unsent"], 3);
        let s = &v[2];
        assert_eq!(s["sent"], 1100);
        assert_eq!(s["sends"], 2);
        assert_eq!(s["short_sends"], 1);
        assert_eq!(s["lingered"], 10);
        assert_eq!(s["confirmed_ns"], serde_json::Value::Null);
        assert!(s["half_close_ns"].as_u64().unwrap() >= s["drained_ns"].as_u64().unwrap());
    }

    #[test]
    fn errors_are_recorded_but_not_counted_as_sent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let t = Tracer::create(&path).unwrap();
        let mut r = ResponseTrace::new(1, 1, 200, 10, 10, 0);
        let e = SendEvent {
            offset: 0,
            submitted: 20,
            result: -libc::EPIPE,
            queue: Queue::UnixKmem,
            sample: QueueSample::default(),
        };
        r.on_send(&t, &e);
        r.finish(&t, "failed");
        let v = lines(&path);
        assert_eq!(v[0]["result"], -libc::EPIPE);
        assert!(v[0].get("outq").is_none());
        assert_eq!(v[1]["sent"], 0);
        assert_eq!(v[1]["drained_ns"], serde_json::Value::Null);
        assert_eq!(v[1]["outcome"], "failed");
    }
}
