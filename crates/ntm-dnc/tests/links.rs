//! Scripted one-hot writes show up in the link matrices, and directional reads follow them.

use candle_core::{DType, Device, Tensor};
use ntm_dnc::{directional_weights, read_weighting, update_links, update_precedence};

const N: usize = 5;

fn values(x: &Tensor) -> Vec<f64> {
    x.flatten_all().unwrap().to_vec1().unwrap()
}

/// `[1, heads, N]` with head `h` one-hot at `rows[h]`, or all zero where `rows[h]` is `None`.
fn one_hot(rows: &[Option<usize>]) -> Tensor {
    let mut v = vec![0f64; rows.len() * N];
    for (h, row) in rows.iter().enumerate() {
        if let Some(i) = row {
            v[h * N + i] = 1.0;
        }
    }
    Tensor::from_vec(v, (1, rows.len(), N), &Device::Cpu).unwrap()
}

/// Runs the writes of `script` (one entry per step, one row per write head) from empty links.
fn links_after(script: &[&[Option<usize>]]) -> Tensor {
    let heads = script[0].len();
    let mut links = Tensor::zeros((1, heads, N, N), DType::F64, &Device::Cpu).unwrap();
    let mut precedence = Tensor::zeros((1, heads, N), DType::F64, &Device::Cpu).unwrap();
    for step in script {
        let w = one_hot(step);
        links = update_links(&links, &precedence, &w).unwrap();
        precedence = update_precedence(&precedence, &w).unwrap();
    }
    links
}

/// The forward and backward weightings `[heads, N]` of one read head focused on `row`.
fn follow(links: &Tensor, row: usize) -> (Vec<f64>, Vec<f64>) {
    let (f, b) = directional_weights(links, &one_hot(&[Some(row)])).unwrap();
    (values(&f), values(&b))
}

fn unit(heads: usize, h: usize, row: usize) -> Vec<f64> {
    let mut v = vec![0.0; heads * N];
    v[h * N + row] = 1.0;
    v
}

#[test]
fn a_chain_of_writes_becomes_a_chain_of_links() {
    // One write head writes rows 0, 1, 3, 2 in that order.
    let links = links_after(&[&[Some(0)], &[Some(1)], &[Some(3)], &[Some(2)]]);
    let l = values(&links);
    let linked: Vec<(usize, usize)> = (0..N * N)
        .filter(|&k| l[k] != 0.0)
        .map(|k| (k / N, k % N))
        .collect();
    // L[i, j] = 1: row i was written right after row j.
    assert_eq!(linked, vec![(1, 0), (2, 3), (3, 1)]);
    assert!(linked.iter().all(|&(i, j)| l[i * N + j] == 1.0));
    // Forward from each row reaches the next write, backward the previous one.
    for (from, next) in [(0, 1), (1, 3), (3, 2)] {
        assert_eq!(
            follow(&links, from).0,
            unit(1, 0, next),
            "forward from {from}"
        );
        assert_eq!(
            follow(&links, next).1,
            unit(1, 0, from),
            "backward from {next}"
        );
    }
    // The last row written leads nowhere forward; the first nowhere backward; row 4 was never
    // written.
    assert_eq!(follow(&links, 2).0, vec![0.0; N]);
    assert_eq!(follow(&links, 0).1, vec![0.0; N]);
    assert_eq!(follow(&links, 4), (vec![0.0; N], vec![0.0; N]));
}

#[test]
fn each_write_head_links_its_own_writes() {
    // Head 0 writes 0 then 1; head 1 writes 3 then 2, at the same steps; then a step without
    // writes leaves everything as it was.
    let links = links_after(&[&[Some(0), Some(3)], &[Some(1), Some(2)], &[None, None]]);
    let (f, _) = follow(&links, 0);
    assert_eq!(f, unit(2, 0, 1));
    let (f, _) = follow(&links, 3);
    assert_eq!(f, unit(2, 1, 2));
    let (_, b) = follow(&links, 2);
    assert_eq!(b, unit(2, 1, 3));
    // Read modes pick a direction and a head: forward through head 1 from row 3 is row 2;
    // backward through head 0 from row 1 is row 0.
    let reads = one_hot(&[Some(3), Some(1)]); // two read heads
    let (forward, backward) = directional_weights(&links, &reads).unwrap();
    let content = Tensor::zeros((1, 2, N), DType::F64, &Device::Cpu).unwrap();
    // Modes per read head: backward h0, backward h1, forward h0, forward h1, content.
    let modes = Tensor::new(
        &[[[0f64, 0., 0., 1., 0.], [1., 0., 0., 0., 0.]]],
        &Device::Cpu,
    )
    .unwrap();
    let w = values(&read_weighting(&content, &forward, &backward, &modes).unwrap());
    let mut want = vec![0.0; 2 * N];
    want[2] = 1.0;
    want[N] = 1.0;
    assert_eq!(w, want);
}

#[test]
fn overwriting_a_row_cuts_its_old_links() {
    // 0, 1, 2, then 1 again: row 1 now follows 2, and no longer follows 0.
    let links = links_after(&[&[Some(0)], &[Some(1)], &[Some(2)], &[Some(1)]]);
    let l = values(&links);
    assert_eq!(l[N], 0.0, "L[1, 0]");
    assert_eq!(l[N + 2], 1.0, "L[1, 2]");
    assert_eq!(
        l[2 * N + 1],
        0.0,
        "L[2, 1]: row 1 was rewritten, so 2 no longer follows it"
    );
}
