//! [`Comm`]: one connection that sends and receives ferry messages; [`listen`], [`connect`].

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use bytes::{Buf, BufMut, BytesMut};
use ferry_family::Context;
use ferry_wire::{EncodeOptions, Encoder, Limits, Message, MessageHead};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::mpsc;

use crate::handshake::{Peer, shake};
use crate::pool::{POOLED_MIN, Pool};
use crate::{Address, Config, TransportError};

/// Frames start at addresses aligned to this, on the way in.
pub const FRAME_ALIGN: usize = 64;

/// Bytes asked of the socket at a time while a message head is read.
const READ_CHUNK: usize = 64 << 10;

/// Bytes of buffer an in-process connection holds in each direction.
const INPROC_BUFFER: usize = 4 << 20;

type Reader = Box<dyn AsyncRead + Send + Unpin>;
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// In-process listeners, by name.
static INPROC: LazyLock<Mutex<HashMap<String, mpsc::Sender<DuplexStream>>>> =
    LazyLock::new(Default::default);

/// One connection: sends and receives [`Message`]s. Payload frames go out in vectored writes
/// straight from the message, and come in straight into 64-byte-aligned buffers of their own,
/// handed out as `Bytes` without another copy.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use ferry_transport::{Config, connect, listen};
/// use ferry_wire::{Header, Message};
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
    reader: Reader,
    writer: Writer,
    rbuf: BytesMut,
    wbuf: BytesMut,
    encoder: Encoder,
    limits: Limits,
    write_buffer: usize,
    local: Address,
    remote: Address,
    peer: Peer,
    shares_memory: bool,
    accepts: Vec<String>,
    pool: std::sync::Arc<Pool>,
}

impl std::fmt::Debug for Comm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Comm")
            .field("local", &self.local)
            .field("remote", &self.remote)
            .field("peer", &self.peer)
            .finish()
    }
}

/// A connection accepted by a [`Listener`], before its handshake. Run the handshake in a task
/// of its own, so that a slow client holds up nobody else.
pub struct Incoming {
    reader: Reader,
    writer: Writer,
    local: Address,
    remote: Address,
    config: Config,
}

impl Incoming {
    /// The peer's address.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(incoming: ferry_transport::Incoming) { println!("{}", incoming.remote()); }
    /// ```
    pub fn remote(&self) -> &Address {
        &self.remote
    }

    /// Runs the handshake (bounded by the config's handshake timeout) and gives the comm.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(mut listener: ferry_transport::Listener) -> Result<(), ferry_transport::TransportError> {
    /// let incoming = listener.accept().await?;
    /// tokio::spawn(async move {
    ///     if let Ok(mut comm) = incoming.handshake().await {
    ///         while let Ok(Some(message)) = comm.recv().await { /* ... */ let _ = message; }
    ///     }
    /// });
    /// # Ok(()) }
    /// ```
    pub async fn handshake(self) -> Result<Comm, TransportError> {
        Comm::open(
            self.reader,
            self.writer,
            self.local,
            self.remote,
            self.config,
        )
        .await
    }
}

/// Listens at an address; [`Listener::accept`] gives each incoming connection.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ferry_transport::TransportError> {
/// let listener = ferry_transport::listen(&"tcp://127.0.0.1:0".parse()?, Default::default()).await?;
/// assert!(listener.address().to_string().starts_with("tcp://127.0.0.1:"));
/// # Ok(())
/// # }
/// ```
pub struct Listener {
    kind: ListenerKind,
    address: Address,
    config: Config,
}

enum ListenerKind {
    Tcp(TcpListener),
    Unix(UnixListener),
    Inproc(mpsc::Receiver<DuplexStream>),
}

impl Drop for Listener {
    fn drop(&mut self) {
        match &self.address {
            Address::Unix(path) => {
                let _ = std::fs::remove_file(path);
            }
            Address::Inproc(name) => {
                INPROC
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(name);
            }
            Address::Tcp(_) => {}
        }
    }
}

fn io(what: &'static str, address: &Address) -> impl FnOnce(std::io::Error) -> TransportError {
    let address = address.to_string();
    move |source| TransportError::Io {
        what,
        address,
        source,
    }
}

