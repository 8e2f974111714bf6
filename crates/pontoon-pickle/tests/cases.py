# The values the interop tests pickle, and Python's own rendering of them as the JSON tree that
# pontoon_pickle::to_json prints (an independent implementation: float.hex, hashlib, numpy's
# tobytes('C')), and a comparison that checks values and the sharing between them (`is`).
import collections, hashlib, json, math, os, pickle, sys
import numpy as np

def arrays():
    out = []
    dtypes = ["?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f4", "f8", "c8", "c16",
              "M8[us]", "m8[ns]", ">i4", ">f8", ">c16"]
    for d in dtypes:
        dt = np.dtype(d)
        base = (np.arange(24) * 7 % 11).astype(dt) if dt.kind not in "Mm" else (np.arange(24) * 86400).astype(dt)
        out.append(("array-%s-c" % d, base.reshape(2, 3, 4).copy()))
        out.append(("array-%s-f" % d, np.asfortranarray(base.reshape(4, 6))))
        out.append(("array-%s-0d" % d, base.reshape(24)[5:6].reshape(()).copy()))
        out.append(("array-%s-empty" % d, base.reshape(24)[:0].reshape(0, 3).copy()))
    out.append(("array-nan", np.array([np.nan, np.inf, -0.0, 1.5])))
    return out

def data():
    l1 = [1, "x"]
    cyc = []
    cyc.append(cyc)
    d = {}
    d["self"] = d
    inner = []
    t = (inner, 5)
    inner.append(t)
    s = "shared string"
    return [
        ("none", None), ("true", True), ("false", False),
        ("ints", [0, 1, -1, 255, 256, 65535, 65536, 2**31 - 1, -2**31, 2**63 - 1, -2**63]),
        ("bigints", [2**64, -(2**70), 10**100, -(10**300), 2**2000]),
        ("floats", [0.0, -0.0, 1.5, math.nan, math.inf, -math.inf, 5e-324, 1e308, 0.1]),
        ("complex", [complex(1.5, -2.0), complex(math.nan, math.inf), 0j]),
        ("strs", ["", "abc", "h\u00e9llo \u20ac\U0001d11e", "\udc80", "a\nb\\c\"'\r\x00", "z" * 300]),
        ("bytes", [b"", b"\x00\xff" * 3, bytes(range(256)) * 300]),
        ("bytearray", [bytearray(b"ab"), bytearray(), bytearray(b"\x80" * 1500)]),
        ("tuples", [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)]),
        ("list", [1, "a", None, 2.5]),
        ("dict", {"a": 1, 2: "b", (1, 2): [3], None: {}}),
        ("sets", [{1, 2, 3}, frozenset({"x"}), set(), frozenset()]),
        ("nested", {"k": [(1, {"z": frozenset({1})}), [[[[["deep"]]]]]]}),
        ("ordereddict", collections.OrderedDict([("b", 1), ("a", [2])])),
        ("shared", [l1, l1, s, s]),
        ("cycle", cyc),
        ("dict-cycle", d),
        ("tuple-cycle", t),
        ("long-list", list(range(2500))),
        ("long-dict", {i: str(i) for i in range(1200)}),
        ("long-set", set(range(1100))),
    ]

def render(v, path=None):
    path = path if path is not None else set()
    if id(v) in path:
        return {"t": "ref"}
    fh = lambda x: x.hex() if math.isfinite(x) else repr(x)
    if v is None:
        return {"t": "none"}
    if isinstance(v, bool):
        return {"t": "bool", "v": v}
    if isinstance(v, int):
        return {"t": "int", "v": str(v)}
    if isinstance(v, float):
        return {"t": "float", "v": fh(v)}
    if isinstance(v, complex):
        return {"t": "complex", "re": fh(v.real), "im": fh(v.imag)}
    if isinstance(v, str):
        return {"t": "str", "v": v}
    if isinstance(v, bytes):
        return {"t": "bytes", "len": len(v), "sha256": hashlib.sha256(v).hexdigest()}
    if isinstance(v, bytearray):
        return {"t": "bytes", "kind": "bytearray", "len": len(v), "sha256": hashlib.sha256(v).hexdigest()}
    if isinstance(v, np.ndarray):
        # Pickle keeps no strides: an array is rebuilt contiguous (an empty one too).
        order = "F" if v.flags.f_contiguous and not v.flags.c_contiguous else "C"
        dims = list(v.shape) if order == "C" else list(v.shape)[::-1]
        strides, step = [], v.dtype.itemsize
        for d in reversed(dims):
            strides.insert(0, step)
            step *= max(d, 1)
        strides = strides if order == "C" else strides[::-1]
        return {"t": "ndarray", "dtype": v.dtype.str, "shape": list(v.shape), "strides": list(strides),
                "sha256_c_order": hashlib.sha256(v.tobytes("C")).hexdigest()}
    path = path | {id(v)}
    if isinstance(v, dict):
        out = {"t": "dict", "items": [[render(k, path), render(x, path)] for k, x in v.items()]}
        if isinstance(v, collections.OrderedDict):
            out["kind"] = "OrderedDict"
        return out
    kind = {list: "list", tuple: "tuple", set: "set", frozenset: "frozenset"}[type(v)]
    return {"t": kind, "items": [render(x, path) for x in v]}

def same(a, b, seen=None, where="value"):
    """Equal values, with the same sharing: an object seen twice in `a` is one object in `b`."""
    seen = seen if seen is not None else {}
    if type(a) is not type(b):
        raise AssertionError("%s: %r is a %s, %r a %s" % (where, a, type(a), b, type(b)))
    if isinstance(a, (list, dict, set, bytearray, np.ndarray, tuple)) and (len(a) > 0 if not isinstance(a, np.ndarray) else True):
        if id(a) in seen:
            if seen[id(a)] is not b:
                raise AssertionError("%s: sharing lost" % where)
            return
        seen[id(a)] = b
    if isinstance(a, float):
        assert a.hex() == b.hex() or (math.isnan(a) and math.isnan(b)), where
    elif isinstance(a, complex):
        same(a.real, b.real, seen, where); same(a.imag, b.imag, seen, where)
    elif isinstance(a, np.ndarray):
        # numpy's in-band loads gives native byte order (for its own pickles too): compare values.
        native = lambda x: x.astype(x.dtype.newbyteorder("="))
        assert native(a).dtype == native(b).dtype and a.shape == b.shape, (where, a.dtype, b.dtype, a.shape, b.shape)
        assert native(a).tobytes("C") == native(b).tobytes("C"), where
        assert a.flags.c_contiguous == b.flags.c_contiguous and a.flags.f_contiguous == b.flags.f_contiguous, where
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, seen, "%s[%d]" % (where, i))
    elif isinstance(a, dict):
        assert list(a.keys()) == list(b.keys()), where
        for k in a:
            same(a[k], b[k], seen, "%s[%r]" % (where, k))
    else:
        assert a == b, (where, a, b)

def all_cases():
    """(name, value, protocols, with buffer_callback)"""
    out = []
    for name, v in data():
        out.append((name, v, range(6), False))
    for name, v in arrays():
        out.append((name, v, range(2, 6), False))
        out.append((name + "-oob", v, [5], True))
    return out
