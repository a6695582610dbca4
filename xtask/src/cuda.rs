//! `cargo xtask cuda-setup`: a pinned CUDA compiler toolchain, installed from NVIDIA's PyPI
//! wheels into a project-local folder, so that the `cuda` feature can be compiled (and
//! type-checked in CI) on a machine without a GPU, a driver or root access.
//!
//! The wheels hold `nvcc`, the CUDA headers (runtime, CRT, CCCL) and `libcudart`, but not the
//! driver (`libcuda`) nor cuBLAS, cuRAND or NVRTC, so a build can be checked and its kernels
//! compiled to PTX, but a `cuda` binary cannot be linked or run with this toolchain alone.
//!
//! ```
//! let toolkit = xtask::cuda::Toolkit::new(std::path::Path::new("/opt/tk"));
//! let exports = toolkit.exports("90");
//! assert!(exports.contains("export CUDA_ROOT='/opt/tk/nvidia/cu13'\n"));
//! assert!(exports.contains("export CUDA_COMPUTE_CAP=90\n"));
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The CUDA release of the pinned wheels, as `nvcc --version` prints it.
pub const CUDA_RELEASE: &str = "13.4";

/// The same release as cudarc spells it in `CUDARC_CUDA_VERSION` (major, `0`, minor, `0`).
/// cudarc 0.19 knows releases up to 13.4; a newer `nvcc` would stop its build script.
pub const CUDARC_VERSION: &str = "13040";

/// The compute capability the kernels are compiled for when none is given (sm_90, Hopper).
/// Without a GPU nothing can be detected, and candle's kernel build needs one.
pub const DEFAULT_COMPUTE_CAP: &str = "90";

/// The wheels and their exact versions. `nvidia-cuda-nvcc` depends on `nvidia-nvvm` without a
/// version, so it is pinned here too and pip runs with `--no-deps`; the CCCL wheel (Thrust,
/// CUB, libcu++, used by candle's MoE kernels) is versioned after CCCL 3.4.3, the release that
/// ships with CUDA 13.4.
pub const PINS: [&str; 5] = [
    "nvidia-cuda-nvcc==13.4.92",
    "nvidia-cuda-runtime==13.4.92",
    "nvidia-cuda-crt==13.4.92",
    "nvidia-nvvm==13.4.92",
    "nvidia-cuda-cccl==13.3.4.3.1",
];

/// The file, in the install folder, that records the pins it was installed with.
const STAMP: &str = "cuda-setup.pins";

/// An installed (or to be installed) toolchain: a `pip install --target` folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toolkit {
    /// The folder given to `pip install --target`.
    pub dir: PathBuf,
}

/// What [`install`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// The pinned versions were there already; nothing was downloaded.
    AlreadyInstalled,
    /// The wheels were downloaded and installed.
    Installed,
}

impl Toolkit {
    /// The toolchain in `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    /// The CUDA root: `bin/nvcc`, `include/`, `lib/`.
    pub fn root(&self) -> PathBuf {
        self.dir.join("nvidia").join("cu13")
    }

    /// The `nvcc` binary.
    pub fn nvcc(&self) -> PathBuf {
        self.root().join("bin").join("nvcc")
    }

    /// Whether the folder holds exactly the pinned wheels (by its stamp) and their `nvcc`.
    pub fn is_current(&self) -> bool {
        std::fs::read_to_string(self.dir.join(STAMP)).is_ok_and(|s| s == stamp_text())
            && self.nvcc().is_file()
    }

    /// Runs `nvcc --version` and checks that it is the pinned release.
    pub fn verify(&self) -> Result<(), String> {
        let nvcc = self.nvcc();
        let out = Command::new(&nvcc)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", nvcc.display()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let wanted = format!("release {CUDA_RELEASE},");
        if out.status.success() && text.contains(&wanted) {
            Ok(())
        } else {
            Err(format!(
                "{} does not report CUDA {CUDA_RELEASE}: {}",
                nvcc.display(),
                last_line(&out).as_deref().unwrap_or("no output")
            ))
        }
    }

    /// `export` lines for a POSIX shell (`eval "$(cargo xtask cuda-setup)"`): `nvcc` first on
    /// `PATH`, the CUDA root in `CUDA_ROOT` and `CUDA_PATH`, the compute capability, and the
    /// CUDA release for cudarc.
    pub fn exports(&self, compute_cap: &str) -> String {
        let root = self.root();
        let bin = quote(&root.join("bin").display().to_string());
        let root = quote(&root.display().to_string());
        format!(
            "export PATH={bin}:\"$PATH\"\n\
             export CUDA_ROOT={root}\n\
             export CUDA_PATH={root}\n\
             export CUDA_COMPUTE_CAP={compute_cap}\n\
             export CUDARC_CUDA_VERSION={CUDARC_VERSION}\n"
        )
    }
}

fn stamp_text() -> String {
    PINS.iter().map(|p| format!("{p}\n")).collect()
}

/// A single-quoted shell word.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The last `ERROR:` line of a command's stderr, else its last non-empty line, else that of
/// its stdout.
fn last_line(out: &Output) -> Option<String> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines = || stderr.lines().rev().map(str::trim);
    lines()
        .find(|l| l.starts_with("ERROR:"))
        .or_else(|| lines().find(|l| !l.is_empty()))
        .or_else(|| stdout.lines().rev().map(str::trim).find(|l| !l.is_empty()))
        .map(str::to_string)
}

/// Checks a compute capability as candle's kernel build takes it: two or three digits and an
/// optional `a` or `f` suffix (`75`, `90`, `90a`, `100a`).
pub fn check_compute_cap(cap: &str) -> Result<(), String> {
    let digits = cap.trim_end_matches(['a', 'f']);
    let suffix = cap.len() - digits.len();
    if (2..=3).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && suffix <= 1
    {
        Ok(())
    } else {
        Err(format!(
            "--compute-cap {cap}: expected a compute capability like 80, 90 or 90a"
        ))
    }
}

