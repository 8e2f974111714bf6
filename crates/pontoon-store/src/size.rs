//! Byte sizes as people write them (`64MiB`, `2GiB`, `1.5G`) and as the CLI prints them.

use std::fmt;
use std::str::FromStr;

/// A number of bytes, parsed from `4096`, `64KiB`, `64MiB`, `2GiB`, `1TiB` (powers of 1024) or
/// `64kB`, `64MB`, `2GB` (powers of 1000), with an optional space and fraction (`1.5GiB`);
/// displayed with the largest binary unit that keeps at least one whole unit.
///
/// ```
/// use pontoon_store::ByteSize;
/// assert_eq!("64MiB".parse::<ByteSize>()?.0, 64 << 20);
/// assert_eq!("2 GiB".parse::<ByteSize>()?.0, 2 << 30);
/// assert_eq!("1.5KiB".parse::<ByteSize>()?.0, 1536);
/// assert_eq!("3GB".parse::<ByteSize>()?.0, 3_000_000_000);
/// assert_eq!(ByteSize(3 << 29).to_string(), "1.5 GiB");
/// # Ok::<(), pontoon_store::ParseSizeError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

/// Text that is not a byte size, or one too large for 64 bits.
///
/// ```
/// let err = "12 parsecs".parse::<pontoon_store::ByteSize>().unwrap_err();
/// assert!(err.to_string().contains("parsecs"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a byte size (write e.g. 4096, 64KiB, 64MiB, 2GiB, 3GB)")]
#[non_exhaustive]
pub struct ParseSizeError {
    /// The text given (at most 64 characters of it).
    pub text: String,
}

const UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("b", 1),
    ("k", 1 << 10),
    ("kib", 1 << 10),
    ("kb", 1000),
    ("m", 1 << 20),
    ("mib", 1 << 20),
    ("mb", 1_000_000),
    ("g", 1 << 30),
    ("gib", 1 << 30),
    ("gb", 1_000_000_000),
    ("t", 1 << 40),
    ("tib", 1 << 40),
    ("tb", 1_000_000_000_000),
];

impl FromStr for ByteSize {
    type Err = ParseSizeError;

    fn from_str(text: &str) -> Result<ByteSize, ParseSizeError> {
        let fail = || ParseSizeError {
            text: text.chars().take(64).collect(),
        };
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(split);
        let unit = unit.trim().to_ascii_lowercase();
        let &(_, scale) = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .ok_or_else(fail)?;
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() || fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return Err(fail());
        }
        let whole: u64 = whole.parse().map_err(|_| fail())?;
        let mut bytes = whole.checked_mul(scale).ok_or_else(fail)?;
        if !fraction.is_empty() {
            let digits: u128 = fraction.parse().map_err(|_| fail())?;
            let denominator = 10u128.pow(fraction.len() as u32);
            let part = digits * u128::from(scale) / denominator;
            bytes = bytes
                .checked_add(u64::try_from(part).map_err(|_| fail())?)
                .ok_or_else(fail)?;
        }
        Ok(ByteSize(bytes))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
        let mut unit = 0;
        while unit + 1 < NAMES.len() && self.0 >= 1u64 << (10 * (unit + 1)) {
            unit += 1;
        }
        if unit == 0 {
            return write!(f, "{} B", self.0);
        }
        let value = self.0 as f64 / (1u64 << (10 * unit)) as f64;
        let text = format!("{value:.1}");
        let text = text.strip_suffix(".0").unwrap_or(&text);
        write!(f, "{text} {}", NAMES[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_refuses_garbage_and_overflow() {
        let ok = |s: &str| s.parse::<ByteSize>().unwrap().0;
        assert_eq!(ok("0"), 0);
        assert_eq!(ok("64MiB"), 64 << 20);
        assert_eq!(ok("64mib"), 64 << 20);
        assert_eq!(ok("64M"), 64 << 20);
        assert_eq!(ok("2GiB"), 2 << 30);
        for bad in [
            "",
            "MiB",
            "1.2.3GiB",
            "-1",
            "1 parsec",
            "99999999999TiB",
            ".5G",
            "1.0000000001G",
        ] {
            assert!(bad.parse::<ByteSize>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn displays_the_largest_whole_unit() {
        assert_eq!(ByteSize(0).to_string(), "0 B");
        assert_eq!(ByteSize(1023).to_string(), "1023 B");
        assert_eq!(ByteSize(1024).to_string(), "1 KiB");
        assert_eq!(ByteSize(64 << 20).to_string(), "64 MiB");
    }
}
