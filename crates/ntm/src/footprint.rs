//! What a model costs in memory, estimated from its configuration before anything is built,
//! so that absurd sizes are errors rather than allocation failures that abort the process.
//! The figures are in `f64`, so no size overflows.

use crate::{ModelConfig, NO_MEMORY};

/// The larger a memory estimate may ever be: beyond this, sizes are nonsense whatever the
/// machine (and `usize` arithmetic in the allocators would overflow).
pub const ABSURD_BYTES: f64 = (1u64 << 50) as f64;

/// What a model costs, in `f32` values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelFootprint {
    /// Trainable parameters (an upper bound for the built-in kinds).
    pub params: f64,
    /// Values the autograd graph keeps per sequence and time step.
    pub per_step: f64,
}

fn option(model: &ModelConfig, key: &str, default: f64) -> f64 {
    model
        .memory
        .options
        .get(key)
        .and_then(|v| v.as_integer())
        // A value of the wrong type counts as the default here; building the memory names it.
        .map_or(default, |i| i as f64)
}

/// The footprint of `model` between `inputs` and `outputs`.
///
/// The memory's size is read from its `rows`, `width`, `read_heads` and `write_heads` options
/// (the NTM's defaults where absent); a memory with link matrices (`kind = "dnc"`) keeps
/// `write_heads x rows^2` more per step.
pub fn model_footprint(model: &ModelConfig, inputs: usize, outputs: usize) -> ModelFootprint {
    let s = model.controller.size as f64;
    let layers = model.controller.layers.max(1) as f64;
    let (inputs, outputs) = (inputs as f64, outputs as f64);
    let has_memory = model.memory.kind != NO_MEMORY;
    let (n, w, r, wh) = if has_memory {
        (
            option(model, "rows", 128.0),
            option(model, "width", 20.0),
            option(model, "read_heads", 1.0),
            option(model, "write_heads", 1.0),
        )
    } else {
        (0.0, 0.0, 0.0, 0.0)
    };
    let heads = r + wh;
    let reads = r * w;
    let controller_in = inputs + reads;
    // Weight blocks per layer: one for a feedforward layer; four bound the recurrent cells
    // (an LSTM has four, a GRU three) and a kind of your own. Each layer sees the previous
    // one's output.
    let gates = if model.controller.kind == "ff" {
        1.0
    } else {
        4.0
    };
    // Two bias vectors per block, as in the cuDNN form.
    let controller =
        gates * s * (controller_in + s + 2.0) + gates * (layers - 1.0) * s * (2.0 * s + 2.0);
    // Per head: key, strength, gate, shifts, sharpening; write heads add erase and add vectors.
    let interface = heads * (w + 16.0) + wh * 2.0 * w;
    let links = if model.memory.kind == "dnc" {
        wh * n * n
    } else {
        0.0
    };
    let params =
        controller + (s + 1.0) * interface + (s + reads + 1.0) * outputs + n * (w + heads) + reads;
    let per_step = 3.0 * n * w
        + 12.0 * heads * n
        + 4.0 * links
        + 16.0 * layers * s
        + 4.0 * (interface + reads + controller_in + outputs);
    ModelFootprint { params, per_step }
}

/// `1.5 GiB`, `12.0 MiB`: a byte count for a message.
pub fn human_bytes(bytes: f64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if !value.is_finite() {
        "an unbounded amount".to_string()
    } else if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
