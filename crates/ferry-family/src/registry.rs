//! [`Registry`]: named families, per-type registrations and allow-lists; [`Session`]: a registry
//! seen from one connection, with its own [`Context`] and lists.

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use bytes::Bytes;
use ferry_wire::{Frame, Header, Limits, Message};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::header::{self, Body};
use crate::limits;
use crate::{
    Context, DeserializeError, Dumped, Family, FamilyError, Loaded, Object, RegistryError,
    SerializeError, binary,
};

/// The built-in family of per-type serializers that users register.
pub const CUSTOM: &str = "custom";
/// The built-in family that serializes any serde type, with buffers out of band.
pub const SERDE: &str = "serde";

/// `TypeId`s are hashes already; hashing them again is wasted work on every serialize.
#[derive(Default)]
struct TypeIdHasher(u64);

impl Hasher for TypeIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = self.0.rotate_left(5) ^ n;
    }
}

type ByTypeId<V> = HashMap<TypeId, V, BuildHasherDefault<TypeIdHasher>>;

type DumpsFn = dyn Fn(&dyn Any, &Context) -> Result<Dumped, FamilyError> + Send + Sync;
type LoadsFn =
    dyn Fn(&Loaded<'_>, &Context) -> Result<Box<dyn Any + Send + Sync>, FamilyError> + Send + Sync;

/// A type's user-supplied serializer and deserializer (the `custom` family).
struct CustomFns {
    dumps: Box<DumpsFn>,
    loads: Box<LoadsFn>,
}

type EncodeFn = fn(&dyn Any, &mut Vec<u8>, usize) -> Result<Vec<Bytes>, binary::Error>;

type DecodeFn = fn(&[u8], &[Bytes], usize) -> Result<Box<dyn Any + Send + Sync>, binary::Error>;

/// A registered serde type, erased so dynamic values can reach it.
struct SerdeFns {
    encode: EncodeFn,
    decode: DecodeFn,
}

/// Everything registered for one type.
struct TypeEntry {
    name: String,
    rust_name: &'static str,
    custom: Option<CustomFns>,
    serde: Option<SerdeFns>,
}

/// One family on a serializer or deserializer list, resolved.
#[derive(Clone)]
enum Slot {
    Custom,
    Serde,
    User(String, Arc<dyn Family>),
}

impl Slot {
    fn name(&self) -> &str {
        match self {
            Slot::Custom => CUSTOM,
            Slot::Serde => SERDE,
            Slot::User(name, _) => name,
        }
    }
}

/// Which families may serialize (tried in order) and which may deserialize.
#[derive(Clone)]
struct Policy {
    serializers: Vec<Slot>,
    deserializers: Vec<Slot>,
}

/// Named serialization families, per-type registrations, and the lists of families allowed to
/// serialize and to deserialize.
///
/// - Any serde type works with no registration, through the built-in `serde` family.
/// - [`Registry::register`] (or [`Registry::register_custom`]) gives one type serializers of your
///   own, under a stable name, in the built-in `custom` family, which is tried first.
/// - [`Registry::register_type`] gives a serde type a stable name, so it can travel as a dynamic
///   value ([`Registry::serialize_dyn`]).
/// - [`Registry::add_family`] adds a whole family from another crate.
/// - On the way in, the type is checked by name: the registered name, or else
///   `std::any::type_name`. Deserialize into the type that was serialized (a `&str` is not a
///   `String`); the serde family's encoding is not self-describing, so reading one type as another
///   would give wrong values rather than an error.
/// - [`Registry::set_serializers`] and [`Registry::set_deserializers`] say which families may
///   serialize (tried in order; a family may decline) and which may deserialize. A message from a
///   family not on the deserializer list is refused, with no way around.
///
/// ```
/// use ferry_family::Registry;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, PartialEq, Debug)]
/// struct Point { x: f64, y: f64 }
///
/// let registry = Registry::new();
/// let message = registry.serialize(&Point { x: 1.0, y: 2.0 })?;
/// assert_eq!(registry.deserialize::<Point>(&message)?, Point { x: 1.0, y: 2.0 });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Registry {
    families: Vec<(String, Arc<dyn Family>)>,
    by_type: ByTypeId<Arc<TypeEntry>>,
    by_name: HashMap<String, (TypeId, Arc<TypeEntry>)>,
    policy: Policy,
    max_depth: usize,
    limits: Limits,
}

impl Default for Registry {
    fn default() -> Registry {
        Registry::new()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("families", &self.family_names())
            .field("types", &self.by_name.keys().collect::<Vec<_>>())
            .field("serializers", &self.serializers())
            .field("deserializers", &self.deserializers())
            .finish()
    }
}

