//! A run directory held by one writer: an advisory lock for the whole run, stale temporary
//! files cleared on entry, and a refusal to write into a directory that is not a run.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::trainer::files;
use crate::{Result, TrainError};

/// The lock file inside a run directory. Its content names the process that holds it.
pub const LOCK: &str = ".lock";

/// A run directory this process alone writes to, until the value is dropped.
///
/// The lock is an OS advisory lock (`flock` on Unix, `LockFileEx` on Windows) on
/// [`LOCK`]: the OS releases it when the process ends, however it ends, so a lock left by a
/// dead process never blocks a later run.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    _lock: File,
}

impl RunDir {
    /// Creates `path` if needed and takes its lock; a second writer gets an error naming the
    /// process that holds it. Temporary files that an interrupted write left behind are
    /// removed: while the lock is held nobody else writes here, so any of them is stale.
    pub fn acquire(path: &Path) -> Result<Self> {
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| TrainError::Io { path: p, source }
        };
        std::fs::create_dir_all(path).map_err(io(path))?;
        let lock_path = path.join(LOCK);
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                // The holder's note is informative only; an unreadable one is not an error.
                let _ = lock.read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if holder.is_empty() {
                    "another process".to_string()
                } else {
                    holder.to_string()
                };
                return Err(TrainError::Busy {
                    path: path.to_path_buf(),
                    holder: who,
                });
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(TrainError::Io {
                    path: lock_path,
                    source,
                })
            }
        }
        let note = format!("process {}", std::process::id());
        lock.set_len(0)
            .and_then(|()| lock.rewind())
            .and_then(|()| lock.write_all(note.as_bytes()))
            .and_then(|()| lock.sync_all())
            .map_err(io(&lock_path))?;
        let dir = Self {
            path: path.to_path_buf(),
            _lock: lock,
        };
        dir.remove_stale_temporaries()?;
        Ok(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Whether the directory holds a checkpoint.
    pub fn has_checkpoint(&self) -> bool {
        self.join(files::CHECKPOINT).exists()
    }

    /// Checks that a fresh run may start here: see [`check_fresh_at`].
    pub fn check_fresh(&self) -> Result<()> {
        check_fresh_at(&self.path)
    }

    fn remove_stale_temporaries(&self) -> Result<()> {
        for name in entries(&self.path)? {
            if is_stale_temporary(&name) {
                let path = self.join(&name);
                std::fs::remove_file(&path).map_err(|source| TrainError::Io { path, source })?;
            }
        }
        Ok(())
    }
}

/// Checks that a fresh run may start in `path`: it does not exist, is empty, or holds only
/// the files of a run that never wrote a checkpoint (which then starts again from scratch),
/// beside a driver's [`files::LOG`]. Anything else (a checkpoint, a file this program does not
/// write, a `config.toml` that is not a run's) is an error, and nothing is changed. Without the
/// lock this is a courtesy check; [`RunDir::check_fresh`] makes it under the lock.
pub fn check_fresh_at(path: &Path) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let not_a_run = |why: String| TrainError::NotARun {
        path: path.to_path_buf(),
        why,
    };
    if path.join(files::CHECKPOINT).exists() {
        return Err(not_a_run(
            "it already holds a run with a checkpoint; resume it or choose another directory"
                .into(),
        ));
    }
    let run_files = [
        files::CONFIG,
        files::METRICS,
        files::SUMMARY,
        files::LOG,
        LOCK,
    ];
    for entry in entries(path)? {
        if !run_files.contains(&entry.as_str()) && !is_stale_temporary(&entry) {
            return Err(not_a_run(format!(
                "it is not empty and `{entry}` is not a file of a run; choose an empty or new directory"
            )));
        }
    }
    let config = path.join(files::CONFIG);
    if config.exists() {
        let text = std::fs::read_to_string(&config).map_err(|source| TrainError::Io {
            path: config.clone(),
            source,
        })?;
        if let Err(e) = crate::RunConfig::from_toml(&text) {
            return Err(not_a_run(format!(
                "its config.toml is not a run's ({e}); choose an empty or new directory"
            )));
        }
    }
    Ok(())
}

fn entries(path: &Path) -> Result<Vec<String>> {
    let io = |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io)? {
        names.push(
            entry
                .map_err(io)?
                .file_name()
                .to_string_lossy()
                .into_owned(),
        );
    }
    Ok(names)
}

/// Whether `name` is a temporary file of [`crate::checkpoint::write_atomic`] for one of a run's
/// files (`checkpoint.safetensors.tmp4242`): only those are removed, never a user's file.
fn is_stale_temporary(name: &str) -> bool {
    let Some((base, pid)) = name.rsplit_once(crate::checkpoint::TMP_SUFFIX) else {
        return false;
    };
    !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && [
            files::CONFIG,
            files::CHECKPOINT,
            files::METRICS,
            files::SUMMARY,
        ]
        .contains(&base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_runs_temporaries_count_as_stale() {
        assert!(is_stale_temporary("checkpoint.safetensors.tmp123"));
        assert!(is_stale_temporary("metrics.jsonl.tmp9"));
        assert!(!is_stale_temporary("checkpoint.safetensors.tmp"));
        assert!(!is_stale_temporary("notes.txt.tmp123"));
        assert!(!is_stale_temporary("checkpoint.safetensors.tmp12a"));
    }

    #[test]
    fn a_second_writer_is_refused_until_the_first_is_gone() {
        let tmp = tempfile::tempdir().unwrap();
        let first = RunDir::acquire(tmp.path()).unwrap();
        let err = RunDir::acquire(tmp.path()).unwrap_err().to_string();
        assert!(
            err.contains(&format!("process {}", std::process::id())),
            "{err}"
        );
        drop(first);
        RunDir::acquire(tmp.path()).unwrap();
    }

    #[test]
    fn fresh_runs_need_an_empty_directory_or_a_run_without_checkpoint() {
        let tmp = tempfile::tempdir().unwrap();
        let stale = tmp.path().join("checkpoint.safetensors.tmp77");
        std::fs::write(&stale, b"half a checkpoint").unwrap();
        let dir = RunDir::acquire(tmp.path()).unwrap();
        assert!(!stale.exists(), "a stale temporary file is removed");
        dir.check_fresh().unwrap();

        std::fs::write(tmp.path().join("notes.txt"), b"mine").unwrap();
        let err = dir.check_fresh().unwrap_err().to_string();
        assert!(err.contains("notes.txt"), "{err}");
        std::fs::remove_file(tmp.path().join("notes.txt")).unwrap();

        std::fs::write(tmp.path().join(files::CONFIG), b"[server]\nport = 80\n").unwrap();
        let err = dir.check_fresh().unwrap_err().to_string();
        assert!(err.contains("config.toml"), "{err}");
    }
}
