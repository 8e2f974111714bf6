//! The errors of each registry operation: [`SerializeError`], [`DeserializeError`],
//! [`RegistryError`].

use crate::FamilyError;
use crate::binary;

/// Why a value could not be serialized. Each variant names the Rust type; body errors also carry
/// the path to the failing field.
///
/// ```
/// use pontoon_family::{Registry, SerializeError};
/// #[derive(serde::Serialize)]
/// struct Model { layers: Vec<Layer> }
/// #[derive(serde::Serialize)]
/// struct Layer { #[serde(serialize_with = "fail")] weights: u8 }
/// fn fail<S: serde::Serializer>(_: &u8, _: S) -> Result<S::Ok, S::Error> {
///     Err(serde::ser::Error::custom("weights are on a GPU"))
/// }
///
/// let model = Model { layers: vec![Layer { weights: 0 }, Layer { weights: 1 }] };
/// let err = Registry::new().serialize(&model).unwrap_err();
/// assert!(matches!(err, SerializeError::Body { .. }));
/// assert!(err.to_string().contains("Model.layers[0].weights"), "{err}");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SerializeError {
    /// No family on the serializer list took the value.
    #[error("no serializer family takes `{type_name}` (tried {tried:?})")]
    NoFamily {
        /// The value's type.
        type_name: String,
        /// The families tried, in order.
        tried: Vec<String>,
    },
    /// A dynamic value's type is not registered, and no family took it.
    #[error(
        "the value's type is not registered (register it with Registry::register_type or Registry::register), and no family on {tried:?} took it"
    )]
    Unregistered {
        /// The families tried, in order.
        tried: Vec<String>,
    },
    /// The serde family could not encode the value.
    #[error("cannot serialize `{type_name}`{}: {}", at(error.path(), type_name), error.kind())]
    Body {
        /// The value's type.
        type_name: String,
        /// What went wrong, and where; said in this error's own words (so it is not its
        /// `source()`, which would print it twice).
        error: binary::Error,
    },
    /// A family or a per-type serializer failed.
    #[error("family `{family}` cannot serialize `{type_name}`")]
    Family {
        /// The family.
        family: String,
        /// The value's type.
        type_name: String,
        /// The family's error.
        #[source]
        source: FamilyError,
    },
}

/// ` at `Model.layers[3].weights`` for a path under a type, or nothing without a path.
fn at(path: Option<&str>, type_name: &str) -> String {
    let short = type_name.rsplit("::").next().unwrap_or(type_name);
    match path {
        Some(path) if !path.is_empty() => format!(" at `{short}.{path}`"),
        _ => String::new(),
    }
}

