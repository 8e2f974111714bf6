//! [`Endpoint`]: a comm that sends and receives values through a [`Registry`], with the
//! receiver's allow-list enforced on every message.

use std::any::Any;

use pontoon_family::{DeserializeError, Registry, RegistryError, SerializeError, Session};
use pontoon_wire::{CloseCode, Message};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::listener::connect_announcing;
use crate::{Address, Comm, Config, Incoming, Peer, TransportError};

/// What went wrong sending or receiving a value.
///
/// ```
/// let err: pontoon_transport::EndpointError = pontoon_transport::TransportError::Closed.into();
/// assert_eq!(err.to_string(), "the connection is closed");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// The connection failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The value could not be serialized (or no family the peer accepts takes it).
    #[error(transparent)]
    Serialize(#[from] SerializeError),
    /// The message could not be deserialized, or its family is not accepted here.
    #[error(transparent)]
    Deserialize(#[from] DeserializeError),
    /// The families the registry names could not be resolved (a registry bug, not the peer's).
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// A [`Comm`] that sends and receives values through a [`Registry`], with one
/// [`Session`] built when it is made and used for every message.
///
/// - On the way in, only the registry's deserializer list may deserialize, narrowed by
///   [`Config::accepts`] and by what the comm announced, never widened: the allow-list holds on
///   every message. A message in a family not on it is refused: the endpoint tells the peer
///   ([`CloseCode::NotAccepted`]), closes its sending side (later sends give
///   [`TransportError::Closed`]), and returns [`DeserializeError::NotAccepted`].
/// - On the way out, only families the peer announced are tried, so a value the peer would
///   refuse fails here, before it is sent, and the connection goes on.
/// - Every family sees the connection's [`Context`](pontoon_family::Context).
///
/// The endpoint borrows its registry for `'r`: a registry set up once at start-up and kept in
/// a `static` (as `pontoon::registry()` is) gives `Endpoint<'static>`, which moves into tasks.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::LazyLock;
/// use pontoon_family::Registry;
/// use pontoon_transport::{Config, Endpoint, listen};
///
/// static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);
/// let mut listener = listen(&"inproc://doc-endpoint".parse()?, Config::new("server")).await?;
/// let client = tokio::spawn(async move {
///     let address = "inproc://doc-endpoint".parse()?;
///     let mut endpoint = Endpoint::connect(&address, Config::new("client"), &REGISTRY).await?;
///     endpoint.send(&("task-finished".to_string(), 42u64)).await?;
///     endpoint.close().await?;
///     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
/// });
/// let mut endpoint = Endpoint::handshake(listener.accept().await?, &REGISTRY).await?;
/// let (op, key): (String, u64) = endpoint.recv().await?.ok_or("no value")?;
/// assert_eq!((op.as_str(), key), ("task-finished", 42));
/// assert!(endpoint.recv::<u64>().await?.is_none()); // the client closed
/// client.await?.map_err(|e| e.to_string())?;
/// # Ok(())
/// # }
/// ```
pub struct Endpoint<'r> {
    comm: Comm,
    session: Session<'r>,
}

impl std::fmt::Debug for Endpoint<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("remote", self.comm.remote_address())
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl<'r> Endpoint<'r> {
    /// Wraps a comm that is already open. The serializer list is the registry's, narrowed to
    /// the families the peer accepts; the deserializer list is the registry's, narrowed to what
    /// the comm announced (a family the comm announced but the registry refuses is refused).
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(comm: pontoon_transport::Comm, registry: &pontoon_family::Registry) -> Result<(), pontoon_transport::EndpointError> {
    /// let endpoint = pontoon_transport::Endpoint::new(comm, registry)?;
    /// # let _ = endpoint; Ok(()) }
    /// ```
    pub fn new(comm: Comm, registry: &'r Registry) -> Result<Endpoint<'r>, EndpointError> {
        let serializers: Vec<String> = registry
            .serializers()
            .into_iter()
            .filter(|f| comm.peer().accepts.contains(f))
            .collect();
        let deserializers: Vec<String> = registry
            .deserializers()
            .into_iter()
            .filter(|f| comm.accepts().contains(f))
            .collect();
        // Both lists are subsets of the registry's own, so neither can widen it.
        let session = registry
            .session(comm.context())
            .with_serializers(&serializers)?
            .with_deserializers(&deserializers)?;
        Ok(Endpoint { comm, session })
    }

    /// Connects to `address` announcing the registry's deserializer list (narrowed by
    /// [`Config::accepts`]), and wraps the comm.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(registry: &pontoon_family::Registry) -> Result<(), pontoon_transport::EndpointError> {
    /// let address = "tcp://127.0.0.1:8786".parse()?;
    /// let endpoint = pontoon_transport::Endpoint::connect(&address, Default::default(), registry).await?;
    /// # let _ = endpoint; Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a future dropped before it completes drops the connection it was
    /// opening (the peer sees it close). Nothing else is affected.
    pub async fn connect(
        address: &Address,
        config: Config,
        registry: &'r Registry,
    ) -> Result<Endpoint<'r>, EndpointError> {
        let accepts = config.announced(Some(registry));
        let comm = connect_announcing(address, config, accepts).await?;
        Endpoint::new(comm, registry)
    }

    /// Runs the handshake of an accepted connection announcing the registry's deserializer list
    /// (narrowed by the listener's [`Config::accepts`]), and wraps the comm. Run it in a task of
    /// its own, as [`Incoming::handshake`] says.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(mut listener: pontoon_transport::Listener, registry: &pontoon_family::Registry) -> Result<(), pontoon_transport::EndpointError> {
    /// let endpoint = pontoon_transport::Endpoint::handshake(listener.accept().await?, registry).await?;
    /// # let _ = endpoint; Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropping the future before it completes drops the connection (the
    /// `Incoming` was moved into it). Nothing else is affected.
    pub async fn handshake(
        incoming: Incoming,
        registry: &'r Registry,
    ) -> Result<Endpoint<'r>, EndpointError> {
        let accepts = incoming.config().announced(Some(registry));
        let comm = incoming.handshake_announcing(accepts).await?;
        Endpoint::new(comm, registry)
    }

    /// The comm underneath.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(endpoint: &mut pontoon_transport::Endpoint) { println!("{}", endpoint.comm().remote_address()); }
    /// ```
    pub fn comm(&mut self) -> &mut Comm {
        &mut self.comm
    }

    /// What the peer said in the handshake.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(endpoint: &pontoon_transport::Endpoint) { println!("{}", endpoint.peer().identity); }
    /// ```
    pub fn peer(&self) -> &Peer {
        self.comm.peer()
    }

    /// The peer's address.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(endpoint: &pontoon_transport::Endpoint) { println!("{}", endpoint.remote_address()); }
    /// ```
    pub fn remote_address(&self) -> &Address {
        self.comm.remote_address()
    }

    /// The session every message goes through: its lists are the ones this endpoint uses.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(endpoint: &pontoon_transport::Endpoint) { println!("{:?}", endpoint.session().deserializers()); }
    /// ```
    pub fn session(&self) -> &Session<'r> {
        &self.session
    }

    /// Gives back the comm, for raw messages.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(endpoint: pontoon_transport::Endpoint) { let comm = endpoint.into_comm(); let _ = comm; }
    /// ```
    pub fn into_comm(self) -> Comm {
        self.comm
    }

    /// Sends a serde value (or one a family on both sides' lists takes).
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(endpoint: &mut pontoon_transport::Endpoint<'_>) -> Result<(), pontoon_transport::EndpointError> {
    /// endpoint.send(&vec![1u32, 2, 3]).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// As [`Comm::send`]: not cancel safe; a send dropped half way may have sent part of the
    /// message, and the connection is then unusable.
    pub async fn send<T: Serialize + Any>(&mut self, value: &T) -> Result<(), EndpointError> {
        let message = self.session.serialize(value)?;
        Ok(self.comm.send(&message).await?)
    }

    /// Sends a value whose type is known only at run time (registered, or taken by a family).
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(endpoint: &mut pontoon_transport::Endpoint<'_>) -> Result<(), pontoon_transport::EndpointError> {
    /// let value: Box<dyn std::any::Any + Send + Sync> = Box::new(7u64);
    /// endpoint.send_dyn(&*value).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// As [`Endpoint::send`]: not cancel safe.
    pub async fn send_dyn(&mut self, value: &dyn Any) -> Result<(), EndpointError> {
        let message = self.session.serialize_dyn(value)?;
        Ok(self.comm.send(&message).await?)
    }

    /// Receives the next message without decoding it; `None` when the peer closed the
    /// connection cleanly. Decode it with [`Endpoint::decode`] or [`Endpoint::decode_dyn`].
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(endpoint: &mut pontoon_transport::Endpoint<'_>) -> Result<(), pontoon_transport::EndpointError> {
    /// if let Some(message) = endpoint.recv_message().await? {
    ///     let frames = message.frames.len(); // look at the frames before decoding
    ///     let numbers: Vec<u32> = endpoint.decode(&message).await?;
    ///     # let _ = (frames, numbers);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`Comm::recv`]: if the future is dropped before it completes, no message
    /// is lost; the next call gets it.
    pub async fn recv_message(&mut self) -> Result<Option<Message>, EndpointError> {
        Ok(self.comm.recv().await?)
    }

    /// Deserializes a received message as `T`. A message in a family this endpoint does not
    /// accept is refused: the peer is told ([`CloseCode::NotAccepted`]) and this side stops
    /// sending. Other errors (a wrong type, a bad body) leave the connection as it was.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(endpoint: &mut pontoon_transport::Endpoint<'_>, message: pontoon_wire::Message) -> Result<(), pontoon_transport::EndpointError> {
    /// let numbers: Vec<u32> = endpoint.decode(&message).await?;
    /// # let _ = numbers; Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe when the message is accepted (nothing is awaited). For a refused message,
    /// dropping the future may leave the close message unsent; the error is then not returned,
    /// and the peer sees the connection end when the endpoint is dropped.
    pub async fn decode<T: DeserializeOwned + Any>(
        &mut self,
        message: &Message,
    ) -> Result<T, EndpointError> {
        let decoded = self.session.deserialize(message);
        self.refuse_if_not_accepted(decoded).await
    }

    /// Deserializes a received message as the type its header names; refusals as
    /// [`Endpoint::decode`].
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(endpoint: &mut pontoon_transport::Endpoint<'_>, message: pontoon_wire::Message) -> Result<(), pontoon_transport::EndpointError> {
    /// let value = endpoint.decode_dyn(&message).await?;
    /// let _ = value.downcast_ref::<u64>();
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// As [`Endpoint::decode`].
    pub async fn decode_dyn(
        &mut self,
        message: &Message,
    ) -> Result<Box<dyn Any + Send + Sync>, EndpointError> {
        let decoded = self.session.deserialize_dyn(message);
        self.refuse_if_not_accepted(decoded).await
    }

    /// Receives the next value as `T`; `None` when the peer closed the connection cleanly.
    /// [`Endpoint::recv_message`] then [`Endpoint::decode`].
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(endpoint: &mut pontoon_transport::Endpoint<'_>) -> Result<(), pontoon_transport::EndpointError> {
    /// let numbers: Option<Vec<u32>> = endpoint.recv().await?;
    /// # let _ = numbers; Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe while waiting for a message, as [`Endpoint::recv_message`]: a dropped `recv`
    /// loses nothing. Once a message has arrived it is decoded without awaiting, except that
    /// refusing it sends a close message (see [`Endpoint::decode`]).
    pub async fn recv<T: DeserializeOwned + Any>(&mut self) -> Result<Option<T>, EndpointError> {
        let Some(message) = self.comm.recv().await? else {
            return Ok(None);
        };
        self.decode(&message).await.map(Some)
    }

    /// Receives the next value as the type its header names.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(endpoint: &mut pontoon_transport::Endpoint<'_>) -> Result<(), pontoon_transport::EndpointError> {
    /// if let Some(value) = endpoint.recv_dyn().await? { let _ = value.downcast_ref::<u64>(); }
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// As [`Endpoint::recv`].
    pub async fn recv_dyn(&mut self) -> Result<Option<Box<dyn Any + Send + Sync>>, EndpointError> {
        let Some(message) = self.comm.recv().await? else {
            return Ok(None);
        };
        self.decode_dyn(&message).await.map(Some)
    }

    /// Flushes, tells the peer this side is going away, and closes this side of the connection;
    /// the peer's `recv` then returns `None`.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(endpoint: pontoon_transport::Endpoint<'_>) -> Result<(), pontoon_transport::EndpointError> {
    /// endpoint.close().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// As [`Comm::close`]: not cancel safe; a close dropped half way may leave queued messages
    /// unsent.
    pub async fn close(self) -> Result<(), EndpointError> {
        Ok(self.comm.close().await?)
    }

    /// A message in a family not on this side's list costs the peer its connection, and it
    /// is told why; any other failure is only returned.
    async fn refuse_if_not_accepted<T>(
        &mut self,
        decoded: Result<T, DeserializeError>,
    ) -> Result<T, EndpointError> {
        match decoded {
            Ok(value) => Ok(value),
            Err(error @ DeserializeError::NotAccepted { .. }) => {
                // The refusal is best effort: the peer may already be gone, and the error the
                // caller needs is the refusal itself.
                let _ = self
                    .comm
                    .refuse(CloseCode::NotAccepted, &error.to_string())
                    .await;
                Err(error.into())
            }
            Err(error) => Err(error.into()),
        }
    }
}
