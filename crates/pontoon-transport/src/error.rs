//! [`TransportError`]: what can go wrong opening, using or closing a comm.

use pontoon_wire::{CloseMessage, DecodeError, HelloError};

/// What went wrong with a comm. A malformed or oversized message costs its connection (closed),
/// never the process.
///
/// An error that wraps another says only its own part (what was being done, with whom) and
/// gives the inner error from [`source`](std::error::Error::source): a report that walks the
/// chain (anyhow's, eyre's) prints each cause once.
///
/// ```
/// let err = "ftp://x".parse::<pontoon_transport::Address>().unwrap_err();
/// assert!(err.to_string().contains("scheme"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// An address that cannot be parsed.
    #[error("bad address `{address}`: {reason}")]
    BadAddress {
        /// The address given.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A socket operation failed.
    #[error("{what} {address}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The address involved.
        address: String,
        /// The error from the operating system.
        #[source]
        source: std::io::Error,
    },
    /// No listener at an `inproc://` address, or one already listening there.
    #[error("inproc address {0}")]
    Inproc(String),
    /// The connect or the handshake took longer than allowed.
    #[error("{what} with {address} timed out after {seconds} s")]
    Timeout {
        /// What timed out.
        what: &'static str,
        /// The peer.
        address: String,
        /// The limit.
        seconds: f64,
    },
    /// The peer speaks another version of the transport protocol.
    #[error("the peer speaks transport protocol version {peer}, this side speaks {ours}")]
    VersionMismatch {
        /// The peer's version.
        peer: u64,
        /// This side's version.
        ours: u64,
    },
    /// The peer's handshake is malformed.
    #[error("bad handshake from the peer")]
    Handshake(#[from] HandshakeError),
    /// The peer sent bytes that are not a valid message; the connection is closed.
    #[error("bad message from {peer}")]
    Decode {
        /// The peer.
        peer: String,
        /// What was wrong.
        #[source]
        source: DecodeError,
    },
    /// The peer closed the connection in the middle of a message.
    #[error("{peer} closed the connection in the middle of a message")]
    Truncated {
        /// The peer.
        peer: String,
    },
    /// A message larger than the peer accepts was not sent.
    #[error("the message is {len} bytes; the peer accepts at most {limit}")]
    TooLarge {
        /// The message's encoded length.
        len: u64,
        /// The peer's limit.
        limit: u64,
    },
    /// The message could not be encoded.
    #[error("cannot encode the message")]
    Encode(#[from] pontoon_wire::EncodeError),
    /// Memory for a frame the peer announced could not be had; the connection is closed.
    /// (The length was within this side's limits: lower them for peers you do not trust.)
    #[error("cannot allocate {len} bytes for a frame")]
    OutOfMemory {
        /// The frame's length.
        len: u64,
    },
    /// The peer closed the connection with a close message saying why (a message of ours it
    /// refused, say): what this side's next `recv` and `send` get instead of an end of stream.
    #[error("{peer} closed the connection: {close}")]
    ClosedByPeer {
        /// The peer.
        peer: String,
        /// Its code and reason.
        close: CloseMessage,
    },
    /// The task that checked and decompressed a message off the I/O threads did not finish (it
    /// panicked, or the runtime is shutting down).
    #[error("the task decoding a message from {peer} failed")]
    DecodeTask {
        /// The peer.
        peer: String,
    },
    /// TLS could not be set up, or its handshake failed (the peer's certificate was refused,
    /// the peer refused ours, or the peer does not speak TLS); the connection is closed.
    #[error("TLS with {address}")]
    Tls {
        /// The peer (or the address listened at).
        address: String,
        /// What went wrong.
        #[source]
        source: crate::TlsError,
    },
    /// Shared-secret authentication failed: the peer's proof was wrong (or replayed), it
    /// refused this side's, or one side has a secret and the other none. The connection is
    /// closed.
    #[error("authenticating {address}")]
    Auth {
        /// The peer.
        address: String,
        /// What went wrong.
        #[source]
        source: pontoon_wire::AuthError,
    },
    /// The halves given to [`Comm::unsplit`](crate::Comm::unsplit) come from different comms.
    #[error("the send and receive halves are of different comms")]
    NotHalves,
    /// The connection is closed.
    #[error("the connection is closed")]
    Closed,
}

/// What was wrong with the peer's side of the handshake.
///
/// ```
/// let err = pontoon_transport::HandshakeError::PeerClosed;
/// assert_eq!(err.to_string(), "the peer closed the connection during the handshake");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The peer's preamble or hello is not valid pontoon (a bad magic number: not a pontoon peer).
    #[error("the peer's preamble or hello is malformed")]
    Decode(#[source] DecodeError),
    /// The hello is a valid message but not a valid hello.
    #[error(transparent)]
    Hello(HelloError),
    /// The peer closed the connection before its hello was whole.
    #[error("the peer closed the connection during the handshake")]
    PeerClosed,
}
