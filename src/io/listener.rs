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
        /// (device, inode) of the file bound, so only that file is ever removed.
        file_id: Option<(u64, u64)>,
    },
    Tcp {
        sock: OwnedFd,
        addr: SocketAddr,
    },
    /// A socket passed by the service manager (socket activation); never unlinked here.
    Inherited {
        sock: OwnedFd,
        desc: String,
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
            file_id: file_id(path),
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

    /// Refuses new connections from now on (drain): `shutdown(2)` on the listening socket
    /// makes connect fail with ECONNREFUSED (Unix) or RST (TCP) while the fd stays valid for
    /// the rings' cancelled accepts. A socket passed by the service manager is left alone: its
    /// queue belongs to the next instance.
    pub fn stop_accepting(&self) {
        match self {
            Listener::Unix { .. } | Listener::Tcp { .. } => {
                crate::io::sys::shutdown_listener(self.fd())
            }
            Listener::Inherited { .. } => {}
        }
    }

    /// Wraps a listening socket passed by systemd (see `sys::listen_fds`).
    pub fn inherited(sock: OwnedFd) -> Listener {
        let s = socket2::SockRef::from(&sock);
        let desc = match s.local_addr() {
            Ok(a) => match (a.as_socket(), a.as_pathname()) {
                (Some(ip), _) => format!("tcp:{ip}"),
                (None, Some(p)) => format!("unix:{}", p.display()),
                (None, None) => "unix:(unnamed)".to_string(),
            },
            Err(_) => "(unknown)".to_string(),
        };
        Listener::Inherited {
            desc: format!("{desc} (fd {}, socket activation)", sock.as_raw_fd()),
            sock,
        }
    }

    /// Sets the Unix socket file's mode and owner (`USER[:GROUP]`); no-op for other kinds.
    pub fn set_unix_access(&self, mode: Option<u32>, owner: Option<&str>) -> io::Result<()> {
        let Listener::Unix { path, .. } = self else {
            return Ok(());
        };
        if let Some(owner) = owner {
            let (uid, gid) = crate::io::sys::owner_ids(owner)?;
            std::os::unix::fs::chown(path, uid, gid)?;
        }
        if let Some(mode) = mode {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        }
        Ok(())
    }

    /// A second descriptor for the same listening socket (for another event loop).
    pub fn try_clone_fd(&self) -> io::Result<OwnedFd> {
        match self {
            Listener::Unix { sock, .. } => Ok(sock.try_clone()?.into()),
            Listener::Tcp { sock, .. } | Listener::Inherited { sock, .. } => sock.try_clone(),
        }
    }

    pub fn fd(&self) -> RawFd {
        match self {
            Listener::Unix { sock, .. } => sock.as_raw_fd(),
            Listener::Tcp { sock, .. } => sock.as_raw_fd(),
            Listener::Inherited { sock, .. } => sock.as_raw_fd(),
        }
    }

    /// The bound TCP address (with the port the kernel chose for port 0).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp { addr, .. } => Some(*addr),
            Listener::Unix { .. } | Listener::Inherited { .. } => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Listener::Unix { path, .. } => format!("unix:{}", path.display()),
            Listener::Tcp { addr, .. } => format!("tcp:{addr}"),
            Listener::Inherited { desc, .. } => desc.clone(),
        }
    }
}

fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

impl Drop for Listener {
    fn drop(&mut self) {
        // A successor may already have replaced the file (it found this socket refusing
        // connections while it drained): remove the file only if it is still ours.
        if let Listener::Unix {
            path, file_id: id, ..
        } = self
        {
            if id.is_some() && file_id(path) == *id {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}
