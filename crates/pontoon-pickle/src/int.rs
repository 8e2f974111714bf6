//! [`BigInt`]: Python `int`s beyond `i64`, kept as pickle writes them (little-endian two's
//! complement), with decimal conversions whose cost the decoder bounds by `max_int_bytes`.

use std::fmt;

/// An integer too large for `i64`, as little-endian two's-complement bytes (pickle's `LONG1`
/// and `LONG4` form), shortest first: no redundant sign bytes.
///
/// ```
/// use pontoon_pickle::BigInt;
/// let big = BigInt::from_decimal("-1180591620717411303424").unwrap(); // -(2**70)
/// assert_eq!(big.to_string(), "-1180591620717411303424");
/// assert_eq!(big.to_signed_le(), &[0, 0, 0, 0, 0, 0, 0, 0, 0xC0]);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BigInt {
    le: Box<[u8]>,
}

impl fmt::Debug for BigInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BigInt({self})")
    }
}

impl BigInt {
    /// The integer whose two's-complement little-endian bytes are `bytes` (empty is zero).
    ///
    /// ```
    /// let n = pontoon_pickle::BigInt::from_signed_le(&[0xFF, 0xFF]);
    /// assert_eq!(n.to_i64(), Some(-1));
    /// ```
    pub fn from_signed_le(bytes: &[u8]) -> BigInt {
        let negative = bytes.last().is_some_and(|b| b & 0x80 != 0);
        let fill = if negative { 0xFF } else { 0x00 };
        let mut len = bytes.len();
        // Drop sign bytes the next byte down already implies.
        while len > 1 && bytes[len - 1] == fill && (bytes[len - 2] & 0x80 != 0) == negative {
            len -= 1;
        }
        if len == 1 && bytes[0] == 0 {
            len = 0;
        }
        BigInt {
            le: bytes[..len].into(),
        }
    }

    /// The integer `value`.
    ///
    /// ```
    /// assert_eq!(pontoon_pickle::BigInt::from_i128(1 << 70).to_string(), "1180591620717411303424");
    /// ```
    pub fn from_i128(value: i128) -> BigInt {
        BigInt::from_signed_le(&value.to_le_bytes())
    }

    /// The shortest two's-complement little-endian bytes (empty for zero), as `LONG1` writes.
    ///
    /// ```
    /// assert_eq!(pontoon_pickle::BigInt::from_i128(255).to_signed_le(), &[0xFF, 0x00]);
    /// ```
    pub fn to_signed_le(&self) -> &[u8] {
        &self.le
    }

    /// The value as an `i64`, if it fits.
    ///
    /// ```
    /// assert_eq!(pontoon_pickle::BigInt::from_i128(-5).to_i64(), Some(-5));
    /// assert_eq!(pontoon_pickle::BigInt::from_i128(1 << 64).to_i64(), None);
    /// ```
    pub fn to_i64(&self) -> Option<i64> {
        if self.le.len() > 8 {
            return None;
        }
        let fill = if self.is_negative() { 0xFF } else { 0 };
        let mut buf = [fill; 8];
        buf[..self.le.len()].copy_from_slice(&self.le);
        Some(i64::from_le_bytes(buf))
    }

    /// Whether the value is below zero.
    ///
    /// ```
    /// assert!(pontoon_pickle::BigInt::from_i128(-1).is_negative());
    /// ```
    pub fn is_negative(&self) -> bool {
        self.le.last().is_some_and(|b| b & 0x80 != 0)
    }

    /// Parses an optional sign and decimal digits (underscores are not accepted). The work is
    /// quadratic in the number of digits: callers bound the length first.
    ///
    /// ```
    /// assert!(pontoon_pickle::BigInt::from_decimal("12x").is_none());
    /// assert_eq!(pontoon_pickle::BigInt::from_decimal("+42").unwrap().to_i64(), Some(42));
    /// ```
    pub fn from_decimal(text: &str) -> Option<BigInt> {
        let (negative, digits) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Magnitude in base 2^32 limbs, little-endian; nine digits at a time.
        let mut limbs: Vec<u32> = Vec::new();
        let bytes = digits.as_bytes();
        let first = bytes.len() % 9;
        let mut chunks: Vec<&[u8]> = Vec::new();
        if first > 0 {
            chunks.push(&bytes[..first]);
        }
        chunks.extend(bytes[first..].chunks(9));
        for chunk in chunks {
            let mut value = 0u64;
            for &b in chunk {
                value = value * 10 + u64::from(b - b'0');
            }
            let scale = 10u64.pow(chunk.len() as u32);
            let mut carry = value;
            for limb in limbs.iter_mut() {
                let product = u64::from(*limb) * scale + carry;
                *limb = product as u32;
                carry = product >> 32;
            }
            if carry > 0 {
                limbs.push(carry as u32);
            }
        }
        let mut le: Vec<u8> = limbs.iter().flat_map(|l| l.to_le_bytes()).collect();
        le.push(0); // room for the sign bit
        if negative {
            negate(&mut le);
        }
        Some(BigInt::from_signed_le(&le))
    }

    /// The magnitude's limbs in base 2^32, little-endian.
    fn magnitude_limbs(&self) -> Vec<u32> {
        let mut bytes = self.le.to_vec();
        if self.is_negative() {
            negate(&mut bytes);
        }
        bytes
            .chunks(4)
            .map(|c| {
                let mut buf = [0u8; 4];
                buf[..c.len()].copy_from_slice(c);
                u32::from_le_bytes(buf)
            })
            .collect()
    }
}

/// Two's-complement negation in place.
fn negate(bytes: &mut [u8]) {
    let mut carry = true;
    for b in bytes.iter_mut() {
        let (value, overflow) = (!*b).overflowing_add(u8::from(carry));
        *b = value;
        carry = carry && overflow;
    }
}

/// Decimal, as Python's `str(int)` writes it. Quadratic in the length; the decoder bounds it.
impl fmt::Display for BigInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut limbs = self.magnitude_limbs();
        let mut groups: Vec<u32> = Vec::new();
        while limbs.iter().any(|&l| l != 0) {
            let mut remainder = 0u64;
            for limb in limbs.iter_mut().rev() {
                let value = (remainder << 32) | u64::from(*limb);
                *limb = (value / 1_000_000_000) as u32;
                remainder = value % 1_000_000_000;
            }
            groups.push(remainder as u32);
            while limbs.last() == Some(&0) {
                limbs.pop();
            }
        }
        let mut text = String::new();
        if self.is_negative() {
            text.push('-');
        }
        match groups.split_last() {
            None => text.push('0'),
            Some((top, rest)) => {
                text.push_str(&top.to_string());
                for group in rest.iter().rev() {
                    text.push_str(&format!("{group:09}"));
                }
            }
        }
        f.write_str(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn decimal_round_trips_every_i128(value: i128) {
            let big = BigInt::from_i128(value);
            prop_assert_eq!(big.to_string(), value.to_string());
            prop_assert_eq!(BigInt::from_decimal(&value.to_string()), Some(big.clone()));
            prop_assert_eq!(big.to_i64(), i64::try_from(value).ok());
        }
    }

    #[test]
    fn zero_is_empty() {
        assert!(BigInt::from_i128(0).to_signed_le().is_empty());
        assert_eq!(BigInt::from_signed_le(&[0, 0, 0]).to_string(), "0");
        assert_eq!(BigInt::from_decimal("-0").unwrap().to_string(), "0");
    }
}
