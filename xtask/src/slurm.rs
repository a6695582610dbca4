//! A SLURM job array with one index per run, instead of running anything locally.

use std::path::Path;

use crate::experiment::RunSpec;

fn quote(arg: &str) -> String {
    if arg
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./=:,".contains(c))
    {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

fn command(args: &[String]) -> String {
    ["\"$NTM\"", "--device", "\"$DEVICE\""]
        .into_iter()
        .map(str::to_string)
        .chain(args.iter().map(|a| quote(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A bash script for `sbatch`: array index `i` trains run `i` into the shared `out` folder, then
/// writes its generalisation costs and figure. `$NTM` names the binary (default `ntm`),
/// `$NTM_DEVICE` the device (default `cpu`).
pub fn script(runs: &[RunSpec], out: &Path) -> String {
    let mut s = String::new();
    s.push_str("#!/bin/bash\n");
    s.push_str("# Neural Turing Machine sweep: one array index per (task, model, seed).\n");
    s.push_str(&format!("# mkdir -p {0} && sbatch THIS_FILE; afterwards `cargo xtask report --out {0}` builds the report.\n", quote(&out.display().to_string())));
    s.push_str("#SBATCH --job-name=ntm-sweep\n");
    s.push_str(&format!(
        "#SBATCH --array=0-{}\n",
        runs.len().saturating_sub(1)
    ));
    s.push_str("#SBATCH --cpus-per-task=1\n");
    s.push_str(&format!(
        "#SBATCH --output={}/slurm-%A_%a.log\n",
        quote(&out.display().to_string())
    ));
    s.push_str("set -euo pipefail\n");
    s.push_str("NTM=\"${NTM:-ntm}\"\n");
    s.push_str("DEVICE=\"${NTM_DEVICE:-cpu}\"\n");
    s.push_str("export RAYON_NUM_THREADS=\"${SLURM_CPUS_PER_TASK:-1}\"\n");
    s.push_str("case \"$SLURM_ARRAY_TASK_ID\" in\n");
    for (i, run) in runs.iter().enumerate() {
        let dir = out.join(&run.dir);
        s.push_str(&format!(
            "  {i}) # {}/{}/seed{}\n",
            run.task, run.model, run.seed
        ));
        let resume = format!(
            "if [ -f {}/checkpoint.safetensors ]; then R=--resume; else R=; fi",
            quote(&dir.display().to_string())
        );
        s.push_str(&format!("    {resume}\n"));
        s.push_str(&format!(
            "    [ -f {}/summary.json ] || {} $R\n",
            quote(&dir.display().to_string()),
            command(&run.train_args(out))
        ));
        s.push_str(&format!(
            "    {} > {}/eval.json\n",
            command(&run.eval_args(out)),
            quote(&dir.display().to_string())
        ));
        if let Some(show) = run.show_args(out) {
            s.push_str(&format!("    {}\n", command(&show)));
        }
        s.push_str("    ;;\n");
    }
    s.push_str("  *) echo \"no run for index $SLURM_ARRAY_TASK_ID\" >&2; exit 1 ;;\nesac\n");
    s
}
