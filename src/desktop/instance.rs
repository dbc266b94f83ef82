//! One app per user: the first start holds a lock and listens on a Unix socket in the
//! user's runtime directory; a later start finds the lock taken, asks the running app
//! over the socket to bring its window forward, and exits. A socket rather than a D-Bus
//! name, so that this works (and is testable) without a session bus.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead as _, BufReader, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const LOCK_FILE: &str = "desktop.lock";
const SOCKET_FILE: &str = "desktop.sock";

/// What a later start asks of the running app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Show the dashboard window and bring it forward.
    Show,
    /// Nothing visible (a `--hidden` start, e.g. at login): only check it runs.
    Ping,
}

impl Request {
    fn as_str(self) -> &'static str {
        match self {
            Request::Show => "show",
            Request::Ping => "ping",
        }
    }

    fn parse(text: &str) -> Option<Request> {
        match text.trim() {
            "show" => Some(Request::Show),
            "ping" => Some(Request::Ping),
            _ => None,
        }
    }
}

/// The running app's end: the lock and the listening socket, held while it runs.
#[derive(Debug)]
pub struct Primary {
    listener: UnixListener,
    lock: File,
}

pub enum Claim {
    /// This process is the only one: it keeps the returned [`Primary`] while it runs.
    First(Primary),
    /// Another one runs and has been told.
    Told,
}

/// The per-user directory for the lock and the socket: `$XDG_RUNTIME_DIR/cpwatch`,
/// else the cache directory.
pub fn default_dir() -> Option<PathBuf> {
    dirs::runtime_dir().or_else(dirs::cache_dir).map(|d| d.join("cpwatch"))
}

/// Becomes the running app, or tells the running one what `request` asks.
pub fn claim(dir: &Path, request: Request) -> io::Result<Claim> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(dir.join(LOCK_FILE))?;
    let socket = dir.join(SOCKET_FILE);
    match lock.try_lock() {
        Ok(()) => {
            // The lock proves no app runs: a socket file left here is from one that died.
            let _ = std::fs::remove_file(&socket);
            let listener = UnixListener::bind(&socket)?;
            Ok(Claim::First(Primary { listener, lock }))
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            tell(&socket, request)?;
            Ok(Claim::Told)
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Sends `request` to the running app and waits for its answer. The app may hold the
/// lock but not listen yet (it is starting): connecting is retried for a while.
fn tell(socket: &Path, request: Request) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let stream = loop {
        match UnixStream::connect(socket) {
            Ok(stream) => break stream,
            Err(e) if Instant::now() < deadline => {
                tracing::debug!("the running cpwatch does not answer yet ({e}); retrying");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e),
        }
    };
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    (&stream).write_all(format!("{}\n", request.as_str()).as_bytes())?;
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer)?;
    if answer.trim() == "ok" {
        Ok(())
    } else {
        Err(io::Error::other(format!("the running cpwatch answered {:?}", answer.trim())))
    }
}

/// Serves later starts' requests, calling `on_request` for each, until the process ends.
pub fn serve(primary: Primary, on_request: impl Fn(Request) + Send + 'static) {
    let spawned = std::thread::Builder::new().name("single-instance".into()).spawn(move || {
        // The lock lives as long as this thread: as long as the process.
        let Primary { listener, lock: _lock } = primary;
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            // A client that never writes must not block the next one for long.
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut line = String::new();
            if BufReader::new(&stream).read_line(&mut line).is_err() {
                continue;
            }
            let answer = match Request::parse(&line) {
                Some(request) => {
                    on_request(request);
                    "ok\n"
                }
                None => "unknown request\n",
            };
            let _ = (&stream).write_all(answer.as_bytes());
        }
    });
    if let Err(e) = spawned {
        tracing::warn!(
            "cannot listen for later starts ({e}); starting cpwatch again will not show this window"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn a_second_start_tells_the_first_and_does_not_run() {
        let dir = tempfile::tempdir().expect("temp dir");
        let Claim::First(primary) = claim(dir.path(), Request::Show).expect("first claim") else {
            panic!("the first start must run");
        };
        let (seen_tx, seen) = mpsc::channel();
        serve(primary, move |request| {
            let _ = seen_tx.send(request);
        });
        assert!(matches!(claim(dir.path(), Request::Show), Ok(Claim::Told)), "a second start must not run");
        assert_eq!(seen.recv_timeout(Duration::from_secs(10)), Ok(Request::Show));
        assert!(matches!(claim(dir.path(), Request::Ping), Ok(Claim::Told)));
        assert_eq!(seen.recv_timeout(Duration::from_secs(10)), Ok(Request::Ping));
    }

    #[test]
    fn a_socket_left_by_a_dead_app_does_not_block_the_next_start() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(SOCKET_FILE), b"stale").expect("stale file");
        assert!(matches!(claim(dir.path(), Request::Show), Ok(Claim::First(_))));
    }
}
