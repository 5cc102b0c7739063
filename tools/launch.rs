//! What the tools that start `lastbyte` share (bufprobe, enginebench; included with
//! `#[path]`): waiting for the server to listen, stopping it, and the chart font.

use std::io::{self, BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest wait for a server to start or to exit.
pub const SERVER_WAIT: Duration = Duration::from_secs(30);

/// Registers the bundled font (DejaVu Sans, Latin-1 subset) as plotters' "sans-serif", so
/// charts need no system fontconfig.
pub fn register_font() {
    static FONT: &[u8] = include_bytes!("../src/image/fonts/DejaVuSans-Latin1.ttf");
    plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, FONT)
        .unwrap_or_else(|_| panic!("the bundled font is a valid TrueType font"));
}

/// Spawns `cmd` with stdout piped and waits (≤ [`SERVER_WAIT`]) until the server has printed
/// `want` `lastbyte listening on …` lines, one per listener; returns the child and the TCP
/// address it reported, if any. A server that does not get there is killed.
pub fn spawn_listening(cmd: &mut Command, want: usize) -> io::Result<(Child, Option<String>)> {
    let mut child = cmd.stdout(Stdio::piped()).spawn()?;
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + SERVER_WAIT;
    let (mut seen, mut tcp) = (0, None);
    while seen < want {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                if let Some(rest) = line.strip_prefix("lastbyte listening on ") {
                    seen += 1;
                    if let Some(addr) = rest.strip_prefix("tcp:") {
                        tcp = Some(addr.to_string());
                    }
                }
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::other("the server did not start listening"));
            }
        }
    }
    Ok((child, tcp))
}

/// SIGTERM, then a bounded wait (≤ [`SERVER_WAIT`]); a server still running then is killed
/// and `false` returned.
pub fn terminate(child: &mut Child) -> bool {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + SERVER_WAIT;
    while let Ok(None) = child.try_wait() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}
