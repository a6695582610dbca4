//! `cargo xtask slurm-check`: the SLURM script of [`crate::slurm`] run through a real SLURM.
//!
//! [`Cluster::start`] starts a one-node cluster on this machine (munged, slurmctld and slurmd,
//! each in the foreground as a child of this process, with their config, keys, state, spool,
//! logs and pid files in one folder), and stops it again when dropped, killing anything its
//! jobs left behind. [`run`] submits a tiny sweep's job array to it, requeues one array task
//! while it trains, waits for the array, and checks what real clusters do to a sweep: the
//! requeued task resumes from its checkpoint, no two tasks share a run directory, and a report
//! built from runs copied out of two folders lists every run.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::experiment::RunSpec;
use crate::{report, slurm, Experiment, Sweep};

/// The Debian packages with the controller, the node daemon, the client commands and munge.
pub const PACKAGES: [&str; 4] = ["slurmctld", "slurmd", "slurm-client", "munge"];

/// The command that installs [`PACKAGES`] on Debian or Ubuntu.
pub fn install_command() -> String {
    format!(
        "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {}",
        PACKAGES.join(" ")
    )
}

/// The tasks of the tiny sweep, each trained with [`MODEL`] for [`SEEDS`] seeds.
pub const TASKS: [&str; 2] = ["copy", "associative-recall"];
/// The model of the tiny sweep.
pub const MODEL: &str = "lstm-ntm";
/// Seeds per task of the tiny sweep.
pub const SEEDS: usize = 2;
/// Generalisation sequences per size in the tiny sweep.
pub const EVAL_SEQUENCES: usize = 20;
/// Training sequences per run of the tiny sweep: about 7 s of a release build of `ntm` on
/// one core (a debug build takes ten times as long).
pub const SEQUENCES: u64 = 3000;
/// Overrides after each task's `quick` profile, besides the budget of `train.max_sequences`:
/// no time limit and no early stop, a metrics line every few updates so a run can be caught
/// mid-training, and checkpoints rare enough that a requeue must use the one `ntm train`
/// writes on SIGTERM.
pub const TINY_SETS: [&str; 7] = [
    "train.max_seconds=0",
    "train.target_cost=0",
    "train.batch_size=4",
    "train.val_sequences=40",
    "train.eval_every=50",
    "train.log_every=5",
    "train.checkpoint_every=100000",
];
/// The array index that is requeued while it trains.
pub const REQUEUED: usize = 0;

/// The tiny sweep: [`TASKS`] x [`MODEL`] x [`SEEDS`] from the experiment files' `quick`
/// profiles, with [`TINY_SETS`], `sequences` training sequences a run and [`EVAL_SEQUENCES`].
pub fn tiny_sweep(experiments: &[Experiment], sequences: u64) -> Result<Vec<RunSpec>, String> {
    let mut runs = Vec::new();
    for task in TASKS {
        let mut e = experiments
            .iter()
            .find(|e| e.task == task)
            .cloned()
            .ok_or_else(|| format!("no experiment file for task `{task}` in tasks/"))?;
        if !e.models.contains_key(MODEL) {
            return Err(format!(
                "the experiment file of `{task}` has no model `{MODEL}`"
            ));
        }
        e.models.retain(|m, _| m == MODEL);
        let profile = e
            .profiles
            .get_mut("quick")
            .ok_or_else(|| format!("the experiment file of `{task}` has no `quick` profile"))?;
        profile.eval_sequences = EVAL_SEQUENCES;
        profile.set.extend(TINY_SETS.iter().map(|s| s.to_string()));
        profile.set.push(format!("train.max_sequences={sequences}"));
        runs.extend(e.runs("quick", Some(SEEDS)).map_err(|e| e.to_string())?);
    }
    Ok(runs)
}

/// Where a program is: on the `PATH`, or in the `sbin` folders that a user's `PATH` often
/// lacks.
fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The SLURM and munge programs the check runs.
#[derive(Debug, Clone)]
pub struct Tools {
    munged: PathBuf,
    slurmctld: PathBuf,
    slurmd: PathBuf,
    sbatch: PathBuf,
    scontrol: PathBuf,
    scancel: PathBuf,
}

impl Tools {
    /// Finds every program, or names those that are missing.
    pub fn find() -> Result<Self, Vec<&'static str>> {
        let names = [
            "munged",
            "slurmctld",
            "slurmd",
            "sbatch",
            "scontrol",
            "scancel",
        ];
        let found: Vec<Option<PathBuf>> = names.iter().map(|n| find_tool(n)).collect();
        let missing: Vec<&'static str> = names
            .iter()
            .zip(&found)
            .filter(|(_, p)| p.is_none())
            .map(|(n, _)| *n)
            .collect();
        if !missing.is_empty() {
            return Err(missing);
        }
        let mut it = found.into_iter().flatten();
        let mut next = || it.next().unwrap_or_default();
        Ok(Self {
            munged: next(),
            slurmctld: next(),
            slurmd: next(),
            sbatch: next(),
            scontrol: next(),
            scancel: next(),
        })
    }
}

