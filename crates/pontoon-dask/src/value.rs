//! [`Value`], a Dask message as Rust data, and what its placeholders carry: [`Object`] (a
//! `__Serialized__` object), [`NdArray`], [`PickleData`], [`Collection`].

use bytes::Bytes;
use pontoon_array::Array;
use pontoon_pickle::Graph;
use pontoon_wire::Limits;

/// One value of a Dask message: what `msgpack` carries in frame 0, and the objects its
/// placeholders point to.
///
/// MessagePack arrays are [`Value::List`] (Python reads them as tuples), maps keep their order,
/// strings and binaries of a received message are views of its frames.
///
/// ```
/// use pontoon_dask::Value;
/// let msg = Value::map([("op", Value::from("identity")), ("reply", Value::Bool(true))]);
/// assert_eq!(msg.get("op").and_then(Value::as_str), Some("identity"));
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// `None` (msgpack nil).
    Nil,
    /// A bool.
    Bool(bool),
    /// An int that fits an `i64`.
    Int(i64),
    /// An int above `i64::MAX` (msgpack uint 64).
    UInt(u64),
    /// A float (float 32 on the wire is widened, as Python does).
    Float(f64),
    /// A `str`.
    Str(String),
    /// A `bytes` (msgpack bin), a view of the frame it came in.
    Bin(Bytes),
    /// A msgpack ext value: its type code and data.
    Ext(i8, Bytes),
    /// A msgpack array (a tuple to Python).
    List(Vec<Value>),
    /// A msgpack map, in its order.
    Map(Vec<(Value, Value)>),
    /// A `set`, sent as `{"__Set__": True, "as-list": [...]}`.
    Set(Vec<Value>),
    /// An object serialized out-of-band (`{"__Serialized__": offset}`): Dask's `Serialize`.
    Serialized(Box<Object>),
    /// A pickle carried out-of-band (`{"__Pickled__": offset}`): Dask's `ToPickle`.
    Pickled(Box<PickleData>),
}

impl Value {
    /// A map from string keys, in the order given.
    ///
    /// ```
    /// let v = pontoon_dask::Value::map([("a", 1i64.into())]);
    /// assert_eq!(v.get("a"), Some(&pontoon_dask::Value::Int(1)));
    /// ```
    pub fn map<K: Into<String>>(items: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Map(
            items
                .into_iter()
                .map(|(k, v)| (Value::Str(k.into()), v))
                .collect(),
        )
    }

    /// The value under string key `key`, if this is a map that has it.
    ///
    /// ```
    /// let v = pontoon_dask::Value::map([("a", pontoon_dask::Value::Nil)]);
    /// assert!(v.get("a").is_some() && v.get("b").is_none());
    /// ```
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(items) => items
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The text of a [`Value::Str`].
    ///
    /// ```
    /// assert_eq!(pontoon_dask::Value::from("x").as_str(), Some("x"));
    /// ```
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The number of a [`Value::Int`] (or a [`Value::UInt`] that fits).
    ///
    /// ```
    /// assert_eq!(pontoon_dask::Value::Int(3).as_i64(), Some(3));
    /// ```
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(v) => Some(*v),
            Value::UInt(v) => i64::try_from(*v).ok(),
            _ => None,
        }
    }

    /// The items of a [`Value::List`].
    ///
    /// ```
    /// let v = pontoon_dask::Value::List(vec![pontoon_dask::Value::Nil]);
    /// assert_eq!(v.as_list().map(<[_]>::len), Some(1));
    /// ```
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(items) => Some(items),
            _ => None,
        }
    }

    /// The array inside a `__Serialized__` numpy array.
    ///
    /// ```
    /// use pontoon_dask::{NdArray, Value};
    /// let v = Value::from(NdArray::from(pontoon_array::Array::from_vec(vec![1.0f64])));
    /// assert_eq!(v.as_ndarray().unwrap().shape(), [1]);
    /// ```
    pub fn as_ndarray(&self) -> Option<&NdArray> {
        match self {
            Value::Serialized(object) => match &**object {
                Object::Array(array) => Some(array),
                _ => None,
            },
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}

impl From<NdArray> for Value {
    fn from(array: NdArray) -> Value {
        Value::Serialized(Box::new(Object::Array(array)))
    }
}

impl From<Object> for Value {
    fn from(object: Object) -> Value {
        Value::Serialized(Box::new(object))
    }
}

/// What a `__Serialized__` placeholder carries: one object of one of Dask's serializer
/// families (`dask`, `pickle`, `msgpack`, `error`), or a collection of them.
///
/// ```
/// use pontoon_dask::Object;
/// let o = Object::Bytes(bytes::Bytes::from_static(b"abc"));
/// assert_eq!(o.kind(), "bytes");
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Object {
    /// A numpy array of the `dask` family (`numpy.ndarray`).
    Array(NdArray),
    /// A `bytes` of the `dask` family.
    Bytes(Bytes),
    /// A `bytearray` of the `dask` family.
    ByteArray(Bytes),
    /// A pickle (the `pickle` family, or a numpy array of object dtype that `dask` pickled).
    Pickle(PickleData),
    /// A list, tuple, set or dict whose items were serialized one by one.
    Collection(Collection),
    /// The `msgpack` family.
    Msgpack(Value),
    /// The `error` family: the sender could not serialize the object and sent why; Python's
    /// `deserialize` raises it as a `TypeError`.
    Error(String),
}

impl Object {
    /// A short name of the variant, for messages.
    ///
    /// ```
    /// assert_eq!(pontoon_dask::Object::Error("x".into()).kind(), "error");
    /// ```
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Array(_) => "ndarray",
            Object::Bytes(_) => "bytes",
            Object::ByteArray(_) => "bytearray",
            Object::Pickle(_) => "pickle",
            Object::Collection(_) => "collection",
            Object::Msgpack(_) => "msgpack",
            Object::Error(_) => "error",
        }
    }
}

