//! The value model: a [`Graph`] of [`Node`]s addressed by [`NodeId`], so shared references and
//! cycles are plain indexes (no `Rc` cycles, nothing to leak, nothing recursive to drop).

use std::fmt;

use bytes::Bytes;
use pontoon_array::{Array, ArrayError, ByteOrder, DType};

use crate::int::BigInt;
use crate::text::PyStr;

/// The address of a node in its [`Graph`].
///
/// ```
/// use pontoon_pickle::{Graph, Node};
/// let mut graph = Graph::new();
/// let id = graph.push(Node::None);
/// assert_eq!(id.index(), 0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub(crate) u32);

impl NodeId {
    /// The node's position in [`Graph::nodes`].
    ///
    /// ```
    /// let mut graph = pontoon_pickle::Graph::new();
    /// let id = graph.push(pontoon_pickle::Node::Bool(true));
    /// assert_eq!(graph.nodes()[id.index()], pontoon_pickle::Node::Bool(true));
    /// ```
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A module-level name, as pickle's `GLOBAL` and `STACK_GLOBAL` name classes and functions.
///
/// ```
/// let global = pontoon_pickle::Global::new("os", "system");
/// assert_eq!(global.to_string(), "os.system");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Global {
    /// The module, as written (`builtins`, `numpy._core.numeric`).
    pub module: String,
    /// The name inside the module (may be dotted, `Outer.Inner`).
    pub name: String,
}

impl Global {
    /// A global from its module and name.
    ///
    /// ```
    /// let g = pontoon_pickle::Global::new("distributed.protocol", "Serialize");
    /// assert_eq!(g.module, "distributed.protocol");
    /// ```
    pub fn new(module: impl Into<String>, name: impl Into<String>) -> Global {
        Global {
            module: module.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for Global {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.module, self.name)
    }
}

/// How an [`Object`] was (or is to be) made from its callable and arguments.
///
/// ```
/// assert_ne!(pontoon_pickle::Call::Reduce, pontoon_pickle::Call::NewObj);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Call {
    /// `callable(*args)`: pickle's `REDUCE` (and protocol 0's `INST`, `OBJ`).
    Reduce,
    /// `cls.__new__(cls, *args)`: `NEWOBJ`.
    NewObj,
    /// `cls.__new__(cls, *args, **kwargs)`: `NEWOBJ_EX`, with [`Object::kwargs`].
    NewObjEx,
}

/// A value this crate does not construct: a call kept as its callable, arguments and state, so
/// it can be inspected and written back unchanged. Decoding makes these only for globals the
/// caller let through as opaque ([`LoadOptions::opaque`](crate::LoadOptions::opaque)); encoding
/// writes them as `GLOBAL` plus `REDUCE`/`NEWOBJ` and `BUILD`.
///
/// ```
/// use pontoon_pickle::{Call, Global, Graph, Node, Object};
/// let mut graph = Graph::new();
/// let class = graph.push(Node::Global(Box::new(Global::new("mymod", "Point"))));
/// let args = graph.push(Node::Tuple(vec![]));
/// let object = graph.push(Node::Object(Box::new(Object::new(class, args, Call::NewObj))));
/// assert!(matches!(graph.node(object), Node::Object(o) if o.call == Call::NewObj));
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Object {
    /// What is called: usually a [`Node::Global`].
    pub callable: NodeId,
    /// The positional arguments: a [`Node::Tuple`].
    pub args: NodeId,
    /// The keyword arguments of a [`Call::NewObjEx`]: a [`Node::Dict`].
    pub kwargs: Option<NodeId>,
    /// How the call is made.
    pub call: Call,
    /// What `BUILD` hands to `__setstate__` (or merges into `__dict__`).
    pub state: Option<NodeId>,
    /// Items appended after construction (`APPEND`, `APPENDS` onto the object).
    pub list_items: Vec<NodeId>,
    /// Items set after construction (`SETITEM`, `SETITEMS` onto the object).
    pub dict_items: Vec<(NodeId, NodeId)>,
}

