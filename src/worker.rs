//! One ring on one thread: accepts, dispatches completions to connections, and submits the
//! operation each one asks for next. Every worker owns its ring and its connections; they
//! share the listening sockets, the CPU pool and the counters.

use crate::config::Confirm;
use crate::conn::{Conn, ConnInit, Next, Shared};
use crate::io::ring::{Kind, Ring, Token};
use crate::io::sys;
use crate::pool::{Mailbox, Pool};
use crate::server::Exit;
use crate::stats::Stats;
use crate::trace::Queue;
use io_uring::types::Timespec;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Submission queue size of a ring.
const RING_ENTRIES: u32 = 1024;
/// `Token::slot` of the deadline tick.
const TICK: u32 = 1;

struct Slot {
    conn: Box<Conn>,
    fd: RawFd,
    gen: u32,
    /// Completions still to come for this slot (an op, plus a linked timeout).
    inflight: u32,
    /// The close op was submitted; the slot is freed when `inflight` reaches 0.
    closing: bool,
    /// The recv or send in flight, if any (what a timeout or a drain cancels).
    pending: Option<Kind>,
    /// A cancel for `pending` was requested; its completion is awaited, never forgotten.
    cancelling: bool,
}

pub struct Worker {
    ring: Ring,
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    live: usize,
    next_gen: u32,
    /// Which ring this is (labels in logs and metrics).
    id: usize,
    /// Listening sockets this ring accepts on (owned by the server).
    listen_fds: Vec<RawFd>,
    accepting: Vec<bool>,
    wake_buf: Box<[u8; 8]>,
    tick_ts: Box<Timespec>,
    shared: Arc<Shared>,
    pool: Arc<Pool>,
    mailbox: Arc<Mailbox>,
    draining: bool,
}

impl Worker {
    pub fn new(
        id: usize,
        listen_fds: Vec<RawFd>,
        shared: Arc<Shared>,
        pool: Arc<Pool>,
        mailbox: Arc<Mailbox>,
    ) -> io::Result<Worker> {
        Ok(Worker {
            ring: Ring::new(RING_ENTRIES)?,
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            next_gen: 1,
            accepting: vec![false; listen_fds.len()],
            listen_fds,
            wake_buf: Box::new([0; 8]),
            tick_ts: Box::new(Timespec::new()),
            shared,
            pool,
            mailbox,
            draining: false,
            id,
        })
    }

    /// Runs until the server drains (every connection finished) or aborts.
    pub fn run(&mut self) -> io::Result<Exit> {
        for i in 0..self.listen_fds.len() {
            self.arm_accept(i)?;
        }
        self.arm_wake()?;
        self.arm_tick()?;
        if self.shared.draining() {
            self.start_drain()?;
        }
        let mut cqes = Vec::with_capacity(256);
        loop {
            if self.draining && self.live == 0 && !self.accepting.iter().any(|a| *a) {
                return Ok(Exit::Drained);
            }
            self.ring.wait(&mut cqes)?;
            for (ud, res) in cqes.drain(..) {
                let Some(t) = Token::decode(ud) else {
                    continue;
                };
                if let Some(exit) = self.complete(t, res)? {
                    Stats::add(&self.shared.stats.shutdown_aborts, self.live as u64);
                    self.reset_live();
                    return Ok(exit);
                }
                self.ring.flush()?;
            }
        }
    }

    /// Aborting: every connection mid-exchange is set to reset when the process exits
    /// (SO_LINGER 0), so a TCP peer sees ECONNRESET rather than a FIN that could pass for
    /// the end of a response. (AF_UNIX has no reset: the peer sees EOF short of the
    /// `Content-Length` every response carries.) A connection whose responses are all whole
    /// in the kernel is closed plainly, after dropping unread input (≤ `--linger-max`), so
    /// the kernel still delivers what the client has not read yet.
    fn reset_live(&mut self) {
        for s in self.slots.iter_mut().flatten() {
            let mid = s.conn.mid_exchange();
            s.conn.abort(&self.shared);
            if mid {
                let _ = sys::set_linger_zero(s.fd);
            } else {
                sys::discard_pending_input(s.fd, self.shared.config.linger_max);
            }
        }
    }

