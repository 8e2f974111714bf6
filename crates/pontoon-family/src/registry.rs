//! [`Registry`]: named families, per-type registrations and allow-lists; [`Session`]: a registry
//! seen from one connection, with its own [`Context`] and lists.

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use bytes::Bytes;
use pontoon_wire::{Limits, Message};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::metrics::{CUSTOM_TIMERS, SERDE_TIMERS, Timers};
use crate::session::{Scope, Session};
use crate::{
    Context, DeserializeError, Dumped, Family, FamilyError, Loaded, RegistryError, SerializeError,
    TypeName, binary,
};

/// The built-in family of per-type serializers that users register.
pub const CUSTOM: &str = "custom";
/// The built-in family that serializes any serde type, with buffers out of band.
pub const SERDE: &str = "serde";

/// `TypeId`s are hashes already; hashing them again is wasted work on every serialize.
#[derive(Default)]
pub(crate) struct TypeIdHasher(u64);

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

pub(crate) type ByTypeId<V> = HashMap<TypeId, V, BuildHasherDefault<TypeIdHasher>>;

type DumpsFn = dyn Fn(&dyn Any, &Context) -> Result<Dumped, FamilyError> + Send + Sync;
type LoadsFn =
    dyn Fn(&Loaded<'_>, &Context) -> Result<Box<dyn Any + Send + Sync>, FamilyError> + Send + Sync;

/// A type's user-supplied serializer and deserializer (the `custom` family).
pub(crate) struct CustomFns {
    pub(crate) dumps: Box<DumpsFn>,
    pub(crate) loads: Box<LoadsFn>,
}

type EncodeFn = fn(&dyn Any, &mut Vec<u8>, usize) -> Result<Vec<Bytes>, binary::Error>;

type DecodeFn = fn(&[u8], &[Bytes], usize) -> Result<Box<dyn Any + Send + Sync>, binary::Error>;

/// A registered serde type, erased so dynamic values can reach it.
pub(crate) struct SerdeFns {
    pub(crate) encode: EncodeFn,
    pub(crate) decode: DecodeFn,
}

/// Everything registered for one type.
pub(crate) struct TypeEntry {
    pub(crate) name: String,
    pub(crate) rust_name: &'static str,
    pub(crate) custom: Option<CustomFns>,
    pub(crate) serde: Option<SerdeFns>,
}

/// One family on a serializer or deserializer list, resolved.
#[derive(Clone)]
pub(crate) enum Slot {
    Custom,
    Serde,
    User(String, Arc<dyn Family>),
}

impl Slot {
    pub(crate) fn name(&self) -> &str {
        match self {
            Slot::Custom => CUSTOM,
            Slot::Serde => SERDE,
            Slot::User(name, _) => name,
        }
    }
}

/// Which families may serialize (tried in order) and which may deserialize.
#[derive(Clone)]
pub(crate) struct Policy {
    pub(crate) serializers: Vec<Slot>,
    pub(crate) deserializers: Vec<Slot>,
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
/// - On the way in, the type is checked by name: the registered name, or else the Rust name
///   (`std::any::type_name`) with its paths taken out, so that a type may move module and two
///   builds of a program still read each other (the rule is in `docs/family-format.md`).
///   Deserialize into the type that was serialized (a `&str` is not a `String`); the serde
///   family's encoding is not self-describing, so reading one type as another would give wrong
///   values rather than an error. Give a type a stable name ([`TypeName`],
///   [`Registry::register_named`]) for anything that must outlive the build, such as a file.
/// - [`Registry::set_serializers`] and [`Registry::set_deserializers`] say which families may
///   serialize (tried in order; a family may decline) and which may deserialize. A message from a
///   family not on the deserializer list is refused, with no way around.
///
/// ```
/// use pontoon_family::Registry;
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
    families: Vec<(String, Arc<dyn Family>, Arc<Timers>)>,
    pub(crate) by_type: ByTypeId<Arc<TypeEntry>>,
    pub(crate) by_name: HashMap<String, (TypeId, Arc<TypeEntry>)>,
    pub(crate) policy: Policy,
    pub(crate) max_depth: usize,
    pub(crate) limits: Limits,
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
    /// let registry = pontoon_family::Registry::new();
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
    /// let mut registry = pontoon_family::Registry::new();
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
    /// let mut limits = pontoon_wire::Limits::default();
    /// limits.max_expanded_bytes = 64 << 20;
    /// let mut registry = pontoon_family::Registry::new();
    /// registry.set_limits(limits);
    /// assert_eq!(registry.limits().max_expanded_bytes, 64 << 20);
    /// ```
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The limits set by [`Registry::set_limits`].
    ///
    /// ```
    /// assert_eq!(*pontoon_family::Registry::new().limits(), pontoon_wire::Limits::DEFAULT);
    /// ```
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Registers a serializer and a deserializer of your own for `T` under a stable `name`, in the
    /// `custom` family. They win over the serde family for `T` (while `custom` comes first on the
    /// serializer list, as it does by default). This is `dask_serialize.register`.
    ///
    /// ```
    /// use pontoon_family::{Dumped, Registry};
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
    /// use pontoon_family::{Context, Custom, Dumped, FamilyError, Loaded, Registry, TypeName};
    ///
    /// struct Celsius(f64);
    ///
    /// impl TypeName for Celsius {
    ///     const NAME: &'static str = "weather.Celsius";
    /// }
    ///
    /// impl Custom for Celsius {
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

    /// Gives the serde type `T` a stable name, so that it can be sent as a dynamic value, can be
    /// written to disk, and is checked by that name on the way in (instead of by its Rust name,
    /// which may differ between builds; see [`TypeName`] to declare the name with the type).
    ///
    /// ```
    /// use std::any::Any;
    /// let mut registry = pontoon_family::Registry::new();
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

    /// Registers the serde type `T` under the stable name it declares ([`TypeName::NAME`]):
    /// [`Registry::register_type`] with the name kept next to the type.
    ///
    /// ```
    /// use pontoon_family::{Registry, TypeName};
    ///
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Tick(u64);
    /// impl TypeName for Tick {
    ///     const NAME: &'static str = "clock.Tick";
    /// }
    ///
    /// let mut registry = Registry::new();
    /// registry.register_named::<Tick>()?;
    /// let back = registry.deserialize_dyn(&registry.serialize_dyn(&Tick(3))?)?;
    /// assert_eq!(back.downcast_ref::<Tick>().map(|t| t.0), Some(3));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn register_named<T>(&mut self) -> Result<(), RegistryError>
    where
        T: TypeName + Serialize + DeserializeOwned + Any + Send + Sync,
    {
        self.register_type::<T>(T::NAME)
    }

    /// The stable name `T` is registered under (by [`Registry::register_type`],
    /// [`Registry::register_named`], [`Registry::register`] or [`Registry::register_custom`]),
    /// or `None`: then its messages carry its Rust name, fine between the processes of one build
    /// but not for anything that must outlive it, such as a file.
    ///
    /// ```
    /// let mut registry = pontoon_family::Registry::new();
    /// assert_eq!(registry.stable_name::<u64>(), None);
    /// registry.register_type::<u64>("app.Count")?;
    /// assert_eq!(registry.stable_name::<u64>(), Some("app.Count"));
    /// # Ok::<(), pontoon_family::RegistryError>(())
    /// ```
    pub fn stable_name<T: Any>(&self) -> Option<&str> {
        self.by_type
            .get(&TypeId::of::<T>())
            .map(|entry| entry.name.as_str())
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

    /// Adds a family, under its [`name`](Family::name). It serializes or deserializes only once
    /// it is put on the serializer or deserializer list.
    ///
    /// ```
    /// # use pontoon_family::*;
    /// # use std::any::{Any, TypeId};
    /// # struct Nothing(&'static str);
    /// # impl Family for Nothing {
    /// #     fn name(&self) -> &str { self.0 }
    /// #     fn dumps(&self, _: &Object<'_>, _: &Context) -> Result<Option<Dumped>, FamilyError> { Ok(None) }
    /// #     fn produces(&self, _: &str, _: TypeId) -> bool { false }
    /// #     fn loads(&self, _: &Loaded<'_>, _: &Context) -> Result<Box<dyn Any + Send + Sync>, FamilyError> { Err("never".into()) }
    /// # }
    /// let mut registry = Registry::new();
    /// registry.add_family(Nothing("nothing"))?;
    /// assert_eq!(registry.family_names(), ["custom", "serde", "nothing"]);
    /// assert!(registry.add_family(Nothing("serde")).is_err());
    /// assert!(registry.add_family(Nothing("nothing")).is_err());
    /// # Ok::<(), pontoon_family::RegistryError>(())
    /// ```
    pub fn add_family(&mut self, family: impl Family) -> Result<(), RegistryError> {
        let name = family.name().to_string();
        if self.family_names().contains(&name) {
            return Err(RegistryError::DuplicateFamily(name));
        }
        let timers = Arc::new(Timers::new(name.clone().into()));
        self.families.push((name, Arc::new(family), timers));
        Ok(())
    }

    /// The names of every family this registry has: `custom`, `serde`, then those added.
    ///
    /// ```
    /// assert_eq!(pontoon_family::Registry::new().family_names(), ["custom", "serde"]);
    /// ```
    pub fn family_names(&self) -> Vec<String> {
        [CUSTOM, SERDE]
            .into_iter()
            .map(String::from)
            .chain(self.families.iter().map(|(n, ..)| n.clone()))
            .collect()
    }

    /// Sets the families that may serialize, tried in this order (`serializers=` in Dask).
    ///
    /// ```
    /// let mut registry = pontoon_family::Registry::new();
    /// registry.set_serializers(["serde"])?; // ignore per-type serializers
    /// assert_eq!(registry.serializers(), ["serde"]);
    /// # Ok::<(), pontoon_family::RegistryError>(())
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
    /// let mut registry = pontoon_family::Registry::new();
    /// registry.set_deserializers(["serde"])?;
    /// assert_eq!(registry.deserializers(), ["serde"]);
    /// # Ok::<(), pontoon_family::RegistryError>(())
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
    /// assert_eq!(pontoon_family::Registry::new().serializers()[0], "custom");
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
    /// assert_eq!(pontoon_family::Registry::new().deserializers(), ["custom", "serde"]);
    /// ```
    pub fn deserializers(&self) -> Vec<String> {
        self.policy
            .deserializers
            .iter()
            .map(|s| s.name().to_string())
            .collect()
    }

    pub(crate) fn resolve<I, S>(&self, names: I) -> Result<Vec<Slot>, RegistryError>
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
                        .find(|(n, ..)| n == name)
                        .map(|(n, f, _)| Slot::User(n.clone(), f.clone()))
                        .ok_or_else(|| RegistryError::UnknownFamily {
                            name: name.to_string(),
                            known: self.family_names(),
                        }),
                }
            })
            .collect()
    }

    /// The serialize and deserialize timers of the family named `family`, if this registry has it.
    pub(crate) fn timers(&self, family: &str) -> Option<&Timers> {
        match family {
            CUSTOM => Some(&CUSTOM_TIMERS),
            SERDE => Some(&SERDE_TIMERS),
            _ => self
                .families
                .iter()
                .find(|(name, ..)| name == family)
                .map(|(.., timers)| &**timers),
        }
    }

    /// This registry seen from one connection: with that connection's [`Context`], and lists
    /// that start as the registry's and may be narrowed for the connection.
    ///
    /// ```
    /// use pontoon_family::{Context, Registry};
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
            peer_identity: None,
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
    /// let message = pontoon_family::Registry::new().serialize(&vec![1u32, 2, 3])?;
    /// assert!(message.frames.is_empty()); // a small body travels in the header
    /// # Ok::<(), pontoon_family::SerializeError>(())
    /// ```
    pub fn serialize<T: Serialize + Any>(&self, value: &T) -> Result<Message, SerializeError> {
        self.local().serialize(value)
    }

    /// Deserializes a message into `T`, if its family is on the deserializer list and it holds a
    /// `T`.
    ///
    /// ```
    /// let registry = pontoon_family::Registry::new();
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
    /// let mut registry = pontoon_family::Registry::new();
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
    ///     let mut r = pontoon_family::Registry::new();
    ///     r.register_type::<String>("text")?;
    ///     r
    /// };
    /// let message = sender.serialize_dyn(&"hello".to_string())?;
    /// let receiver = pontoon_family::Registry::new(); // never heard of "text"
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
/// [`Registry::register_custom`], under its [`TypeName`]. The trait form of
/// [`Registry::register`].
pub trait Custom: TypeName + Any + Send + Sync + Sized {
    /// Turns the value into metadata and frames.
    fn dumps(&self, context: &Context) -> Result<Dumped, FamilyError>;
    /// Rebuilds the value.
    fn loads(loaded: &Loaded<'_>, context: &Context) -> Result<Self, FamilyError>;
}
