//! Idle keep-alive connections parked off their tasks.
//!
//! To pingora a kept-alive connection waiting for its next request is a task with its stream
//! object, read buffer and timer — about 4 KiB of the process's memory each, while nginx keeps
//! a few hundred bytes per idle connection. An edge holds many such connections (browsers keep
//! theirs open for minutes and send nothing), so once a plain-HTTP connection has been idle for
//! a moment ([`PARK_AFTER`](super::fastpath)) the fast path ends its task and parks the socket
//! here: one epoll set for the whole service, a slot of a few bytes per socket. When the
//! client sends its next request (or closes), the socket is handed back and a fresh task
//! serves it; when the idle timeout passes first, it is closed, as it would have been.
//!
//! Parking gives memory back only if the allocator does: glibc keeps the pages of freed tasks
//! for reuse (about 4 KiB per connection that parked). After a burst of parking — once the lot
//! holds [`TRIM_STEP`] more sockets than at the last trim, and [`TRIM_SETTLE`] later — the free
//! heap pages are returned to the kernel ([`release_free_heap`]).
//!
//! TLS connections are not parked: their state is the TLS session itself (rustls keeps it in
//! memory with its buffers), not something a bare socket can carry.

use std::collections::VecDeque;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use pingora_core::server::ShutdownWatch;
use prometheus::IntGauge;
use rustix::event::epoll;
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Events taken from the epoll set per call.
const EVENTS_PER_WAIT: usize = 256;
/// Growth of the lot, in sockets, that makes the freed heap worth returning to the kernel.
const TRIM_STEP: usize = 1024;
/// How long after that growth the heap is trimmed: a burst of parking is over by then, and one
/// trim returns what the whole burst freed.
const TRIM_SETTLE: Duration = Duration::from_secs(1);

/// Parked sockets, waiting for their next request.
pub(super) struct ParkingLot {
    epoll: AsyncFd<OwnedFd>,
    slots: Mutex<Slots>,
    /// Wakes the lot's task when a socket is parked in an empty lot (there was no deadline for
    /// it to wait for) and when the lot has grown enough for a trim.
    changed: Notify,
    /// How long a socket may stay parked before it is closed.
    timeout: Duration,
    parked: IntGauge,
    trim_step: usize,
    /// Heap trims so far.
    trims: AtomicU64,
}

/// The sockets and their deadlines. A slot's key (index and generation) is the epoll event's
/// data, so a late event or deadline for a slot since reused is recognised and ignored.
#[derive(Default)]
struct Slots {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// In parking order, which is deadline order (one timeout for all).
    deadlines: VecDeque<(Instant, u64)>,
    live: usize,
    /// `live` when the heap was last trimmed, or the lot last shrank below that.
    trimmed_at: usize,
    /// A trim is due at this time.
    trim_due: Option<Instant>,
    /// Shut down: nothing more is parked. Kept under the same lock as the slots, so that no
    /// socket is parked after the lot's task closed the others.
    closed: bool,
}

#[derive(Default)]
struct Slot {
    socket: Option<OwnedFd>,
    generation: u32,
}

impl Slots {
    /// The key the next [`Slots::insert`] will use.
    fn next_key(&self) -> u64 {
        let (index, generation) = match self.free.last() {
            Some(&i) => (i, self.slots[i as usize].generation),
            // More sockets than u32 slots cannot be open in one process.
            None => (u32::try_from(self.slots.len()).unwrap_or(u32::MAX), 0),
        };
        (u64::from(generation) << 32) | u64::from(index)
    }

    fn insert(&mut self, socket: OwnedFd) -> u64 {
        let key = self.next_key();
        let index = match self.free.pop() {
            Some(i) => i as usize,
            None => {
                self.slots.push(Slot::default());
                self.slots.len() - 1
            }
        };
        self.slots[index].socket = Some(socket);
        self.live += 1;
        key
    }

    fn slot(&self, key: u64) -> Option<&Slot> {
        let (index, generation) = split(key);
        self.slots
            .get(index)
            .filter(|s| s.generation == generation && s.socket.is_some())
    }