    fn arm_accept(&mut self, i: usize) -> io::Result<()> {
        let fd = self.listen_fds[i];
        self.ring
            .accept(Token::new(i as u32, 0, Kind::Accept), fd)?;
        self.accepting[i] = true;
        Ok(())
    }

    fn arm_wake(&mut self) -> io::Result<()> {
        let buf = self.wake_buf.as_mut_ptr();
        // SAFETY: `wake_buf` is boxed and lives as long as the loop.
        unsafe {
            self.ring
                .read(Token::new(0, 0, Kind::Wake), self.mailbox.wake_fd(), buf, 8)
        }
    }

    /// Arms the timer that checks connection deadlines: a quarter of the shortest timeout,
    /// between 10 ms and 500 ms.
    fn arm_tick(&mut self) -> io::Result<()> {
        let c = &self.shared.config;
        let shortest = [
            c.header_timeout,
            c.body_timeout,
            c.idle_timeout,
            c.write_stall_timeout,
        ]
        .into_iter()
        .min()
        .unwrap_or(Duration::from_secs(1));
        let tick = (shortest / 4).clamp(Duration::from_millis(10), Duration::from_millis(500));
        *self.tick_ts = Timespec::new()
            .sec(tick.as_secs())
            .nsec(tick.subsec_nanos());
        let ts: *const Timespec = &*self.tick_ts;
        // SAFETY: `tick_ts` is boxed and lives as long as the loop; one tick is armed at a time.
        unsafe { self.ring.timer(Token::new(TICK, 0, Kind::Timer), ts) }
    }

    /// Cancels the operation of every connection whose deadline passed. The cancelled
    /// operation still completes, and its result still counts.
    fn expire_deadlines(&mut self) -> io::Result<()> {
        let now = Instant::now();
        for (i, s) in self.slots.iter_mut().enumerate() {
            let Some(s) = s else { continue };
            let (Some(kind), false) = (s.pending, s.cancelling) else {
                continue;
            };
            if s.conn.deadline().is_some_and(|d| d <= now) {
                s.conn.expire();
                s.cancelling = true;
                self.ring.cancel(Token::new(i as u32, s.gen, kind))?;
            }
        }
        Ok(())
    }

    /// Handles one completion; `Some` ends the loop.
    fn complete(&mut self, t: Token, res: i32) -> io::Result<Option<Exit>> {
        match t.kind {
            Kind::Accept => self.on_accept(t.slot as usize, res)?,
            Kind::Wake => {
                let sh = self.shared.clone();
                for (key, resp) in self.mailbox.take() {
                    let t = Token::decode(key).expect("job keys are tokens");
                    if let Some(slot) = self.slot_mut(t) {
                        let next = slot.conn.on_job_done(resp, &sh);
                        self.execute(t.slot, next)?;
                    }
                }
                if self.shared.aborting() {
                    return Ok(Some(Exit::Aborted));
                }
                if self.shared.draining() && !self.draining {
                    self.start_drain()?;
                }
                self.arm_wake()?;
            }
            Kind::Timer if t.slot == TICK => {
                self.expire_deadlines()?;
                self.arm_tick()?;
            }
            Kind::Cancel | Kind::Timer | Kind::Signal => {}
            Kind::Recv
            | Kind::Send
            | Kind::Shutdown
            | Kind::Close
            | Kind::RecvTimeout
            | Kind::ConfirmTimer => self.on_conn_op(t, res)?,
        }
        Ok(None)
    }

