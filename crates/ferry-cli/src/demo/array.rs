//! The demo's third part: a struct holding a large n-dimensional array crosses the wire, and
//! the receiver's array is a view of the received frame.

use std::error::Error;

use ferry::array::Array;
use ferry::family::Registry;
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
    println!("ferry demo: an n-dimensional array inside a struct, across the same wire");
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
    Ok(())
}
