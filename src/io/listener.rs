//! Listening sockets: a Unix socket (stale files handled) and TCP.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// Listen backlog for both kinds of socket.
const BACKLOG: i32 = 1024;

pub enum Listener {
    /// A Unix socket; the file is removed when this is dropped.
    Unix {
        sock: UnixListener,
        path: PathBuf,
    },
    Tcp {
        sock: OwnedFd,
        addr: SocketAddr,
    },
}

impl Listener {
    /// Binds a Unix socket at `path`. A stale socket file (nothing accepts on it) is removed
    /// first; a live one, or a file that is not a socket, is an error.
    pub fn bind_unix(path: &Path) -> io::Result<Listener> {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ));
            }
            match UnixStream::connect(path) {
                Ok(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!("another server is listening on {}", path.display()),
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    std::fs::remove_file(path)?;
                }
                Err(e) => return Err(e),
            }
        }
        let sock = UnixListener::bind(path)?;
        // std listens with a backlog of 128; raise it.
        let s = socket2::SockRef::from(&sock);
        s.listen(BACKLOG)?;
        Ok(Listener::Unix {
            sock,
            path: path.to_path_buf(),
        })
    }

    /// Binds TCP; with `reuse_port`, several sockets share the address (one per ring) and
    /// the kernel spreads connections over them.
    pub fn bind_tcp(addr: SocketAddr, reuse_port: bool) -> io::Result<Listener> {
        let s = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM.cloexec(),
            None,
        )?;
        s.set_reuse_address(true)?;
        if reuse_port {
            s.set_reuse_port(true)?;
        }
        s.bind(&addr.into())?;
        s.listen(BACKLOG)?;
        let addr = s.local_addr()?.as_socket().unwrap_or(addr);
        Ok(Listener::Tcp {
            sock: s.into(),
            addr,
        })
    }

    pub fn fd(&self) -> RawFd {
        match self {
            Listener::Unix { sock, .. } => sock.as_raw_fd(),
            Listener::Tcp { sock, .. } => sock.as_raw_fd(),
        }
    }

    /// The bound TCP address (with the port the kernel chose for port 0).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp { addr, .. } => Some(*addr),
            Listener::Unix { .. } => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Listener::Unix { path, .. } => format!("unix:{}", path.display()),
            Listener::Tcp { addr, .. } => format!("tcp:{addr}"),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix { path, .. } = self {
            let _ = std::fs::remove_file(path);
        }
    }
}