impl Registry {
    /// A registry with the built-in families `custom` and `serde`, both allowed to serialize and
    /// to deserialize, in that order; values may nest up to
    /// [`binary::DEFAULT_MAX_DEPTH`] (256) deep.
    ///
    /// ```
    /// let registry = ferry_family::Registry::new();
    /// assert_eq!(registry.serializers(), ["custom", "serde"]);
    /// ```
    pub fn new() -> Registry {
        let both = vec![Slot::Custom, Slot::Serde];
        Registry {
            families: Vec::new(),
            by_type: ByTypeId::default(),
            by_name: HashMap::new(),
            policy: Policy {
                serializers: both.clone(),
                deserializers: both,
            },
            max_depth: binary::DEFAULT_MAX_DEPTH,
            limits: Limits::DEFAULT,
        }
    }

    /// Sets how deep values may nest, on encode and decode (default 256). Deeper values, and
    /// values that refer to themselves, are an error, never a stack overflow.
    ///
    /// ```
    /// let mut registry = ferry_family::Registry::new();
    /// registry.set_max_depth(2);
    /// assert!(registry.serialize(&vec![vec![vec![1u8]]]).is_err());
    /// ```
    pub fn set_max_depth(&mut self, depth: usize) {
        self.max_depth = depth;
    }

    /// Sets how much a deserialize may expand what it was sent (default [`Limits::DEFAULT`]):
    /// families see these in [`Loaded::limits`], and decoders inside a serde value through
    /// [`decode_limits`](crate::decode_limits).
    ///
    /// ```
    /// let mut limits = ferry_wire::Limits::default();
    /// limits.max_expanded_bytes = 64 << 20;
    /// let mut registry = ferry_family::Registry::new();
    /// registry.set_limits(limits);
    /// assert_eq!(registry.limits().max_expanded_bytes, 64 << 20);
    /// ```
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The limits set by [`Registry::set_limits`].
    ///
    /// ```
    /// assert_eq!(*ferry_family::Registry::new().limits(), ferry_wire::Limits::DEFAULT);
    /// ```
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Registers a serializer and a deserializer of your own for `T` under a stable `name`, in the
    /// `custom` family. They win over the serde family for `T` (while `custom` comes first on the
    /// serializer list, as it does by default). This is `dask_serialize.register`.
    ///
    /// ```
    /// use ferry_family::{Dumped, Registry};
    ///
    /// struct Human { name: String }
    ///
    /// let mut registry = Registry::new();
    /// registry.register::<Human, _, _>(
    ///     "myapp.Human",
    ///     |human, _context| Ok(Dumped::new(rmpv::Value::Nil, vec![human.name.clone().into_bytes().into()])),
    ///     |loaded, _context| Ok(Human { name: String::from_utf8(loaded.frames[0].to_vec())? }),
    /// )?;
    /// let message = registry.serialize_dyn(&Human { name: "Alice".into() })?;
    /// let back = registry.deserialize_dyn(&message)?;
    /// assert_eq!(back.downcast_ref::<Human>().unwrap().name, "Alice");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn register<T, S, D>(&mut self, name: &str, dumps: S, loads: D) -> Result<(), RegistryError>
    where
        T: Any + Send + Sync,
        S: Fn(&T, &Context) -> Result<Dumped, FamilyError> + Send + Sync + 'static,
        D: Fn(&Loaded<'_>, &Context) -> Result<T, FamilyError> + Send + Sync + 'static,
    {
        let custom = CustomFns {
            dumps: Box::new(move |value, context| {
                let value = value
                    .downcast_ref::<T>()
                    .expect("the registry looked the type up by its TypeId");
                dumps(value, context)
            }),
            loads: Box::new(move |loaded, context| {
                loads(loaded, context).map(|v| Box::new(v) as Box<dyn Any + Send + Sync>)
            }),
        };
        self.update::<T>(name, |entry| entry.custom = Some(custom))
    }

    /// Registers `T`'s own [`Custom`] implementation: the trait form of [`Registry::register`].
    ///
    /// ```
    /// use ferry_family::{Context, Custom, Dumped, FamilyError, Loaded, Registry};
    ///
    /// struct Celsius(f64);
    ///
    /// impl Custom for Celsius {
    ///     const NAME: &'static str = "weather.Celsius";
    ///     fn dumps(&self, _: &Context) -> Result<Dumped, FamilyError> {
    ///         Ok(Dumped::new(rmpv::Value::F64(self.0), vec![]))
    ///     }
    ///     fn loads(loaded: &Loaded<'_>, _: &Context) -> Result<Celsius, FamilyError> {
    ///         Ok(Celsius(loaded.meta.as_f64().ok_or("meta is not a float")?))
    ///     }
    /// }
    ///
    /// let mut registry = Registry::new();
    /// registry.register_custom::<Celsius>()?;
    /// let message = registry.serialize_dyn(&Celsius(21.5))?;
    /// let back = registry.deserialize_dyn(&message)?;
    /// assert_eq!(back.downcast_ref::<Celsius>().unwrap().0, 21.5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn register_custom<T: Custom>(&mut self) -> Result<(), RegistryError> {
        self.register::<T, _, _>(
            T::NAME,
            |value, context| value.dumps(context),
            |loaded, context| T::loads(loaded, context),
        )
    }

