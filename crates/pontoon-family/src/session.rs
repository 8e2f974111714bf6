//! [`Session`]: a registry seen from one connection, and the dispatch every serialize and
//! deserialize goes through (the serializer list in order; the deserializer list checked first).

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use pontoon_wire::{Frame, Header, Message};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::header;
use crate::limits;
use crate::metrics::{self, Started, Timers};
use crate::msgpack::{self, Fault};
use crate::registry::{CUSTOM, CustomFns, Policy, Registry, SERDE, Slot, TypeEntry};
use crate::serde_message::{serde_message, serde_parts};
use crate::type_name;
use crate::{
    Context, DeserializeError, Dumped, Family, Loaded, Object, RegistryError, SerializeError,
    binary,
};

/// A [`Registry`] seen from one connection: its [`Context`] reaches every family, and its lists
/// of families may be narrower than the registry's, never wider: the registry's deserializer
/// list is the one source of what may be read.
///
/// ```
/// use pontoon_family::{Context, Registry};
/// let registry = Registry::new();
/// let untrusted = registry.session(Context::new()).with_deserializers(["custom"])?;
/// let message = registry.serialize(&1u8)?;
/// assert!(untrusted.deserialize::<u8>(&message).is_err()); // serde is not accepted here
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Session<'r> {
    pub(crate) registry: &'r Registry,
    pub(crate) context: Cow<'r, Context>,
    pub(crate) policy: Cow<'r, Policy>,
}

impl std::fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("context", &*self.context)
            .field("serializers", &self.serializers())
            .field("deserializers", &self.deserializers())
            .finish_non_exhaustive()
    }
}

impl<'r> Session<'r> {
    /// The context families see in this session.
    ///
    /// ```
    /// let registry = pontoon_family::Registry::new();
    /// let session = registry.session(pontoon_family::Context::new().shares_memory(true));
    /// assert!(session.context().shares_memory);
    /// ```
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// Narrows the families that may serialize in this session: each must be on the
    /// registry's serializer list, and they are tried in the order given here.
    ///
    /// A session can never widen the registry's lists: naming a family that is not on the
    /// registry's list is [`RegistryError::Widens`]. It is an error rather than impossible by
    /// construction because the names arrive at run time (from a configuration, from a peer's
    /// handshake), where no type can rule them out; the session resolves every name against
    /// the registry's own list only, so a wider list cannot be built.
    ///
    /// ```
    /// let registry = pontoon_family::Registry::new();
    /// let session = registry.session(Default::default()).with_serializers(["serde"])?;
    /// assert!(session.serialize(&1u8).is_ok());
    /// assert_eq!(session.serializers(), ["serde"]);
    /// # Ok::<(), pontoon_family::RegistryError>(())
    /// ```
    pub fn with_serializers<I, S>(mut self, names: I) -> Result<Session<'r>, RegistryError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let narrowed = self.narrow(names, List::Serializers)?;
        self.policy.to_mut().serializers = narrowed;
        Ok(self)
    }

    /// Narrows the families whose messages this session deserializes: each must be on the
    /// registry's deserializer list, the only source of what may be read ([`RegistryError::Widens`]
    /// otherwise; see [`Session::with_serializers`] for why that is an error).
    ///
    /// ```
    /// let mut registry = pontoon_family::Registry::new();
    /// registry.set_deserializers(["serde"])?;
    /// let session = registry.session(Default::default()).with_deserializers(["serde"])?;
    /// assert!(session.deserialize::<u8>(&registry.serialize(&1u8)?).is_ok());
    /// // `custom` is not on the registry's list: no session may accept it.
    /// let err = registry.session(Default::default()).with_deserializers(["custom", "serde"]).unwrap_err();
    /// assert!(matches!(err, pontoon_family::RegistryError::Widens { .. }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_deserializers<I, S>(mut self, names: I) -> Result<Session<'r>, RegistryError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let narrowed = self.narrow(names, List::Deserializers)?;
        self.policy.to_mut().deserializers = narrowed;
        Ok(self)
    }

    /// The families that may serialize in this session, in the order they are tried.
    ///
    /// ```
    /// let registry = pontoon_family::Registry::new();
    /// assert_eq!(registry.session(Default::default()).serializers(), registry.serializers());
    /// ```
    pub fn serializers(&self) -> Vec<String> {
        names(&self.policy.serializers)
    }

    /// The families whose messages this session deserializes: the registry's deserializer list,
    /// narrowed by [`Session::with_deserializers`]. This is the list a connection announces to
    /// its peer.
    ///
    /// ```
    /// let registry = pontoon_family::Registry::new();
    /// let session = registry.session(Default::default()).with_deserializers(["serde"])?;
    /// assert_eq!(session.deserializers(), ["serde"]);
    /// # Ok::<(), pontoon_family::RegistryError>(())
    /// ```
    pub fn deserializers(&self) -> Vec<String> {
        names(&self.policy.deserializers)
    }

    /// Resolves `names` against the registry's own `list`: a family not on it is refused.
    fn narrow<I, S>(&self, wanted: I, list: List) -> Result<Vec<Slot>, RegistryError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let allowed = match list {
            List::Serializers => &self.registry.policy.serializers,
            List::Deserializers => &self.registry.policy.deserializers,
        };
        wanted
            .into_iter()
            .map(|name| {
                let name = name.as_ref();
                if let Some(slot) = allowed.iter().find(|slot| slot.name() == name) {
                    return Ok(slot.clone());
                }
                let known = self.registry.family_names();
                if known.iter().any(|known| known == name) {
                    Err(RegistryError::Widens {
                        family: name.to_string(),
                        list: list.name(),
                        allowed: names(allowed),
                    })
                } else {
                    Err(RegistryError::UnknownFamily {
                        name: name.to_string(),
                        known,
                    })
                }
            })
            .collect()
    }

    /// [`Registry::serialize`], in this session.
    ///
    /// ```
    /// let registry = pontoon_family::Registry::new();
    /// let message = registry.session(Default::default()).serialize(&"x")?;
    /// # let _ = message;
    /// # Ok::<(), pontoon_family::SerializeError>(())
    /// ```
    pub fn serialize<T: Serialize + Any>(&self, value: &T) -> Result<Message, SerializeError> {
        self.scope().serialize(value)
    }

    /// [`Registry::serialize_dyn`], in this session.
    ///
    /// ```
    /// let mut registry = pontoon_family::Registry::new();
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
    /// let registry = pontoon_family::Registry::new();
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
    /// let mut registry = pontoon_family::Registry::new();
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

