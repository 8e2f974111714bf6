//! The `array` family, and `Array` inside serde structs: a header with numpy's dtype string,
//! shape and strides, and one data frame, copied on neither side.

use std::any::{Any, TypeId};

use bytes::Bytes;
use ferry_family::rmpv::Value;
use ferry_family::{Buffer, Context, Dumped, Family, FamilyError, Loaded, Object};
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
/// use ferry_array::{Array, ArrayFamily};
/// use ferry_family::Registry;
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
        let (data, strides, offset) = array.wire_parts();
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
        Ok(Box::new(array_from_meta(loaded.meta, loaded.frames)?))
    }
}

fn header_error(what: &str) -> ArrayError {
    ArrayError::Header(what.to_string())
}

/// Reads the family's header and frame back into an array, checking everything.
fn array_from_meta(meta: &Value, frames: &[Bytes]) -> Result<Array, ArrayError> {
    let field = |key: &str| {
        meta.as_map()
            .and_then(|m| m.iter().find(|(k, _)| k.as_str() == Some(key)))
            .map(|(_, v)| v)
            .ok_or_else(|| header_error(&format!("missing `{key}`")))
    };
    let descr = field("dtype")?
        .as_str()
        .ok_or_else(|| header_error("`dtype` is not a string"))?;
    let (dtype, order) = DType::parse(descr)?;
    let ints = |key: &str| -> Result<Vec<i64>, ArrayError> {
        let values = field(key)?
            .as_array()
            .ok_or_else(|| header_error(&format!("`{key}` is not a list")))?;
        if values.len() > crate::MAX_DIMS {
            return Err(ArrayError::TooManyDimensions(values.len()));
        }
        values
            .iter()
            .map(|v| {
                v.as_i64()
                    .ok_or_else(|| header_error(&format!("`{key}` holds a non-integer")))
            })
            .collect()
    };
    let shape = ints("shape")?
        .into_iter()
        .enumerate()
        .map(|(axis, len)| {
            usize::try_from(len).map_err(|_| ArrayError::NegativeDimension { axis, len })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let strides = ints("strides")?
        .into_iter()
        .map(|s| isize::try_from(s).map_err(|_| header_error("a stride does not fit this machine")))
        .collect::<Result<Vec<_>, _>>()?;
    let offset = field("offset")?
        .as_u64()
        .and_then(|o| usize::try_from(o).ok())
        .ok_or_else(|| header_error("`offset` is not an unsigned integer"))?;
    let [frame] = frames else {
        return Err(header_error(&format!(
            "expected one data frame, got {}",
            frames.len()
        )));
    };
    Array::from_parts(dtype, order, shape, strides, offset, frame.clone())
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
    /// Writes the dtype, shape, strides and offset, and the data as a [`Buffer`]: with ferry's
    /// serde family the data is a frame of its own; with other formats, bytes inline.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (data, strides, offset) = self.wire_parts();
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
    /// Reads what [`Serialize`] wrote, checking it as untrusted input.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Array, D::Error> {
        let wire = Wire::deserialize(deserializer)?;
        let (dtype, order) = DType::parse(&wire.dtype).map_err(serde::de::Error::custom)?;
        let to_usize = |n: u64| {
            usize::try_from(n)
                .map_err(|_| serde::de::Error::custom("a length does not fit this machine"))
        };
        let shape = wire
            .shape
            .into_iter()
            .map(to_usize)
            .collect::<Result<Vec<_>, _>>()?;
        let strides = wire
            .strides
            .into_iter()
            .map(|s| {
                isize::try_from(s)
                    .map_err(|_| serde::de::Error::custom("a stride does not fit this machine"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Array::from_parts(
            dtype,
            order,
            shape,
            strides,
            to_usize(wire.offset)?,
            wire.data.into_bytes(),
        )
        .map_err(serde::de::Error::custom)
    }
}
