//! The encoder: [`dumps`] writes a [`Graph`] as a protocol 5 pickle that CPython's
//! `pickle.loads` reads back, shared nodes memoized once and cycles closed through the memo,
//! bytes and numpy arrays optionally out-of-band. An explicit work list replaces recursion.

use std::collections::HashMap;

use bytes::Bytes;
use pontoon_array::Array;

use crate::numpy::{element_bytes, layout};
use crate::opcode as op;
use crate::value::{Call, DTypeSpec, Graph, Node, NodeId};
use crate::{BigInt, DumpError};

/// How [`dumps`] writes.
///
/// ```
/// let mut options = pontoon_pickle::DumpOptions::default();
/// options.out_of_band_min_bytes = 0; // every bytes and array out-of-band
/// assert!(options.out_of_band);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DumpOptions {
    /// Write `bytes` and numpy arrays of at least [`DumpOptions::out_of_band_min_bytes`] as
    /// protocol 5 out-of-band buffers (`NEXT_BUFFER`), returned in [`Pickled::buffers`]
    /// without a copy. Default true.
    pub out_of_band: bool,
    /// The smallest `bytes` or array data sent out-of-band. Default 1024.
    pub out_of_band_min_bytes: usize,
}

impl Default for DumpOptions {
    fn default() -> DumpOptions {
        DumpOptions {
            out_of_band: true,
            out_of_band_min_bytes: 1024,
        }
    }
}

/// A pickle and its out-of-band buffers, in the order its `NEXT_BUFFER`s take them (what
/// Python's `buffer_callback` collects and `pickle.loads(data, buffers=...)` wants).
///
/// ```
/// use pontoon_pickle::{DumpOptions, Graph, Node, dumps};
/// let graph = Graph::single(Node::Bytes(bytes::Bytes::from(vec![7u8; 4096])));
/// let pickled = dumps(&graph, &DumpOptions::default())?;
/// assert_eq!(pickled.buffers.len(), 1);
/// # Ok::<(), pontoon_pickle::DumpError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Pickled {
    /// The pickle.
    pub data: Bytes,
    /// The out-of-band buffers.
    pub buffers: Vec<Bytes>,
}

/// Writes `graph` as a protocol 5 pickle. Shared nodes are written once and referred to
/// through the memo, so Python gets one object (`is` holds); cycles through lists, dicts, sets
/// and objects are closed the way CPython's pickler closes them. A tuple that contains itself
/// through immutable nodes only cannot be pickled ([`DumpError::ImmutableCycle`]).
///
/// ```
/// use pontoon_pickle::{DumpOptions, Graph, LoadOptions, Node, dumps, loads};
/// let mut graph = Graph::new();
/// let list = graph.push(Node::List(vec![]));
/// graph.node_mut(list).unwrap_list().push(list);
/// graph.set_root(list);
/// let pickled = dumps(&graph, &DumpOptions::default())?;
/// let back = loads(&pickled.data, &pickled.buffers, &LoadOptions::default())?;
/// assert_eq!(back.node(back.root()), &Node::List(vec![back.root()]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn dumps(graph: &Graph, options: &DumpOptions) -> Result<Pickled, DumpError> {
    check_ids(graph)?;
    let mut writer = Writer {
        graph,
        options,
        out: Vec::new(),
        buffers: Vec::new(),
        memo_of: vec![u32::MAX; graph.nodes().len()],
        visiting: vec![0; graph.nodes().len()],
        memo_count: 0,
        globals: HashMap::new(),
        tasks: Vec::new(),
    };
    writer.out.extend_from_slice(&[op::PROTO, 5]);
    if graph.get(graph.root()).is_none() {
        writer.out.push(op::NONE);
    } else {
        writer.tasks.push(Task::Visit(graph.root()));
        writer.run()?;
    }
    writer.out.push(op::STOP);
    Ok(Pickled {
        data: Bytes::from(writer.out),
        buffers: writer.buffers,
    })
}

