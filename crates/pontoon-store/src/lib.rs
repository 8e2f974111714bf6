//! pontoon's object store: put an object once, read it from every process without a copy.
//!
//! An object is a pontoon message (a MessagePack header and frames), put through the
//! [`Registry`](pontoon_family::Registry) (`put(&value)`, `get::<T>(&id)`) or raw. Objects are
//! immutable once sealed; `get` hands out frames that point into store memory, so arrays and
//! `Buffer`s of any type come back as views. A producer can also `create(size)` a writable
//! buffer in store memory, build its data there and `seal` it (no copy at all), or `abort` it.
//! `take` removes an object and hands its memory over writable: in place when nobody else
//! holds it, copied once otherwise.
//!
//! Two modes:
//! - **Embedded** ([`Store`], the default): the store lives in this process, objects are the
//!   `Bytes` they were put with, and a put or get copies nothing.
//! - **Shared memory** ([`Daemon`] / `pontoon store serve`, and [`Client`]): a daemon owns one
//!   memfd (or a file in a directory, the fallback) reserved with `fallocate` at start, so a page
//!   fault never SIGBUSes and every put writes memory that exists already. Clients connect over a
//!   Unix socket, receive the memory's descriptor (SCM_RIGHTS) and map it read-only; a `get`
//!   in any process returns views of that mapping. The daemon allocates 64-byte-aligned ranges
//!   from a free list. Pins (one per `get` until its last view is dropped) keep an object's memory
//!   from being freed; a client that dies releases its pins and aborts its unsealed creates.
//!
//! The daemon's protocol is sans-IO ([`protocol`]): requests and replies as header-only pontoon
//! messages, decoded within fixed bounds; `docs/store-format.md` is its layout.
//!
//! Spilling, in both modes, with a spill directory ([`StoreOptions::spill_dir`],
//! [`ServeOptions::spill_dir`], `pontoon store serve --spill-dir`): a put or create that would
//! take the store above its high-water mark ([`StoreStats::high_water_mark`]) first spills the
//! least recently used objects nobody pins, written sequentially into spill files (record files
//! of pontoon-persist, small objects fused into one file of up to 100 MiB, each removed with its
//! last object), and an object larger than free memory is created in a file on disk. A spilled
//! object comes back on `get` as views of the memory-mapped spill file, through the daemon with
//! the file's descriptor passed to the client. No [`ObjectError::StoreFull`] while the spill
//! disk has room; a full disk is [`ObjectError::SpillDiskFull`], and nothing sealed is lost.
//! Without a spill directory an object that does not fit is `StoreFull`. A store can spill to
//! S3-compatible object storage instead (feature `remote`; [`StoreOptions::spill_remote`],
//! [`ServeOptions::spill_remote`], `pontoon store serve --spill-dir s3://bucket/prefix`, or
//! `file:///dir`): objects fused into remote objects, read back with a range read of one
//! object's record, deleted with their last object, the network I/O done without the store's
//! lock; its failures are [`ObjectError::SpillRemoteFailed`].
//!
//! Across machines: a store serves its objects to peer stores over pontoon-transport
//! ([`Store::serve_peers`], or `pontoon store serve --listen ADDR` for the daemon), and another
//! store pulls an object by its id and the peer's address ([`Store::pull`],
//! [`Store::get_from`], [`Client::pull`]), in chunks, with a cap on bytes in flight, and keeps a
//! sealed local copy under the same id. The whole object is reserved before the first chunk is
//! asked for, every chunk is checked against what was asked, and a failed pull leaves nothing
//! behind ([`PullError`]). The peer protocol is sans-IO ([`peer_protocol`]).
//!
//! ```
//! use pontoon_store::{Store, StoreOptions};
//! let store = Store::new(StoreOptions::default());
//! let mut buffer = store.create(8)?;
//! buffer.copy_from_slice(&42u64.to_le_bytes());
//! let id = buffer.seal();
//! let object = store.get_raw(&id)?;
//! assert_eq!(&object.frames[0][..], &42u64.to_le_bytes());
//! println!("stored as {id}");
//! # Ok::<(), pontoon_store::ObjectError>(())
//! ```
#![doc(test(attr(deny(warnings))))]
#![warn(missing_debug_implementations)]

// The README's example is compiled and run as a doctest, so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// The `bytes` crate this one is built with (frames are `bytes::Bytes`).
///
/// ```
/// let frame: pontoon_store::bytes::Bytes = pontoon_store::bytes::Bytes::from_static(b"x");
/// assert_eq!(frame.len(), 1);
/// ```
pub use bytes;

mod alloc;
mod arena;
mod client;
mod daemon;
mod daemon_peer;
mod daemon_remote;
mod embedded;
mod error;
mod fdpass;
mod id;
pub mod metrics;
mod object;
mod outgoing;
mod peer;
pub mod peer_protocol;
pub mod protocol;
mod pull;
mod pulled;
mod size;
mod spill;
mod spill_dir;
mod spill_remote;
mod state;
mod stats;
mod waits;

pub use arena::Backing;
pub use client::{Client, ClientCreating};
pub use daemon::{Daemon, ServeOptions, StatsHandle};
pub use embedded::{Creating, SpillRemote, Store, StoreOptions};
pub use error::{ClientError, GetError, ObjectError, PutError, RemoteFault, ServeError};
pub use id::{ObjectId, ParseIdError, StoreId};
pub use peer::PeerServer;
pub use pull::{PullError, PullOptions};
pub use size::{ByteSize, ParseSizeError};
pub use stats::StoreStats;