/// A numpy array as Dask's `dask` family sends it: the array and its `writeable` flag.
///
/// ```
/// use pontoon_dask::NdArray;
/// let a = NdArray::from(pontoon_array::Array::from_vec(vec![1i32, 2, 3]));
/// assert!(a.writeable && a.shape() == [3]);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct NdArray {
    /// The elements.
    pub data: ArrayData,
    /// Whether the sender's array was writeable (Python makes the received one read-only if not).
    pub writeable: bool,
}

impl NdArray {
    /// The shape (after any `broadcast_to`).
    ///
    /// ```
    /// let a = pontoon_dask::NdArray::from(pontoon_array::Array::from_vec(vec![1u8]));
    /// assert_eq!(a.shape(), [1]);
    /// ```
    pub fn shape(&self) -> &[usize] {
        match &self.data {
            ArrayData::Numeric(a) => a.shape(),
            ArrayData::Raw(r) => &r.shape,
        }
    }

    /// The pontoon-array array, for numeric, bool and datetime dtypes.
    ///
    /// ```
    /// let a = pontoon_dask::NdArray::from(pontoon_array::Array::from_vec(vec![2.5f64]));
    /// assert_eq!(a.array().unwrap().as_slice::<f64>()?, [2.5]);
    /// # Ok::<(), pontoon_array::ArrayError>(())
    /// ```
    pub fn array(&self) -> Option<&Array> {
        match &self.data {
            ArrayData::Numeric(a) => Some(a),
            ArrayData::Raw(_) => None,
        }
    }
}

impl From<Array> for NdArray {
    fn from(array: Array) -> NdArray {
        NdArray {
            data: ArrayData::Numeric(array),
            writeable: true,
        }
    }
}

/// The elements of an [`NdArray`].
///
/// ```
/// let d = pontoon_dask::ArrayData::Numeric(pontoon_array::Array::from_vec(vec![1u8]));
/// assert!(matches!(d, pontoon_dask::ArrayData::Numeric(_)));
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ArrayData {
    /// A dtype pontoon-array holds (bool, ints, floats, complex, datetime64, timedelta64, any
    /// byte order): a view of the frame when the frame is aligned.
    Numeric(Array),
    /// Any other fixed-size dtype (strings `S`/`U`, void `V`, structured): its bytes as sent.
    Raw(RawArray),
}

/// An array of a dtype pontoon-array does not model, kept as its layout and a view of its frame.
///
/// ```
/// use pontoon_dask::{RawArray, RawDType};
/// let a = RawArray::new(RawDType::Descr("|S2".into()), 2, vec![2], vec![2], bytes::Bytes::from_static(b"abcd"))?;
/// assert_eq!(a.itemsize, 2);
/// # Ok::<(), pontoon_dask::DecodeError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RawArray {
    /// The dtype, as sent.
    pub dtype: RawDType,
    /// Bytes per element.
    pub itemsize: usize,
    /// The shape.
    pub shape: Vec<usize>,
    /// The strides in bytes (offset 0 is the frame's first byte).
    pub strides: Vec<isize>,
    /// The frame.
    pub data: Bytes,
}

impl RawArray {
    /// An array over `data`, checked: every element lies inside `data`, and a broadcast makes
    /// at most the default `Limits::max_expansion` of it.
    ///
    /// ```
    /// use pontoon_dask::{RawArray, RawDType};
    /// let err = RawArray::new(RawDType::Descr("|S2".into()), 2, vec![3], vec![2], bytes::Bytes::from_static(b"abcd"));
    /// assert!(err.is_err());
    /// ```
    pub fn new(
        dtype: RawDType,
        itemsize: usize,
        shape: Vec<usize>,
        strides: Vec<isize>,
        data: Bytes,
    ) -> Result<RawArray, crate::DecodeError> {
        RawArray::checked(dtype, itemsize, shape, strides, data, &Limits::DEFAULT)
    }

    /// [`RawArray::new`] under the receiver's limits.
    pub(crate) fn checked(
        dtype: RawDType,
        itemsize: usize,
        shape: Vec<usize>,
        strides: Vec<isize>,
        data: Bytes,
        limits: &Limits,
    ) -> Result<RawArray, crate::DecodeError> {
        crate::numpy::check_raw_layout(itemsize, &shape, &strides, data.len(), limits)?;
        Ok(RawArray {
            dtype,
            itemsize,
            shape,
            strides,
            data,
        })
    }

