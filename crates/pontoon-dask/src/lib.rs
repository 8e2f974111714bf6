//! Dask distributed's own wire protocol, byte for byte: its TCP framing ([`framing`]), its
//! messages (MessagePack frame 0 with `__Serialized__` and `__Pickled__` placeholders, the
//! `dask`, `pickle`, `msgpack` and `error` serializer families, numpy sub-headers, split and
//! compressed frames) as [`Value`]s, the comm handshake ([`Comm`]) and an RPC [`Client`] to a
//! Dask scheduler. Arrays arrive as pontoon-array views of the frames that carried them.
//!
//! ```
//! use pontoon_dask::{DecodeOptions, EncodeOptions, NdArray, Value, decode, encode};
//! let array = pontoon_array::Array::from_vec(vec![1.0f64, 2.0, 3.0]);
//! let msg = Value::map([("op", Value::from("update")), ("data", NdArray::from(array).into())]);
//! let frames: Vec<_> = encode(&msg, &EncodeOptions::default())?.into_iter().map(|f| f.data).collect();
//! let back = decode(&frames, &DecodeOptions::default())?;
//! let data = back.get("data").and_then(Value::as_ndarray).and_then(NdArray::array).unwrap();
//! assert_eq!(data.as_slice::<f64>()?, [1.0, 2.0, 3.0]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![doc(test(attr(deny(warnings))))]
#![warn(missing_debug_implementations)]

mod client;
mod comm;
mod compression;
mod error;
pub mod framing;
mod handshake;
mod json;
mod message;
mod msgpack;
mod numpy;
mod value;

pub use client::{Client, ClientError};
pub use comm::{Comm, CommError};
pub use compression::DaskCodec;
pub use error::{DecodeError, EncodeError, FramingError, MsgpackFault};
pub use handshake::{Handshake, HandshakeInfo};
pub use json::{JsonError, to_json};
pub use message::{
    DecodeOptions, EncodeOptions, SHARD_BYTES, decode, decode_in, encode, to_stream,
};
pub use value::{
    ArrayData, Collection, CollectionKind, NdArray, Object, PickleData, RawArray, RawDType, Value,
};

/// The `bytes` crate this one is built with (frames and binaries are `bytes::Bytes`).
///
/// ```
/// let v = pontoon_dask::Value::Bin(pontoon_dask::bytes::Bytes::from_static(b"x"));
/// assert!(matches!(v, pontoon_dask::Value::Bin(_)));
/// ```
pub use bytes;

// The README's example is compiled and run as a doctest, so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