/// Finds a Python with pip: `python` if given, else `python3`, then `python`.
pub fn find_python(python: Option<&str>) -> Result<String, String> {
    let candidates: Vec<&str> = match python {
        Some(p) => vec![p],
        None => vec!["python3", "python"],
    };
    let mut without_pip = None;
    for py in candidates {
        let runs = Command::new(py)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| o.status.success());
        if !runs {
            continue;
        }
        let pip = Command::new(py)
            .args(["-m", "pip", "--version"])
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| o.status.success());
        if pip {
            return Ok(py.to_string());
        }
        without_pip.get_or_insert(py);
    }
    Err(match (without_pip, python) {
        (Some(py), _) => format!(
            "`{py} -m pip` does not work: the CUDA toolchain is installed from PyPI wheels and needs pip (install the python3-pip package)"
        ),
        (None, Some(py)) => format!("cannot run `{py}`: the CUDA toolchain is installed from PyPI wheels and needs Python 3 with pip"),
        (None, None) => "no python3 found: the CUDA toolchain is installed from PyPI wheels and needs Python 3 with pip".into(),
    })
}

/// Installs the pinned wheels into `toolkit.dir` with `python -m pip install --target`, unless
/// they are there already. The wheels go to a sibling `.partial` folder first, which replaces
/// `toolkit.dir` only once `nvcc` runs and reports the pinned release, so an interrupted
/// download never leaves a half toolchain behind that looks installed.
pub fn install(toolkit: &Toolkit, python: &str) -> Result<Setup, String> {
    if toolkit.is_current() && toolkit.verify().is_ok() {
        return Ok(Setup::AlreadyInstalled);
    }
    if !cfg!(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )) {
        return Err(
            "the CUDA wheels on PyPI exist for Linux on x86_64 and aarch64 only; install the CUDA toolkit from NVIDIA instead".into(),
        );
    }
    let name = toolkit
        .dir
        .file_name()
        .ok_or_else(|| format!("{}: not a folder name", toolkit.dir.display()))?;
    let mut partial_name = name.to_os_string();
    partial_name.push(".partial");
    let partial = toolkit.dir.with_file_name(partial_name);
    remove(&partial)?;
    std::fs::create_dir_all(&partial).map_err(|e| format!("{}: {e}", partial.display()))?;

    let out = Command::new(python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-input",
            "--no-deps",
            "--only-binary=:all:",
            "--target",
        ])
        .arg(&partial)
        .args(PINS)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `{python} -m pip`: {e}"))?;
    if !out.status.success() {
        let why = last_line(&out).unwrap_or_else(|| "no output".into());
        let _ = remove(&partial);
        return Err(format!(
            "pip could not install the CUDA {CUDA_RELEASE} wheels (is the package index reachable?): {why}"
        ));
    }
    let staged = Toolkit::new(&partial);
    if let Err(e) = staged.verify() {
        let _ = remove(&partial);
        return Err(e);
    }
    std::fs::write(partial.join(STAMP), stamp_text())
        .map_err(|e| format!("{}: {e}", partial.join(STAMP).display()))?;
    remove(&toolkit.dir)?;
    std::fs::rename(&partial, &toolkit.dir).map_err(|e| {
        format!(
            "cannot move {} to {}: {e}",
            partial.display(),
            toolkit.dir.display()
        )
    })?;
    Ok(Setup::Installed)
}

/// Removes a folder and everything in it, if it exists.
fn remove(dir: &Path) -> Result<(), String> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove {}: {e}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_quote_paths_and_keep_the_old_path() {
        let tk = Toolkit::new(Path::new("/a b/it's"));
        let e = tk.exports("80");
        assert!(e.starts_with("export PATH='/a b/it'\\''s/nvidia/cu13/bin':\"$PATH\"\n"));
        assert!(e.contains("export CUDA_PATH='/a b/it'\\''s/nvidia/cu13'\n"));
        assert!(e.contains("export CUDA_COMPUTE_CAP=80\n"));
        assert!(e.ends_with("export CUDARC_CUDA_VERSION=13040\n"));
    }

    #[test]
    fn compute_caps() {
        for ok in ["75", "80", "90", "90a", "100a", "120f"] {
            assert!(check_compute_cap(ok).is_ok(), "{ok}");
        }
        for bad in ["", "9", "sm_90", "90aa", "1000", "a", "9.0"] {
            assert!(check_compute_cap(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pins_agree_with_the_release() {
        let nvcc = PINS[0].strip_prefix("nvidia-cuda-nvcc==").unwrap();
        assert!(nvcc.starts_with(&format!("{CUDA_RELEASE}.")));
        let (major, minor) = CUDA_RELEASE.split_once('.').unwrap();
        assert_eq!(CUDARC_VERSION, format!("{major}0{minor}0"));
        for pin in &PINS[1..4] {
            assert!(pin.ends_with(&format!("=={nvcc}")), "{pin}");
        }
    }

    #[test]
    fn an_empty_or_stale_folder_is_not_current() {
        let dir = tempfile::tempdir().unwrap();
        let tk = Toolkit::new(dir.path());
        assert!(!tk.is_current());
        std::fs::create_dir_all(tk.nvcc().parent().unwrap()).unwrap();
        std::fs::write(tk.nvcc(), "").unwrap();
        std::fs::write(dir.path().join(STAMP), "nvidia-cuda-nvcc==13.0.48\n").unwrap();
        assert!(!tk.is_current());
        std::fs::write(dir.path().join(STAMP), stamp_text()).unwrap();
        assert!(tk.is_current());
    }
}
