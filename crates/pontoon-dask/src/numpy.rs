//! The `dask` family's numpy sub-header (`dtype`, `shape`, `strides`, `writeable`,
//! `broadcast_to`), read into an [`NdArray`] over its frame and written the way
//! `distributed.protocol.numpy.serialize_numpy_ndarray` writes it.

use bytes::Bytes;
use pontoon_array::{Array, DType};
use pontoon_wire::Limits;

use crate::msgpack::{Field, Fields, Raw};
use crate::value::{ArrayData, NdArray, RawArray, RawDType, Value};
use crate::{DecodeError, EncodeError};

const CONTEXT: &str = "numpy sub-header";

fn bad(field: &'static str, detail: impl Into<String>) -> DecodeError {
    DecodeError::BadField {
        field,
        context: CONTEXT,
        detail: detail.into(),
    }
}

fn usize_list(value: Option<Raw>, field: &'static str) -> Result<Vec<usize>, DecodeError> {
    let items = value
        .and_then(Raw::as_list)
        .ok_or_else(|| bad(field, "not a list"))?;
    let mut list = Vec::new();
    list.try_reserve_exact(items.len())
        .map_err(|_| bad(field, "too long"))?;
    for v in items {
        list.push(
            v.as_i64()
                .and_then(|i| usize::try_from(i).ok())
                .ok_or_else(|| bad(field, "not a list of non-negative ints"))?,
        );
    }
    Ok(list)
}

fn isize_list(value: Option<Raw>, field: &'static str) -> Result<Vec<isize>, DecodeError> {
    let items = value
        .and_then(Raw::as_list)
        .ok_or_else(|| bad(field, "not a list"))?;
    let mut list = Vec::new();
    list.try_reserve_exact(items.len())
        .map_err(|_| bad(field, "too long"))?;
    for v in items {
        list.push(
            v.as_i64()
                .and_then(|i| isize::try_from(i).ok())
                .ok_or_else(|| bad(field, "not a list of ints"))?,
        );
    }
    Ok(list)
}

/// The bytes per element of a numpy dtype string pontoon-array does not model (`S3`, `U5`,
/// `V4`, `f2`, `f16`): the count after the kind letter, four bytes a character for `U`. Object
/// arrays (`O`) are refused: their elements are Python objects.
fn raw_itemsize(descr: &str) -> Option<usize> {
    let body = descr.strip_prefix(['<', '>', '|', '=']).unwrap_or(descr);
    let mut chars = body.chars();
    let kind = chars.next()?;
    let n: usize = chars.as_str().parse().ok()?;
    // Only what numpy has: strings and voids of any size (zero too), and the numbers
    // pontoon-array does not model (half and long double floats, long double complex); no
    // `<f0` or `<i7`, which no numpy array has.
    match (kind, n) {
        ('U', n) => n.checked_mul(4),
        ('S' | 'V', n) => Some(n),
        ('f', 2 | 12 | 16) | ('c', 24 | 32) => Some(n),
        _ => None,
    }
}

/// Checks that every element of a raw array lies inside `len` bytes from offset 0, and that
/// its elements (a broadcast repeats bytes) make at most `limits.max_expansion(len)` bytes,
/// each counted as one byte at least: elements of zero bytes cost nothing to hold, but walking
/// them (a copy into C order, a hash) costs a step each, which a peer must pay for too.
pub(crate) fn check_raw_layout(
    itemsize: usize,
    shape: &[usize],
    strides: &[isize],
    len: usize,
    limits: &Limits,
) -> Result<(), DecodeError> {
    let err = || DecodeError::RawOutOfBounds {
        itemsize,
        shape: shape.to_vec(),
        strides: strides.to_vec(),
        len,
    };
    if shape.len() != strides.len() {
        return Err(err());
    }
    if shape.contains(&0) {
        return Ok(()); // no elements lie anywhere
    }
    let mut count: u128 = 1;
    let (mut low, mut high): (i128, i128) = (0, 0);
    for (&n, &s) in shape.iter().zip(strides) {
        count = count.saturating_mul(n as u128);
        let reach = (n as i128 - 1) * s as i128;
        if reach < 0 {
            low += reach;
        } else {
            high += reach;
        }
    }
    if low < 0 || high + itemsize as i128 > len as i128 {
        return Err(err());
    }
    let logical = count.saturating_mul(itemsize.max(1) as u128);
    let limit = limits.max_expansion(len as u64).max(len as u64);
    if logical > u128::from(limit) {
        return Err(DecodeError::ExpansionTooLarge {
            frame: 0,
            bytes: u64::try_from(logical).unwrap_or(u64::MAX),
            limit,
        });
    }
    Ok(())
}

