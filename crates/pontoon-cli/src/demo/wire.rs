//! The demo's first part: one mixed message through pontoon-wire, with sizes, copies and speed.

use std::error::Error;

use super::{Args, duration, rate, size, timed};

use bytes::{Bytes, BytesMut};
use pontoon::wire::{Codec, Decoder, EncodeOptions, Encoder, Header, Limits, Message, preamble};
use serde::{Deserialize, Serialize};

/// The kind of small administrative message a scheduler and its workers exchange.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct TaskFinished {
    op: String,
    key: String,
    worker: String,
    nbytes: u64,
    dtype: String,
    shape: Vec<u64>,
}

pub(super) fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    let payload_len = args.payload_mib << 20;
    // Fill the payload so its pages are real memory, not shared zero pages.
    let payload = Bytes::from(
        (0..payload_len)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    let admin = TaskFinished {
        op: "task-finished".into(),
        key: "('array-sum', 0, 3)".into(),
        worker: "tcp://127.0.0.1:40471".into(),
        nbytes: payload_len as u64,
        dtype: "<f8".into(),
        shape: vec![(payload_len / 8) as u64],
    };
    let message = Message::new(Header::from_serde(&admin)?, vec![payload.clone()]);

    // The demo decodes what it encoded itself: its repeating payload compresses far past the
    // expansion ratio a receiver allows a peer by default (zstd makes it thousands to one), so
    // the receiver says it allows that, and the encoder, told so, keeps the compression.
    let mut limits = Limits::default();
    limits.max_frame_bytes = limits.max_frame_bytes.max(payload_len as u64);
    limits.max_expansion_ratio = u64::MAX;
    limits.max_expanded_bytes = limits.max_expanded_bytes.max(payload_len as u64);
    let encoder = Encoder::new({
        let mut options = EncodeOptions::default();
        options.codec = args.codec;
        options.checksums = args.checksums;
        options.receiver_limits = limits;
        options
    });
    let (encoded, encode_time) = timed(|| encoder.encode(&message));
    let encoded = encoded?;
    let payload_chunks = encoded
        .chunks()
        .iter()
        .filter(|c| c.as_ptr() == payload.as_ptr())
        .count();

    // The stand-in for a socket: the receiver's buffer, allocated and touched up front as a pooled
    // buffer would be, then filled with the bytes a vectored write would send.
    let wire_len = preamble().len() + encoded.len() as usize;
    let mut received = BytesMut::with_capacity(wire_len);
    received.resize(wire_len, 0xA5);
    received.clear();
    let (_, transfer_time) = timed(|| {
        received.extend_from_slice(&preamble());
        for chunk in encoded.chunks() {
            received.extend_from_slice(chunk);
        }
    });
    let receive_range = received.as_ptr() as usize..received.as_ptr() as usize + received.len();

    let mut decoder = Decoder::with_limits(limits);
    let (decoded, decode_time) = timed(|| decoder.decode(&mut received));
    let decoded =
        decoded?.ok_or("the whole message was in the buffer, yet the decoder asked for more")?;
    let back: TaskFinished = decoded.header.deserialize()?;
    if back != admin || decoded.frames != message.frames {
        return Err("the decoded message differs from the one sent".into());
    }
    let frame = &decoded.frames[0];
    let copied = !receive_range.contains(&(frame.as_ptr() as usize));

    let info = encoded.frames()[0];
    println!("pontoon demo: one mixed message through pontoon-wire (encode, transfer, decode)");
    println!(
        "  admin header      {} fields, {} bytes of MessagePack",
        6,
        message.header.as_bytes().len()
    );
    println!(
        "  payload           {} frame, {}",
        message.frames.len(),
        size(payload_len as u64)
    );
    println!(
        "  options           codec {}, checksums {}",
        args.codec,
        if args.checksums { "on" } else { "off" }
    );
    println!(
        "  on the wire       {} (frame sent as {}, {}), {} chunks for a vectored write",
        size(wire_len as u64),
        info.codec,
        size(info.wire_len),
        encoded.chunks().len()
    );
    println!("  frames decoded    {}", decoded.frames.len());
    println!(
        "  payload copied    encode: {}; decode: {}",
        if payload_chunks == 1 {
            "no (the chunk is the payload itself)"
        } else {
            "yes (compressed)"
        },
        match (copied, info.codec) {
            (false, _) => "no (the frame is a view of the receive buffer)",
            (true, Codec::None) => "YES",
            (true, _) => "decompressed into one new buffer",
        }
    );
    println!(
        "  encode            {:>10}  {}",
        duration(encode_time),
        rate(payload_len, encode_time)
    );
    println!(
        "  transfer          {:>10}  {}  (a memcpy into a warm buffer, standing in for the socket)",
        duration(transfer_time),
        rate(wire_len, transfer_time)
    );
    println!(
        "  decode            {:>10}  {}",
        duration(decode_time),
        rate(payload_len, decode_time)
    );
    if info.codec == Codec::None && !args.checksums {
        println!(
            "  (encode and decode touch only the header and frame table: their time does not grow with the payload)"
        );
    }
    if copied && info.codec == Codec::None {
        return Err("the payload was copied on decode".into());
    }
    Ok(())
}
