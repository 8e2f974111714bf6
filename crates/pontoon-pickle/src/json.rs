//! [`to_json`]: a [`Graph`] as the JSON tree `pontoon inspect --format pickle` prints, written
//! with an explicit work list (any depth) and a bound on the output (shared nodes are printed
//! again where they recur, which a small graph can make exponential).

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use crate::value::{Graph, Node, NodeId};

/// Why a graph could not be printed as JSON.
///
/// ```
/// use pontoon_pickle::{Graph, JsonError, Node, to_json};
/// let graph = Graph::single(Node::Str("a long string".into()));
/// assert!(matches!(to_json(&graph, 8), Err(JsonError::TooLarge { limit: 8 })));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    /// The JSON would be longer than the limit given.
    #[error(
        "the JSON would be longer than {limit} bytes (shared values are printed each time they recur)"
    )]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// An array whose bytes could not be gathered in C order.
    #[error("hashing the array at node {node}")]
    Array {
        /// The node.
        node: usize,
        /// What pontoon-array said.
        #[source]
        source: pontoon_array::ArrayError,
    },
    /// A node refers to an id the graph does not have.
    #[error("node {node} is not in the graph")]
    Dangling {
        /// The missing index.
        node: usize,
    },
}

/// The value as a JSON tree of nodes: `{"t":"none"}`, `{"t":"bool","v":true}`,
/// `{"t":"int","v":"123"}` (decimal), `{"t":"float","v":"0x1.8000000000000p+0"}` (Python's
/// `float.hex()`, or `"nan"`, `"inf"`, `"-inf"`), `{"t":"complex","re":…,"im":…}`,
/// `{"t":"str","v":…}`, `{"t":"bytes","len":N,"sha256":…}` (with `"kind":"bytearray"` for a
/// bytearray), `{"t":"list"|"tuple"|"set"|"frozenset","items":[…]}`,
/// `{"t":"dict","items":[[k,v],…]}` (with `"kind":"OrderedDict"` for one),
/// `{"t":"ndarray","dtype":"<f8","shape":[…],"strides":[…],"sha256_c_order":…}`, and
/// `{"t":"other","type":"module.Name"}` for anything else. A shared node is printed again where
/// it recurs; where a cycle closes, `{"t":"ref"}` is printed. The output is at most
/// `max_bytes` long.
///
/// ```
/// use pontoon_pickle::{Graph, Node, to_json};
/// let mut graph = Graph::new();
/// let list = graph.push(Node::List(vec![]));
/// let one = graph.push(Node::Float(1.5));
/// *graph.node_mut(list) = Node::List(vec![one, list]);
/// graph.set_root(list);
/// assert_eq!(
///     to_json(&graph, 1 << 20)?,
///     r#"{"t":"list","items":[{"t":"float","v":"0x1.8000000000000p+0"},{"t":"ref"}]}"#
/// );
/// # Ok::<(), pontoon_pickle::JsonError>(())
/// ```
pub fn to_json(graph: &Graph, max_bytes: usize) -> Result<String, JsonError> {
    enum Step {
        Visit(NodeId),
        Text(&'static str),
        Leave(NodeId),
    }
    let mut out = String::new();
    let mut on_path = vec![false; graph.nodes().len()];
    // Where each scalar was first printed: a shared scalar (a large bytes, array or int) recurs
    // as a copy of that text, so its hashing or rendering is paid once, not once per reference.
    let mut printed: Vec<Option<(usize, usize)>> = vec![None; graph.nodes().len()];
    let mut steps = vec![Step::Visit(graph.root())];
    while let Some(step) = steps.pop() {
        match step {
            Step::Text(t) => out.push_str(t),
            Step::Leave(id) => on_path[id.index()] = false,
            Step::Visit(id) => {
                let node = graph
                    .get(id)
                    .ok_or(JsonError::Dangling { node: id.index() })?;
                if on_path[id.index()] {
                    out.push_str(r#"{"t":"ref"}"#);
                    continue;
                }
                let (kind, items): (&str, Vec<NodeId>) = match node {
                    Node::List(v) => ("list", v.clone()),
                    Node::Tuple(v) => ("tuple", v.clone()),
                    Node::Set(v) => ("set", v.clone()),
                    Node::FrozenSet(v) => ("frozenset", v.clone()),
                    Node::Dict(pairs) | Node::OrderedDict(pairs) => {
                        if matches!(node, Node::OrderedDict(_)) {
                            out.push_str(r#"{"t":"dict","kind":"OrderedDict","items":["#);
                        } else {
                            out.push_str(r#"{"t":"dict","items":["#);
                        }
                        on_path[id.index()] = true;
                        steps.push(Step::Leave(id));
                        steps.push(Step::Text("]}"));
                        for (i, &(k, v)) in pairs.iter().enumerate().rev() {
                            steps.push(Step::Text("]"));
                            steps.push(Step::Visit(v));
                            steps.push(Step::Text(","));
                            steps.push(Step::Visit(k));
                            steps.push(Step::Text(if i == 0 { "[" } else { ",[" }));
                        }
                        continue;
                    }
                    scalar => {
                        if let Some((start, end)) = printed[id.index()] {
                            if out.len() + (end - start) > max_bytes {
                                return Err(JsonError::TooLarge { limit: max_bytes });
                            }
                            let again = out[start..end].to_owned();
                            out.push_str(&again);
                            continue;
                        }
                        let start = out.len();
                        scalar_json(&mut out, graph, id, scalar)?;
                        printed[id.index()] = Some((start, out.len()));
                        if out.len() > max_bytes {
                            return Err(JsonError::TooLarge { limit: max_bytes });
                        }
                        continue;
                    }
                };
                let _ = write!(out, r#"{{"t":"{kind}","items":["#);
                on_path[id.index()] = true;
                steps.push(Step::Leave(id));
                steps.push(Step::Text("]}"));
                for (i, &item) in items.iter().enumerate().rev() {
                    steps.push(Step::Visit(item));
                    if i > 0 {
                        steps.push(Step::Text(","));
                    }
                }
            }
        }
        if out.len() > max_bytes {
            return Err(JsonError::TooLarge { limit: max_bytes });
        }
    }
    Ok(out)
}

fn scalar_json(out: &mut String, graph: &Graph, id: NodeId, node: &Node) -> Result<(), JsonError> {
    match node {
        Node::None => out.push_str(r#"{"t":"none"}"#),
        Node::Bool(b) => {
            let _ = write!(out, r#"{{"t":"bool","v":{b}}}"#);
        }
        Node::Int(v) => {
            let _ = write!(out, r#"{{"t":"int","v":"{v}"}}"#);
        }
        Node::BigInt(v) => {
            let _ = write!(out, r#"{{"t":"int","v":"{v}"}}"#);
        }
        Node::Float(v) => {
            let _ = write!(out, r#"{{"t":"float","v":"{}"}}"#, float_hex(*v));
        }
        Node::Complex { re, im } => {
            let _ = write!(
                out,
                r#"{{"t":"complex","re":"{}","im":"{}"}}"#,
                float_hex(*re),
                float_hex(*im)
            );
        }
        Node::Str(s) => {
            out.push_str(r#"{"t":"str","v":""#);
            for cp in s.code_points() {
                match cp {
                    0x22 => out.push_str("\\\""),
                    0x5C => out.push_str("\\\\"),
                    0..=0x1F | 0xD800..=0xDFFF => {
                        let _ = write!(out, "\\u{cp:04x}");
                    }
                    _ => out.push(char::from_u32(cp).unwrap_or('\u{FFFD}')),
                }
            }
            out.push_str("\"}");
        }
        Node::Bytes(b) => {
            let _ = write!(
                out,
                r#"{{"t":"bytes","len":{},"sha256":"{}"}}"#,
                b.len(),
                sha256(b)
            );
        }
        Node::ByteArray(b) => {
            let _ = write!(
                out,
                r#"{{"t":"bytes","kind":"bytearray","len":{},"sha256":"{}"}}"#,
                b.len(),
                sha256(b)
            );
        }
        Node::Array(array) => {
            let err = |source| JsonError::Array {
                node: id.index(),
                source,
            };
            // Only an array that is not C-ordered is copied to hash its bytes in C order.
            let copy;
            let c_order = if array.is_c_contiguous() {
                &**array
            } else {
                copy = array.to_contiguous().map_err(err)?;
                &copy
            };
            let digest = sha256(&crate::numpy::element_bytes(c_order).map_err(err)?);
            let list = |v: &mut String, items: Vec<String>| v.push_str(&items.join(","));
            let _ = write!(
                out,
                r#"{{"t":"ndarray","dtype":"{}","shape":["#,
                array.descr()
            );
            list(out, array.shape().iter().map(|d| d.to_string()).collect());
            out.push_str(r#"],"strides":["#);
            list(out, array.strides().iter().map(|d| d.to_string()).collect());
            let _ = write!(out, r#"],"sha256_c_order":"{digest}"}}"#);
        }
        Node::DType(_) => out.push_str(r#"{"t":"other","type":"numpy.dtype"}"#),
        Node::Global(g) => {
            out.push_str(r#"{"t":"other","type":"#);
            json_string(out, &g.to_string());
            out.push('}');
        }
        Node::Object(object) => {
            let name = match graph.get(object.callable) {
                Some(Node::Global(g)) => g.to_string(),
                _ => "object".to_string(),
            };
            out.push_str(r#"{"t":"other","type":"#);
            json_string(out, &name);
            out.push('}');
        }
        // Containers are handled by the caller.
        _ => out.push_str(r#"{"t":"other","type":"object"}"#),
    }
    Ok(())
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn sha256(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    let mut hex = String::with_capacity(64);
    for b in digest.iter() {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// `v` as Python's `float.hex()` writes it (`nan`, `inf` and `-inf` as `repr` does).
///
/// ```
/// use pontoon_pickle::float_hex;
/// assert_eq!(float_hex(1.5), "0x1.8000000000000p+0");
/// assert_eq!(float_hex(-0.0), "-0x0.0p+0");
/// assert_eq!(float_hex(f64::MIN_POSITIVE / 2.0), "0x0.8000000000000p-1022");
/// assert_eq!(float_hex(f64::NEG_INFINITY), "-inf");
/// ```
pub fn float_hex(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let bits = v.to_bits();
    let sign = if bits >> 63 == 1 { "-" } else { "" };
    let exponent = ((bits >> 52) & 0x7FF) as i64;
    let mantissa = bits & ((1 << 52) - 1);
    if exponent == 0 && mantissa == 0 {
        return format!("{sign}0x0.0p+0");
    }
    if exponent == 0 {
        return format!("{sign}0x0.{mantissa:013x}p-1022");
    }
    let e = exponent - 1023;
    let e_sign = if e >= 0 { "+" } else { "-" };
    format!("{sign}0x1.{mantissa:013x}p{e_sign}{}", e.abs())
}
