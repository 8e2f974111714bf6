//! Fuzz target: arbitrary headers and frames through the registry, as typed values and as dynamic
//! ones. Anything may be refused; nothing may panic or overflow the stack.
#![no_main]

use std::collections::BTreeMap;

use bytes::Bytes;
use ferry_family::{Buffer, Dumped, Registry, rmpv};
use ferry_wire::{Header, Message};
use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug)]
enum Tree {
    Leaf(Buffer),
    Node(Vec<Tree>),
    Named { name: String, child: Option<Box<Tree>> },
}

#[derive(Serialize, Deserialize, Debug)]
struct Record {
    id: u64,
    tags: BTreeMap<String, f64>,
    tree: Tree,
    flag: bool,
    letter: char,
}

fn registry() -> Registry {
    let mut registry = Registry::new();
    registry.register_type::<Record>("fuzz.Record").unwrap();
    registry
        .register::<String, _, _>(
            "fuzz.Text",
            |s, _| Ok(Dumped::new(rmpv::Value::Nil, vec![Bytes::from(s.clone().into_bytes())])),
            |loaded, _| Ok(String::from_utf8(loaded.frames.first().ok_or("no frame")?.to_vec())?),
        )
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
    let (count, rest) = rest.split_first().map_or((0, &[][..]), |(c, r)| (usize::from(*c % 5), r));
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
    let _ = registry.deserialize_dyn(&message);
});
