//! pontoon: move objects between the processes and machines of a distributed system, and to disk and
//! back, as a MessagePack header and a list of zero-copy frames.
//!
//! This facade re-exports pontoon's layers behind features, so one dependency is all most users add:
//!
//! | feature | module | crate |
//! | --- | --- | --- |
//! | `wire` (default) | [`wire`] | `pontoon-wire`: messages to bytes and back, with no I/O |
//! | `family` (default) | [`family`] | `pontoon-family`: families, per-type serializers, out-of-band buffers, allow-lists |
//! | `array` (default) | [`array`](mod@array) | `pontoon-array`: zero-copy n-dimensional arrays and Arrow data |
//! | `pickle` (default) | [`pickle`] | `pontoon-pickle`: Python pickle data, read and written without running code |
//! | `transport` (default) | [`transport`] | `pontoon-transport`: tokio comms over `tcp://`, `tls://`, `unix://`, `inproc://` |
//! | `persist` (default) | [`persist`] | `pontoon-persist`: a durable, checksummed log of messages |
//! | `persist-remote` | [`persist`] | `pontoon-persist`'s `remote`: a durable state's (or a bare log's) segments and snapshots on S3-compatible storage or `file://`, and `apply` or `append` that waits for the remote (`RemoteDurability::Acknowledged`) |
//! | `store` | [`store`] | `pontoon-store`: an object store, embedded or shared between processes (Linux) |
//! | `store-remote` | [`store`] | `pontoon-store`'s `remote`: a store (embedded or daemon) spills to S3-compatible storage or `file://` |
//! | `dask` | [`dask`] | `pontoon-dask`: Dask distributed's own wire protocol and a scheduler client |
//!
//! With `transport`, [`connect`] and [`listen`] give [`Endpoint`](transport::Endpoint)s over
//! the default [`registry`]: `endpoint.send(&value)` and `endpoint.recv()` are the whole API of
//! a first program (see the README's quickstart, below the table of crates on crates.io).
//!
//! Each feature builds alone and pulls in the layers below it (`array`, `transport` and
//! `persist` each bring `family`, which brings `wire`; `pickle` brings `array`); with none,
//! this crate is empty.
//!
//! The lower crates have features of their own: `pontoon-wire`'s `lz4` and `zstd` codecs
//! (default on, forwarded here as `lz4` and `zstd`) and `tokio-util` codec, `pontoon-array`'s
//! `ndarray` and `arrow` (default on, forwarded here as `ndarray` and `arrow`).
#![cfg_attr(
    feature = "wire",
    doc = r#"
```
use pontoon::prelude::*;

let message = Message::new(Header::from_serde(&"ping")?, vec![]);
let bytes = Encoder::default().encode(&message)?.to_bytes();
assert_eq!(pontoon::wire::decode_message(bytes, &Limits::default())?, message);
# Ok::<(), Box<dyn std::error::Error>>(())
```
"#
)]
#![doc(test(attr(deny(warnings))))]
#![warn(missing_debug_implementations)]

#[cfg(feature = "wire")]
#[doc(inline)]
pub use pontoon_wire as wire;

#[cfg(feature = "family")]
#[doc(inline)]
pub use pontoon_family as family;

#[cfg(feature = "array")]
#[doc(inline)]
pub use pontoon_array as array;

#[cfg(feature = "pickle")]
#[doc(inline)]
pub use pontoon_pickle as pickle;

#[cfg(feature = "transport")]
#[doc(inline)]
pub use pontoon_transport as transport;

#[cfg(feature = "persist")]
#[doc(inline)]
pub use pontoon_persist as persist;

#[cfg(feature = "store")]
#[doc(inline)]
pub use pontoon_store as store;

#[cfg(feature = "dask")]
#[doc(inline)]
pub use pontoon_dask as dask;

#[cfg(feature = "transport")]
mod short;
#[cfg(feature = "transport")]
pub use short::{Listener, connect, listen, registry};

/// The names most programs need, for a glob import. It holds the names of the features
/// enabled: none without any.
#[cfg_attr(
    feature = "wire",
    doc = r#"
```
use pontoon::prelude::*;
let header = Header::empty();
# let _ = header;
```
"#
)]
pub mod prelude {
    #[cfg(feature = "array")]
    pub use pontoon_array::{Array, ArrayFamily, DType};
    #[cfg(feature = "family")]
    pub use pontoon_family::{Buffer, Context, Registry};
    #[cfg(feature = "persist")]
    pub use pontoon_persist::{Durable, Log};
    #[cfg(feature = "store")]
    pub use pontoon_store::{ObjectId, Store};
    #[cfg(feature = "transport")]
    pub use pontoon_transport::Endpoint;
    #[cfg(feature = "wire")]
    pub use pontoon_wire::{Decoder, Encoder, Frame, Header, Limits, Message};

    #[cfg(feature = "transport")]
    pub use crate::{connect, listen};
}

// The README's quickstart is compiled and run as a doctest, so it cannot rot. It needs a
// connection (`transport`, which brings `family` and `wire`) and nothing else, so it runs
// exactly when `transport` is on.
#[cfg(all(doctest, feature = "transport"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
