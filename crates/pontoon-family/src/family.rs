//! The [`Family`] trait, for serialization families defined in other crates, and what it trades in.

use std::any::{Any, TypeId};

use pontoon_wire::Frame;

use crate::Context;

/// The error a family or a per-type serializer returns; the registry wraps it with the family's
/// and the type's names.
pub type FamilyError = Box<dyn std::error::Error + Send + Sync>;

/// A value offered to a family for serialization: the value itself, to downcast, and the type name
/// the message will carry.
///
/// ```
/// # use pontoon_family::Object;
/// fn describe(object: &Object<'_>) -> String {
///     match object.downcast_ref::<String>() {
///         Some(s) => format!("a string of {} bytes", s.len()),
///         None => format!("a {}", object.type_name()),
///     }
/// }
/// # let _ = describe;
/// ```
#[derive(Clone, Copy)]
pub struct Object<'a> {
    pub(crate) value: &'a dyn Any,
    pub(crate) type_name: &'a str,
}

/// The value is opaque (`dyn Any`): its type name stands for it.
impl std::fmt::Debug for Object<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Object")
            .field("type_name", &self.type_name)
            .finish_non_exhaustive()
    }
}

impl<'a> Object<'a> {
    /// The value as `T`, if it is one.
    ///
    /// ```
    /// # use pontoon_family::Object;
    /// fn len_of_vec(object: &Object<'_>) -> Option<usize> {
    ///     object.downcast_ref::<Vec<u8>>().map(Vec::len)
    /// }
    /// # let _ = len_of_vec;
    /// ```
    pub fn downcast_ref<T: Any>(&self) -> Option<&'a T> {
        self.value.downcast_ref()
    }

    /// The name the message will carry for the value's type: its registered name, or else
    /// `std::any::type_name`.
    ///
    /// ```
    /// # use pontoon_family::Object;
    /// fn is_mine(object: &Object<'_>) -> bool {
    ///     object.type_name().starts_with("myapp.")
    /// }
    /// # let _ = is_mine;
    /// ```
    pub fn type_name(&self) -> &'a str {
        self.type_name
    }
}

/// What a family (or a per-type serializer) produces: its own metadata, stored under `meta` in the
/// message header, and frames.
///
/// ```
/// let dumped = pontoon_family::Dumped::new(rmpv::Value::from("v1"), vec![bytes::Bytes::from_static(b"data")]);
/// assert_eq!(dumped.frames.len(), 1);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Dumped {
    /// Small metadata, any MessagePack value.
    pub meta: rmpv::Value,
    /// Payload frames; large data belongs here, not in `meta`.
    pub frames: Vec<Frame>,
}

impl Dumped {
    /// Metadata and frames.
    ///
    /// ```
    /// let dumped = pontoon_family::Dumped::new(rmpv::Value::Nil, vec![]);
    /// assert!(dumped.frames.is_empty());
    /// ```
    pub fn new(meta: rmpv::Value, frames: Vec<Frame>) -> Dumped {
        Dumped { meta, frames }
    }
}

/// What a family gets back to rebuild a value: the type name and metadata from the header, and
/// the frames. Frames are the message's own, so slicing them copies nothing.
///
/// ```
/// # use pontoon_family::Loaded;
/// fn first_frame<'a>(loaded: &Loaded<'a>) -> Option<&'a bytes::Bytes> {
///     loaded.frames.first()
/// }
/// # let _ = first_frame;
/// ```
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Loaded<'a> {
    /// The type name the sender wrote.
    pub type_name: &'a str,
    /// The family's metadata.
    pub meta: &'a rmpv::Value,
    /// The frames.
    pub frames: &'a [Frame],
    /// The receiver's limits: how much the family may expand what it was sent (see
    /// [`Limits::max_expansion`](pontoon_wire::Limits::max_expansion)).
    pub limits: &'a pontoon_wire::Limits,
}

