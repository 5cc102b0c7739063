//! The io_uring wrapper: the only code that builds SQEs and reads CQEs.
//!
//! Every operation is tagged with a [`Token`] (slot, generation, kind). The caller keeps the
//! memory an operation uses (buffers, iovecs, msghdr, timespec) alive and unmoved until the
//! operation's completion arrives; every method here is `unsafe` where that is the caller's duty.

use super::ledger::Drained;
use io_uring::{opcode, squeue, types, IoUring};
use std::io;
use std::os::fd::RawFd;

/// What an operation was, carried in `user_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Accept = 1,
    Recv,
    Send,
    Shutdown,
    Close,
    /// A linked timeout on a recv.
    RecvTimeout,
    /// An `AsyncCancel` request.
    Cancel,
    /// The pool's eventfd.
    Wake,
    /// The signalfd.
    Signal,
    /// A standalone timer.
    Timer,
    /// A connection's `--confirm delivered` poll timer.
    ConfirmTimer,
}

impl Kind {
    fn from_u8(v: u8) -> Option<Kind> {
        use Kind::*;
        [
            Accept,
            Recv,
            Send,
            Shutdown,
            Close,
            RecvTimeout,
            Cancel,
            Wake,
            Signal,
            Timer,
            ConfirmTimer,
        ]
        .into_iter()
        .find(|k| *k as u8 == v)
    }
}

/// `user_data` layout: slot (32 bits) | generation (24 bits) | kind (8 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub slot: u32,
    pub gen: u32,
    pub kind: Kind,
}

impl Token {
    pub fn new(slot: u32, gen: u32, kind: Kind) -> Token {
        Token {
            slot,
            gen: gen & 0xFF_FFFF,
            kind,
        }
    }

    pub fn encode(self) -> u64 {
        (self.slot as u64) << 32 | ((self.gen as u64 & 0xFF_FFFF) << 8) | self.kind as u64
    }

    pub fn decode(v: u64) -> Option<Token> {
        Some(Token {
            slot: (v >> 32) as u32,
            gen: ((v >> 8) & 0xFF_FFFF) as u32,
            kind: Kind::from_u8(v as u8)?,
        })
    }
}

pub struct Ring {
    ring: IoUring,
    /// A send is queued but not yet handed to the kernel.
    send_queued: bool,
}

impl Ring {
    /// A ring for the calling thread alone: completions are processed only when this thread
    /// waits (`DEFER_TASKRUN` + `SINGLE_ISSUER`, Linux 6.1), so the kernel does not interrupt
    /// it to run them; on older kernels a plain ring.
    pub fn new(entries: u32) -> io::Result<Ring> {
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(entries)
            .or_else(|_| IoUring::new(entries))?;
        Ok(Ring {
            ring,
            send_queued: false,
        })
    }