    /// The socket parked under `key`, if it is still there.
    fn remove(&mut self, key: u64) -> Option<OwnedFd> {
        let (index, generation) = split(key);
        let slot = self.slots.get_mut(index)?;
        if slot.generation != generation {
            return None;
        }
        let socket = slot.socket.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(index as u32);
        self.live -= 1;
        self.trimmed_at = self.trimmed_at.min(self.live);
        Some(socket)
    }

    /// Drops the deadlines of sockets no longer parked once they outnumber the parked ones, so
    /// that connections parked and woken again and again do not grow the queue.
    fn compact(&mut self) {
        if self.deadlines.len() > 64 && self.deadlines.len() > 2 * self.live {
            let mut deadlines = std::mem::take(&mut self.deadlines);
            deadlines.retain(|(_, key)| self.slot(*key).is_some());
            self.deadlines = deadlines;
        }
    }
}

/// A key's slot index and generation.
fn split(key: u64) -> (usize, u32) {
    ((key & u64::from(u32::MAX)) as usize, (key >> 32) as u32)
}

impl ParkingLot {
    /// A lot whose sockets are closed after `timeout` parked; counted in `parked`. Must be
    /// called within the Tokio runtime that is to watch it.
    pub(super) fn new(timeout: Duration, parked: IntGauge) -> io::Result<Arc<Self>> {
        Self::with_trim_step(timeout, parked, TRIM_STEP)
    }

    /// [`ParkingLot::new`], trimming the heap after `trim_step` more sockets.
    pub(super) fn with_trim_step(
        timeout: Duration,
        parked: IntGauge,
        trim_step: usize,
    ) -> io::Result<Arc<Self>> {
        let fd = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        // Deprecated because a generic `AsRawFd` cannot promise its descriptor stays open and
        // the same (tokio#8587); an `OwnedFd` does, and the safe constructor keeps this crate
        // free of `unsafe`.
        #[allow(deprecated)]
        let epoll = AsyncFd::with_interest(fd, tokio::io::Interest::READABLE)?;
        Ok(Arc::new(Self {
            epoll,
            slots: Mutex::new(Slots::default()),
            changed: Notify::new(),
            timeout,
            parked,
            trim_step,
            trims: AtomicU64::new(0),
        }))
    }

    fn slots(&self) -> MutexGuard<'_, Slots> {
        // The lock guards plain bookkeeping that no panic leaves half-done.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Parks `socket` until it becomes readable or times out. `Err` gives it back when the lot
    /// is shutting down or the kernel refused to watch it.
    pub(super) fn park(&self, socket: OwnedFd) -> Result<(), OwnedFd> {
        let mut slots = self.slots();
        if slots.closed {
            return Err(socket);
        }
        let key = slots.next_key();
        let watched = epoll::add(
            self.epoll.get_ref(),
            &socket,
            epoll::EventData::new_u64(key),
            epoll::EventFlags::IN | epoll::EventFlags::RDHUP,
        );
        if watched.is_err() {
            return Err(socket);
        }
        slots.insert(socket);
        let was_empty = slots.deadlines.is_empty();
        let now = Instant::now();
        slots.deadlines.push_back((now + self.timeout, key));
        let trim = slots.trim_due.is_none() && slots.live >= slots.trimmed_at + self.trim_step;
        if trim {
            slots.trim_due = Some(now + TRIM_SETTLE);
        }
        drop(slots);
        self.parked.inc();
        if was_empty || trim {
            self.changed.notify_one();
        }
        Ok(())
    }

