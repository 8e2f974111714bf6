//! The allow-list: the globals a decoder honours, each mapped to the constructor it stands for.
//! Nothing here calls anything; each entry is a Rust function over the value graph.

/// A global this crate knows how to construct without running code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Known {
    Set,
    FrozenSet,
    List,
    Tuple,
    Dict,
    Complex,
    ByteArray,
    Bytes,
    /// `_codecs.encode(str, 'latin1')`: how protocols 0 to 2 write `bytes`.
    Encode,
    OrderedDict,
    /// `numpy._core.multiarray._reconstruct(ndarray, shape, typecode)`: an empty array that a
    /// `BUILD` fills.
    Reconstruct,
    /// `numpy.ndarray`: only as `_reconstruct`'s first argument.
    NdArray,
    /// `numpy.dtype(code, align, copy)`, then a `BUILD` with byte order and unit.
    DType,
    /// `numpy._core.numeric._frombuffer(buffer, dtype, shape, order)`.
    FromBuffer,
}

/// The allow-list, `(module, name, constructor)`. Python 2 module names (`__builtin__`) are
/// mapped to Python 3's before the lookup, as Python 3's unpickler maps them.
pub(crate) const ALLOW_LIST: &[(&str, &str, Known)] = &[
    ("builtins", "set", Known::Set),
    ("builtins", "frozenset", Known::FrozenSet),
    ("builtins", "list", Known::List),
    ("builtins", "tuple", Known::Tuple),
    ("builtins", "dict", Known::Dict),
    ("builtins", "complex", Known::Complex),
    ("builtins", "bytearray", Known::ByteArray),
    ("builtins", "bytes", Known::Bytes),
    ("_codecs", "encode", Known::Encode),
    ("collections", "OrderedDict", Known::OrderedDict),
    ("numpy._core.multiarray", "_reconstruct", Known::Reconstruct),
    ("numpy.core.multiarray", "_reconstruct", Known::Reconstruct),
    ("numpy", "ndarray", Known::NdArray),
    ("numpy", "dtype", Known::DType),
    ("numpy._core.numeric", "_frombuffer", Known::FromBuffer),
    ("numpy.core.numeric", "_frombuffer", Known::FromBuffer),
];

/// The constructor `module.name` stands for, if it is on the allow-list.
pub(crate) fn known(module: &str, name: &str) -> Option<Known> {
    ALLOW_LIST
        .iter()
        .find(|(m, n, _)| *m == module && *n == name)
        .map(|(_, _, k)| *k)
}

/// Every `module.name` on the allow-list, for documentation and error messages.
///
/// ```
/// assert!(pontoon_pickle::allow_list().any(|g| g == "builtins.set"));
/// assert!(!pontoon_pickle::allow_list().any(|g| g == "os.system"));
/// ```
pub fn allow_list() -> impl Iterator<Item = String> {
    ALLOW_LIST.iter().map(|(m, n, _)| format!("{m}.{n}"))
}
