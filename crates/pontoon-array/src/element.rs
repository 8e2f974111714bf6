//! [`Element`]: the Rust types an array's elements can be viewed as.

use num_complex::{Complex32, Complex64};

use crate::DType;

/// A Rust type that array elements can be viewed as, without a copy: plain old data of the size
/// and alignment of its [`DType`].
///
/// `u8` also views `bool` arrays (the bytes as stored: 0 or 1 when the array came from numpy or
/// pontoon, unchecked for bytes from elsewhere), and `i64` views `datetime64` and `timedelta64`
/// arrays (counts of their unit).
///
/// ```
/// use pontoon_array::{DType, Element};
/// assert_eq!(<f32 as Element>::DTYPE, DType::F32);
/// ```
pub trait Element: bytemuck::Pod + Send + Sync + 'static {
    /// The dtype of arrays built from this type.
    const DTYPE: DType;

    /// Whether arrays of `dtype` may be viewed as this type.
    fn views(dtype: DType) -> bool {
        dtype == Self::DTYPE
    }
}

macro_rules! element {
    ($($ty:ty => $dtype:expr),*) => {$(
        impl Element for $ty {
            const DTYPE: DType = $dtype;
        }
    )*};
}

element!(i8 => DType::I8, i16 => DType::I16, i32 => DType::I32, u16 => DType::U16,
    u32 => DType::U32, u64 => DType::U64, f32 => DType::F32, f64 => DType::F64,
    Complex32 => DType::C64, Complex64 => DType::C128);

impl Element for u8 {
    const DTYPE: DType = DType::U8;
    fn views(dtype: DType) -> bool {
        matches!(dtype, DType::U8 | DType::Bool)
    }
}

impl Element for i64 {
    const DTYPE: DType = DType::I64;
    fn views(dtype: DType) -> bool {
        matches!(dtype, DType::I64 | DType::DateTime(_) | DType::TimeDelta(_))
    }
}