/// This machine as `slurm.conf` describes a node, from `slurmd -C`'s output: its host name and
/// a `NodeName=` line with the real CPU layout and memory, at 127.0.0.1.
pub fn node_line(slurmd_c: &str) -> Result<(String, String), String> {
    let line = slurmd_c
        .lines()
        .find(|l| l.starts_with("NodeName="))
        .ok_or_else(|| format!("`slurmd -C` printed no NodeName line: {slurmd_c:?}"))?;
    let mut name = None;
    let mut hardware = Vec::new();
    for token in line.split_whitespace() {
        let Some((key, value)) = token.split_once('=') else {
            continue;
        };
        match key {
            "NodeName" => name = Some(value.to_string()),
            "CPUs" | "Boards" | "SocketsPerBoard" | "CoresPerSocket" | "ThreadsPerCore"
            | "RealMemory" => hardware.push(token.to_string()),
            _ => {}
        }
    }
    let name = name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| format!("`slurmd -C` printed an empty NodeName: {line}"))?;
    if !hardware.iter().any(|t| t.starts_with("CPUs=")) {
        return Err(format!("`slurmd -C` printed no CPU count: {line}"));
    }
    Ok((
        name.clone(),
        format!(
            "NodeName={name} NodeAddr=127.0.0.1 {} State=UNKNOWN",
            hardware.join(" ")
        ),
    ))
}

/// What `slurm.conf` of the one-node cluster needs to know.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The folder with the cluster's state, spool, logs and pid files.
    pub dir: PathBuf,
    /// The user the daemons run as (and the jobs).
    pub user: String,
    /// This machine's host name, which slurmctld checks itself against.
    pub host: String,
    /// The `NodeName=` line from [`node_line`].
    pub node: String,
    /// slurmctld's port.
    pub ctld_port: u16,
    /// slurmd's port.
    pub slurmd_port: u16,
    /// munged's socket.
    pub munge_socket: PathBuf,
}

impl ClusterConfig {
    /// The text of `slurm.conf`: munge authentication through the cluster's own munged, no
    /// cgroups (process tracking through /proc, no task plugin), no accounting, and finished
    /// jobs kept in the controller for an hour so their states can be read back.
    pub fn slurm_conf(&self) -> String {
        let d = self.dir.display();
        let node_name = self
            .node
            .split_whitespace()
            .next()
            .and_then(|t| t.strip_prefix("NodeName="))
            .unwrap_or(&self.host);
        format!(
            "# A one-node cluster for `cargo xtask slurm-check`: everything it writes is in {d}.
ClusterName=ntmcheck
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld}
SlurmdPort={slurmd}
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={socket}
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge=3600
KillWait=30
{node}
PartitionName=check Nodes={node_name} Default=YES MaxTime=INFINITE State=UP
",
            host = self.host,
            ctld = self.ctld_port,
            slurmd = self.slurmd_port,
            user = self.user,
            socket = self.munge_socket.display(),
            node = self.node,
        )
    }
}

/// Two distinct free TCP ports on 127.0.0.1, as the OS hands them out.
fn free_ports() -> Result<(u16, u16), String> {
    let bind = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| Ok((l.local_addr()?.port(), l)))
            .map_err(|e| format!("cannot find a free port: {e}"))
    };
    // Both held at once, so they differ.
    let (a, _la) = bind()?;
    let (b, _lb) = bind()?;
    Ok((a, b))
}

/// The name of the user this process runs as.
fn user_name() -> Result<String, String> {
    let out = Command::new("id")
        .arg("-un")
        .output()
        .map_err(|e| format!("cannot run `id -un`: {e}"))?;
    let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || name.is_empty() {
        return Err("`id -un` did not print a user name".into());
    }
    Ok(name)
}

/// Sends `signal` (`TERM`, `KILL`) to the process `pid`.
fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The state and parent of the process `pid` from `/proc/PID/stat` (`S`, `R`, `Z`...).
fn stat(pid: u32) -> Option<(char, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut rest = text.rsplit_once(')')?.1.split_whitespace();
    let state = rest.next()?.chars().next()?;
    Some((state, rest.next()?.parse().ok()?))
}

/// Whether the process `pid` is still there (and not a zombie).
fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(state, _)| state != 'Z')
}