/// Why a message could not be turned back into a value. Headers and frames from the wire are
/// untrusted: each problem with them is its own variant.
///
/// ```
/// use pontoon_family::{DeserializeError, Registry};
/// let sender = Registry::new();
/// let message = sender.serialize(&42u32)?;
///
/// let mut receiver = Registry::new();
/// receiver.set_deserializers(["custom"])?; // no serde
/// let err = receiver.deserialize::<u32>(&message).unwrap_err();
/// assert!(matches!(&err, DeserializeError::NotAccepted { family, .. } if family == "serde"));
/// assert_eq!(err.to_string(), "family `serde` is not on this side's deserializer list ([\"custom\"])");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeserializeError {
    /// The header is not a MessagePack map.
    #[error("the header is not a map of family fields")]
    HeaderNotAMap,
    /// A key the header must have is missing.
    #[error("the header has no `{key}` key")]
    MissingKey {
        /// The key.
        key: &'static str,
    },
    /// A header key appears twice.
    #[error("the header has the `{key}` key twice")]
    DuplicateKey {
        /// The key.
        key: String,
    },
    /// A header key holds the wrong type.
    #[error("header key `{key}` should hold {expected}")]
    WrongType {
        /// The key.
        key: &'static str,
        /// What it should hold.
        expected: &'static str,
    },
    /// The message was written by a family this registry does not know.
    #[error("unknown family `{family}` (this side's deserializer list: {deserializers:?})")]
    UnknownFamily {
        /// The family named in the header.
        family: String,
        /// The families this side deserializes (its deserializer list).
        deserializers: Vec<String>,
    },
    /// The message was written by a family this side does not accept.
    #[error("family `{family}` is not on this side's deserializer list ({deserializers:?})")]
    NotAccepted {
        /// The family named in the header.
        family: String,
        /// The families this side deserializes (its deserializer list).
        deserializers: Vec<String>,
    },
    /// The header names a type this registry does not know.
    #[error("unknown type `{name}` (register it on this side)")]
    UnknownType {
        /// The type name in the header.
        name: String,
    },
    /// The message holds a different type than the one asked for.
    #[error("the message holds `{found}`, not `{expected}`")]
    TypeMismatch {
        /// The type asked for.
        expected: String,
        /// The type the message holds.
        found: String,
    },
    /// The number of frames does not match the header.
    #[error("family `{family}` expects {expected} frames, the message has {found}")]
    FrameCount {
        /// The family.
        family: String,
        /// Frames the header implies.
        expected: u64,
        /// Frames present.
        found: usize,
    },
    /// Decoding a family's `meta` would take more memory than the receiver's limits allow for
    /// its size ([`Limits::max_expansion`](pontoon_wire::Limits::max_expansion)); nothing was
    /// decoded.
    #[error(
        "the `meta` of family `{family}` for `{type_name}` would take {decoded_bytes} bytes decoded, \
         more than the {max_bytes} bytes this side allows for its {received_bytes} bytes"
    )]
    MetaTooLarge {
        /// The family.
        family: String,
        /// The type name in the header.
        type_name: String,
        /// The size of `meta` as received.
        received_bytes: u64,
        /// What decoding it would take.
        decoded_bytes: u64,
        /// The most this side allows.
        max_bytes: u64,
    },
    /// A family's `meta` is nested deeper than the registry's depth limit.
    #[error("the `meta` of family `{family}` is nested deeper than the limit of {limit}")]
    MetaTooDeep {
        /// The family.
        family: String,
        /// The depth limit in force.
        limit: usize,
    },
    /// Memory for something the message holds could not be had.
    #[error("out of memory decoding {what} ({bytes} bytes received)")]
    OutOfMemory {
        /// What was being decoded.
        what: &'static str,
        /// Its size as received.
        bytes: u64,
    },
    /// The serde family's body does not decode into the type.
    #[error("cannot deserialize `{type_name}`{}: {}", at(error.path(), type_name), error.kind())]
    Body {
        /// The type asked for.
        type_name: String,
        /// What went wrong, and where; said in this error's own words (so it is not its
        /// `source()`, which would print it twice).
        error: binary::Error,
    },
    /// A family or a per-type deserializer failed.
    #[error("family `{family}` cannot deserialize `{type_name}`")]
    Family {
        /// The family.
        family: String,
        /// The type name in the header.
        type_name: String,
        /// The family's error.
        #[source]
        source: FamilyError,
    },
}

/// A registry set up wrongly: a name used twice, or a family list naming a family that is not there.
///
/// ```
/// let mut registry = pontoon_family::Registry::new();
/// let err = registry.set_serializers(["pickle"]).unwrap_err();
/// assert_eq!(err.to_string(), "no family named `pickle` (known: [\"custom\", \"serde\"])");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// A family list names a family that was never added.
    #[error("no family named `{name}` (known: {known:?})")]
    UnknownFamily {
        /// The name.
        name: String,
        /// The families the registry has.
        known: Vec<String>,
    },
    /// A session named a family that is not on the registry's list: a session may only narrow
    /// the registry's lists.
    #[error(
        "a session can only narrow the registry's {list} list, and `{family}` is not on it \
         (the registry's list: {allowed:?})"
    )]
    Widens {
        /// The family named.
        family: String,
        /// `"serializer"` or `"deserializer"`.
        list: &'static str,
        /// The registry's list.
        allowed: Vec<String>,
    },
    /// A family of this name already exists.
    #[error("a family named `{0}` already exists")]
    DuplicateFamily(String),
    /// The type name is already registered for another type.
    #[error("the name `{name}` is already registered for `{existing}`")]
    DuplicateName {
        /// The name.
        name: String,
        /// The type it is registered for.
        existing: String,
    },
    /// The type is already registered under another name.
    #[error("`{type_name}` is already registered as `{existing}`")]
    Renamed {
        /// The type.
        type_name: String,
        /// Its registered name.
        existing: String,
    },
}
