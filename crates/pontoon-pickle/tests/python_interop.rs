//! pontoon-pickle against CPython and numpy from the venv: Python pickles a matrix of values
//! (every data type at protocols 0 to 5, big ints, NaN/inf/-0.0, unicode with surrogates, nested
//! containers, shared references and cycles, numpy arrays of every dtype pontoon-array knows in
//! C and Fortran order, 0-d and empty, in-band at protocols 2 to 5 and out-of-band at 5); Rust
//! decodes each and prints it with `to_json`, which Python checks against its own rendering
//! (`cases.py`). Then Rust encodes each decoded graph to protocol 5, in-band and out-of-band,
//! and Python loads it and compares it with the original value, sharing checked with `is`.

mod common;

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use bytes::Bytes;
use pontoon_pickle::{DumpOptions, LoadOptions, Node, dumps, loads, to_json};

const CASES_PY: &str = include_str!("cases.py");

/// Python writes every case; returns the manifest lines `index protocol buffers name`.
fn write_matrix(dir: &Path) -> Vec<(usize, u8, usize, String)> {
    let script = r#"
dir = sys.argv[1]
lines = []
for i, (name, v, protocols, oob) in enumerate(all_cases()):
    for p in protocols:
        buffers = []
        data = pickle.dumps(v, protocol=p, buffer_callback=buffers.append if oob else None)
        stem = os.path.join(dir, "%d.p%d" % (i, p))
        open(stem + ".pkl", "wb").write(data)
        for k, b in enumerate(buffers):
            open(stem + ".buf%d" % k, "wb").write(b.raw())
        open(stem + ".json", "w").write(json.dumps(render(v)))
        lines.append("%d %d %d %s" % (i, p, len(buffers), name))
open(os.path.join(dir, "manifest"), "w").write("\n".join(lines))
"#;
    common::run_python(&format!("{CASES_PY}\n"), script, dir);
    fs::read_to_string(dir.join("manifest"))
        .unwrap()
        .lines()
        .map(|line| {
            let mut parts = line.splitn(4, ' ');
            let i = parts.next().unwrap().parse().unwrap();
            let p = parts.next().unwrap().parse().unwrap();
            let n = parts.next().unwrap().parse().unwrap();
            (i, p, n, parts.next().unwrap().to_string())
        })
        .collect()
}

