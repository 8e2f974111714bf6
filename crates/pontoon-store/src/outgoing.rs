//! One direction of a Unix socket shared by many senders: a message is written from the
//! sender's own thread when the socket takes it at once, and queued for a drain task only when
//! it does not. Messages go whole and in the order they were sent.
//!
//! Why not a channel to a writer task: each request and reply would then wake a task on another
//! thread before reaching the kernel, which on a small machine is most of a round trip's cost.
//! A sender never awaits, so a cancelled caller can never leave half a message behind.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Buf, Bytes};
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::Notify;

/// Why a message was not sent.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SendError {
    /// The socket is closed or failed; nothing more can be sent.
    Closed,
    /// The peer has left `queued` bytes unread, and this message would take the queue past
    /// `cap`.
    Overfull { queued: usize, cap: usize },
}

/// One message not sent yet, and the descriptor that goes with its first byte, if any.
struct Chunk {
    bytes: Bytes,
    fd: Option<OwnedFd>,
}

struct Queue {
    /// What the socket has not taken yet, oldest first (the front may be partly written).
    chunks: VecDeque<Chunk>,
    /// Bytes in `chunks`.
    bytes: usize,
    closed: bool,
}

struct Shared {
    socket: OwnedWriteHalf,
    queue: Mutex<Queue>,
    wake: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Every change to the queue completes before anything can panic.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The sending side of a socket; see the module docs. Dropping it ends the drain task, which
/// drops the write half (the peer reads the end of the stream); what was still queued is not
/// sent.
pub(crate) struct Outgoing {
    shared: Arc<Shared>,
}

impl Outgoing {
    /// Takes over `socket`'s write half; the returned future is the drain task, which the
    /// caller spawns. It ends when the socket fails (then every later `send` is [`SendError::Closed`]) or
    /// this `Outgoing` is dropped.
    pub(crate) fn new(
        socket: OwnedWriteHalf,
    ) -> (Outgoing, impl Future<Output = ()> + Send + 'static) {
        let shared = Arc::new(Shared {
            socket,
            queue: Mutex::new(Queue {
                chunks: VecDeque::new(),
                bytes: 0,
                closed: false,
            }),
            wake: Notify::new(),
        });
        (
            Outgoing {
                shared: shared.clone(),
            },
            drain(shared),
        )
    }

    /// Sends `bytes` after everything sent before, unless more than `cap` bytes would then be
    /// queued behind the socket: one message always goes when nothing is queued (a legal
    /// message may be larger than the cap, which bounds what piles up, not one message).
    pub(crate) fn send(&self, bytes: Bytes, cap: usize) -> Result<(), SendError> {
        self.send_with_fd(bytes, None, cap)
    }

    /// As [`send`](Outgoing::send), with `fd` (if any) passed with the message's first byte
    /// (SCM_RIGHTS).
    pub(crate) fn send_with_fd(
        &self,
        bytes: Bytes,
        fd: Option<OwnedFd>,
        cap: usize,
    ) -> Result<(), SendError> {
        let shared = &*self.shared;
        let mut chunk = Chunk { bytes, fd };
        let mut queue = shared.lock();
        if queue.closed {
            return Err(SendError::Closed);
        }
        if queue.chunks.is_empty() {
            match write_some(&shared.socket, &mut chunk) {
                Ok(()) if chunk.bytes.is_empty() => return Ok(()),
                Ok(()) => {}
                Err(_) => {
                    queue.closed = true;
                    drop(queue);
                    shared.wake.notify_one();
                    return Err(SendError::Closed);
                }
            }
        } else if queue.bytes.saturating_add(chunk.bytes.len()) > cap {
            return Err(SendError::Overfull {
                queued: queue.bytes,
                cap,
            });
        }
        queue.bytes += chunk.bytes.len();
        queue.chunks.push_back(chunk);
        drop(queue);
        shared.wake.notify_one();
        Ok(())
    }
}

impl Drop for Outgoing {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
    }
}

