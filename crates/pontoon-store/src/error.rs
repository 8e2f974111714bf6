//! The errors, one enum per kind of operation: what a store refuses about an object
//! ([`ObjectError`], the same embedded and through the daemon), what a value put or got through
//! the registry adds ([`PutError`], [`GetError`]), what a daemon's client meets ([`ClientError`]),
//! and what stops a daemon from serving ([`ServeError`]).

use std::io;
use std::path::PathBuf;

use crate::ObjectId;
use crate::protocol::ProtocolError;

/// What a store refuses about one object operation.
///
/// ```
/// let store = pontoon_store::Store::new(pontoon_store::StoreOptions::default());
/// let id = pontoon_store::ObjectId::new(store.id(), 99);
/// let err = store.get_raw(&id).unwrap_err();
/// assert_eq!(err.to_string(), format!("no object {id} in the store"));
/// # Ok::<(), pontoon_store::ObjectError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ObjectError {
    /// No object has this id (never made, deleted, or taken).
    #[error("no object {id} in the store")]
    Unknown {
        /// The id asked for.
        id: ObjectId,
    },
    /// The object is still being created: `wait` for it, or seal it first.
    #[error("object {id} is not sealed yet")]
    NotSealed {
        /// The object.
        id: ObjectId,
    },
    /// The object is sealed already: a second seal, or an abort after the seal.
    #[error("object {id} is sealed already")]
    AlreadySealed {
        /// The object.
        id: ObjectId,
    },
    /// Another client is creating this object; only its creator may seal or abort it.
    #[error("object {id} is being created by another client")]
    NotOwner {
        /// The object.
        id: ObjectId,
    },
    /// The object does not fit in the store's memory, and the store has no spill directory (or
    /// everything in memory is pinned and the object cannot be created on disk).
    #[error(
        "the store is full: {need} bytes needed, {free} of {capacity} free (largest free range {largest})"
    )]
    StoreFull {
        /// Bytes the object needs (rounded up to 64).
        need: u64,
        /// The store's capacity in bytes.
        capacity: u64,
        /// Bytes free now.
        free: u64,
        /// The largest free contiguous range.
        largest: u64,
    },
    /// A seal whose frames do not lie inside the object, or too many of them.
    #[error("object {id}: {reason}")]
    BadLayout {
        /// The object.
        id: ObjectId,
        /// What is wrong with the layout.
        reason: String,
    },
    /// The spill directory's disk has no room for what had to be written there (objects spilled
    /// to make room, or an object created on disk). Nothing sealed was lost: what could not be
    /// spilled is still in memory.
    #[error("the spill disk is full: {need} bytes to write in {}", dir.display())]
    SpillDiskFull {
        /// The spill directory.
        dir: PathBuf,
        /// Bytes that had to be written.
        need: u64,
    },
    /// Spilling failed for another reason than a full disk (an I/O error, a spill directory
    /// that could not be opened, a spill file that no longer verifies).
    #[error("spilling to {} failed: {reason}", dir.display())]
    SpillFailed {
        /// The spill directory.
        dir: PathBuf,
        /// What failed.
        reason: String,
    },
    /// Spilling to the remote ([`StoreOptions::spill_remote`](crate::StoreOptions::spill_remote))
    /// or reading an object back from it failed; `fault` says how. Nothing sealed was lost: an
    /// object whose spill failed is still in memory, and one whose read failed is still on the
    /// remote.
    #[error("the spill remote `{url}` failed ({fault}): {reason}")]
    SpillRemoteFailed {
        /// The remote's URL.
        url: String,
        /// What kind of failure it was.
        fault: RemoteFault,
        /// What failed, in words.
        reason: String,
    },
    /// The process could not allocate the object's memory (embedded mode).
    #[error("could not allocate {bytes} bytes for an object")]
    OutOfMemory {
        /// The bytes asked for.
        bytes: u64,
    },
    /// The daemon could not pull the object from a peer store (`Client::pull`); the reason
    /// is the pull's error, in words.
    #[error("pulling object {id} failed: {reason}")]
    PullFailed {
        /// The object.
        id: ObjectId,
        /// Why.
        reason: String,
    },
}

/// How a spill remote failed ([`ObjectError::SpillRemoteFailed`]).
///
/// ```
/// assert_eq!(pontoon_store::RemoteFault::Refused.to_string(), "credentials refused");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteFault {
    /// The remote could not be reached (connection refused, DNS, timeouts).
    #[error("unreachable")]
    Unreachable,
    /// The remote refused the credentials (HTTP 401 or 403).
    #[error("credentials refused")]
    Refused,
    /// The remote has no room (a quota, a full disk behind it, HTTP 507).
    #[error("full")]
    Full,
    /// An object read back does not verify (checksum, length, another store's).
    #[error("corrupt")]
    Corrupt,
    /// Anything else the remote answered.
    #[error("failed")]
    Other,
}

