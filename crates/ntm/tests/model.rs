//! Whole-model checks: gradients against finite differences, parameter counts, determinism and
//! error paths.

use std::sync::{RwLock, RwLockReadGuard};

use candle_core::{DType, Device, Tensor, Var};
use ntm::addressing::gradcheck::{check_gradients, max_abs_diff};
use ntm::{ModelConfig, ModelRegistry, NtmError};
use ntm_memory::{MemoryConfig, NtmMemoryConfig};

/// Held for writing by the one test that flips the process-wide kernel switch, and for reading
/// by the tests that compare several runs of a model with each other, so that no run of theirs
/// changes path halfway. Every other test passes on either path.
static KERNEL_SWITCH: RwLock<()> = RwLock::new(());

fn same_path() -> RwLockReadGuard<'static, ()> {
    KERNEL_SWITCH.read().unwrap_or_else(|e| e.into_inner())
}

/// The three models of the paper.
const PAPER_MODELS: [&str; 3] = ["ff-ntm", "lstm-ntm", "lstm"];

/// The model called `name` with `layers` controller layers of `size` units and, if it has a
/// memory, the memory `mem`.
fn model(name: &str, size: usize, layers: usize, mem: &NtmMemoryConfig) -> ModelConfig {
    let mut config = ModelConfig::preset(name).unwrap();
    config.controller.size = size;
    config.controller.layers = layers;
    if config.has_memory() {
        config.memory = MemoryConfig::from_settings("ntm", mem).unwrap();
    }
    config
}

fn small(name: &str) -> ModelConfig {
    let mem = NtmMemoryConfig {
        rows: 6,
        width: 3,
        read_heads: 2,
        write_heads: 1,
        ..Default::default()
    };
    model(name, 5, 1, &mem)
}

