//! The `array` family, and `Array` inside serde structs: a header with numpy's dtype string,
//! shape and strides, and one data frame, copied on neither side.

use std::any::{Any, TypeId};

use bytes::Bytes;
use pontoon_family::rmpv::Value;
use pontoon_family::{Buffer, Context, Dumped, Family, FamilyError, Loaded, Object};
use pontoon_wire::Limits;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Array, ArrayError, DType};

/// The `array` family: sends an [`Array`] as a header `{"dtype": "<f8", "shape": [...],
/// "strides": [...], "offset": n}` (numpy's dtype strings and stride convention, so it maps one to
/// one onto numpy's and Dask's array headers) and one data frame.
///
/// The frame is the smallest stretch of the array's data that holds every element, sent without
/// a copy, when that stretch is no larger than the elements themselves; otherwise (a sparse slice,
/// say) the elements are compacted to C order first. A broadcast array (stride 0) therefore sends
/// only its base.
///
/// ```
/// use pontoon_array::{Array, ArrayFamily};
/// use pontoon_family::Registry;
///
/// let mut registry = Registry::new();
/// registry.add_family(ArrayFamily)?;
/// registry.set_serializers(["array", "serde"])?;
/// registry.set_deserializers(["array", "serde"])?;
///
/// let array = Array::from_shape_vec(&[2, 2], vec![1.0f64, 2.0, 3.0, 4.0])?;
/// let message = registry.serialize(&array)?;
/// assert_eq!(message.frames[0].as_ptr(), array.data().as_ptr()); // no copy out
/// let back: Array = registry.deserialize(&message)?;
/// assert_eq!(back.data().as_ptr(), message.frames[0].as_ptr()); // no copy in
/// assert_eq!(back, array);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct ArrayFamily;

impl Family for ArrayFamily {
    fn name(&self) -> &str {
        "array"
    }

    fn produces(&self, _: &str, requested: TypeId) -> bool {
        requested == TypeId::of::<Array>()
    }

    fn dumps(&self, object: &Object<'_>, _: &Context) -> Result<Option<Dumped>, FamilyError> {
        let Some(array) = object.downcast_ref::<Array>() else {
            return Ok(None);
        };
        let (data, strides, offset) = array.wire_parts()?;
        let meta = Value::Map(vec![
            ("dtype".into(), array.descr().into()),
            (
                "shape".into(),
                Value::Array(
                    array
                        .shape()
                        .iter()
                        .map(|&n| Value::from(n as u64))
                        .collect(),
                ),
            ),
            (
                "strides".into(),
                Value::Array(strides.iter().map(|&s| Value::from(s as i64)).collect()),
            ),
            ("offset".into(), Value::from(offset as u64)),
        ]);
        Ok(Some(Dumped::new(meta, vec![data])))
    }

    fn loads(
        &self,
        loaded: &Loaded<'_>,
        _: &Context,
    ) -> Result<Box<dyn Any + Send + Sync>, FamilyError> {
        Ok(Box::new(array_from_meta(
            loaded.meta,
            loaded.frames,
            loaded.limits,
        )?))
    }
}