    /// Gives the serde type `T` a stable name, so that it can be sent as a dynamic value and is
    /// checked by that name on the way in (instead of by `std::any::type_name`, which may differ
    /// between builds).
    ///
    /// ```
    /// use std::any::Any;
    /// let mut registry = ferry_family::Registry::new();
    /// registry.register_type::<Vec<String>>("app.Names")?;
    /// let names: Box<dyn Any + Send + Sync> = Box::new(vec!["a".to_string()]);
    /// let message = registry.serialize_dyn(&*names)?;
    /// let back = registry.deserialize_dyn(&message)?;
    /// assert_eq!(back.downcast_ref::<Vec<String>>().unwrap(), &["a"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn register_type<T>(&mut self, name: &str) -> Result<(), RegistryError>
    where
        T: Serialize + DeserializeOwned + Any + Send + Sync,
    {
        let fns = SerdeFns {
            encode: |value, out, depth| {
                let value = value
                    .downcast_ref::<T>()
                    .expect("the registry looked the type up by its TypeId");
                binary::to_writer(value, out, depth)
            },
            decode: |body, buffers, depth| {
                binary::from_slice::<T>(body, buffers, depth)
                    .map(|v| Box::new(v) as Box<dyn Any + Send + Sync>)
            },
        };
        self.update::<T>(name, |entry| entry.serde = Some(fns))
    }

    fn update<T: Any>(
        &mut self,
        name: &str,
        change: impl FnOnce(&mut TypeEntry),
    ) -> Result<(), RegistryError> {
        let id = TypeId::of::<T>();
        let rust_name = std::any::type_name::<T>();
        if let Some((existing_id, entry)) = self.by_name.get(name)
            && *existing_id != id
        {
            return Err(RegistryError::DuplicateName {
                name: name.to_string(),
                existing: entry.rust_name.to_string(),
            });
        }
        let mut entry = match self.by_type.remove(&id) {
            Some(entry) if entry.name != name => {
                let existing = entry.name.clone();
                self.by_type.insert(id, entry);
                return Err(RegistryError::Renamed {
                    type_name: rust_name.to_string(),
                    existing,
                });
            }
            Some(entry) => {
                self.by_name.remove(name);
                Arc::try_unwrap(entry).unwrap_or_else(|_| {
                    unreachable!("entries are shared only between the two maps")
                })
            }
            None => TypeEntry {
                name: name.to_string(),
                rust_name,
                custom: None,
                serde: None,
            },
        };
        change(&mut entry);
        let entry = Arc::new(entry);
        self.by_type.insert(id, entry.clone());
        self.by_name.insert(name.to_string(), (id, entry));
        Ok(())
    }

    /// Adds a family under `name`. It serializes or deserializes only once it is put on the
    /// serializer or deserializer list.
    ///
    /// ```
    /// # use ferry_family::*;
    /// # struct Nothing;
    /// # impl Family for Nothing {
    /// #     fn dumps(&self, _: &Object<'_>, _: &Context) -> Result<Option<Dumped>, FamilyError> { Ok(None) }
    /// #     fn loads(&self, _: &Loaded<'_>, _: &Context) -> Result<Box<dyn std::any::Any + Send + Sync>, FamilyError> { Err("never".into()) }
    /// # }
    /// let mut registry = Registry::new();
    /// registry.add_family("nothing", Nothing)?;
    /// assert_eq!(registry.family_names(), ["custom", "serde", "nothing"]);
    /// assert!(registry.add_family("serde", Nothing).is_err());
    /// # Ok::<(), ferry_family::RegistryError>(())
    /// ```
    pub fn add_family(&mut self, name: &str, family: impl Family) -> Result<(), RegistryError> {
        if self.family_names().iter().any(|n| n == name) {
            return Err(RegistryError::DuplicateFamily(name.to_string()));
        }
        self.families.push((name.to_string(), Arc::new(family)));
        Ok(())
    }