/// Every id a node holds must be in the graph.
fn check_ids(graph: &Graph) -> Result<(), DumpError> {
    let len = graph.nodes().len();
    for (i, node) in graph.nodes().iter().enumerate() {
        let bad = |id: &NodeId| id.index() >= len;
        let mut missing: Option<NodeId> = None;
        let mut check = |id: &NodeId| {
            if missing.is_none() && bad(id) {
                missing = Some(*id);
            }
        };
        match node {
            Node::List(v) | Node::Tuple(v) | Node::Set(v) | Node::FrozenSet(v) => {
                v.iter().for_each(&mut check)
            }
            Node::Dict(d) | Node::OrderedDict(d) => d.iter().for_each(|(k, v)| {
                check(k);
                check(v)
            }),
            Node::Object(o) => {
                check(&o.callable);
                check(&o.args);
                o.kwargs.iter().for_each(&mut check);
                o.state.iter().for_each(&mut check);
                o.list_items.iter().for_each(&mut check);
                o.dict_items.iter().for_each(|(k, v)| {
                    check(k);
                    check(v)
                });
            }
            _ => {}
        }
        if let Some(m) = missing {
            return Err(DumpError::Dangling {
                node: i,
                missing: m.index(),
            });
        }
    }
    Ok(())
}

/// One step of the work list.
#[derive(Clone, Copy, Debug)]
enum Task {
    Visit(NodeId),
    Op(u8),
    /// After a tuple's items: `TUPLE`n and memoize, or drop them for the memo's copy.
    FinishTuple(NodeId),
    FinishFrozenSet(NodeId),
    /// After an object's callable and arguments: the call, then its items and state.
    FinishCall(NodeId),
}

/// Items per `APPENDS`/`SETITEMS`/`ADDITEMS`, as CPython batches them.
const BATCH: usize = 1000;

struct Writer<'a> {
    graph: &'a Graph,
    options: &'a DumpOptions,
    out: Vec<u8>,
    buffers: Vec<Bytes>,
    memo_of: Vec<u32>,
    /// How often each immutable node is being written right now (a recursive tuple is
    /// entered twice, as CPython does; a third time means a cycle of immutables).
    visiting: Vec<u8>,
    memo_count: u32,
    globals: HashMap<(&'static str, &'static str), u32>,
    tasks: Vec<Task>,
}

