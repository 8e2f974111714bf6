//! [`Config`]: what one side of a comm says in the handshake, and its limits and timeouts.

use std::time::Duration;

use pontoon_wire::{Compression, Limits};

/// One side's settings for a comm.
///
/// ```
/// use std::time::Duration;
/// let mut config = pontoon_transport::Config::new("worker-1");
/// config.handshake_timeout = Duration::from_secs(2);
/// config.accepts = Some(vec!["serde".into()]); // narrows what the registry accepts
/// assert_eq!(config.identity, "worker-1");
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// How this side names itself to the peer.
    pub identity: String,
    /// A filter on the families whose messages this side accepts; it can only narrow, never
    /// widen. An [`Endpoint`](crate::Endpoint) built by [`Endpoint::connect`](crate::Endpoint::connect)
    /// or [`Endpoint::handshake`](crate::Endpoint::handshake) announces its registry's
    /// deserializer list with only the families named here kept (all of them when `None`), and
    /// enforces that list on every message. A plain [`Comm`](crate::Comm) has no registry: it
    /// announces this list, or [`DEFAULT_ACCEPTS`] when `None`, and enforces nothing itself; an
    /// [`Endpoint::new`](crate::Endpoint::new) over it still refuses every family its registry
    /// does not deserialize.
    pub accepts: Option<Vec<String>>,
    /// Whether to compress what this side sends: [`Compression::Off`] unless set.
    pub compression: Compression,
    /// What this side accepts from the wire: message, frame and header sizes, frame count. The
    /// message limit is announced, so the peer refuses to send larger messages.
    pub limits: Limits,
    /// How long a connect may take.
    pub connect_timeout: Duration,
    /// How long the handshake may take.
    pub handshake_timeout: Duration,
    /// Bytes of small messages gathered before they are written together; also the most a
    /// sender buffers before it waits for the socket.
    pub write_buffer_bytes: usize,
    /// The most accepted connections whose handshake has not finished, per [`Listener`](crate::Listener):
    /// beyond it, [`Listener::accept`](crate::Listener::accept) waits (the connections wait in
    /// the system's backlog) until a handshake ends or times out. It bounds the descriptors and
    /// tasks stalled peers can hold.
    pub max_pending_handshakes: usize,
    /// Bytes of receive buffers kept for reuse once the frames in them are dropped, so that large
    /// frames land in warm memory. A [`Listener`](crate::Listener) keeps one pool of this size
    /// for all its connections; each comm from [`connect`](crate::connect) keeps its own.
    /// The most bytes kept this way: [`Listener::pooled_bytes`](crate::Listener::pooled_bytes)
    /// never exceeds it. The pool also gives buffers back to the allocator as connections close
    /// (it keeps a few per open connection) and once they go untaken for
    /// [`Config::receive_pool_idle_timeout`], so an idle listener keeps none.
    pub receive_pool_bytes: usize,
    /// How long a buffer may stay in the receive pool untaken: when a connection has waited
    /// this long for its next message, the pool frees the buffers nobody took in that time.
    pub receive_pool_idle_timeout: Duration,
    /// Bytes the messages still arriving may hold together: one budget for all the connections
    /// of a [`Listener`](crate::Listener), or for one comm from [`connect`](crate::connect).
    /// A message is granted budget a step at a time as its bytes arrive, and a connection reads
    /// no more of a message than it has been granted; while none can be granted, it stops
    /// reading its socket, so its peer waits, until messages are handed over and give theirs
    /// back. Declaring costs nothing: a peer that declares much and sends little holds only
    /// what it sent. Steps are granted only while every message in progress could still get
    /// all its frame table declares (frames, and what compressed frames decompress to), one
    /// after another, so messages never wait on each other for good.
    ///
    /// A message handed to the caller no longer counts: what a caller keeps is its own to
    /// bound, and counting it would stall the listener for a caller that holds messages. A
    /// message larger than the whole budget is received alone (it gets all of it once nothing
    /// else holds any, and goes on past it to its end), so the limits, not the budget, bound
    /// what one message may be. A message in progress holds its budget until a `recv` on its
    /// comm finishes it: a comm whose `recv` is never called again holds what it has.
    pub receive_budget_bytes: u64,
    /// The most large messages decompressed at once on tokio's blocking threads, per
    /// [`Listener`](crate::Listener) (or per comm from [`connect`](crate::connect)); beyond it a
    /// connection waits for a slot before it decompresses.
    pub max_decompressions_in_flight: usize,
    /// TLS settings for `tls://` addresses: a [`TlsConfig::server`](crate::TlsConfig::server)
    /// to listen, a [`TlsConfig::client`](crate::TlsConfig::client) to connect. Ignored on
    /// other addresses; `None` (the default) makes a `tls://` listen or connect fail with
    /// [`TlsError::NotConfigured`](crate::TlsError::NotConfigured).
    pub tls: Option<crate::TlsConfig>,
    /// A shared secret this side requires the peer to prove it knows, on any transport (see
    /// [`Secret`](crate::Secret)); the peer must have the same one. `None` (the default): no
    /// authentication, and a peer that requires it is refused. A listener without one on an
    /// address other peers can reach prints a warning when it starts.
    pub secret: Option<crate::Secret>,
}

