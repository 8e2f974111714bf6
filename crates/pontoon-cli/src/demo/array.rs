//! The demo's third part: a struct holding a large n-dimensional array, and an Arrow
//! RecordBatch, cross the wire; the receiver's data is a view of the received frames.

use std::error::Error;

use std::sync::Arc;

use arrow_array::{Array as _, Float64Array, Int64Array, RecordBatch, StringArray};
use pontoon::array::Array;
use pontoon::array::arrow::ArrowFamily;
use pontoon::family::Registry;
use serde::{Deserialize, Serialize};

use super::family::across_the_wire;
use super::{Args, duration, size, timed};

/// A simulation step: small fields and a large field of temperatures.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Step {
    step: u64,
    units: String,
    temperature: Array,
}

pub(super) fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    println!(
        "pontoon demo: a large array inside a struct, and an Arrow RecordBatch, across the same wire"
    );
    let side = ((args.payload_mib.max(1) << 20) / 8).isqrt();
    let temperature = Array::build::<f64>(&[side, side], |cells| {
        for (i, cell) in cells.iter_mut().enumerate() {
            *cell = 15.0 + (i % side) as f64 / side as f64;
        }
    })?;
    let sent = Step {
        step: 42,
        units: "celsius".into(),
        temperature,
    };
    let registry = Registry::new();
    let (message, serialize_time) = timed(|| registry.serialize(&sent));
    let message = message?;
    let (received, receive_range) = across_the_wire(&message)?;
    let (back, deserialize_time) = timed(|| registry.deserialize::<Step>(&received));
    let back = back?;
    if back != sent {
        return Err("the step changed on the way".into());
    }
    let copied = !receive_range.contains(&(back.temperature.data().as_ptr() as usize));
    let corner = back.temperature.view::<f64>()?[[side - 1, side - 1]];
    println!(
        "  array             Step {{ temperature: {} {:?} ({}) }} -> {} frame(s)",
        back.temperature.descr(),
        back.temperature.shape(),
        size((back.temperature.len() * 8) as u64),
        message.frames.len()
    );
    println!(
        "                    received array copied: {}; viewed through ndarray, corner = {corner:.4}",
        if copied {
            "YES"
        } else {
            "no (a view of the receive buffer)"
        }
    );
    println!(
        "                    serialize {}, deserialize {}",
        duration(serialize_time),
        duration(deserialize_time)
    );
    if copied {
        return Err("the array was copied on the way in".into());
    }
    record_batch()
}

/// An Arrow RecordBatch through the arrow family: the IPC schema in the header, each column's
/// buffers as frames, and columns that are views of the received frames.
fn record_batch() -> Result<(), Box<dyn Error>> {
    let rows = 1_000_000;
    let batch = RecordBatch::try_from_iter([
        (
            "id",
            Arc::new(Int64Array::from_iter_values(0..rows as i64)) as _,
        ),
        (
            "price",
            Arc::new(Float64Array::from_iter_values(
                (0..rows).map(|i| 100.0 + i as f64 / 1e4),
            )) as _,
        ),
        (
            "symbol",
            Arc::new(StringArray::from_iter_values(
                (0..rows).map(|i| ["AAPL", "MSFT", "NVDA"][i % 3]),
            )) as _,
        ),
    ])?;
    let mut registry = Registry::new();
    registry.add_family(ArrowFamily)?;
    registry.set_serializers([ArrowFamily::NAME, "serde"])?;
    registry.set_deserializers([ArrowFamily::NAME, "serde"])?;
    let (message, serialize_time) = timed(|| registry.serialize_dyn(&batch));
    let message = message?;
    let (received, receive_range) = across_the_wire(&message)?;
    let (back, deserialize_time) = timed(|| registry.deserialize_dyn(&received));
    let back = back?;
    let back = back
        .downcast_ref::<RecordBatch>()
        .ok_or("came back as another type")?;
    if back != &batch {
        return Err("the record batch changed on the way".into());
    }
    let prices = back.column(1).to_data();
    let copied = !receive_range.contains(&(prices.buffers()[0].as_ptr() as usize));
    let bytes: usize = batch
        .columns()
        .iter()
        .map(|c| c.get_array_memory_size())
        .sum();
    println!(
        "  arrow             RecordBatch {{ {} rows: id int64, price float64, symbol utf8 }} ({}) -> {} frame(s)",
        back.num_rows(),
        size(bytes as u64),
        message.frames.len()
    );
    println!(
        "                    received columns copied: {}",
        if copied {
            "YES"
        } else {
            "no (views of the receive buffer)"
        }
    );
    println!(
        "                    serialize {}, deserialize {}",
        duration(serialize_time),
        duration(deserialize_time)
    );
    if copied {
        return Err("the record batch was copied on the way in".into());
    }
    Ok(())
}