/// Which of the registry's lists a session narrows.
#[derive(Clone, Copy)]
enum List {
    Serializers,
    Deserializers,
}

impl List {
    fn name(self) -> &'static str {
        match self {
            List::Serializers => "serializer",
            List::Deserializers => "deserializer",
        }
    }
}

/// The names of the families on a list, in order.
fn names(slots: &[Slot]) -> Vec<String> {
    slots.iter().map(|slot| slot.name().to_string()).collect()
}

/// The type a typed deserialize asks for: checked before any family's loader runs.
#[derive(Clone, Copy)]
struct Requested<'a> {
    type_id: TypeId,
    /// Its name, for the error.
    name: &'a str,
}

/// The registry, context and lists that one serialize or deserialize works with: borrowed, so
/// the registry's own methods pay for no session.
#[derive(Clone, Copy)]
pub(crate) struct Scope<'a> {
    pub(crate) registry: &'a Registry,
    pub(crate) context: &'a Context,
    pub(crate) policy: &'a Policy,
}

impl<'a> Scope<'a> {
    pub(crate) fn serialize<T: Serialize + Any>(
        &self,
        value: &T,
    ) -> Result<Message, SerializeError> {
        let entry = self.registry.by_type.get(&TypeId::of::<T>()).map(|e| &**e);
        let type_name = entry.map_or(std::any::type_name::<T>(), |e| e.name.as_str());
        let serde = |out: &mut Vec<u8>, depth| binary::to_writer(value, out, depth);
        let start = metrics::start();
        // The common case returns serde's message as it is: passed up through `dumps`'
        // `Option` and the timing, the message was moved three more times (a small serialize
        // took 79 ns here instead of 69).
        if start.is_none() && self.serde_first(entry) {
            return serde_message(type_name, self.registry.max_depth, serde);
        }
        let message = self
            .dumps(value, entry, type_name, Some(&serde))?
            .ok_or_else(|| SerializeError::NoFamily {
                type_name: type_name.to_string(),
                tried: self.tried(),
            })?;
        if let Some(start) = start {
            self.timed(&message, start, Timers::serialized);
        }
        Ok(message)
    }

    pub(crate) fn serialize_dyn(&self, value: &dyn Any) -> Result<Message, SerializeError> {
        let entry = self.registry.by_type.get(&value.type_id()).map(|e| &**e);
        let type_name = entry.map_or("<unregistered>", |e| e.name.as_str());
        // Only a registered serde type can be encoded from behind `dyn Any`.
        let serde = entry
            .and_then(|e| e.serde.as_ref())
            .map(|fns| move |out: &mut Vec<u8>, depth| (fns.encode)(value, out, depth));
        let start = metrics::start();
        let message = self.dumps(value, entry, type_name, serde)?;
        let message = message.ok_or_else(|| match entry {
            Some(_) => SerializeError::NoFamily {
                type_name: type_name.to_string(),
                tried: self.tried(),
            },
            None => SerializeError::Unregistered {
                tried: self.tried(),
            },
        })?;
        if let Some(start) = start {
            self.timed(&message, start, Timers::serialized);
        }
        Ok(message)
    }

