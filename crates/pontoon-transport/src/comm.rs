//! The message pump: [`Comm`], one connection that sends and receives pontoon messages, and its
//! halves [`SendHalf`] and [`RecvHalf`]. Receiving is a thin loop over pontoon-wire's
//! [`MessageReader`], so every bit of a message in progress lives in the comm, not in a future.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use pontoon_family::Context;
use pontoon_wire::{
    AuthRole, CLOSE_MARKER, CloseCode, CloseMessage, DecodeError, EncodeOptions, Encoded, Encoder,
    Message, MessageReader, RawMessage, Received, Want,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::budget::{Grant, Receiving, declared_need};
use crate::handshake::{Peer, shake};
use crate::listener::{Connection, Reader, Writer, io};
use crate::metrics::{self, Direction, OpenConnection, Refusal, Traffic};
use crate::pool::PoolUser;
use crate::tls::handshake_error;
use crate::{Address, Config, TransportError};

/// An error and its sources, one after another, for a log line.
struct ErrorChain<'e>(&'e dyn std::error::Error);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// Bytes asked of the socket at a time while a message head is read.
const READ_CHUNK: usize = 64 << 10;

/// Frame bytes still to come from which the comm reads straight into the frame's own buffer,
/// rather than through its read buffer.
const DIRECT_MIN: u64 = 64 << 10;

/// Messages that decompress to more than this are checked and decompressed on tokio's blocking
/// threads, so that one peer's large frames do not stall the other connections a worker serves;
/// smaller ones inline, where handing them over would cost more than the work.
const INLINE_DECOMPRESS_MAX: u64 = 1 << 20;

/// The longest a comm waits to tell the peer why it refuses it (its close message), before it
/// closes without saying: the peer may not be reading.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest a failed send waits for the peer's close message, to report its reason.
const CLOSE_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// The most messages a failed send reads (and keeps for `recv`) while it looks for the peer's
/// close message.
const CLOSE_READ_MESSAGES: usize = 64;

/// What both halves of a comm share: the connection's facts, the write side, and the close
/// message the peer sent, once seen.
struct Shared {
    local: Address,
    remote: Address,
    peer: Peer,
    shares_memory: bool,
    accepts: Vec<String>,
    write: Mutex<WriteSide>,
    peer_close: std::sync::Mutex<Option<CloseMessage>>,
    /// Counts the connection open until both halves are dropped.
    _open: OpenConnection,
}

impl Drop for Shared {
    fn drop(&mut self) {
        tracing::debug!(peer = %self.remote, local = %self.local, "connection closed");
    }
}

impl Shared {
    fn peer_close(&self) -> Option<CloseMessage> {
        self.peer_close
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn closed_by_peer(&self) -> Option<TransportError> {
        self.peer_close().map(|close| TransportError::ClosedByPeer {
            peer: self.remote.to_string(),
            close,
        })
    }
}

/// The write side: small messages gather in `wbuf`; a large one is written from its own chunks,
/// and what is left of it stays in `large` if a send is dropped half way.
struct WriteSide {
    writer: Writer,
    wbuf: BytesMut,
    large: Option<Encoded>,
    encoder: Encoder,
    write_buffer: usize,
    /// This side has sent its close message (or shut down): nothing more goes out.
    shut: bool,
    /// What was sent, per family (`None` when no recorder was installed at the open).
    traffic: Option<Traffic>,
}

impl WriteSide {
    /// Writes what earlier sends left: the buffer, then the rest of a large message. Both are
    /// advanced as bytes go out, so a dropped call leaves the rest for the next.
    async fn write_pending(&mut self, remote: &Address) -> Result<(), TransportError> {
        if !self.wbuf.is_empty() {
            self.writer
                .write_all_buf(&mut self.wbuf)
                .await
                .map_err(io("sending to", remote))?;
            self.wbuf.clear();
        }
        if let Some(large) = &mut self.large {
            self.writer
                .write_all_buf(large)
                .await
                .map_err(io("sending to", remote))?;
            self.large = None;
        }
        Ok(())
    }

    async fn feed(
        &mut self,
        message: &Message,
        peer_max: u64,
        remote: &Address,
    ) -> Result<(), TransportError> {
        if self.shut {
            return Err(TransportError::Closed);
        }
        self.write_pending(remote).await?;
        let encoded = self.encoder.encode(message)?;
        if encoded.len() > peer_max {
            return Err(TransportError::TooLarge {
                len: encoded.len(),
                limit: peer_max,
            });
        }
        if let Some(traffic) = &mut self.traffic {
            traffic.count(message.header.as_bytes(), encoded.len(), None);
        }
        tracing::trace!(
            peer = %remote,
            family = pontoon_family::family_name(message.header.as_bytes()).unwrap_or(metrics::FAMILY_NONE),
            bytes = encoded.len(),
            frames = message.frames.len(),
            "sending a message"
        );
        let len = encoded.len() as usize;
        if self.wbuf.len() + len > self.write_buffer {
            self.write_pending(remote).await?;
        }
        if len <= self.write_buffer / 4 {
            self.wbuf.put(encoded);
            return Ok(());
        }
        self.large = Some(encoded);
        self.write_pending(remote).await
    }

