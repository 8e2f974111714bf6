# The Dask messages the interop tests exchange: a data-only analogue of every case of
# distributed's protocol tests (dtypes, orders, 0-d, empty, big-endian, broadcast, structured,
# sliced, collections, nesting, sets, bytes, split frames, compression, pickled numpy with and
# without out-of-band buffers, to_pickle, the msgpack and error families), the bytes Dask's TCP
# comm writes for each, and Python's own rendering of a decoded message as the JSON tree that
# pontoon_dask::to_json prints (an independent implementation: float.hex, hashlib, numpy's
# tobytes('C')).
import hashlib, json, logging, math, os, sys
import numpy as np
from distributed.protocol import dumps, loads, to_serialize
from distributed.protocol.serialize import Serialized, ToPickle
from distributed.comm.tcp import _add_frames_header, TCP

logging.disable(logging.CRITICAL)

def stream(msg, compression=None, shard=None, serializers=None, pickle_protocol=5):
    """The bytes `TCP.write` puts on the socket for `msg`."""
    frames = dumps(msg, serializers=serializers, on_error="message",
                   context={"sender": {}, "recipient": {}, "compression": compression,
                            "pickle-protocol": pickle_protocol},
                   frame_split_size=shard or TCP.max_shard_size)
    frames, _, _ = _add_frames_header(frames)
    return b"".join(bytes(f) for f in frames)

def unstream(data):
    """The frames of one message in `data`, as `TCP.read` gets them."""
    import struct
    n, count = struct.unpack_from("<QQ", data)
    lengths = struct.unpack_from("<%dQ" % count, data, 16)
    at, frames = 16 + 8 * count, []
    for l in lengths:
        frames.append(memoryview(bytearray(data[at:at + l])))
        at += l
    assert at == len(data), (at, len(data))
    return frames

def render(v, pickle_strides=False):
    fh = lambda x: x.hex() if math.isfinite(x) else repr(x)
    r = lambda x: render(x, pickle_strides)
    if v is None:
        return {"t": "none"}
    if isinstance(v, bool):
        return {"t": "bool", "v": v}
    if isinstance(v, int):
        return {"t": "int", "v": str(v)}
    if isinstance(v, float):
        return {"t": "float", "v": fh(v)}
    if isinstance(v, str):
        return {"t": "str", "v": v}
    if isinstance(v, (bytes, memoryview)):
        b = bytes(v)
        return {"t": "bytes", "len": len(b), "sha256": hashlib.sha256(b).hexdigest()}
    if isinstance(v, bytearray):
        return {"t": "bytes", "kind": "bytearray", "len": len(v), "sha256": hashlib.sha256(v).hexdigest()}
    if isinstance(v, np.ndarray):
        strides = list(v.strides)
        if pickle_strides:
            # A pickle keeps no strides: the array is rebuilt contiguous.
            order = "F" if v.flags.f_contiguous and not v.flags.c_contiguous else "C"
            dims = list(v.shape) if order == "C" else list(v.shape)[::-1]
            strides, step = [], v.dtype.itemsize
            for d in reversed(dims):
                strides.insert(0, step)
                step *= max(d, 1)
            strides = strides if order == "C" else strides[::-1]
        dtype = "structured" if v.dtype.kind == "V" else v.dtype.str
        return {"t": "ndarray", "dtype": dtype, "shape": list(v.shape), "strides": strides,
                "sha256_c_order": hashlib.sha256(v.tobytes("C")).hexdigest()}
    if isinstance(v, Serialized):
        assert v.header["serializer"] == "error", v.header
        return {"t": "exception", "type": "TypeError",
                "msg": "\n".join(bytes(f).decode() for f in v.frames)}
    if isinstance(v, dict):
        return {"t": "dict", "items": [[r(k), r(x)] for k, x in v.items()]}
    kind = {list: "list", tuple: "tuple", set: "set", frozenset: "frozenset"}[type(v)]
    items = [r(x) for x in v]
    if kind in ("set", "frozenset"):
        items.sort(key=lambda i: json.dumps(i, sort_keys=True))
    return {"t": kind, "items": items}

class Unpicklable:
    def __reduce__(self):
        raise TypeError("this object refuses to be pickled")