    /// The names of every family this registry has: `custom`, `serde`, then those added.
    ///
    /// ```
    /// assert_eq!(ferry_family::Registry::new().family_names(), ["custom", "serde"]);
    /// ```
    pub fn family_names(&self) -> Vec<String> {
        [CUSTOM, SERDE]
            .into_iter()
            .map(String::from)
            .chain(self.families.iter().map(|(n, _)| n.clone()))
            .collect()
    }

    /// Sets the families that may serialize, tried in this order (`serializers=` in Dask).
    ///
    /// ```
    /// let mut registry = ferry_family::Registry::new();
    /// registry.set_serializers(["serde"])?; // ignore per-type serializers
    /// assert_eq!(registry.serializers(), ["serde"]);
    /// # Ok::<(), ferry_family::RegistryError>(())
    /// ```
    pub fn set_serializers<I, S>(&mut self, names: I) -> Result<(), RegistryError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.policy.serializers = self.resolve(names)?;
        Ok(())
    }

    /// Sets the families whose messages may be deserialized (`deserializers=` in Dask).
    ///
    /// ```
    /// let mut registry = ferry_family::Registry::new();
    /// registry.set_deserializers(["serde"])?;
    /// assert_eq!(registry.deserializers(), ["serde"]);
    /// # Ok::<(), ferry_family::RegistryError>(())
    /// ```
    pub fn set_deserializers<I, S>(&mut self, names: I) -> Result<(), RegistryError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.policy.deserializers = self.resolve(names)?;
        Ok(())
    }

    /// The families that may serialize, in order.
    ///
    /// ```
    /// assert_eq!(ferry_family::Registry::new().serializers()[0], "custom");
    /// ```
    pub fn serializers(&self) -> Vec<String> {
        self.policy
            .serializers
            .iter()
            .map(|s| s.name().to_string())
            .collect()
    }

    /// The families whose messages may be deserialized.
    ///
    /// ```
    /// assert_eq!(ferry_family::Registry::new().deserializers(), ["custom", "serde"]);
    /// ```
    pub fn deserializers(&self) -> Vec<String> {
        self.policy
            .deserializers
            .iter()
            .map(|s| s.name().to_string())
            .collect()
    }

    fn resolve<I, S>(&self, names: I) -> Result<Vec<Slot>, RegistryError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        names
            .into_iter()
            .map(|name| {
                let name = name.as_ref();
                match name {
                    CUSTOM => Ok(Slot::Custom),
                    SERDE => Ok(Slot::Serde),
                    _ => self
                        .families
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(n, f)| Slot::User(n.clone(), f.clone()))
                        .ok_or_else(|| RegistryError::UnknownFamily {
                            name: name.to_string(),
                            known: self.family_names(),
                        }),
                }
            })
            .collect()
    }

    /// This registry seen from one connection: with that connection's [`Context`], and lists
    /// that start as the registry's and may be narrowed for the connection.
    ///
    /// ```
    /// use ferry_family::{Context, Registry};
    /// let registry = Registry::new();
    /// let session = registry.session(Context::new().recipient("tcp://10.0.0.2:1234"));
    /// let message = session.serialize(&"hi".to_string())?;
    /// assert_eq!(session.deserialize::<String>(&message)?, "hi");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn session(&self, context: Context) -> Session<'_> {
        Session {
            registry: self,
            context: Cow::Owned(context),
            policy: Cow::Borrowed(&self.policy),
        }
    }

    fn local(&self) -> Scope<'_> {
        static EMPTY: Context = Context {
            sender: None,
            recipient: None,
            shares_memory: false,
        };
        Scope {
            registry: self,
            context: &EMPTY,
            policy: &self.policy,
        }
    }

    /// Serializes any serde value, with no registration needed: the families on the serializer
    /// list are tried in order. No connection: the [`Context`] is empty.
    ///
    /// ```
    /// let message = ferry_family::Registry::new().serialize(&vec![1u32, 2, 3])?;
    /// assert!(message.frames.is_empty()); // a small body travels in the header
    /// # Ok::<(), ferry_family::SerializeError>(())
    /// ```
    pub fn serialize<T: Serialize + Any>(&self, value: &T) -> Result<Message, SerializeError> {
        self.local().serialize(value)
    }

    /// Deserializes a message into `T`, if its family is on the deserializer list and it holds a
    /// `T`.
    ///
    /// ```
    /// let registry = ferry_family::Registry::new();
    /// let message = registry.serialize(&(1u8, "one".to_string()))?;
    /// assert_eq!(registry.deserialize::<(u8, String)>(&message)?, (1, "one".to_string()));
    /// assert!(registry.deserialize::<u64>(&message).is_err()); // not what it holds
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn deserialize<T: DeserializeOwned + Any>(
        &self,
        message: &Message,
    ) -> Result<T, DeserializeError> {
        self.local().deserialize(message)
    }

    /// Serializes a value whose type is known only at run time; it must be registered (or taken
    /// by a family on the list).
    ///
    /// ```
    /// let mut registry = ferry_family::Registry::new();
    /// registry.register_type::<u64>("u64")?;
    /// let value: Box<dyn std::any::Any + Send + Sync> = Box::new(7u64);
    /// let message = registry.serialize_dyn(&*value)?;
    /// assert_eq!(registry.deserialize_dyn(&message)?.downcast_ref::<u64>(), Some(&7));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn serialize_dyn(&self, value: &dyn Any) -> Result<Message, SerializeError> {
        self.local().serialize_dyn(value)
    }

    /// Deserializes a message into the type its header names, found among the registered types.
    ///
    /// ```
    /// let sender = {
    ///     let mut r = ferry_family::Registry::new();
    ///     r.register_type::<String>("text")?;
    ///     r
    /// };
    /// let message = sender.serialize_dyn(&"hello".to_string())?;
    /// let receiver = ferry_family::Registry::new(); // never heard of "text"
    /// let err = receiver.deserialize_dyn(&message).unwrap_err();
    /// assert_eq!(err.to_string(), "unknown type `text` (register it on this side)");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn deserialize_dyn(
        &self,
        message: &Message,
    ) -> Result<Box<dyn Any + Send + Sync>, DeserializeError> {
        self.local().deserialize_dyn(message)
    }
}

