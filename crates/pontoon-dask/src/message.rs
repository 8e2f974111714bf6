//! A Dask message and its frames: [`decode`] reads frame 0's MessagePack and resolves the
//! `__Serialized__` / `__Pickled__` placeholders in it (sub-headers, compression, split
//! frames, the serializer families), as `distributed.protocol.loads` does; [`encode`] writes
//! the frames `distributed.protocol.dumps` would.

use bytes::Bytes;
use pontoon_pickle::{DumpOptions, Graph, LoadOptions, Node, Opaque};
use pontoon_wire::Limits;
use std::borrow::Cow;

use crate::compression::{self, DaskCodec};
use crate::framing::{FrameKind, OutFrame};
use crate::msgpack::{self, Field, Fields, Raw, Writer};
use crate::numpy;
use crate::value::{Collection, CollectionKind, NdArray, Object, PickleData, Value};
use crate::{DecodeError, EncodeError};

/// Dask's default shard size (`distributed.comm.shard`, 64 MiB): uncompressed frames longer
/// than this are sent as several frames.
pub const SHARD_BYTES: usize = 64 << 20;

/// How [`decode`] reads.
///
/// ```
/// let mut options = pontoon_dask::DecodeOptions::default();
/// options.deserializers = Some(vec!["dask".into()]); // refuse pickles
/// assert_eq!(options.limits, pontoon_wire::Limits::DEFAULT);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DecodeOptions {
    /// Bounds: `max_header_bytes` and `max_header_depth` for every MessagePack frame,
    /// `max_expansion` for what decompression and joining split frames may make, the array
    /// limits.
    pub limits: Limits,
    /// How pickles are read (never running code; globals outside the allow-list refused).
    pub pickle: LoadOptions,
    /// The serializer families accepted (`dask`, `pickle`, `msgpack`, `error`); `None`
    /// accepts all four. `__Pickled__` placeholders count as `pickle`.
    pub deserializers: Option<Vec<String>>,
}

impl Default for DecodeOptions {
    fn default() -> DecodeOptions {
        DecodeOptions {
            limits: Limits::DEFAULT,
            pickle: LoadOptions::default(),
            deserializers: None,
        }
    }
}

/// Decodes a message from its frames (as a comm received them: each a view of received
/// memory, which the values keep viewing). Joining the shards of a split frame copies them
/// unless they lie back to back in one buffer; [`decode_in`] says which buffer.
///
/// ```
/// use pontoon_dask::{DecodeOptions, EncodeOptions, Value, decode, encode};
/// let msg = Value::map([("op", Value::from("ping"))]);
/// let frames: Vec<_> = encode(&msg, &EncodeOptions::default())?.into_iter().map(|f| f.data).collect();
/// assert_eq!(decode(&frames, &DecodeOptions::default())?, msg);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decode(frames: &[Bytes], options: &DecodeOptions) -> Result<Value, DecodeError> {
    decode_in(frames, None, options)
}

/// [`decode`], where the frames are views of `backing` (the buffer a whole message was read
/// into): shards that lie back to back in it are joined as a view, without a copy.
///
/// ```
/// use bytes::Bytes;
/// use pontoon_dask::{DecodeOptions, Value, decode_in, framing};
/// let msg = Value::map([("x", Value::Int(1))]);
/// let stream = Bytes::from(pontoon_dask::to_stream(&msg, &Default::default())?);
/// let (frames, _) = framing::decode_stream(stream.clone(), &Default::default())?;
/// assert_eq!(decode_in(&frames, Some(&stream), &DecodeOptions::default())?, msg);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decode_in(
    frames: &[Bytes],
    backing: Option<&Bytes>,
    options: &DecodeOptions,
) -> Result<Value, DecodeError> {
    let first = frames.first().ok_or(DecodeError::NoFrames)?;
    let received: u64 = frames.iter().map(|f| f.len() as u64).sum();
    let mut decoder = Decoder {
        frames,
        backing,
        options,
        budget: options.limits.max_expansion(received),
        used: Claimed::new(frames.len()),
        nesting: 0,
    };
    decoder.check_header_size(first, 0)?;
    // Placeholders are resolved as their maps are read, as `msgpack.loads`'s object hook does:
    // no second walk over frame 0, and no map built for a placeholder. What a placeholder may
    // cost is bounded by the budget, whatever the rest of frame 0 holds.
    let max_depth = options.limits.max_header_depth;
    msgpack::read_hooked(first, max_depth, &mut decoder).map_err(|fault| match fault {
        msgpack::Fault::Msgpack(offset, fault) => msgpack_error(0, offset, fault),
        msgpack::Fault::Hook(error) => error,
    })
}

struct Decoder<'a> {
    frames: &'a [Bytes],
    backing: Option<&'a Bytes>,
    options: &'a DecodeOptions,
    /// What decompressions may still make.
    budget: u64,
    /// The frames a placeholder has claimed: each frame serves one object at most, so that
    /// joining copies at most what was received and decompressed.
    used: Claimed,
    /// How many collections the one being read is inside.
    nesting: usize,
}