/// The last `n` lines of a file, for error messages.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A daemon this process started, with where its output goes.
struct Daemon {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

/// A one-node SLURM cluster on this machine. Dropping it stops it: see [`Cluster::stop`].
pub struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
    tools: Tools,
    node: String,
    cpus: String,
    daemons: Vec<Daemon>,
    stopped: bool,
}

impl Cluster {
    /// Starts munged, slurmctld and slurmd with everything in `dir`, and waits until the node
    /// takes jobs. `dir` is created and opened to every user for listing (munged refuses a
    /// socket in a folder that others cannot enter); only the munge key is private. On an
    /// error, whatever was started is stopped again.
    pub fn start(dir: &Path, tools: Tools, stop: &AtomicBool) -> Result<Self, String> {
        let err = |p: &Path| {
            let p = p.display().to_string();
            move |e: std::io::Error| format!("{p}: {e}")
        };
        for sub in ["state", "spool"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(err(&dir.join(sub)))?;
        }
        set_mode(dir, 0o755)?;
        let mut cluster = Self {
            dir: dir.to_path_buf(),
            conf: dir.join("slurm.conf"),
            tools,
            node: String::new(),
            cpus: String::new(),
            daemons: Vec::new(),
            stopped: false,
        };

        // munge: a fresh key, readable by its owner only, and a socket of our own.
        let key = dir.join("munge.key");
        let mut bytes = vec![0u8; 1024];
        {
            use std::io::Read;
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut bytes))
                .map_err(|e| format!("/dev/urandom: {e}"))?;
        }
        write_private(&key, &bytes)?;
        let socket = dir.join("munge.socket");
        let mut munged = Command::new(&cluster.tools.munged);
        munged
            .arg("--foreground")
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--key-file={}", key.display()))
            .arg(format!("--pid-file={}", dir.join("munged.pid").display()))
            .arg(format!("--log-file={}", dir.join("munged.log").display()))
            .arg(format!("--seed-file={}", dir.join("munged.seed").display()));
        cluster.spawn("munged", munged)?;
        cluster.wait_for(
            "munged to create its socket",
            Duration::from_secs(15),
            stop,
            |_| Ok(socket.exists()),
        )?;

        // The node as slurmd sees the hardware.
        let out = Command::new(&cluster.tools.slurmd)
            .arg("-C")
            .output()
            .map_err(|e| format!("cannot run `slurmd -C`: {e}"))?;
        let (host, node) = node_line(&String::from_utf8_lossy(&out.stdout))?;
        let (ctld_port, slurmd_port) = free_ports()?;
        let config = ClusterConfig {
            dir: dir.to_path_buf(),
            user: user_name()?,
            host: host.clone(),
            node: node.clone(),
            ctld_port,
            slurmd_port,
            munge_socket: socket,
        };
        std::fs::write(&cluster.conf, config.slurm_conf()).map_err(err(&cluster.conf))?;
        cluster.node = host.clone();
        cluster.cpus = node
            .split_whitespace()
            .find_map(|t| t.strip_prefix("CPUs="))
            .unwrap_or("?")
            .to_string();

        let mut ctld = Command::new(&cluster.tools.slurmctld);
        ctld.arg("-D").arg("-f").arg(&cluster.conf);
        cluster.spawn("slurmctld", ctld)?;
        let mut slurmd = Command::new(&cluster.tools.slurmd);
        slurmd
            .arg("-D")
            .arg("-f")
            .arg(&cluster.conf)
            .arg("-N")
            .arg(&host);
        cluster.spawn("slurmd", slurmd)?;
        cluster.wait_for(
            "the node to take jobs",
            Duration::from_secs(60),
            stop,
            |c| {
                let text = c.scontrol(&["show", "node", &c.node]).unwrap_or_default();
                Ok(text.contains("State=IDLE"))
            },
        )?;
        Ok(cluster)
    }

    /// The node's name and its CPU count.
    pub fn node(&self) -> (&str, &str) {
        (&self.node, &self.cpus)
    }

    /// The cluster's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `slurm.conf`.
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    fn spawn(&mut self, name: &'static str, mut command: Command) -> Result<(), String> {
        use std::os::unix::process::CommandExt;
        let log = self.dir.join(format!("{name}.out"));
        let file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = file
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        // A group of its own, so a Ctrl-C at the terminal reaches this process only, which
        // then stops the cluster in order.
        let child = command
            .env("SLURM_CONF", &self.conf)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        self.daemons.push(Daemon { name, child, log });
        Ok(())
    }

    /// Waits until `ready` says so, failing if a daemon ends, after `limit`, or on `stop`.
    fn wait_for(
        &mut self,
        what: &str,
        limit: Duration,
        stop: &AtomicBool,
        ready: impl Fn(&Self) -> Result<bool, String>,
    ) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if ready(self)? {
                return Ok(());
            }
            self.check_daemons()?;
            if stop.load(Ordering::SeqCst) {
                return Err("interrupted".into());
            }
            if start.elapsed() > limit {
                let logs: Vec<String> = self
                    .daemons
                    .iter()
                    .map(|d| format!("{}:\n{}", d.log.display(), tail(&d.log, 5)))
                    .collect();
                return Err(format!(
                    "waited {} s for {what}; the daemons' output:\n{}",
                    limit.as_secs(),
                    logs.join("\n")
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Fails if a daemon has ended, with the end of its output.
    pub fn check_daemons(&mut self) -> Result<(), String> {
        for d in &mut self.daemons {
            if let Ok(Some(status)) = d.child.try_wait() {
                return Err(format!(
                    "{} stopped ({status}); its output ({}):\n{}",
                    d.name,
                    d.log.display(),
                    tail(&d.log, 15)
                ));
            }
        }
        Ok(())
    }

    /// A command of the cluster: `SLURM_CONF` names its `slurm.conf`.
    pub fn command(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", &self.conf).stdin(Stdio::null());
        c
    }

    fn run_tool(&self, program: &Path, args: &[&str]) -> Result<String, String> {
        let out = self
            .command(program)
            .args(args)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
        if !out.status.success() {
            return Err(format!(
                "`{} {}` failed: {}",
                program.display(),
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `scontrol ARGS`' output.
    pub fn scontrol(&self, args: &[&str]) -> Result<String, String> {
        self.run_tool(&self.tools.scontrol, args)
    }

    /// Submits `script` with `sbatch`, with `env` added to this process's environment (which
    /// the job inherits); returns the job id.
    pub fn sbatch(&self, script: &Path, env: &[(&str, &Path)]) -> Result<String, String> {
        let mut c = self.command(&self.tools.sbatch);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c
            .arg("--parsable")
            .arg(script)
            .output()
            .map_err(|e| format!("cannot run sbatch: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let id = text.trim().split(';').next().unwrap_or("").to_string();
        if !out.status.success() || id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "sbatch failed: {}{}",
                text.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(id)
    }

    /// The array tasks of job `id` as the controller knows them, by index.
    pub fn array_tasks(&self, id: &str) -> Result<BTreeMap<usize, ArrayTask>, String> {
        Ok(parse_jobs(&self.scontrol(&["-o", "show", "job", id])?))
    }

    /// The processes that belong to this cluster: its daemons and everything SLURM started,
    /// which all inherit `SLURM_CONF` naming this cluster's config.
    fn own_processes(&self) -> Vec<u32> {
        let mut marker = b"SLURM_CONF=".to_vec();
        marker.extend_from_slice(self.conf.as_os_str().as_encoded_bytes());
        let me = std::process::id();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| pid != me && alive(pid))
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == marker))
            })
            .collect()
    }

    /// Stops the cluster: cancels every job and waits for its processes to end, stops slurmd,
    /// slurmctld and munged (SIGTERM, then SIGKILL after 15 s), and kills any process that is
    /// still left, which is an error. A second call does nothing.
    pub fn stop(&mut self) -> Result<(), String> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        // The jobs' processes: those of the cluster that are neither a daemon nor a daemon's
        // helper (slurmctld's slurmscriptd); slurmstepd leaves slurmd's process tree.
        let daemons: BTreeSet<u32> = self.daemons.iter().map(|d| d.child.id()).collect();
        let jobs = |c: &Self| -> Vec<u32> {
            c.own_processes()
                .into_iter()
                .filter(|p| {
                    !daemons.contains(p)
                        && stat(*p).is_none_or(|(_, ppid)| !daemons.contains(&ppid))
                })
                .collect()
        };
        if !jobs(self).is_empty() {
            if let Ok(user) = user_name() {
                let _ = self.run_tool(&self.tools.scancel, &["--user", &user]);
            }
            // SIGTERM, then SIGKILL after KillWait (30 s).
            let start = Instant::now();
            while !jobs(self).is_empty() && start.elapsed() < Duration::from_secs(40) {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        // slurmd first, so no job starts after the controller has gone.
        for d in self.daemons.iter_mut().rev() {
            if d.child.try_wait().ok().flatten().is_some() {
                continue;
            }
            signal(d.child.id(), "TERM");
            let start = Instant::now();
            while d.child.try_wait().ok().flatten().is_none() {
                if start.elapsed() > Duration::from_secs(15) {
                    let _ = d.child.kill();
                    let _ = d.child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let left = self.own_processes();
        for &pid in &left {
            signal(pid, "KILL");
        }
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} processes of the cluster were still running after it stopped and were killed: {left:?}",
                left.len()
            ))
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("error: {e}");
        }
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// One array task as `scontrol -o show job` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrayTask {
    /// `PENDING`, `RUNNING`, `COMPLETED`, `FAILED`...
    pub state: String,
    /// How often SLURM started it again.
    pub restarts: u32,
    /// `status:signal`, `0:0` for success.
    pub exit_code: String,
    /// Time its last start ran, `HH:MM:SS`.
    pub run_time: String,
}

impl ArrayTask {
    /// Whether the task has ended for good.
    pub fn finished(&self) -> bool {
        matches!(
            self.state.as_str(),
            "COMPLETED"
                | "FAILED"
                | "CANCELLED"
                | "TIMEOUT"
                | "NODE_FAIL"
                | "OUT_OF_MEMORY"
                | "BOOT_FAIL"
                | "DEADLINE"
                | "PREEMPTED"
        )
    }
}

/// The indices of an `ArrayTaskId`: `3`, or for tasks not started yet `2-5,7` (with an
/// optional `%N` limit).
fn array_indices(text: &str) -> Vec<usize> {
    let text = text.split('%').next().unwrap_or("");
    let mut out = Vec::new();
    for part in text.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.parse::<usize>().ok()),
        }
    }
    out
}

/// The array tasks in `scontrol -o show job`'s output (one job a line, `Key=Value` words).
pub fn parse_jobs(text: &str) -> BTreeMap<usize, ArrayTask> {
    let mut tasks = BTreeMap::new();
    for line in text.lines() {
        let fields: BTreeMap<&str, &str> = line
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .collect();
        let Some(ids) = fields.get("ArrayTaskId") else {
            continue;
        };
        let task = ArrayTask {
            state: fields.get("JobState").unwrap_or(&"?").to_string(),
            restarts: fields
                .get("Restarts")
                .and_then(|r| r.parse().ok())
                .unwrap_or(0),
            exit_code: fields.get("ExitCode").unwrap_or(&"?").to_string(),
            run_time: fields.get("RunTime").unwrap_or(&"?").to_string(),
        };
        for i in array_indices(ids) {
            tasks.insert(i, task.clone());
        }
    }
    tasks
}

/// The steps at which the sessions of the run in `dir` started; a resumed session starts at
/// its checkpoint's step. Empty while the run has written no metrics.
pub fn session_steps(dir: &Path) -> Vec<u64> {
    ntm_train::read_sessions(dir)
        .map(|s| s.iter().map(|r| r.step).collect())
        .unwrap_or_default()
}

/// The highest step of the metrics records of the run in `dir`.
fn last_step(dir: &Path) -> Option<u64> {
    ntm_train::read_metrics(dir)
        .ok()?
        .iter()
        .map(|r| r.step)
        .max()
}

/// How [`run`] runs.
pub struct CheckOptions {
    /// The `ntm` binary the jobs run.
    pub ntm: PathBuf,
    /// The experiment files (`tasks/`).
    pub tasks: PathBuf,
    /// An empty folder for the cluster, the sweep and the report.
    pub dir: PathBuf,
    /// The longest the array may take.
    pub timeout: Duration,
    /// Training sequences per run ([`SEQUENCES`] by default).
    pub sequences: u64,
}

/// What the check found.
#[derive(Debug, Default)]
pub struct CheckResult {
    /// The closing summary: the array tasks, the requeue, the report and its tables.
    pub summary: String,
    /// What went wrong; empty when the check passed.
    pub problems: Vec<String>,
}

fn label(run: &RunSpec) -> String {
    format!("{}/{}/seed{}", run.task, run.model, run.seed)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Copies the folder `from` into `to`, merging with what is there.
fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    for entry in std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))? {
        let entry = entry.map_err(|e| format!("{}: {e}", from.display()))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if src.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(|e| format!("{}: {e}", dst.display()))?;
        }
    }
    Ok(())
}