impl<'a> Loaded<'a> {
    /// What a family is given to rebuild a value: the type name and metadata from the header,
    /// the message's frames, and the receiver's limits.
    ///
    /// ```
    /// use pontoon_family::{Loaded, rmpv::Value};
    /// let meta = Value::Nil;
    /// let loaded = Loaded::new("x", &meta, &[], &pontoon_wire::Limits::DEFAULT);
    /// assert_eq!(loaded.type_name, "x");
    /// ```
    pub fn new(
        type_name: &'a str,
        meta: &'a rmpv::Value,
        frames: &'a [Frame],
        limits: &'a pontoon_wire::Limits,
    ) -> Loaded<'a> {
        Loaded {
            type_name,
            meta,
            frames,
            limits,
        }
    }
}

/// A serialization family: a way to turn values into metadata plus frames and back, added to a
/// [`Registry`](crate::Registry) under a name. This is Dask's `register_serialization_family`.
///
/// A family may decline a value (`Ok(None)`): the registry then tries the next family in the
/// serializer list. On the way in, the registry calls `loads` only if the family's name is on the
/// receiver's deserializer list.
///
/// ```
/// use std::any::{Any, TypeId};
/// use pontoon_family::{Context, Dumped, Family, FamilyError, Loaded, Object, Registry};
///
/// /// Sends strings as UTF-8 frames.
/// struct Utf8;
///
/// impl Family for Utf8 {
///     fn name(&self) -> &str { "utf8" }
///     fn produces(&self, _: &str, requested: TypeId) -> bool { requested == TypeId::of::<String>() }
///     fn dumps(&self, object: &Object<'_>, _: &Context) -> Result<Option<Dumped>, FamilyError> {
///         Ok(object.downcast_ref::<String>().map(|s| {
///             Dumped::new(rmpv::Value::Nil, vec![bytes::Bytes::from(s.clone().into_bytes())])
///         }))
///     }
///     fn loads(&self, loaded: &Loaded<'_>, _: &Context) -> Result<Box<dyn Any + Send + Sync>, FamilyError> {
///         let frame = loaded.frames.first().ok_or("no frame")?;
///         Ok(Box::new(String::from_utf8(frame.to_vec())?))
///     }
/// }
///
/// let mut registry = Registry::new();
/// registry.add_family(Utf8)?;
/// registry.set_serializers(["utf8", "serde"])?;
/// registry.set_deserializers(["utf8", "serde"])?;
/// let message = registry.serialize(&"hello".to_string())?;
/// assert_eq!(&message.frames[0][..], b"hello");
/// assert_eq!(registry.deserialize::<String>(&message)?, "hello");
/// assert!(registry.deserialize::<Vec<u8>>(&message).is_err()); // `loads` does not run
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Family: Send + Sync + 'static {
    /// The family's name: what its messages carry as `family` in their header, and what the
    /// serializer and deserializer lists call it. It must not be `custom` or `serde`.
    fn name(&self) -> &str;

    /// Serializes the value, or returns `Ok(None)` if this family does not handle its type.
    fn dumps(&self, object: &Object<'_>, context: &Context) -> Result<Option<Dumped>, FamilyError>;

    /// Whether [`Family::loads`] may give a value of the type `requested` for a message that
    /// names `type_name`. The registry asks before `loads` runs whenever the caller wants one
    /// type (`deserialize::<T>`), and on `false` refuses the message
    /// ([`DeserializeError::TypeMismatch`](crate::DeserializeError::TypeMismatch)) without
    /// running `loads`: a loader never works for a type nobody asked for.
    fn produces(&self, type_name: &str, requested: TypeId) -> bool;

    /// Rebuilds a value from what [`Family::dumps`] produced.
    fn loads(
        &self,
        loaded: &Loaded<'_>,
        context: &Context,
    ) -> Result<Box<dyn Any + Send + Sync>, FamilyError>;
}
