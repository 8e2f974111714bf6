//! Fuzz target: header validation. Bytes it accepts must read back as a MessagePack value and
//! re-encode to a header that is accepted too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pontoon_wire::Header;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = Header::from_msgpack(bytes::Bytes::copy_from_slice(data)) {
        let value = header
            .to_value()
            .expect("a validated header reads as a value");
        let again = Header::from_value(&value);
        Header::from_msgpack(again.into_bytes()).expect("a re-encoded header validates");
    }
});
