//! The demo's second part: typed values through pontoon-family, across the same wire: a type with a
//! serializer of its own, a struct whose buffers travel out of band, and an allow-list that holds.

use std::error::Error;

use bytes::{Bytes, BytesMut};
use pontoon::family::{Buffer, Context, Dumped, Registry, rmpv};
use pontoon::wire::{Decoder, Encoder, Limits, Message, preamble};
use serde::{Deserialize, Serialize};

use super::{Args, duration, size, timed};

/// A type with its own serializer: the name as a frame, the age in the header.
#[derive(Debug, PartialEq)]
pub(super) struct Human {
    pub(super) name: String,
    pub(super) age: u16,
}

/// Registers `Human` with its own serializer under `demo.Human`: the name as a frame, the age in
/// the header. Every part of the demo that sends a `Human` uses this one registration.
pub(super) fn register_human(
    registry: &mut Registry,
) -> Result<(), pontoon::family::RegistryError> {
    registry.register::<Human, _, _>(
        "demo.Human",
        |human, _context| {
            let meta = rmpv::Value::Map(vec![("age".into(), human.age.into())]);
            Ok(Dumped::new(
                meta,
                vec![Bytes::from(human.name.clone().into_bytes())],
            ))
        },
        |loaded, _context| {
            let age = loaded.meta["age"].as_u64().ok_or("no age")?;
            let name = loaded.frames.first().ok_or("no name frame")?;
            Ok(Human {
                name: String::from_utf8(name.to_vec())?,
                age: u16::try_from(age)?,
            })
        },
    )
}

/// A model whose weights are large: they travel as frames of their own. The embedding table is
/// shared between two layers and is sent once.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Model {
    name: String,
    epoch: u32,
    weights: Buffer,
    encoder_embedding: Buffer,
    decoder_embedding: Buffer,
}

/// Sends a message over the stand-in wire: encode, copy into a receive buffer, decode.
pub(super) fn across_the_wire(
    message: &Message,
) -> Result<(Message, std::ops::Range<usize>), Box<dyn Error>> {
    let encoded = Encoder::default().encode(message)?;
    let mut received = BytesMut::with_capacity(8 + encoded.len() as usize);
    received.extend_from_slice(&preamble());
    for chunk in encoded.chunks() {
        received.extend_from_slice(chunk);
    }
    let range = received.as_ptr() as usize..received.as_ptr() as usize + received.len();
    let mut limits = Limits::default();
    limits.max_message_bytes = limits.max_message_bytes.max(received.len() as u64);
    let decoded = Decoder::with_limits(limits)
        .decode(&mut received)?
        .ok_or("the whole message was sent")?;
    Ok((decoded, range))
}

fn describe(message: &Message) -> Result<String, Box<dyn Error>> {
    let header = message.header.to_value()?;
    Ok(format!(
        "family {}, type {}, header {} B, {} frame(s)",
        header["family"].as_str().unwrap_or("?"),
        header["type"].as_str().unwrap_or("?"),
        message.header.as_bytes().len(),
        message.frames.len()
    ))
}

pub(super) fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    println!("pontoon demo: typed values through pontoon-family, across the same wire");
    let mut registry = Registry::new();
    register_human(&mut registry)?;

    // 1. A type with its own registered serializer: it wins over serde for that type.
    let ada = Human {
        name: "Ada Lovelace".into(),
        age: 36,
    };
    let sent = registry.serialize_dyn(&ada)?;
    let (received, _) = across_the_wire(&sent)?;
    let back = registry.deserialize_dyn(&received)?;
    let back = back
        .downcast_ref::<Human>()
        .ok_or("came back as another type")?;
    if back != &ada {
        return Err("the human changed on the way".into());
    }
    println!("  registered type   {:?} -> {}", ada, describe(&sent)?);
    println!("                    came back as {back:?}, found by the name in the header");

    // 2. A serde struct with out-of-band buffers: no registration, no copy.
    let weights_len = (args.payload_mib.max(1) << 20) / 2;
    let embedding = Buffer::from((0..1 << 20).map(|i| (i % 13) as u8).collect::<Vec<u8>>());
    let model = Model {
        name: "tiny-transformer".into(),
        epoch: 12,
        weights: Buffer::from(
            (0..weights_len)
                .map(|i| (i % 251) as u8)
                .collect::<Vec<u8>>(),
        ),
        encoder_embedding: embedding.clone(),
        decoder_embedding: embedding,
    };
    let (sent, serialize_time) = timed(|| registry.serialize(&model));
    let sent = sent?;
    let (received, receive_range) = across_the_wire(&sent)?;
    let (back, deserialize_time) = timed(|| registry.deserialize::<Model>(&received));
    let back = back?;
    if back != model {
        return Err("the model changed on the way".into());
    }
    let copied = !receive_range.contains(&(back.weights.as_ptr() as usize));
    let shared = back.encoder_embedding.as_ptr() == back.decoder_embedding.as_ptr();
    println!(
        "  buffers           Model {{ weights: {}, two layers sharing one {} embedding }}",
        size(weights_len as u64),
        size(1 << 20)
    );
    println!("                    -> {}", describe(&sent)?);
    println!(
        "                    weights copied on the way in: {}",
        if copied {
            "YES"
        } else {
            "no (a view of the receive buffer)"
        }
    );
    println!(
        "                    shared embedding sent once, shared after decode: {}",
        if shared { "yes" } else { "NO" }
    );
    println!(
        "                    serialize {}, deserialize {}",
        duration(serialize_time),
        duration(deserialize_time)
    );
    if copied || !shared {
        return Err("buffers were copied or lost their sharing".into());
    }

    // 3. An allow-list that holds: a receiver that accepts only serde refuses the custom family.
    let strict = registry
        .session(Context::new().sender("tcp://127.0.0.1:40471"))
        .with_deserializers(["serde"])?;
    let (received, _) = across_the_wire(&registry.serialize_dyn(&ada)?)?;
    match strict.deserialize_dyn(&received) {
        Ok(_) => return Err("a refused family got through".into()),
        Err(refused) => println!("  allow-list        a serde-only receiver says: {refused}"),
    }
    Ok(())
}