    async fn flush(&mut self, remote: &Address) -> Result<(), TransportError> {
        self.write_pending(remote).await?;
        self.writer.flush().await.map_err(io("sending to", remote))
    }

    /// Finishes what is pending, writes the close message and shuts this direction down.
    async fn close(
        &mut self,
        close: Option<&CloseMessage>,
        remote: &Address,
    ) -> Result<(), TransportError> {
        if self.shut {
            return Ok(());
        }
        self.write_pending(remote).await?;
        self.shut = true;
        // Everything sent has been written. A peer that has gone already cannot be told why
        // this side closes: that is not an error of the close.
        let gone = |e: &std::io::Error| {
            matches!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::NotConnected
            )
        };
        let mut said = match close {
            Some(close) => {
                let mut bytes = close.encode();
                self.writer.write_all_buf(&mut bytes).await
            }
            None => Ok(()),
        };
        if said.is_ok() {
            said = self.writer.flush().await;
        }
        if said.is_ok() {
            said = self.writer.shutdown().await;
        }
        match said {
            Err(e) if !gone(&e) => Err(io("closing", remote)(e)),
            _ => Ok(()),
        }
    }
}

/// One connection: sends and receives [`Message`]s. Payload frames go out in vectored writes
/// straight from the message, and come in straight into 64-byte-aligned buffers of their own,
/// handed out as `Bytes` without another copy.
///
/// Every operation is cancel safe in the sense tokio's docs use (see each method's
/// `# Cancel safety`): a `recv` dropped in a `tokio::select!` or under a timeout loses nothing,
/// and the next `recv` yields the message whole. [`Comm::split`] gives a send half and a receive
/// half for two tasks; [`Comm::unsplit`] puts them back.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use pontoon_transport::{Config, connect, listen};
/// use pontoon_wire::{Header, Message};
///
/// let mut listener = listen(&"inproc://doc-comm".parse()?, Config::new("server")).await?;
/// let client = tokio::spawn(async {
///     let mut comm = connect(&"inproc://doc-comm".parse()?, Config::new("client")).await?;
///     let frame = bytes::Bytes::from(vec![7u8; 1 << 20]);
///     comm.send(&Message::new(Header::from_serde(&"hello")?, vec![frame])).await?;
///     comm.close().await?;
///     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
/// });
/// let mut comm = listener.accept().await?.handshake().await?;
/// assert_eq!(comm.peer().identity, "client");
/// let message = comm.recv().await?.expect("one message");
/// assert_eq!(message.frames[0].as_ptr() as usize % 64, 0); // aligned on the way in
/// assert!(comm.recv().await?.is_none()); // closed cleanly
/// client.await?.unwrap();
/// # Ok(())
/// # }
/// ```
pub struct Comm {
    send: SendHalf,
    recv: RecvHalf,
}

impl std::fmt::Debug for Comm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shared = &self.send.shared;
        f.debug_struct("Comm")
            .field("local", &shared.local)
            .field("remote", &shared.remote)
            .field("peer", &shared.peer)
            .finish()
    }
}

impl std::fmt::Debug for SendHalf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendHalf")
            .field("local", &self.shared.local)
            .field("remote", &self.shared.remote)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for RecvHalf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvHalf")
            .field("local", &self.shared.local)
            .field("remote", &self.shared.remote)
            .field("reader", &self.reader)
            .field("grant", &self.grant)
            .finish_non_exhaustive()
    }
}

/// The sending half of a [`Comm`] (see [`Comm::split`]).
///
/// ```no_run
/// # #[allow(dead_code)]
/// # async fn f(comm: pontoon_transport::Comm) -> Result<(), pontoon_transport::TransportError> {
/// let (mut send, mut recv) = comm.split();
/// let echo = tokio::spawn(async move {
///     while let Some(message) = recv.recv().await? {
///         let _ = message;
///     }
///     Ok::<_, pontoon_transport::TransportError>(recv)
/// });
/// send.send(&pontoon_wire::Message::default()).await?;
/// send.close().await?;
/// # let _ = echo; Ok(()) }
/// ```
pub struct SendHalf {
    shared: Arc<Shared>,
}

