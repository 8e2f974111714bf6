//! Pickles that run code when CPython loads them (`os.system`, `builtins.eval`,
//! `subprocess.Popen`, each through `__reduce__` at every protocol, made by the venv's Python)
//! never run here: decoding refuses them by name, or keeps them opaque when asked, and the
//! canary file each would create never appears. A control copy loaded by CPython itself proves
//! the pickles are live.

mod common;

use std::fs;

use bytes::Bytes;
use pontoon_pickle::{LoadError, LoadOptions, Node, Opaque, loads, to_json};

#[test]
fn code_running_globals_are_refused_and_never_run() {
    let dir = common::scratch("pickle-canary");
    let script = r#"
import os, pickle, subprocess, sys, builtins
dir = sys.argv[1]
def evil(kind, target):
    class Evil:
        def __reduce__(self):
            if kind == "system":
                return (os.system, ("touch " + target,))
            if kind == "eval":
                return (builtins.eval, ("open(%r, 'w').close()" % target,))
            return (subprocess.Popen, (["touch", target],))
    return Evil()
for kind in ["system", "eval", "popen"]:
    for p in range(6):
        target = os.path.join(dir, "canary-%s-%d" % (kind, p))
        open(os.path.join(dir, "%s-%d.pkl" % (kind, p)), "wb").write(pickle.dumps(evil(kind, target), protocol=p))
# The control: CPython loading the same kind of pickle does run it.
pickle.loads(pickle.dumps(evil("system", os.path.join(dir, "control")), protocol=2))
"#;
    common::run_python("", script, &dir);
    assert!(
        dir.join("control").exists(),
        "the control pickle did not run in CPython"
    );
    let mut opaque = LoadOptions::default();
    opaque.opaque = Opaque::All;
    for (kind, global) in [
        ("system", ["posix.system", "os.system"]),
        ("eval", ["builtins.eval", "builtins.eval"]),
        ("popen", ["subprocess.Popen", "commands.Popen"]), // Python 2's name below protocol 3
    ] {
        for p in 0..6 {
            let data = Bytes::from(fs::read(dir.join(format!("{kind}-{p}.pkl"))).unwrap());
            let error = loads(&data, &[], &LoadOptions::default()).unwrap_err();
            let LoadError::Refused { global: named, .. } = &error else {
                panic!("{kind} protocol {p}: {error}")
            };
            assert!(
                global.contains(&named.as_str()),
                "{kind} protocol {p}: {error}"
            );
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("refusing to load {named}"))
            );
            // Opaque: kept as a call with its name and arguments, still not run.
            let graph = loads(&data, &[], &opaque).unwrap();
            assert!(
                matches!(graph.node(graph.root()), Node::Object(_)),
                "{kind} protocol {p}"
            );
            let json = to_json(&graph, 1 << 20).unwrap();
            assert!(json.contains(named.as_str()), "{json}");
            assert!(
                !dir.join(format!("canary-{kind}-{p}")).exists(),
                "{kind} protocol {p} ran"
            );
        }
    }
    // Nothing ran, at any protocol, with either option.
    let canaries: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("canary"))
        .collect();
    assert!(canaries.is_empty(), "{canaries:?}");
}
