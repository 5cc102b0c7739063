//! The only place with raw `libc` calls.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Turns a `-1` return into the thread's `errno`.
macro_rules! syscall {
    ($e:expr) => {{
        // SAFETY: each caller passes valid arguments for the named syscall (see call sites).
        let r = unsafe { $e };
        if r == -1 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r)
        }
    }};
}

/// A non-blocking eventfd, used by the CPU pool to wake a ring.
pub fn eventfd() -> io::Result<OwnedFd> {
    let fd = syscall!(libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK))?;
    // SAFETY: `fd` was just returned by eventfd and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds 1 to an eventfd's counter (wakes the ring reading it).
pub fn eventfd_notify(fd: RawFd) {
    let one: u64 = 1;
    // EAGAIN (counter saturated) still leaves the reader woken, so the result is not needed.
    let _ = syscall!(libc::write(fd, (&one as *const u64).cast(), 8));
}

/// Blocks SIGINT and SIGTERM in this thread (and threads it spawns later) and returns a
/// signalfd that reports them, so the ring reads signals as ordinary completions.
pub fn signalfd_for_shutdown() -> io::Result<OwnedFd> {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    syscall!(libc::sigemptyset(&mut set))?;
    syscall!(libc::sigaddset(&mut set, libc::SIGINT))?;
    syscall!(libc::sigaddset(&mut set, libc::SIGTERM))?;
    let r = unsafe_pthread_sigmask(&set)?;
    debug_assert_eq!(r, 0);
    let fd = syscall!(libc::signalfd(-1, &set, libc::SFD_CLOEXEC))?;
    // SAFETY: `fd` was just returned by signalfd and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn unsafe_pthread_sigmask(set: &libc::sigset_t) -> io::Result<i32> {
    // SAFETY: `set` is an initialised sigset; the old mask is not requested.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, set, std::ptr::null_mut()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(r)
}

/// Waits for a signal on a signalfd, at most `timeout` (None = forever). Returns whether a
/// signal arrived.
pub fn wait_signal_fd(fd: RawFd, timeout: Option<std::time::Duration>) -> io::Result<bool> {
    let ms = timeout.map_or(-1, |d| d.as_millis().min(i32::MAX as u128) as i32);
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        match syscall!(libc::poll(&mut p, 1, ms)) {
            Ok(0) => return Ok(false),
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    let mut info = [0u8; 128];
    syscall!(libc::read(fd, info.as_mut_ptr().cast(), info.len()))?;
    Ok(true)
}

/// Waits (forever) for a signal on the signalfd.
pub fn wait_signal(fd: &OwnedFd, timeout: Option<std::time::Duration>) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    wait_signal_fd(fd.as_raw_fd(), timeout)
}

/// Ignores SIGPIPE process-wide (sends also carry MSG_NOSIGNAL; this covers anything else).
pub fn ignore_sigpipe() {
    // SAFETY: setting a signal's disposition to SIG_IGN has no memory-safety preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Sets SO_SNDBUF (the kernel doubles the value for bookkeeping overhead).
pub fn set_send_buffer(fd: RawFd, bytes: usize) -> io::Result<()> {
    let v = bytes.min(i32::MAX as usize) as libc::c_int;
    syscall!(libc::setsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_SNDBUF,
        (&v as *const libc::c_int).cast(),
        std::mem::size_of::<libc::c_int>() as libc::socklen_t,
    ))?;
    Ok(())
}

/// Unread bytes in a socket's receive queue (SIOCINQ / FIONREAD).
pub fn inq(fd: RawFd) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    syscall!(libc::ioctl(fd, libc::FIONREAD, &mut n))?;
    Ok(n as usize)
}

/// Bytes in a socket's send queue (SIOCOUTQ). TCP: unacked + unsent payload bytes;
/// AF_UNIX: kernel memory (skb truesize), not payload.
pub fn outq(fd: RawFd) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    syscall!(libc::ioctl(fd, libc::TIOCOUTQ, &mut n))?;
    Ok(n as usize)
}