impl Object {
    /// A call with no state and no items.
    ///
    /// ```
    /// # use pontoon_pickle::{Call, Graph, Node, Object};
    /// let mut graph = Graph::new();
    /// let f = graph.push(Node::Global(Box::new(pontoon_pickle::Global::new("m", "f"))));
    /// let args = graph.push(Node::Tuple(vec![]));
    /// let object = Object::new(f, args, Call::Reduce);
    /// assert!(object.state.is_none());
    /// ```
    pub fn new(callable: NodeId, args: NodeId, call: Call) -> Object {
        Object {
            callable,
            args,
            kwargs: None,
            call,
            state: None,
            list_items: Vec::new(),
            dict_items: Vec::new(),
        }
    }
}

/// A `numpy.dtype` object as pickled: numpy's type code (`f8`, `M8`), its byte order, and a
/// datetime unit. [`DTypeSpec::resolve`] turns it into pontoon-array's [`DType`].
///
/// ```
/// use pontoon_pickle::DTypeSpec;
/// let spec = DTypeSpec::new("<f8")?;
/// assert_eq!(spec.resolve()?.0, pontoon_array::DType::F64);
/// # Ok::<(), pontoon_array::ArrayError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DTypeSpec {
    /// numpy's code without byte order or unit: `f8`, `i4`, `b1`, `M8`.
    pub code: String,
    /// `<`, `>`, `|` (not applicable) or `=` (native).
    pub byte_order: char,
    /// The datetime/timedelta unit (`us`), if any.
    pub unit: Option<String>,
}

impl DTypeSpec {
    /// A spec from a numpy dtype string such as `<f8` or `<M8[us]`.
    ///
    /// ```
    /// let spec = pontoon_pickle::DTypeSpec::new(">i4")?;
    /// assert_eq!(spec.byte_order, '>');
    /// # Ok::<(), pontoon_array::ArrayError>(())
    /// ```
    pub fn new(descr: &str) -> Result<DTypeSpec, ArrayError> {
        let (dtype, order) = DType::parse(descr)?;
        Ok(DTypeSpec::of(dtype, order))
    }

    /// The spec numpy pickles for `dtype` in `order`.
    ///
    /// ```
    /// use pontoon_array::{ByteOrder, DType};
    /// let spec = pontoon_pickle::DTypeSpec::of(DType::U8, ByteOrder::Little);
    /// assert_eq!((spec.code.as_str(), spec.byte_order), ("u1", '|'));
    /// ```
    pub fn of(dtype: DType, order: ByteOrder) -> DTypeSpec {
        // `descr` always starts with its byte order (`<`, `>` or `|`).
        crate::numpy::spec_from_code(&dtype.descr(order))
    }

    /// The dtype and byte order, or the reason pontoon-array has no such dtype.
    ///
    /// ```
    /// let spec = pontoon_pickle::DTypeSpec::new("|b1")?;
    /// assert_eq!(spec.resolve()?.0, pontoon_array::DType::Bool);
    /// # Ok::<(), pontoon_array::ArrayError>(())
    /// ```
    pub fn resolve(&self) -> Result<(DType, ByteOrder), ArrayError> {
        let order = match self.byte_order {
            '=' if cfg!(target_endian = "big") => '>',
            '=' => '<',
            other => other,
        };
        let descr = match &self.unit {
            Some(unit) => format!("{order}{}[{unit}]", self.code),
            None => format!("{order}{}", self.code),
        };
        DType::parse(&descr).or_else(|first| {
            // numpy writes '|' for one-byte types and '<' or '>' for the rest; pontoon-array
            // names some one-byte types with either, so try the other spelling once.
            let swapped = match order {
                '|' => descr.replacen('|', "<", 1),
                '<' | '>' => descr.replacen(order, "|", 1),
                _ => return Err(first),
            };
            DType::parse(&swapped).map_err(|_| first)
        })
    }
}