/// The receiving half of a [`Comm`] (see [`Comm::split`]).
///
/// ```no_run
/// # #[allow(dead_code)]
/// # async fn f(mut recv: pontoon_transport::RecvHalf) -> Result<(), pontoon_transport::TransportError> {
/// while let Some(message) = recv.recv().await? {
///     println!("{} frames", message.frames.len());
/// }
/// # Ok(()) }
/// ```
pub struct RecvHalf {
    shared: Arc<Shared>,
    socket: Reader,
    rbuf: BytesMut,
    reader: MessageReader,
    /// The budget, decompression slots and pool this comm shares with its listener's others.
    receiving: Arc<Receiving>,
    /// This comm's claim on the pool: the pool keeps buffers for it until it is dropped.
    _pool_user: PoolUser,
    /// [`Config::receive_pool_idle_timeout`].
    pool_idle: Duration,
    /// What the message whose head is at the front of `rbuf` declares it needs from the budget,
    /// once its frame table is there.
    need: Option<u64>,
    /// The budget the message in progress holds (from when its head is read until it is
    /// handed over).
    grant: Option<Grant>,
    /// A whole message waiting for budget or a decompression slot before it is decoded.
    raw: Option<RawMessage>,
    /// A large message being checked and decompressed on a blocking thread.
    decoding: Option<JoinHandle<Result<Message, DecodeError>>>,
    /// Messages read while a failed send looked for the peer's close message.
    ready: VecDeque<Message>,
    /// What was received, per family (`None` when no recorder was installed at the open).
    traffic: Option<Traffic>,
    /// Why this side stopped reading, once it has.
    failed: Option<DecodeError>,
    /// The peer's clean end: its close message said going-away, or the stream ended between
    /// messages.
    ended: bool,
}

impl Comm {
    pub(crate) async fn open(
        connection: Connection,
        local: Address,
        remote: Address,
        config: Config,
        accepts: Vec<String>,
        role: AuthRole,
        receiving: Option<Arc<Receiving>>,
    ) -> Result<Comm, TransportError> {
        let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
        let shares_memory = remote.is_local();
        let timeout = config.handshake_timeout;
        let opening = async {
            let (mut socket, mut writer, certificate) = match connection {
                Connection::Plain(socket, writer) => (socket, writer, None),
                Connection::Tls(upgrade) => {
                    let upgraded =
                        upgrade
                            .run()
                            .await
                            .map_err(|error| match handshake_error(error) {
                                Ok(source) => TransportError::Tls {
                                    address: remote.to_string(),
                                    source,
                                },
                                Err(error) => io("the TLS handshake with", &remote)(error),
                            })?;
                    tracing::debug!(
                        peer = %remote,
                        certificate = upgraded.2.as_ref().and_then(|c| c.name()),
                        "TLS handshake finished"
                    );
                    upgraded
                }
            };
            let mut peer = shake(
                &mut socket,
                &mut writer,
                &mut rbuf,
                &config,
                accepts.clone(),
                shares_memory,
                role,
            )
            .await?;
            peer.certificate = certificate;
            Ok::<_, TransportError>((socket, writer, peer))
        };
        let opened = tokio::time::timeout(timeout, opening)
            .await
            .map_err(|_| TransportError::Timeout {
                what: "the handshake",
                address: remote.to_string(),
                seconds: timeout.as_secs_f64(),
            })
            .and_then(|opened| opened);
        let (socket, writer, peer) = match opened {
            Ok(opened) => opened,
            Err(error) => {
                let reason = metrics::handshake_reason(&error);
                metrics::handshake_failed(reason);
                // A peer that cannot prove the secret is worth an operator's look; the rest is
                // the ordinary churn of a reachable port.
                if reason == "auth" {
                    tracing::warn!(peer = %remote, reason, error = %ErrorChain(&error), "handshake failed");
                } else {
                    tracing::info!(peer = %remote, reason, error = %ErrorChain(&error), "handshake failed");
                }
                return Err(error);
            }
        };
        tracing::debug!(
            peer = %remote,
            identity = %peer.identity,
            accepts = ?peer.accepts,
            send_codec = ?peer.send_codec,
            certificate = peer.certificate.as_ref().and_then(|c| c.name()),
            "connection open"
        );
        let open = OpenConnection::new(&remote);
        let encoder = Encoder::new({
            let mut options = EncodeOptions::default();
            options.codec = peer.send_codec;
            options
        });
        let receiving = receiving.unwrap_or_else(|| Receiving::new(&config));
        let pool_user = receiving.pool.attach();
        let pool = receiving.pool.clone();
        let shared = Arc::new(Shared {
            local,
            remote,
            peer,
            shares_memory,
            accepts,
            write: Mutex::new(WriteSide {
                writer,
                wbuf: BytesMut::with_capacity(config.write_buffer_bytes),
                large: None,
                encoder,
                write_buffer: config.write_buffer_bytes,
                shut: false,
                traffic: Traffic::new(Direction::Sent),
            }),
            peer_close: std::sync::Mutex::new(None),
            _open: open,
        });
        Ok(Comm {
            send: SendHalf {
                shared: shared.clone(),
            },
            recv: RecvHalf {
                shared,
                socket,
                rbuf,
                reader: MessageReader::without_preamble(config.limits).with_buffers(pool),
                receiving,
                _pool_user: pool_user,
                pool_idle: config
                    .receive_pool_idle_timeout
                    .max(Duration::from_millis(1)),
                need: None,
                grant: None,
                raw: None,
                decoding: None,
                ready: VecDeque::new(),
                traffic: Traffic::new(Direction::Received),
                failed: None,
                ended: false,
            },
        })
    }

