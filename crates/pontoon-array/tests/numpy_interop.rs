//! `.npy` files against real numpy: pontoon writes, `np.load` checks; numpy writes (`np.save`),
//! `npy::read` checks. Likewise the `array` family's header and frame: pontoon sends, numpy builds
//! `np.ndarray(shape, dtype, buffer, offset, strides)` over the frame and checks; numpy describes
//! its arrays (dtype string, shape, byte strides, and the smallest stretch of memory holding every
//! element), pontoon's registry receives them and checks. Every dtype, both byte orders, C and
//! Fortran order, 0-d, empty, sliced (negative and step strides) and broadcast arrays.
//!
//! The interpreter is `$PONTOON_PYTHON`, which `cargo xtask test` sets to its venv with numpy
//! (`target/pontoon-venv`). Both sides compute the values from the same formulas (see [`element`]
//! and `values` in [`VALUES_PY`]), so neither checks itself against its own output. One Python
//! process runs per direction, for all the cases.

use std::fs::File;
use std::io::Write;
use std::path::Path;

mod common;

use bytes::Bytes;
use pontoon_array::{Array, ArrayFamily, ByteOrder, DType, TimeUnit, npy};
use pontoon_family::Registry;
use pontoon_family::rmpv::Value;
use pontoon_wire::{Header, Limits, Message};

/// The values of element `i` (in C order of the base array) as little-endian bytes; the Python
/// side's `values` computes the same.
fn element(dtype: DType, i: usize) -> Vec<u8> {
    let x = i as f64;
    match dtype {
        DType::Bool => vec![u8::from(i % 3 == 1)],
        DType::I8
        | DType::I16
        | DType::I32
        | DType::I64
        | DType::U8
        | DType::U16
        | DType::U32
        | DType::U64 => hash(i)[..dtype.size()].to_vec(),
        DType::F32 => ((x * 0.75 - 5.5) as f32).to_le_bytes().to_vec(),
        DType::F64 => (x * 0.75 - 5.5).to_le_bytes().to_vec(),
        DType::C64 => [((x * 0.5 - 2.0) as f32), ((1.0 - x * 0.25) as f32)]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::C128 => [x * 0.5 - 2.0, 1.0 - x * 0.25]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::DateTime(_) | DType::TimeDelta(_) => (i as i64 * 86_400_000_123
            + 1_600_000_000_000_000)
            .to_le_bytes()
            .to_vec(),
        other => panic!("no test values for {other}"),
    }
}

