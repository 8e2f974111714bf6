//! Hostile pickles: every prefix of valid pickles, every opcode byte with any tail, unknown
//! opcodes, memo indexes out of range, lengths of 2^60, deep nesting, huge integers and
//! memo-driven amplification. Each is a typed error (never a panic), and a counting allocator
//! checks that no input makes the decoder hold more than a small factor of its size.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::Bytes;
use pontoon_pickle::{DumpOptions, Graph, LoadError, LoadOptions, Node, dumps, loads, to_json};

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

/// Tracks this thread's live and peak heap bytes, and passes every call on to `System`.
struct Peak;

// SAFETY: every call goes unchanged to `System`, which upholds `GlobalAlloc`'s contract; the
// counters are thread-local `Cell`s of `usize`, which allocate nothing.
unsafe impl GlobalAlloc for Peak {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LIVE.try_with(|live| {
            let now = live.get() + layout.size();
            live.set(now);
            let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
        });
        // SAFETY: the caller's layout goes to `System` as it came.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(layout.size())));
        // SAFETY: `ptr` was allocated by `System` with `layout` (see `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static PEAK_ALLOCATOR: Peak = Peak;

/// Decodes `data` and returns the result and the most heap the decode held above what was
/// live before it.
fn load_measured(data: &[u8], options: &LoadOptions) -> (Result<Graph, LoadError>, usize) {
    let data = Bytes::copy_from_slice(data);
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let result = loads(&data, &[], options);
    let peak = PEAK.with(Cell::get) - base;
    (result, peak)
}

/// What the decoder may hold for `len` bytes of input: the documented budget (8 units a byte,
/// at least 64 Ki units) at the size of a node, with room for the stack and the memo.
fn allowed(len: usize) -> usize {
    let units = (len * 8).max(64 << 10);
    units * (std::mem::size_of::<Node>() + 16) + (1 << 20)
}

fn refused(data: &[u8]) -> LoadError {
    let (result, peak) = load_measured(data, &LoadOptions::default());
    assert!(
        peak <= allowed(data.len()),
        "{peak} bytes held for {} bytes of input",
        data.len()
    );
    match result {
        Ok(graph) => panic!("decoded {:?}", graph.node(graph.root())),
        Err(e) => e,
    }
}

/// Valid pickles covering most opcodes: protocol 0 text, protocol 2, and protocols 4 and 5 framed.
fn valid_pickles() -> Vec<Vec<u8>> {
    vec![
        // pickle.dumps([1, 'a', (2.5, None), {b'k': True}, 2**70], protocol=0)
        b"(lp0\nI1\naVa\np1\na(F2.5\nNtp2\na(dp3\nc_codecs\nencode\np4\n(Vk\np5\nVlatin1\np6\ntp7\nRp8\nI01\nsaL1180591620717411303424L\na.".to_vec(),
        // protocol 2: a list holding itself, a set, a complex and a big int
        b"\x80\x02]q\x00(h\x00c__builtin__\nset\nq\x01]q\x02(K\x01K\x02e\x85q\x03Rq\x04c__builtin__\ncomplex\nq\x05G?\xf8\x00\x00\x00\x00\x00\x00G\xc0\x00\x00\x00\x00\x00\x00\x00\x86q\x06Rq\x07\x8a\t\x00\x00\x00\x00\x00\x00\x00\x00@e.".to_vec(),
        // protocol 4: pickle.dumps((frozenset({1}), {2, 3}, 'éx', None, b'zzz', bytearray(b'q')), 4)
        b"\x80\x04\x95?\x00\x00\x00\x00\x00\x00\x00((K\x01\x91\x94\x8f\x94(K\x02K\x03\x90\x8c\x03\xc3\xa9x\x94NC\x03zzz\x94\x8c\x08builtins\x94\x8c\tbytearray\x94\x93\x94C\x01q\x94\x85\x94R\x94t\x94.".to_vec(),
        // protocol 5: the same in a list, with BYTEARRAY8
        b"\x80\x05\x95&\x00\x00\x00\x00\x00\x00\x00]\x94((K\x01\x91\x94\x8f\x94(K\x02K\x03\x90\x8c\x03\xc3\xa9x\x94N\x96\x01\x00\x00\x00\x00\x00\x00\x00q\x94t\x94a.".to_vec(),
    ]
}

#[test]
fn the_valid_pickles_decode() {
    for (i, data) in valid_pickles().iter().enumerate() {
        let (result, _) = load_measured(data, &LoadOptions::default());
        result.unwrap_or_else(|e| panic!("pickle {i}: {e}"));
    }
}

#[test]
fn every_prefix_of_a_valid_pickle_is_a_typed_error() {
    for data in valid_pickles() {
        for cut in 0..data.len() {
            let error = refused(&data[..cut]);
            assert!(error.offset() <= cut, "{error} for a prefix of {cut} bytes");
        }
    }
}

#[test]
fn every_opcode_with_any_tail_is_decoded_or_refused_without_panic() {
    let tails: [&[u8]; 5] = [
        b"",
        b"\xff\xff\xff\xff\xff\xff\xff\xff\xff",
        b"\x00\x00\x00\x00\x00\x00\x00\x00.",
        b"1\n.",
        b"\x02\x00\x00\x00ab.",
    ];
    for op in 0..=255u8 {
        for prefix in [&b""[..], b"\x80\x05", b"(N", b"]N"] {
            for tail in tails {
                let mut data = prefix.to_vec();
                data.push(op);
                data.extend_from_slice(tail);
                let (_, peak) = load_measured(&data, &LoadOptions::default());
                assert!(peak <= allowed(data.len()));
            }
        }
    }
}

#[test]
fn unknown_opcodes_and_protocols_are_named() {
    assert!(matches!(
        refused(b"\x80\x05\xff."),
        LoadError::UnknownOpcode {
            offset: 2,
            opcode: 0xff
        }
    ));
    assert!(matches!(
        refused(b"\x80\x06N."),
        LoadError::UnsupportedProtocol {
            offset: 0,
            protocol: 6
        }
    ));
    assert!(matches!(refused(b"N"), LoadError::NoStop { offset: 1 }));
    assert!(matches!(
        refused(b"."),
        LoadError::StackUnderflow { offset: 0, .. }
    ));
    assert!(matches!(
        refused(b"Nt."),
        LoadError::NoMark { offset: 1, .. }
    ));
    assert!(matches!(
        refused(b"\x80\x05Q."),
        LoadError::Unsupported { offset: 2, .. }
    ));
}

#[test]
fn memo_indexes_out_of_range_are_errors_and_allocate_nothing_for_their_size() {
    assert!(matches!(
        refused(b"\x80\x02h\x05."),
        LoadError::MemoMissing {
            offset: 2,
            index: 5
        }
    ));
    assert!(matches!(
        refused(b"\x80\x02j\xff\xff\xff\xff."),
        LoadError::MemoMissing {
            index: 0xFFFF_FFFF,
            ..
        }
    ));
    assert!(matches!(
        refused(b"g99999999999999999999\n."),
        LoadError::Invalid { .. }
    ));
    // A PUT far beyond the memo's end is stored sparsely, not by growing the memo to it.
    let (result, peak) = load_measured(
        b"\x80\x02Nr\xfe\xff\xff\xff0j\xfe\xff\xff\xff.",
        &LoadOptions::default(),
    );
    assert_eq!(result.unwrap().nodes(), &[Node::None]);
    assert!(peak < 1 << 20, "{peak}");
}

#[test]
fn a_length_of_two_to_the_sixty_is_refused_before_anything_is_read() {
    let huge = (1u64 << 60).to_le_bytes();
    for op in [0x8e_u8, 0x8d, 0x96, 0x95] {
        let mut data = vec![0x80, 5, op];
        data.extend_from_slice(&huge);
        data.push(b'.');
        let error = refused(&data);
        assert!(
            matches!(error, LoadError::TooLong { offset: 2, length, .. } if length == 1 << 60),
            "{error}"
        );
    }
    // 4-byte lengths too: BINBYTES, BINUNICODE.
    assert!(matches!(
        refused(b"B\xff\xff\xff\x7f."),
        LoadError::TooLong { .. }
    ));
    assert!(matches!(
        refused(b"X\xff\xff\xff\xff."),
        LoadError::TooLong { .. }
    ));
}

#[test]
fn deep_marks_are_an_error_and_deep_graphs_decode_without_recursion() {
    let data = vec![b'('; 100_000];
    assert!(matches!(
        refused(&data),
        LoadError::TooDeep { limit: 1000, .. }
    ));
    // [[[[...]]]] 200,000 deep, built with APPEND: no marks, so it is data, and nothing that
    // walks it (decode, to_json, dumps, drop) recurses.
    let depth = 200_000;
    let mut data = b"\x80\x02".to_vec();
    data.extend(std::iter::repeat_n(b']', depth));
    data.extend(std::iter::repeat_n(b'a', depth - 1));
    data.push(b'.');
    let graph = loads(&Bytes::from(data), &[], &LoadOptions::default()).unwrap();
    assert_eq!(graph.nodes().len(), depth);
    let json = to_json(&graph, 1 << 30).unwrap();
    assert_eq!(json.matches("list").count(), depth);
    let pickled = dumps(&graph, &DumpOptions::default()).unwrap();
    let back = loads(&pickled.data, &[], &LoadOptions::default()).unwrap();
    assert_eq!(back.nodes().len(), depth);
}

#[test]
fn huge_integers_are_refused_by_their_declared_size() {
    // LONG4 of 2^31 - 1 bytes: refused from the length alone.
    let error = refused(b"\x80\x02\x8b\xff\xff\xff\x7f.");
    assert!(
        matches!(
            error,
            LoadError::IntTooLarge {
                bytes: 0x7FFF_FFFF,
                limit: 8192,
                ..
            }
        ),
        "{error}"
    );
    // A decimal LONG of 100,000 digits (quadratic to convert) is refused too.
    let mut data = b"L".to_vec();
    data.extend(std::iter::repeat_n(b'7', 100_000));
    data.extend_from_slice(b"L\n.");
    assert!(matches!(
        refused(&data),
        LoadError::IntTooLarge { bytes: 100_000, .. }
    ));
    // A negative LONG4 length.
    assert!(matches!(
        refused(b"\x80\x02\x8b\xff\xff\xff\xff."),
        LoadError::Invalid { .. }
    ));
}

#[test]
fn memo_driven_amplification_hits_the_budget() {
    // A list of 20,000 items, then set(list) from the memo again and again: each REDUCE would
    // copy 20,000 ids for 7 bytes of input.
    let mut data = b"\x80\x02c__builtin__\nset\nq\x00]q\x01(".to_vec();
    data.extend(std::iter::repeat_n(b'N', 20_000));
    data.push(b'e');
    for _ in 0..50_000 {
        data.extend_from_slice(b"h\x00h\x01\x85R0");
    }
    data.push(b'.');
    let error = refused(&data);
    assert!(matches!(error, LoadError::TooLarge { .. }), "{error}");
    // _codecs.encode of one memoized 60 KB string, many times.
    let mut data = b"\x80\x02c_codecs\nencode\nq\x00X\x60\xea\x00\x00".to_vec();
    data.extend(std::iter::repeat_n(b'a', 60_000));
    data.extend_from_slice(b"q\x01");
    for _ in 0..2_000 {
        data.extend_from_slice(b"h\x00h\x01\x85R0");
    }
    data.push(b'N');
    data.push(b'.');
    assert!(matches!(refused(&data), LoadError::TooLarge { .. }));
    // One numpy dtype, and a memoized state tuple of 10,000 items handed to BUILD again and
    // again: each BUILD would copy the tuple for 3 bytes of input.
    let mut data = b"\x80\x02cnumpy\ndtype\nX\x02\x00\x00\x00f8\x89\x88\x87R(".to_vec();
    // numpy's own state (3, '<', None, None, None, -1, -1, 0), then filler.
    data.extend_from_slice(b"K\x03X\x01\x00\x00\x00<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00");
    for _ in 0..10_000 {
        data.extend_from_slice(b"K\x03");
    }
    data.extend_from_slice(b"tq\x01b");
    for _ in 0..20_000 {
        data.extend_from_slice(b"h\x01b");
    }
    data.push(b'.');
    let error = refused(&data);
    assert!(matches!(error, LoadError::TooLarge { .. }), "{error}");
}

#[test]
fn json_of_exponential_sharing_is_bounded() {
    // l0 = []; l1 = [l0, l0]; ... l60: tiny graph, 2^60 nodes printed.
    let mut graph = Graph::new();
    let mut last = graph.push(Node::List(vec![]));
    for _ in 0..60 {
        last = graph.push(Node::List(vec![last, last]));
    }
    graph.set_root(last);
    assert!(matches!(
        to_json(&graph, 1 << 20),
        Err(pontoon_pickle::JsonError::TooLarge { .. })
    ));
}

#[test]
fn a_shared_scalar_prints_as_if_each_reference_were_its_own_node() {
    // The printer reuses a shared scalar's first text; the output must not tell.
    let mut shared = Graph::new();
    let bytes = shared.push(Node::Bytes(Bytes::from(vec![7u8; 4096])));
    let int = shared.push(Node::Int(-12));
    let root = shared.push(Node::List(vec![bytes, int, bytes, int, bytes]));
    shared.set_root(root);
    let mut separate = Graph::new();
    let items = [0, 1, 0, 1, 0]
        .map(|k| {
            separate.push(if k == 0 {
                Node::Bytes(Bytes::from(vec![7u8; 4096]))
            } else {
                Node::Int(-12)
            })
        })
        .to_vec();
    let root = separate.push(Node::List(items));
    separate.set_root(root);
    let printed = to_json(&shared, 1 << 20).unwrap();
    assert_eq!(printed, to_json(&separate, 1 << 20).unwrap());
    assert_eq!(printed.matches(r#""t":"bytes""#).count(), 3);
    // Repeats count against the limit like any other text.
    assert!(to_json(&shared, printed.len() - 1).is_err());
}