fn inputs(steps: usize, batch: usize, width: usize, dtype: DType) -> Tensor {
    let values = ntm::params::Init::Uniform(1.0).draw(11, "inputs", steps * batch * width);
    Tensor::from_vec(values, (steps, batch, width), &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

fn gradient_check(kind: &str) {
    let _path = same_path();
    let model = small(kind)
        .build(4, 3, 7, DType::F64, &Device::Cpu)
        .unwrap();
    let x = inputs(4, 2, 4, DType::F64);
    let weights = inputs(4, 2, 3, DType::F64);
    let vars: Vec<Var> = model
        .params()
        .named_vars()
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    let report = check_gradients(
        &vars,
        || {
            let logits = model
                .forward(&x)
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            (logits * &weights)?.sum_all()
        },
        1e-6,
        24,
    )
    .unwrap();
    assert!(report.checked > 40, "{report:?}");
    assert!(report.max_error < 1e-6, "{kind}: {report:?}");
}

#[test]
fn ff_ntm_gradients_match_finite_differences() {
    gradient_check("ff-ntm");
}

#[test]
fn lstm_ntm_gradients_match_finite_differences() {
    gradient_check("lstm-ntm");
}

#[test]
fn lstm_baseline_gradients_match_finite_differences() {
    gradient_check("lstm");
}

/// Parameter count of the copy configurations, derived by hand from the architecture.
fn expected_count(
    kind: &str,
    input: usize,
    output: usize,
    size: usize,
    layers: usize,
    mem: &NtmMemoryConfig,
) -> usize {
    let (n, m, r, w, s) = (
        mem.rows,
        mem.width,
        mem.read_heads,
        mem.write_heads,
        2 * mem.shift_range + 1,
    );
    let lstm_layer = |inp: usize| 4 * size * (inp + size + 1) + 2 * size; // gates + learned h0, c0
    let ff_layer = |inp: usize| size * inp + size;
    let stack = |first_input: usize, layer: &dyn Fn(usize) -> usize| {
        (0..layers)
            .map(|i| layer(if i == 0 { first_input } else { size }))
            .sum::<usize>()
    };
    let reads = r * m;
    let interface = w * (3 * m + 3 + s) + r * (m + 3 + s);
    let heads = size * interface + interface;
    let out = (size + reads) * output + output;
    let memory_init = r * n + w * n + reads; // initial weight logits and initial reads
    match kind {
        "ff-ntm" => stack(input + reads, &ff_layer) + heads + out + memory_init,
        "lstm-ntm" => stack(input + reads, &lstm_layer) + heads + out + memory_init,
        "lstm" => stack(input, &lstm_layer) + size * output + output,
        other => panic!("no formula for {other}"),
    }
}

#[test]
fn copy_task_parameter_counts() {
    let mem = NtmMemoryConfig::default(); // 128 x 20, 1 read, 1 write head
    let cases = [
        ("ff-ntm", 100, 1, 13_536),
        ("lstm-ntm", 100, 1, 62_736),
        ("lstm", 256, 3, 1_326_600),
    ];
    for (kind, size, layers, literal) in cases {
        let config = model(kind, size, layers, &mem);
        let built = config.build(9, 8, 0, DType::F32, &Device::Cpu).unwrap();
        let formula = expected_count(kind, 9, 8, size, layers, &mem);
        assert_eq!(built.param_count(), formula, "{kind}");
        // The README's table quotes these numbers.
        assert_eq!(formula, literal, "{kind}");
    }
}

#[test]
fn multi_head_parameter_counts_follow_the_formula() {
    let mem = NtmMemoryConfig {
        rows: 32,
        width: 8,
        read_heads: 4,
        write_heads: 3,
        shift_range: 2,
        ..Default::default()
    };
    for kind in PAPER_MODELS {
        let built = model(kind, 17, 2, &mem)
            .build(5, 6, 0, DType::F32, &Device::Cpu)
            .unwrap();
        assert_eq!(
            built.param_count(),
            expected_count(kind, 5, 6, 17, 2, &mem),
            "{kind}"
        );
    }
}

#[test]
fn same_seed_same_model_different_seed_different_model() {
    let _path = same_path();
    let x = inputs(6, 3, 4, DType::F32);
    let run = |seed| -> Vec<f32> {
        let model = small("lstm-ntm")
            .build(4, 3, seed, DType::F32, &Device::Cpu)
            .unwrap();
        model
            .forward(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

#[test]
fn parameter_names_are_readable_paths() {
    let model = small("lstm-ntm")
        .build(4, 3, 0, DType::F32, &Device::Cpu)
        .unwrap();
    let names = model.params().names();
    for expected in [
        "controller.layer0.gates.weight",
        "controller.layer0.h0",
        "interface.weight",
        "memory.initial_read_weights",
        "memory.initial_reads",
        "output.bias",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
}

#[test]
fn traces_cover_every_step_and_are_distributions() {
    let model = small("ff-ntm")
        .build(4, 3, 0, DType::F32, &Device::Cpu)
        .unwrap();
    let (logits, traces) = model.forward_traced(&inputs(5, 2, 4, DType::F32)).unwrap();
    assert_eq!(logits.dims(), &[5, 2, 3]);
    assert_eq!(traces.len(), 5);
    for trace in &traces {
        assert_eq!(trace.read_weights.dims(), &[2, 2, 6]);
        let sums: Vec<f32> = trace
            .write_weights
            .sum(2)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-5));
    }
}

#[test]
fn bad_inputs_and_configs_are_errors() {
    let model = small("lstm-ntm")
        .build(4, 3, 0, DType::F32, &Device::Cpu)
        .unwrap();
    let wrong = inputs(3, 2, 5, DType::F32);
    assert!(matches!(
        model.forward(&wrong),
        Err(NtmError::InputShape { expected: 4, .. })
    ));
    let empty = Tensor::zeros((0, 2, 4), DType::F32, &Device::Cpu).unwrap();
    assert!(model.forward(&empty).is_err());
    let mut zero = ModelConfig::default();
    zero.controller.size = 0;
    assert!(matches!(
        zero.build(4, 3, 0, DType::F32, &Device::Cpu),
        Err(NtmError::Config(_))
    ));
    let registry = ModelRegistry::default();
    let unknown = registry.preset("rnn-ntm").unwrap_err().to_string();
    assert!(
        unknown.contains("rnn-ntm") && unknown.contains("lstm-ntm"),
        "{unknown}"
    );
    assert!(registry.preset("lstm-tape").is_err());
    // A model without memory takes no memory options.
    let mut baseline = ModelConfig::preset("lstm").unwrap();
    baseline.memory.options.insert("rows".into(), 3.into());
    assert!(baseline.build(4, 3, 0, DType::F32, &Device::Cpu).is_err());
}

#[test]
fn names_split_into_controller_and_memory() {
    let registry = ModelRegistry::default();
    assert_eq!(registry.split_name("lstm-ntm").unwrap(), ("lstm", "ntm"));
    assert_eq!(registry.split_name("ff").unwrap(), ("ff", "none"));
    for name in registry.names() {
        assert_eq!(registry.preset(&name).unwrap().name(), name);
    }
    assert_eq!(ModelConfig::default().name(), "lstm-ntm");
}

#[test]
fn configs_read_from_toml_and_reject_typos() {
    let config: ModelConfig = toml::from_str(
        "[controller]\nkind = \"ff\"\nsize = 256\n[memory]\nkind = \"ntm\"\nread_heads = 4\ninit = \"learned\"\n",
    )
    .unwrap();
    assert_eq!(config.name(), "ff-ntm");
    assert_eq!(config.controller.size, 256);
    let resolved = ModelRegistry::default().resolve(&config).unwrap();
    let mem: NtmMemoryConfig = resolved.memory.settings().unwrap();
    assert_eq!((mem.read_heads, mem.rows), (4, 128));
    assert!(toml::from_str::<ModelConfig>(
        "sise = 3\n[controller]\nkind = \"ff\"\n[memory]\nkind = \"ntm\"\n"
    )
    .is_err());
    let typo: ModelConfig =
        toml::from_str("[controller]\nkind = \"ff\"\n[memory]\nkind = \"ntm\"\nrowz = 3\n")
            .unwrap();
    let Err(err) = typo.build(4, 3, 0, DType::F32, &Device::Cpu) else {
        panic!("a misspelt memory option must be an error");
    };
    assert!(err.to_string().contains("rowz"), "{err}");
    let deep: ModelConfig =
        toml::from_str("[controller]\nkind = \"lstm\"\ndepth = 3\n[memory]\nkind = \"ntm\"\n")
            .unwrap();
    assert!(deep.build(4, 3, 0, DType::F32, &Device::Cpu).is_err());
}

#[test]
fn fused_and_unfused_memory_give_the_same_model() {
    /// Switches the kernels back on when dropped, even if an assertion fails.
    struct Restore;
    impl Drop for Restore {
        fn drop(&mut self) {
            ntm::kernels::set_enabled(true);
        }
    }
    let _exclusive = KERNEL_SWITCH.write().unwrap_or_else(|e| e.into_inner());
    let _restore = Restore;
    let x = inputs(5, 2, 4, DType::F64);
    let weights = inputs(5, 2, 3, DType::F64);
    let run = |config: &ModelConfig, fused: bool| {
        ntm::kernels::set_enabled(fused);
        let model = config.build(4, 3, 3, DType::F64, &Device::Cpu).unwrap();
        let loss = (model.forward(&x).unwrap() * &weights)
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        let flat: Vec<f64> = model
            .params()
            .named_vars()
            .iter()
            .flat_map(|(_, v)| {
                grads
                    .get(v.as_tensor())
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f64>()
                    .unwrap()
            })
            .collect();
        (loss.to_scalar::<f64>().unwrap(), flat)
    };
    // The small memory, the paper's 128 x 20 (whole sixteen-lane blocks in the kernels' sums),
    // and 37 rows with three write heads (a ragged last block).
    let paper = NtmMemoryConfig::default();
    let ragged = NtmMemoryConfig {
        rows: 37,
        width: 5,
        read_heads: 1,
        write_heads: 3,
        ..Default::default()
    };
    for config in [
        small("lstm-ntm"),
        model("lstm-ntm", 5, 1, &paper),
        model("lstm-ntm", 5, 1, &ragged),
    ] {
        let (fused, unfused) = (run(&config, true), run(&config, false));
        assert!(!ntm::kernels::enabled());
        // Two different computations ran: they agree to rounding, not to the last bit.
        assert_ne!(
            fused.1, unfused.1,
            "switching the kernels off changed nothing"
        );
        assert!((fused.0 - unfused.0).abs() < 1e-10 * fused.0.abs().max(1.0));
        let scale = unfused.1.iter().fold(0.0, |m: f64, g| m.max(g.abs()));
        let worst = max_abs_diff(&fused.1, &unfused.1);
        assert!(
            worst <= 1e-9 * scale.max(1.0) && !worst.is_nan(),
            "{worst} (largest gradient {scale})"
        );
    }
}

#[test]
fn dnc_models_build_count_their_parameters_and_trace_usage() {
    use ntm::dnc::DncConfig;
    let registry = ModelRegistry::default();
    assert_eq!(registry.split_name("lstm-dnc").unwrap(), ("lstm", "dnc"));
    let dnc = DncConfig {
        rows: 12,
        width: 5,
        read_heads: 3,
        write_heads: 2,
    };
    let (input, output, size) = (9, 8, 16);
    for kind in ["lstm-dnc", "ff-dnc", "gru-dnc"] {
        let mut config = ModelConfig::preset(kind).unwrap();
        config.controller.size = size;
        config.memory = ntm::dnc::memory_config(&dnc).unwrap();
        let model = config
            .build(input, output, 0, DType::F32, &Device::Cpu)
            .unwrap();
        // The DNC memory has no parameters: the controller, the interface layer (read keys and
        // strengths, write keys and strengths, erase and write vectors, free, allocation and
        // write gates, read modes) and the output layer.
        let (r, w, wh) = (dnc.read_heads, dnc.width, dnc.write_heads);
        let interface = r * w + r + wh * w + wh + 2 * wh * w + r + 2 * wh + r * (2 * wh + 1);
        assert_eq!(interface, 72);
        let controller_input = input + r * w;
        let controller = match kind {
            "lstm-dnc" => 4 * size * (controller_input + size + 1) + 2 * size,
            "ff-dnc" => size * controller_input + size,
            _ => 3 * size * (controller_input + size) + 6 * size + size, // GRU: two biases, h0
        };
        let expected = controller + (size + 1) * interface + (size + r * w + 1) * output;
        assert_eq!(model.param_count(), expected, "{kind}");
        let (logits, traces) = model
            .forward_traced(&inputs(6, 2, input, DType::F32))
            .unwrap();
        assert_eq!(logits.dims(), &[6, 2, output]);
        assert_eq!(traces.len(), 6);
        let names: Vec<&str> = traces[5].extra.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["usage", "allocation", "links", "read modes"]);
        assert_eq!(traces[5].read_weights.dims(), &[2, 3, 12]);
    }
}
