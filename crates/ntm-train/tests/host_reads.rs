//! A training step reads back from the device once, whatever the model's size and the
//! sequence's length: on a GPU every read waits for the device, so a step that read one
//! scalar per parameter, or the logits of every time step, would stall it hundreds of times.

use candle_core::Device;
use ntm_train::{host_reads, RunConfig, Trainer};

fn trainer(controller: usize, rows: usize, length: usize) -> Trainer {
    let sets = [
        format!("model.controller.size={controller}"),
        format!("model.memory.rows={rows}"),
        format!("task.min_length={length}"),
        format!("task.max_length={length}"),
        "train.batch_size=2".to_string(),
        "train.val_sequences=2".to_string(),
    ];
    let config = RunConfig::resolve(Some("copy"), Some("lstm-ntm"), None, &sets).unwrap();
    Trainer::new(config, &Device::Cpu).unwrap()
}

#[test]
fn a_step_reads_from_the_device_once_whatever_the_sizes() {
    for (controller, rows, length) in [(8, 16, 2), (8, 16, 12), (64, 64, 2), (64, 64, 12)] {
        let mut t = trainer(controller, rows, length);
        let params = t.model().param_count();
        let before = host_reads();
        for _ in 0..5 {
            t.step().unwrap();
        }
        assert_eq!(
            host_reads() - before,
            5,
            "{params} parameters, length {length}: reads in 5 steps"
        );
    }
}