/// Implemented by a type that serializes itself in the `custom` family; register it with
/// [`Registry::register_custom`]. The trait form of [`Registry::register`].
pub trait Custom: Any + Send + Sync + Sized {
    /// The stable name messages carry for this type.
    const NAME: &'static str;
    /// Turns the value into metadata and frames.
    fn dumps(&self, context: &Context) -> Result<Dumped, FamilyError>;
    /// Rebuilds the value.
    fn loads(loaded: &Loaded<'_>, context: &Context) -> Result<Self, FamilyError>;
}

/// A [`Registry`] seen from one connection: its [`Context`] reaches every family, and its lists
/// of families may be narrower than the registry's.
///
/// ```
/// use ferry_family::{Context, Registry};
/// let registry = Registry::new();
/// let untrusted = registry.session(Context::new()).with_deserializers(["custom"])?;
/// let message = registry.serialize(&1u8)?;
/// assert!(untrusted.deserialize::<u8>(&message).is_err()); // serde is not accepted here
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Session<'r> {
    registry: &'r Registry,
    context: Cow<'r, Context>,
    policy: Cow<'r, Policy>,
}

thread_local! {
    /// A warm buffer that small values are encoded into; the finished header is copied out of it
    /// at its exact size. Const-initialized: every serialize touches it.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Scratch bodies larger than this are not kept for the next value.
const SCRATCH_KEEP: usize = 1 << 20;

impl<'r> Session<'r> {
    /// The context families see in this session.
    ///
    /// ```
    /// let registry = ferry_family::Registry::new();
    /// let session = registry.session(ferry_family::Context::new().shares_memory(true));
    /// assert!(session.context().shares_memory);
    /// ```
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// Narrows (or reorders) the families that may serialize in this session.
    ///
    /// ```
    /// let registry = ferry_family::Registry::new();
    /// let session = registry.session(Default::default()).with_serializers(["serde"])?;
    /// assert!(session.serialize(&1u8).is_ok());
    /// # Ok::<(), ferry_family::RegistryError>(())
    /// ```
    pub fn with_serializers<I, S>(mut self, names: I) -> Result<Session<'r>, RegistryError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.policy.to_mut().serializers = self.registry.resolve(names)?;
        Ok(self)
    }

    /// Narrows (or widens) the families whose messages this session deserializes.
    ///
    /// ```
    /// let registry = ferry_family::Registry::new();
    /// let session = registry.session(Default::default()).with_deserializers(["serde"])?;
    /// assert!(session.deserialize::<u8>(&registry.serialize(&1u8)?).is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_deserializers<I, S>(mut self, names: I) -> Result<Session<'r>, RegistryError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.policy.to_mut().deserializers = self.registry.resolve(names)?;
        Ok(self)
    }

    /// [`Registry::serialize`], in this session.
    ///
    /// ```
    /// let registry = ferry_family::Registry::new();
    /// let message = registry.session(Default::default()).serialize(&"x")?;
    /// # let _ = message;
    /// # Ok::<(), ferry_family::SerializeError>(())
    /// ```
    pub fn serialize<T: Serialize + Any>(&self, value: &T) -> Result<Message, SerializeError> {
        self.scope().serialize(value)
    }

    /// [`Registry::serialize_dyn`], in this session.
    ///
    /// ```
    /// let mut registry = ferry_family::Registry::new();
    /// registry.register_type::<i32>("i32")?;
    /// let message = registry.session(Default::default()).serialize_dyn(&5i32)?;
    /// # let _ = message;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn serialize_dyn(&self, value: &dyn Any) -> Result<Message, SerializeError> {
        self.scope().serialize_dyn(value)
    }

    /// [`Registry::deserialize`], in this session.
    ///
    /// ```
    /// let registry = ferry_family::Registry::new();
    /// let session = registry.session(Default::default());
    /// let message = session.serialize(&[1.5f32, 2.5])?;
    /// assert_eq!(session.deserialize::<[f32; 2]>(&message)?, [1.5, 2.5]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn deserialize<T: DeserializeOwned + Any>(
        &self,
        message: &Message,
    ) -> Result<T, DeserializeError> {
        self.scope().deserialize(message)
    }

    /// [`Registry::deserialize_dyn`], in this session.
    ///
    /// ```
    /// let mut registry = ferry_family::Registry::new();
    /// registry.register_type::<bool>("bool")?;
    /// let session = registry.session(Default::default());
    /// let value = session.deserialize_dyn(&session.serialize_dyn(&true)?)?;
    /// assert_eq!(value.downcast_ref::<bool>(), Some(&true));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn deserialize_dyn(
        &self,
        message: &Message,
    ) -> Result<Box<dyn Any + Send + Sync>, DeserializeError> {
        self.scope().deserialize_dyn(message)
    }

    fn scope(&self) -> Scope<'_> {
        Scope {
            registry: self.registry,
            context: &self.context,
            policy: &self.policy,
        }
    }
}

