//! Listeners and connecting: [`listen`], [`Listener`], [`Incoming`] and [`connect`], over
//! tcp://, tls://, unix:// and inproc://; each connection becomes a [`Comm`] after its handshake
//! (for tls://, the TLS handshake first, inside the same timeout).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tracing::Instrument;

use crate::backoff::{Backoff, is_transient};
use crate::budget::Receiving;
use crate::tls::Upgrade;
use pontoon_wire::AuthRole;

use crate::{Address, Comm, Config, TransportError};

/// Bytes of buffer an in-process connection holds in each direction.
const INPROC_BUFFER: usize = 4 << 20;

pub(crate) type Reader = Box<dyn AsyncRead + Send + Unpin>;
pub(crate) type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// A fresh connection: a plain stream's halves, or a TCP stream whose TLS handshake is still to
/// run (inside the handshake timeout, in the connection's own task).
pub(crate) enum Connection {
    Plain(Reader, Writer),
    Tls(Upgrade),
}

/// In-process listeners, by name.
static INPROC: LazyLock<Mutex<HashMap<String, mpsc::Sender<DuplexStream>>>> =
    LazyLock::new(Default::default);

/// A connection accepted by a [`Listener`], before its handshake. Run the handshake in a task
/// of its own, so that a slow client holds up nobody else.
pub struct Incoming {
    connection: Connection,
    local: Address,
    remote: Address,
    config: Config,
    /// Held until the handshake ends, so the listener has at most
    /// [`Config::max_pending_handshakes`] unfinished.
    permit: OwnedSemaphorePermit,
    /// The listener's receive pool, shared by all its connections.
    receiving: Arc<Receiving>,
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming")
            .field("local", &self.local)
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

impl Incoming {
    /// The peer's address.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(incoming: pontoon_transport::Incoming) { println!("{}", incoming.remote_address()); }
    /// ```
    pub fn remote_address(&self) -> &Address {
        &self.remote
    }

    /// The listener's config this connection will shake hands with.
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// Runs the handshake (bounded by the config's handshake timeout) and gives the comm.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(mut listener: pontoon_transport::Listener) -> Result<(), pontoon_transport::TransportError> {
    /// let incoming = listener.accept().await?;
    /// tokio::spawn(async move {
    ///     if let Ok(mut comm) = incoming.handshake().await {
    ///         while let Ok(Some(message)) = comm.recv().await { /* ... */ let _ = message; }
    ///     }
    /// });
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropping the future before it completes drops the connection (the
    /// `Incoming` was moved into it). Nothing else is affected.
    pub async fn handshake(self) -> Result<Comm, TransportError> {
        let accepts = self.config.announced(None);
        self.handshake_announcing(accepts).await
    }

    /// [`Incoming::handshake`], announcing `accepts`.
    pub(crate) async fn handshake_announcing(
        self,
        accepts: Vec<String>,
    ) -> Result<Comm, TransportError> {
        let _permit = self.permit;
        let span = tracing::info_span!("pontoon_transport.accept", peer = %self.remote, local = %self.local);
        Comm::open(
            self.connection,
            self.local,
            self.remote,
            self.config,
            accepts,
            AuthRole::Server,
            Some(self.receiving),
        )
        .instrument(span)
        .await
    }
}

/// Listens at an address; [`Listener::accept`] gives each incoming connection.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), pontoon_transport::TransportError> {
/// let listener = pontoon_transport::listen(&"tcp://127.0.0.1:0".parse()?, Default::default()).await?;
/// assert!(listener.address().to_string().starts_with("tcp://127.0.0.1:"));
/// # Ok(())
/// # }
/// ```
pub struct Listener {
    kind: ListenerKind,
    address: Address,
    config: Config,
    /// One permit per handshake that may be unfinished at once.
    handshakes: Arc<Semaphore>,
    backoff: Backoff,
    /// Receive buffers kept for reuse, shared by every connection accepted here.
    receiving: Arc<Receiving>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("address", &self.address)
            .field("receiving", &self.receiving)
            .finish_non_exhaustive()
    }
}

enum ListenerKind {
    Tcp(TcpListener),
    Tls(TcpListener, Arc<rustls::ServerConfig>),
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
            Address::Tcp(_) | Address::Tls(_) => {}
        }
    }
}

