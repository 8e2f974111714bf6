//! The short way in: [`connect`] and [`listen`] give [`Endpoint`]s over the default
//! [`registry`], so a first program needs no configuration.

use std::sync::LazyLock;

use pontoon_family::Registry;
use pontoon_transport::{Config, Endpoint, EndpointError};

static DEFAULT: LazyLock<Registry> = LazyLock::new(Registry::new);

/// The default registry: serde for every type, the `custom` and `serde` families accepted.
/// [`connect`] and [`listen`] use it; for registered types or narrower lists, build a
/// [`Registry`] of your own, keep it in a `static`, and use
/// [`Endpoint::connect`] / [`Endpoint::handshake`].
///
/// ```
/// assert_eq!(pontoon::registry().deserializers(), ["custom", "serde"]);
/// ```
pub fn registry() -> &'static Registry {
    &DEFAULT
}

/// Connects to `address` (`tcp://host:port`, `unix:///path` or `inproc://name`) with the
/// default [`Config`] and the default [`registry`].
///
/// ```no_run
/// # #[allow(dead_code)]
/// # async fn f() -> Result<(), pontoon::transport::EndpointError> {
/// let mut endpoint = pontoon::connect("tcp://127.0.0.1:8786").await?;
/// endpoint.send(&"hello").await?;
/// # Ok(()) }
/// ```
///
/// # Cancel safety
///
/// Not cancel safe: a future dropped before it completes drops the connection it was opening.
/// Nothing else is affected.
pub async fn connect(address: &str) -> Result<Endpoint<'static>, EndpointError> {
    Endpoint::connect(&address.parse()?, Config::default(), &DEFAULT).await
}

/// Listens at `address` with the default [`Config`]; [`Listener::accept`] gives an
/// [`Endpoint`] over the default [`registry`] for each connection.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), pontoon::transport::EndpointError> {
/// let listener = pontoon::listen("tcp://127.0.0.1:0").await?;
/// assert!(listener.address().to_string().starts_with("tcp://127.0.0.1:"));
/// # Ok(()) }
/// ```
///
/// # Cancel safety
///
/// Cancel safe: nothing is listening until the future completes.
pub async fn listen(address: &str) -> Result<Listener, EndpointError> {
    Ok(Listener {
        inner: pontoon_transport::listen(&address.parse()?, Config::default()).await?,
    })
}

/// A listener whose connections come out as [`Endpoint`]s over the default [`registry`].
///
/// Each [`Listener::accept`] runs the handshake before it returns (bounded by the default
/// config's 10 s handshake timeout), so one slow peer delays the next accept. A server facing
/// peers it does not trust uses [`pontoon_transport::Listener`] and runs
/// [`Endpoint::handshake`] in a task per connection instead.
///
/// ```no_run
/// # #[allow(dead_code)]
/// # async fn f() -> Result<(), pontoon::transport::EndpointError> {
/// let mut listener = pontoon::listen("tcp://0.0.0.0:8786").await?;
/// let mut endpoint = listener.accept().await?;
/// let greeting: Option<String> = endpoint.recv().await?;
/// # let _ = greeting; Ok(()) }
/// ```
pub struct Listener {
    inner: pontoon_transport::Listener,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("address", &self.inner.address().to_string())
            .finish()
    }
}

impl Listener {
    /// The address it listens at (with the port the system chose for `:0`).
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f() -> Result<(), pontoon::transport::EndpointError> {
    /// println!("{}", pontoon::listen("tcp://127.0.0.1:0").await?.address());
    /// # Ok(()) }
    /// ```
    pub fn address(&self) -> &pontoon_transport::Address {
        self.inner.address()
    }

    /// Waits for the next connection and runs its handshake.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(mut listener: pontoon::Listener) -> Result<(), pontoon::transport::EndpointError> {
    /// let endpoint = listener.accept().await?;
    /// # let _ = endpoint; Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe while waiting for a connection (as [`pontoon_transport::Listener::accept`]);
    /// once one has arrived, dropping the future drops that connection during its handshake.
    pub async fn accept(&mut self) -> Result<Endpoint<'static>, EndpointError> {
        let incoming = self.inner.accept().await?;
        Endpoint::handshake(incoming, &DEFAULT).await
    }
}