/// The registry, context and lists that one serialize or deserialize works with: borrowed, so
/// the registry's own methods pay for no session.
#[derive(Clone, Copy)]
struct Scope<'a> {
    registry: &'a Registry,
    context: &'a Context,
    policy: &'a Policy,
}

impl<'a> Scope<'a> {
    fn serialize<T: Serialize + Any>(&self, value: &T) -> Result<Message, SerializeError> {
        let entry = self.registry.by_type.get(&TypeId::of::<T>()).map(|e| &**e);
        let type_name = entry.map_or(std::any::type_name::<T>(), |e| e.name.as_str());
        let serde = |out: &mut Vec<u8>, depth| binary::to_writer(value, out, depth);
        self.dumps(value, entry, type_name, Some(&serde))?
            .ok_or_else(|| SerializeError::NoFamily {
                type_name: type_name.to_string(),
                tried: self.tried(),
            })
    }

    fn serialize_dyn(&self, value: &dyn Any) -> Result<Message, SerializeError> {
        let entry = self.registry.by_type.get(&value.type_id()).map(|e| &**e);
        let type_name = entry.map_or("<unregistered>", |e| e.name.as_str());
        // Only a registered serde type can be encoded from behind `dyn Any`.
        let serde = entry
            .and_then(|e| e.serde.as_ref())
            .map(|fns| move |out: &mut Vec<u8>, depth| (fns.encode)(value, out, depth));
        let message = self.dumps(value, entry, type_name, serde)?;
        message.ok_or_else(|| match entry {
            Some(_) => SerializeError::NoFamily {
                type_name: type_name.to_string(),
                tried: self.tried(),
            },
            None => SerializeError::Unregistered {
                tried: self.tried(),
            },
        })
    }

    /// Tries the serializer list in order: `custom` if the type has a serializer of its own, `serde`
    /// if the value can be encoded (`serde` is `None` for an unregistered dynamic value), and each
    /// added family, which may decline. `None` when no family took the value.
    #[inline]
    fn dumps<E>(
        &self,
        value: &dyn Any,
        entry: Option<&TypeEntry>,
        type_name: &str,
        serde: Option<E>,
    ) -> Result<Option<Message>, SerializeError>
    where
        E: FnOnce(&mut Vec<u8>, usize) -> Result<Vec<Bytes>, binary::Error>,
    {
        let mut serde = serde;
        for slot in &self.policy.serializers {
            match slot {
                Slot::Custom => {
                    if let Some(custom) = entry.and_then(|e| e.custom.as_ref()) {
                        return self.custom_dumps(custom, value, type_name).map(Some);
                    }
                }
                Slot::Serde => {
                    if let Some(encode) = serde.take() {
                        return serde_message(type_name, self.registry.max_depth, encode).map(Some);
                    }
                }
                Slot::User(name, family) => {
                    if let Some(message) = self.user_dumps(name, family, value, type_name)? {
                        return Ok(Some(message));
                    }
                }
            }
        }
        Ok(None)
    }