    /// The elements' bytes in C order (a copy).
    ///
    /// ```
    /// use pontoon_dask::{RawArray, RawDType};
    /// let a = RawArray::new(RawDType::Descr("|S1".into()), 1, vec![2, 2], vec![1, 2], bytes::Bytes::from_static(b"abcd"))?;
    /// assert_eq!(a.c_order_bytes(), b"acbd");
    /// # Ok::<(), pontoon_dask::DecodeError>(())
    /// ```
    pub fn c_order_bytes(&self) -> Vec<u8> {
        let count = self
            .shape
            .iter()
            .try_fold(1usize, |a, &n| a.checked_mul(n))
            .unwrap_or(usize::MAX);
        let mut out = Vec::with_capacity(count.saturating_mul(self.itemsize).min(1 << 30));
        let mut index = vec![0usize; self.shape.len()];
        for _ in 0..count {
            let offset: isize = index
                .iter()
                .zip(&self.strides)
                .map(|(&i, &s)| (i as isize).saturating_mul(s))
                .sum();
            // Checked at construction; a layout changed since then ends the copy early.
            let Some(element) = usize::try_from(offset)
                .ok()
                .and_then(|start| self.data.get(start..start.checked_add(self.itemsize)?))
            else {
                break;
            };
            out.extend_from_slice(element);
            for axis in (0..index.len()).rev() {
                index[axis] += 1;
                if index[axis] < self.shape[axis] {
                    break;
                }
                index[axis] = 0;
            }
        }
        out
    }
}

/// The dtype of a [`RawArray`].
///
/// ```
/// let d = pontoon_dask::RawDType::Descr("<U3".into());
/// assert_eq!(d.to_string(), "<U3");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RawDType {
    /// numpy's dtype string (`dtype.str`): `<U3`, `|S5`, `|V8`.
    Descr(String),
    /// A structured (or other void) dtype, which Dask sends as numpy's pickle of the dtype:
    /// kept as sent, so that it goes back unchanged.
    Pickled(Bytes),
}

impl std::fmt::Display for RawDType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RawDType::Descr(d) => f.write_str(d),
            RawDType::Pickled(_) => f.write_str("structured"),
        }
    }
}

/// A pickle and the buffers it was sent with: the `pickle` family (with one `writeable` flag
/// per buffer) or a `__Pickled__` placeholder. Decoded by pontoon-pickle, never running code:
/// numpy arrays in it are pontoon-array arrays, views of the buffers.
///
/// ```
/// use pontoon_dask::PickleData;
/// use pontoon_pickle::{Graph, Node};
/// let p = PickleData::new(Graph::single(Node::Int(1)));
/// assert!(p.buffers.is_empty());
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct PickleData {
    /// The decoded value.
    pub graph: Graph,
    /// The pickle's out-of-band buffers, as received.
    pub buffers: Vec<Bytes>,
    /// One flag per buffer (the `pickle` family); empty for `__Pickled__`.
    pub writeable: Vec<bool>,
}

impl PickleData {
    /// A value to be pickled, with no buffers yet (encoding takes large ones out-of-band).
    ///
    /// ```
    /// let p = pontoon_dask::PickleData::new(pontoon_pickle::Graph::single(pontoon_pickle::Node::None));
    /// assert!(p.writeable.is_empty());
    /// ```
    pub fn new(graph: Graph) -> PickleData {
        PickleData {
            graph,
            buffers: Vec::new(),
            writeable: Vec::new(),
        }
    }
}

/// A list, tuple, set or dict Dask serialized item by item (`is-collection`).
///
/// ```
/// use pontoon_dask::{Collection, CollectionKind, Object};
/// let c = Collection { kind: CollectionKind::List, keys: vec![], items: vec![Object::Error("x".into())] };
/// assert_eq!(c.items.len(), 1);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Collection {
    /// What the collection is.
    pub kind: CollectionKind,
    /// The dict's keys, one per item (empty for the other kinds).
    pub keys: Vec<Value>,
    /// The items.
    pub items: Vec<Object>,
}

/// The Python type of a [`Collection`].
///
/// ```
/// assert_eq!(pontoon_dask::CollectionKind::Tuple.name(), "tuple");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CollectionKind {
    /// `list`.
    List,
    /// `tuple`.
    Tuple,
    /// `set`.
    Set,
    /// `dict`.
    Dict,
}

impl CollectionKind {
    /// The name Dask writes in `type-serialized`.
    ///
    /// ```
    /// assert_eq!(pontoon_dask::CollectionKind::Dict.name(), "dict");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            CollectionKind::List => "list",
            CollectionKind::Tuple => "tuple",
            CollectionKind::Set => "set",
            CollectionKind::Dict => "dict",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<CollectionKind> {
        [
            CollectionKind::List,
            CollectionKind::Tuple,
            CollectionKind::Set,
            CollectionKind::Dict,
        ]
        .into_iter()
        .find(|k| k.name() == name)
    }
}