    /// Records a serialize or deserialize of `message` that began at `start` under its family
    /// (found by the name its header carries). Off the fast path: only with a recorder
    /// installed.
    #[cold]
    #[inline(never)]
    fn timed(&self, message: &Message, start: Started, record: fn(&Timers, Started)) {
        if let Some(timers) = header::family_name(message.header.as_bytes())
            .and_then(|family| self.registry.timers(family))
        {
            record(timers, start);
        }
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

    /// Whether the serde family is the first on the serializer list to take a value of this
    /// type: `custom` ahead of it takes only types with serializers of their own, and an added
    /// family ahead of it might take anything.
    #[inline]
    fn serde_first(&self, entry: Option<&TypeEntry>) -> bool {
        for slot in &self.policy.serializers {
            match slot {
                Slot::Custom if entry.is_some_and(|e| e.custom.is_some()) => return false,
                Slot::Custom => {}
                Slot::Serde => return true,
                Slot::User(..) => return false,
            }
        }
        false
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
    pub(crate) fn deserialize<T: DeserializeOwned + Any>(
        &self,
        message: &Message,
    ) -> Result<T, DeserializeError> {
        let start = metrics::start();
        // Untimed, the result goes back as it is: unwrapped and wrapped again, the value was
        // moved once more, and a small deserialize paid for the copy.
        let Some(start) = start else {
            return self.deserialize_untimed(message);
        };
        let value = self.deserialize_untimed(message)?;
        self.timed(message, start, Timers::deserialized);
        Ok(value)
    }

    /// The deserialize itself. Inlined into its caller whatever its size: a call in between
    /// would move the value (and the error) once more.
    #[inline(always)]
    fn deserialize_untimed<T: DeserializeOwned + Any>(
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
                let same = match entry {
                    Some(_) => parsed.type_name == expected.as_bytes(),
                    None => type_name::unregistered_matches(expected, parsed.type_name),
                };
                if !same {
                    return Err(mismatch());
                }
                let (body, buffers) = serde_parts(&parsed, &message.frames)?;
                limits::with_limits(&self.registry.limits, || {
                    binary::from_slice::<T>(body, buffers, self.registry.max_depth)
                })
                .map_err(|error| DeserializeError::Body {
                    type_name: expected.to_string(),
                    error,
                })
            }
            Slot::Custom | Slot::User(..) => {
                let requested = Requested {
                    type_id: TypeId::of::<T>(),
                    name: expected,
                };
                let value = self.loads(slot, &parsed, &message.frames, Some(requested))?;
                // `loads` ran only for the type asked for: a value of another type is the
                // family's mistake, refused all the same.
                value.downcast::<T>().map(|b| *b).map_err(|_| mismatch())
            }
        }
    }

    pub(crate) fn deserialize_dyn(
        &self,
        message: &Message,
    ) -> Result<Box<dyn Any + Send + Sync>, DeserializeError> {
        let start = metrics::start();
        let value = self.deserialize_dyn_untimed(message)?;
        if let Some(start) = start {
            self.timed(message, start, Timers::deserialized);
        }
        Ok(value)
    }

