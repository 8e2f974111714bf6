//! ferry-family: named serialization families, your own serializers per type, and allow-lists.
#![doc(test(attr(deny(warnings))))]

pub mod binary;
mod buffer;
mod context;
mod error;
mod family;
mod header;
mod registry;

pub use buffer::Buffer;
pub use context::Context;
pub use error::{DeserializeError, RegistryError, SerializeError};
pub use family::{Dumped, Family, FamilyError, Loaded, Object};
pub use registry::{CUSTOM, Custom, Registry, SERDE, Session};
