//! pontoon-family: named serialization families, your own serializers per type, out-of-band
//! buffers, and allow-lists that hold.
//!
//! A [`Registry`] turns values into pontoon-wire [`Message`](pontoon_wire::Message)s (a MessagePack
//! header plus frames) and back. It gives a Rust program what Dask, Ray and Wallaroo give Python
//! ones, without their gaps:
//!
//! - **No registration needed.** Any serde type goes through the built-in `serde` family.
//! - **Your own serializer per type**, under a stable name ([`Registry::register`], or the
//!   [`Custom`] trait), wins over serde for that type: Dask's `dask_serialize.register`.
//! - **Families from other crates** implement [`Family`] and are added by name; a family may
//!   decline a value and the next on the list is tried: Dask's `register_serialization_family`.
//! - **Allow-lists that hold.** The serializer list says which families may write (in order), the
//!   deserializer list which may be read; per connection, a [`Session`] narrows them (and can
//!   never widen them). A message
//!   from a family not on the list is refused with an error naming it and the list. No family
//!   deserializes on another's behalf, so there is no way around the list (unlike Dask's
//!   `__Pickled__` placeholder, unpickled even where pickle is refused).
//! - **Names that last**: a type's stable name ([`TypeName`], [`Registry::register_named`], or
//!   any registration) is what its messages carry, across builds and refactors; without one,
//!   its Rust name is matched with the paths taken out, so a type may move module.
//! - **Dynamic values**: [`Registry::serialize_dyn`] takes a `&dyn Any` of a registered type, and
//!   [`Registry::deserialize_dyn`] gives it back as that type, found by the name in the header.
//! - **Out-of-band buffers**: a [`Buffer`] inside any serde struct travels as a frame of its own
//!   and comes back as a view of that frame, with no copy: pickle 5's `buffer_callback` and Dask's
//!   `register_generic`. The same buffer referenced twice is sent once and comes back shared
//!   (Ray loses this aliasing).
//! - **A [`Context`]** (sender, recipient, shared memory) reaches every family.
//! - **Errors, never crashes**: a value that cannot be serialized names its type and the path to
//!   the failing field (`Model.layers[3].weights`); nesting deeper than 256 (or a value that
//!   refers to itself) is an error on encode and decode, never a stack overflow; every problem
//!   with an untrusted header or body is its own typed error, and what a message may make in
//!   memory is bounded by the receiver's [`Limits`](pontoon_wire::Limits) before it is allocated.
//!
//! ```
//! use pontoon_family::{Buffer, Registry};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct Model { name: String, weights: Buffer }
//!
//! let registry = Registry::new();
//! let model = Model { name: "net".into(), weights: Buffer::from(vec![1u8; 1 << 20]) };
//! let message = registry.serialize(&model)?; // header + one frame: the weights
//! let back: Model = registry.deserialize(&message)?;
//! assert_eq!(back, model);
//! assert_eq!(back.weights.as_ptr(), message.frames[0].as_ptr()); // no copy
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The serde family's encoding, and why
//!
//! The `serde` family writes values in its own compact binary encoding ([`binary`], specified in
//! `docs/family-format.md`): fields in order with no names or tags, fixed-width little-endian
//! numbers, LEB128 lengths, and buffers replaced by frame indexes. It is not self-describing: the
//! header carries the type's name, which is checked on the way in.
//!
//! We measured it next to rmp-serde, postcard and bitcode (all through serde, in one criterion
//! run, `cargo xtask bench`) on data shaped like the `log` set (10,000 records of strings) and
//! the `mesh` set (125,000 triangles of floats, 6 MB) of the rust_serialization_benchmark. On
//! the 2-core machine the project is built on, shared (load about 3), one run gave (medians,
//! lower is better; between runs there the figures move by 10-30%):
//!
//! | data | pontoon | rmp-serde | postcard | bitcode | pontoon / fastest peer |
//! | --- | --- | --- | --- | --- | --- |
//! | log, serialize | 248 µs | 843 µs | 424 µs | 312 µs | 0.79 |
//! | log, deserialize | 2.27 ms | 2.86 ms | 2.08 ms | 1.49 ms | 1.52 |
//! | mesh, serialize | 1.84 ms | 7.55 ms | 1.56 ms | 3.19 ms | 1.18 |
//! | mesh, deserialize | 3.73 ms | 14.9 ms | 3.00 ms | 7.33 ms | 1.24 |
//!
//! MessagePack spends a marker byte and a branch on every number and every field name; postcard
//! spends a varint on every integer; bitcode's columnar layout decodes strings fastest, but its
//! format may change between versions and it cannot hand buffers out of band. Fixed-width numbers
//! make floats and integers a plain copy each way, and varints only for lengths keep strings
//! compact; owning the format lets buffers leave the body, lets us bound every length before
//! allocating, and makes it a specification that we version.
#![doc(test(attr(deny(warnings))))]
#![warn(missing_debug_implementations)]

pub mod binary;
mod buffer;
mod context;
mod error;
mod family;
mod header;
mod limits;
pub mod metrics;
mod msgpack;
mod registry;
mod serde_message;
mod session;
mod type_name;

/// The MessagePack value type families use for their metadata, re-exported so that a family's
/// crate needs no dependency of its own on `rmpv`.
pub use rmpv;

/// The `bytes` crate this one is built with: a [`Buffer`] is a `bytes::Bytes`, and families
/// hand frames over as `Bytes`, so users name the same version.
///
/// ```
/// let buffer = pontoon_family::Buffer::from(pontoon_family::bytes::Bytes::from_static(b"abc"));
/// assert_eq!(buffer.len(), 3);
/// ```
pub use bytes;

pub use buffer::Buffer;
pub use context::Context;
pub use error::{DeserializeError, RegistryError, SerializeError};
pub use family::{Dumped, Family, FamilyError, Loaded, Object};
pub use header::family_name;
pub use limits::decode_limits;
pub use registry::{CUSTOM, Custom, Registry, SERDE};
pub use session::Session;
pub use type_name::TypeName;

// The README's example is compiled and run as a doctest, so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