    fn deserialize_dyn_untimed(
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
                .map_err(|error| DeserializeError::Body {
                    type_name: type_name.to_string(),
                    error,
                })
            }
            Slot::Custom | Slot::User(..) => self.loads(slot, &parsed, &message.frames, None),
        }
    }

    fn entry(&self, name: &str) -> Result<&'a TypeEntry, DeserializeError> {
        self.entry_with_id(name).map(|(_, entry)| entry)
    }

    fn entry_with_id(&self, name: &str) -> Result<(TypeId, &'a TypeEntry), DeserializeError> {
        self.registry
            .by_name
            .get(name)
            .map(|(id, e)| (*id, &**e))
            .ok_or_else(|| DeserializeError::UnknownType {
                name: name.to_string(),
            })
    }

    /// The deserializer slot for `family`, if this session accepts it. Every way in passes here.
    #[inline]
    fn accepted(&self, family: &[u8]) -> Result<&'a Slot, DeserializeError> {
        // The built-in names are compared as constants (no call to a generic slice compare):
        // every message, however small, passes here.
        let named = |slot: &&Slot| match slot {
            Slot::Serde => family == SERDE.as_bytes(),
            Slot::Custom => family == CUSTOM.as_bytes(),
            Slot::User(name, _) => family == name.as_bytes(),
        };
        match self.policy.deserializers.iter().find(named) {
            Some(slot) => Ok(slot),
            None => Err(self.refused(family)),
        }
    }

    /// Why `family` is refused: not on the deserializer list, or not known at all. Off the
    /// path every accepted message takes, so that the check itself stays small enough to inline.
    #[cold]
    #[inline(never)]
    fn refused(&self, family: &[u8]) -> DeserializeError {
        let family = header::lossy(family);
        let deserializers = self
            .policy
            .deserializers
            .iter()
            .map(|s| s.name().to_string())
            .collect();
        if self.registry.family_names().contains(&family) {
            DeserializeError::NotAccepted {
                family,
                deserializers,
            }
        } else {
            DeserializeError::UnknownFamily {
                family,
                deserializers,
            }
        }
    }

    /// Runs a `custom` or user family's `loads`. First the type: looked up (custom), and checked
    /// against the type the caller asked for, if any (custom: the registered type; a user
    /// family: [`Family::produces`]), so that no loader runs for a type nobody asked for and a
    /// message naming a type nobody registered costs nothing more. Then `meta` is decoded, only
    /// if what it takes in memory is within what the receiver's limits allow for its size.
    fn loads(
        &self,
        slot: &Slot,
        parsed: &header::Parsed<'_>,
        frames: &[Frame],
        requested: Option<Requested<'_>>,
    ) -> Result<Box<dyn Any + Send + Sync>, DeserializeError> {
        let type_name = header::type_str(parsed)?;
        let mismatch = |requested: Requested<'_>| DeserializeError::TypeMismatch {
            expected: requested.name.to_string(),
            found: type_name.to_string(),
        };
        let custom = match slot {
            Slot::Custom => {
                let (type_id, entry) = self.entry_with_id(type_name)?;
                let custom =
                    entry
                        .custom
                        .as_ref()
                        .ok_or_else(|| DeserializeError::UnknownType {
                            name: type_name.to_string(),
                        })?;
                if let Some(requested) = requested
                    && requested.type_id != type_id
                {
                    return Err(mismatch(requested));
                }
                Some(custom)
            }
            Slot::User(_, user) => {
                if let Some(requested) = requested
                    && !user.produces(type_name, requested.type_id)
                {
                    return Err(mismatch(requested));
                }
                None
            }
            Slot::Serde => unreachable!("the serde family has no meta"),
        };
        let family = slot.name();
        let meta = self.meta(family, type_name, parsed)?;
        let loaded = Loaded {
            type_name,
            meta: &meta,
            frames,
            limits: &self.registry.limits,
        };
        let wrap = |source| DeserializeError::Family {
            family: family.to_string(),
            type_name: type_name.to_string(),
            source,
        };
        match (custom, slot) {
            (Some(custom), _) => {
                limits::with_limits(loaded.limits, || (custom.loads)(&loaded, self.context))
                    .map_err(wrap)
            }
            (None, Slot::User(_, user)) => {
                limits::with_limits(loaded.limits, || user.loads(&loaded, self.context))
                    .map_err(wrap)
            }
            (None, _) => unreachable!("only the custom family has per-type loaders"),
        }
    }

    /// The family's `meta`, decoded if it takes no more memory than
    /// [`Limits::max_expansion`](pontoon_wire::Limits::max_expansion) of its own size.
    fn meta(
        &self,
        family: &str,
        type_name: &str,
        parsed: &header::Parsed<'_>,
    ) -> Result<rmpv::Value, DeserializeError> {
        let raw = parsed
            .meta
            .ok_or(DeserializeError::MissingKey { key: "meta" })?;
        let received_bytes = raw.len() as u64;
        let max_bytes = self.registry.limits.max_expansion(received_bytes);
        msgpack::decode_value(raw, self.registry.max_depth, max_bytes).map_err(
            |fault| match fault {
                Fault::TooLarge { decoded_bytes } => DeserializeError::MetaTooLarge {
                    family: family.to_string(),
                    type_name: type_name.to_string(),
                    received_bytes,
                    decoded_bytes,
                    max_bytes,
                },
                Fault::TooDeep => DeserializeError::MetaTooDeep {
                    family: family.to_string(),
                    limit: self.registry.max_depth,
                },
                Fault::OutOfMemory => DeserializeError::OutOfMemory {
                    what: "meta",
                    bytes: received_bytes,
                },
                Fault::Malformed => DeserializeError::WrongType {
                    key: "meta",
                    expected: "one MessagePack value",
                },
            },
        )
    }
}

/// A message from a family other than serde.
fn family_message(family: &str, type_name: &str, dumped: Dumped) -> Message {
    let mut head = Vec::with_capacity(64);
    header::write_family_header(&mut head, family, type_name, &dumped.meta);
    Message::new(Header::from_msgpack_unchecked(head.into()), dumped.frames)
}