def array_cases():
    out = []
    for d in ["?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f4", "f8", "c8", "c16",
              "M8[ns]", "M8[us]", "m8[s]", ">i4", ">f8", ">c16", "<f2", "S3", "U5", "V4"]:
        dt = np.dtype(d)
        if dt.kind in "SUV":
            base = np.frombuffer(bytes(range(24 * dt.itemsize % 256)) * 8, dtype="u1")[:24 * dt.itemsize].view(dt) if dt.kind != "U" \
                else np.array([chr(65 + i % 26) * (i % 5) for i in range(24)], dtype=dt)
        elif dt.kind in "Mm":
            base = (np.arange(24) * 86400).astype(dt)
        else:
            base = (np.arange(24) * 7 % 11).astype(dt)
        out.append(("dtype-%s" % d, base.reshape(2, 3, 4).copy()))
    x = np.arange(60, dtype="f8").reshape(3, 4, 5)
    out += [
        ("order-c", x.copy()),
        ("order-f", np.asfortranarray(x)),
        ("sliced-step", x[:, ::2, :]),
        ("sliced-inner", x[1:, 1:3, 2:]),
        ("transposed", x.transpose(2, 0, 1)),
        ("reversed", x[::-1]),
        ("zero-d", np.array(3.5)),
        ("zero-d-int", np.array(7, dtype="i2")),
        ("empty", np.zeros((0, 3), dtype="i4")),
        ("empty-f", np.zeros((4, 0), dtype="f4", order="F")),
        ("broadcast-row", np.broadcast_to(np.arange(5.0), (4, 5))),
        ("broadcast-scalar", np.broadcast_to(np.array(2, dtype="i8"), (3, 3))),
        ("broadcast-sliced", np.broadcast_to(np.arange(12.0).reshape(3, 4)[:, ::2][:, None, :], (3, 2, 2))),
        ("structured", np.array([(1, 2.5), (3, 4.5)], dtype=[("a", "<i4"), ("b", "<f8")])),
        ("structured-nested", np.zeros(3, dtype=[("p", [("x", "f4"), ("y", "f4")]), ("n", "u1")])),
        ("readonly", np.frombuffer(b"\x01\x02\x03\x04", dtype="u1")),
        ("big-endian-2d", np.arange(12, dtype=">u4").reshape(3, 4)),
        ("large-1d", np.arange(200_000, dtype="f8")),
    ]
    return out

