//! The webroot directories an ACME client or an operator writes files into
//! (`challenges.acme_webroot`, `challenges.pki_webroot`): read at request time, so that a file
//! just written answers the very next request, and followed by inotify on a thread of its own
//! so that a request for a name that is not there does not open a file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;

/// The two webroot directories and the index of the names in them.
pub(super) struct Webroot {
    acme_dir: PathBuf,
    pki_dir: PathBuf,
    index: Arc<WebrootIndex>,
}

impl Webroot {
    pub(super) fn new(acme_dir: PathBuf, pki_dir: PathBuf) -> Self {
        Self {
            acme_dir,
            pki_dir,
            index: Arc::default(),
        }
    }

    /// The file `token` of the ACME webroot (`token` is a well-formed token, one path
    /// segment).
    pub(super) fn acme(&self, token: &str) -> Option<Bytes> {
        if !self.index.may_exist(false, token) {
            return None;
        }
        read_small_file(&self.acme_dir, token)
    }

    /// The file `file` of the pki-validation webroot (a validated file name).
    pub(super) fn pki(&self, file: &str) -> Option<Bytes> {
        if !self.index.may_exist(true, file) {
            return None;
        }
        read_small_file(&self.pki_dir, file)
    }

    /// Whether the index may hold `name` (the tests wait on it).
    #[cfg(test)]
    pub(super) fn index_may_hold(&self, pki: bool, name: &str) -> bool {
        self.index.may_exist(pki, name)
    }

    /// Starts the inotify thread (see [`super::ChallengeStore::watch_webroot`]).
    pub(super) fn watch(&self) -> std::io::Result<()> {
        use inotify::{Inotify, WatchMask};
        let mut inotify = Inotify::init()?;
        let mask = WatchMask::CREATE
            | WatchMask::MOVED_TO
            | WatchMask::CLOSE_WRITE
            | WatchMask::DELETE
            | WatchMask::MOVED_FROM
            | WatchMask::DELETE_SELF
            | WatchMask::MOVE_SELF;
        let acme_wd = inotify.watches().add(&self.acme_dir, mask)?;
        let pki_wd = inotify.watches().add(&self.pki_dir, mask)?;
        let index = self.index.clone();
        let queue = std::os::fd::AsFd::as_fd(&inotify).try_clone_to_owned()?;
        if index.pending.set(queue).is_err() {
            return Ok(()); // already watching
        }
        let dirs = (self.acme_dir.clone(), self.pki_dir.clone());
        // The first scan happens after the watch exists: nothing created in between is missed.
        rescan(&index, &dirs);
        index.live.store(true, std::sync::atomic::Ordering::Release);
        std::thread::Builder::new()
            .name("webroot-watch".into())
            .spawn(move || {
                use std::sync::atomic::Ordering::SeqCst;
                let mut buffer = [0u8; 4096];
                loop {
                    index.busy.store(false, SeqCst);
                    // Wait without taking events off the queue: lookups see them queued.
                    let mut fds = [rustix::event::PollFd::new(&inotify, rustix::event::PollFlags::IN)];
                    if let Err(e) = rustix::event::poll(&mut fds, None) {
                        if e == rustix::io::Errno::INTR {
                            continue;
                        }
                        tracing::warn!(error = %e, "webroot watch stopped; webroot lookups open files again");
                        index.live.store(false, std::sync::atomic::Ordering::Release);
                        return;
                    }
                    index.busy.store(true, SeqCst);
                    let events = match inotify.read_events(&mut buffer) {
                        Ok(events) => events,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                        Err(e) => {
                            tracing::warn!(error = %e, "webroot watch stopped; webroot lookups open files again");
                            index.live.store(false, std::sync::atomic::Ordering::Release);
                            return;
                        }
                    };
                    for event in events {
                        use inotify::EventMask;
                        if event.mask.intersects(EventMask::DELETE_SELF | EventMask::MOVE_SELF | EventMask::IGNORED) {
                            tracing::warn!("a webroot directory went away; webroot lookups open files again");
                            index.live.store(false, std::sync::atomic::Ordering::Release);
                            return;
                        }
                        if event.mask.contains(EventMask::Q_OVERFLOW) {
                            rescan(&index, &dirs);
                            continue;
                        }
                        let Some(name) = event.name.and_then(|n| n.to_str()) else {
                            continue;
                        };
                        let set = if event.wd == acme_wd {
                            &index.acme
                        } else if event.wd == pki_wd {
                            &index.pki
                        } else {
                            continue;
                        };
                        let present = !event
                            .mask
                            .intersects(EventMask::DELETE | EventMask::MOVED_FROM);
                        let mut next = std::collections::HashSet::clone(&set.load());
                        if present {
                            next.insert(name.into());
                        } else {
                            next.remove(name);
                        }
                        set.store(Arc::new(next));
                    }
                }
            })?;
        Ok(())
    }
}