/// Starts listening at `address` (`tcp://host:0` picks a free port; see [`Listener::address`]).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ferry_transport::TransportError> {
/// let listener = ferry_transport::listen(&"inproc://doc-listen".parse()?, Default::default()).await?;
/// assert!(ferry_transport::listen(&"inproc://doc-listen".parse()?, Default::default()).await.is_err());
/// # drop(listener);
/// # Ok(())
/// # }
/// ```
pub async fn listen(address: &Address, config: Config) -> Result<Listener, TransportError> {
    let (kind, address) = match address {
        Address::Tcp(host_port) => {
            let listener = TcpListener::bind(host_port)
                .await
                .map_err(io("listening at", address))?;
            let bound = listener.local_addr().map_err(io("listening at", address))?;
            (ListenerKind::Tcp(listener), Address::Tcp(bound.to_string()))
        }
        Address::Unix(path) => {
            let listener = UnixListener::bind(path).map_err(io("listening at", address))?;
            (ListenerKind::Unix(listener), address.clone())
        }
        Address::Inproc(name) => {
            let mut registry = INPROC.lock().unwrap_or_else(|p| p.into_inner());
            if registry.get(name).is_some_and(|tx| !tx.is_closed()) {
                return Err(TransportError::Inproc(format!(
                    "{address} already has a listener"
                )));
            }
            let (tx, rx) = mpsc::channel(1024);
            registry.insert(name.clone(), tx);
            (ListenerKind::Inproc(rx), address.clone())
        }
    };
    Ok(Listener {
        kind,
        address,
        config,
    })
}

impl Listener {
    /// The address the listener is bound to (with the port picked, for `tcp://host:0`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ferry_transport::TransportError> {
    /// let listener = ferry_transport::listen(&"inproc://doc-address".parse()?, Default::default()).await?;
    /// assert_eq!(listener.address().to_string(), "inproc://doc-address");
    /// # Ok(())
    /// # }
    /// ```
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// Waits for the next connection; its handshake is run by [`Incoming::handshake`].
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(mut listener: ferry_transport::Listener) -> Result<(), ferry_transport::TransportError> {
    /// let comm = listener.accept().await?.handshake().await?;
    /// # let _ = comm; Ok(()) }
    /// ```
    pub async fn accept(&mut self) -> Result<Incoming, TransportError> {
        let (reader, writer, remote): (Reader, Writer, Address) = match &mut self.kind {
            ListenerKind::Tcp(listener) => {
                let (stream, peer) = listener
                    .accept()
                    .await
                    .map_err(io("accepting at", &self.address))?;
                let _ = stream.set_nodelay(true);
                let (r, w) = stream.into_split();
                (Box::new(r), Box::new(w), Address::Tcp(peer.to_string()))
            }
            ListenerKind::Unix(listener) => {
                let (stream, _) = listener
                    .accept()
                    .await
                    .map_err(io("accepting at", &self.address))?;
                let (r, w) = stream.into_split();
                (Box::new(r), Box::new(w), self.address.clone())
            }
            ListenerKind::Inproc(rx) => {
                let stream = rx.recv().await.ok_or(TransportError::Closed)?;
                let (r, w) = tokio::io::split(stream);
                (Box::new(r), Box::new(w), self.address.clone())
            }
        };
        Ok(Incoming {
            reader,
            writer,
            local: self.address.clone(),
            remote,
            config: self.config.clone(),
        })
    }
}

/// Connects to `address` and runs the handshake, each bounded by the config's timeouts.
///
/// ```no_run
/// # #[allow(dead_code)]
/// # async fn f() -> Result<(), ferry_transport::TransportError> {
/// let comm = ferry_transport::connect(&"unix:///tmp/ferry.sock".parse()?, Default::default()).await?;
/// # let _ = comm; Ok(()) }
/// ```
pub async fn connect(address: &Address, config: Config) -> Result<Comm, TransportError> {
    let timeout = config.connect_timeout;
    let connecting = async {
        Ok::<_, TransportError>(match address {
            Address::Tcp(host_port) => {
                let stream = TcpStream::connect(host_port)
                    .await
                    .map_err(io("connecting to", address))?;
                let _ = stream.set_nodelay(true);
                let local = stream.local_addr().map_err(io("connecting to", address))?;
                let (r, w) = stream.into_split();
                (
                    Box::new(r) as Reader,
                    Box::new(w) as Writer,
                    Address::Tcp(local.to_string()),
                )
            }
            Address::Unix(path) => {
                let stream = UnixStream::connect(path)
                    .await
                    .map_err(io("connecting to", address))?;
                let (r, w) = stream.into_split();
                (
                    Box::new(r) as Reader,
                    Box::new(w) as Writer,
                    address.clone(),
                )
            }
            Address::Inproc(name) => {
                let tx = INPROC
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(name)
                    .cloned()
                    .ok_or_else(|| TransportError::Inproc(format!("no listener at {address}")))?;
                let (ours, theirs) = tokio::io::duplex(INPROC_BUFFER);
                tx.send(theirs).await.map_err(|_| {
                    TransportError::Inproc(format!("the listener at {address} is gone"))
                })?;
                let (r, w) = tokio::io::split(ours);
                (
                    Box::new(r) as Reader,
                    Box::new(w) as Writer,
                    address.clone(),
                )
            }
        })
    };
    let (reader, writer, local) =
        tokio::time::timeout(timeout, connecting)
            .await
            .map_err(|_| TransportError::Timeout {
                what: "connecting",
                address: address.to_string(),
                seconds: timeout.as_secs_f64(),
            })??;
    Comm::open(reader, writer, local, address.clone(), config).await
}

/// A zero-length buffer whose start is aligned to [`FRAME_ALIGN`], with room for `len` bytes.
fn aligned_buffer(len: usize) -> BytesMut {
    let mut buffer = BytesMut::with_capacity(len + FRAME_ALIGN - 1);
    let pad = buffer.as_ptr().align_offset(FRAME_ALIGN);
    buffer.put_bytes(0, pad);
    buffer.advance(pad);
    buffer
}

impl Comm {
    async fn open(
        mut reader: Reader,
        mut writer: Writer,
        local: Address,
        remote: Address,
        config: Config,
    ) -> Result<Comm, TransportError> {
        let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
        let shares_memory = remote.is_local();
        let timeout = config.handshake_timeout;
        let peer = tokio::time::timeout(
            timeout,
            shake(&mut reader, &mut writer, &mut rbuf, &config, shares_memory),
        )
        .await
        .map_err(|_| TransportError::Timeout {
            what: "the handshake",
            address: remote.to_string(),
            seconds: timeout.as_secs_f64(),
        })??;
        let encoder = Encoder::new(EncodeOptions::default().codec(peer.send_codec));
        Ok(Comm {
            reader,
            writer,
            rbuf,
            wbuf: BytesMut::with_capacity(config.write_buffer),
            encoder,
            limits: config.limits,
            write_buffer: config.write_buffer,
            local,
            remote,
            peer,
            shares_memory,
            accepts: config.accepts,
            pool: Pool::new(config.receive_pool),
        })
    }