    /// Splits the comm into a half that sends and a half that receives, to use from two tasks.
    /// [`Comm::unsplit`] puts them back together.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(comm: pontoon_transport::Comm) -> Result<(), pontoon_transport::TransportError> {
    /// let (send, recv) = comm.split();
    /// let comm = pontoon_transport::Comm::unsplit(send, recv)?;
    /// # let _ = comm; Ok(()) }
    /// ```
    pub fn split(self) -> (SendHalf, RecvHalf) {
        (self.send, self.recv)
    }

    /// Puts the halves of one comm back together; [`TransportError::NotHalves`] if they come
    /// from different comms.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(a: pontoon_transport::Comm, b: pontoon_transport::Comm) {
    /// let (send_a, _recv_a) = a.split();
    /// let (_send_b, recv_b) = b.split();
    /// assert!(pontoon_transport::Comm::unsplit(send_a, recv_b).is_err());
    /// # }
    /// ```
    pub fn unsplit(send: SendHalf, recv: RecvHalf) -> Result<Comm, TransportError> {
        if Arc::ptr_eq(&send.shared, &recv.shared) {
            Ok(Comm { send, recv })
        } else {
            Err(TransportError::NotHalves)
        }
    }

    /// What the peer said in the handshake, and what was agreed.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(comm: &pontoon_transport::Comm) { let _ = &comm.peer().identity; }
    /// ```
    pub fn peer(&self) -> &Peer {
        &self.send.shared.peer
    }

    /// The families this side announced it accepts.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(comm: &pontoon_transport::Comm) { assert!(!comm.accepts().is_empty()); }
    /// ```
    pub fn accepts(&self) -> &[String] {
        &self.send.shared.accepts
    }

    /// This side's address.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(comm: &pontoon_transport::Comm) { println!("{}", comm.local_address()); }
    /// ```
    pub fn local_address(&self) -> &Address {
        &self.send.shared.local
    }

    /// The peer's address.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(comm: &pontoon_transport::Comm) { println!("{}", comm.remote_address()); }
    /// ```
    pub fn remote_address(&self) -> &Address {
        &self.send.shared.remote
    }

    /// The [`Context`] families get for values on this connection: both addresses, and whether
    /// the peer shares this machine.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(comm: &pontoon_transport::Comm) { assert!(comm.context().recipient.is_some()); }
    /// ```
    pub fn context(&self) -> Context {
        self.send.context()
    }

    /// Sends one message: [`Comm::feed`] then [`Comm::flush`]. If the peer has closed the
    /// connection with a close message, the error is [`TransportError::ClosedByPeer`] with its
    /// reason, not a broken pipe.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(comm: &mut pontoon_transport::Comm) -> Result<(), pontoon_transport::TransportError> {
    /// comm.send(&pontoon_wire::Message::default()).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe as [`SendHalf::send`] is: a dropped send never leaves part of a message on
    /// the wire; the message is either not sent or sent whole by the next send, flush or close.
    pub async fn send(&mut self, message: &Message) -> Result<(), TransportError> {
        self.recv.close_if_arrived()?;
        let sent = self.send.send(message).await;
        self.with_peer_reason(sent).await
    }

    /// Queues one message without flushing: small messages gather in the write buffer (written
    /// when it fills, or on [`Comm::flush`]); a message with large frames is written at once, its
    /// frames straight from memory in a vectored write. The buffer is bounded: when it is full,
    /// this waits for the socket.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(comm: &mut pontoon_transport::Comm) -> Result<(), pontoon_transport::TransportError> {
    /// for _ in 0..1000 {
    ///     comm.feed(&pontoon_wire::Message::default()).await?;
    /// }
    /// comm.flush().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// As [`Comm::send`].
    pub async fn feed(&mut self, message: &Message) -> Result<(), TransportError> {
        self.recv.close_if_arrived()?;
        let fed = self.send.feed(message).await;
        self.with_peer_reason(fed).await
    }

    /// Writes whatever [`Comm::feed`] gathered.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(comm: &mut pontoon_transport::Comm) -> Result<(), pontoon_transport::TransportError> {
    /// comm.flush().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: what was not written yet stays queued for the next flush.
    pub async fn flush(&mut self) -> Result<(), TransportError> {
        let flushed = self.send.flush().await;
        self.with_peer_reason(flushed).await
    }

