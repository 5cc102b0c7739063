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

/// Whether the peer of a connected socket has gone entirely (POLLHUP or POLLERR, checked
/// without blocking). A peer that only shut down its writing side (a half-close after its
/// request) is not gone: on AF_UNIX that is POLLRDHUP alone; on TCP a FIN looks the same, so
/// only a reset counts there.
pub fn peer_gone(fd: RawFd) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLRDHUP,
        revents: 0,
    };
    matches!(syscall!(libc::poll(&mut p, 1, 0)), Ok(1))
        && p.revents & (libc::POLLHUP | libc::POLLERR) != 0
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

/// `shutdown(fd, SHUT_RDWR)` on a listening socket: new connections are refused.
pub fn shutdown_listener(fd: RawFd) {
    let _ = syscall!(libc::shutdown(fd, libc::SHUT_RDWR));
}

/// SO_LINGER with a zero timeout: closing the socket resets the connection (TCP RST).
pub fn set_linger_zero(fd: RawFd) -> io::Result<()> {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    syscall!(libc::setsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_LINGER,
        (&l as *const libc::linger).cast(),
        std::mem::size_of::<libc::linger>() as libc::socklen_t,
    ))?;
    Ok(())
}

/// The peer's (pid, uid) of a Unix socket (SO_PEERCRED); `None` for other sockets.
pub fn peer_credentials(fd: RawFd) -> Option<(i32, u32)> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    syscall!(libc::getsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_PEERCRED,
        (&mut cred as *mut libc::ucred).cast(),
        &mut len,
    ))
    .ok()?;
    (cred.pid > 0).then_some((cred.pid, cred.uid))
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

/// Reads and drops what is already in the receive queue, without blocking, up to `max` bytes;
/// returns the bytes dropped. Used before a plain close so unread input does not turn it into a
/// TCP reset that would destroy the response still queued for the peer.
pub fn discard_pending_input(fd: RawFd, max: u64) -> u64 {
    let mut buf = [0u8; 16 * 1024];
    let mut total = 0u64;
    while total < max {
        match syscall!(libc::recv(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT
        )) {
            Ok(n) if n > 0 => total += n as u64,
            _ => break,
        }
    }
    total
}

/// TCP only: bytes in the send queue not yet sent (SIOCOUTQNSD).
pub fn outq_unsent(fd: RawFd) -> io::Result<usize> {
    /// `SIOCOUTQNSD` from `<linux/sockios.h>`.
    const SIOCOUTQNSD: libc::c_ulong = 0x894B;
    let mut n: libc::c_int = 0;
    syscall!(libc::ioctl(fd, SIOCOUTQNSD, &mut n))?;
    Ok(n as usize)
}

/// Takes a socket's pending error (`SO_ERROR`), if any.
pub fn socket_error(fd: RawFd) -> io::Result<Option<io::Error>> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    syscall!(libc::getsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_ERROR,
        (&mut v as *mut libc::c_int).cast(),
        &mut len,
    ))?;
    Ok((v != 0).then(|| io::Error::from_raw_os_error(v)))
}

/// A socket's address family (`SO_DOMAIN`).
pub fn socket_family(fd: RawFd) -> io::Result<libc::c_int> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    syscall!(libc::getsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_DOMAIN,
        (&mut v as *mut libc::c_int).cast(),
        &mut len,
    ))?;
    Ok(v)
}

/// `CLOCK_MONOTONIC` in nanoseconds (the clock `Instant` uses; shared by every process, so
/// traces from two processes can be joined).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // CLOCK_MONOTONIC with a valid timespec cannot fail.
    let _ = syscall!(libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts));
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Sockets passed by systemd socket activation (`sd_listen_fds(3)`): fds 3, 4, … when
/// `LISTEN_PID` names this process and `LISTEN_FDS` counts them. The variables are removed so
/// children do not inherit them. Each fd must be a listening stream socket; it is made
/// close-on-exec.
pub fn listen_fds() -> io::Result<Vec<OwnedFd>> {
    let (Ok(pid), Ok(n)) = (std::env::var("LISTEN_PID"), std::env::var("LISTEN_FDS")) else {
        return Ok(Vec::new());
    };
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
        return Ok(Vec::new());
    }
    let n: i32 = n.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("LISTEN_FDS={n:?} is not a count"),
        )
    })?;
    const SD_LISTEN_FDS_START: i32 = 3;
    let mut fds = Vec::new();
    for fd in SD_LISTEN_FDS_START..SD_LISTEN_FDS_START + n.clamp(0, 64) {
        let mut listening: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        let ok = syscall!(libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut listening as *mut libc::c_int).cast(),
            &mut len,
        ));
        if ok.is_err() || listening == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("fd {fd} passed by LISTEN_FDS is not a listening socket"),
            ));
        }
        syscall!(libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC))?;
        // SAFETY: systemd passed this fd to this process to own; nothing else in the process
        // refers to it.
        fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    Ok(fds)
}

/// Sends `state` (e.g. `READY=1`) to the service manager when `NOTIFY_SOCKET` is set
/// (`sd_notify(3)`; a path, or an abstract name starting with `@`). Returns whether a message
/// was sent.
pub fn sd_notify(state: &str) -> io::Result<bool> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(&path)?,
    };
    let sock = UnixDatagram::unbound()?;
    sock.send_to_addr(state.as_bytes(), &addr)?;
    Ok(true)
}

/// Resolves `USER[:GROUP]` (names or numeric ids) to ids; `None` keeps that id unchanged.
pub fn owner_ids(spec: &str) -> io::Result<(Option<u32>, Option<u32>)> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let uid = match user {
        "" => None,
        u => Some(lookup_id(u, true)?),
    };
    let gid = match group {
        None | Some("") => None,
        Some(g) => Some(lookup_id(g, false)?),
    };
    Ok((uid, gid))
}

fn lookup_id(name: &str, user: bool) -> io::Result<u32> {
    if let Ok(id) = name.parse::<u32>() {
        return Ok(id);
    }
    let what = if user { "user" } else { "group" };
    let not_found = || io::Error::new(io::ErrorKind::NotFound, format!("no {what} {name:?}"));
    let c = std::ffi::CString::new(name).map_err(|_| not_found())?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut found = std::ptr::null_mut();
    if user {
        // SAFETY: `passwd` is plain old data; all-zero is a valid value.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        // SAFETY: all pointers are valid for the call; `buf` outlives the result's use.
        let r = unsafe {
            libc::getpwnam_r(c.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut found)
        };
        if r != 0 || found.is_null() {
            return Err(not_found());
        }
        Ok(pw.pw_uid)
    } else {
        // SAFETY: `group` is plain old data; all-zero is a valid value.
        let mut gr: libc::group = unsafe { std::mem::zeroed() };
        let mut found_g = std::ptr::null_mut();
        // SAFETY: all pointers are valid for the call; `buf` outlives the result's use.
        let r = unsafe {
            libc::getgrnam_r(
                c.as_ptr(),
                &mut gr,
                buf.as_mut_ptr(),
                buf.len(),
                &mut found_g,
            )
        };
        if r != 0 || found_g.is_null() {
            return Err(not_found());
        }
        Ok(gr.gr_gid)
    }
}