impl Config {
    /// Defaults, under this identity: no filter on the registry's families, no compression
    /// ([`Compression::Off`]: frames arrive as views, not decompressed copies), default wire limits, 10 s to connect and to shake hands, 64 KiB of
    /// write buffer, 256 MiB of receive buffers kept for reuse (for 10 s at most untaken), a
    /// receive budget of 1 GiB, as
    /// many large decompressions at once as the machine has CPUs, at most 64 unfinished
    /// handshakes per listener, no TLS settings, no shared secret.
    ///
    /// ```
    /// let config = pontoon_transport::Config::new("client");
    /// assert_eq!(config.accepts, None);
    /// assert_eq!(config.compression, pontoon_transport::Compression::Off);
    /// ```
    #[must_use]
    pub fn new(identity: impl Into<String>) -> Config {
        Config {
            identity: identity.into(),
            accepts: None,
            compression: Compression::Off,
            limits: Limits::default(),
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            write_buffer_bytes: 64 << 10,
            receive_pool_bytes: 256 << 20,
            receive_pool_idle_timeout: Duration::from_secs(10),
            receive_budget_bytes: 1 << 30,
            max_decompressions_in_flight: std::thread::available_parallelism()
                .map_or(1, std::num::NonZeroUsize::get),
            max_pending_handshakes: 64,
            tls: None,
            secret: None,
        }
    }
}

/// What a comm opened without a registry announces when [`Config::accepts`] is `None`: the
/// default registry's deserializer list.
///
/// ```
/// assert_eq!(pontoon_transport::DEFAULT_ACCEPTS, pontoon_family::Registry::new().deserializers());
/// ```
pub const DEFAULT_ACCEPTS: &[&str] = &["custom", "serde"];

impl Config {
    /// What a comm with this config announces: the `registry`'s deserializer list (or
    /// [`DEFAULT_ACCEPTS`] without one), keeping only the families [`Config::accepts`] names.
    pub(crate) fn announced(&self, registry: Option<&pontoon_family::Registry>) -> Vec<String> {
        let base: Vec<String> = match registry {
            Some(registry) => registry.deserializers(),
            None => DEFAULT_ACCEPTS.iter().map(|s| s.to_string()).collect(),
        };
        match (&self.accepts, registry) {
            (None, _) => base,
            // Without a registry the filter is the whole list: nothing else to narrow.
            (Some(filter), None) => filter.clone(),
            (Some(filter), Some(_)) => base.into_iter().filter(|f| filter.contains(f)).collect(),
        }
    }
}

impl Default for Config {
    /// [`Config::new`] with the identity `pontoon-<process id>`.
    fn default() -> Config {
        Config::new(format!("pontoon-{}", std::process::id()))
    }
}