fn read(path: &Path) -> Bytes {
    Bytes::from(fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

#[test]
fn python_pickles_decode_to_the_same_values_and_rust_pickles_load_back_in_python() {
    let dir = common::scratch("pickle-matrix");
    let manifest = write_matrix(&dir);
    assert!(
        manifest.len() > 300,
        "the matrix has {} pickles",
        manifest.len()
    );
    let mut failures = String::new();
    let mut outputs = Vec::new();
    for (i, p, nbuf, name) in &manifest {
        let stem = dir.join(format!("{i}.p{p}"));
        let data = read(&stem.with_extension("p".to_string() + &p.to_string() + ".pkl"));
        let buffers: Vec<Bytes> = (0..*nbuf)
            .map(|k| read(&dir.join(format!("{i}.p{p}.buf{k}"))))
            .collect();
        let graph = match loads(&data, &buffers, &LoadOptions::default()) {
            Ok(g) => g,
            Err(e) => {
                let _ = writeln!(failures, "{name} protocol {p}: {e}");
                continue;
            }
        };
        // Out-of-band arrays are views of their buffers.
        if let (Node::Array(a), Some(buf)) = (graph.node(graph.root()), buffers.first())
            && !buf.is_empty()
        {
            let (ptr, start) = (a.data().as_ptr() as usize, buf.as_ptr() as usize);
            assert!(
                (start..start + buf.len()).contains(&ptr),
                "{name}: the array is not a view of its buffer"
            );
        }
        // Python compares the JSON (serde_json refuses the lone surrogates Python strings hold).
        fs::write(
            dir.join(format!("{i}.p{p}.rust.json")),
            to_json(&graph, 1 << 26).unwrap(),
        )
        .unwrap();
        let mut inband = DumpOptions::default();
        inband.out_of_band = false;
        let mut oob = DumpOptions::default();
        oob.out_of_band_min_bytes = 0;
        for (mode, options) in [("inband", inband), ("oob", oob)] {
            let pickled = dumps(&graph, &options).unwrap();
            let out = dir.join(format!("{i}.p{p}.{mode}.out"));
            fs::write(out.with_extension("out.pkl"), &pickled.data).unwrap();
            for (k, b) in pickled.buffers.iter().enumerate() {
                fs::write(dir.join(format!("{i}.p{p}.{mode}.out.buf{k}")), b).unwrap();
            }
            outputs.push(format!("{i} {p} {mode} {}", pickled.buffers.len()));
        }
    }
    assert!(
        failures.is_empty(),
        "decoding Python's pickles:\n{failures}"
    );
    fs::write(dir.join("outputs"), outputs.join("\n")).unwrap();
    let check = r#"
dir = sys.argv[1]
cases = all_cases()
checked = 0
failures = []
for i, (name, v, protocols, oob) in enumerate(cases):
    for p in protocols:
        ours = json.loads(open(os.path.join(dir, "%d.p%d.rust.json" % (i, p))).read())
        theirs = json.loads(open(os.path.join(dir, "%d.p%d.json" % (i, p))).read())
        if ours != theirs:
            failures.append("%s protocol %d:\n  rust   %s\n  python %s" % (name, p, ours, theirs))
if failures:
    sys.exit("to_json differs from Python's rendering:\n" + "\n".join(failures))
for line in open(os.path.join(dir, "outputs")).read().split("\n"):
    i, p, mode, n = line.split(" ")
    stem = os.path.join(dir, "%s.p%s.%s.out" % (i, p, mode))
    buffers = [open(stem + ".buf%d" % k, "rb").read() for k in range(int(n))]
    loaded = pickle.loads(open(stem + ".pkl", "rb").read(), buffers=buffers)
    name, v = cases[int(i)][0], cases[int(i)][1]
    same(v, loaded, where="%s protocol %s %s" % (name, p, mode))
    checked += 1
print(checked)
"#;
    let checked = common::run_python(&format!("{CASES_PY}\n"), check, &dir);
    assert_eq!(checked.trim(), outputs.len().to_string());
}

#[test]
fn sharing_and_cycles_from_python_stay_shared() {
    let dir = common::scratch("pickle-sharing");
    let script = r#"
dir = sys.argv[1]
l1 = [1]
cyc = []; cyc.append(cyc)
for p in range(6):
    open(os.path.join(dir, "shared%d" % p), "wb").write(pickle.dumps([l1, l1], protocol=p))
    open(os.path.join(dir, "cycle%d" % p), "wb").write(pickle.dumps(cyc, protocol=p))
"#;
    common::run_python(&format!("{CASES_PY}\n"), script, &dir);
    for p in 0..6 {
        let graph = loads(
            &read(&dir.join(format!("shared{p}"))),
            &[],
            &LoadOptions::default(),
        )
        .unwrap();
        let Node::List(items) = graph.node(graph.root()) else {
            panic!("protocol {p}")
        };
        assert_eq!(
            items[0], items[1],
            "protocol {p}: [l1, l1] is one shared node"
        );
        let graph = loads(
            &read(&dir.join(format!("cycle{p}"))),
            &[],
            &LoadOptions::default(),
        )
        .unwrap();
        assert_eq!(
            graph.node(graph.root()),
            &Node::List(vec![graph.root()]),
            "protocol {p}"
        );
    }
}

#[test]
fn named_classes_are_written_as_global_plus_reduce_newobj_and_build() {
    use pontoon_pickle::{Call, Global, Graph, Object, Opaque};
    let dir = common::scratch("pickle-classes");
    let mut graph = Graph::new();
    let push_int = |g: &mut Graph, v| g.push(Node::Int(v));
    // types.SimpleNamespace() with state {"a": 1, "b": [1]}: REDUCE then BUILD.
    let namespace = graph.push(Node::Global(Box::new(Global::new(
        "types",
        "SimpleNamespace",
    ))));
    let no_args = graph.push(Node::Tuple(vec![]));
    let (a, b) = (
        graph.push(Node::Str("a".into())),
        graph.push(Node::Str("b".into())),
    );
    let one = push_int(&mut graph, 1);
    let list = graph.push(Node::List(vec![one]));
    let state = graph.push(Node::Dict(vec![(a, one), (b, list)]));
    let mut object = Object::new(namespace, no_args, Call::Reduce);
    object.state = Some(state);
    let ns = graph.push(Node::Object(Box::new(object)));
    // fractions.Fraction(3, 4): REDUCE.
    let fraction = graph.push(Node::Global(Box::new(Global::new("fractions", "Fraction"))));
    let (three, four) = (push_int(&mut graph, 3), push_int(&mut graph, 4));
    let args = graph.push(Node::Tuple(vec![three, four]));
    let frac = graph.push(Node::Object(Box::new(Object::new(
        fraction,
        args,
        Call::Reduce,
    ))));
    // datetime.timedelta.__new__(timedelta, 1, 2, 3): NEWOBJ.
    let timedelta = graph.push(Node::Global(Box::new(Global::new("datetime", "timedelta"))));
    let two = push_int(&mut graph, 2);
    let args = graph.push(Node::Tuple(vec![one, two, three]));
    let delta = graph.push(Node::Object(Box::new(Object::new(
        timedelta,
        args,
        Call::NewObj,
    ))));
    // The namespace twice: one object on the Python side.
    let root = graph.push(Node::List(vec![ns, frac, delta, ns]));
    graph.set_root(root);
    let pickled = dumps(&graph, &DumpOptions::default()).unwrap();
    fs::write(dir.join("classes.pkl"), &pickled.data).unwrap();
    let check = r#"
import datetime, fractions, types
v = pickle.loads(open(os.path.join(sys.argv[1], "classes.pkl"), "rb").read())
assert isinstance(v[0], types.SimpleNamespace) and v[0].a == 1 and v[0].b == [1], v
assert v[0] is v[3]
assert v[1] == fractions.Fraction(3, 4) and type(v[1]) is fractions.Fraction, v
assert v[2] == datetime.timedelta(1, 2, 3), v
# Python's own pickle of a namespace, for the opaque round trip below.
open(os.path.join(sys.argv[1], "python.pkl"), "wb").write(pickle.dumps([types.SimpleNamespace(x=[1, 2])], protocol=2))
print("ok")
"#;
    assert_eq!(
        common::run_python(&format!("{CASES_PY}\n"), check, &dir).trim(),
        "ok"
    );
    // Python's pickle of a class outside the allow-list: refused by default, kept opaque when
    // listed, and written back to something Python loads as the same object.
    let data = read(&dir.join("python.pkl"));
    assert!(loads(&data, &[], &LoadOptions::default()).is_err());
    let mut options = LoadOptions::default();
    options.opaque = Opaque::Listed(vec!["types.SimpleNamespace".into()]);
    let graph = loads(&data, &[], &options).unwrap();
    let pickled = dumps(&graph, &DumpOptions::default()).unwrap();
    fs::write(dir.join("back.pkl"), &pickled.data).unwrap();
    let check = r#"
import types
v = pickle.loads(open(os.path.join(sys.argv[1], "back.pkl"), "rb").read())
assert v == [types.SimpleNamespace(x=[1, 2])], v
print("ok")
"#;
    assert_eq!(
        common::run_python(&format!("{CASES_PY}\n"), check, &dir).trim(),
        "ok"
    );
}