    /// A send that failed on the socket may have failed because the peer refused us and
    /// closed: look for its close message, to report why.
    async fn with_peer_reason(
        &mut self,
        result: Result<(), TransportError>,
    ) -> Result<(), TransportError> {
        match result {
            Err(TransportError::Io { .. }) => {
                let found = tokio::time::timeout(CLOSE_READ_TIMEOUT, self.recv.look_for_close())
                    .await
                    .ok()
                    .flatten();
                match found {
                    Some(error) => Err(error),
                    None => result,
                }
            }
            other => other,
        }
    }

    /// Receives the next message; `None` when the peer closed the connection cleanly between
    /// messages. See [`RecvHalf::recv`].
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(comm: &mut pontoon_transport::Comm) -> Result<(), pontoon_transport::TransportError> {
    /// while let Some(message) = comm.recv().await? {
    ///     println!("{} frames", message.frames.len());
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped before it completes (in a `tokio::select!` or
    /// under a timeout), nothing is lost; the next `recv` yields the message whole.
    pub async fn recv(&mut self) -> Result<Option<Message>, TransportError> {
        self.recv.recv().await
    }

    /// Tells the peer why this side refuses it (`code`, and a reason of at most 120 bytes), then
    /// closes this side: the peer's next `recv` or `send` gets
    /// [`TransportError::ClosedByPeer`]. For receivers that refuse a well-formed message
    /// ([`CloseCode::NotAccepted`]); the comm refuses too-large and malformed messages itself.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(mut comm: pontoon_transport::Comm) -> Result<(), pontoon_transport::TransportError> {
    /// comm.refuse(pontoon_wire::CloseCode::NotAccepted, "family `custom` is not accepted").await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a refusal dropped half way may leave the close message unsent (the
    /// peer then sees the connection end when the comm is dropped). Sends after a refusal give
    /// [`TransportError::Closed`].
    pub async fn refuse(&mut self, code: CloseCode, reason: &str) -> Result<(), TransportError> {
        self.send.refuse(code, reason).await
    }

    /// Flushes, tells the peer this side is going away, and closes this side of the connection;
    /// the peer's `recv` then returns `None`.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(comm: pontoon_transport::Comm) -> Result<(), pontoon_transport::TransportError> {
    /// comm.close().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a close dropped half way may leave queued messages unsent. The comm was
    /// consumed either way.
    pub async fn close(self) -> Result<(), TransportError> {
        self.send.close().await
    }
}

impl SendHalf {
    fn context(&self) -> Context {
        Context::new()
            .sender(self.shared.local.to_string())
            .recipient(self.shared.remote.to_string())
            .shares_memory(self.shared.shares_memory)
            .peer_identity(
                self.shared
                    .peer
                    .certificate
                    .as_ref()
                    .and_then(|c| c.name())
                    .map(String::from),
            )
    }

    /// What the peer said in the handshake, and what was agreed.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(send: &pontoon_transport::SendHalf) { let _ = &send.peer().identity; }
    /// ```
    pub fn peer(&self) -> &Peer {
        &self.shared.peer
    }

    /// Sends one message: [`SendHalf::feed`] then [`SendHalf::flush`]. If the receive half has
    /// seen the peer's close message, the error is [`TransportError::ClosedByPeer`].
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(send: &mut pontoon_transport::SendHalf) -> Result<(), pontoon_transport::TransportError> {
    /// send.send(&pontoon_wire::Message::default()).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe in that a dropped send never leaves part of a message on the wire: the
    /// message is either not sent, or (once writing began) sent whole by the next send, flush or
    /// close. A caller that drops a send cannot tell which.
    pub async fn send(&mut self, message: &Message) -> Result<(), TransportError> {
        self.feed(message).await?;
        self.flush().await
    }

    /// Queues one message (see [`Comm::feed`]).
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(send: &mut pontoon_transport::SendHalf) -> Result<(), pontoon_transport::TransportError> {
    /// send.feed(&pontoon_wire::Message::default()).await?;
    /// send.flush().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// As [`SendHalf::send`].
    pub async fn feed(&mut self, message: &Message) -> Result<(), TransportError> {
        if let Some(error) = self.shared.closed_by_peer() {
            return Err(error);
        }
        let mut write = self.shared.write.lock().await;
        let fed = write
            .feed(
                message,
                self.shared.peer.max_message_bytes,
                &self.shared.remote,
            )
            .await;
        self.or_peer_reason(fed)
    }

    /// Writes whatever [`SendHalf::feed`] gathered.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(send: &mut pontoon_transport::SendHalf) -> Result<(), pontoon_transport::TransportError> {
    /// send.flush().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: what was not written yet stays queued for the next flush.
    pub async fn flush(&mut self) -> Result<(), TransportError> {
        let mut write = self.shared.write.lock().await;
        let flushed = write.flush(&self.shared.remote).await;
        self.or_peer_reason(flushed)
    }

    fn or_peer_reason(&self, result: Result<(), TransportError>) -> Result<(), TransportError> {
        match (result, self.shared.closed_by_peer()) {
            (Err(TransportError::Io { .. }), Some(error)) => Err(error),
            (result, _) => result,
        }
    }

    /// See [`Comm::refuse`].
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(mut send: pontoon_transport::SendHalf) -> Result<(), pontoon_transport::TransportError> {
    /// send.refuse(pontoon_wire::CloseCode::NotAccepted, "not on the list").await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// As [`Comm::refuse`].
    pub async fn refuse(&mut self, code: CloseCode, reason: &str) -> Result<(), TransportError> {
        metrics::refused(code, Refusal::Sent);
        tracing::info!(
            peer = %self.shared.remote,
            code = metrics::code_label(code),
            reason,
            "refusing the peer"
        );
        let close = CloseMessage::new(code, reason);
        let mut write = self.shared.write.lock().await;
        write.close(Some(&close), &self.shared.remote).await
    }

    /// Flushes, sends a going-away close message and shuts down the sending direction; the
    /// receive half keeps receiving what the peer still sends.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(send: pontoon_transport::SendHalf) -> Result<(), pontoon_transport::TransportError> {
    /// send.close().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// As [`Comm::close`].
    pub async fn close(self) -> Result<(), TransportError> {
        let close = CloseMessage::new(CloseCode::GoingAway, "");
        let mut write = self.shared.write.lock().await;
        write.close(Some(&close), &self.shared.remote).await
    }
}

impl RecvHalf {
    /// What the peer said in the handshake, and what was agreed.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(recv: &pontoon_transport::RecvHalf) { let _ = &recv.peer().identity; }
    /// ```
    pub fn peer(&self) -> &Peer {
        &self.shared.peer
    }

    /// The close message the peer sent, once this half has read it.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(recv: &pontoon_transport::RecvHalf) { let _ = recv.peer_close(); }
    /// ```
    pub fn peer_close(&self) -> Option<CloseMessage> {
        self.shared.peer_close()
    }

    fn decode_error(&self, source: DecodeError) -> TransportError {
        match source {
            DecodeError::OutOfMemory { len, .. } => TransportError::OutOfMemory { len },
            source => TransportError::Decode {
                peer: self.shared.remote.to_string(),
                source,
            },
        }
    }

    /// Receives the next message; `None` when the peer closed the connection cleanly between
    /// messages (its going-away close message, or the end of the stream). Every length is
    /// checked against this side's limits before anything is allocated, and frame memory is
    /// reserved as the frame's bytes arrive, within the receive budget this comm shares with its
    /// listener's others (see [`Config::receive_budget_bytes`]): while none is left, `recv`
    /// waits without reading. A message this side refuses (too large, malformed)
    /// is an error after which the comm is done; the peer is told why with a close message first.
    /// A peer that closed with another code gives [`TransportError::ClosedByPeer`].
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(recv: &mut pontoon_transport::RecvHalf) -> Result<(), pontoon_transport::TransportError> {
    /// while let Some(message) = recv.recv().await? {
    ///     println!("{} frames", message.frames.len());
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: every bit of the message in progress (its head, the frames received so far,
    /// its share of the receive budget, a decompression under way) lives in the half, not in
    /// the future. If the future is dropped before it completes (in a `tokio::select!` or under
    /// a timeout, even while it waits for budget or for a decompression slot), nothing is lost;
    /// the next `recv` yields the message whole.
    pub async fn recv(&mut self) -> Result<Option<Message>, TransportError> {
        if let Some(message) = self.ready.pop_front() {
            return Ok(Some(message));
        }
        // A message a dropped recv left whole (waiting to be decoded, or decoding) comes first.
        if self.raw.is_none() && self.decoding.is_none() {
            match self.next().await? {
                Some(raw) => self.raw = Some(raw),
                None => return Ok(None),
            }
        }
        self.decode().await.map(Some)
    }

    /// Checks and decompresses the whole message in `raw` (or the one decoding): inline if
    /// small, else on a blocking thread once its output has budget and a slot is free. Both the
    /// message and the task stay in the half, so a dropped `recv` leaves them to the next. The
    /// message's budget is given back when it is handed over.
    async fn decode(&mut self) -> Result<Message, TransportError> {
        if self.decoding.is_none() {
            let Some(expands) = self.raw.as_ref().map(|raw| raw.head().decompressed_bytes()) else {
                return Err(TransportError::Closed);
            };
            if let Some(grant) = &mut self.grant
                && expands > 0
            {
                // Its output counts too: all it declared, before it is made.
                grant.all().await;
            }
            if expands <= INLINE_DECOMPRESS_MAX {
                let decoded = self.raw.take().map(RawMessage::decode);
                self.grant = None;
                return match decoded {
                    Some(Ok(message)) => Ok(message),
                    Some(Err(source)) => Err(self.refuse(source).await),
                    None => Err(TransportError::Closed),
                };
            }
            if self.grant.is_none() {
                // The message came whole with its head, so it took no budget for its output.
                let grant = self.grant.insert(self.receiving.open(expands));
                grant.all().await;
            }
            let slot = self.receiving.decompression_slot().await?;
            let Some(raw) = self.raw.take() else {
                return Err(TransportError::Closed);
            };
            self.decoding = Some(tokio::task::spawn_blocking(move || {
                slot.run(|| raw.decode())
            }));
        }
        self.finish_decoding().await
    }

    async fn finish_decoding(&mut self) -> Result<Message, TransportError> {
        let Some(task) = &mut self.decoding else {
            return Err(TransportError::Closed);
        };
        let joined = task.await;
        self.decoding = None;
        self.grant = None;
        match joined {
            Ok(Ok(message)) => Ok(message),
            Ok(Err(source)) => Err(self.refuse(source).await),
            Err(_) => Err(TransportError::DecodeTask {
                peer: self.shared.remote.to_string(),
            }),
        }
    }

    /// The next whole message's raw bytes, or `None` at a clean end. After an error the comm is
    /// done: the message in progress gives its budget back at once, even if the caller keeps
    /// the comm (its partial frames are freed when the comm is dropped).
    async fn next(&mut self) -> Result<Option<RawMessage>, TransportError> {
        let next = self.read_next().await;
        if next.is_err() {
            self.grant = None;
        }
        next
    }

    async fn read_next(&mut self) -> Result<Option<RawMessage>, TransportError> {
        if let Some(source) = self.failed.clone() {
            return Err(self.decode_error(source));
        }
        if let Some(error) = self.shared.closed_by_peer() {
            return Err(error);
        }
        if self.ended {
            return Ok(None);
        }
        loop {
            if self.need.is_none() && self.reader.is_between_messages() {
                // Before the reader takes the head: once it has, the frame table is its own.
                self.need = declared_need(&self.rbuf, self.reader.limits());
            }
            match self.reader.read(&mut self.rbuf) {
                Ok(Some(Received::Message(raw))) => {
                    self.need = None;
                    self.received(&raw);
                    return Ok(Some(raw));
                }
                Ok(Some(Received::Close(close))) => return self.closed(close).map(|()| None),
                Ok(None) => {}
                Err(source) => return Err(self.refuse(source).await),
            }
            // Within a message, the comm reads only what its budget grants (the read buffer
            // may hold one read's worth more: the head, and what came with it).
            let allowed = if self.reader.is_between_messages() {
                usize::MAX
            } else {
                // The head is read and checked: the message's account opens with what it
                // declared (the whole budget if, never so, the declaration was not seen).
                let need = self.need.unwrap_or(u64::MAX);
                let grant = self.grant.get_or_insert_with(|| self.receiving.open(need));
                if grant.spare() == 0 {
                    grant.more_to_read().await;
                }
                usize::try_from(grant.spare()).unwrap_or(usize::MAX)
            };
            let remote = &self.shared.remote;
            let direct = matches!(self.reader.want(), Want::Frame { remaining, .. } if remaining >= DIRECT_MIN)
                && self.rbuf.is_empty();
            let n = if direct {
                let space = match self.reader.frame_space() {
                    Ok(space) => space,
                    Err(source) => return Err(self.refuse(source).await),
                };
                match space {
                    Some(mut space) => self
                        .socket
                        .read_buf(&mut (&mut space).limit(allowed))
                        .await
                        .map_err(io("receiving from", remote))?,
                    None => continue,
                }
            } else if self.reader.is_between_messages() && self.rbuf.is_empty() {
                // Waiting for the next message: each time it has waited the pool's idle time,
                // the pool frees what nobody took meanwhile. (The read is cancel safe, so a
                // timed-out wait loses nothing and goes on.)
                self.rbuf.reserve(READ_CHUNK);
                let idle = self.pool_idle;
                let pool = &self.receiving.pool;
                let mut read = std::pin::pin!(self.socket.read_buf(&mut self.rbuf));
                loop {
                    match tokio::time::timeout(idle, &mut read).await {
                        Ok(read) => break read.map_err(io("receiving from", remote))?,
                        Err(_) => pool.trim_unused(idle),
                    }
                }
            } else {
                self.rbuf.reserve(READ_CHUNK);
                self.socket
                    .read_buf(&mut (&mut self.rbuf).limit(allowed))
                    .await
                    .map_err(io("receiving from", remote))?
            };
            if let Some(grant) = &mut self.grant {
                grant.arrived(n as u64);
            }
            if n == 0 {
                return match self.reader.end_of_stream(&self.rbuf) {
                    Ok(()) => {
                        self.ended = true;
                        Ok(None)
                    }
                    Err(_) => Err(TransportError::Truncated {
                        peer: self.shared.remote.to_string(),
                    }),
                };
            }
        }
    }

    /// Counts and traces a whole message as it comes off the wire (before it is decoded).
    fn received(&mut self, raw: &RawMessage) {
        let head = raw.head();
        if let Some(traffic) = &mut self.traffic {
            traffic.count(
                head.header().as_bytes(),
                head.len(),
                Some(&self.shared.accepts),
            );
        }
        tracing::trace!(
            peer = %self.shared.remote,
            family = pontoon_family::family_name(head.header().as_bytes())
                .unwrap_or(metrics::FAMILY_NONE),
            bytes = head.len(),
            frames = head.frames().len(),
            "received a message"
        );
    }

    /// Refuses the peer for `source`: tells it why with a close message (bounded in time, and
    /// only between whole messages of ours), and gives the error for this side.
    async fn refuse(&mut self, source: DecodeError) -> TransportError {
        let code = match &source {
            DecodeError::TooManyFrames { .. }
            | DecodeError::HeaderTooLarge { .. }
            | DecodeError::FrameTooLarge { .. }
            | DecodeError::MessageTooLarge { .. }
            | DecodeError::ExpansionTooLarge { .. } => CloseCode::TooLarge,
            DecodeError::OutOfMemory { .. } => CloseCode::Internal,
            _ => CloseCode::Malformed,
        };
        self.failed = Some(source.clone());
        metrics::refused(code, Refusal::Sent);
        tracing::info!(
            peer = %self.shared.remote,
            code = metrics::code_label(code),
            error = %source,
            "refusing the peer"
        );
        let close = CloseMessage::new(code, &source.to_string());
        let shared = self.shared.clone();
        let _ = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, async move {
            let mut write = shared.write.lock().await;
            write.close(Some(&close), &shared.remote).await
        })
        .await;
        self.decode_error(source)
    }

    /// Between messages, whether the peer's close message has arrived: looks at what is
    /// buffered and at what the socket has ready now, without waiting (tokio answers "not ready"
    /// from its readiness state, with no system call). Bytes of a message stay for `recv`.
    fn close_if_arrived(&mut self) -> Result<(), TransportError> {
        if let Some(error) = self.shared.closed_by_peer() {
            return Err(error);
        }
        if !self.reader.is_between_messages() || self.ended || self.failed.is_some() {
            return Ok(());
        }
        if self.rbuf.is_empty() {
            self.rbuf.reserve(READ_CHUNK);
            let mut read = std::pin::pin!(self.socket.read_buf(&mut self.rbuf));
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            if !matches!(read.as_mut().poll(&mut cx), std::task::Poll::Ready(Ok(1..))) {
                return Ok(());
            }
        }
        if self.rbuf.starts_with(&CLOSE_MARKER)
            && let Ok(Some(Received::Close(close))) = self.reader.read(&mut self.rbuf)
        {
            return self.closed(close);
        }
        Ok(())
    }

    /// The peer's close message arrived: a going-away close is a clean end (`Ok`); any other is
    /// kept for both halves to report, and is this call's error.
    fn closed(&mut self, close: CloseMessage) -> Result<(), TransportError> {
        if close.code == CloseCode::GoingAway {
            self.ended = true;
            return Ok(());
        }
        metrics::refused(close.code, Refusal::Received);
        tracing::info!(
            peer = %self.shared.remote,
            code = metrics::code_label(close.code),
            reason = %close.reason,
            "the peer refused this side"
        );
        *self
            .shared
            .peer_close
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(close);
        Err(self
            .shared
            .closed_by_peer()
            .unwrap_or(TransportError::Closed))
    }

    /// After a failed send: reads on for the peer's close message, keeping the messages before
    /// it for `recv` (a bounded number). The close's error, if one came.
    async fn look_for_close(&mut self) -> Option<TransportError> {
        if let Some(error) = self.shared.closed_by_peer() {
            return Some(error);
        }
        if self.raw.is_some() || self.decoding.is_some() {
            let message = self.decode().await.ok()?;
            self.ready.push_back(message);
        }
        for _ in 0..CLOSE_READ_MESSAGES {
            match self.next().await {
                Ok(Some(raw)) => {
                    self.raw = Some(raw);
                    let message = self.decode().await.ok()?;
                    self.ready.push_back(message);
                }
                Ok(None) => return None,
                Err(error @ TransportError::ClosedByPeer { .. }) => return Some(error),
                Err(_) => return None,
            }
        }
        None
    }
}
