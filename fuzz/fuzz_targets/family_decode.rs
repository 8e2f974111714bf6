//! Fuzz target: arbitrary headers and frames through the registry and a narrowed session, as
//! typed values and as dynamic ones, through the serde, custom and a user family. Anything may
//! be refused; nothing may panic, overflow the stack or run a loader for a type not asked for.
#![no_main]

use std::any::{Any, TypeId};
use std::collections::BTreeMap;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use pontoon_family::{
    Buffer, Context, Dumped, Family, FamilyError, Loaded, Object, Registry, TypeName, rmpv,
};
use pontoon_wire::{Header, Message};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug)]
enum Tree {
    Leaf(Buffer),
    Node(Vec<Tree>),
    Named {
        name: String,
        child: Option<Box<Tree>>,
    },
}

#[derive(Serialize, Deserialize, Debug)]
struct Record {
    id: u64,
    tags: BTreeMap<String, f64>,
    tree: Tree,
    flag: bool,
    letter: char,
}

impl TypeName for Record {
    const NAME: &'static str = "fuzz.Record";
}

/// No bytes on the wire, 16 in memory: what the shared expansion budget is for.
#[derive(Serialize, Deserialize, Debug, Default)]
struct Skipped {
    #[serde(skip)]
    _unused: [u64; 2],
}

/// A user family that reads its meta as a list of strings; it produces only `Vec<String>`, so
/// its `loads` must never run for a deserialize of another type.
struct Words;

impl Family for Words {
    fn name(&self) -> &str {
        "words"
    }

    fn dumps(&self, object: &Object<'_>, _: &Context) -> Result<Option<Dumped>, FamilyError> {
        Ok(object.downcast_ref::<Vec<String>>().map(|words| {
            Dumped::new(
                rmpv::Value::Array(words.iter().map(|w| w.as_str().into()).collect()),
                vec![],
            )
        }))
    }

    fn produces(&self, _: &str, requested: TypeId) -> bool {
        requested == TypeId::of::<Vec<String>>()
    }

    fn loads(
        &self,
        loaded: &Loaded<'_>,
        _: &Context,
    ) -> Result<Box<dyn Any + Send + Sync>, FamilyError> {
        let words = loaded.meta.as_array().ok_or("meta is not a list")?;
        let words: Option<Vec<String>> =
            words.iter().map(|w| w.as_str().map(String::from)).collect();
        Ok(Box::new(words.ok_or("a word is not a string")?))
    }
}

fn registry() -> Registry {
    let mut registry = Registry::new();
    registry.register_named::<Record>().unwrap();
    registry
        .register::<String, _, _>(
            "fuzz.Text",
            |s, _| {
                Ok(Dumped::new(
                    rmpv::Value::Nil,
                    vec![Bytes::from(s.clone().into_bytes())],
                ))
            },
            |loaded, _| {
                Ok(String::from_utf8(
                    loaded.frames.first().ok_or("no frame")?.to_vec(),
                )?)
            },
        )
        .unwrap();
    registry.add_family(Words).unwrap();
    registry
        .set_deserializers(["custom", "serde", "words"])
        .unwrap();
    registry
}

fuzz_target!(|data: &[u8]| {
    // [header length: u16 LE][header][frame count: u8][frames split evenly over the rest]
    if data.len() < 3 {
        return;
    }
    let header_len = usize::from(u16::from_le_bytes([data[0], data[1]])).min(data.len() - 2);
    let Ok(header) = Header::from_msgpack(Bytes::copy_from_slice(&data[2..2 + header_len])) else {
        return;
    };
    let rest = &data[2 + header_len..];
    let (count, rest) = rest
        .split_first()
        .map_or((0, &[][..]), |(c, r)| (usize::from(*c % 5), r));
    let frames: Vec<Bytes> = match count {
        0 => Vec::new(),
        n => (0..n)
            .map(|i| Bytes::copy_from_slice(&rest[rest.len() * i / n..rest.len() * (i + 1) / n]))
            .collect(),
    };
    let message = Message::new(header, frames);
    let registry = registry();
    let _ = registry.deserialize::<Record>(&message);
    let _ = registry.deserialize::<String>(&message);
    let _ = registry.deserialize::<Vec<Tree>>(&message);
    let _ = registry.deserialize::<Vec<Vec<Skipped>>>(&message);
    let _ = registry.deserialize::<Vec<String>>(&message);
    let _ = registry.deserialize_dyn(&message);
    let session = registry
        .session(Context::new())
        .with_deserializers(["words", "serde"])
        .unwrap();
    let _ = session.deserialize::<Vec<String>>(&message);
    let _ = session.deserialize_dyn(&message);
});
