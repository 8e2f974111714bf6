//! [`DType`]: what one element is, with numpy's dtype strings (`<f8`, `>i4`, `|b1`, `<M8[us]`).

use std::fmt;
use std::str::FromStr;

use crate::ArrayError;

/// The unit of a `datetime64` or `timedelta64` element.
///
/// ```
/// use pontoon_array::TimeUnit;
/// assert_eq!(TimeUnit::Microsecond.code(), "us");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeUnit {
    /// Years (`Y`).
    Year,
    /// Months (`M`).
    Month,
    /// Weeks (`W`).
    Week,
    /// Days (`D`).
    Day,
    /// Hours (`h`).
    Hour,
    /// Minutes (`m`).
    Minute,
    /// Seconds (`s`).
    Second,
    /// Milliseconds (`ms`).
    Millisecond,
    /// Microseconds (`us`).
    Microsecond,
    /// Nanoseconds (`ns`).
    Nanosecond,
    /// Picoseconds (`ps`).
    Picosecond,
    /// Femtoseconds (`fs`).
    Femtosecond,
    /// Attoseconds (`as`).
    Attosecond,
}

const UNITS: [(TimeUnit, &str); 13] = [
    (TimeUnit::Year, "Y"),
    (TimeUnit::Month, "M"),
    (TimeUnit::Week, "W"),
    (TimeUnit::Day, "D"),
    (TimeUnit::Hour, "h"),
    (TimeUnit::Minute, "m"),
    (TimeUnit::Second, "s"),
    (TimeUnit::Millisecond, "ms"),
    (TimeUnit::Microsecond, "us"),
    (TimeUnit::Nanosecond, "ns"),
    (TimeUnit::Picosecond, "ps"),
    (TimeUnit::Femtosecond, "fs"),
    (TimeUnit::Attosecond, "as"),
];

impl TimeUnit {
    /// numpy's code for the unit.
    ///
    /// ```
    /// assert_eq!(pontoon_array::TimeUnit::Nanosecond.code(), "ns");
    /// ```
    pub fn code(self) -> &'static str {
        UNITS
            .iter()
            .find(|(u, _)| *u == self)
            .map(|(_, c)| *c)
            .expect("every unit has a code")
    }

    fn from_code(code: &str) -> Option<TimeUnit> {
        UNITS.iter().find(|(_, c)| *c == code).map(|(u, _)| *u)
    }
}

/// The type of one element.
///
/// ```
/// use pontoon_array::DType;
/// assert_eq!(DType::F64.size(), 8);
/// assert_eq!(DType::C64.size(), 8); // two f32
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DType {
    /// `bool`, one byte holding 0 or 1.
    Bool,
    /// `i8`.
    I8,
    /// `i16`.
    I16,
    /// `i32`.
    I32,
    /// `i64`.
    I64,
    /// `u8`.
    U8,
    /// `u16`.
    U16,
    /// `u32`.
    U32,
    /// `u64`.
    U64,
    /// `f32`.
    F32,
    /// `f64`.
    F64,
    /// Complex of two `f32` (numpy `complex64`).
    C64,
    /// Complex of two `f64` (numpy `complex128`).
    C128,
    /// `datetime64`: an `i64` count of units since the Unix epoch.
    DateTime(TimeUnit),
    /// `timedelta64`: an `i64` count of units.
    TimeDelta(TimeUnit),
}

impl DType {
    /// Every dtype without a time unit, smallest kinds first.
    ///
    /// ```
    /// assert!(pontoon_array::DType::NUMERIC.iter().all(|d| d.size() <= 16));
    /// ```
    pub const NUMERIC: [DType; 13] = [
        DType::Bool,
        DType::I8,
        DType::I16,
        DType::I32,
        DType::I64,
        DType::U8,
        DType::U16,
        DType::U32,
        DType::U64,
        DType::F32,
        DType::F64,
        DType::C64,
        DType::C128,
    ];

    /// Bytes per element.
    ///
    /// ```
    /// assert_eq!(pontoon_array::DType::I16.size(), 2);
    /// ```
    pub fn size(self) -> usize {
        match self {
            DType::Bool | DType::I8 | DType::U8 => 1,
            DType::I16 | DType::U16 => 2,
            DType::I32 | DType::U32 | DType::F32 => 4,
            DType::I64 | DType::U64 | DType::F64 | DType::C64 => 8,
            DType::DateTime(_) | DType::TimeDelta(_) => 8,
            DType::C128 => 16,
        }
    }

    /// The alignment an element needs in memory.
    ///
    /// ```
    /// assert_eq!(pontoon_array::DType::C128.align(), 8);
    /// ```
    pub fn align(self) -> usize {
        match self {
            DType::C64 => 4,
            DType::C128 => 8,
            other => other.size(),
        }
    }

    /// numpy's kind and size, without the byte order: `f8`, `i4`, `b1`, `M8[us]`, `c16`.
    fn code(self) -> String {
        match self {
            DType::Bool => "b1".into(),
            DType::I8 => "i1".into(),
            DType::I16 => "i2".into(),
            DType::I32 => "i4".into(),
            DType::I64 => "i8".into(),
            DType::U8 => "u1".into(),
            DType::U16 => "u2".into(),
            DType::U32 => "u4".into(),
            DType::U64 => "u8".into(),
            DType::F32 => "f4".into(),
            DType::F64 => "f8".into(),
            DType::C64 => "c8".into(),
            DType::C128 => "c16".into(),
            DType::DateTime(unit) => format!("M8[{}]", unit.code()),
            DType::TimeDelta(unit) => format!("m8[{}]", unit.code()),
        }
    }