pub(crate) fn io(
    what: &'static str,
    address: &Address,
) -> impl FnOnce(std::io::Error) -> TransportError {
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
/// # async fn main() -> Result<(), pontoon_transport::TransportError> {
/// let listener = pontoon_transport::listen(&"inproc://doc-listen".parse()?, Default::default()).await?;
/// assert!(pontoon_transport::listen(&"inproc://doc-listen".parse()?, Default::default()).await.is_err());
/// # drop(listener);
/// # Ok(())
/// # }
/// ```
///
/// # Cancel safety
///
/// Cancel safe: a future dropped before it completes leaves nothing listening.
pub async fn listen(address: &Address, config: Config) -> Result<Listener, TransportError> {
    let (kind, address) = match address {
        Address::Tcp(host_port) => {
            let listener = TcpListener::bind(host_port)
                .await
                .map_err(io("listening at", address))?;
            let bound = listener.local_addr().map_err(io("listening at", address))?;
            (ListenerKind::Tcp(listener), Address::Tcp(bound.to_string()))
        }
        Address::Tls(host_port) => {
            let server = Upgrade::server_config(config.tls.as_ref()).map_err(|source| {
                TransportError::Tls {
                    address: address.to_string(),
                    source,
                }
            })?;
            let listener = TcpListener::bind(host_port)
                .await
                .map_err(io("listening at", address))?;
            let bound = listener.local_addr().map_err(io("listening at", address))?;
            (
                ListenerKind::Tls(listener, server),
                Address::Tls(bound.to_string()),
            )
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
    if let Some(warning) = crate::auth::unauthenticated_warning(&address, &config) {
        tracing::warn!(address = %address, "{warning}");
    }
    tracing::info!(address = %address, identity = %config.identity, "listening");
    let receiving = Receiving::new(&config);
    let handshakes = Arc::new(Semaphore::new(
        config
            .max_pending_handshakes
            .clamp(1, Semaphore::MAX_PERMITS),
    ));
    Ok(Listener {
        kind,
        address,
        config,
        handshakes,
        backoff: Backoff::default(),
        receiving,
    })
}

impl Listener {
    /// The address the listener is bound to (with the port picked, for `tcp://host:0`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), pontoon_transport::TransportError> {
    /// let listener = pontoon_transport::listen(&"inproc://doc-address".parse()?, Default::default()).await?;
    /// assert_eq!(listener.address().to_string(), "inproc://doc-address");
    /// # Ok(())
    /// # }
    /// ```
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// Bytes of receive buffers held for reuse by this listener's connections, together: at
    /// most [`Config::receive_pool_bytes`], however many connections there are.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), pontoon_transport::TransportError> {
    /// let listener = pontoon_transport::listen(&"inproc://doc-pooled".parse()?, Default::default()).await?;
    /// assert_eq!(listener.pooled_bytes(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn pooled_bytes(&self) -> usize {
        self.receiving.pool.held()
    }

    /// Bytes of the receive budget ([`Config::receive_budget_bytes`]) that messages still
    /// arriving on this listener's connections hold now, together: never more than the budget.
    /// Messages handed over no longer count.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), pontoon_transport::TransportError> {
    /// let listener = pontoon_transport::listen(&"inproc://doc-budget".parse()?, Default::default()).await?;
    /// assert_eq!(listener.budget_in_use_bytes(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn budget_in_use_bytes(&self) -> u64 {
        self.receiving.budget_in_use_bytes()
    }

    /// Large messages being decompressed on blocking threads for this listener's connections
    /// now: never more than [`Config::max_decompressions_in_flight`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), pontoon_transport::TransportError> {
    /// let listener = pontoon_transport::listen(&"inproc://doc-inflight".parse()?, Default::default()).await?;
    /// assert_eq!(listener.decompressions_in_flight(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn decompressions_in_flight(&self) -> usize {
        self.receiving.decompressions_in_flight()
    }

    /// Waits for the next connection; its handshake is run by [`Incoming::handshake`].
    ///
    /// - Errors that pass do not end it: when the process or system is out of descriptors or
    ///   buffers (EMFILE, ENFILE, ENOBUFS, ENOMEM) or a connection was aborted before it was
    ///   accepted (ECONNABORTED, EPROTO, EPERM), it waits (5 ms, doubling up to 1 s) and tries
    ///   again, so `listener.accept().await?` in a loop keeps serving. Only an error about the
    ///   listener itself is returned.
    /// - At most [`Config::max_pending_handshakes`] accepted connections may be short of a
    ///   finished handshake (each [`Incoming`] counts until its handshake ends or it is
    ///   dropped); beyond that `accept` waits, and new connections wait in the system's backlog.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(mut listener: pontoon_transport::Listener) -> Result<(), pontoon_transport::TransportError> {
    /// let comm = listener.accept().await?.handshake().await?;
    /// # let _ = comm; Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped (in a `tokio::select!`, say) before it completes,
    /// no connection is lost; the next `accept` gets it.
    pub async fn accept(&mut self) -> Result<Incoming, TransportError> {
        // Wait for a handshake slot before taking a connection off the backlog, so stalled
        // peers beyond the cap cost a backlog entry, not a descriptor and a task.
        let permit = self
            .handshakes
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| TransportError::Closed)?;
        loop {
            match self.accept_one().await {
                Ok((connection, remote)) => {
                    self.backoff.reset();
                    return Ok(Incoming {
                        connection,
                        local: self.address.clone(),
                        remote,
                        config: self.config.clone(),
                        permit,
                        receiving: self.receiving.clone(),
                    });
                }
                Err(TransportError::Io { source, .. }) if is_transient(&source) => {
                    tokio::time::sleep(self.backoff.next_wait()).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    async fn accept_one(&mut self) -> Result<(Connection, Address), TransportError> {
        Ok(match &mut self.kind {
            ListenerKind::Tcp(listener) => {
                let (stream, peer) = listener
                    .accept()
                    .await
                    .map_err(io("accepting at", &self.address))?;
                let _ = stream.set_nodelay(true);
                let (r, w) = stream.into_split();
                (
                    Connection::Plain(Box::new(r), Box::new(w)),
                    Address::Tcp(peer.to_string()),
                )
            }
            ListenerKind::Tls(listener, server) => {
                let (stream, peer) = listener
                    .accept()
                    .await
                    .map_err(io("accepting at", &self.address))?;
                let _ = stream.set_nodelay(true);
                (
                    Connection::Tls(Upgrade::Server(stream, server.clone())),
                    Address::Tls(peer.to_string()),
                )
            }
            ListenerKind::Unix(listener) => {
                let (stream, _) = listener
                    .accept()
                    .await
                    .map_err(io("accepting at", &self.address))?;
                let (r, w) = stream.into_split();
                (
                    Connection::Plain(Box::new(r), Box::new(w)),
                    self.address.clone(),
                )
            }
            ListenerKind::Inproc(rx) => {
                let stream = rx.recv().await.ok_or(TransportError::Closed)?;
                let (r, w) = tokio::io::split(stream);
                (
                    Connection::Plain(Box::new(r), Box::new(w)),
                    self.address.clone(),
                )
            }
        })
    }
}

/// Connects to `address` and runs the handshake, each bounded by the config's timeouts.
///
/// ```no_run
/// # #[allow(dead_code)]
/// # async fn f() -> Result<(), pontoon_transport::TransportError> {
/// let comm = pontoon_transport::connect(&"unix:///tmp/pontoon.sock".parse()?, Default::default()).await?;
/// # let _ = comm; Ok(()) }
/// ```
///
/// # Cancel safety
///
/// Not cancel safe: a future dropped before it completes drops the connection it was opening
/// (the peer sees it close). Nothing else is affected.
pub async fn connect(address: &Address, config: Config) -> Result<Comm, TransportError> {
    let accepts = config.announced(None);
    connect_announcing(address, config, accepts).await
}

/// [`connect`], announcing `accepts`.
pub(crate) async fn connect_announcing(
    address: &Address,
    config: Config,
    accepts: Vec<String>,
) -> Result<Comm, TransportError> {
    let span = tracing::info_span!(
        "pontoon_transport.connect",
        peer = %address,
        local = tracing::field::Empty
    );
    connect_in_span(address, config, accepts)
        .instrument(span)
        .await
}

/// [`connect_announcing`], inside its span.
async fn connect_in_span(
    address: &Address,
    config: Config,
    accepts: Vec<String>,
) -> Result<Comm, TransportError> {
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
                    Connection::Plain(Box::new(r), Box::new(w)),
                    Address::Tcp(local.to_string()),
                )
            }
            Address::Tls(host_port) => {
                let host = host_port
                    .rsplit_once(':')
                    .map_or(host_port.as_str(), |(host, _)| host);
                let (settings, name) = Upgrade::client_settings(config.tls.as_ref(), host)
                    .map_err(|source| TransportError::Tls {
                        address: address.to_string(),
                        source,
                    })?;
                let stream = TcpStream::connect(host_port)
                    .await
                    .map_err(io("connecting to", address))?;
                let _ = stream.set_nodelay(true);
                let local = stream.local_addr().map_err(io("connecting to", address))?;
                (
                    Connection::Tls(Upgrade::Client(stream, settings, name)),
                    Address::Tls(local.to_string()),
                )
            }
            Address::Unix(path) => {
                let stream = UnixStream::connect(path)
                    .await
                    .map_err(io("connecting to", address))?;
                let (r, w) = stream.into_split();
                (Connection::Plain(Box::new(r), Box::new(w)), address.clone())
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
                (Connection::Plain(Box::new(r), Box::new(w)), address.clone())
            }
        })
    };
    let (connection, local) = match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok(connected)) => connected,
        failed => {
            let error = failed
                .map_err(|_| TransportError::Timeout {
                    what: "connecting",
                    address: address.to_string(),
                    seconds: timeout.as_secs_f64(),
                })
                .and_then(|connected| connected)
                .err()
                .unwrap_or(TransportError::Closed);
            tracing::info!(peer = %address, error = %error, "connecting failed");
            return Err(error);
        }
    };
    tracing::Span::current().record("local", tracing::field::display(&local));
    Comm::open(
        connection,
        local,
        address.clone(),
        config,
        accepts,
        AuthRole::Client,
        None,
    )
    .await
}
