//! systemd's service notifications (`sd_notify(3)`), without linking libsystemd: one datagram
//! to the socket named in `$NOTIFY_SOCKET`.
//!
//! The unit is `Type=notify` with `NotifyAccess=all`: `READY=1` tells systemd the listeners
//! accept (so `systemctl start` returns when the node serves), and after a binary upgrade the
//! new process sends `MAINPID=` with its own id before the old one exits, so systemd follows
//! the new process instead of taking the old one's exit for the service's end.

use std::io;
use std::os::unix::net::UnixDatagram;

/// Sends `state` (`KEY=VALUE` lines) to the service manager. `Ok(false)` when not started by
/// one (no `$NOTIFY_SOCKET`), which is not an error.
pub(super) fn notify(state: &str) -> io::Result<bool> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let socket = UnixDatagram::unbound()?;
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    match bytes.split_first() {
        // `@name`: a socket in the abstract namespace.
        Some((b'@', name)) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.send_to_addr(state.as_bytes(), &addr)?;
        }
        Some((b'/', _)) => {
            socket.send_to(state.as_bytes(), &path)?;
        }
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("NOTIFY_SOCKET={path:?} is neither a path nor an abstract socket"),
            ))
        }
    }
    Ok(true)
}

/// [`notify`], with a failure logged rather than returned: a lost notification must never stop
/// the node.
pub(super) fn notify_logged(state: &str) {
    if let Err(e) = notify(state) {
        tracing::warn!(error = %e, state, "cannot notify the service manager");
    }
}