    /// Watches the parked sockets until `shutdown`: each that becomes readable goes to `wake`
    /// (its next request, or its close, is for a new task to read), each that times out is
    /// closed. At shutdown every parked socket is closed.
    pub(super) async fn run(self: Arc<Self>, mut shutdown: ShutdownWatch, wake: impl Fn(OwnedFd)) {
        while !*shutdown.borrow() {
            let (next_deadline, trim_due) = {
                let slots = self.slots();
                (slots.deadlines.front().map(|(at, _)| *at), slots.trim_due)
            };
            tokio::select! {
                ready = self.epoll.readable() => match ready {
                    Ok(mut guard) => {
                        self.take_ready(&wake);
                        guard.clear_ready();
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "parked connections: epoll failed, closing them");
                        break;
                    }
                },
                _ = sleep_until(next_deadline) => self.expire(),
                _ = sleep_until(trim_due) => self.trim(),
                _ = self.changed.notified() => {}
                _ = shutdown.changed() => {}
            }
        }
        let mut slots = self.slots();
        let closed = slots.live;
        *slots = Slots {
            closed: true,
            ..Slots::default()
        };
        drop(slots);
        self.parked.sub(closed as i64);
    }

    /// Hands every socket the epoll set reports ready to `wake`.
    fn take_ready(&self, wake: &impl Fn(OwnedFd)) {
        let mut events = Vec::with_capacity(EVENTS_PER_WAIT);
        loop {
            events.clear();
            let zero = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            let Ok(n) = epoll::wait(
                self.epoll.get_ref(),
                rustix::buffer::spare_capacity(&mut events),
                Some(&zero),
            ) else {
                return;
            };
            for event in events.iter() {
                let socket = {
                    let mut slots = self.slots();
                    let socket = slots.remove(event.data.u64());
                    slots.compact();
                    socket
                };
                if let Some(socket) = socket {
                    // It is handed on: this set must stop watching it (it stays open).
                    let _ = epoll::delete(self.epoll.get_ref(), &socket);
                    self.parked.dec();
                    wake(socket);
                }
            }
            if n < EVENTS_PER_WAIT {
                return;
            }
        }
    }

    /// Returns the heap freed by the tasks of the sockets parked since the last trim.
    fn trim(&self) {
        {
            let mut slots = self.slots();
            slots.trim_due = None;
            slots.trimmed_at = slots.live;
        }
        release_free_heap();
        self.trims.fetch_add(1, Ordering::Relaxed);
    }

    /// Heap trims so far (what the tests watch).
    #[cfg(test)]
    pub(crate) fn trims(&self) -> u64 {
        self.trims.load(Ordering::Relaxed)
    }

    /// Closes the sockets whose deadline has passed.
    fn expire(&self) {
        let now = Instant::now();
        let mut closed = 0;
        let mut slots = self.slots();
        while let Some(&(at, key)) = slots.deadlines.front() {
            if at > now {
                break;
            }
            slots.deadlines.pop_front();
            // Closing the only descriptor of a socket also takes it out of the epoll set.
            if slots.remove(key).is_some() {
                closed += 1;
            }
        }
        drop(slots);
        self.parked.sub(closed);
    }

    /// Sockets parked now (what the tests watch; the gauge says it in production).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots().live
    }
}

