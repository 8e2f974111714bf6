//! [`to_json`]: a [`Value`] as the JSON tree `pontoon inspect --dialect dask` prints, in the
//! node format of pontoon-pickle's `to_json`, plus `{"t":"exception",...}` for Dask's error
//! family.

use std::fmt::Write as _;

use pontoon_pickle::{Graph, Node};
use sha2::{Digest, Sha256};

use crate::value::{ArrayData, CollectionKind, Object, Value};

/// Why a value could not be printed as JSON.
///
/// ```
/// use pontoon_dask::{JsonError, Value, to_json};
/// assert!(matches!(to_json(&Value::from("a long string"), 8), Err(JsonError::TooLarge { limit: 8 })));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    /// The JSON would be longer than the limit given.
    #[error("the JSON would be longer than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// Nested deeper than 1024 levels.
    #[error("the value nests deeper than {limit} levels")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// A pickle or an array inside that pontoon-pickle could not print.
    #[error("printing a pickled value")]
    Pickle(#[source] pontoon_pickle::JsonError),
}

const MAX_DEPTH: usize = 1024;

/// The value as JSON nodes: `{"t":"none"}`, `{"t":"bool","v":true}`, `{"t":"int","v":"1"}`,
/// `{"t":"float","v":"0x1.8000000000000p+0"}`, `{"t":"str","v":…}`,
/// `{"t":"bytes","len":N,"sha256":…}`, `{"t":"tuple"|"list"|"set","items":[…]}` (a msgpack
/// array is a tuple, as Python reads it), `{"t":"dict","items":[[k,v],…]}`,
/// `{"t":"ndarray","dtype":…,"shape":[…],"strides":[…],"sha256_c_order":…}` for arrays of any
/// family, `{"t":"exception","type":"TypeError","msg":…}` for the error family, pickles as
/// pontoon-pickle prints them, and `{"t":"other","type":"msgpack.ExtType"}`. At most
/// `max_bytes` long.
///
/// ```
/// use pontoon_dask::{Object, Value, to_json};
/// let v = Value::List(vec![Value::Int(1), Object::Error("no".into()).into()]);
/// assert_eq!(
///     to_json(&v, 1 << 20)?,
///     r#"{"t":"tuple","items":[{"t":"int","v":"1"},{"t":"exception","type":"TypeError","msg":"no"}]}"#
/// );
/// # Ok::<(), pontoon_dask::JsonError>(())
/// ```
pub fn to_json(value: &Value, max_bytes: usize) -> Result<String, JsonError> {
    let mut printer = Printer {
        out: String::new(),
        max_bytes,
    };
    printer.value(value, 0)?;
    Ok(printer.out)
}

struct Printer {
    out: String,
    max_bytes: usize,
}