/// The frames a placeholder has claimed: bits of a word for the messages of up to 128 frames
/// (nearly all, and no allocation for them), one flag a frame past that.
enum Claimed {
    Few(u128),
    Many(Vec<bool>),
}

impl Claimed {
    fn new(frames: usize) -> Claimed {
        if frames <= 128 {
            Claimed::Few(0)
        } else {
            Claimed::Many(vec![false; frames])
        }
    }

    /// Claims frames `range` (inside the message), unless one of them is claimed already.
    fn claim(&mut self, range: std::ops::Range<usize>) -> bool {
        match self {
            Claimed::Few(bits) => {
                let mask = range
                    .clone()
                    .fold(0u128, |mask, i| mask | 1u128 << (i & 127));
                let free = *bits & mask == 0;
                if free {
                    *bits |= mask;
                }
                free
            }
            Claimed::Many(flags) => match flags.get_mut(range) {
                Some(flags) if !flags.iter().any(|&f| f) => {
                    flags.iter_mut().for_each(|f| *f = true);
                    true
                }
                _ => false,
            },
        }
    }
}

/// The deepest collections (`is-collection`) may nest. A sub-header is read in place, so each
/// level walks the levels inside it once more: the bound keeps decoding linear in the header.
const MAX_COLLECTION_NESTING: usize = 8;

fn msgpack_error(frame: usize, offset: usize, fault: crate::error::MsgpackFault) -> DecodeError {
    DecodeError::Msgpack {
        frame,
        offset,
        fault,
    }
}

fn field(context: &'static str, field: &'static str, detail: &str) -> DecodeError {
    DecodeError::BadField {
        field,
        context,
        detail: detail.to_owned(),
    }
}

/// Frame 0's maps, as `msgpack.loads`'s object hook sees them: a placeholder becomes its object
/// (each frame serving one object at most), a `__Set__` map a set.
impl<'a> msgpack::Hook<Value> for Decoder<'a> {
    type Error = DecodeError;
    const PLACEHOLDERS: bool = true;

    fn placeholder(&mut self, pickled: bool, offset: i64) -> Result<Value, DecodeError> {
        self.object(pickled, &Value::Int(offset))
    }

    fn map(&mut self, mut items: Vec<(Value, Value)>) -> Result<Value, DecodeError> {
        let get = |key: &str| items.iter().position(|(k, _)| k.as_str() == Some(key));
        if let Some(at) = get("__Serialized__") {
            return self.object(false, &items[at].1);
        }
        if let Some(at) = get("__Pickled__") {
            return self.object(true, &items[at].1);
        }
        if get("__Set__").is_some() {
            return match get("as-list").map(|at| items.swap_remove(at).1) {
                Some(Value::List(items)) => Ok(Value::Set(items)),
                _ => Err(field("__Set__ map", "as-list", "not a list")),
            };
        }
        Ok(Value::Map(items))
    }
}

impl<'a> Decoder<'a> {
    fn check_header_size(&self, frame: &Bytes, index: usize) -> Result<(), DecodeError> {
        let limit = self.options.limits.max_header_bytes;
        if frame.len() as u64 > limit {
            return Err(DecodeError::HeaderTooLarge {
                frame: index,
                len: frame.len(),
                limit,
            });
        }
        Ok(())
    }

    fn msgpack(&self, frame: &Bytes, index: usize) -> Result<Value, DecodeError> {
        self.check_header_size(frame, index)?;
        msgpack::read(frame, self.options.limits.max_header_depth)
            .map_err(|(offset, fault)| msgpack_error(index, offset, fault))
    }

