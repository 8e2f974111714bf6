//! [`Endpoint`]: a comm that sends and receives values through a [`Registry`], with the
//! receiver's allow-list enforced on every message.

use std::any::Any;
use std::sync::Arc;

use ferry_family::{DeserializeError, Registry, RegistryError, SerializeError, Session};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Comm, TransportError};

/// What went wrong sending or receiving a value.
///
/// ```
/// let err: ferry_transport::EndpointError = ferry_transport::TransportError::Closed.into();
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
    /// The families announced in the handshake are not known to the registry.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// A [`Comm`] that sends and receives values through a [`Registry`].
///
/// - On the way in, only the families this side announced in the handshake
///   ([`Config::accepts`](crate::Config::accepts)) may deserialize: the allow-list holds on every
///   message.
/// - On the way out, only families the peer announced are tried, so a value the peer would
///   refuse fails here, before it is sent.
/// - Every family sees the connection's [`Context`](ferry_family::Context).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use ferry_family::Registry;
/// use ferry_transport::{Config, Endpoint, connect, listen};
///
/// let registry = Arc::new(Registry::new());
/// let mut listener = listen(&"inproc://doc-endpoint".parse()?, Config::new("server")).await?;
/// let r = registry.clone();
/// let client = tokio::spawn(async move {
///     let comm = connect(&"inproc://doc-endpoint".parse()?, Config::new("client")).await?;
///     let mut endpoint = Endpoint::new(comm, r)?;
///     endpoint.send(&("task-finished".to_string(), 42u64)).await?;
///     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
/// });
/// let mut endpoint = Endpoint::new(listener.accept().await?.handshake().await?, registry)?;
/// let (op, key): (String, u64) = endpoint.recv().await?.expect("a value");
/// assert_eq!((op.as_str(), key), ("task-finished", 42));
/// client.await?.unwrap();
/// # Ok(())
/// # }
/// ```
pub struct Endpoint {
    comm: Comm,
    registry: Arc<Registry>,
    serializers: Vec<String>,
}

impl Endpoint {
    /// Wraps a comm: the serializer list is the registry's, narrowed to the families the peer
    /// accepts; the deserializer list is what this side announced.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(comm: ferry_transport::Comm) -> Result<(), ferry_transport::EndpointError> {
    /// let endpoint = ferry_transport::Endpoint::new(comm, std::sync::Arc::new(ferry_family::Registry::new()))?;
    /// # let _ = endpoint; Ok(()) }
    /// ```
    pub fn new(comm: Comm, registry: Arc<Registry>) -> Result<Endpoint, EndpointError> {
        let serializers: Vec<String> = registry
            .serializers()
            .into_iter()
            .filter(|f| comm.peer().accepts.contains(f))
            .collect();
        let endpoint = Endpoint {
            comm,
            registry,
            serializers,
        };
        endpoint.session()?; // names every family up front: an unknown one is an error now
        Ok(endpoint)
    }

    fn session(&self) -> Result<Session<'_>, RegistryError> {
        self.registry
            .session(self.comm.context())
            .with_serializers(&self.serializers)?
            .with_deserializers(self.comm.accepts())
    }

    /// The comm underneath.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(endpoint: &mut ferry_transport::Endpoint) { println!("{}", endpoint.comm().remote_address()); }
    /// ```
    pub fn comm(&mut self) -> &mut Comm {
        &mut self.comm
    }

    /// Sends a serde value (or one a family on both sides' lists takes).
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(endpoint: &mut ferry_transport::Endpoint) -> Result<(), ferry_transport::EndpointError> {
    /// endpoint.send(&vec![1u32, 2, 3]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn send<T: Serialize + Any>(&mut self, value: &T) -> Result<(), EndpointError> {
        let message = self.session()?.serialize(value)?;
        Ok(self.comm.send(&message).await?)
    }

    /// Sends a value whose type is known only at run time (registered, or taken by a family).
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(endpoint: &mut ferry_transport::Endpoint) -> Result<(), ferry_transport::EndpointError> {
    /// let value: Box<dyn std::any::Any + Send + Sync> = Box::new(7u64);
    /// endpoint.send_dyn(&*value).await?;
    /// # Ok(()) }
    /// ```
    pub async fn send_dyn(&mut self, value: &dyn Any) -> Result<(), EndpointError> {
        let message = self.session()?.serialize_dyn(value)?;
        Ok(self.comm.send(&message).await?)
    }

    /// Receives the next value as `T`; `None` when the peer closed the connection cleanly.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(endpoint: &mut ferry_transport::Endpoint) -> Result<(), ferry_transport::EndpointError> {
    /// let numbers: Option<Vec<u32>> = endpoint.recv().await?;
    /// # let _ = numbers; Ok(()) }
    /// ```
    pub async fn recv<T: DeserializeOwned + Any>(&mut self) -> Result<Option<T>, EndpointError> {
        let Some(message) = self.comm.recv().await? else {
            return Ok(None);
        };
        Ok(Some(self.session()?.deserialize(&message)?))
    }

    /// Receives the next value as the type its header names.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(endpoint: &mut ferry_transport::Endpoint) -> Result<(), ferry_transport::EndpointError> {
    /// if let Some(value) = endpoint.recv_dyn().await? { let _ = value.downcast_ref::<u64>(); }
    /// # Ok(()) }
    /// ```
    pub async fn recv_dyn(&mut self) -> Result<Option<Box<dyn Any + Send + Sync>>, EndpointError> {
        let Some(message) = self.comm.recv().await? else {
            return Ok(None);
        };
        Ok(Some(self.session()?.deserialize_dyn(&message)?))
    }
}
