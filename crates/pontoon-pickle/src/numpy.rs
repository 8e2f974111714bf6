//! numpy arrays and dtypes as numpy pickles them: `_reconstruct` plus `ndarray.__setstate__`
//! (in-band, protocols 2 to 4), `_frombuffer` (protocol 5, the data in a `PickleBuffer`), and
//! `dtype(code, align, copy)` plus `dtype.__setstate__`; into pontoon-array [`Array`]s.

use bytes::Bytes;
use pontoon_array::{Array, ArrayError, ByteOrder, DType, MAX_DIMS};

use crate::LoadError;
use crate::load::Loader;
use crate::value::{DTypeSpec, Node, NodeId};

type Result<T, E = LoadError> = std::result::Result<T, E>;

/// What `numpy.dtype(code)` makes before its `BUILD`: the code may carry a byte order and a
/// unit (`<M8[us]`), numpy's own pickles put those in the state instead.
pub(crate) fn spec_from_code(code: &str) -> DTypeSpec {
    let (byte_order, rest) = match code.chars().next() {
        Some(c @ ('<' | '>' | '|' | '=')) => (c, &code[1..]),
        _ => ('=', code),
    };
    let (code, unit) = match rest.split_once('[') {
        Some((code, unit)) => (code, Some(unit.trim_end_matches(']').to_string())),
        None => (rest, None),
    };
    DTypeSpec {
        code: code.to_string(),
        byte_order,
        unit,
    }
}

