//! The `pickle` family: a [`Graph`] travels as its protocol 5 pickle (the first frame) and its
//! out-of-band buffers (the frames after it), and comes back as a `Graph` of views of them.
//! Like every family it is read only when the receiver puts `pickle` on its deserializer list.

use std::any::{Any, TypeId};

use pontoon_family::rmpv::Value;
use pontoon_family::{Context, Dumped, Family, FamilyError, Loaded, Object};

use crate::{DumpOptions, Graph, LoadOptions, dumps, loads};

/// The `pickle` family. Off by default, as every family is until named in a registry's lists;
/// a receiver that accepts it still refuses every global outside the allow-list (or keeps them
/// opaque, if its [`LoadOptions`] say so), so accepting pickle never runs code.
///
/// ```
/// use pontoon_family::Registry;
/// use pontoon_pickle::{Graph, Node, PickleFamily};
///
/// let mut registry = Registry::new();
/// registry.add_family(PickleFamily::default())?;
/// registry.set_serializers(["pickle", "serde"])?;
/// let graph = Graph::single(Node::Bytes(bytes::Bytes::from(vec![1u8; 1 << 20])));
/// let message = registry.serialize_dyn(&graph)?;
/// assert_eq!(message.frames.len(), 2); // the pickle, then its out-of-band buffer
///
/// assert!(registry.deserialize_dyn(&message).is_err()); // not on the list: refused
/// registry.set_deserializers(["pickle", "serde"])?;
/// let back = registry.deserialize_dyn(&message)?;
/// let back = back.downcast_ref::<Graph>().unwrap();
/// let Node::Bytes(data) = back.node(back.root()) else { panic!() };
/// assert_eq!(data.as_ptr(), message.frames[1].as_ptr()); // a view of the frame
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct PickleFamily {
    /// How values are written.
    pub dump: DumpOptions,
    /// What a received pickle may make; the receive limits' expansion bound applies to arrays.
    pub load: LoadOptions,
}

/// The type name the family writes for a [`Graph`].
const TYPE_NAME: &str = "pickle.Graph";

impl Family for PickleFamily {
    fn name(&self) -> &str {
        "pickle"
    }

    fn produces(&self, _: &str, requested: TypeId) -> bool {
        requested == TypeId::of::<Graph>()
    }

    fn dumps(&self, object: &Object<'_>, _: &Context) -> Result<Option<Dumped>, FamilyError> {
        let Some(graph) = object.downcast_ref::<Graph>() else {
            return Ok(None);
        };
        let pickled = dumps(graph, &self.dump)?;
        let mut frames = Vec::with_capacity(1 + pickled.buffers.len());
        frames.push(pickled.data);
        frames.extend(pickled.buffers);
        Ok(Some(Dumped::new(Value::from(TYPE_NAME), frames)))
    }

    fn loads(
        &self,
        loaded: &Loaded<'_>,
        _: &Context,
    ) -> Result<Box<dyn Any + Send + Sync>, FamilyError> {
        let (data, buffers) = loaded
            .frames
            .split_first()
            .ok_or("a pickle message has no frames")?;
        let mut options = self.load.clone();
        options.array_limits = *loaded.limits;
        Ok(Box::new(loads(data, buffers, &options)?))
    }
}