/// Writes as much of `chunk` as the socket takes without blocking, advancing it; its
/// descriptor goes with the first write that takes a byte.
fn write_some(socket: &OwnedWriteHalf, chunk: &mut Chunk) -> io::Result<()> {
    while !chunk.bytes.is_empty() {
        let written = match &chunk.fd {
            Some(fd) => crate::fdpass::try_send_with_fd(socket.as_ref(), &chunk.bytes, fd.as_fd()),
            None => socket.try_write(&chunk.bytes),
        };
        match written {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                chunk.bytes.advance(n);
                chunk.fd = None;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes the queue's chunks in order until it is empty or the socket takes no more.
fn flush(socket: &OwnedWriteHalf, queue: &mut Queue) -> io::Result<()> {
    while let Some(front) = queue.chunks.front_mut() {
        let before = front.bytes.len();
        let result = write_some(socket, front);
        queue.bytes -= before - front.bytes.len();
        result?;
        if !front.bytes.is_empty() {
            return Ok(());
        }
        queue.chunks.pop_front();
    }
    Ok(())
}

/// Writes what `send` queued, waiting for the socket to take more.
async fn drain(shared: Arc<Shared>) {
    loop {
        // Registered before the queue is looked at, so a send in between is not missed.
        let woken = shared.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let waiting_for_socket = {
            let mut queue = shared.lock();
            if queue.closed {
                return;
            }
            if flush(&shared.socket, &mut queue).is_err() {
                queue.closed = true;
                return;
            }
            !queue.chunks.is_empty()
        };
        if !waiting_for_socket {
            woken.await;
            continue;
        }
        // A drop of the `Outgoing` wakes this too: a peer that never reads cannot keep the
        // task (and the socket) alive.
        tokio::select! {
            ready = shared.socket.writable() => {
                if ready.is_err() {
                    shared.lock().closed = true;
                    return;
                }
            }
            () = &mut woken => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::UnixStream;

    /// An `Outgoing` on one end of a socket pair (its drain task running), and the other end.
    fn connected() -> (Outgoing, UnixStream, tokio::task::JoinHandle<()>) {
        let (a, b) = UnixStream::pair().unwrap();
        let (read, write) = a.into_split();
        // The read half is dropped: only the write direction is under test.
        drop(read);
        let (outgoing, drain) = Outgoing::new(write);
        (outgoing, b, tokio::spawn(drain))
    }

    fn numbered(n: usize, len: usize) -> Bytes {
        Bytes::from((0..len).map(|i| (n * 31 + i) as u8).collect::<Vec<u8>>())
    }

    #[tokio::test]
    async fn messages_arrive_whole_and_in_order_past_a_full_socket_buffer() {
        let (outgoing, mut b, _drained) = connected();
        // 64 messages of 100 KiB: far more than a socket buffer, so most are queued and
        // drained by the task while this side reads.
        let mut sent = Vec::new();
        for n in 0..64 {
            let message = numbered(n, 100 << 10);
            sent.extend_from_slice(&message);
            outgoing.send(message, usize::MAX).unwrap();
        }
        let mut got = vec![0; sent.len()];
        b.read_exact(&mut got).await.unwrap();
        assert!(got == sent);
        drop(outgoing);
        // The drain task drops the write half: the reader sees the end of the stream.
        assert_eq!(b.read(&mut [0; 1]).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_peer_that_does_not_read_is_bounded_by_the_cap() {
        let (outgoing, mut b, _drained) = connected();
        // Larger than the kernel's buffer, it goes (nothing was queued before it).
        let big = numbered(1, 8 << 20);
        outgoing.send(big.clone(), 10).unwrap();
        let refused = outgoing.send(numbered(2, 1), 10).unwrap_err();
        assert!(
            matches!(refused, SendError::Overfull { cap: 10, queued } if queued > 10),
            "{refused:?}"
        );
        let mut got = vec![0; big.len()];
        b.read_exact(&mut got).await.unwrap();
        assert!(got[..] == big[..]);
        // Drained, the queue takes messages again.
        tokio::task::yield_now().await;
        outgoing.send(numbered(3, 5), 10).unwrap();
        let mut small = [0; 5];
        b.read_exact(&mut small).await.unwrap();
        assert_eq!(small[..], numbered(3, 5)[..]);
    }

    #[tokio::test]
    async fn a_closed_peer_makes_sends_fail() {
        let (outgoing, b, drained) = connected();
        drop(b);
        let mut result = Ok(());
        for _ in 0..1000 {
            result = outgoing.send(numbered(0, 4096), usize::MAX);
            if result.is_err() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(result, Err(SendError::Closed));
        drained.await.unwrap();
    }
}
