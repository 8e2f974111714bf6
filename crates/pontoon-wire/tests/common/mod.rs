//! Helpers shared by the integration tests.

use bytes::Bytes;

/// `len` bytes of xorshift noise from `seed`: data that no codec can compress.
pub(crate) fn noise(seed: u64, len: usize) -> Bytes {
    let mut x = seed | 1;
    Bytes::from(
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect::<Vec<_>>(),
    )
}