    /// numpy's dtype string for this type in `order`: `<f8`, `>i4`, and `|` for one-byte types.
    ///
    /// ```
    /// use pontoon_array::{ByteOrder, DType, TimeUnit};
    /// assert_eq!(DType::F64.descr(ByteOrder::Little), "<f8");
    /// assert_eq!(DType::Bool.descr(ByteOrder::Big), "|b1");
    /// assert_eq!(DType::DateTime(TimeUnit::Microsecond).descr(ByteOrder::Little), "<M8[us]");
    /// ```
    pub fn descr(self, order: ByteOrder) -> String {
        let prefix = match (self.size(), order) {
            (1, _) => '|',
            (_, ByteOrder::Little) => '<',
            (_, ByteOrder::Big) => '>',
        };
        format!("{prefix}{}", self.code())
    }

    /// Parses a numpy dtype string (`<f8`, `>i4`, `|b1`, `=u2`, `<M8[ns]`, `<c16`): the type and
    /// the byte order. `=` means this machine's order; a one-byte type has no order (`|`).
    ///
    /// ```
    /// use pontoon_array::{ByteOrder, DType};
    /// assert_eq!(DType::parse(">i4")?, (DType::I32, ByteOrder::Big));
    /// assert!(DType::parse("<U10").is_err()); // strings are not numeric arrays
    /// # Ok::<(), pontoon_array::ArrayError>(())
    /// ```
    pub fn parse(descr: &str) -> Result<(DType, ByteOrder), ArrayError> {
        let unknown = || ArrayError::UnknownDType(descr.chars().take(64).collect());
        let mut chars = descr.chars();
        let order = match chars.next().ok_or_else(unknown)? {
            '<' => Some(ByteOrder::Little),
            '>' => Some(ByteOrder::Big),
            '=' => Some(ByteOrder::NATIVE),
            '|' => None,
            _ => return Err(unknown()),
        };
        let code = chars.as_str();
        let dtype = match code {
            "b1" | "?" => DType::Bool,
            "i1" => DType::I8,
            "i2" => DType::I16,
            "i4" => DType::I32,
            "i8" => DType::I64,
            "u1" => DType::U8,
            "u2" => DType::U16,
            "u4" => DType::U32,
            "u8" => DType::U64,
            "f4" => DType::F32,
            "f8" => DType::F64,
            "c8" => DType::C64,
            "c16" => DType::C128,
            _ => {
                let (kind, unit) = code
                    .strip_suffix(']')
                    .and_then(|c| c.split_once('['))
                    .ok_or_else(unknown)?;
                let unit = TimeUnit::from_code(unit).ok_or_else(unknown)?;
                match kind {
                    "M8" => DType::DateTime(unit),
                    "m8" => DType::TimeDelta(unit),
                    _ => return Err(unknown()),
                }
            }
        };
        // One-byte types have no byte order; multi-byte types must say theirs.
        match (dtype.size(), order) {
            (1, _) => Ok((dtype, ByteOrder::NATIVE)),
            (_, Some(order)) => Ok((dtype, order)),
            (_, None) => Err(unknown()),
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.descr(ByteOrder::NATIVE))
    }
}

impl FromStr for DType {
    type Err = ArrayError;

    /// The type of a numpy dtype string; the byte order must be this machine's.
    fn from_str(s: &str) -> Result<DType, ArrayError> {
        match DType::parse(s)? {
            (dtype, ByteOrder::NATIVE) => Ok(dtype),
            _ => Err(ArrayError::UnknownDType(format!(
                "{s} (not this machine's byte order)"
            ))),
        }
    }
}

/// The byte order of multi-byte elements.
///
/// ```
/// assert_eq!(pontoon_array::ByteOrder::NATIVE, pontoon_array::ByteOrder::Little); // on x86 and ARM
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    /// Least significant byte first.
    Little,
    /// Most significant byte first.
    Big,
}

impl ByteOrder {
    /// This machine's byte order.
    #[cfg(target_endian = "little")]
    pub const NATIVE: ByteOrder = ByteOrder::Little;
    /// This machine's byte order.
    #[cfg(target_endian = "big")]
    pub const NATIVE: ByteOrder = ByteOrder::Big;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dtype_round_trips_through_its_string() {
        let mut all = DType::NUMERIC.to_vec();
        for (unit, _) in UNITS {
            all.push(DType::DateTime(unit));
            all.push(DType::TimeDelta(unit));
        }
        for dtype in all {
            for order in [ByteOrder::Little, ByteOrder::Big] {
                let (back, back_order) = DType::parse(&dtype.descr(order)).unwrap();
                assert_eq!(back, dtype);
                if dtype.size() > 1 {
                    assert_eq!(back_order, order);
                }
            }
        }
    }

    #[test]
    fn unknown_strings_are_refused() {
        for bad in [
            "", "f8", "<f3", "<U10", "|f8", "<M8", "<M8[xs]", "<O", "<V16", "<M8[us",
        ] {
            assert!(DType::parse(bad).is_err(), "{bad}");
        }
    }
}