    fn on_accept(&mut self, i: usize, res: i32) -> io::Result<()> {
        self.accepting[i] = false;
        if res >= 0 {
            // SAFETY: a successful accept returns a new descriptor that we now own.
            let fd = unsafe { OwnedFd::from_raw_fd(res) };
            Stats::inc(&self.shared.stats.connections);
            if self.shared.config.send_buffer > 0 {
                if let Err(e) = sys::set_send_buffer(fd.as_raw_fd(), self.shared.config.send_buffer)
                {
                    tracing::warn!("SO_SNDBUF: {e}");
                }
            }
            let open = self.shared.open_connections.fetch_add(1, Ordering::Relaxed);
            let over = open >= self.shared.config.max_connections;
            let slot = self.insert(fd);
            let conn = &mut self.slots[slot as usize]
                .as_mut()
                .expect("just inserted")
                .conn;
            // Accepted as the drain began: served like any other (one request, then close).
            if self.draining || self.shared.draining() {
                conn.set_draining();
            }
            let next = if over {
                conn.refuse(&self.shared)
            } else {
                conn.start()
            };
            self.execute(slot, next)?;
        } else if res != -libc::ECANCELED && !self.shared.draining() {
            tracing::warn!("accept failed: {}", io::Error::from_raw_os_error(-res));
        }
        // Draining: the listener has been shut down, so accept would only fail again.
        if !self.draining && !self.shared.draining() {
            self.arm_accept(i)?;
        }
        Ok(())
    }