    fn tried(&self) -> Vec<String> {
        self.policy
            .serializers
            .iter()
            .map(|s| s.name().to_string())
            .collect()
    }

    fn custom_dumps(
        &self,
        custom: &CustomFns,
        value: &dyn Any,
        type_name: &str,
    ) -> Result<Message, SerializeError> {
        let dumped =
            (custom.dumps)(value, self.context).map_err(|source| SerializeError::Family {
                family: CUSTOM.to_string(),
                type_name: type_name.to_string(),
                source,
            })?;
        Ok(family_message(CUSTOM, type_name, dumped))
    }

    fn user_dumps(
        &self,
        name: &str,
        family: &Arc<dyn Family>,
        value: &dyn Any,
        type_name: &str,
    ) -> Result<Option<Message>, SerializeError> {
        let object = Object { value, type_name };
        match family.dumps(&object, self.context) {
            Ok(Some(dumped)) => Ok(Some(family_message(name, type_name, dumped))),
            Ok(None) => Ok(None),
            Err(source) => Err(SerializeError::Family {
                family: name.to_string(),
                type_name: type_name.to_string(),
                source,
            }),
        }
    }

    /// Encodes a body (and its buffers) with the serde family, inline in the header when small.
    fn deserialize<T: DeserializeOwned + Any>(
        &self,
        message: &Message,
    ) -> Result<T, DeserializeError> {
        let parsed = header::parse(message.header.as_bytes())?;
        let slot = self.accepted(parsed.family)?;
        let entry = self.registry.by_type.get(&TypeId::of::<T>());
        let expected = entry.map_or(std::any::type_name::<T>(), |e| e.name.as_str());
        let mismatch = || DeserializeError::TypeMismatch {
            expected: expected.to_string(),
            found: header::lossy(parsed.type_name),
        };
        match slot {
            Slot::Serde => {
                if parsed.type_name != expected.as_bytes() {
                    return Err(mismatch());
                }
                let (body, buffers) = serde_parts(&parsed, &message.frames)?;
                limits::with_limits(&self.registry.limits, || {
                    binary::from_slice::<T>(body, buffers, self.registry.max_depth)
                })
                .map_err(|source| DeserializeError::Body {
                    type_name: expected.to_string(),
                    source,
                })
            }
            Slot::Custom | Slot::User(..) => {
                let value = self.loads(slot, &parsed, &message.frames)?;
                value.downcast::<T>().map(|b| *b).map_err(|_| mismatch())
            }
        }
    }

    fn deserialize_dyn(
        &self,
        message: &Message,
    ) -> Result<Box<dyn Any + Send + Sync>, DeserializeError> {
        let parsed = header::parse(message.header.as_bytes())?;
        let slot = self.accepted(parsed.family)?;
        match slot {
            Slot::Serde => {
                let type_name = header::type_str(&parsed)?;
                let fns = self.entry(type_name)?.serde.as_ref().ok_or_else(|| {
                    DeserializeError::UnknownType {
                        name: type_name.to_string(),
                    }
                })?;
                let (body, buffers) = serde_parts(&parsed, &message.frames)?;
                limits::with_limits(&self.registry.limits, || {
                    (fns.decode)(body, buffers, self.registry.max_depth)
                })
                .map_err(|source| DeserializeError::Body {
                    type_name: type_name.to_string(),
                    source,
                })
            }
            Slot::Custom | Slot::User(..) => self.loads(slot, &parsed, &message.frames),
        }
    }

    fn entry(&self, name: &str) -> Result<&'a TypeEntry, DeserializeError> {
        self.registry
            .by_name
            .get(name)
            .map(|(_, e)| &**e)
            .ok_or_else(|| DeserializeError::UnknownType {
                name: name.to_string(),
            })
    }

    /// The deserializer slot for `family`, if this session accepts it. Every way in passes here.
    fn accepted(&self, family: &[u8]) -> Result<&'a Slot, DeserializeError> {
        if let Some(slot) = self
            .policy
            .deserializers
            .iter()
            .find(|s| s.name().as_bytes() == family)
        {
            return Ok(slot);
        }
        let family = header::lossy(family);
        let accepted = self
            .policy
            .deserializers
            .iter()
            .map(|s| s.name().to_string())
            .collect();
        if self.registry.family_names().contains(&family) {
            Err(DeserializeError::NotAccepted { family, accepted })
        } else {
            Err(DeserializeError::UnknownFamily { family, accepted })
        }
    }

    /// Runs a `custom` or user family's `loads`.
    fn loads(
        &self,
        slot: &Slot,
        parsed: &header::Parsed<'_>,
        frames: &[Frame],
    ) -> Result<Box<dyn Any + Send + Sync>, DeserializeError> {
        let meta = match parsed.meta {
            Some(mut raw) => {
                rmpv::decode::read_value(&mut raw).map_err(|_| DeserializeError::WrongType {
                    key: "meta",
                    expected: "one MessagePack value",
                })?
            }
            None => return Err(DeserializeError::MissingKey { key: "meta" }),
        };
        let type_name = header::type_str(parsed)?;
        let loaded = Loaded {
            type_name,
            meta: &meta,
            frames,
            limits: &self.registry.limits,
        };
        let family = slot.name();
        let wrap = |source| DeserializeError::Family {
            family: family.to_string(),
            type_name: type_name.to_string(),
            source,
        };
        match slot {
            Slot::Custom => {
                let custom = self.entry(type_name)?.custom.as_ref().ok_or_else(|| {
                    DeserializeError::UnknownType {
                        name: type_name.to_string(),
                    }
                })?;
                limits::with_limits(loaded.limits, || (custom.loads)(&loaded, self.context))
                    .map_err(wrap)
            }
            Slot::User(_, user) => {
                limits::with_limits(loaded.limits, || user.loads(&loaded, self.context))
                    .map_err(wrap)
            }
            Slot::Serde => unreachable!("the serde family has no meta"),
        }
    }
}