impl Writer<'_> {
    fn run(&mut self) -> Result<(), DumpError> {
        while let Some(task) = self.tasks.pop() {
            match task {
                Task::Visit(id) => self.visit(id)?,
                Task::Op(code) => self.out.push(code),
                Task::FinishTuple(id) => {
                    self.visiting[id.index()] -= 1;
                    let Node::Tuple(items) = self.graph.node(id) else {
                        continue;
                    };
                    let n = items.len();
                    if self.memoized(id) {
                        if n <= 3 {
                            self.out.extend(std::iter::repeat_n(op::POP, n));
                        } else {
                            self.out.push(op::POP_MARK);
                        }
                        self.get(self.memo_of[id.index()]);
                    } else {
                        self.out.push(match n {
                            1 => op::TUPLE1,
                            2 => op::TUPLE2,
                            3 => op::TUPLE3,
                            _ => op::TUPLE,
                        });
                        self.memoize(id);
                    }
                }
                Task::FinishFrozenSet(id) => {
                    self.visiting[id.index()] -= 1;
                    if self.memoized(id) {
                        self.out.push(op::POP_MARK);
                        self.get(self.memo_of[id.index()]);
                    } else {
                        self.out.push(op::FROZENSET);
                        self.memoize(id);
                    }
                }
                Task::FinishCall(id) => {
                    self.visiting[id.index()] -= 1;
                    let Node::Object(object) = self.graph.node(id) else {
                        continue;
                    };
                    self.out.push(match object.call {
                        Call::NewObj => op::NEWOBJ,
                        Call::NewObjEx => op::NEWOBJ_EX,
                        _ => op::REDUCE,
                    });
                    if self.memoized(id) {
                        self.out.push(op::POP);
                        self.get(self.memo_of[id.index()]);
                        continue;
                    }
                    self.memoize(id);
                    // Pushed in reverse: items, then dict items, then the state.
                    if let Some(state) = object.state {
                        self.tasks.push(Task::Op(op::BUILD));
                        self.tasks.push(Task::Visit(state));
                    }
                    self.pairs(&object.dict_items);
                    self.batch(&object.list_items, op::APPENDS);
                }
            }
        }
        Ok(())
    }

    fn memoized(&self, id: NodeId) -> bool {
        self.memo_of[id.index()] != u32::MAX
    }

    fn memoize(&mut self, id: NodeId) {
        self.out.push(op::MEMOIZE);
        self.memo_of[id.index()] = self.memo_count;
        self.memo_count += 1;
    }

    fn get(&mut self, index: u32) {
        match u8::try_from(index) {
            Ok(i) => self.out.extend_from_slice(&[op::BINGET, i]),
            Err(_) => {
                self.out.push(op::LONG_BINGET);
                self.out.extend_from_slice(&index.to_le_bytes());
            }
        }
    }

    /// `MARK items... code` per batch, pushed so that batches run in order; a lone item of a
    /// list goes with `APPEND` and no mark, as CPython writes it, so deep lists open no marks.
    fn batch(&mut self, items: &[NodeId], code: u8) {
        if let ([item], op::APPENDS) = (items, code) {
            self.tasks.push(Task::Op(op::APPEND));
            self.tasks.push(Task::Visit(*item));
            return;
        }
        for chunk in items.chunks(BATCH).rev() {
            self.tasks.push(Task::Op(code));
            for &item in chunk.iter().rev() {
                self.tasks.push(Task::Visit(item));
            }
            self.tasks.push(Task::Op(op::MARK));
        }
    }

    /// `MARK k v ... SETITEMS` per batch; a lone pair with `SETITEM` and no mark.
    fn pairs(&mut self, pairs: &[(NodeId, NodeId)]) {
        if let [(k, v)] = pairs {
            self.tasks.push(Task::Op(op::SETITEM));
            self.tasks.push(Task::Visit(*v));
            self.tasks.push(Task::Visit(*k));
            return;
        }
        for chunk in pairs.chunks(BATCH).rev() {
            self.tasks.push(Task::Op(op::SETITEMS));
            for &(k, v) in chunk.iter().rev() {
                self.tasks.push(Task::Visit(v));
                self.tasks.push(Task::Visit(k));
            }
            self.tasks.push(Task::Op(op::MARK));
        }
    }

    fn enter(&mut self, id: NodeId) -> Result<(), DumpError> {
        let count = &mut self.visiting[id.index()];
        if *count >= 2 {
            return Err(DumpError::ImmutableCycle { node: id.index() });
        }
        *count += 1;
        Ok(())
    }

    fn visit(&mut self, id: NodeId) -> Result<(), DumpError> {
        if self.memoized(id) {
            self.get(self.memo_of[id.index()]);
            return Ok(());
        }
        let graph = self.graph;
        match graph.node(id) {
            Node::None => self.out.push(op::NONE),
            Node::Bool(true) => self.out.push(op::NEWTRUE),
            Node::Bool(false) => self.out.push(op::NEWFALSE),
            Node::Int(v) => self.int(*v),
            Node::BigInt(b) => self.long(b),
            Node::Float(v) => self.float(*v),
            Node::Complex { re, im } => {
                self.global("builtins", "complex");
                self.float(*re);
                self.float(*im);
                self.out.extend_from_slice(&[op::TUPLE2, op::REDUCE]);
            }
            Node::Str(s) => {
                self.str_bytes(s.as_bytes());
                self.memoize(id);
            }
            Node::Bytes(b) => {
                if self.options.out_of_band && b.len() >= self.options.out_of_band_min_bytes {
                    self.out
                        .extend_from_slice(&[op::NEXT_BUFFER, op::READONLY_BUFFER]);
                    self.buffers.push(b.clone());
                } else {
                    self.bytes(b);
                }
                self.memoize(id);
            }
            Node::ByteArray(b) => {
                self.out.push(op::BYTEARRAY8);
                self.out.extend_from_slice(&(b.len() as u64).to_le_bytes());
                self.out.extend_from_slice(b);
                self.memoize(id);
            }
            Node::List(items) => {
                self.out.push(op::EMPTY_LIST);
                self.memoize(id);
                self.batch(items, op::APPENDS);
            }
            Node::Set(items) => {
                self.out.push(op::EMPTY_SET);
                self.memoize(id);
                self.batch(items, op::ADDITEMS);
            }
            Node::Dict(pairs) | Node::OrderedDict(pairs) => {
                if matches!(graph.node(id), Node::OrderedDict(_)) {
                    self.global("collections", "OrderedDict");
                    self.out.extend_from_slice(&[op::EMPTY_TUPLE, op::REDUCE]);
                } else {
                    self.out.push(op::EMPTY_DICT);
                }
                self.memoize(id);
                self.pairs(pairs);
            }
            Node::Tuple(items) => {
                if items.is_empty() {
                    self.out.push(op::EMPTY_TUPLE);
                    return Ok(());
                }
                self.enter(id)?;
                self.tasks.push(Task::FinishTuple(id));
                for &item in items.iter().rev() {
                    self.tasks.push(Task::Visit(item));
                }
                if items.len() > 3 {
                    self.out.push(op::MARK);
                }
            }
            Node::FrozenSet(items) => {
                self.enter(id)?;
                self.out.push(op::MARK);
                self.tasks.push(Task::FinishFrozenSet(id));
                for &item in items.iter().rev() {
                    self.tasks.push(Task::Visit(item));
                }
            }
            Node::Array(array) => {
                self.array(id, array)?;
                self.memoize(id);
            }
            Node::DType(spec) => {
                self.dtype(spec);
                self.memoize(id);
            }
            Node::Global(g) => {
                self.str_bytes(g.module.as_bytes());
                self.str_bytes(g.name.as_bytes());
                self.out.push(op::STACK_GLOBAL);
                self.memoize(id);
            }
            Node::Object(object) => {
                self.enter(id)?;
                self.tasks.push(Task::FinishCall(id));
                if let Some(kwargs) = object.kwargs {
                    self.tasks.push(Task::Visit(kwargs));
                }
                self.tasks.push(Task::Visit(object.args));
                self.tasks.push(Task::Visit(object.callable));
            }
        }
        Ok(())
    }

    fn int(&mut self, v: i64) {
        if let Ok(b) = u8::try_from(v) {
            self.out.extend_from_slice(&[op::BININT1, b]);
        } else if let Ok(b) = u16::try_from(v) {
            self.out.push(op::BININT2);
            self.out.extend_from_slice(&b.to_le_bytes());
        } else if let Ok(b) = i32::try_from(v) {
            self.out.push(op::BININT);
            self.out.extend_from_slice(&b.to_le_bytes());
        } else {
            self.long(&BigInt::from_i128(v.into()));
        }
    }

    fn long(&mut self, b: &BigInt) {
        let le = b.to_signed_le();
        match u8::try_from(le.len()) {
            Ok(n) => self.out.extend_from_slice(&[op::LONG1, n]),
            Err(_) => {
                self.out.push(op::LONG4);
                self.out.extend_from_slice(&(le.len() as u32).to_le_bytes());
            }
        }
        self.out.extend_from_slice(le);
    }

    fn float(&mut self, v: f64) {
        self.out.push(op::BINFLOAT);
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    fn str_bytes(&mut self, s: &[u8]) {
        if let Ok(n) = u8::try_from(s.len()) {
            self.out.extend_from_slice(&[op::SHORT_BINUNICODE, n]);
        } else if let Ok(n) = u32::try_from(s.len()) {
            self.out.push(op::BINUNICODE);
            self.out.extend_from_slice(&n.to_le_bytes());
        } else {
            self.out.push(op::BINUNICODE8);
            self.out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        }
        self.out.extend_from_slice(s);
    }

    fn bytes(&mut self, b: &[u8]) {
        if let Ok(n) = u8::try_from(b.len()) {
            self.out.extend_from_slice(&[op::SHORT_BINBYTES, n]);
        } else if let Ok(n) = u32::try_from(b.len()) {
            self.out.push(op::BINBYTES);
            self.out.extend_from_slice(&n.to_le_bytes());
        } else {
            self.out.push(op::BINBYTES8);
            self.out.extend_from_slice(&(b.len() as u64).to_le_bytes());
        }
        self.out.extend_from_slice(b);
    }

    /// A helper global (not a node of the graph), written once and then fetched from the memo.
    fn global(&mut self, module: &'static str, name: &'static str) {
        if let Some(&index) = self.globals.get(&(module, name)) {
            self.get(index);
            return;
        }
        self.str_bytes(module.as_bytes());
        self.str_bytes(name.as_bytes());
        self.out.extend_from_slice(&[op::STACK_GLOBAL, op::MEMOIZE]);
        self.globals.insert((module, name), self.memo_count);
        self.memo_count += 1;
    }

    /// `numpy.dtype(code, False, True)` and its state, as numpy writes them.
    fn dtype(&mut self, spec: &DTypeSpec) {
        self.global("numpy", "dtype");
        self.str_bytes(spec.code.as_bytes());
        self.out
            .extend_from_slice(&[op::NEWFALSE, op::NEWTRUE, op::TUPLE3, op::REDUCE]);
        self.out.push(op::MARK);
        self.int(if spec.unit.is_some() { 4 } else { 3 });
        self.str_bytes(spec.byte_order.to_string().as_bytes());
        self.out.extend_from_slice(&[op::NONE, op::NONE, op::NONE]);
        self.int(-1);
        self.int(-1);
        self.int(0);
        if let Some(unit) = &spec.unit {
            // metadata: (None, (unit, num, den, events)).
            self.out.extend_from_slice(&[op::NONE, op::MARK]);
            self.bytes(unit.as_bytes());
            self.int(1);
            self.int(1);
            self.int(1);
            self.out.extend_from_slice(&[op::TUPLE, op::TUPLE2]);
        }
        self.out.extend_from_slice(&[op::TUPLE, op::BUILD]);
    }

    fn shape(&mut self, shape: &[usize]) {
        if shape.is_empty() {
            self.out.push(op::EMPTY_TUPLE);
            return;
        }
        self.out.push(op::MARK);
        for &d in shape {
            self.int(d as i64);
        }
        self.out.push(op::TUPLE);
    }

    fn array(&mut self, id: NodeId, array: &Array) -> Result<(), DumpError> {
        let err = |source| DumpError::Array {
            node: id.index(),
            source,
        };
        let (array, fortran) = match layout(array) {
            Some(fortran) => (array.clone(), fortran),
            None => (array.to_contiguous().map_err(err)?, false),
        };
        let data = element_bytes(&array).map_err(err)?;
        let spec = DTypeSpec::of(array.dtype(), array.byte_order());
        let order = if fortran { "F" } else { "C" };
        if self.options.out_of_band && data.len() >= self.options.out_of_band_min_bytes {
            self.global("numpy._core.numeric", "_frombuffer");
            self.out.extend_from_slice(&[op::MARK, op::NEXT_BUFFER]);
            self.buffers.push(data);
            self.dtype(&spec);
            self.shape(array.shape());
            self.str_bytes(order.as_bytes());
            self.out.extend_from_slice(&[op::TUPLE, op::REDUCE]);
        } else {
            self.global("numpy._core.multiarray", "_reconstruct");
            self.global("numpy", "ndarray");
            self.int(0);
            self.out.push(op::TUPLE1);
            self.bytes(b"b");
            self.out
                .extend_from_slice(&[op::TUPLE3, op::REDUCE, op::MARK]);
            self.int(1);
            self.shape(array.shape());
            self.dtype(&spec);
            self.out
                .push(if fortran { op::NEWTRUE } else { op::NEWFALSE });
            self.bytes(&data);
            self.out.extend_from_slice(&[op::TUPLE, op::BUILD]);
        }
        Ok(())
    }
}
