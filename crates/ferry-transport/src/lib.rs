//! ferry-transport: tokio comms that carry ferry messages between processes and machines.
//!
//! - [`listen`] and [`connect`] at `tcp://host:port`, `unix:///path` or `inproc://name` give a
//!   [`Comm`] with `send` and `recv` of ferry-wire [`Message`](ferry_wire::Message)s; an
//!   [`Endpoint`] sends and receives values through a ferry-family `Registry`.
//! - A handshake opens every connection: protocol version, the families each side accepts (the
//!   receiver's list is enforced on every message), compression (agreed; off by default on
//!   loopback, Unix sockets and in-process), the largest message each side accepts, and each
//!   side's identity. See `docs/wire-format.md`.
//! - No payload frame is copied: frames go out in vectored writes; on the way in each frame is
//!   read straight into a 64-byte-aligned buffer of its own.
//! - Memory is bounded: every length is checked against limits before it is allocated, a sender
//!   buffers at most its write buffer before it waits for the socket, and connect and handshake
//!   have timeouts. A malformed message costs its connection, never the process.
#![doc(test(attr(deny(warnings))))]

mod address;
mod comm;
mod config;
mod endpoint;
mod error;
mod handshake;
mod pool;

pub use address::Address;
pub use comm::{Comm, FRAME_ALIGN, Incoming, Listener, connect, listen};
pub use config::{Compression, Config};
pub use endpoint::{Endpoint, EndpointError};
pub use error::TransportError;
pub use handshake::{PROTOCOL_VERSION, Peer};