/// The array a numpy sub-header (read from `header_frame`) and its one frame describe.
/// `frame_index` names the frame in errors.
pub(crate) fn decode(
    sub: &Fields,
    header_frame: &Bytes,
    frame: Bytes,
    frame_index: usize,
    limits: &Limits,
) -> Result<NdArray, DecodeError> {
    let writeable = match sub
        .get(Field::Writeable)
        .and_then(Raw::as_list)
        .map(|l| (l.len(), l.iter().next()))
    {
        Some((1, Some(Raw::Bool(w)))) => w,
        Some((1, Some(Raw::Nil))) => true,
        _ => return Err(bad("writeable", "not a list of one bool")),
    };
    let dtype = sub
        .get(Field::Dtype)
        .and_then(Raw::as_list)
        .ok_or_else(|| bad("dtype", "not a pair"))?;
    let strides = isize_list(sub.get(Field::Strides), "strides")?;
    let sent_shape = usize_list(sub.get(Field::Shape), "shape")?;
    // The elements sent, before any broadcast, back to back in the frame.
    let sent_elements = sent_shape
        .iter()
        .try_fold(1usize, |a, &n| a.checked_mul(n))
        .ok_or_else(|| bad("shape", "its element count overflows"))?;
    let shape = match sub.get(Field::BroadcastTo) {
        Some(Raw::Nil) | None => sent_shape,
        Some(b) => usize_list(Some(b), "broadcast_to")?,
    };
    let mut dtype_items = dtype.iter();
    let data = match (dtype.len(), dtype_items.next(), dtype_items.next()) {
        (2, Some(Raw::Int(0)), Some(Raw::Str(descr))) => match DType::parse(descr) {
            Ok((dtype, order)) => ArrayData::Numeric(
                Array::from_parts(dtype, order, shape, strides, 0, frame, limits).map_err(
                    |source| DecodeError::Array {
                        frame: frame_index,
                        source,
                    },
                )?,
            ),
            Err(_) => {
                let itemsize = raw_itemsize(descr)
                    .ok_or_else(|| DecodeError::UnsupportedDType(descr.to_owned()))?;
                ArrayData::Raw(RawArray::checked(
                    RawDType::Descr(descr.to_owned()),
                    itemsize,
                    shape,
                    strides,
                    frame,
                    limits,
                )?)
            }
        },
        (2, Some(Raw::Int(1)), Some(Raw::Bin(pickled))) => {
            let itemsize = match sent_elements {
                0 => 1,
                n if frame.len().is_multiple_of(n) && !frame.is_empty() => frame.len() / n,
                _ => return Err(bad("dtype", "the frame is not a whole number of elements")),
            };
            ArrayData::Raw(RawArray::checked(
                RawDType::Pickled(header_frame.slice_ref(pickled)),
                itemsize,
                shape,
                strides,
                frame,
                limits,
            )?)
        }
        _ => return Err(bad("dtype", "not (0, str) or (1, bytes)")),
    };
    Ok(NdArray { data, writeable })
}

/// Whether a layout is C- or Fortran-contiguous by numpy's rule (axes of length 1 do not count).
fn contiguous(itemsize: usize, shape: &[usize], strides: &[isize]) -> bool {
    let check = |axes: &mut dyn Iterator<Item = (&usize, &isize)>| {
        let mut expected = itemsize as isize;
        for (&n, &s) in axes {
            if n > 1 && s != expected {
                return false;
            }
            expected = expected.saturating_mul(n as isize);
        }
        true
    };
    shape.contains(&0)
        || check(&mut shape.iter().zip(strides).rev())
        || check(&mut shape.iter().zip(strides))
}

/// What encoding an array produces: the sub-header, the data frame, and the bytes per element
/// Dask's shards are cut on.
pub(crate) struct Encoded {
    pub(crate) sub_header: Value,
    pub(crate) frame: Bytes,
    pub(crate) itemsize: usize,
}