/// One value in a [`Graph`]. Containers hold [`NodeId`]s, so a node can be shared and a
/// container can hold itself.
///
/// ```
/// use pontoon_pickle::{Graph, Node};
/// let mut graph = Graph::new();
/// let list = graph.push(Node::List(vec![]));
/// graph.node_mut(list).unwrap_list().push(list); // l = []; l.append(l)
/// assert_eq!(graph.node(list), &Node::List(vec![list]));
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Node {
    /// `None`.
    None,
    /// `True` or `False`.
    Bool(bool),
    /// An `int` that fits an `i64`.
    Int(i64),
    /// An `int` that does not fit an `i64`.
    BigInt(BigInt),
    /// A `float`.
    Float(f64),
    /// A `complex`.
    Complex {
        /// The real part.
        re: f64,
        /// The imaginary part.
        im: f64,
    },
    /// A `str`.
    Str(PyStr),
    /// A `bytes` (a view of the input or of its out-of-band buffer).
    Bytes(Bytes),
    /// A `bytearray` (likewise a view).
    ByteArray(Bytes),
    /// A `list`.
    List(Vec<NodeId>),
    /// A `tuple`.
    Tuple(Vec<NodeId>),
    /// A `dict`: its items in insertion order.
    Dict(Vec<(NodeId, NodeId)>),
    /// A `collections.OrderedDict`.
    OrderedDict(Vec<(NodeId, NodeId)>),
    /// A `set`.
    Set(Vec<NodeId>),
    /// A `frozenset`.
    FrozenSet(Vec<NodeId>),
    /// A `numpy.ndarray` (boxed, as the rarer variants are, so that a node stays small).
    Array(Box<Array>),
    /// A `numpy.dtype` object.
    DType(Box<DTypeSpec>),
    /// A class or function named by module and name, not called.
    Global(Box<Global>),
    /// A call this crate keeps opaque.
    Object(Box<Object>),
}

impl Node {
    /// The list's items, for building graphs by hand; panics on any other node (a programming
    /// error, never reached from decoded input).
    ///
    /// ```
    /// let mut node = pontoon_pickle::Node::List(vec![]);
    /// assert!(node.unwrap_list().is_empty());
    /// ```
    pub fn unwrap_list(&mut self) -> &mut Vec<NodeId> {
        match self {
            Node::List(items) => items,
            other => panic!("unwrap_list on {}", other.type_name()),
        }
    }

    /// The Python type this node stands for, as `module.name` for classes outside builtins.
    ///
    /// ```
    /// assert_eq!(pontoon_pickle::Node::Bool(true).type_name(), "bool");
    /// ```
    pub fn type_name(&self) -> &'static str {
        match self {
            Node::None => "NoneType",
            Node::Bool(_) => "bool",
            Node::Int(_) | Node::BigInt(_) => "int",
            Node::Float(_) => "float",
            Node::Complex { .. } => "complex",
            Node::Str(_) => "str",
            Node::Bytes(_) => "bytes",
            Node::ByteArray(_) => "bytearray",
            Node::List(_) => "list",
            Node::Tuple(_) => "tuple",
            Node::Dict(_) => "dict",
            Node::OrderedDict(_) => "collections.OrderedDict",
            Node::Set(_) => "set",
            Node::FrozenSet(_) => "frozenset",
            Node::Array(_) => "numpy.ndarray",
            Node::DType(_) => "numpy.dtype",
            Node::Global(_) => "global",
            Node::Object(_) => "object",
        }
    }
}

/// A value graph: the nodes, and which one is the value. Decoding a pickle gives one, encoding
/// takes one; nodes refer to each other by [`NodeId`], so sharing and cycles are kept exactly.
///
/// ```
/// use pontoon_pickle::{Graph, Node};
/// let mut graph = Graph::new();
/// let shared = graph.push(Node::List(vec![]));
/// let outer = graph.push(Node::List(vec![shared, shared])); // l2 = [l1, l1]
/// graph.set_root(outer);
/// assert_eq!(graph.node(graph.root()), &Node::List(vec![shared, shared]));
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    nodes: Vec<Node>,
    root: Option<NodeId>,
}

impl Graph {
    /// An empty graph; its root is a `None` node until [`Graph::set_root`].
    ///
    /// ```
    /// assert!(pontoon_pickle::Graph::new().nodes().is_empty());
    /// ```
    pub fn new() -> Graph {
        Graph::default()
    }

