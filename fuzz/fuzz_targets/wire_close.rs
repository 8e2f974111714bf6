//! Fuzz target: the close message decoder. May refuse, never panic, never reads past 128 bytes;
//! what it accepts re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pontoon_wire::{CLOSE_PREFIX_LEN, CloseMessage, MAX_CLOSE_REASON_BYTES};

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((close, len))) = CloseMessage::decode(data, 0) {
        assert!(len <= CLOSE_PREFIX_LEN + MAX_CLOSE_REASON_BYTES);
        assert_eq!(&close.encode()[..], &data[..len]);
    }
    // A prefix of an accepted message asks for more or is refused; never a different message.
    for cut in 0..data
        .len()
        .min(CLOSE_PREFIX_LEN + MAX_CLOSE_REASON_BYTES + 1)
    {
        if let Ok(Some((_, len))) = CloseMessage::decode(&data[..cut], 0) {
            assert!(len <= cut);
        }
    }
});