/// The names present in the two webroot directories, kept by inotify, so that a request for an
/// unknown token does not open a file. Until the watch runs (or if it stops: queue overflow is
/// recovered by a rescan, a removed directory is not), every lookup opens the file instead.
///
/// "Written there, answered on the next request" holds exactly: the kernel queues the inotify
/// event when the file is created, so a name missing from the index while an event is still
/// queued (a zero-timeout `poll` of a duplicate of the inotify descriptor) falls back to
/// opening the file.
#[derive(Default)]
struct WebrootIndex {
    live: std::sync::atomic::AtomicBool,
    acme: ArcSwap<std::collections::HashSet<Box<str>>>,
    pki: ArcSwap<std::collections::HashSet<Box<str>>>,
    pending: std::sync::OnceLock<std::os::fd::OwnedFd>,
    /// Set while the watcher applies events it has taken off the queue.
    busy: std::sync::atomic::AtomicBool,
}

impl WebrootIndex {
    /// `false` only when the index runs, does not hold `name`, and has no event to catch up on.
    fn may_exist(&self, pki: bool, name: &str) -> bool {
        if !self.live.load(std::sync::atomic::Ordering::Acquire) {
            return true;
        }
        use std::sync::atomic::Ordering::SeqCst;
        let set = if pki { &self.pki } else { &self.acme };
        if set.load().contains(name) || self.events_queued() || self.busy.load(SeqCst) {
            return true;
        }
        // The watcher may have finished applying between the first look and `busy`.
        set.load().contains(name)
    }

    fn events_queued(&self) -> bool {
        use rustix::event::{poll, PollFd, PollFlags};
        let Some(fd) = self.pending.get() else {
            return true;
        };
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        let zero = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // An error says nothing about the queue: look at the file then.
        poll(&mut fds, Some(&zero)).map_or(true, |ready| ready > 0)
    }
}

/// Reads the names in both webroot directories into the index.
fn rescan(index: &WebrootIndex, (acme, pki): &(PathBuf, PathBuf)) {
    let names = |dir: &Path| -> std::collections::HashSet<Box<str>> {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|e| e.file_name().to_str().map(Into::into))
                    .collect()
            })
            .unwrap_or_default()
    };
    index.acme.store(Arc::new(names(acme)));
    index.pki.store(Arc::new(names(pki)));
}

/// Largest webroot file served: tokens and CA files are tiny; anything bigger is not a
/// validation file and is not read into memory.
pub(super) const MAX_WEBROOT_FILE: u64 = 64 * 1024;

/// Reads `dir/name` if it is a regular file no larger than [`MAX_WEBROOT_FILE`].
///
/// `name` is a single validated path segment, and the file is opened with `O_NOFOLLOW`: a
/// symlink in the webroot (say, to the admin token or a private key) is never followed.
fn read_small_file(dir: &Path, name: &str) -> Option<Bytes> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    debug_assert!(!name.contains('/') && name != ".." && name != ".");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(dir.join(name))
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() > MAX_WEBROOT_FILE {
        return None;
    }
    let mut body = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_WEBROOT_FILE).read_to_end(&mut body).ok()?;
    Some(Bytes::from(body))
}