    /// A graph holding one node, which is its root.
    ///
    /// ```
    /// let graph = pontoon_pickle::Graph::single(pontoon_pickle::Node::Int(7));
    /// assert_eq!(graph.node(graph.root()), &pontoon_pickle::Node::Int(7));
    /// ```
    pub fn single(node: Node) -> Graph {
        let mut graph = Graph::new();
        let id = graph.push(node);
        graph.set_root(id);
        graph
    }

    /// Adds a node and returns its id.
    ///
    /// ```
    /// let mut graph = pontoon_pickle::Graph::new();
    /// let a = graph.push(pontoon_pickle::Node::None);
    /// let b = graph.push(pontoon_pickle::Node::None);
    /// assert_ne!(a, b);
    /// ```
    pub fn push(&mut self, node: Node) -> NodeId {
        let id = NodeId(u32::try_from(self.nodes.len()).unwrap_or(u32::MAX));
        self.nodes.push(node);
        id
    }

    /// Makes `id` the graph's value.
    ///
    /// ```
    /// let mut graph = pontoon_pickle::Graph::new();
    /// let id = graph.push(pontoon_pickle::Node::None);
    /// graph.set_root(id);
    /// assert_eq!(graph.root(), id);
    /// ```
    pub fn set_root(&mut self, id: NodeId) {
        self.root = Some(id);
    }

    /// The graph's value. An empty graph's root is id 0, which [`Graph::get`] reports missing.
    ///
    /// ```
    /// let graph = pontoon_pickle::Graph::single(pontoon_pickle::Node::None);
    /// assert_eq!(graph.root().index(), 0);
    /// ```
    pub fn root(&self) -> NodeId {
        self.root.unwrap_or(NodeId(0))
    }

    /// The node `id` names; panics on an id from another graph (use [`Graph::get`] for ids of
    /// unknown origin).
    ///
    /// ```
    /// let graph = pontoon_pickle::Graph::single(pontoon_pickle::Node::Float(1.5));
    /// assert_eq!(graph.node(graph.root()), &pontoon_pickle::Node::Float(1.5));
    /// ```
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.index()]
    }

    /// The node `id` names, if it is in this graph.
    ///
    /// ```
    /// let graph = pontoon_pickle::Graph::new();
    /// assert!(graph.get(graph.root()).is_none());
    /// ```
    pub fn get(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(id.index())
    }

    /// The node `id` names, to change it; panics on an id from another graph.
    ///
    /// ```
    /// let mut graph = pontoon_pickle::Graph::single(pontoon_pickle::Node::Int(1));
    /// *graph.node_mut(graph.root()) = pontoon_pickle::Node::Int(2);
    /// assert_eq!(graph.node(graph.root()), &pontoon_pickle::Node::Int(2));
    /// ```
    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.nodes[id.index()]
    }

    /// Every node, in the order they were made.
    ///
    /// ```
    /// let graph = pontoon_pickle::Graph::single(pontoon_pickle::Node::None);
    /// assert_eq!(graph.nodes().len(), 1);
    /// ```
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Room for `additional` more nodes, reserved fallibly.
    pub(crate) fn try_reserve(
        &mut self,
        additional: usize,
    ) -> Result<(), std::collections::TryReserveError> {
        self.nodes.try_reserve(additional)
    }

    /// Gives back room reserved for nodes that never came, when it is more than half as much
    /// again as the nodes there are (a shrink in place: nothing is copied).
    pub(crate) fn release_unused(&mut self) {
        let len = self.nodes.len();
        if self.nodes.capacity() - len > len / 2 {
            self.nodes.shrink_to_fit();
        }
    }

    /// How many nodes there is room for.
    #[cfg(test)]
    pub(crate) fn node_capacity(&self) -> usize {
        self.nodes.capacity()
    }

    /// Room for one more node, grown fallibly (amortized, as `push` would).
    pub(crate) fn reserve_one(&mut self) -> Result<(), std::collections::TryReserveError> {
        if self.nodes.len() == self.nodes.capacity() {
            self.nodes.try_reserve(1)?;
        }
        Ok(())
    }
}
