//! [`Config`]: what one side of a comm says in the handshake, and its limits and timeouts.

use std::time::Duration;

use ferry_wire::{Compression, Limits};

/// One side's settings for a comm.
///
/// ```
/// use std::time::Duration;
/// let mut config = ferry_transport::Config::new("worker-1");
/// config.handshake_timeout = Duration::from_secs(2);
/// config.accepts = vec!["serde".into()];
/// assert_eq!(config.identity, "worker-1");
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// How this side names itself to the peer.
    pub identity: String,
    /// The families whose messages this side accepts: announced in the handshake, enforced by
    /// [`Endpoint`](crate::Endpoint) on every message it receives.
    pub accepts: Vec<String>,
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
    /// Bytes of receive buffers kept for reuse once the frames in them are dropped, so that large
    /// frames land in warm memory.
    pub receive_pool_bytes: usize,
}

impl Config {
    /// Defaults, under this identity: accepts the `custom` and `serde` families, no compression
    /// ([`Compression::Off`]: frames arrive as views, not decompressed copies), default wire limits, 10 s to connect and to shake hands, 64 KiB of
    /// write buffer, 256 MiB of receive buffers kept for reuse.
    ///
    /// ```
    /// let config = ferry_transport::Config::new("client");
    /// assert_eq!(config.accepts, ["custom", "serde"]);
    /// assert_eq!(config.compression, ferry_transport::Compression::Off);
    /// ```
    pub fn new(identity: impl Into<String>) -> Config {
        Config {
            identity: identity.into(),
            accepts: vec!["custom".into(), "serde".into()],
            compression: Compression::Off,
            limits: Limits::default(),
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            write_buffer_bytes: 64 << 10,
            receive_pool_bytes: 256 << 20,
        }
    }
}

impl Default for Config {
    /// [`Config::new`] with the identity `ferry-<process id>`.
    fn default() -> Config {
        Config::new(format!("ferry-{}", std::process::id()))
    }
}