/// Writes `array` as Dask does: the dtype as `(0, dtype.str)` (or `(1, pickle)` for structured
/// dtypes), a broadcast array as its un-broadcast elements plus `broadcast_to`, a
/// non-contiguous array made C-contiguous.
pub(crate) fn encode(array: &NdArray) -> Result<Encoded, EncodeError> {
    let (descr, itemsize, shape, strides, data, offset): (
        Result<String, Bytes>,
        usize,
        Vec<usize>,
        Vec<isize>,
        Bytes,
        usize,
    ) = match &array.data {
        ArrayData::Numeric(a) => (
            Ok(a.descr()),
            a.dtype().size(),
            a.shape().to_vec(),
            a.strides().to_vec(),
            a.data().clone(),
            a.offset(),
        ),
        ArrayData::Raw(r) => (
            match &r.dtype {
                RawDType::Descr(d) => Ok(d.clone()),
                RawDType::Pickled(p) => Err(p.clone()),
            },
            r.itemsize,
            r.shape.clone(),
            r.strides.clone(),
            r.data.clone(),
            0,
        ),
    };
    let broadcast_to = strides.contains(&0).then(|| shape.clone());
    // The elements before the broadcast: one along every axis of stride 0.
    let sent_shape: Vec<usize> = shape
        .iter()
        .zip(&strides)
        .map(|(&n, &s)| if s == 0 { n.min(1) } else { n })
        .collect();
    let count: usize = sent_shape.iter().product();
    let (frame, sent_strides) = if itemsize == 0 {
        // Elements of zero bytes (`|S0`, `|V0`) have nothing to copy: the frame and layout go
        // as they came, not remade with strides of zero that would read as a broadcast.
        (data.clone(), strides.clone())
    } else if count == 0 {
        // No elements, no span: the span's start below would be wrong for an axis of length 0
        // with a negative stride (`(0 - 1) * -3` puts it 3 bytes into an empty frame).
        (data.slice(0..0), strides.clone())
    } else if contiguous(itemsize, &sent_shape, &strides) {
        // The span the elements lie in, from the lowest address.
        let low: isize = sent_shape
            .iter()
            .zip(&strides)
            .filter(|&(_, &s)| s < 0)
            .map(|(&n, &s)| (n as isize - 1) * s)
            .sum();
        let start = (offset as isize + low) as usize;
        (data.slice(start..start + count * itemsize), strides.clone())
    } else {
        let bytes = match &array.data {
            ArrayData::Numeric(a) => {
                let view = Array::from_parts(
                    a.dtype(),
                    a.byte_order(),
                    sent_shape.clone(),
                    strides.clone(),
                    a.offset(),
                    a.data().clone(),
                    &Limits::UNLIMITED,
                )
                .and_then(|v| v.to_contiguous())
                .map_err(EncodeError::Array)?;
                view.data()
                    .slice(view.offset()..view.offset() + count * itemsize)
            }
            ArrayData::Raw(r) => {
                let view = RawArray {
                    shape: sent_shape.clone(),
                    ..r.clone()
                };
                Bytes::from(view.c_order_bytes())
            }
        };
        let mut c_strides = vec![0isize; sent_shape.len()];
        let mut step = itemsize as isize;
        for (axis, &n) in sent_shape.iter().enumerate().rev() {
            c_strides[axis] = step;
            step *= n.max(1) as isize;
        }
        // A broadcast axis keeps its zero stride (numpy's `as_strided` after the copy).
        let strides = c_strides
            .iter()
            .zip(&strides)
            .map(|(&c, &s)| if s == 0 { 0 } else { c })
            .collect();
        (bytes, strides)
    };
    let ints = |v: &[usize]| Value::List(v.iter().map(|&n| Value::Int(n as i64)).collect());
    let mut sub = vec![
        (
            Value::from("dtype"),
            Value::List(match &descr {
                Ok(d) => vec![Value::Int(0), Value::from(d.as_str())],
                Err(p) => vec![Value::Int(1), Value::Bin(p.clone())],
            }),
        ),
        (Value::from("shape"), ints(&sent_shape)),
        (
            Value::from("strides"),
            Value::List(sent_strides.iter().map(|&s| Value::Int(s as i64)).collect()),
        ),
        (
            Value::from("writeable"),
            Value::List(vec![Value::Bool(array.writeable)]),
        ),
    ];
    if let Some(b) = &broadcast_to {
        sub.push((Value::from("broadcast_to"), ints(b)));
    }
    // numpy's buffer of a structured or wide dtype is viewed as `u{gcd(itemsize, 8)}`.
    let shard_item = match descr {
        Ok(_) if itemsize <= 8 => itemsize,
        _ => gcd(itemsize, 8),
    };
    Ok(Encoded {
        sub_header: Value::Map(sub),
        frame,
        itemsize: shard_item.max(1),
    })
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}