/// A 64-bit hash of `i`, little-endian; integers of every width take its low bytes.
fn hash(i: usize) -> [u8; 8] {
    (i as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(0x0123_4567_89AB_CDEF)
        .to_le_bytes()
}

/// The C-order base array of `shape` holding [`element`] values, in `order`.
fn base(dtype: DType, order: ByteOrder, shape: &[usize]) -> Array {
    let count: usize = shape.iter().product();
    let lane = match dtype {
        DType::C64 | DType::C128 => dtype.size() / 2,
        other => other.size(),
    };
    let mut data = Vec::with_capacity(count * dtype.size());
    for i in 0..count {
        let mut bytes = element(dtype, i);
        if order == ByteOrder::Big {
            bytes.chunks_mut(lane).for_each(<[u8]>::reverse);
        }
        data.extend_from_slice(&bytes);
    }
    let size = dtype.size() as isize;
    let strides = c_strides(shape, size);
    Array::from_parts(
        dtype,
        order,
        shape.to_vec(),
        strides,
        0,
        Bytes::from(data),
        &Limits::DEFAULT,
    )
    .unwrap()
}

/// C-order byte strides.
fn c_strides(shape: &[usize], size: isize) -> Vec<isize> {
    let mut strides = vec![0isize; shape.len()];
    let mut step = size;
    for (stride, &len) in strides.iter_mut().zip(shape).rev() {
        *stride = step;
        step *= len.max(1) as isize;
    }
    strides
}

/// One array on both sides: pontoon's `array`, and numpy's `expr` over `base` (an array of
/// `base_shape` holding the same values) that makes the same array.
struct Case {
    /// The file name stem.
    name: String,
    /// numpy's dtype string.
    descr: String,
    /// The shape of the base array `expr` starts from.
    base_shape: Vec<usize>,
    /// The numpy expression.
    expr: &'static str,
    /// The layout the file must load as: `C`, `F`, or `-` (no check: empty arrays).
    order: &'static str,
    /// pontoon's array.
    array: Array,
}

/// Every case: each dtype in each byte order, in each layout.
fn cases() -> Vec<Case> {
    let dtypes = DType::NUMERIC.into_iter().chain([
        DType::DateTime(TimeUnit::Microsecond),
        DType::DateTime(TimeUnit::Day),
        DType::TimeDelta(TimeUnit::Nanosecond),
    ]);
    let mut cases = Vec::new();
    for dtype in dtypes {
        let orders: &[ByteOrder] = if dtype.size() == 1 {
            &[ByteOrder::Little]
        } else {
            &[ByteOrder::Little, ByteOrder::Big]
        };
        for &order in orders {
            let size = dtype.size() as isize;
            let mut add = |base_shape: &[usize], expr, layout, array: Array| {
                cases.push(Case {
                    name: format!("case{}", cases.len()),
                    descr: dtype.descr(order),
                    base_shape: base_shape.to_vec(),
                    expr,
                    order: layout,
                    array,
                });
            };
            let b = |shape: &[usize]| base(dtype, order, shape);
            let over = |shape: &[usize], strides: &[isize], offset: isize, of: &Array| {
                let (shape, strides) = (shape.to_vec(), strides.to_vec());
                let data = of.data().clone();
                Array::from_parts(
                    dtype,
                    order,
                    shape,
                    strides,
                    offset as usize,
                    data,
                    &Limits::DEFAULT,
                )
                .unwrap()
            };
            add(&[3, 4], "base", "C", b(&[3, 4]));
            let fortran = b(&[3, 4])
                .transposed()
                .to_contiguous()
                .unwrap()
                .transposed();
            add(&[3, 4], "np.asfortranarray(base)", "F", fortran);
            add(&[2, 3, 4], "base.T", "F", b(&[2, 3, 4]).transposed());
            add(&[], "base", "C", b(&[]));
            add(&[7], "base", "C", b(&[7]));
            add(&[2, 0], "base", "-", b(&[2, 0]));
            add(&[0], "base", "-", b(&[0]));
            let grid = b(&[4, 6]);
            let sliced = over(&[4, 3], &[-6 * size, 2 * size], 18 * size, &grid);
            add(&[4, 6], "base[::-1, ::2]", "C", sliced);
            let stepped = over(&[2, 2], &[6 * size, -3 * size], 11 * size, &grid);
            add(&[4, 6], "base[1:3, ::-3]", "C", stepped);
            let broadcast = over(&[3, 6], &[0, size], 0, &grid);
            add(&[4, 6], "np.broadcast_to(base[0], (3, 6))", "C", broadcast);
            let column = over(&[4, 2, 6], &[6 * size, 0, size], 0, &grid);
            add(
                &[4, 6],
                "np.broadcast_to(base[:, None, :], (4, 2, 6))",
                "C",
                column,
            );
        }
    }
    cases
}

/// Writes `manifest.tsv`: one case a line, `name descr base_shape expr shape order`.
fn write_manifest(dir: &Path, cases: &[Case]) {
    let dims = |shape: &[usize]| {
        shape
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let lines: String = cases
        .iter()
        .map(|c| {
            format!(
                "{}\t{}\t{}\t{}\t{}\t{}\n",
                c.name,
                c.descr,
                dims(&c.base_shape),
                c.expr,
                dims(c.array.shape()),
                c.order
            )
        })
        .collect();
    std::fs::write(dir.join("manifest.tsv"), lines).unwrap();
}

/// The values formula and manifest reader both scripts start with.
const VALUES_PY: &str = r#"
import pathlib, sys
import numpy as np

root = pathlib.Path(sys.argv[1])

def dims(text):
    return tuple(int(d) for d in text.split(",") if d)

def values(descr, shape):
    """The same values as `element` in numpy_interop.rs, C order, as dtype `descr`."""
    dt = np.dtype(descr)
    le = dt.newbyteorder("<")
    i = np.arange(int(np.prod(shape, dtype=np.int64)), dtype=np.int64)
    if dt.kind == "b":
        v = i % 3 == 1
    elif dt.kind in "iu":
        h = i.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(0x0123456789ABCDEF)
        if dt.itemsize < 8:
            h = h & np.uint64((1 << (8 * dt.itemsize)) - 1)
        v = h.astype(f"<u{dt.itemsize}").view(le)
    elif dt.kind == "f":
        v = (i * 0.75 - 5.5).astype(le)
    elif dt.kind == "c":
        v = ((i * 0.5 - 2) + 1j * (1 - i * 0.25)).astype(le)
    elif dt.kind in "Mm":
        v = (i * 86400000123 + 1600000000000000).astype("<i8").view(le)
    else:
        raise ValueError(f"no test values for {descr}")
    return v.astype(dt).reshape(shape)

def cases():
    for line in (root / "manifest.tsv").read_text().splitlines():
        name, descr, base_shape, expr, shape, order = line.split("\t")
        expected = eval(expr, {"np": np, "base": values(descr, dims(base_shape))})
        assert expected.shape == dims(shape), (name, expr, expected.shape, shape)
        yield name, descr, expr, expected, order
"#;

/// Loads every file pontoon wrote and checks dtype, shape, values and (for contiguous ones)
/// the C/F flags.
const CHECK_PY: &str = r#"
failures, count = [], 0
for name, descr, expr, expected, order in cases():
    what = f"{name} ({descr}, {expr})"
    try:
        loaded = np.load(root / f"pontoon_{name}.npy", allow_pickle=False)
    except Exception as e:
        failures.append(f"{what}: np.load failed: {e!r}")
        continue
    count += 1
    if loaded.dtype.str != descr:
        failures.append(f"{what}: dtype {loaded.dtype.str}")
    if loaded.shape != expected.shape:
        failures.append(f"{what}: shape {loaded.shape}, expected {expected.shape}")
    elif not np.array_equal(loaded, expected) or loaded.tobytes() != expected.tobytes():
        failures.append(f"{what}: values {loaded!r}, expected {expected!r}")
    if order == "C" and not loaded.flags.c_contiguous:
        failures.append(f"{what}: not C-contiguous: {loaded.flags}")
    if order == "F" and not (loaded.flags.f_contiguous and not loaded.flags.c_contiguous):
        failures.append(f"{what}: not Fortran-order: {loaded.flags}")
print(f"numpy {np.__version__}: loaded {count} files written by pontoon")
for failure in failures:
    print("FAIL", failure)
sys.exit(1 if failures else 0)
"#;

/// Saves every case with `np.save`.
const SAVE_PY: &str = r#"
count = 0
for name, descr, expr, expected, order in cases():
    assert expected.dtype.str == descr, (name, expected.dtype.str, descr)
    np.save(root / f"numpy_{name}.npy", expected, allow_pickle=False)
    count += 1
print(f"numpy {np.__version__}: saved {count} files")
"#;

#[test]
fn numpy_loads_what_pontoon_writes() {
    let python = common::python();
    let dir = common::scratch("numpy-interop-pontoon-writes");
    let cases = cases();
    for case in &cases {
        let mut file = File::create(dir.join(format!("pontoon_{}.npy", case.name))).unwrap();
        for chunk in npy::write(&case.array).unwrap() {
            file.write_all(&chunk).unwrap();
        }
    }
    write_manifest(&dir, &cases);
    let stdout = common::run_python(VALUES_PY, CHECK_PY, &dir);
    assert!(
        stdout.contains(&format!("loaded {} files", cases.len())),
        "{}: {stdout}",
        python.display()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pontoon_reads_what_numpy_saves() {
    let dir = common::scratch("numpy-interop-numpy-writes");
    let cases = cases();
    write_manifest(&dir, &cases);
    let stdout = common::run_python(VALUES_PY, SAVE_PY, &dir);
    assert!(
        stdout.contains(&format!("saved {} files", cases.len())),
        "{stdout}"
    );
    for case in &cases {
        let what = format!("{} ({}, {})", case.name, case.descr, case.expr);
        let path = dir.join(format!("numpy_{}.npy", case.name));
        let file = Bytes::from(std::fs::read(&path).unwrap());
        let read = npy::read(file.clone()).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(read.descr(), case.descr, "{what}");
        assert_eq!(read.byte_order(), case.array.byte_order(), "{what}");
        assert_eq!(read.shape(), case.array.shape(), "{what}");
        assert_eq!(read, case.array, "{what}: values");
        match case.order {
            "C" => assert!(read.is_c_contiguous(), "{what}: {read:?}"),
            "F" => assert!(
                read.is_f_contiguous() && !read.is_c_contiguous(),
                "{what}: {read:?}"
            ),
            _ => {}
        }
        if !read.is_empty() {
            let bytes = file.as_ptr_range();
            assert!(
                bytes.contains(&read.data().as_ptr()),
                "{what}: a view of the file"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A registry that sends and receives arrays with the `array` family only.
fn array_registry() -> Registry {
    let mut registry = Registry::new();
    registry.add_family(ArrayFamily).unwrap();
    registry.set_serializers(["array"]).unwrap();
    registry.set_deserializers(["array"]).unwrap();
    registry
}

/// `bytes` copied to a 16-byte-aligned frame, as a receiver lays frames out: pontoon copies
/// elements misaligned for their dtype, and the test checks it makes no copy.
fn aligned(bytes: &[u8]) -> Bytes {
    let mut buf = vec![0u8; bytes.len() + 16];
    let pad = buf.as_ptr().align_offset(16);
    buf[pad..pad + bytes.len()].copy_from_slice(bytes);
    Bytes::from(buf).slice(pad..pad + bytes.len())
}

/// `value` (a header: maps with string keys, lists, strings, integers) as JSON.
fn json(value: &Value) -> String {
    match value {
        Value::Map(entries) => {
            let fields: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{}: {}", json(k), json(v)))
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(json).collect();
            format!("[{}]", items.join(", "))
        }
        Value::String(s) => {
            let s = s.as_str().expect("a UTF-8 string");
            assert!(
                s.chars()
                    .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\'),
                "{s:?} would need escaping"
            );
            format!("\"{s}\"")
        }
        Value::Integer(n) => n.to_string(),
        other => panic!("no JSON for {other}"),
    }
}

/// Python's `byte_bounds`, wherever this numpy keeps it.
const BOUNDS_PY: &str = r#"
try:
    from numpy.lib.array_utils import byte_bounds
except ImportError:  # numpy < 2
    byte_bounds = np.byte_bounds
"#;

/// Builds an `np.ndarray` over every frame pontoon's `array` family sent, from its header, and
/// checks dtype, shape, strides (numpy's own when the frame is a view of the data, C-order ones
/// when pontoon compacted a sparse slice), that the frame is just the stretch the elements span,
/// and the values.
const FAMILY_CHECK_PY: &str = r#"
import json

failures, count = [], 0
for name, descr, expr, expected, order in cases():
    what = f"{name} ({descr}, {expr})"
    meta = json.loads((root / f"family_{name}.json").read_text())
    frame = (root / f"family_{name}.bin").read_bytes()
    if sorted(meta) != ["dtype", "offset", "shape", "strides"]:
        failures.append(f"{what}: header fields {sorted(meta)}")
        continue
    strides = tuple(meta["strides"])
    try:
        got = np.ndarray(
            shape=tuple(meta["shape"]),
            dtype=np.dtype(meta["dtype"]),
            buffer=frame,
            offset=meta["offset"],
            strides=strides,
        )
    except Exception as e:
        failures.append(f"{what}: np.ndarray refused {meta} over {len(frame)} bytes: {e!r}")
        continue
    count += 1
    if got.dtype.str != descr:
        failures.append(f"{what}: dtype {got.dtype.str}")
    if got.shape != expected.shape:
        failures.append(f"{what}: shape {got.shape}, expected {expected.shape}")
        continue
    if got.strides != strides:
        failures.append(f"{what}: strides {got.strides}, header {strides}")
    if expected.size:
        lo, hi = byte_bounds(expected)
        if hi - lo <= expected.nbytes:
            want = expected.strides  # a view of the data: numpy's strides
        else:
            want = np.empty(expected.shape, expected.dtype).strides  # compacted, C order
        if strides != want:
            failures.append(f"{what}: strides {strides}, expected {want}")
        start = got.__array_interface__["data"][0] - meta["offset"]
        glo, ghi = byte_bounds(got)
        if (glo - start, ghi - start) != (0, len(frame)):
            failures.append(
                f"{what}: elements span bytes {glo - start}..{ghi - start} of a "
                f"{len(frame)}-byte frame"
            )
    elif frame:
        failures.append(f"{what}: {len(frame)} bytes sent for an empty array")
    if not np.array_equal(got, expected) or got.tobytes() != expected.tobytes():
        failures.append(f"{what}: values {got!r}, expected {expected!r}")
print(f"numpy {np.__version__}: built {count} arrays from pontoon's array family")
for failure in failures:
    print("FAIL", failure)
sys.exit(1 if failures else 0)
"#;

/// Describes every case as numpy holds it: `numpy_<name>.hdr` is `descr shape strides offset`
/// (tab-separated; shape and byte strides comma-separated, strides as `arr.strides`), and
/// `numpy_<name>.bin` the smallest stretch of memory holding every element, element 0 being
/// `offset` bytes into it.
const DESCRIBE_PY: &str = r#"
import ctypes

count = 0
for name, descr, expr, arr, order in cases():
    interface = arr.__array_interface__
    assert arr.dtype.str == descr == interface["typestr"], (name, arr.dtype.str, descr)
    lo, hi = byte_bounds(arr)
    pointer = interface["data"][0]
    stretch = ctypes.string_at(lo, hi - lo)
    offset = pointer - lo
    # The stretch and offset describe the same array.
    rebuilt = np.ndarray(arr.shape, arr.dtype, buffer=stretch, offset=offset, strides=arr.strides)
    assert rebuilt.tobytes() == arr.tobytes(), (name, expr)
    text = lambda ints: ",".join(str(n) for n in ints)
    header = "\t".join([descr, text(arr.shape), text(arr.strides), str(offset)])
    (root / f"numpy_{name}.hdr").write_text(header)
    (root / f"numpy_{name}.bin").write_bytes(stretch)
    count += 1
print(f"numpy {np.__version__}: described {count} arrays")
"#;

#[test]
fn numpy_builds_arrays_from_the_array_family() {
    let python = common::python();
    let dir = common::scratch("numpy-interop-family-to-numpy");
    let cases = cases();
    let registry = array_registry();
    for case in &cases {
        let what = format!("{} ({}, {})", case.name, case.descr, case.expr);
        let message = registry
            .serialize(&case.array)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let header = message.header.to_value().unwrap();
        assert_eq!(header["family"].as_str(), Some("array"), "{what}");
        assert_eq!(message.frames.len(), 1, "{what}: one data frame");
        let meta = json(&header["meta"]);
        std::fs::write(dir.join(format!("family_{}.json", case.name)), meta).unwrap();
        std::fs::write(
            dir.join(format!("family_{}.bin", case.name)),
            &message.frames[0],
        )
        .unwrap();
    }
    write_manifest(&dir, &cases);
    let stdout = common::run_python(VALUES_PY, &format!("{BOUNDS_PY}{FAMILY_CHECK_PY}"), &dir);
    assert!(
        stdout.contains(&format!("built {} arrays", cases.len())),
        "{}: {stdout}",
        python.display()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_array_family_receives_numpy_arrays() {
    let dir = common::scratch("numpy-interop-numpy-to-family");
    let cases = cases();
    write_manifest(&dir, &cases);
    let stdout = common::run_python(VALUES_PY, &format!("{BOUNDS_PY}{DESCRIBE_PY}"), &dir);
    assert!(
        stdout.contains(&format!("described {} arrays", cases.len())),
        "{stdout}"
    );
    let registry = array_registry();
    for case in &cases {
        let what = format!("{} ({}, {})", case.name, case.descr, case.expr);
        let text = std::fs::read_to_string(dir.join(format!("numpy_{}.hdr", case.name))).unwrap();
        let [descr, shape, strides, offset] = text.split('\t').collect::<Vec<_>>()[..] else {
            panic!("{what}: header {text:?}");
        };
        let ints = |list: &str| -> Vec<i64> {
            list.split(',')
                .filter(|n| !n.is_empty())
                .map(|n| n.parse().unwrap())
                .collect()
        };
        let (shape, strides, offset) = (ints(shape), ints(strides), offset.parse::<u64>().unwrap());
        let list = |ints: &[i64]| Value::Array(ints.iter().map(|&n| Value::from(n)).collect());
        let meta = Value::Map(vec![
            ("dtype".into(), descr.into()),
            ("shape".into(), list(&shape)),
            ("strides".into(), list(&strides)),
            ("offset".into(), Value::from(offset)),
        ]);
        let header = Header::from_value(&Value::Map(vec![
            ("family".into(), "array".into()),
            ("type".into(), "numpy.ndarray".into()),
            ("meta".into(), meta),
        ]));
        let frame = aligned(&std::fs::read(dir.join(format!("numpy_{}.bin", case.name))).unwrap());
        let message = Message::new(header, vec![frame.clone()]);
        let read: Array = registry
            .deserialize(&message)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(read.descr(), case.descr, "{what}");
        assert_eq!(read.dtype(), case.array.dtype(), "{what}");
        assert_eq!(read.byte_order(), case.array.byte_order(), "{what}");
        assert_eq!(read.shape(), case.array.shape(), "{what}");
        // An empty array's strides are nobody's business (numpy gives a 1-d one stride 0, and
        // pontoon may lay it out afresh); every other array keeps numpy's, over numpy's bytes.
        if !case.array.is_empty() {
            let sent: Vec<isize> = strides.iter().map(|&s| s as isize).collect();
            assert_eq!(read.strides(), sent, "{what}: strides as numpy sent them");
            assert_eq!(read.strides(), case.array.strides(), "{what}: strides");
            let bytes = frame.as_ptr_range();
            assert!(
                bytes.contains(&read.data().as_ptr()),
                "{what}: a view of the frame"
            );
        }
        assert_eq!(read, case.array, "{what}: values");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
