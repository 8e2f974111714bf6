//! The decoder: [`loads`] runs pickle's stack machine over the input, building a [`Graph`] and
//! calling nothing. Every length is checked against what remains before it is read, every node
//! and copy is counted against a budget proportional to the input, and marks nest at most
//! `max_depth` deep; the machine is a loop, so no input can overflow the native stack.

use std::collections::HashMap;

use bytes::Bytes;

use crate::allow::{Known, known};
use crate::int::BigInt;
use crate::numpy;
use crate::opcode::{self as op, describe};
use crate::text::{PyStr, push_code_point};
use crate::value::{Call, DTypeSpec, Global, Graph, Node, NodeId, Object};
use crate::{LoadError, LoadOptions};

/// The least budget any input gets, so small pickles never hit the ratio.
const BUDGET_FLOOR: u64 = 64 << 10;

/// Decodes a pickle (protocols 0 to 5) into a value graph. `buffers` are the out-of-band
/// buffers of protocol 5 (`NEXT_BUFFER` takes them in order); bytes, bytearrays and numpy arrays
/// made from them, or from `BINBYTES` and friends in `data`, are views of them, not copies (a
/// numpy array whose data is misaligned for its dtype is copied once).
///
/// Nothing is ever called: globals are honoured only when on the allow-list (see
/// [`allow_list`](crate::allow_list)), or kept as opaque values when
/// [`LoadOptions::opaque`] says so; anything else is [`LoadError::Refused`].
///
/// ```
/// use bytes::Bytes;
/// use pontoon_pickle::{LoadOptions, Node, loads};
///
/// // l = []; l.append(l); pickle.dumps([l, l], protocol=2)
/// let data = Bytes::from_static(b"\x80\x02]q\x00(]q\x01h\x01ah\x01e.");
/// let graph = loads(&data, &[], &LoadOptions::default())?;
/// let Node::List(outer) = graph.node(graph.root()) else { panic!() };
/// assert_eq!(outer[0], outer[1]); // shared
/// assert_eq!(graph.node(outer[0]), &Node::List(vec![outer[0]])); // a cycle
/// # Ok::<(), pontoon_pickle::LoadError>(())
/// ```
pub fn loads(data: &Bytes, buffers: &[Bytes], options: &LoadOptions) -> Result<Graph, LoadError> {
    let budget = (data.len() as u64)
        .saturating_mul(options.max_expansion_ratio)
        .max(BUDGET_FLOOR);
    let mut loader = Loader {
        data,
        pos: 0,
        buffers,
        next_buffer: 0,
        graph: Graph::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: Vec::new(),
        sparse_memo: HashMap::new(),
        memo_count: 0,
        known: HashMap::new(),
        budget,
        spent: 0,
        options,
        at: 0,
        op: 0,
    };
    // Every node takes at least one opcode byte, and pickles of many small objects take about
    // eight a node: room for that many up front (capped, and only if it can be had) saves the
    // copies and the fresh pages of growing the node vector by doubling.
    let expected_nodes = (data.len() / 8).min(EXPECTED_NODES_MAX);
    // If the room cannot be had, the nodes grow as they come, each growth fallible.
    let _ = loader.graph.try_reserve(expected_nodes);
    loader.run()?;
    loader.graph.release_unused();
    Ok(loader.graph)
}

/// The most nodes reserved before a pickle is read (32 MiB of them); more grow as needed.
const EXPECTED_NODES_MAX: usize = (32 << 20) / std::mem::size_of::<Node>();

pub(crate) struct Loader<'a> {
    data: &'a Bytes,
    pos: usize,
    buffers: &'a [Bytes],
    next_buffer: usize,
    pub(crate) graph: Graph,
    stack: Vec<NodeId>,
    /// Stack lengths at each open `MARK`.
    marks: Vec<usize>,
    /// Memo entries by index; indexes far beyond the count go to `sparse_memo` so a peer
    /// cannot make us allocate by naming index 2^32 - 1.
    memo: Vec<Option<NodeId>>,
    sparse_memo: HashMap<u64, NodeId>,
    memo_count: usize,
    /// The allow-listed constructor each global node stands for.
    known: HashMap<NodeId, Known>,
    budget: u64,
    spent: u64,
    options: &'a LoadOptions,
    /// The offset and byte of the opcode being run, for errors.
    pub(crate) at: usize,
    op: u8,
}

type Result<T, E = LoadError> = std::result::Result<T, E>;

impl<'a> Loader<'a> {
    // --- errors -------------------------------------------------------------------------

    pub(crate) fn invalid(&self, what: impl Into<String>) -> LoadError {
        LoadError::Invalid {
            offset: self.at,
            opcode: describe(self.op),
            what: what.into(),
        }
    }

    fn truncated(&self) -> LoadError {
        LoadError::Truncated {
            offset: self.at,
            opcode: describe(self.op),
        }
    }

    fn underflow(&self) -> LoadError {
        LoadError::StackUnderflow {
            offset: self.at,
            opcode: describe(self.op),
        }
    }

    fn oom(&self) -> LoadError {
        LoadError::OutOfMemory { offset: self.at }
    }