fn escape(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

impl Printer {
    fn check(&self) -> Result<(), JsonError> {
        if self.out.len() > self.max_bytes {
            return Err(JsonError::TooLarge {
                limit: self.max_bytes,
            });
        }
        Ok(())
    }

    fn graph(&mut self, graph: &Graph) -> Result<(), JsonError> {
        let left = self.max_bytes.saturating_sub(self.out.len());
        let text = pontoon_pickle::to_json(graph, left).map_err(|e| match e {
            pontoon_pickle::JsonError::TooLarge { .. } => JsonError::TooLarge {
                limit: self.max_bytes,
            },
            other => JsonError::Pickle(other),
        })?;
        self.out.push_str(&text);
        self.check()
    }

    fn items<'a>(
        &mut self,
        t: &str,
        items: impl Iterator<Item = &'a Value>,
        depth: usize,
    ) -> Result<(), JsonError> {
        let _ = write!(self.out, r#"{{"t":"{t}","items":["#);
        for (i, item) in items.enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.value(item, depth + 1)?;
        }
        self.out.push_str("]}");
        self.check()
    }

    fn value(&mut self, value: &Value, depth: usize) -> Result<(), JsonError> {
        if depth > MAX_DEPTH {
            return Err(JsonError::TooDeep { limit: MAX_DEPTH });
        }
        match value {
            Value::Nil => self.out.push_str(r#"{"t":"none"}"#),
            Value::Bool(b) => {
                let _ = write!(self.out, r#"{{"t":"bool","v":{b}}}"#);
            }
            Value::Int(i) => {
                let _ = write!(self.out, r#"{{"t":"int","v":"{i}"}}"#);
            }
            Value::UInt(u) => {
                let _ = write!(self.out, r#"{{"t":"int","v":"{u}"}}"#);
            }
            Value::Float(f) => {
                let _ = write!(
                    self.out,
                    r#"{{"t":"float","v":"{}"}}"#,
                    pontoon_pickle::float_hex(*f)
                );
            }
            Value::Str(s) => {
                self.out.push_str(r#"{"t":"str","v":"#);
                escape(&mut self.out, s);
                self.out.push('}');
            }
            Value::Bin(b) => self.graph(&Graph::single(Node::Bytes(b.clone())))?,
            Value::Ext(_, _) => self
                .out
                .push_str(r#"{"t":"other","type":"msgpack.ExtType"}"#),
            Value::List(items) => self.items("tuple", items.iter(), depth)?,
            Value::Set(items) => self.items("set", items.iter(), depth)?,
            Value::Map(items) => {
                self.out.push_str(r#"{"t":"dict","items":["#);
                for (i, (k, v)) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.out.push('[');
                    self.value(k, depth + 1)?;
                    self.out.push(',');
                    self.value(v, depth + 1)?;
                    self.out.push(']');
                }
                self.out.push_str("]}");
            }
            Value::Serialized(object) => self.object(object, depth)?,
            Value::Pickled(data) => self.graph(&data.graph)?,
        }
        self.check()
    }

    fn object(&mut self, object: &Object, depth: usize) -> Result<(), JsonError> {
        if depth > MAX_DEPTH {
            return Err(JsonError::TooDeep { limit: MAX_DEPTH });
        }
        match object {
            Object::Array(array) => match &array.data {
                ArrayData::Numeric(a) => {
                    self.graph(&Graph::single(Node::Array(Box::new(a.clone()))))?
                }
                ArrayData::Raw(r) => {
                    let digest = Sha256::digest(r.c_order_bytes());
                    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                    self.out.push_str(r#"{"t":"ndarray","dtype":"#);
                    escape(&mut self.out, &r.dtype.to_string());
                    let list = |v: Vec<String>| v.join(",");
                    let _ = write!(
                        self.out,
                        r#","shape":[{}],"strides":[{}],"sha256_c_order":"{hex}"}}"#,
                        list(r.shape.iter().map(ToString::to_string).collect()),
                        list(r.strides.iter().map(ToString::to_string).collect()),
                    );
                }
            },
            Object::Bytes(b) => self.graph(&Graph::single(Node::Bytes(b.clone())))?,
            Object::ByteArray(b) => self.graph(&Graph::single(Node::ByteArray(b.clone())))?,
            Object::Pickle(data) => self.graph(&data.graph)?,
            Object::Msgpack(v) => self.value(v, depth + 1)?,
            Object::Error(msg) => {
                self.out
                    .push_str(r#"{"t":"exception","type":"TypeError","msg":"#);
                escape(&mut self.out, msg);
                self.out.push('}');
            }
            Object::Collection(c) => {
                let t = c.kind.name();
                if c.kind == CollectionKind::Dict {
                    self.out.push_str(r#"{"t":"dict","items":["#);
                    for (i, (k, v)) in c.keys.iter().zip(&c.items).enumerate() {
                        if i > 0 {
                            self.out.push(',');
                        }
                        self.out.push('[');
                        self.value(k, depth + 1)?;
                        self.out.push(',');
                        self.object(v, depth + 1)?;
                        self.out.push(']');
                    }
                } else {
                    let _ = write!(self.out, r#"{{"t":"{t}","items":["#);
                    for (i, item) in c.items.iter().enumerate() {
                        if i > 0 {
                            self.out.push(',');
                        }
                        self.object(item, depth + 1)?;
                    }
                }
                self.out.push_str("]}");
            }
        }
        self.check()
    }
}