    /// What the peer said in the handshake, and what was agreed.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(comm: &ferry_transport::Comm) { let _ = &comm.peer().identity; }
    /// ```
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The families this side announced it accepts.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(comm: &ferry_transport::Comm) { assert!(!comm.accepts().is_empty()); }
    /// ```
    pub fn accepts(&self) -> &[String] {
        &self.accepts
    }

    /// This side's address.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(comm: &ferry_transport::Comm) { println!("{}", comm.local_address()); }
    /// ```
    pub fn local_address(&self) -> &Address {
        &self.local
    }

    /// The peer's address.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(comm: &ferry_transport::Comm) { println!("{}", comm.remote_address()); }
    /// ```
    pub fn remote_address(&self) -> &Address {
        &self.remote
    }

    /// The [`Context`] families get for values on this connection: both addresses, and whether
    /// the peer shares this machine.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(comm: &ferry_transport::Comm) { assert!(comm.context().recipient.is_some()); }
    /// ```
    pub fn context(&self) -> Context {
        Context::new()
            .sender(self.local.to_string())
            .recipient(self.remote.to_string())
            .shares_memory(self.shares_memory)
    }

    /// Sends one message: [`Comm::feed`] then [`Comm::flush`].
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(comm: &mut ferry_transport::Comm) -> Result<(), ferry_transport::TransportError> {
    /// comm.send(&ferry_wire::Message::default()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn send(&mut self, message: &Message) -> Result<(), TransportError> {
        self.feed(message).await?;
        self.flush().await
    }

    /// Queues one message without flushing: small messages gather in the write buffer (written
    /// when it fills, or on [`Comm::flush`]); a message with large frames is written at once, its
    /// frames straight from memory in a vectored write. The buffer is bounded: when it is full,
    /// this waits for the socket.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(comm: &mut ferry_transport::Comm) -> Result<(), ferry_transport::TransportError> {
    /// for _ in 0..1000 {
    ///     comm.feed(&ferry_wire::Message::default()).await?;
    /// }
    /// comm.flush().await?;
    /// # Ok(()) }
    /// ```
    pub async fn feed(&mut self, message: &Message) -> Result<(), TransportError> {
        let mut encoded = self.encoder.encode(message)?;
        if encoded.len() > self.peer.max_message {
            return Err(TransportError::TooLarge {
                len: encoded.len(),
                limit: self.peer.max_message,
            });
        }
        let len = encoded.len() as usize;
        if self.wbuf.len() + len > self.write_buffer {
            self.write_buffered().await?;
        }
        if len <= self.write_buffer / 4 {
            self.wbuf.put(&mut encoded);
            return Ok(());
        }
        self.write_buffered().await?;
        let address = self.remote.clone();
        self.writer
            .write_all_buf(&mut encoded)
            .await
            .map_err(io("sending to", &address))
    }