    fn insert(&mut self, fd: OwnedFd) -> u32 {
        let gen = self.next_gen;
        self.next_gen = (self.next_gen + 1) & 0xFF_FFFF;
        let id = self.shared.next_connection.fetch_add(1, Ordering::Relaxed);
        let peer = sys::peer_credentials(fd.as_raw_fd());
        if let Some(c) = self.shared.metrics.ring_connections.get(self.id) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let sh = &self.shared;
        let queue = if sh.tracer.is_some() || sh.config.confirm == Confirm::Delivered {
            Queue::of(fd.as_raw_fd())
        } else {
            Queue::Other
        };
        let init = ConnInit {
            ring: self.id,
            peer,
            fd: fd.as_raw_fd(),
            queue,
            tracer: sh.tracer.clone(),
        };
        let mut conn = Conn::new(id, init);
        if self.draining {
            conn.set_draining();
        }
        let slot = Slot {
            conn,
            fd: fd_into_raw(fd),
            gen,
            inflight: 0,
            closing: false,
            pending: None,
            cancelling: false,
        };
        self.live += 1;
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(slot);
                i
            }
            None => {
                self.slots.push(Some(slot));
                (self.slots.len() - 1) as u32
            }
        }
    }

    fn slot_mut(&mut self, t: Token) -> Option<&mut Slot> {
        self.slots
            .get_mut(t.slot as usize)?
            .as_mut()
            .filter(|s| s.gen == t.gen)
    }

    fn on_conn_op(&mut self, t: Token, res: i32) -> io::Result<()> {
        let sh = self.shared.clone();
        let Some(slot) = self.slot_mut(t) else {
            debug_assert!(false, "completion for a freed slot: {t:?}");
            return Ok(());
        };
        slot.inflight -= 1;
        if matches!(t.kind, Kind::Recv | Kind::Send) {
            slot.pending = None;
            slot.cancelling = false;
        }
        let next = match t.kind {
            Kind::Recv => {
                if slot.conn.is_lingering() {
                    Some(slot.conn.on_linger(res, &sh))
                } else {
                    Some(slot.conn.on_recv(res, &sh))
                }
            }
            Kind::Send => Some(slot.conn.on_send(res, &sh)),
            Kind::Shutdown => Some(slot.conn.on_shutdown(res, &sh)),
            Kind::ConfirmTimer => Some(slot.conn.on_confirm_tick(&sh)),
            Kind::Close | Kind::RecvTimeout => None,
            _ => unreachable!("not a connection op"),
        };
        match next {
            Some(next) => self.execute(t.slot, next)?,
            None => self.maybe_free(t.slot),
        }
        Ok(())
    }

    fn maybe_free(&mut self, i: u32) {
        let done = matches!(&self.slots[i as usize], Some(s) if s.closing && s.inflight == 0);
        if done {
            self.slots[i as usize] = None;
            self.free.push(i);
            self.live -= 1;
            self.shared.open_connections.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Submits the operation a connection asked for.
    fn execute(&mut self, i: u32, mut next: Next) -> io::Result<()> {
        loop {
            let slot = self.slots[i as usize].as_mut().expect("live slot");
            let tok = |k| Token::new(i, slot.gen, k);
            slot.conn.update_timer(&next, &self.shared);
            match next {
                Next::Recv => {
                    let (buf, len) = slot.conn.recv_buf();
                    // SAFETY: the buffer belongs to the boxed connection, which is freed only
                    // after every completion for it arrived; it is not touched until then.
                    unsafe { self.ring.recv(tok(Kind::Recv), slot.fd, buf, len, None)? };
                    slot.inflight += 1;
                    slot.pending = Some(Kind::Recv);
                    if self.draining && slot.conn.is_idle() {
                        slot.cancelling = true;
                        self.ring.cancel(tok(Kind::Recv))?;
                    }
                }
                Next::Linger => {
                    let (buf, len) = slot.conn.recv_buf();
                    let ts = slot.conn.linger_timeout();
                    // SAFETY: as for Recv; the timespec lives in the same boxed connection.
                    unsafe {
                        self.ring
                            .recv(tok(Kind::Recv), slot.fd, buf, len, Some(ts))?
                    };
                    slot.inflight += 2;
                }
                Next::Send => {
                    let msg = slot.conn.prepare_send();
                    // SAFETY: the msghdr, iovecs and buffers live in the boxed connection and
                    // its ledger until this send's completion.
                    unsafe { self.ring.send(tok(Kind::Send), slot.fd, msg)? };
                    slot.inflight += 1;
                    slot.pending = Some(Kind::Send);
                }
                Next::ConfirmWait => {
                    let ts = slot.conn.confirm_wait();
                    // SAFETY: the timespec lives in the boxed connection, freed only after
                    // every completion for it arrived; it is not changed until this one.
                    unsafe { self.ring.timer(tok(Kind::ConfirmTimer), ts)? };
                    slot.inflight += 1;
                }
                Next::Shutdown(proof) => {
                    self.ring.shutdown(tok(Kind::Shutdown), slot.fd, proof)?;
                    slot.inflight += 1;
                }
                Next::Close => {
                    self.ring.close(tok(Kind::Close), slot.fd)?;
                    slot.inflight += 1;
                    slot.closing = true;
                }
                Next::Job(work) => {
                    let key = tok(Kind::Recv).encode();
                    if self
                        .pool
                        .try_submit(key, &self.mailbox, work, Some(slot.fd))
                        .is_err()
                    {
                        next = slot.conn.busy(&self.shared);
                        continue;
                    }
                }
            }
            return Ok(());
        }
    }

    fn start_drain(&mut self) -> io::Result<()> {
        tracing::debug!(ring = self.id, open = self.live, "draining");
        self.draining = true;
        for (i, a) in self.accepting.iter().enumerate() {
            if *a {
                self.ring.cancel(Token::new(i as u32, 0, Kind::Accept))?;
            }
        }
        for (i, s) in self.slots.iter_mut().enumerate() {
            if let Some(s) = s {
                s.conn.set_draining();
                if s.pending == Some(Kind::Recv) && !s.cancelling && s.conn.is_idle() {
                    s.cancelling = true;
                    self.ring.cancel(Token::new(i as u32, s.gen, Kind::Recv))?;
                }
            }
        }
        Ok(())
    }
}

fn fd_into_raw(fd: OwnedFd) -> RawFd {
    use std::os::fd::IntoRawFd;
    // Ownership passes to the slot; the ring's close op releases it.
    fd.into_raw_fd()
}