def cases():
    """(name, message, options): options say how Python writes the message and what to expect."""
    out = []
    for name, a in array_cases():
        out.append((name, {"op": "put", "data": to_serialize(a)}, {"exact": True}))
    a = np.arange(10, dtype="i8")
    b = np.linspace(0, 1, 7)
    out += [
        ("msgpack-scalars", {"none": None, "t": True, "f": False, "i": 1, "neg": -40000, "big": 2**63 + 5,
                             "nbig": -2**63, "fl": 1.5, "nan": float("nan"), "s": "héllo ✓", "b": b"\x00\xff",
                             "long-s": "x" * 70000, "long-b": b"y" * 300}, {"exact": True}),
        ("msgpack-nesting", {"a": [1, [2, [3, {"b": (4, 5)}]]], "empty": {}, "e2": [], 3: "int key"}, {"exact": True}),
        ("msgpack-set", {"s": {1, 2, 3}, "nested": [{"x"}]}, {"exact": True}),
        ("bytes", {"x": to_serialize(b"abc" * 10)}, {"exact": True}),
        ("bytes-large", {"x": to_serialize(bytes(range(256)) * 400)}, {"exact": True}),
        ("bytearray", {"x": to_serialize(bytearray(b"mutable"))}, {"exact": True}),
        ("nesting", {"op": "x", "args": [to_serialize(a), {"inner": to_serialize(b), "n": 1}], "k": to_serialize(b"k")},
         {"exact": True}),
        ("collection-list", {"x": to_serialize([a, b])}, {"exact": True}),
        ("collection-tuple", {"x": to_serialize((a, b"raw", b))}, {"exact": True}),
        ("collection-dict", {"x": to_serialize({"a": a, "b": b})}, {"exact": True}),
        ("collection-set", {"x": to_serialize({b"p", b"q"})}, {"exact": False}),
        ("collection-nested", {"x": to_serialize([[a, b], [b]])}, {"exact": True}),
        ("collection-mixed", {"x": to_serialize([a, 1, "s"])}, {"exact": False}),
        ("split-array", {"x": to_serialize(np.arange(300_000, dtype="f8"))}, {"exact": True, "shard": 1 << 20}),
        ("split-odd-itemsize", {"x": to_serialize(np.zeros(400_000, dtype="S3"))}, {"exact": True, "shard": 1 << 20}),
        ("split-bytes", {"x": to_serialize(b"z" * 3_000_000)}, {"exact": True, "shard": 1 << 20}),
        ("split-default-shard", {"x": to_serialize(np.arange(9_000_000, dtype="f8"))}, {"exact": True}),
        ("lz4", {"x": to_serialize(np.zeros(100_000))}, {"compression": "lz4"}),
        ("zstd", {"x": to_serialize(np.zeros(100_000))}, {"compression": "zstd"}),
        ("lz4-split", {"x": to_serialize(np.zeros(1_000_000))}, {"compression": "lz4", "shard": 1 << 20}),
        ("lz4-bytes", {"x": to_serialize(b"\x00" * 50_000)}, {"compression": "lz4"}),
        ("pickle-oob", {"x": to_serialize(np.arange(20.0).reshape(4, 5))},
         {"serializers": ["pickle"], "pickle_strides": True}),
        ("pickle-oob-f", {"x": to_serialize(np.asfortranarray(np.arange(20.0).reshape(4, 5)))},
         {"serializers": ["pickle"], "pickle_strides": True}),
        ("pickle-in-band", {"x": to_serialize(np.arange(20, dtype="i4"))},
         {"serializers": ["pickle"], "pickle_protocol": 4, "pickle_strides": True}),
        ("pickle-data", {"x": to_serialize({"k": [1, 2.5, "s", None, (True,)], "b": b"by"})},
         {"serializers": ["pickle"]}),
        ("to-pickle", {"op": "run", "x": ToPickle({"a": 1, "arr": np.arange(6, dtype="u2")})}, {"pickle_strides": True}),
        ("to-pickle-plain", {"x": ToPickle([1, "two", 3.0])}, {}),
        ("msgpack-family", {"x": to_serialize([1, "a", [2.5, None]])}, {"serializers": ["msgpack"]}),
        ("error-family", {"x": to_serialize(Unpicklable())}, {"error": True}),
        ("refused-object-dtype", {"x": to_serialize(np.array(["a", 1], dtype=object))}, {"refused": True}),
    ]
    return out

def write_all(dir):
    manifest = []
    for name, msg, opt in cases():
        data = stream(msg, compression=opt.get("compression"), shard=opt.get("shard"),
                      serializers=opt.get("serializers"), pickle_protocol=opt.get("pickle_protocol", 5))
        open(os.path.join(dir, name + ".bin"), "wb").write(data)
        entry = {"name": name, "exact": opt.get("exact", False), "shard": opt.get("shard"),
                 "compression": opt.get("compression"), "refused": opt.get("refused", False)}
        if not entry["refused"]:
            back = loads(unstream(data), deserialize=not opt.get("error"))
            entry["expect"] = render(back, opt.get("pickle_strides", False))
            entry["pickle_strides"] = opt.get("pickle_strides", False)
            entry["error"] = opt.get("error", False)
        manifest.append(entry)
    json.dump(manifest, open(os.path.join(dir, "manifest.json"), "w"))

def check_rust(dir):
    """Loads each message Rust wrote with distributed's own `loads` and compares it with
    Python's reading of its own bytes."""
    failures = []
    for entry in json.load(open(os.path.join(dir, "manifest.json"))):
        path = os.path.join(dir, entry["name"] + ".rust.bin")
        if entry["refused"]:
            continue
        try:
            back = loads(unstream(open(path, "rb").read()), deserialize=not entry["error"])
            got = render(back, entry["pickle_strides"])
        except Exception as e:
            failures.append("%s: %r" % (entry["name"], e))
            continue
        if got != entry["expect"]:
            failures.append("%s:\n  rust   %s\n  python %s" % (entry["name"], got, entry["expect"]))
    if failures:
        sys.exit("\n".join(failures))
    print("checked")
