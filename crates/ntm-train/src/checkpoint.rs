//! Checkpoints: model weights, optimiser moments and trainer progress in one safetensors file,
//! written atomically.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use ntm::params::Params;
use serde::{Deserialize, Serialize};

use crate::{Result, TrainError};

/// Where training stands: what a checkpoint stores besides tensors.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Updates applied.
    pub step: u64,
    /// Training sequences seen.
    pub sequences: u64,
    /// Wall-clock seconds spent training, over all sessions.
    pub wall_seconds: f64,
    /// Consecutive validations below the target cost.
    pub streak: u32,
    /// Sequences seen when the target was first met `patience` times in a row.
    pub converged_at_sequences: Option<u64>,
    /// Wall-clock seconds at that point.
    pub converged_at_seconds: Option<f64>,
    /// The most recent validation cost.
    pub last_val_cost: Option<f64>,
}

const PROGRESS_KEY: &str = "ntm.progress";
const CONFIG_KEY: &str = "ntm.config";

/// What [`write_atomic`] appends to a file's name, before the process id, for its temporary.
pub const TMP_SUFFIX: &str = ".tmp";

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so a
/// crash leaves either the old file or the new one, never a torn one. On an error the temporary
/// file is removed; after the rename the directory is synced, so the new name survives a power
/// loss.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp_name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    tmp_name.push(format!("{TMP_SUFFIX}{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let written = std::fs::File::create(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(source) = written {
        // The write failed (a full disk, say): do not leave the partial file behind.
        let _ = std::fs::remove_file(&tmp);
        return Err(TrainError::Io { path: tmp, source });
    }
    if let Err(source) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(TrainError::Io {
            path: path.to_path_buf(),
            source,
        });
    }
    sync_parent(path)
}

/// Syncs the directory holding `path`, where the platform can (directories cannot be opened
/// as files on Windows).
fn sync_parent(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::File::open(parent)
            .and_then(|dir| dir.sync_all())
            .map_err(|source| TrainError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Saves `params` (as `model.<name>`), extra tensors (optimiser state), the run's config text
/// and `progress` to `path`, atomically.
pub fn save(
    path: &Path,
    params: &Params,
    extra: &[(String, Tensor)],
    config: &str,
    progress: &Progress,
) -> Result<()> {
    let mut tensors: Vec<(String, Tensor)> = params
        .named_vars()
        .into_iter()
        .map(|(name, var)| (format!("model.{name}"), var.as_tensor().clone()))
        .collect();
    tensors.extend(extra.iter().cloned());
    if let Some(why) = non_finite(tensors.iter().map(|(n, t)| (n.as_str(), t)))? {
        return Err(TrainError::Checkpoint(format!(
            "refusing to write {}: {why}",
            path.display()
        )));
    }
    let metadata = HashMap::from([
        (
            PROGRESS_KEY.to_string(),
            serde_json::to_string(progress).map_err(|e| TrainError::Checkpoint(e.to_string()))?,
        ),
        (CONFIG_KEY.to_string(), config.to_string()),
    ]);
    let bytes =
        safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(metadata))
            .map_err(|e| TrainError::Checkpoint(format!("cannot serialise checkpoint: {e}")))?;
    write_atomic(path, &bytes)
}

/// A checkpoint read back from disk.
#[derive(Debug)]
pub struct Checkpoint {
    /// All tensors by name.
    pub tensors: HashMap<String, Tensor>,
    /// The run configuration it was saved with (TOML).
    pub config: String,
    /// Trainer progress.
    pub progress: Progress,
}

/// Reads a checkpoint; a missing, truncated or foreign file is an error that names the path.
pub fn load(path: &Path, device: &Device) -> Result<Checkpoint> {
    let bytes = std::fs::read(path).map_err(|source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let corrupt = |why: String| TrainError::Checkpoint(format!("{}: {why}", path.display()));
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| corrupt(format!("not a safetensors file ({e})")))?;
    let info = meta.metadata().clone().unwrap_or_default();
    let progress_text = info
        .get(PROGRESS_KEY)
        .ok_or_else(|| corrupt("no trainer progress in metadata".into()))?;
    let progress =
        serde_json::from_str(progress_text).map_err(|e| corrupt(format!("bad progress ({e})")))?;
    let config = info
        .get(CONFIG_KEY)
        .cloned()
        .ok_or_else(|| corrupt("no run config in metadata".into()))?;
    let tensors = candle_core::safetensors::load_buffer(&bytes, device)
        .map_err(|e| corrupt(format!("unreadable tensors ({e})")))?;
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    if let Some(why) = non_finite(names.into_iter().map(|n| (n.as_str(), &tensors[n])))? {
        return Err(corrupt(why));
    }
    Ok(Checkpoint {
        tensors,
        config,
        progress,
    })
}

/// Describes the non-finite values among `tensors`, if there are any: how many, and the first
/// tensor that holds one.
fn non_finite<'a>(tensors: impl Iterator<Item = (&'a str, &'a Tensor)>) -> Result<Option<String>> {
    let mut total = 0usize;
    let mut first = None;
    for (name, t) in tensors {
        let values = t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        let bad = values.iter().filter(|v| !v.is_finite()).count();
        if bad > 0 && first.is_none() {
            first = Some(name.to_string());
        }
        total += bad;
    }
    Ok(first.map(|name| {
        format!("it holds {total} non-finite values (NaN or infinite), the first in `{name}`")
    }))
}

/// Copies the `model.<name>` tensors of a checkpoint into `params`, checking that every
/// parameter is present with the right shape.
pub fn restore_params(params: &Params, tensors: &HashMap<String, Tensor>) -> Result<()> {
    for (name, var) in params.named_vars() {
        let key = format!("model.{name}");
        let t = tensors.get(&key).ok_or_else(|| {
            TrainError::Checkpoint(format!(
                "checkpoint has no parameter `{name}`: it was saved from another model"
            ))
        })?;
        if t.dims() != var.dims() {
            return Err(TrainError::Checkpoint(format!(
                "parameter `{name}` has shape {:?} in the checkpoint but {:?} in the model: the config does not match the checkpoint",
                t.dims(),
                var.dims()
            )));
        }
        var.set(&t.to_dtype(var.dtype())?.to_device(var.device())?)?;
    }
    let expected = params.names().len();
    let stored = tensors.keys().filter(|k| k.starts_with("model.")).count();
    if stored != expected {
        return Err(TrainError::Checkpoint(format!(
            "checkpoint holds {stored} model parameters, the model has {expected}: the config does not match the checkpoint"
        )));
    }
    Ok(())
}
