//! pontoon-transport: tokio comms that carry pontoon messages between processes and machines.
//!
//! - [`listen`] and [`connect`] at `tcp://host:port`, `tls://host:port`, `unix:///path` or
//!   `inproc://name` give a [`Comm`] with `send` and `recv` of pontoon-wire
//!   [`Message`](pontoon_wire::Message)s; an
//!   [`Endpoint`] sends and receives values through a pontoon-family `Registry`.
//! - A handshake opens every connection: protocol version, the families each side accepts (the
//!   receiver's list is enforced on every message), compression (agreed; off by default), the
//!   largest message each side accepts, and each side's identity. See `docs/wire-format.md`.
//! - `tls://` runs TLS through rustls (no OpenSSL) with the settings in [`Config::tls`]
//!   ([`TlsConfig`]: PEM files, a CA file or the system roots, optional mutual TLS); the verified
//!   peer certificate is [`Peer::certificate`] and its name is in the families' `Context`.
//! - A shared secret ([`Config::secret`], any transport) is proven by challenge and response in
//!   the handshake; a peer that fails gets [`TransportError::Auth`], on both sides. What these
//!   protect against and what not is `docs/security.md`.
//! - Receiving is cancel safe: a `recv` dropped in a `tokio::select!` or under a timeout loses
//!   nothing. A [`Comm`] splits into a [`SendHalf`] and a [`RecvHalf`] for two tasks.
//! - A receiver that refuses a message tells the peer why (a close message with a
//!   [`CloseCode`]) before it closes; the peer's next `recv` or `send` gets
//!   [`TransportError::ClosedByPeer`].
//! - No payload frame is copied: frames go out in vectored writes; on the way in each frame is
//!   read straight into a 64-byte-aligned buffer of its own.
//! - Memory is bounded: every length is checked against limits before it is allocated, a sender
//!   buffers at most its write buffer before it waits for the socket, and connect and handshake
//!   have timeouts. A malformed message costs its connection, never the process.
//! - A listener's connections share one receive budget ([`Config::receive_budget_bytes`]): the
//!   messages still arriving hold at most that many frame bytes together, granted as the bytes
//!   arrive (a message larger than the whole budget is received alone); when it is spent,
//!   connections stop reading and their peers wait. They also share a bound on large decompressions running at once
//!   ([`Config::max_decompressions_in_flight`]) and one pool of warm receive buffers, which
//!   empties as connections close or go idle.
//! - Observable: `tracing` spans around connecting and accepting (with the peer's address) and
//!   events for handshakes, TLS, authentication and refusals, nothing per message above TRACE;
//!   counters and gauges through the `metrics` facade, named in [`metrics`] (the list with
//!   labels is `docs/observability.md`).
#![doc(test(attr(deny(warnings))))]
#![warn(missing_debug_implementations)]

mod address;
mod auth;
mod backoff;
mod budget;
mod comm;
mod config;
mod endpoint;
mod error;
mod handshake;
mod listener;
pub mod metrics;
mod pool;
mod tls;

/// The `bytes` crate, whose `Bytes` are the frames this crate sends and receives: the same
/// version as this crate's, whatever the caller's own dependency says.
pub use bytes;

pub use address::Address;
pub use auth::Secret;
pub use comm::{Comm, RecvHalf, SendHalf};
pub use config::{Config, DEFAULT_ACCEPTS};
pub use endpoint::{Endpoint, EndpointError};
pub use error::{HandshakeError, TransportError};
pub use handshake::Peer;
pub use listener::{Incoming, Listener, connect, listen};
pub use pontoon_wire::{
    AuthError, CloseCode, CloseMessage, Compression, FRAME_ALIGN, PROTOCOL_VERSION,
};
pub use tls::{CertificateIdentity, Roots, TlsConfig, TlsError};

// The README's example is compiled and run as a doctest, so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