    /// Counts `units` (nodes, copied items or bytes) against the budget.
    pub(crate) fn spend(&mut self, units: u64) -> Result<()> {
        self.spent = self.spent.saturating_add(units);
        if self.spent > self.budget {
            return Err(LoadError::TooLarge {
                offset: self.at,
                limit: self.budget,
            });
        }
        Ok(())
    }

    // --- input --------------------------------------------------------------------------

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let data: &'a [u8] = self.data;
        let end = self.pos.checked_add(n).filter(|&e| e <= data.len());
        match end {
            Some(end) => {
                let slice = &data[self.pos..end];
                self.pos = end;
                Ok(slice)
            }
            None => Err(self.truncated()),
        }
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let slice = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take_array::<1>()?[0])
    }

    /// A length read from the input, checked against what remains before anything is read.
    fn length(&mut self, length: u64) -> Result<usize> {
        let available = (self.data.len() - self.pos) as u64;
        if length > available {
            return Err(LoadError::TooLong {
                offset: self.at,
                length,
                available,
            });
        }
        Ok(length as usize)
    }

    /// `n` bytes of the input as a view.
    fn take_bytes(&mut self, n: u64) -> Result<Bytes> {
        let n = self.length(n)?;
        let start = self.pos;
        self.pos += n;
        Ok(self.data.slice(start..start + n))
    }

    /// A protocol 0 argument: the bytes up to the next newline (which is consumed).
    fn line(&mut self) -> Result<&'a [u8]> {
        let data: &'a [u8] = self.data;
        let rest = &data[self.pos..];
        match rest.iter().position(|&b| b == b'\n') {
            Some(n) => {
                self.pos += n + 1;
                Ok(&rest[..n])
            }
            None => Err(self.truncated()),
        }
    }

    fn line_str(&mut self) -> Result<&'a str> {
        let line = self.line()?;
        std::str::from_utf8(line).map_err(|_| self.invalid("the argument is not text"))
    }

    // --- stack --------------------------------------------------------------------------

    /// Where the items above the innermost mark start.
    fn base(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn push(&mut self, id: NodeId) -> Result<()> {
        if self.stack.len() == self.stack.capacity() {
            self.stack.try_reserve(1).map_err(|_| self.oom())?;
        }
        self.stack.push(id);
        Ok(())
    }

    pub(crate) fn node(&mut self, node: Node) -> Result<NodeId> {
        self.spend(1)?;
        if self.graph.nodes().len() >= u32::MAX as usize {
            return Err(self.oom());
        }
        self.graph.reserve_one().map_err(|_| self.oom())?;
        Ok(self.graph.push(node))
    }

    fn push_node(&mut self, node: Node) -> Result<()> {
        let id = self.node(node)?;
        self.push(id)
    }

    fn pop(&mut self) -> Result<NodeId> {
        if self.stack.len() <= self.base() {
            return Err(self.underflow());
        }
        self.stack.pop().ok_or_else(|| self.underflow())
    }

    fn top(&self) -> Result<NodeId> {
        if self.stack.len() <= self.base() {
            return Err(self.underflow());
        }
        self.stack.last().copied().ok_or_else(|| self.underflow())
    }

    /// The items since the innermost mark, which is closed.
    fn pop_mark(&mut self) -> Result<Vec<NodeId>> {
        let Some(base) = self.marks.pop() else {
            return Err(LoadError::NoMark {
                offset: self.at,
                opcode: describe(self.op),
            });
        };
        Ok(self.stack.split_off(base))
    }

    /// Closes the innermost mark; returns where its items start.
    fn close_mark(&mut self) -> Result<usize> {
        self.marks.pop().ok_or_else(|| LoadError::NoMark {
            offset: self.at,
            opcode: describe(self.op),
        })
    }

    /// The value just below the items that start at `from`, which must be above the
    /// innermost open mark.
    fn below(&self, from: usize) -> Result<NodeId> {
        if from == 0 || from - 1 < self.base() {
            return Err(self.underflow());
        }
        Ok(self.stack[from - 1])
    }

    // --- memo ---------------------------------------------------------------------------

    fn memo_put(&mut self, index: u64) -> Result<()> {
        let id = self.top()?;
        let i = index as usize;
        if (index as u128) < self.memo.len() as u128 {
            if self.memo[i].replace(id).is_none() {
                self.memo_count += 1;
            }
        } else if index as u128 == self.memo.len() as u128 {
            self.memo.try_reserve(1).map_err(|_| self.oom())?;
            self.memo.push(Some(id));
            self.memo_count += 1;
        } else {
            self.spend(4)?;
            if self.sparse_memo.insert(index, id).is_none() {
                self.memo_count += 1;
            }
        }
        Ok(())
    }

    fn memo_get(&mut self, index: u64) -> Result<()> {
        let found = match self.memo.get(index as usize) {
            Some(entry) if (index as u128) < self.memo.len() as u128 => *entry,
            _ => self.sparse_memo.get(&index).copied(),
        };
        match found {
            Some(id) => self.push(id),
            None => Err(LoadError::MemoMissing {
                offset: self.at,
                index,
            }),
        }
    }

    fn decimal_index(&mut self) -> Result<u64> {
        let line = self.line_str()?;
        line.parse::<u64>()
            .map_err(|_| self.invalid(format!("memo index {line:?} is not a number")))
    }

    // --- the machine --------------------------------------------------------------------

    fn run(&mut self) -> Result<()> {
        loop {
            self.at = self.pos;
            let Some(&code) = self.data.get(self.pos) else {
                return Err(LoadError::NoStop {
                    offset: self.data.len(),
                });
            };
            self.pos += 1;
            self.op = code;
            match code {
                op::STOP => {
                    let root = self.pop()?;
                    self.graph.set_root(root);
                    return Ok(());
                }
                op::PROTO => {
                    let protocol = self.u8()?;
                    if protocol > 5 {
                        return Err(LoadError::UnsupportedProtocol {
                            offset: self.at,
                            protocol,
                        });
                    }
                }
                op::FRAME => {
                    // Frames only group opcodes for buffered reading; the input is all here.
                    let length = u64::from_le_bytes(self.take_array()?);
                    self.length(length)?;
                }
                op::MARK => {
                    if self.marks.len() >= self.options.max_depth {
                        return Err(LoadError::TooDeep {
                            offset: self.at,
                            limit: self.options.max_depth,
                        });
                    }
                    self.marks.try_reserve(1).map_err(|_| self.oom())?;
                    self.marks.push(self.stack.len());
                }
                op::POP => {
                    if self.stack.len() > self.base() {
                        self.stack.pop();
                    } else {
                        self.pop_mark()?;
                    }
                }
                op::POP_MARK => {
                    self.pop_mark()?;
                }
                op::DUP => {
                    let top = self.top()?;
                    self.spend(1)?;
                    self.push(top)?;
                }
                op::NONE => self.push_node(Node::None)?,
                op::NEWTRUE => self.push_node(Node::Bool(true))?,
                op::NEWFALSE => self.push_node(Node::Bool(false))?,
                op::BININT => {
                    let v = i32::from_le_bytes(self.take_array()?);
                    self.push_node(Node::Int(v.into()))?;
                }
                op::BININT1 => {
                    let v = self.u8()?;
                    self.push_node(Node::Int(v.into()))?;
                }
                op::BININT2 => {
                    let v = u16::from_le_bytes(self.take_array()?);
                    self.push_node(Node::Int(v.into()))?;
                }
                op::INT => {
                    let line = self.line_str()?;
                    let node = match line {
                        "00" => Node::Bool(false),
                        "01" => Node::Bool(true),
                        text => self.decimal(text)?,
                    };
                    self.push_node(node)?;
                }
                op::LONG => {
                    let line = self.line_str()?;
                    let text = line.strip_suffix('L').unwrap_or(line);
                    let node = self.decimal(text)?;
                    self.push_node(node)?;
                }
                op::LONG1 => {
                    let n = self.u8()?;
                    self.long(n.into())?;
                }
                op::LONG4 => {
                    let n = i32::from_le_bytes(self.take_array()?);
                    let n = u64::try_from(n)
                        .map_err(|_| self.invalid(format!("negative length {n}")))?;
                    self.long(n)?;
                }
                op::FLOAT => {
                    let line = self.line_str()?;
                    let v = line
                        .trim()
                        .parse::<f64>()
                        .map_err(|_| self.invalid(format!("{line:?} is not a float")))?;
                    self.push_node(Node::Float(v))?;
                }
                op::BINFLOAT => {
                    let v = f64::from_be_bytes(self.take_array()?);
                    self.push_node(Node::Float(v))?;
                }
                op::STRING => {
                    let line = self.line()?;
                    let bytes = self.python2_string(line)?;
                    self.ascii_str(&bytes)?;
                }
                op::BINSTRING => {
                    let n = i32::from_le_bytes(self.take_array()?);
                    let n = u64::try_from(n)
                        .map_err(|_| self.invalid(format!("negative length {n}")))?;
                    let bytes = self.take_bytes(n)?;
                    self.ascii_str(&bytes)?;
                }
                op::SHORT_BINSTRING => {
                    let n = self.u8()?;
                    let bytes = self.take_bytes(n.into())?;
                    self.ascii_str(&bytes)?;
                }
                op::UNICODE => {
                    let line = self.line()?;
                    let s = self.raw_unicode_escape(line)?;
                    self.push_node(Node::Str(s))?;
                }
                op::BINUNICODE => {
                    let n = u32::from_le_bytes(self.take_array()?);
                    self.utf8(n.into())?;
                }
                op::SHORT_BINUNICODE => {
                    let n = self.u8()?;
                    self.utf8(n.into())?;
                }
                op::BINUNICODE8 => {
                    let n = u64::from_le_bytes(self.take_array()?);
                    self.utf8(n)?;
                }
                op::BINBYTES => {
                    let n = u32::from_le_bytes(self.take_array()?);
                    let b = self.take_bytes(n.into())?;
                    self.push_node(Node::Bytes(b))?;
                }
                op::SHORT_BINBYTES => {
                    let n = self.u8()?;
                    let b = self.take_bytes(n.into())?;
                    self.push_node(Node::Bytes(b))?;
                }
                op::BINBYTES8 => {
                    let n = u64::from_le_bytes(self.take_array()?);
                    let b = self.take_bytes(n)?;
                    self.push_node(Node::Bytes(b))?;
                }
                op::BYTEARRAY8 => {
                    let n = u64::from_le_bytes(self.take_array()?);
                    let b = self.take_bytes(n)?;
                    self.push_node(Node::ByteArray(b))?;
                }
                op::NEXT_BUFFER => {
                    let Some(buffer) = self.buffers.get(self.next_buffer) else {
                        return Err(LoadError::NoBuffer {
                            offset: self.at,
                            index: self.next_buffer,
                            given: self.buffers.len(),
                        });
                    };
                    self.next_buffer += 1;
                    // A PickleBuffer is writable unless READONLY_BUFFER follows.
                    self.push_node(Node::ByteArray(buffer.clone()))?;
                }
                op::READONLY_BUFFER => {
                    let top = self.top()?;
                    if let Node::ByteArray(b) = self.graph.node(top) {
                        let b = b.clone();
                        let id = self.node(Node::Bytes(b))?;
                        if let Some(slot) = self.stack.last_mut() {
                            *slot = id;
                        }
                    } else if !matches!(self.graph.node(top), Node::Bytes(_)) {
                        return Err(self.invalid("the value is not a buffer"));
                    }
                }
                op::EMPTY_LIST => self.push_node(Node::List(Vec::new()))?,
                op::EMPTY_TUPLE => self.push_node(Node::Tuple(Vec::new()))?,
                op::EMPTY_DICT => self.push_node(Node::Dict(Vec::new()))?,
                op::EMPTY_SET => self.push_node(Node::Set(Vec::new()))?,
                op::LIST => {
                    let items = self.pop_mark()?;
                    self.push_node(Node::List(items))?;
                }
                op::TUPLE => {
                    let items = self.pop_mark()?;
                    self.push_node(Node::Tuple(items))?;
                }
                op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                    let n = usize::from(code - op::TUPLE1 + 1);
                    if self.stack.len() < self.base() + n {
                        return Err(self.underflow());
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push_node(Node::Tuple(items))?;
                }
                op::FROZENSET => {
                    let items = self.pop_mark()?;
                    self.push_node(Node::FrozenSet(items))?;
                }
                op::DICT => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    self.push_node(Node::Dict(pairs))?;
                }
                op::APPEND => {
                    // The value is on top, the list below it.
                    let len = self.stack.len();
                    if len < self.base() + 2 {
                        return Err(self.underflow());
                    }
                    self.extend_list(self.stack[len - 2], len - 1)?;
                }
                op::APPENDS => {
                    let from = self.close_mark()?;
                    let target = self.below(from)?;
                    self.extend_list(target, from)?;
                }
                op::SETITEM => {
                    let len = self.stack.len();
                    if len < self.base() + 3 {
                        return Err(self.underflow());
                    }
                    self.extend_dict(self.stack[len - 3], len - 2)?;
                }
                op::SETITEMS => {
                    let from = self.close_mark()?;
                    let target = self.below(from)?;
                    self.extend_dict(target, from)?;
                }
                op::ADDITEMS => {
                    let from = self.close_mark()?;
                    let target = self.below(from)?;
                    let at = self.at;
                    let n = self.stack.len() - from;
                    match self.graph.node_mut(target) {
                        Node::Set(set) => {
                            set.try_reserve(n)
                                .map_err(|_| LoadError::OutOfMemory { offset: at })?;
                            set.extend(self.stack.drain(from..));
                        }
                        other => {
                            let what = format!("ADDITEMS onto a {}", other.type_name());
                            return Err(self.invalid(what));
                        }
                    }
                }
                op::PUT => {
                    let index = self.decimal_index()?;
                    self.memo_put(index)?;
                }
                op::BINPUT => {
                    let index = self.u8()?;
                    self.memo_put(index.into())?;
                }
                op::LONG_BINPUT => {
                    let index = u32::from_le_bytes(self.take_array()?);
                    self.memo_put(index.into())?;
                }
                op::MEMOIZE => {
                    let index = self.memo_count as u64;
                    self.memo_put(index)?;
                }
                op::GET => {
                    let index = self.decimal_index()?;
                    self.memo_get(index)?;
                }
                op::BINGET => {
                    let index = self.u8()?;
                    self.memo_get(index.into())?;
                }
                op::LONG_BINGET => {
                    let index = u32::from_le_bytes(self.take_array()?);
                    self.memo_get(index.into())?;
                }
                op::GLOBAL => {
                    let module = self.line_str()?;
                    let name = self.line_str()?;
                    let id = self.global(module, name)?;
                    self.push(id)?;
                }
                op::STACK_GLOBAL => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Node::Str(module), Node::Str(name)) =
                        (self.graph.node(module), self.graph.node(name))
                    else {
                        return Err(self.invalid("module and name must be strings"));
                    };
                    let module = module.to_string_lossy();
                    let name = name.to_string_lossy();
                    let id = self.global(&module, &name)?;
                    self.push(id)?;
                }
                op::INST => {
                    let module = self.line_str()?;
                    let name = self.line_str()?;
                    let callable = self.global(module, name)?;
                    let args = self.pop_mark()?;
                    let args = self.node(Node::Tuple(args))?;
                    let id = self.call(callable, args, None, Call::Reduce)?;
                    self.push(id)?;
                }
                op::OBJ => {
                    let mut items = self.pop_mark()?;
                    if items.is_empty() {
                        return Err(self.underflow());
                    }
                    let callable = items.remove(0);
                    let args = self.node(Node::Tuple(items))?;
                    let id = self.call(callable, args, None, Call::Reduce)?;
                    self.push(id)?;
                }
                op::REDUCE => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let id = self.call(callable, args, None, Call::Reduce)?;
                    self.push(id)?;
                }
                op::NEWOBJ => {
                    let args = self.pop()?;
                    let class = self.pop()?;
                    let id = self.call(class, args, None, Call::NewObj)?;
                    self.push(id)?;
                }
                op::NEWOBJ_EX => {
                    let kwargs = self.pop()?;
                    let args = self.pop()?;
                    let class = self.pop()?;
                    let id = self.call(class, args, Some(kwargs), Call::NewObjEx)?;
                    self.push(id)?;
                }
                op::BUILD => {
                    let state = self.pop()?;
                    let target = self.top()?;
                    self.build(target, state)?;
                }
                op::PERSID | op::BINPERSID => {
                    return Err(LoadError::Unsupported {
                        offset: self.at,
                        opcode: describe(code),
                        why: "persistent ids name objects outside the pickle",
                    });
                }
                op::EXT1 | op::EXT2 | op::EXT4 => {
                    return Err(LoadError::Unsupported {
                        offset: self.at,
                        opcode: describe(code),
                        why: "extension codes name globals from copyreg's registry",
                    });
                }
                other => {
                    return Err(LoadError::UnknownOpcode {
                        offset: self.at,
                        opcode: other,
                    });
                }
            }
        }
    }

    // --- scalars ------------------------------------------------------------------------

    fn int_node(big: BigInt) -> Node {
        match big.to_i64() {
            Some(v) => Node::Int(v),
            None => Node::BigInt(big),
        }
    }

    fn decimal(&mut self, text: &str) -> Result<Node> {
        let text = text.trim();
        if let Ok(v) = text.parse::<i64>() {
            return Ok(Node::Int(v));
        }
        let limit = self.options.max_int_bytes;
        if text.len() > limit.saturating_mul(3) {
            return Err(LoadError::IntTooLarge {
                offset: self.at,
                bytes: text.len() as u64,
                limit,
            });
        }
        self.spend(text.len() as u64)?;
        let big = BigInt::from_decimal(text)
            .ok_or_else(|| self.invalid(format!("{text:?} is not an integer")))?;
        // The digit count bounded the work; the limit itself is on the integer's bytes, so
        // that what is read as text is also read back as LONG4 (found by fuzzing).
        let bytes = big.to_signed_le().len();
        if bytes > limit {
            return Err(LoadError::IntTooLarge {
                offset: self.at,
                bytes: bytes as u64,
                limit,
            });
        }
        Ok(Self::int_node(big))
    }

    fn long(&mut self, n: u64) -> Result<()> {
        let limit = self.options.max_int_bytes;
        if n > limit as u64 {
            return Err(LoadError::IntTooLarge {
                offset: self.at,
                bytes: n,
                limit,
            });
        }
        let n = self.length(n)?;
        let bytes = self.take(n)?;
        self.spend(n as u64)?;
        self.push_node(Self::int_node(BigInt::from_signed_le(bytes)))
    }

    fn utf8(&mut self, n: u64) -> Result<()> {
        let bytes = self.take_bytes(n)?;
        let s = PyStr::from_surrogatepass(bytes).ok_or_else(|| self.invalid("invalid UTF-8"))?;
        self.push_node(Node::Str(s))
    }

    /// Python 3 reads protocol 0-2 `str` of Python 2 as ASCII text (its default encoding).
    fn ascii_str(&mut self, bytes: &[u8]) -> Result<()> {
        if !bytes.is_ascii() {
            return Err(self.invalid("a Python 2 string that is not ASCII"));
        }
        let s = PyStr::from_surrogatepass(Bytes::copy_from_slice(bytes))
            .ok_or_else(|| self.invalid("invalid text"))?;
        self.spend(bytes.len() as u64)?;
        self.push_node(Node::Str(s))
    }

    /// `STRING`'s argument: a quoted Python 2 string literal with backslash escapes.
    fn python2_string(&mut self, line: &[u8]) -> Result<Vec<u8>> {
        let quoted = match line {
            [q, inner @ .., last] if (*q == b'\'' || *q == b'"') && last == q => inner,
            _ => return Err(self.invalid("the string is not quoted")),
        };
        self.spend(quoted.len() as u64)?;
        let mut out = Vec::new();
        out.try_reserve(quoted.len()).map_err(|_| self.oom())?;
        let mut i = 0;
        while i < quoted.len() {
            let b = quoted[i];
            i += 1;
            if b != b'\\' {
                out.push(b);
                continue;
            }
            let Some(&e) = quoted.get(i) else {
                return Err(self.invalid("a trailing backslash"));
            };
            i += 1;
            match e {
                b'\n' => {}
                b'\\' | b'\'' | b'"' => out.push(e),
                b'a' => out.push(7),
                b'b' => out.push(8),
                b'f' => out.push(12),
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b't' => out.push(b'\t'),
                b'v' => out.push(11),
                b'x' => {
                    let hex = quoted
                        .get(i..i + 2)
                        .and_then(|h| std::str::from_utf8(h).ok())
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                        .ok_or_else(|| self.invalid("a bad \\x escape"))?;
                    out.push(hex);
                    i += 2;
                }
                b'0'..=b'7' => {
                    let mut v = u32::from(e - b'0');
                    for _ in 0..2 {
                        match quoted.get(i) {
                            Some(&d @ b'0'..=b'7') => {
                                v = v * 8 + u32::from(d - b'0');
                                i += 1;
                            }
                            _ => break,
                        }
                    }
                    out.push(v as u8);
                }
                other => {
                    out.push(b'\\');
                    out.push(other);
                }
            }
        }
        Ok(out)
    }

    /// `UNICODE`'s argument: raw-unicode-escape (latin-1 bytes, `\uXXXX`, `\UXXXXXXXX`).
    fn raw_unicode_escape(&mut self, line: &[u8]) -> Result<PyStr> {
        self.spend(line.len() as u64)?;
        let mut out = Vec::new();
        out.try_reserve(line.len().saturating_mul(2))
            .map_err(|_| self.oom())?;
        let mut i = 0;
        while i < line.len() {
            let b = line[i];
            let digits = match (b, line.get(i + 1)) {
                (b'\\', Some(b'u')) => 4,
                (b'\\', Some(b'U')) => 8,
                _ => 0,
            };
            let cp = if digits == 0 {
                i += 1;
                u32::from(b)
            } else {
                let cp = line
                    .get(i + 2..i + 2 + digits)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .ok_or_else(|| self.invalid("a truncated \\u escape"))?;
                i += 2 + digits;
                cp
            };
            push_code_point(&mut out, cp)
                .ok_or_else(|| self.invalid(format!("code point 0x{cp:x} is out of range")))?;
        }
        PyStr::from_surrogatepass(Bytes::from(out)).ok_or_else(|| self.invalid("invalid text"))
    }

    // --- containers ---------------------------------------------------------------------

    fn pairs(&mut self, items: Vec<NodeId>) -> Result<Vec<(NodeId, NodeId)>> {
        if !items.len().is_multiple_of(2) {
            return Err(self.invalid("an odd number of items for keys and values"));
        }
        let mut pairs = Vec::new();
        pairs.try_reserve(items.len() / 2).map_err(|_| self.oom())?;
        pairs.extend(items.chunks_exact(2).map(|kv| (kv[0], kv[1])));
        Ok(pairs)
    }

    /// Moves the stack's items from `from` on into the list (or opaque object) `target`.
    fn extend_list(&mut self, target: NodeId, from: usize) -> Result<()> {
        let at = self.at;
        let oom = |_| LoadError::OutOfMemory { offset: at };
        let n = self.stack.len() - from;
        let list = match self.graph.node_mut(target) {
            Node::List(list) => list,
            Node::Object(object) => &mut object.list_items,
            other => {
                let what = format!("appending to a {}", other.type_name());
                return Err(self.invalid(what));
            }
        };
        list.try_reserve(n).map_err(oom)?;
        list.extend(self.stack.drain(from..));
        Ok(())
    }

    /// Moves the stack's keys and values from `from` on into the dict (or opaque object)
    /// `target`.
    fn extend_dict(&mut self, target: NodeId, from: usize) -> Result<()> {
        let at = self.at;
        let oom = |_| LoadError::OutOfMemory { offset: at };
        let n = self.stack.len() - from;
        if !n.is_multiple_of(2) {
            return Err(self.invalid("an odd number of items for keys and values"));
        }
        let dict = match self.graph.node_mut(target) {
            Node::Dict(dict) | Node::OrderedDict(dict) => dict,
            Node::Object(object) => &mut object.dict_items,
            other => {
                let what = format!("setting an item of a {}", other.type_name());
                return Err(self.invalid(what));
            }
        };
        dict.try_reserve(n / 2).map_err(oom)?;
        dict.extend(self.stack[from..].chunks_exact(2).map(|kv| (kv[0], kv[1])));
        self.stack.truncate(from);
        Ok(())
    }

    // --- globals and calls --------------------------------------------------------------

    fn global(&mut self, module: &str, name: &str) -> Result<NodeId> {
        // Python 3 reads Python 2's module names as their Python 3 names (fix_imports).
        let module = match module {
            "__builtin__" => "builtins",
            "copy_reg" => "copyreg",
            other => other,
        };
        let constructor = known(module, name);
        if constructor.is_none() && !self.options.opaque.allows(module, name) {
            return Err(LoadError::Refused {
                offset: self.at,
                global: format!("{module}.{name}"),
            });
        }
        self.spend((module.len() + name.len()) as u64)?;
        let id = self.node(Node::Global(Box::new(Global::new(module, name))))?;
        if let Some(k) = constructor {
            self.known.insert(id, k);
        }
        Ok(id)
    }

    /// The items of a tuple node, copied out and charged to the budget: argument tuples are
    /// short, but a memoized long one used by many BUILDs (3 bytes each) must not copy for free.
    pub(crate) fn tuple_items(&mut self, id: NodeId) -> Result<Vec<NodeId>> {
        match self.graph.node(id) {
            Node::Tuple(items) => {
                let items = items.clone();
                self.spend(items.len() as u64)?;
                Ok(items)
            }
            other => Err(self.invalid(format!(
                "the arguments are a {}, not a tuple",
                other.type_name()
            ))),
        }
    }

    fn call(
        &mut self,
        callable: NodeId,
        args: NodeId,
        kwargs: Option<NodeId>,
        how: Call,
    ) -> Result<NodeId> {
        if let Some(&constructor) = self.known.get(&callable) {
            if kwargs.is_some() {
                return Err(self.invalid("keyword arguments to an allow-listed constructor"));
            }
            let args = self.tuple_items(args)?;
            return self.construct(constructor, callable, &args);
        }
        match self.graph.node(callable) {
            // Only globals the options let through as opaque get here.
            Node::Global(_) | Node::Object(_) if self.options.opaque != crate::Opaque::Refuse => {
                let mut object = Object::new(callable, args, how);
                object.kwargs = kwargs;
                self.node(Node::Object(Box::new(object)))
            }
            other => {
                let what = format!(
                    "calling a {} (only allow-listed globals are called)",
                    other.type_name()
                );
                Err(self.invalid(what))
            }
        }
    }

    /// Copies the items of a list, tuple, set, frozenset or (the keys of) a dict.
    fn iterable(&mut self, id: NodeId) -> Result<Vec<NodeId>> {
        let items: Vec<NodeId> = match self.graph.node(id) {
            Node::List(v) | Node::Tuple(v) | Node::Set(v) | Node::FrozenSet(v) => v.clone(),
            Node::Dict(d) | Node::OrderedDict(d) => d.iter().map(|(k, _)| *k).collect(),
            other => {
                let what = format!("iterating a {}", other.type_name());
                return Err(self.invalid(what));
            }
        };
        self.spend(items.len() as u64)?;
        Ok(items)
    }

    fn number(&self, id: NodeId) -> Result<f64> {
        match self.graph.node(id) {
            Node::Float(v) => Ok(*v),
            Node::Int(v) => Ok(*v as f64),
            Node::Bool(v) => Ok(f64::from(u8::from(*v))),
            other => Err(self.invalid(format!("complex() of a {}", other.type_name()))),
        }
    }

    fn latin1(&mut self, s: NodeId, encoding: Option<NodeId>) -> Result<Bytes> {
        if let Some(encoding) = encoding {
            let ok = matches!(self.graph.node(encoding), Node::Str(e)
                if matches!(e.as_str(), Some("latin1" | "latin-1" | "iso-8859-1" | "iso8859-1")));
            if !ok {
                return Err(self.invalid("only the latin1 encoding is honoured"));
            }
        }
        let Node::Str(text) = self.graph.node(s) else {
            return Err(self.invalid("encoding something that is not a str"));
        };
        let text = text.clone();
        self.spend(text.as_bytes().len() as u64)?;
        let mut out = Vec::new();
        out.try_reserve(text.as_bytes().len())
            .map_err(|_| self.oom())?;
        for cp in text.code_points() {
            let byte = u8::try_from(cp)
                .map_err(|_| self.invalid(format!("code point 0x{cp:x} is not latin-1")))?;
            out.push(byte);
        }
        Ok(Bytes::from(out))
    }

    fn construct(
        &mut self,
        constructor: Known,
        callable: NodeId,
        args: &[NodeId],
    ) -> Result<NodeId> {
        let node = match (constructor, args) {
            (Known::Set, []) => Node::Set(Vec::new()),
            (Known::Set, [x]) => Node::Set(self.iterable(*x)?),
            (Known::FrozenSet, []) => Node::FrozenSet(Vec::new()),
            (Known::FrozenSet, [x]) => Node::FrozenSet(self.iterable(*x)?),
            (Known::List, []) => Node::List(Vec::new()),
            (Known::List, [x]) => Node::List(self.iterable(*x)?),
            (Known::Tuple, []) => Node::Tuple(Vec::new()),
            (Known::Tuple, [x]) => Node::Tuple(self.iterable(*x)?),
            (Known::Dict | Known::OrderedDict, []) => {
                if constructor == Known::Dict {
                    Node::Dict(Vec::new())
                } else {
                    Node::OrderedDict(Vec::new())
                }
            }
            (Known::Dict | Known::OrderedDict, [x]) => {
                let pairs = match self.graph.node(*x) {
                    Node::Dict(d) | Node::OrderedDict(d) => d.clone(),
                    other => {
                        let what = format!("a dict from a {}", other.type_name());
                        return Err(self.invalid(what));
                    }
                };
                self.spend(pairs.len() as u64 * 2)?;
                if constructor == Known::Dict {
                    Node::Dict(pairs)
                } else {
                    Node::OrderedDict(pairs)
                }
            }
            (Known::Complex, []) => Node::Complex { re: 0.0, im: 0.0 },
            (Known::Complex, [re]) => Node::Complex {
                re: self.number(*re)?,
                im: 0.0,
            },
            (Known::Complex, [re, im]) => Node::Complex {
                re: self.number(*re)?,
                im: self.number(*im)?,
            },
            (Known::Bytes | Known::ByteArray, []) => {
                if constructor == Known::Bytes {
                    Node::Bytes(Bytes::new())
                } else {
                    Node::ByteArray(Bytes::new())
                }
            }
            (Known::Bytes | Known::ByteArray, [x, rest @ ..]) if rest.len() <= 1 => {
                let data = match self.graph.node(*x) {
                    Node::Bytes(b) | Node::ByteArray(b) if rest.is_empty() => b.clone(),
                    Node::Str(_) => self.latin1(*x, rest.first().copied())?,
                    other => {
                        let what = format!("bytes from a {}", other.type_name());
                        return Err(self.invalid(what));
                    }
                };
                if constructor == Known::Bytes {
                    Node::Bytes(data)
                } else {
                    Node::ByteArray(data)
                }
            }
            (Known::Encode, [s]) => Node::Bytes(self.latin1(*s, None)?),
            (Known::Encode, [s, encoding]) => Node::Bytes(self.latin1(*s, Some(*encoding))?),
            (Known::DType, [code, ..]) if args.len() <= 3 => {
                let code = match self.graph.node(*code) {
                    Node::Str(s) => s.to_string_lossy(),
                    Node::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
                    other => {
                        let what = format!("a dtype from a {}", other.type_name());
                        return Err(self.invalid(what));
                    }
                };
                self.spend(code.len() as u64)?;
                Node::DType(Box::new(numpy::spec_from_code(&code)))
            }
            (Known::Reconstruct, [class, _shape, _typecode]) => {
                if self.known.get(class) != Some(&Known::NdArray) {
                    return Err(self.invalid("_reconstruct of a class other than numpy.ndarray"));
                }
                // An empty array that BUILD fills; until then an object naming its maker.
                let args = self.node(Node::Tuple(args.to_vec()))?;
                Node::Object(Box::new(Object::new(callable, args, Call::Reduce)))
            }
            (Known::FromBuffer, [buffer, dtype, shape, order]) => {
                let array = numpy::from_buffer(self, *buffer, *dtype, *shape, *order)?;
                Node::Array(Box::new(array))
            }
            (constructor, args) => {
                let what = format!("{constructor:?} does not take {} arguments", args.len());
                return Err(self.invalid(what));
            }
        };
        self.node(node)
    }

    fn build(&mut self, target: NodeId, state: NodeId) -> Result<()> {
        match self.graph.node(target) {
            Node::DType(spec) => {
                let spec = DTypeSpec::clone(spec);
                let built = numpy::build_dtype(self, spec, state)?;
                *self.graph.node_mut(target) = Node::DType(Box::new(built));
            }
            Node::Object(object)
                if self.known.get(&object.callable) == Some(&Known::Reconstruct) =>
            {
                let array = numpy::build_array(self, state)?;
                *self.graph.node_mut(target) = Node::Array(Box::new(array));
            }
            Node::Object(_) => {
                if let Node::Object(object) = self.graph.node_mut(target) {
                    object.state = Some(state);
                }
            }
            other => {
                let what = format!("BUILD on a {}", other.type_name());
                return Err(self.invalid(what));
            }
        }
        Ok(())
    }

    pub(crate) fn array_limits(&self) -> pontoon_wire::Limits {
        self.options.array_limits
    }

    pub(crate) fn dtype_of(&self, id: NodeId) -> Result<DTypeSpec> {
        match self.graph.node(id) {
            Node::DType(spec) => Ok(DTypeSpec::clone(spec)),
            other => Err(self.invalid(format!(
                "a {} where a numpy dtype belongs",
                other.type_name()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pickle of `n` bytes in one `BINBYTES`: one node, from a large input.
    fn one_large_bytes(n: usize) -> Bytes {
        let mut data = b"\x80\x05B".to_vec();
        data.extend_from_slice(&(n as u32).to_le_bytes());
        data.resize(data.len() + n, 7);
        data.push(b'.');
        Bytes::from(data)
    }

    #[test]
    fn room_reserved_for_nodes_that_never_came_is_given_back() {
        let graph = loads(&one_large_bytes(1 << 20), &[], &LoadOptions::default()).unwrap();
        assert_eq!(graph.nodes().len(), 1);
        assert!(graph.node_capacity() <= 4, "{}", graph.node_capacity());
        assert!(matches!(graph.node(graph.root()), Node::Bytes(b) if b.len() == 1 << 20));
    }
}