    fn push(&mut self, sqe: squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: the entry's memory obligations are stated by each caller below.
            if unsafe { self.ring.submission().push(&sqe) }.is_ok() {
                return Ok(());
            }
            // Submission queue full: hand what is queued to the kernel and retry.
            self.ring.submit()?;
        }
    }

    /// # Safety
    /// `fd` is a listening socket that stays open until the completion.
    pub fn accept(&mut self, t: Token, fd: RawFd) -> io::Result<()> {
        let sqe = opcode::Accept::new(types::Fd(fd), std::ptr::null_mut(), std::ptr::null_mut())
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(t.encode());
        self.push(sqe)
    }

    /// Receives into `buf`; with `timeout`, a linked timeout cancels it (two completions).
    ///
    /// # Safety
    /// `buf` and `timeout` must stay valid and unmoved until the completion(s) arrive.
    pub unsafe fn recv(
        &mut self,
        t: Token,
        fd: RawFd,
        buf: *mut u8,
        len: usize,
        timeout: Option<*const types::Timespec>,
    ) -> io::Result<()> {
        let mut sqe = opcode::Recv::new(types::Fd(fd), buf, len.min(u32::MAX as usize) as u32)
            .build()
            .user_data(t.encode());
        if let Some(ts) = timeout {
            sqe = sqe.flags(squeue::Flags::IO_LINK);
            self.push(sqe)?;
            // SAFETY: the caller keeps `*ts` alive until the timeout's completion.
            let lt = opcode::LinkTimeout::new(ts)
                .build()
                .user_data(Token::new(t.slot, t.gen, Kind::RecvTimeout).encode());
            return self.push(lt);
        }
        self.push(sqe)
    }

    /// Sends `iov` with `MSG_NOSIGNAL` (never SIGPIPE): `IORING_OP_SEND` for one buffer,
    /// `IORING_OP_SENDMSG` for several.
    ///
    /// # Safety
    /// `msg` and the iovecs and buffers it points to must stay valid until the completion.
    pub unsafe fn send(&mut self, t: Token, fd: RawFd, msg: *const libc::msghdr) -> io::Result<()> {
        // SAFETY: the caller guarantees `msg` is valid.
        let m = unsafe { &*msg };
        let sqe = if m.msg_iovlen == 1 {
            // SAFETY: msg_iov points to at least one valid iovec.
            let iov = unsafe { &*m.msg_iov };
            opcode::Send::new(types::Fd(fd), iov.iov_base as *const u8, iov.iov_len as u32)
                .flags(libc::MSG_NOSIGNAL)
                .build()
        } else {
            opcode::SendMsg::new(types::Fd(fd), msg)
                .flags(libc::MSG_NOSIGNAL as u32)
                .build()
        };
        self.send_queued = true;
        self.push(sqe.user_data(t.encode()))
    }

    /// Half-closes (`SHUT_WR`). Takes the ledger's [`Drained`] proof: a shutdown with bytes
    /// still owed cannot be written.
    pub fn shutdown(&mut self, t: Token, fd: RawFd, _proof: Drained) -> io::Result<()> {
        let sqe = opcode::Shutdown::new(types::Fd(fd), libc::SHUT_WR)
            .build()
            .user_data(t.encode());
        self.push(sqe)
    }

    pub fn close(&mut self, t: Token, fd: RawFd) -> io::Result<()> {
        let sqe = opcode::Close::new(types::Fd(fd))
            .build()
            .user_data(t.encode());
        self.push(sqe)
    }

    /// Asks the kernel to cancel the operation tagged `target`; its own completion still comes.
    pub fn cancel(&mut self, target: Token) -> io::Result<()> {
        let sqe = opcode::AsyncCancel::new(target.encode())
            .build()
            .user_data(Token::new(0, 0, Kind::Cancel).encode());
        self.push(sqe)
    }

    /// Reads into `buf` (eventfd, signalfd).
    ///
    /// # Safety
    /// `buf` must stay valid and unmoved until the completion.
    pub unsafe fn read(&mut self, t: Token, fd: RawFd, buf: *mut u8, len: u32) -> io::Result<()> {
        let sqe = opcode::Read::new(types::Fd(fd), buf, len)
            .build()
            .user_data(t.encode());
        self.push(sqe)
    }

    /// A timer completing after `*ts`.
    ///
    /// # Safety
    /// `ts` must stay valid until the completion.
    pub unsafe fn timer(&mut self, t: Token, ts: *const types::Timespec) -> io::Result<()> {
        let sqe = opcode::Timeout::new(ts).build().user_data(t.encode());
        self.push(sqe)
    }

    /// Hands a queued send (and whatever is queued with it) to the kernel now, without
    /// waiting. The worker calls it after each completion it handles, so a response goes out
    /// as soon as it is ready rather than after the whole batch: the client starts on it while
    /// the ring works on the rest. Other operations (receives, timers) wait for [`Ring::wait`].
    pub fn flush(&mut self) -> io::Result<()> {
        if !std::mem::take(&mut self.send_queued) {
            return Ok(());
        }
        match self.ring.submit() {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Submits what is queued and waits for at least one completion; returns them all as
    /// `(user_data, result)`.
    pub fn wait(&mut self, out: &mut Vec<(u64, i32)>) -> io::Result<()> {
        self.send_queued = false;
        match self.ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
            Err(e) => return Err(e),
        }
        out.extend(self.ring.completion().map(|c| (c.user_data(), c.result())));
        Ok(())
    }
}