/// Gives the allocator's free pages back to the kernel. glibc returns freed memory on its own
/// only from the top of a heap; the memory of thousands of ended connection tasks is spread
/// through it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn release_free_heap() {
    // SAFETY: `malloc_trim` takes no pointers, has no preconditions and is thread-safe (it
    // takes each arena's lock).
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators return free memory on their own terms.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_heap() {}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        (client, server)
    }

    fn gauge() -> IntGauge {
        IntGauge::new("parked_test", "test").expect("gauge")
    }

    #[tokio::test]
    async fn a_parked_socket_comes_back_with_its_next_request() {
        let lot = ParkingLot::new(Duration::from_secs(60), gauge()).expect("lot");
        let (shutdown_tx, shutdown) = tokio::sync::watch::channel(false);
        let (woken_tx, mut woken) = tokio::sync::mpsc::unbounded_channel();
        let runner = tokio::spawn(lot.clone().run(shutdown, move |fd| {
            let _ = woken_tx.send(fd);
        }));
        let (mut client, server) = pair();
        lot.park(OwnedFd::from(server)).expect("parked");
        assert_eq!(lot.len(), 1);
        assert_eq!(lot.parked.get(), 1);
        // Nothing sent: nothing woken.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(woken.try_recv().is_err());
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").expect("write");
        let fd = tokio::time::timeout(Duration::from_secs(5), woken.recv())
            .await
            .expect("woken in time")
            .expect("a socket");
        assert_eq!(lot.len(), 0);
        assert_eq!(lot.parked.get(), 0);
        let mut server = TcpStream::from(fd);
        server.set_nonblocking(false).expect("blocking");
        let mut head = [0u8; 18];
        server
            .read_exact(&mut head)
            .expect("the request is still there");
        assert_eq!(&head, b"GET / HTTP/1.1\r\n\r\n");
        let _ = shutdown_tx.send(true);
        runner.await.expect("lot stops");
    }

    #[tokio::test]
    async fn parked_sockets_time_out_and_shutdown_closes_the_rest() {
        let lot = ParkingLot::new(Duration::from_millis(100), gauge()).expect("lot");
        let (shutdown_tx, shutdown) = tokio::sync::watch::channel(false);
        let runner = tokio::spawn(lot.clone().run(shutdown, |_| {}));
        let (mut early, server) = pair();
        lot.park(OwnedFd::from(server)).expect("parked");
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(lot.len(), 0, "timed out");
        let mut rest = Vec::new();
        early
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        assert_eq!(early.read_to_end(&mut rest).expect("closed, not reset"), 0);

        let lot2 = ParkingLot::new(Duration::from_secs(60), gauge()).expect("lot");
        let (shutdown2_tx, shutdown2) = tokio::sync::watch::channel(false);
        let runner2 = tokio::spawn(lot2.clone().run(shutdown2, |_| {}));
        let (mut late, server) = pair();
        lot2.park(OwnedFd::from(server)).expect("parked");
        let _ = shutdown2_tx.send(true);
        runner2.await.expect("lot stops");
        late.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        assert_eq!(late.read_to_end(&mut rest).expect("closed at shutdown"), 0);
        assert_eq!(lot2.parked.get(), 0);
        let (_c, server) = pair();
        assert!(
            lot2.park(OwnedFd::from(server)).is_err(),
            "no parking after shutdown"
        );
        let _ = shutdown_tx.send(true);
        runner.await.expect("lot stops");
    }

    #[tokio::test]
    async fn a_burst_of_parking_trims_the_heap_once_it_settles() {
        let lot = ParkingLot::with_trim_step(Duration::from_secs(60), gauge(), 8).expect("lot");
        let (shutdown_tx, shutdown) = tokio::sync::watch::channel(false);
        let runner = tokio::spawn(lot.clone().run(shutdown, |_| {}));
        let mut clients = Vec::new();
        for _ in 0..7 {
            let (c, s) = pair();
            lot.park(OwnedFd::from(s)).expect("parked");
            clients.push(c);
        }
        tokio::time::sleep(TRIM_SETTLE + Duration::from_millis(300)).await;
        assert_eq!(lot.trims(), 0, "below the step");
        for _ in 0..9 {
            let (c, s) = pair();
            lot.park(OwnedFd::from(s)).expect("parked");
            clients.push(c);
        }
        assert_eq!(lot.trims(), 0, "not before the burst settles");
        tokio::time::sleep(TRIM_SETTLE + Duration::from_millis(300)).await;
        assert_eq!(lot.trims(), 1, "one trim for the burst");
        let _ = shutdown_tx.send(true);
        runner.await.expect("lot stops");
    }

    #[test]
    fn stale_keys_find_nothing_and_the_queue_is_compacted() {
        let mut slots = Slots::default();
        let (_c, s) = pair();
        let key = slots.insert(OwnedFd::from(s));
        assert!(slots.remove(key).is_some());
        assert!(slots.remove(key).is_none(), "removed twice");
        let (_c2, s2) = pair();
        let reused = slots.insert(OwnedFd::from(s2));
        assert_ne!(key, reused, "same index, new generation");
        assert!(slots.remove(key).is_none(), "an old key finds nothing");
        for _ in 0..100 {
            slots.deadlines.push_back((Instant::now(), key));
        }
        slots.deadlines.push_back((Instant::now(), reused));
        slots.compact();
        assert_eq!(slots.deadlines.len(), 1);
    }
}