/// What was wrong with an array as the array family or `Array`'s serde form sends it: the
/// header's fields, its frame, or the layout they describe (checked against the receiver's
/// limits).
///
/// ```
/// use pontoon_array::{ArrayFamily, ArrayHeaderError};
/// use pontoon_family::{Context, Family, Loaded, rmpv::Value};
/// let meta = Value::Map(vec![("dtype".into(), "<f8".into())]);
/// let loaded = Loaded::new("x", &meta, &[], &pontoon_wire::Limits::DEFAULT);
/// let err = ArrayFamily.loads(&loaded, &Context::new()).unwrap_err();
/// let err = err.downcast_ref::<ArrayHeaderError>().unwrap();
/// assert!(matches!(err, ArrayHeaderError::Missing { key: "shape" }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArrayHeaderError {
    /// The header is not a map.
    #[error("the array header is not a map")]
    NotAMap,
    /// A field the header must have.
    #[error("the array header has no `{key}`")]
    Missing {
        /// The field.
        key: &'static str,
    },
    /// A field of another type than it must be.
    #[error("the array header's `{key}` is not {expected}")]
    WrongType {
        /// The field.
        key: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// More entries in `shape` or `strides` than an array has dimensions.
    #[error("the array header's `{key}` has {len} entries, more than the supported 32")]
    TooManyDimensions {
        /// The field.
        key: &'static str,
        /// Its entries.
        len: usize,
    },
    /// A negative dimension.
    #[error("dimension {axis} is negative ({len})")]
    NegativeDimension {
        /// The axis.
        axis: usize,
        /// The length given.
        len: i64,
    },
    /// A number that does not fit this machine's `usize` or `isize`.
    #[error("the array header's `{key}` holds {value}, which does not fit this machine")]
    DoesNotFit {
        /// The field.
        key: &'static str,
        /// The value.
        value: i128,
    },
    /// Other than one data frame.
    #[error("an array has one data frame, not {0}")]
    FrameCount(usize),
    /// The dtype string.
    #[error("the array header's dtype")]
    DType(#[source] ArrayError),
    /// The layout the header describes, over its frame: out of bounds, overflowing, or making
    /// more than the receiver's limits allow.
    #[error("the array header's layout")]
    Layout(#[source] ArrayError),
}

/// The header's fields, as read: integers widened so that nothing is cut before it is checked.
struct Fields<'a> {
    dtype: &'a str,
    shape: Vec<i128>,
    strides: Vec<i128>,
    offset: i128,
}

/// Checks what the fields describe and builds the array over `data`.
fn array_from_fields(
    fields: Fields<'_>,
    data: Bytes,
    limits: &Limits,
) -> Result<Array, ArrayHeaderError> {
    let (dtype, order) = DType::parse(fields.dtype).map_err(ArrayHeaderError::DType)?;
    for (key, len) in [
        ("shape", fields.shape.len()),
        ("strides", fields.strides.len()),
    ] {
        if len > crate::MAX_DIMS {
            return Err(ArrayHeaderError::TooManyDimensions { key, len });
        }
    }
    let shape = fields
        .shape
        .into_iter()
        .enumerate()
        .map(|(axis, len)| {
            if len < 0 {
                return Err(ArrayHeaderError::NegativeDimension {
                    axis,
                    len: i64::try_from(len).unwrap_or(i64::MIN),
                });
            }
            usize::try_from(len).map_err(|_| ArrayHeaderError::DoesNotFit {
                key: "shape",
                value: len,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let strides = fields
        .strides
        .into_iter()
        .map(|s| {
            isize::try_from(s).map_err(|_| ArrayHeaderError::DoesNotFit {
                key: "strides",
                value: s,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let offset = usize::try_from(fields.offset).map_err(|_| ArrayHeaderError::DoesNotFit {
        key: "offset",
        value: fields.offset,
    })?;
    Array::from_parts(dtype, order, shape, strides, offset, data, limits)
        .map_err(ArrayHeaderError::Layout)
}

/// Reads the family's header and frame back into an array, checking everything.
fn array_from_meta(
    meta: &Value,
    frames: &[Bytes],
    limits: &Limits,
) -> Result<Array, ArrayHeaderError> {
    let map = meta.as_map().ok_or(ArrayHeaderError::NotAMap)?;
    let field = |key: &'static str| {
        map.iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
            .ok_or(ArrayHeaderError::Missing { key })
    };
    let int = |key: &'static str, value: &Value| -> Result<i128, ArrayHeaderError> {
        match value {
            Value::Integer(n) => n
                .as_i64()
                .map(i128::from)
                .or_else(|| n.as_u64().map(i128::from))
                .ok_or(ArrayHeaderError::WrongType {
                    key,
                    expected: "an integer",
                }),
            _ => Err(ArrayHeaderError::WrongType {
                key,
                expected: "an integer",
            }),
        }
    };
    let ints = |key: &'static str| -> Result<Vec<i128>, ArrayHeaderError> {
        let values = field(key)?.as_array().ok_or(ArrayHeaderError::WrongType {
            key,
            expected: "a list of integers",
        })?;
        if values.len() > crate::MAX_DIMS {
            return Err(ArrayHeaderError::TooManyDimensions {
                key,
                len: values.len(),
            });
        }
        values.iter().map(|v| int(key, v)).collect()
    };
    let dtype = field("dtype")?
        .as_str()
        .ok_or(ArrayHeaderError::WrongType {
            key: "dtype",
            expected: "a string",
        })?;
    let fields = Fields {
        dtype,
        shape: ints("shape")?,
        strides: ints("strides")?,
        offset: int("offset", field("offset")?)?,
    };
    let [frame] = frames else {
        return Err(ArrayHeaderError::FrameCount(frames.len()));
    };
    array_from_fields(fields, frame.clone(), limits)
}

/// How an [`Array`] looks to serde: the same fields as the family's header, with the data as a
/// [`Buffer`], so that inside any serde struct the data travels out of band, as a frame.
#[derive(Serialize, Deserialize)]
struct Wire {
    dtype: String,
    shape: Vec<u64>,
    strides: Vec<i64>,
    offset: u64,
    data: Buffer,
}

impl Serialize for Array {
    /// Writes the dtype, shape, strides and offset, and the data as a [`Buffer`]: with pontoon's
    /// serde family the data is a frame of its own; with other formats, bytes inline.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (data, strides, offset) = self.wire_parts().map_err(serde::ser::Error::custom)?;
        Wire {
            dtype: self.descr(),
            shape: self.shape().iter().map(|&n| n as u64).collect(),
            strides: strides.iter().map(|&s| s as i64).collect(),
            offset: offset as u64,
            data: Buffer::new(data),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Array {
    /// Reads what [`Serialize`] wrote, checking it as untrusted input: against the limits of
    /// the receiver whose deserialize runs ([`pontoon_family::decode_limits`]).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Array, D::Error> {
        let wire = Wire::deserialize(deserializer)?;
        let fields = Fields {
            dtype: &wire.dtype,
            shape: wire.shape.iter().map(|&n| i128::from(n)).collect(),
            strides: wire.strides.iter().map(|&s| i128::from(s)).collect(),
            offset: i128::from(wire.offset),
        };
        array_from_fields(
            fields,
            wire.data.into_bytes(),
            &pontoon_family::decode_limits(),
        )
        // serde's errors carry text only: the whole chain goes in, or the cause is lost.
        .map_err(|e| serde::de::Error::custom(crate::error::with_causes(&e)))
    }
}
