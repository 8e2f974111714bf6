//! pontoon-pickle: Python's pickle data (protocols 0 to 5) read and written in Rust, never
//! running code.
//!
//! Dask, Ray and Wallaroo fall back to pickle, so data from the Python world arrives as
//! pickles. This crate decodes them into a value [`Graph`] and encodes graphs back, so a Rust
//! process can join Python systems as they are:
//!
//! - **Data types**: None, bool, int of any size, float, complex, str, bytes, bytearray, list,
//!   tuple, dict, set, frozenset, `collections.OrderedDict`, numpy arrays and dtypes.
//! - **Sharing and cycles**: the memo is honoured; `[l1, l1]` decodes to one shared node and
//!   `l = []; l.append(l)` to a list that holds itself. Nodes live in an arena and refer to each
//!   other by [`NodeId`], so nothing leaks and nothing recurses, on decode, encode or drop.
//! - **numpy arrays**, in-band (`_reconstruct` plus `__setstate__`, protocols 2 to 4) and
//!   out-of-band (protocol 5 `PickleBuffer`s through `_frombuffer`), C and Fortran order, 0-d
//!   and empty, every dtype pontoon-array knows, become [`pontoon_array::Array`]s: views of the
//!   buffer (or of the input) when the data is aligned for its dtype, as out-of-band buffers
//!   normally are; misaligned data (in-band bytes sit wherever the pickle put them) is copied
//!   once.
//! - **Never runs code.** Globals are honoured only from an allow-list of known constructors
//!   ([`allow_list`]); any other is [`LoadError::Refused`] ("refusing to load os.system"), or,
//!   when [`LoadOptions::opaque`] says so, an opaque [`Object`] that keeps the call's name,
//!   arguments and state so it can be written back.
//! - **Bounded**: marks nest at most [`LoadOptions::max_depth`], everything a pickle makes is
//!   counted against its length times [`LoadOptions::max_expansion_ratio`] before it is
//!   allocated, integers are at most [`LoadOptions::max_int_bytes`]; bad input is a typed
//!   [`LoadError`] with the byte offset, never a panic.
//! - **Encoding** ([`dumps`]) to protocol 5, with out-of-band buffers for bytes and arrays,
//!   sharing and cycles kept, and `GLOBAL` plus `REDUCE`/`NEWOBJ`/`BUILD` for named classes.
//! - **The `pickle` family** ([`PickleFamily`]) for pontoon-family registries, off unless a
//!   receiver lists it.
//!
//! ```
//! use bytes::Bytes;
//! use pontoon_pickle::{DumpOptions, LoadOptions, Node, dumps, loads};
//!
//! // pickle.dumps({"a": [1, 2.5]}, protocol=2)
//! let data = Bytes::from_static(b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01]q\x02(K\x01G@\x04\x00\x00\x00\x00\x00\x00es.");
//! let graph = loads(&data, &[], &LoadOptions::default())?;
//! let Node::Dict(items) = graph.node(graph.root()) else { panic!() };
//! let (key, value) = items[0];
//! assert!(matches!(graph.node(key), Node::Str(s) if s.as_str() == Some("a")));
//! assert!(matches!(graph.node(value), Node::List(l) if l.len() == 2));
//!
//! let pickled = dumps(&graph, &DumpOptions::default())?; // protocol 5, for pickle.loads
//! assert_eq!(loads(&pickled.data, &pickled.buffers, &LoadOptions::default())?.nodes().len(), 5);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![doc(test(attr(deny(warnings))))]
#![warn(missing_debug_implementations)]

mod allow;
mod dump;
mod error;
mod family;
mod int;
mod json;
mod load;
mod numpy;
mod opcode;
mod options;
mod text;
mod value;

pub use allow::allow_list;
pub use dump::{DumpOptions, Pickled, dumps};
pub use error::{DumpError, LoadError};
pub use family::PickleFamily;
pub use int::BigInt;
pub use json::{JsonError, float_hex, to_json};
pub use load::loads;
pub use options::{LoadOptions, Opaque};
pub use text::{CodePoints, PyStr};
pub use value::{Call, DTypeSpec, Global, Graph, Node, NodeId, Object};

/// The `bytes` crate this one is built with ([`Node::Bytes`] holds a `bytes::Bytes`).
///
/// ```
/// let node = pontoon_pickle::Node::Bytes(pontoon_pickle::bytes::Bytes::from_static(b"x"));
/// assert_eq!(node.type_name(), "bytes");
/// ```
pub use bytes;

// The README's example is compiled and run as a doctest, so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