    /// A sub-header, checked whole and read lazily.
    fn header<'f>(&self, frame: &'f Bytes, index: usize) -> Result<Raw<'f>, DecodeError> {
        self.check_header_size(frame, index)?;
        msgpack::read_raw(frame, self.options.limits.max_header_depth)
            .map_err(|(offset, fault)| msgpack_error(index, offset, fault))
    }

    fn spend(&mut self, frame: usize, bytes: u64) -> Result<(), DecodeError> {
        if bytes > self.budget {
            return Err(DecodeError::ExpansionTooLarge {
                frame,
                bytes,
                limit: self.budget,
            });
        }
        self.budget -= bytes;
        Ok(())
    }

    fn accepts(&self, family: &str) -> Result<(), DecodeError> {
        match &self.options.deserializers {
            Some(list) if !list.iter().any(|f| f == family) => Err(DecodeError::Refused {
                family: family.to_owned(),
                accepted: list.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// The object a `__Serialized__` (or, `pickled`, a `__Pickled__`) placeholder at `offset`
    /// stands for.
    fn object(&mut self, pickled: bool, offset: &Value) -> Result<Value, DecodeError> {
        if pickled {
            let offset = self.frame_of("__Pickled__", offset)?;
            Ok(Value::Pickled(Box::new(self.pickled(offset)?)))
        } else {
            let offset = self.frame_of("__Serialized__", offset)?;
            Ok(Value::Serialized(Box::new(self.serialized(offset)?)))
        }
    }

    /// The frame a placeholder's offset names: one of the message's, past frame 0.
    fn frame_of(&self, kind: &'static str, offset: &Value) -> Result<usize, DecodeError> {
        match offset.as_i64() {
            Some(o) if o >= 1 && (o as u64) < self.frames.len() as u64 => Ok(o as usize),
            _ => Err(DecodeError::BadPlaceholder {
                kind,
                offset: offset
                    .as_i64()
                    .map_or_else(|| format!("{offset:?}"), |o| o.to_string()),
                frames: self.frames.len(),
            }),
        }
    }

    /// The sub-header at `offset` and its sub-frames, decompressed.
    fn sub_frames(
        &mut self,
        offset: usize,
        context: &'static str,
    ) -> Result<(Fields<'a>, Cow<'a, [Bytes]>), DecodeError> {
        let all: &'a [Bytes] = self.frames;
        let header = self.header(&all[offset], offset)?.fields();
        let n = header
            .get(Field::NumSubFrames)
            .and_then(Raw::as_i64)
            .ok_or_else(|| field(context, "num-sub-frames", "not an int"))?;
        let first = offset + 1;
        let end = u64::try_from(n)
            .ok()
            .and_then(|n| n.checked_add(first as u64))
            .filter(|&e| e <= self.frames.len() as u64)
            .ok_or(DecodeError::SubFramesOutOfRange {
                sub_header: offset,
                claimed: n as u64,
                frames: self.frames.len(),
            })? as usize;
        if !self.used.claim(offset..end) {
            return Err(DecodeError::BadPlaceholder {
                kind: context,
                offset: format!("{offset} (its frames serve another placeholder too)"),
                frames: self.frames.len(),
            });
        }
        // Borrowed until one of them is decompressed: cloning a frame is an atomic count.
        let mut frames: Cow<'a, [Bytes]> = Cow::Borrowed(&all[first..end]);
        if let Some(list) = header.get(Field::Compression) {
            let names = list
                .as_list()
                .filter(|l| l.len() == frames.len())
                .ok_or_else(|| field(context, "compression", "not one entry per sub-frame"))?;
            for (i, name) in names.iter().enumerate() {
                match name {
                    Raw::Nil => {}
                    Raw::Str(name) => {
                        let limit = self
                            .options
                            .limits
                            .max_expansion(frames[i].len() as u64)
                            .min(self.options.limits.max_frame_bytes)
                            .min(self.budget);
                        let out = compression::decompress(name, &frames[i], first + i, limit)?;
                        self.spend(first + i, out.len() as u64)?;
                        frames.to_mut()[i] = out;
                    }
                    _ => return Err(field(context, "compression", "not None or a name")),
                }
            }
        }
        Ok((header, frames))
    }

    fn serialized(&mut self, offset: usize) -> Result<Object, DecodeError> {
        const CONTEXT: &str = "__Serialized__ sub-header";
        let (header, frames) = self.sub_frames(offset, CONTEXT)?;
        let merged = match (
            header.get(Field::SplitNumSubFrames),
            header.get(Field::SplitOffsets),
        ) {
            (Some(counts), Some(offsets)) => {
                let (Some(counts), Some(offsets)) = (counts.as_list(), offsets.as_list()) else {
                    return Err(field(CONTEXT, "split-num-sub-frames", "not a list"));
                };
                if counts.len() != offsets.len() {
                    return Err(field(CONTEXT, "split-offsets", "not one per split frame"));
                }
                let mut merged = Vec::with_capacity(counts.len());
                for (count, start) in counts.iter().zip(offsets) {
                    let (Some(count), Some(start)) = (count.as_i64(), start.as_i64()) else {
                        return Err(field(CONTEXT, "split-offsets", "not ints"));
                    };
                    let range = usize::try_from(start)
                        .ok()
                        .zip(usize::try_from(count).ok())
                        .and_then(|(s, c)| Some(s..s.checked_add(c)?))
                        .filter(|r| r.end <= frames.len())
                        .ok_or(DecodeError::SubFramesOutOfRange {
                            sub_header: offset,
                            claimed: start.saturating_add(count) as u64,
                            frames: frames.len(),
                        })?;
                    merged.push(self.join(&frames[range])?);
                }
                merged
            }
            (None, None) => frames.into_owned(),
            _ => {
                return Err(field(
                    CONTEXT,
                    "split-offsets",
                    "one of the split fields alone",
                ));
            }
        };
        self.deserialize(&header, &self.frames[offset], merged, offset + 1)
    }

    /// Joins shards into one frame: a view when they lie back to back in the backing buffer,
    /// else one fallible copy (of frames no other object uses).
    fn join(&self, shards: &[Bytes]) -> Result<Bytes, DecodeError> {
        match shards {
            [] => return Ok(Bytes::new()),
            [one] => return Ok(one.clone()),
            _ => {}
        }
        if let Some(backing) = self.backing {
            let base = backing.as_ptr() as usize;
            let start = shards[0].as_ptr() as usize;
            let mut end = start;
            let adjacent = shards.iter().all(|s| {
                let ok = s.as_ptr() as usize == end;
                end += s.len();
                ok
            });
            if adjacent && start >= base && end <= base + backing.len() {
                return Ok(backing.slice(start - base..end - base));
            }
        }
        let total: u64 = shards.iter().map(|s| s.len() as u64).sum();
        let mut out = Vec::new();
        out.try_reserve_exact(total as usize)
            .map_err(|_| DecodeError::OutOfMemory { bytes: total })?;
        for s in shards {
            out.extend_from_slice(s);
        }
        Ok(Bytes::from(out))
    }

    fn deserialize(
        &mut self,
        header: &Fields<'a>,
        hf: &'a Bytes,
        frames: Vec<Bytes>,
        first_frame: usize,
    ) -> Result<Object, DecodeError> {
        const CONTEXT: &str = "serialized object's header";
        if header.get(Field::IsCollection).is_some() {
            if self.nesting >= MAX_COLLECTION_NESTING {
                return Err(field(
                    CONTEXT,
                    "is-collection",
                    "collections nested deeper than 8",
                ));
            }
            self.nesting += 1;
            let collection = self.collection(header, hf, frames, first_frame);
            self.nesting -= 1;
            return collection;
        }
        let serializer = header
            .get(Field::Serializer)
            .and_then(Raw::as_str)
            .ok_or_else(|| field(CONTEXT, "serializer", "not a str"))?;
        self.accepts(serializer)?;
        match serializer {
            "dask" => self.dask(header, hf, frames, first_frame),
            "pickle" => {
                let writeable = header
                    .get(Field::Writeable)
                    .and_then(Raw::as_list)
                    .ok_or_else(|| {
                        field(
                            CONTEXT,
                            "writeable",
                            "the pickle family needs one flag per buffer",
                        )
                    })?;
                if writeable.len() + 1 != frames.len() {
                    return Err(field(
                        CONTEXT,
                        "writeable",
                        &format!(
                            "{} flags for {} buffers",
                            writeable.len(),
                            frames.len().saturating_sub(1)
                        ),
                    ));
                }
                let writeable = writeable
                    .iter()
                    .map(|w| match w {
                        Raw::Bool(b) => Ok(b),
                        _ => Err(field(CONTEXT, "writeable", "not bools")),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let mut data = self.pickle(&frames[0], &frames[1..], first_frame)?;
                data.writeable = writeable;
                Ok(Object::Pickle(data))
            }
            "msgpack" => {
                let joined = self.join(&frames)?;
                Ok(Object::Msgpack(self.msgpack(&joined, first_frame)?))
            }
            "error" => {
                let texts = frames
                    .iter()
                    .map(|f| String::from_utf8_lossy(f).into_owned())
                    .collect::<Vec<_>>();
                Ok(Object::Error(texts.join("\n")))
            }
            other => Err(DecodeError::UnknownSerializer(other.to_owned())),
        }
    }

    fn pickle(
        &self,
        data: &Bytes,
        buffers: &[Bytes],
        frame: usize,
    ) -> Result<PickleData, DecodeError> {
        let graph = pontoon_pickle::loads(data, buffers, &self.options.pickle)
            .map_err(|source| DecodeError::Pickle { frame, source })?;
        Ok(PickleData {
            graph,
            buffers: buffers.to_vec(),
            writeable: Vec::new(),
        })
    }

    fn dask(
        &mut self,
        header: &Fields<'a>,
        hf: &'a Bytes,
        frames: Vec<Bytes>,
        first: usize,
    ) -> Result<Object, DecodeError> {
        const CONTEXT: &str = "dask family header";
        let Some(Raw::Bin(type_pickle)) = header.get(Field::TypeSerialized) else {
            return Err(field(CONTEXT, "type-serialized", "not bytes"));
        };
        // The classes Dask sends most, recognised by their exact pickle before any parsing.
        let known = [
            ("numpy", "ndarray"),
            ("builtins", "bytes"),
            ("builtins", "bytearray"),
        ]
        .into_iter()
        .find(|(m, n)| class_pickle_is(type_pickle, m, n));
        let graph;
        let (module, name): (&str, &str) = match known {
            Some(class) => class,
            None => {
                let mut options = LoadOptions::default();
                options.opaque = Opaque::All;
                graph = pontoon_pickle::loads(&hf.slice_ref(type_pickle), &[], &options).map_err(
                    |source| DecodeError::Pickle {
                        frame: first - 1,
                        source,
                    },
                )?;
                match graph.node(graph.root()) {
                    Node::Global(global) => (global.module.as_str(), global.name.as_str()),
                    _ => return Err(field(CONTEXT, "type-serialized", "not a pickled class")),
                }
            }
        };
        let sub = header
            .get(Field::SubHeader)
            .ok_or_else(|| field(CONTEXT, "sub-header", "missing"))?;
        match (module, name) {
            ("numpy", "ndarray") => {
                // One walk over the numpy sub-header finds every field asked for below.
                let sub = sub.fields();
                if matches!(sub.get(Field::Pickle), Some(Raw::Bool(true))) {
                    self.accepts("pickle")?;
                    let Some((data, buffers)) = frames.split_first() else {
                        return Err(field(
                            CONTEXT,
                            "sub-header",
                            "a pickled array without frames",
                        ));
                    };
                    return Ok(Object::Pickle(self.pickle(data, buffers, first)?));
                }
                let [frame] = <[Bytes; 1]>::try_from(frames)
                    .map_err(|_| field(CONTEXT, "num-sub-frames", "a numpy array has one frame"))?;
                Ok(Object::Array(numpy::decode(
                    &sub,
                    hf,
                    frame,
                    first,
                    &self.options.limits,
                )?))
            }
            ("builtins", "bytes") => Ok(Object::Bytes(self.join(&frames)?)),
            ("builtins", "bytearray") => Ok(Object::ByteArray(self.join(&frames)?)),
            _ => Err(DecodeError::UnsupportedType(format!("{module}.{name}"))),
        }
    }

    fn collection(
        &mut self,
        header: &Fields<'a>,
        hf: &'a Bytes,
        frames: Vec<Bytes>,
        first: usize,
    ) -> Result<Object, DecodeError> {
        const CONTEXT: &str = "collection header";
        let kind = header
            .get(Field::TypeSerialized)
            .and_then(Raw::as_str)
            .and_then(CollectionKind::from_name)
            .ok_or_else(|| field(CONTEXT, "type-serialized", "not list, tuple, set or dict"))?;
        let headers = header
            .get(Field::SubHeaders)
            .and_then(Raw::as_list)
            .ok_or_else(|| field(CONTEXT, "sub-headers", "not a list"))?;
        let lengths = header
            .get(Field::FrameLengths)
            .and_then(Raw::as_list)
            .filter(|l| l.len() == headers.len())
            .ok_or_else(|| field(CONTEXT, "frame-lengths", "not one per sub-header"))?;
        let mut collection = Collection {
            kind,
            keys: Vec::new(),
            items: Vec::with_capacity(headers.len()),
        };
        let mut start = 0usize;
        for (sub, length) in headers.iter().zip(lengths) {
            let sub = sub.fields();
            let end = length
                .as_i64()
                .and_then(|l| usize::try_from(l).ok())
                .and_then(|l| start.checked_add(l))
                .filter(|&e| e <= frames.len())
                .ok_or_else(|| field(CONTEXT, "frame-lengths", "past the frames"))?;
            if kind == CollectionKind::Dict {
                collection.keys.push(
                    sub.get(Field::Key)
                        .map(|k| k.to_value(hf))
                        .ok_or_else(|| field(CONTEXT, "key", "missing"))?,
                );
            }
            collection.items.push(self.deserialize(
                &sub,
                hf,
                frames[start..end].to_vec(),
                first + start,
            )?);
            start = end;
        }
        Ok(Object::Collection(collection))
    }

    fn pickled(&mut self, offset: usize) -> Result<PickleData, DecodeError> {
        self.accepts("pickle")?;
        let (header, frames) = self.sub_frames(offset, "__Pickled__ sub-header")?;
        let Some(Raw::Bin(data)) = header.get(Field::PickledObj) else {
            return Err(field("__Pickled__ sub-header", "pickled-obj", "not bytes"));
        };
        let data = self.frames[offset].slice_ref(data);
        self.pickle(&data, &frames, offset)
    }
}

/// How [`encode`] writes.
///
/// ```
/// let mut options = pontoon_dask::EncodeOptions::default();
/// options.compression = Some(pontoon_dask::DaskCodec::Lz4);
/// assert_eq!(options.shard_bytes, 64 << 20);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EncodeOptions {
    /// Compress frames of 10,000 bytes or more with this codec, keeping it where it shrinks
    /// them to 70% (Dask's rule, without its sampling). `None` (the default) is what Dask's comm
    /// agrees on between two processes of one host.
    pub compression: Option<DaskCodec>,
    /// Shard uncompressed frames longer than this (Dask's `distributed.comm.shard`).
    pub shard_bytes: usize,
    /// The deepest nesting written (Python's msgpack refuses deeper values).
    pub max_depth: usize,
}

impl Default for EncodeOptions {
    fn default() -> EncodeOptions {
        EncodeOptions {
            compression: None,
            shard_bytes: SHARD_BYTES,
            max_depth: 512,
        }
    }
}

/// Encodes `value` as the frames `distributed.protocol.dumps` writes: frame 0 is the message's
/// MessagePack, each [`Value::Serialized`] and [`Value::Pickled`] a placeholder pointing to its
/// sub-header and sub-frames. Array data frames are views of the arrays (no copy) unless an
/// array must be made contiguous.
///
/// ```
/// use pontoon_dask::{EncodeOptions, NdArray, Value, encode};
/// let msg = Value::map([("x", NdArray::from(pontoon_array::Array::from_vec(vec![1.0f64, 2.0])).into())]);
/// let frames = encode(&msg, &EncodeOptions::default())?;
/// assert_eq!(frames.len(), 3); // message, sub-header, data
/// assert_eq!(frames[2].data.len(), 16);
/// # Ok::<(), pontoon_dask::EncodeError>(())
/// ```
pub fn encode(value: &Value, options: &EncodeOptions) -> Result<Vec<OutFrame>, EncodeError> {
    let mut encoder = Encoder {
        options,
        frames: vec![OutFrame::transient(Bytes::new())],
        next_buffer: 0,
    };
    let mut w = Writer::default();
    encoder.write(&mut w, value, 0)?;
    encoder.frames[0] = OutFrame::transient(Bytes::from(w.out));
    Ok(encoder.frames)
}

/// The message as the bytes Dask's TCP comm writes: [`encode`], then the framing.
///
/// ```
/// let bytes = pontoon_dask::to_stream(&pontoon_dask::Value::Nil, &Default::default())?;
/// assert_eq!(bytes.len(), 8 + 8 + 8 + 1);
/// # Ok::<(), pontoon_dask::EncodeError>(())
/// ```
pub fn to_stream(value: &Value, options: &EncodeOptions) -> Result<Vec<u8>, EncodeError> {
    Ok(crate::framing::stream_bytes(&encode(value, options)?))
}

struct Encoder<'a> {
    options: &'a EncodeOptions,
    frames: Vec<OutFrame>,
    next_buffer: u64,
}

/// One serialized object before splitting: its header's items and frames (with how Python
/// holds each, and the element size shards are cut on).
struct Serialized {
    header: Vec<(Value, Value)>,
    frames: Vec<(Bytes, FrameKind, usize)>,
}

/// Whether `data` is exactly [`class_pickle`]`(module, name)`, compared without allocating.
fn class_pickle_is(data: &[u8], module: &str, name: &str) -> bool {
    let body_len = 2 + module.len() + 1 + 2 + name.len() + 1 + 3;
    let mut parts = [0u8; 11];
    parts[..3].copy_from_slice(&[0x80, 5, 0x95]);
    parts[3..].copy_from_slice(&(body_len as u64).to_le_bytes());
    let mut at = 0;
    let mut take = |bytes: &[u8]| {
        let ok = data.get(at..at + bytes.len()) == Some(bytes);
        at += bytes.len();
        ok
    };
    take(&parts)
        && take(&[0x8c, module.len() as u8])
        && take(module.as_bytes())
        && take(&[0x94, 0x8c, name.len() as u8])
        && take(name.as_bytes())
        && take(&[0x94, 0x93, 0x94, b'.'])
        && at == data.len()
}

/// `pickle.dumps(cls, protocol=5)` for a class `module.name`: the bytes Python writes.
fn class_pickle(module: &str, name: &str) -> Bytes {
    let mut body = Vec::new();
    for part in [module, name] {
        body.push(0x8c); // SHORT_BINUNICODE
        body.push(part.len() as u8);
        body.extend_from_slice(part.as_bytes());
        body.push(0x94); // MEMOIZE
    }
    body.extend_from_slice(&[0x93, 0x94, b'.']); // STACK_GLOBAL, MEMOIZE, STOP
    let mut out = vec![0x80, 5, 0x95]; // PROTO 5, FRAME
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&body);
    Bytes::from(out)
}

fn key(s: &str) -> Value {
    Value::Str(s.to_owned())
}

impl Encoder<'_> {
    fn buffer_id(&mut self) -> FrameKind {
        self.next_buffer += 1;
        FrameKind::Buffer(self.next_buffer)
    }

    fn write(&mut self, w: &mut Writer, value: &Value, depth: usize) -> Result<(), EncodeError> {
        if depth > self.options.max_depth {
            return Err(EncodeError::TooDeep {
                limit: self.options.max_depth,
            });
        }
        let too_long = |what, len: usize| {
            if len > u32::MAX as usize {
                Err(EncodeError::TooLong { what, len })
            } else {
                Ok(())
            }
        };
        match value {
            Value::Nil => w.nil(),
            Value::Bool(b) => w.bool(*b),
            Value::Int(i) => w.int(*i),
            Value::UInt(u) => w.uint(*u),
            Value::Float(f) => w.float(*f),
            Value::Str(s) => {
                too_long("str", s.len())?;
                w.str(s)
            }
            Value::Bin(b) => {
                too_long("bytes", b.len())?;
                w.bin(b)
            }
            Value::Ext(tag, b) => {
                too_long("ext", b.len())?;
                w.ext(*tag, b)
            }
            Value::List(items) => {
                too_long("list", items.len())?;
                w.array_len(items.len());
                for item in items {
                    self.write(w, item, depth + 1)?;
                }
            }
            Value::Map(items) => {
                too_long("map", items.len())?;
                w.map_len(items.len());
                for (k, v) in items {
                    self.write(w, k, depth + 1)?;
                    self.write(w, v, depth + 1)?;
                }
            }
            Value::Set(items) => {
                let map = Value::Map(vec![
                    (key("__Set__"), Value::Bool(true)),
                    (key("as-list"), Value::List(items.clone())),
                ]);
                self.write(w, &map, depth)?;
            }
            Value::Serialized(object) => {
                let offset = self.frames.len();
                self.serialized_frames(object, depth)?;
                w.map_len(1);
                w.str("__Serialized__");
                w.uint(offset as u64);
            }
            Value::Pickled(data) => {
                let offset = self.frames.len();
                self.pickled_frames(data, depth)?;
                w.map_len(1);
                w.str("__Pickled__");
                w.uint(offset as u64);
            }
        }
        Ok(())
    }

    fn header_frame(
        &mut self,
        items: Vec<(Value, Value)>,
        depth: usize,
    ) -> Result<OutFrame, EncodeError> {
        let mut w = Writer::default();
        self.write(&mut w, &Value::Map(items), depth + 1)?;
        Ok(OutFrame::transient(Bytes::from(w.out)))
    }

    fn pickle(&mut self, data: &PickleData) -> Result<pontoon_pickle::Pickled, EncodeError> {
        let mut options = DumpOptions::default();
        // Python's pickle keeps `bytes` in-band; out-of-band they would come back to it as
        // memoryviews. So out-of-band buffers are used only when every large node is an array.
        options.out_of_band = !has_large_bytes(&data.graph, options.out_of_band_min_bytes);
        pontoon_pickle::dumps(&data.graph, &options).map_err(EncodeError::Pickle)
    }

    /// What `distributed.protocol.serialize` returns for `object`.
    fn serialize(&mut self, object: &Object, depth: usize) -> Result<Serialized, EncodeError> {
        let dask = |type_name: &str, module: &str, name: &str, sub: Value| {
            vec![
                (key("sub-header"), sub),
                (key("type"), key(type_name)),
                (
                    key("type-serialized"),
                    Value::Bin(class_pickle(module, name)),
                ),
                (key("serializer"), key("dask")),
            ]
        };
        Ok(match object {
            Object::Array(array) => {
                let encoded = numpy::encode(array)?;
                let kind = self.buffer_id();
                Serialized {
                    header: dask("numpy.ndarray", "numpy", "ndarray", encoded.sub_header),
                    frames: vec![(encoded.frame, kind, encoded.itemsize)],
                }
            }
            Object::Bytes(b) => Serialized {
                header: dask("bytes", "builtins", "bytes", Value::Map(vec![])),
                frames: vec![(b.clone(), FrameKind::Transient, 1)],
            },
            Object::ByteArray(b) => {
                let kind = self.buffer_id();
                Serialized {
                    header: dask("bytearray", "builtins", "bytearray", Value::Map(vec![])),
                    frames: vec![(b.clone(), kind, 1)],
                }
            }
            Object::Pickle(data) => {
                let pickled = self.pickle(data)?;
                let mut frames = vec![(pickled.data, FrameKind::Transient, 1)];
                for buffer in pickled.buffers {
                    let kind = self.buffer_id();
                    frames.push((buffer, kind, 1));
                }
                Serialized {
                    header: vec![
                        (key("serializer"), key("pickle")),
                        (
                            key("writeable"),
                            Value::List(vec![Value::Bool(true); frames.len() - 1]),
                        ),
                    ],
                    frames,
                }
            }
            Object::Msgpack(value) => {
                let mut w = Writer::default();
                self.write(&mut w, value, depth + 1)?;
                Serialized {
                    header: vec![(key("serializer"), key("msgpack"))],
                    frames: vec![(Bytes::from(w.out), FrameKind::Transient, 1)],
                }
            }
            Object::Error(text) => Serialized {
                header: vec![(key("serializer"), key("error"))],
                frames: vec![(
                    Bytes::from(text.clone().into_bytes()),
                    FrameKind::Transient,
                    1,
                )],
            },
            Object::Collection(c) => {
                if c.kind == CollectionKind::Dict && c.keys.len() != c.items.len() {
                    return Err(EncodeError::CollectionKeys {
                        keys: c.keys.len(),
                        items: c.items.len(),
                    });
                }
                let mut headers = Vec::with_capacity(c.items.len());
                let mut lengths = Vec::with_capacity(c.items.len());
                let mut frames = Vec::new();
                for (i, item) in c.items.iter().enumerate() {
                    if depth > self.options.max_depth {
                        return Err(EncodeError::TooDeep {
                            limit: self.options.max_depth,
                        });
                    }
                    let mut s = self.serialize(item, depth + 1)?;
                    if c.kind == CollectionKind::Dict {
                        s.header.push((key("key"), c.keys[i].clone()));
                    }
                    headers.push(Value::Map(s.header));
                    lengths.push(Value::Int(s.frames.len() as i64));
                    frames.extend(s.frames);
                }
                Serialized {
                    header: vec![
                        (key("sub-headers"), Value::List(headers)),
                        (key("is-collection"), Value::Bool(true)),
                        (key("frame-lengths"), Value::List(lengths)),
                        (key("type-serialized"), key(c.kind.name())),
                    ],
                    frames,
                }
            }
        })
    }

    /// `create_serialized_sub_frames`: serialize, split into shards, compress, add
    /// `num-sub-frames`, and append the sub-header and its frames.
    fn serialized_frames(&mut self, object: &Object, depth: usize) -> Result<(), EncodeError> {
        let Serialized { mut header, frames } = self.serialize(object, depth)?;
        let shard = self.options.shard_bytes.max(1);
        let mut counts = Vec::new();
        let mut offsets = Vec::new();
        let mut out: Vec<OutFrame> = Vec::new();
        for (data, kind, itemsize) in frames {
            // As `frame_split_size`: whole elements per shard.
            let per = (shard / itemsize).max(1) * itemsize;
            offsets.push(Value::Int(out.len() as i64));
            if data.len() <= shard {
                counts.push(Value::Int(1));
                out.push(OutFrame { data, kind });
            } else {
                let mut n = 0;
                let mut at = 0;
                while at < data.len() {
                    let end = (at + per).min(data.len());
                    out.push(OutFrame {
                        data: data.slice(at..end),
                        kind,
                    });
                    at = end;
                    n += 1;
                }
                counts.push(Value::Int(n));
            }
        }
        let mut compression = Vec::with_capacity(out.len());
        for frame in &mut out {
            let packed = self
                .options
                .compression
                .and_then(|codec| compression::maybe_compress(codec, &frame.data));
            match packed {
                Some(packed) => {
                    compression.push(key(self.options.compression.expect("set").name()));
                    *frame = OutFrame::transient(packed);
                }
                None => compression.push(Value::Nil),
            }
        }
        header.push((key("split-num-sub-frames"), Value::List(counts)));
        header.push((key("split-offsets"), Value::List(offsets)));
        header.push((key("compression"), Value::List(compression)));
        header.push((key("num-sub-frames"), Value::Int(out.len() as i64)));
        let sub_header = self.header_frame(header, depth)?;
        self.frames.push(sub_header);
        self.frames.extend(out);
        Ok(())
    }

    /// `create_pickled_sub_frames`: the pickle in the sub-header, its buffers as frames.
    fn pickled_frames(&mut self, data: &PickleData, depth: usize) -> Result<(), EncodeError> {
        let pickled = self.pickle(data)?;
        let mut frames = Vec::with_capacity(pickled.buffers.len());
        let mut compression = Vec::with_capacity(pickled.buffers.len());
        for buffer in pickled.buffers {
            let packed = self
                .options
                .compression
                .and_then(|codec| compression::maybe_compress(codec, &buffer));
            match packed {
                Some(packed) => {
                    compression.push(key(self.options.compression.expect("set").name()));
                    frames.push(OutFrame::transient(packed));
                }
                None => {
                    compression.push(Value::Nil);
                    let kind = self.buffer_id();
                    frames.push(OutFrame { data: buffer, kind });
                }
            }
        }
        let header = vec![
            (key("pickled-obj"), Value::Bin(pickled.data)),
            (key("compression"), Value::List(compression)),
            (key("num-sub-frames"), Value::Int(frames.len() as i64)),
        ];
        let sub_header = self.header_frame(header, depth)?;
        self.frames.push(sub_header);
        self.frames.extend(frames);
        Ok(())
    }
}

fn has_large_bytes(graph: &Graph, min: usize) -> bool {
    graph
        .nodes()
        .iter()
        .any(|n| matches!(n, Node::Bytes(b) if b.len() >= min))
}

impl From<NdArray> for Object {
    fn from(array: NdArray) -> Object {
        Object::Array(array)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_claimed_once_whether_the_message_has_few_frames_or_many() {
        for frames in [4, 128, 129, 300] {
            let mut claimed = Claimed::new(frames);
            assert!(claimed.claim(1..3), "{frames}");
            assert!(!claimed.claim(2..4), "{frames}: overlaps");
            assert!(claimed.claim(3..4), "{frames}");
            assert!(!claimed.claim(0..frames), "{frames}");
            if frames > 4 {
                assert!(claimed.claim(frames - 1..frames), "{frames}: the last");
            }
            assert!(
                !claimed.claim(frames - 1..frames),
                "{frames}: the last again"
            );
            assert!(claimed.claim(4..4), "{frames}: nothing");
        }
    }

    fn nested(levels: usize) -> Value {
        let mut object = Object::Bytes(Bytes::from_static(b"inner"));
        for _ in 0..levels {
            object = Object::Collection(Collection {
                kind: CollectionKind::List,
                keys: Vec::new(),
                items: vec![object],
            });
        }
        Value::map([("x", object.into())])
    }

    #[test]
    fn collections_nest_at_most_eight_deep() {
        let frames = |v: &Value| -> Vec<Bytes> {
            encode(v, &EncodeOptions::default())
                .unwrap()
                .into_iter()
                .map(|f| f.data)
                .collect()
        };
        let ok = nested(MAX_COLLECTION_NESTING);
        assert_eq!(decode(&frames(&ok), &DecodeOptions::default()).unwrap(), ok);
        let deep = nested(MAX_COLLECTION_NESTING + 1);
        assert!(matches!(
            decode(&frames(&deep), &DecodeOptions::default()),
            Err(DecodeError::BadField {
                field: "is-collection",
                ..
            })
        ));
    }

    #[test]
    fn known_class_pickles_are_recognised_exactly() {
        for (m, n) in [
            ("numpy", "ndarray"),
            ("builtins", "bytes"),
            ("builtins", "bytearray"),
        ] {
            let pickle = class_pickle(m, n);
            assert!(class_pickle_is(&pickle, m, n));
            assert!(!class_pickle_is(&pickle[..pickle.len() - 1], m, n));
            let mut longer = pickle.to_vec();
            longer.push(b'.');
            assert!(!class_pickle_is(&longer, m, n));
        }
        assert!(!class_pickle_is(
            &class_pickle("numpy", "ndarray"),
            "builtins",
            "bytes"
        ));
    }
}