/// Encodes a body (and its buffers) with the serde family, inline in the header when small.
///
/// One function from the scratch buffer to the finished message: the result is built once and
/// returned once, with no layers of closures passing it along.
#[inline]
fn serde_message<E>(type_name: &str, max_depth: usize, encode: E) -> Result<Message, SerializeError>
where
    E: FnOnce(&mut Vec<u8>, usize) -> Result<Vec<Bytes>, binary::Error>,
{
    // Taken, not borrowed: a value that serializes another inside its own `Serialize` finds an
    // empty scratch, not a busy one.
    let mut out = SCRATCH.with(RefCell::take);
    out.clear();
    header::write_serde_prefix(&mut out, type_name);
    let marker = out.len();
    out.extend_from_slice(&[0xc6, 0, 0, 0, 0]); // bin 32, length patched below
    let body_start = out.len();
    let buffers = match encode(&mut out, max_depth) {
        Ok(buffers) => buffers,
        Err(source) => {
            return Err(SerializeError::Body {
                type_name: type_name.to_string(),
                source,
            });
        }
    };
    let body_len = out.len() - body_start;
    if body_len <= header::INLINE_BODY_MAX {
        out[marker + 1..body_start].copy_from_slice(&(body_len as u32).to_be_bytes());
        header::write_buffers(&mut out, buffers.len());
        let header = Header::from_msgpack_unchecked(Bytes::from(Box::<[u8]>::from(&out[..])));
        if out.capacity() <= SCRATCH_KEEP {
            SCRATCH.with(|cell| cell.replace(out));
        }
        return Ok(Message::new(header, buffers));
    }
    // A large body becomes frame 0 as it is, without a copy.
    let body = Bytes::from(out).slice(body_start..);
    let mut head = Vec::with_capacity(64 + type_name.len());
    header::write_serde_prefix(&mut head, type_name);
    head.push(0xc0); // nil: the body is frame 0
    header::write_buffers(&mut head, buffers.len());
    let mut frames = Vec::with_capacity(1 + buffers.len());
    frames.push(body);
    frames.extend(buffers);
    Ok(Message::new(
        Header::from_msgpack_unchecked(head.into()),
        frames,
    ))
}

/// The serde family's body and buffer frames, after checking the frame count.
fn serde_parts<'m>(
    parsed: &header::Parsed<'m>,
    frames: &'m [Frame],
) -> Result<(&'m [u8], &'m [Frame]), DeserializeError> {
    let body = parsed
        .body
        .ok_or_else(|| DeserializeError::MissingKey { key: "body" })?;
    let buffers = parsed
        .buffers
        .ok_or_else(|| DeserializeError::MissingKey { key: "buffers" })?;
    let body_frames = u64::from(body == Body::Frame);
    let expected = buffers.saturating_add(body_frames);
    if expected != frames.len() as u64 {
        return Err(DeserializeError::FrameCount {
            family: SERDE.to_string(),
            expected,
            found: frames.len(),
        });
    }
    Ok(match body {
        Body::Inline(body) => (body, frames),
        Body::Frame => (&frames[0][..], &frames[1..]),
    })
}

/// A message from a family other than serde.
fn family_message(family: &str, type_name: &str, dumped: Dumped) -> Message {
    let mut head = Vec::with_capacity(64);
    header::write_family_header(&mut head, family, type_name, &dumped.meta);
    Message::new(Header::from_msgpack_unchecked(head.into()), dumped.frames)
}