/// `dtype.__setstate__`: `(version, byteorder, subarray, names, fields, elsize, alignment,
/// flags[, metadata])`; for datetimes the metadata's second item is `(unit, num, den, events)`.
pub(crate) fn build_dtype(
    loader: &mut Loader<'_>,
    mut spec: DTypeSpec,
    state: NodeId,
) -> Result<DTypeSpec> {
    let items = loader.tuple_items(state)?;
    if items.len() < 8 {
        return Err(loader.invalid(format!("a dtype state of {} items", items.len())));
    }
    let graph = &loader.graph;
    match graph.node(items[1]) {
        Node::Str(s) => match s.as_str() {
            Some(order @ ("<" | ">" | "|" | "=")) => {
                spec.byte_order = order.chars().next().unwrap_or('=')
            }
            _ => return Err(loader.invalid("a dtype byte order other than <, >, | or =")),
        },
        _ => return Err(loader.invalid("a dtype byte order that is not a str")),
    }
    for (i, what) in [(2, "subarray"), (3, "field names"), (4, "fields")] {
        if graph.node(items[i]) != &Node::None {
            return Err(loader.invalid(format!(
                "a dtype with {what} (structured dtypes are not supported)"
            )));
        }
    }
    let unit = items
        .get(8)
        .and_then(|&m| match graph.node(m) {
            Node::Tuple(meta) => meta.get(1).copied(),
            _ => None,
        })
        .and_then(|u| match graph.node(u) {
            Node::Tuple(unit) => Some(unit.clone()),
            _ => None,
        });
    if let Some(unit) = unit {
        let name = match unit.first().map(|&u| graph.node(u)) {
            Some(Node::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(Node::Str(s)) => s.to_string_lossy(),
            _ => return Err(loader.invalid("a datetime unit that is not text")),
        };
        let count = unit.get(1).map(|&n| graph.node(n));
        if !matches!(count, None | Some(Node::Int(1))) {
            return Err(loader.invalid("a datetime unit with a multiplier"));
        }
        spec.unit = Some(name);
    }
    Ok(spec)
}

fn resolve(loader: &Loader<'_>, spec: &DTypeSpec) -> Result<(DType, ByteOrder)> {
    spec.resolve().map_err(|source| LoadError::Array {
        offset: loader.at,
        source,
    })
}

fn shape(loader: &Loader<'_>, id: NodeId) -> Result<Vec<usize>> {
    let dims = match loader.graph.node(id) {
        Node::Tuple(d) | Node::List(d) => d,
        Node::Int(n) => {
            return usize::try_from(*n)
                .map(|n| vec![n])
                .map_err(|_| loader.invalid("a negative dimension"));
        }
        other => return Err(loader.invalid(format!("a shape that is a {}", other.type_name()))),
    };
    if dims.len() > MAX_DIMS {
        return Err(loader.invalid(format!("{} dimensions (at most {MAX_DIMS})", dims.len())));
    }
    dims.iter()
        .map(|&d| match loader.graph.node(d) {
            Node::Int(n) => usize::try_from(*n).map_err(|_| loader.invalid("a negative dimension")),
            _ => Err(loader.invalid("a dimension that is not an int")),
        })
        .collect()
}

/// Byte strides of a contiguous array of `shape` in C or Fortran order.
pub(crate) fn contiguous_strides(shape: &[usize], itemsize: usize, fortran: bool) -> Vec<isize> {
    let mut strides = vec![0isize; shape.len()];
    let mut step = itemsize as isize;
    let mut set = |i: usize| {
        strides[i] = step;
        step = step.saturating_mul(shape[i].max(1) as isize);
    };
    if fortran {
        (0..shape.len()).for_each(&mut set);
    } else {
        (0..shape.len()).rev().for_each(&mut set);
    }
    strides
}

/// An array over `data`, which must hold exactly the elements, in C or Fortran order.
fn contiguous(
    loader: &mut Loader<'_>,
    spec: &DTypeSpec,
    shape: Vec<usize>,
    fortran: bool,
    data: Bytes,
) -> Result<Array> {
    let (dtype, order) = resolve(loader, spec)?;
    let size = dtype.size();
    let expected = shape
        .iter()
        .try_fold(size, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| loader.invalid(format!("shape {shape:?} overflows")))?;
    if expected != data.len() {
        return Err(loader.invalid(format!(
            "shape {shape:?} of {dtype} needs {expected} bytes but the data has {}",
            data.len()
        )));
    }
    if !(data.as_ptr() as usize).is_multiple_of(dtype.align()) {
        // pontoon-array copies misaligned data once: count it.
        loader.spend(data.len() as u64)?;
    }
    let strides = contiguous_strides(&shape, size, fortran);
    let limits = loader.array_limits();
    Array::from_parts(dtype, order, shape, strides, 0, data, &limits).map_err(|source| {
        LoadError::Array {
            offset: loader.at,
            source,
        }
    })
}

fn buffer_bytes(loader: &mut Loader<'_>, id: NodeId) -> Result<Bytes> {
    match loader.graph.node(id) {
        Node::Bytes(b) | Node::ByteArray(b) => Ok(b.clone()),
        Node::Str(s) => {
            // Python 2's arrays carry their data as a latin-1 str.
            let s = s.clone();
            let mut out = Vec::new();
            out.try_reserve(s.as_bytes().len())
                .map_err(|_| LoadError::OutOfMemory { offset: loader.at })?;
            loader.spend(s.as_bytes().len() as u64)?;
            for cp in s.code_points() {
                out.push(
                    u8::try_from(cp)
                        .map_err(|_| loader.invalid("array data that is not latin-1"))?,
                );
            }
            Ok(Bytes::from(out))
        }
        Node::List(_) => {
            Err(loader.invalid("an array of Python objects (dtype object is not data)"))
        }
        other => Err(loader.invalid(format!("array data that is a {}", other.type_name()))),
    }
}

/// `ndarray.__setstate__((version, shape, dtype, is_fortran, rawdata))`, or the older state
/// without `version`.
pub(crate) fn build_array(loader: &mut Loader<'_>, state: NodeId) -> Result<Array> {
    let items = loader.tuple_items(state)?;
    let [shape_id, dtype_id, fortran_id, data_id] = match items[..] {
        [_, s, d, f, r] | [s, d, f, r] => [s, d, f, r],
        _ => return Err(loader.invalid(format!("an array state of {} items", items.len()))),
    };
    let shape = shape(loader, shape_id)?;
    let spec = loader.dtype_of(dtype_id)?;
    let fortran = match loader.graph.node(fortran_id) {
        Node::Bool(b) => *b,
        Node::Int(n) => *n != 0,
        _ => return Err(loader.invalid("is_fortran that is not a bool")),
    };
    let data = buffer_bytes(loader, data_id)?;
    contiguous(loader, &spec, shape, fortran, data)
}

/// `_frombuffer(buffer, dtype, shape, order)`: the array is a view of the buffer.
pub(crate) fn from_buffer(
    loader: &mut Loader<'_>,
    buffer: NodeId,
    dtype: NodeId,
    shape_id: NodeId,
    order: NodeId,
) -> Result<Array> {
    let data = buffer_bytes(loader, buffer)?;
    let spec = loader.dtype_of(dtype)?;
    let shape = shape(loader, shape_id)?;
    let fortran = match loader.graph.node(order) {
        Node::Str(s) => match s.as_str() {
            Some("C" | "A" | "K") => false,
            Some("F") => true,
            _ => return Err(loader.invalid("an order other than C or F")),
        },
        _ => return Err(loader.invalid("an order that is not a str")),
    };
    contiguous(loader, &spec, shape, fortran, data)
}

/// The strides of `array` if its data can go out as is: C or Fortran contiguous, no offset
/// games. `None` when it must be compacted first.
pub(crate) fn layout(array: &Array) -> Option<bool> {
    if array.is_c_contiguous() {
        Some(false)
    } else if array.is_f_contiguous() {
        Some(true)
    } else {
        None
    }
}

/// The bytes of a contiguous `array`'s elements, without a copy.
pub(crate) fn element_bytes(array: &Array) -> Result<Bytes, ArrayError> {
    let size = array.dtype().size();
    let len = array.len() * size;
    let start = array.offset();
    if len == 0 {
        return Ok(Bytes::new());
    }
    // Contiguous with positive strides: the elements start at the offset.
    Ok(array.data().slice(start..start + len))
}