/// Runs the check on a started `cluster`: submits the tiny sweep's array, requeues index
/// [`REQUEUED`] while it trains, waits for every task, then checks the runs and builds the
/// report from copies of them. `say` hears each step as it happens; `stop` ends the wait early.
pub fn run(
    cluster: &mut Cluster,
    opts: &CheckOptions,
    say: &dyn Fn(&str),
    stop: &AtomicBool,
) -> Result<CheckResult, String> {
    let experiments = Experiment::load_dir(&opts.tasks).map_err(|e| e.to_string())?;
    let runs = tiny_sweep(&experiments, opts.sequences)?;
    let shared = opts.dir.join("shared");
    std::fs::create_dir_all(&shared).map_err(|e| format!("{}: {e}", shared.display()))?;
    let script_path = opts.dir.join("sweep.sh");
    let script = slurm::script(&runs, &shared).map_err(|e| e.to_string())?;
    std::fs::write(&script_path, &script).map_err(|e| format!("{}: {e}", script_path.display()))?;
    let job = cluster.sbatch(&script_path, &[("NTM", &opts.ntm)])?;
    say(&format!(
        "submitted job {job}: {} array tasks ({} x {MODEL} x {SEEDS} seeds), writing into {}",
        runs.len(),
        TASKS.join(" and "),
        shared.display()
    ));

    let start = Instant::now();
    let mut problems = Vec::new();
    let mut states: BTreeMap<usize, String> = BTreeMap::new();
    let mut requeued_at: Option<u64> = None;
    let mut released = false;
    let victim = shared.join(&runs[REQUEUED].dir);
    let tasks = loop {
        cluster.check_daemons()?;
        if stop.load(Ordering::SeqCst) {
            return Err("interrupted".into());
        }
        let tasks = cluster.array_tasks(&job)?;
        for (i, t) in &tasks {
            if states.get(i) != Some(&t.state) {
                let name = runs.get(*i).map(label).unwrap_or_default();
                say(&format!("index {i} ({name}): {}", t.state));
                states.insert(*i, t.state.clone());
            }
        }
        let current = tasks.get(&REQUEUED);
        // Requeued once it has trained a few steps, as preemption or a node failure would.
        if requeued_at.is_none() && current.is_some_and(|t| t.state == "RUNNING") {
            if victim.join("summary.json").exists() {
                problems.push(format!(
                    "index {REQUEUED} finished before it could be requeued; its budget is too small"
                ));
                requeued_at = Some(0);
            } else if let Some(step) = last_step(&victim) {
                cluster.scontrol(&["requeue", &format!("{job}_{REQUEUED}")])?;
                say(&format!(
                    "requeued index {REQUEUED} after step {step} (`scontrol requeue {job}_{REQUEUED}`)"
                ));
                requeued_at = Some(step);
            }
        }
        // A requeued job waits two minutes before it may start again; this one need not.
        if requeued_at.is_some_and(|s| s > 0)
            && !released
            && current.is_some_and(|t| t.state == "PENDING")
        {
            cluster.scontrol(&[
                "update",
                &format!("JobId={job}_{REQUEUED}"),
                "StartTime=now",
            ])?;
            say(&format!(
                "index {REQUEUED} is pending again; let it start now instead of in two minutes"
            ));
            released = true;
        }
        if tasks.len() == runs.len() && tasks.values().all(ArrayTask::finished) {
            break tasks;
        }
        if start.elapsed() > opts.timeout {
            return Err(format!(
                "the array did not finish within {} s; states: {states:?}",
                opts.timeout.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let elapsed = start.elapsed();

    let mut summary = String::new();
    let _ = writeln!(
        summary,
        "job {job}: {} array tasks on node {} ({} CPUs) in {:.0} s",
        runs.len(),
        cluster.node().0,
        cluster.node().1,
        elapsed.as_secs_f64()
    );
    let _ = writeln!(
        summary,
        "  index  run                                  state      restarts  exit  run time  sessions at step"
    );
    let mut own_dirs = BTreeSet::new();
    for (i, run) in runs.iter().enumerate() {
        let dir = shared.join(&run.dir);
        let log = shared.join(format!("slurm-{job}_{i}.log"));
        let sessions = session_steps(&dir);
        let Some(t) = tasks.get(&i) else {
            problems.push(format!("index {i}: SLURM does not know it"));
            continue;
        };
        let _ = writeln!(
            summary,
            "  {i:<5}  {:<35}  {:<9}  {:<8}  {:<4}  {:<8}  {}",
            label(run),
            t.state,
            t.restarts,
            t.exit_code,
            t.run_time,
            sessions
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        if t.state != "COMPLETED" || t.exit_code != "0:0" {
            problems.push(format!(
                "index {i} ({}) ended {} with exit code {}; the end of {}:\n{}",
                label(run),
                t.state,
                t.exit_code,
                log.display(),
                tail(&log, 10)
            ));
            continue;
        }
        // Run directories: each index wrote its own, and it holds the run it should.
        let summary_json: serde_json::Value =
            serde_json::from_str(&read(&dir.join("summary.json"))).unwrap_or_default();
        let names_it = summary_json.get("task").and_then(|v| v.as_str()) == Some(&run.task)
            && summary_json.get("model").and_then(|v| v.as_str()) == Some(&run.model)
            && summary_json.get("seed").and_then(|v| v.as_u64()) == Some(run.seed);
        if names_it {
            own_dirs.insert(dir.clone());
        } else {
            problems.push(format!(
                "index {i}: {} does not hold the summary of {}",
                dir.display(),
                label(run)
            ));
        }
        let log_text = read(&log);
        if i == REQUEUED {
            let resumed = sessions.len() == 2
                && sessions[0] == 0
                && requeued_at.is_some_and(|s| sessions[1] > 0 && sessions[1] >= s);
            if t.restarts != 1 || !resumed {
                problems.push(format!(
                    "index {i} was requeued after step {}: expected 1 restart and a second session from its checkpoint, got {} restarts and sessions at steps {sessions:?}",
                    requeued_at.unwrap_or(0),
                    t.restarts
                ));
            }
            for line in [
                "start 1",
                "stopped by a signal",
                "start 2",
                "resuming from its checkpoint",
            ] {
                if !log_text.contains(line) {
                    problems.push(format!(
                        "index {i}: its log {} lacks `{line}`",
                        log.display()
                    ));
                }
            }
        } else if t.restarts != 0 || sessions != [0] {
            problems.push(format!(
                "index {i}: expected one session from step 0, got {} restarts and sessions at {sessions:?}",
                t.restarts
            ));
        }
    }
    if let Err(e) = slurm::check_distinct(&runs) {
        problems.push(e.to_string());
    }
    let _ = writeln!(
        summary,
        "run directories: {} distinct, each holding the summary of its own index's run, for {} array tasks",
        own_dirs.len(),
        runs.len()
    );
    if let Some(step) = requeued_at.filter(|s| *s > 0) {
        let sessions = session_steps(&victim);
        let _ = writeln!(
            summary,
            "requeued index {REQUEUED} after step {step}: sessions started at steps {}; the second resumed from the checkpoint `ntm train` wrote on SIGTERM",
            sessions.iter().map(u64::to_string).collect::<Vec<_>>().join(" and ")
        );
    }

    let report_dir = opts.dir.join("report");
    let other = opts.dir.join("node-b");
    match merged_report(&runs, &shared, &other, &report_dir) {
        Ok((path, done, unfinished)) => {
            if done != runs.len() || unfinished != 0 {
                problems.push(format!(
                    "the report merged from two folders lists {done} finished runs and {unfinished} unfinished, expected {} and 0",
                    runs.len()
                ));
            }
            let _ = writeln!(
                summary,
                "report: {} ({done} runs, merged from {} and {})",
                path.display(),
                shared.display(),
                other.display()
            );
            for line in read(&path).lines() {
                if line.starts_with("## ") {
                    let _ = writeln!(summary, "\n{line}");
                } else if line.starts_with('|') {
                    let _ = writeln!(summary, "{line}");
                }
            }
        }
        Err(e) => problems.push(format!("building the report failed: {e}")),
    }
    Ok(CheckResult { summary, problems })
}

/// Builds a report in `report` from copies of the runs, as if they came from two machines:
/// the even indices straight from `shared`, the odd ones by way of `other`. Runs that left no
/// directory are skipped. Returns the report's path and its counts of finished and unfinished
/// runs.
fn merged_report(
    runs: &[RunSpec],
    shared: &Path,
    other: &Path,
    report_dir: &Path,
) -> Result<(PathBuf, usize, usize), String> {
    for (i, run) in runs.iter().enumerate() {
        let from = shared.join(&run.dir);
        if !from.is_dir() {
            continue;
        }
        let base = if i % 2 == 0 { report_dir } else { other };
        copy_tree(&from, &base.join(&run.dir))?;
    }
    if other.join("runs").is_dir() {
        copy_tree(&other.join("runs"), &report_dir.join("runs"))?;
    }
    let path = report::write_report(report_dir).map_err(|e| e.to_string())?;
    let (done, unfinished) = report::collect(report_dir).map_err(|e| e.to_string())?;
    Ok((path, done.len(), unfinished.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_line_keeps_the_hardware_of_slurmd_c() {
        let text = "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105\nUpTime=0-05:05:11\n";
        let (name, line) = node_line(text).unwrap();
        assert_eq!(name, "vm");
        assert_eq!(
            line,
            "NodeName=vm NodeAddr=127.0.0.1 CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105 State=UNKNOWN"
        );
        assert!(node_line("slurmd: error: no config\n").is_err());
        assert!(node_line("NodeName=vm RealMemory=100\n").is_err());
    }

    #[test]
    fn the_config_keeps_everything_in_its_folder_without_cgroups() {
        let c = ClusterConfig {
            dir: PathBuf::from("/tmp/c"),
            user: "alice".into(),
            host: "vm".into(),
            node: "NodeName=vm NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN".into(),
            ctld_port: 40001,
            slurmd_port: 40002,
            munge_socket: PathBuf::from("/tmp/c/munge.socket"),
        };
        let text = c.slurm_conf();
        for line in [
            "SlurmctldHost=vm(127.0.0.1)",
            "SlurmctldPort=40001",
            "SlurmdPort=40002",
            "SlurmUser=alice",
            "AuthInfo=socket=/tmp/c/munge.socket",
            "StateSaveLocation=/tmp/c/state",
            "SlurmdSpoolDir=/tmp/c/spool",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "MpiDefault=none",
            "NodeName=vm NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN",
            "PartitionName=check Nodes=vm Default=YES MaxTime=INFINITE State=UP",
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}`:\n{text}");
        }
        assert!(!text.to_lowercase().contains("cgroup"));
        // Every path a daemon writes is inside the folder.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            if let Some((_, v)) = l.split_once("=/") {
                assert!(v.starts_with("tmp/c/") || l.starts_with("AuthInfo"), "{l}");
            }
        }
    }

    #[test]
    fn array_tasks_are_read_from_scontrol_including_pending_ranges() {
        let text = "JobId=7 ArrayJobId=5 ArrayTaskId=0 JobName=ntm-sweep JobState=COMPLETED Reason=None Requeue=1 Restarts=1 BatchFlag=2 ExitCode=0:0 RunTime=00:00:09 TimeLimit=UNLIMITED\n\
JobId=6 ArrayJobId=5 ArrayTaskId=1 JobState=FAILED Restarts=0 ExitCode=1:0 RunTime=00:00:02\n\
JobId=5 ArrayJobId=5 ArrayTaskId=2-3%2 JobState=PENDING Restarts=0 ExitCode=0:0 RunTime=00:00:00\n";
        let tasks = parse_jobs(text);
        assert_eq!(tasks.len(), 4);
        assert_eq!(
            tasks[&0],
            ArrayTask {
                state: "COMPLETED".into(),
                restarts: 1,
                exit_code: "0:0".into(),
                run_time: "00:00:09".into()
            }
        );
        assert!(tasks[&0].finished() && tasks[&1].finished());
        assert_eq!(tasks[&1].exit_code, "1:0");
        assert_eq!(tasks[&3].state, "PENDING");
        assert!(!tasks[&2].finished());
        assert_eq!(array_indices("0,4-5"), vec![0, 4, 5]);
    }

    #[test]
    fn sessions_are_the_lines_with_a_device_and_no_loss() {
        let record = |step: u64| {
            format!(
                "{{\"step\":{step},\"sequences\":{},\"loss\":1.0,\"bits_per_seq\":3.0,\"seq_per_s\":10.0,\"wall_seconds\":1.0}}\n",
                4 * step
            )
        };
        let session = |step: u64| format!("{{\"step\":{step},\"device\":\"cpu\"}}\n");
        let tmp = tempfile::tempdir().unwrap();
        let write = |text: String| std::fs::write(tmp.path().join("metrics.jsonl"), text).unwrap();
        write(session(0) + &record(5) + &record(10) + &session(10) + &record(15));
        assert_eq!(session_steps(tmp.path()), vec![0, 10]);
        assert_eq!(last_step(tmp.path()), Some(15));
        write(session(0));
        assert_eq!(last_step(tmp.path()), None);
    }

    #[test]
    fn the_tiny_sweep_has_two_tasks_two_seeds_and_small_budgets() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tasks");
        let experiments = Experiment::load_dir(&root).unwrap();
        let runs = tiny_sweep(&experiments, 500).unwrap();
        assert_eq!(runs.len(), TASKS.len() * SEEDS);
        assert!(runs.iter().all(|r| r.model == MODEL));
        assert_eq!(runs[REQUEUED].task, TASKS[0]);
        for run in &runs {
            // The tiny budget comes last, so it wins over the profile's.
            let n = run.sets.len();
            assert_eq!(
                run.sets[n - TINY_SETS.len() - 1..n - 1],
                TINY_SETS.map(String::from)
            );
            assert_eq!(run.sets[n - 1], "train.max_sequences=500");
            assert_eq!(run.eval_sequences, EVAL_SEQUENCES);
        }
        slurm::check_distinct(&runs).unwrap();
        let copy_only: Vec<Experiment> = experiments
            .into_iter()
            .filter(|e| e.task == "copy")
            .collect();
        let err = tiny_sweep(&copy_only, SEQUENCES).unwrap_err();
        assert!(err.contains("associative-recall"), "{err}");
    }
}