    async fn write_buffered(&mut self) -> Result<(), TransportError> {
        if !self.wbuf.is_empty() {
            let address = self.remote.clone();
            self.writer
                .write_all_buf(&mut self.wbuf)
                .await
                .map_err(io("sending to", &address))?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// Writes whatever [`Comm::feed`] gathered.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(comm: &mut ferry_transport::Comm) -> Result<(), ferry_transport::TransportError> {
    /// comm.flush().await?;
    /// # Ok(()) }
    /// ```
    pub async fn flush(&mut self) -> Result<(), TransportError> {
        self.write_buffered().await?;
        let address = self.remote.clone();
        self.writer
            .flush()
            .await
            .map_err(io("sending to", &address))
    }

    /// Reads more bytes into the read buffer; `false` at the end of the stream.
    async fn fill(&mut self) -> Result<bool, TransportError> {
        self.rbuf.reserve(READ_CHUNK);
        let address = self.remote.clone();
        Ok(self
            .reader
            .read_buf(&mut self.rbuf)
            .await
            .map_err(io("receiving from", &address))?
            > 0)
    }

    /// Receives the next message; `None` when the peer closed the connection cleanly between
    /// messages. Every length is checked against this side's limits before anything is
    /// allocated; a malformed message is an error, after which the comm should be dropped.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(comm: &mut ferry_transport::Comm) -> Result<(), ferry_transport::TransportError> {
    /// while let Some(message) = comm.recv().await? {
    ///     println!("{} frames", message.frames.len());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn recv(&mut self) -> Result<Option<Message>, TransportError> {
        let remote = self.remote.to_string();
        let decode = |source| TransportError::Decode {
            peer: remote.clone(),
            source,
        };
        let head = loop {
            match MessageHead::parse(&self.rbuf, &self.limits).map_err(decode)? {
                Some(head) => break head,
                None if self.fill().await? => {}
                None if self.rbuf.is_empty() => return Ok(None),
                None => {
                    return Err(TransportError::Truncated {
                        peer: self.remote.to_string(),
                    });
                }
            }
        };
        let head_bytes = self.rbuf.split_to(head.head_len()).freeze();
        let mut position = head.head_len() as u64;
        let mut frames = Vec::with_capacity(head.frames().len());
        for layout in head.frames() {
            // Padding before the frame, then the frame itself into a buffer of its own.
            let mut skip = (layout.start - position) as usize;
            while skip > 0 {
                if self.rbuf.is_empty() && !self.fill().await? {
                    return Err(TransportError::Truncated {
                        peer: self.remote.to_string(),
                    });
                }
                let n = skip.min(self.rbuf.len());
                self.rbuf.advance(n);
                skip -= n;
            }
            let len = layout.wire_len as usize;
            // Large frames land in pooled, warm buffers that come back when the frame is
            // dropped; small ones get a fresh aligned buffer each.
            let frame = if len >= POOLED_MIN {
                let mut buffer = self.pool.take(len).ok_or(TransportError::OutOfMemory {
                    len: layout.wire_len,
                })?;
                self.read_into(buffer.vec(), len).await?;
                buffer.freeze()
            } else {
                let mut buffer = aligned_buffer(len);
                self.read_into(&mut buffer, len).await?;
                buffer.freeze()
            };
            frames.push(frame);
            position = layout.start + layout.wire_len;
        }
        head.assemble(head_bytes, frames).map(Some).map_err(decode)
    }

    /// Reads a frame of `len` bytes into `frame`: what the read buffer already holds, then the
    /// rest straight from the socket into `frame`, never past the frame's end.
    async fn read_into<B: BufMut>(
        &mut self,
        frame: &mut B,
        len: usize,
    ) -> Result<(), TransportError> {
        let buffered = len.min(self.rbuf.len());
        frame.put_slice(&self.rbuf[..buffered]);
        self.rbuf.advance(buffered);
        let mut filled = buffered;
        while filled < len {
            let want = (len - filled) as u64;
            let address = self.remote.clone();
            let n = (&mut self.reader)
                .take(want)
                .read_buf(frame)
                .await
                .map_err(io("receiving from", &address))?;
            if n == 0 {
                return Err(TransportError::Truncated {
                    peer: self.remote.to_string(),
                });
            }
            filled += n;
        }
        Ok(())
    }

    /// Flushes and closes this side of the connection; the peer's `recv` then returns `None`.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(comm: ferry_transport::Comm) -> Result<(), ferry_transport::TransportError> {
    /// comm.close().await?;
    /// # Ok(()) }
    /// ```
    pub async fn close(mut self) -> Result<(), TransportError> {
        self.flush().await?;
        let address = self.remote.clone();
        self.writer
            .shutdown()
            .await
            .map_err(io("closing", &address))
    }
}