/// A value that could not be put.
///
/// ```
/// let mut options = pontoon_store::StoreOptions::default();
/// options.capacity = 64;
/// let store = pontoon_store::Store::new(options);
/// let registry = pontoon_family::Registry::new();
/// let err = store.put(&registry, &vec![0u8; 1000]).unwrap_err();
/// assert!(matches!(err, pontoon_store::PutError::Store(pontoon_store::ObjectError::StoreFull { .. })));
/// # Ok::<(), pontoon_store::ObjectError>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PutError {
    /// The registry could not serialize the value.
    #[error("cannot serialize the value to put")]
    Serialize(#[source] pontoon_family::SerializeError),
    /// The store refused the object.
    #[error(transparent)]
    Store(ObjectError),
    /// The daemon could not be asked (client mode).
    #[error(transparent)]
    Client(Box<ClientError>),
}

/// A value that could not be got.
///
/// ```
/// let store = pontoon_store::Store::new(pontoon_store::StoreOptions::default());
/// let registry = pontoon_family::Registry::new();
/// let id = store.put(&registry, &7u32).unwrap();
/// let err = store.get::<String>(&registry, &id).unwrap_err();
/// assert!(matches!(err, pontoon_store::GetError::Deserialize(_)));
/// # Ok::<(), pontoon_store::ObjectError>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GetError {
    /// The store has no such sealed object.
    #[error(transparent)]
    Store(ObjectError),
    /// The object is not a value of the type asked for.
    #[error("cannot deserialize the object")]
    Deserialize(#[source] pontoon_family::DeserializeError),
    /// The daemon could not be asked (client mode).
    #[error(transparent)]
    Client(Box<ClientError>),
}

/// What a client of the store daemon met.
///
/// ```
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// let err = rt.block_on(pontoon_store::Client::connect("/nonexistent/store.sock")).unwrap_err();
/// assert!(err.to_string().starts_with("cannot connect to the store at /nonexistent/store.sock"));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The socket could not be connected to.
    #[error("cannot connect to the store at {}", path.display())]
    Connect {
        /// The socket's path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Reading from or writing to the daemon's socket failed.
    #[error("the store's socket failed")]
    Io(#[source] io::Error),
    /// The store's shared memory could not be mapped.
    #[error("cannot map the store's shared memory")]
    Map(#[source] io::Error),
    /// The daemon sent something this client cannot read.
    #[error("the store daemon sent a bad reply")]
    Protocol(#[source] ProtocolError),
    /// The daemon refused the operation.
    #[error(transparent)]
    Refused(ObjectError),
    /// The connection to the daemon is gone (it exited, or closed this client).
    #[error("the connection to the store daemon is closed")]
    Closed,
    /// The daemon speaks another version of the protocol.
    #[error("the store daemon speaks protocol version {daemon}, this client {client}")]
    Version {
        /// The daemon's version, from its hello.
        daemon: u64,
        /// This client's.
        client: u64,
    },
    /// The daemon sent the wrong number of file descriptors with its hello.
    #[error("the store daemon sent {got} file descriptors with its hello, not {want}")]
    Descriptors {
        /// How many came.
        got: usize,
        /// How many the hello promised.
        want: usize,
    },
}

/// What stops a store daemon from serving.
///
/// ```
/// let err = pontoon_store::ServeError::Bind {
///     path: "/x.sock".into(),
///     source: std::io::Error::other("taken"),
/// };
/// assert_eq!(err.to_string(), "cannot listen on /x.sock");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The socket could not be bound.
    #[error("cannot listen on {}", path.display())]
    Bind {
        /// The socket's path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The store's memory could not be reserved (memfd, or a file in the fallback directory).
    #[error("cannot reserve {capacity} bytes of store memory ({what})")]
    Memory {
        /// The capacity asked for.
        capacity: u64,
        /// Which step failed, on which backing.
        what: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The spill directory could not be opened and locked, or the stale files in it removed.
    #[error("cannot use the spill directory {}: {what}", dir.display())]
    SpillDir {
        /// The directory.
        dir: PathBuf,
        /// Which step failed.
        what: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The spill remote could not be opened or listed, its stale spill objects removed, or
    /// it was given with a spill directory.
    #[error("cannot spill to the remote")]
    SpillRemote(#[source] ObjectError),
    /// Accepting connections failed for good.
    #[error("accepting store clients failed")]
    Accept(#[source] io::Error),
    /// The address to serve peer stores on could not be listened on.
    #[error("cannot serve peer stores on {address}")]
    PeerListen {
        /// The address.
        address: String,
        /// Why.
        #[source]
        source: pontoon_transport::TransportError,
    },
}

impl From<ObjectError> for ClientError {
    fn from(error: ObjectError) -> ClientError {
        ClientError::Refused(error)
    }
}

impl From<ClientError> for PutError {
    fn from(error: ClientError) -> PutError {
        match error {
            ClientError::Refused(e) => PutError::Store(e),
            other => PutError::Client(Box::new(other)),
        }
    }
}

impl From<ClientError> for GetError {
    fn from(error: ClientError) -> GetError {
        match error {
            ClientError::Refused(e) => GetError::Store(e),
            other => GetError::Client(Box::new(other)),
        }
    }
}
