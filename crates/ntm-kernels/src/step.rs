//! A whole NTM memory step (interface activations, write-head addressing, erase and add,
//! read-head addressing, reads) as a single graph node, over a [`StepState`]; and the [`tail`]
//! op through which the reads leave that state's tensor.
#![allow(clippy::needless_range_loop)] // index loops mirror the equations

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, DType, Device, Layout, Shape, Tensor, WithDType,
};
use multiversion::multiversion;
use num_traits::Float;

use crate::address::{head_backward, head_forward, row_norms, Dims, HeadCache};
use crate::real::{dot, sigmoid_exact as sigmoid, transpose, zeros, Real};
use crate::storage::{cpu_slice, slice, storage, tensor_vec};
use crate::write::{write_append, write_one_backward};

/// The fused NTM memory step, and the [`StepState`] it runs on.
///
/// The memory has `rows x width` cells, `write_heads` write heads and `read_heads` read heads,
/// each moving by up to `shifts / 2` rows per step. [`MemoryStep::pack`] builds a state from
/// its parts and [`MemoryStep::memory`], [`MemoryStep::weights`] and [`MemoryStep::reads`] take
/// it apart, so no caller needs to know its layout.
///
/// The interface vector `[B, I]` is laid out by kind rather than by head: for the write heads,
/// keys `[W*M]`, betas `[W]`, gates `[W]`, shifts `[W*S]`, gammas `[W]`, erase vectors `[W*M]`,
/// add vectors `[W*M]`; then the same for the read heads without erase and add. The step
/// applies the activations itself: keys and adds `tanh`, betas `softplus`, gates and erases
/// `sigmoid`, shifts `softmax`, gammas `1 + softplus`. Each step, the write heads address the
/// current memory and write (every head erases, then every head adds); the read heads then
/// address and read the written memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryStep {
    /// Memory rows `N`.
    pub rows: usize,
    /// Width of a row `M`.
    pub width: usize,
    /// Read heads `R`.
    pub read_heads: usize,
    /// Write heads `W`.
    pub write_heads: usize,
    /// Shift offsets `S = 2r + 1`, odd and at most `rows`.
    pub shifts: usize,
}

impl MemoryStep {
    fn dims(&self) -> StepDims {
        StepDims {
            n: self.rows,
            m: self.width,
            r: self.read_heads,
            w: self.write_heads,
            s: self.shifts,
        }
    }

    fn check(&self) -> candle_core::Result<()> {
        if self.rows == 0
            || self.width == 0
            || self.shifts.is_multiple_of(2)
            || self.shifts > self.rows
        {
            candle_core::bail!(
                "fused memory step: {} x {} memory with {} shifts (need rows and width >= 1, an odd shift count <= rows)",
                self.rows,
                self.width,
                self.shifts
            )
        }
        Ok(())
    }

    /// Raw interface numbers per batch element.
    pub fn interface_size(&self) -> usize {
        self.dims().interface()
    }

    /// Elements of a state's tensor ([`StepState::tensor`]) for `batch` sequences: the
    /// weightings and the reads.
    pub fn state_size(&self, batch: usize) -> usize {
        let [_, lw, lr] = self.dims().parts(batch);
        lw + lr
    }

    /// The batch size of a state.
    fn batch_of(&self, state: &StepState) -> candle_core::Result<usize> {
        self.check()?;
        let per = self.state_size(1);
        let len = state.small.dims1()?;
        if per == 0 || len % per != 0 {
            candle_core::bail!(
                "fused memory step: a state of {len} elements, not a multiple of {per}"
            )
        }
        Ok(len / per)
    }

    /// The state holding `memory` `[B, N, M]`, the weightings `[B, W + R, N]` (write heads
    /// first) and the reads `[B, R * M]`. CPU only, `f32` or `f64`.
    pub fn pack(
        &self,
        memory: &Tensor,
        weights: &Tensor,
        reads: &Tensor,
    ) -> candle_core::Result<StepState> {
        self.check()?;
        let d = self.dims();
        let b = memory.dim(0)?;
        for (name, t, want) in [
            ("memory", memory, vec![b, d.n, d.m]),
            ("weights", weights, vec![b, d.w + d.r, d.n]),
            ("reads", reads, vec![b, d.r * d.m]),
        ] {
            if t.dims() != want.as_slice() {
                candle_core::bail!(
                    "memory state: {name} has shape {:?}, expected {want:?}",
                    t.dims()
                )
            }
        }
        let memory = memory.transpose(1, 2)?.flatten_all()?.contiguous()?;
        let small = Tensor::cat(&[weights.flatten_all()?, reads.flatten_all()?], 0)?;
        let cell = Arc::new(MemoryCell::default());
        // The cell shares the memory's storage; a fresh cell is unset, so this cannot fail.
        let _ = cell.memory.set(memory.detach());
        let enter = Enter { cell: cell.clone() };
        Ok(StepState {
            small: memory.apply_op2(&small.contiguous()?, enter)?,
            cell,
        })
    }

    /// The memory `[B, N, M]` of a state. Its gradient reaches the state's memory as every other
    /// use of it does.
    pub fn memory(&self, state: &StepState) -> candle_core::Result<Tensor> {
        let b = self.batch_of(state)?;
        state.small.apply_op1(Leave {
            cell: state.cell.clone(),
            shape: (b, self.rows, self.width),
        })
    }

    /// The weightings `[B, W + R, N]` of a state: the write heads', then the read heads'.
    pub fn weights(&self, state: &StepState) -> candle_core::Result<Tensor> {
        let b = self.batch_of(state)?;
        let [_, lw, _] = self.dims().parts(b);
        state
            .small
            .narrow(0, 0, lw)?
            .reshape((b, self.write_heads + self.read_heads, self.rows))
    }

    /// The read vectors `[B, R * M]` of a state.
    pub fn reads(&self, state: &StepState) -> candle_core::Result<Tensor> {
        let b = self.batch_of(state)?;
        let [_, _, lr] = self.dims().parts(b);
        tail(&state.small, lr)?.reshape((b, self.read_heads * self.width))
    }

    /// One step: the `state` and the raw `interface` `[B, I]` to the next state, as one custom
    /// op that keeps its forward intermediates for its own backward pass. The previous reads
    /// are not an input of the step (their gradient is zero). CPU only, `f32` or `f64`; shapes
    /// that do not fit together are an error.
    pub fn step(&self, state: &StepState, interface: &Tensor) -> candle_core::Result<StepState> {
        let b = self.batch_of(state)?;
        if interface.dims() != [b, self.interface_size()] {
            candle_core::bail!(
                "fused memory step: interface has shape {:?}, expected [{b}, {}]",
                interface.dims(),
                self.interface_size()
            )
        }
        let cell = Arc::new(MemoryCell::default());
        let op = FusedStep {
            dims: self.dims(),
            input: state.cell.clone(),
            output: cell.clone(),
            saved: Mutex::new(None),
        };
        let small = state
            .small
            .contiguous()?
            .apply_op2(&interface.contiguous()?, op)?;
        Ok(StepState { small, cell })
    }
}

/// A state of the fused memory step for `B` sequences: the weightings `[B, W + R, N]` (write
/// heads first) and the read vectors `[B, R * M]` as one flat tensor in candle's graph, and the
/// memory beside it.
///
/// The memory (stored `[B, M, N]`: each batch element's memory column-major, the layout the
/// kernels run fastest on) does not pass through candle's graph from step to step: candle's
/// backward pass gives every use of a tensor a zero-filled buffer of its size and an addition,
/// and for the memory, used twice per step, that traffic was a large share of the training
/// time. Its gradient goes from op to op instead, through the state's cell: every op that reads
/// a state's memory (the next step, [`MemoryStep::memory`]) adds its gradient to the cell in
/// its backward pass, and the op that made the state takes the sum in its own. That is exact
/// because candle runs a node's backward only after the backward of every node that uses its
/// output, the order its own sums of gradients rely on. [`StepState::detach`] gives the copy a
/// cell of its own, so that nothing computed from it reaches the original.
#[derive(Clone)]
pub struct StepState {
    small: Tensor,
    cell: Arc<MemoryCell>,
}

impl StepState {
    /// The part of the state in candle's graph: the weightings, then the reads, flat.
    pub fn tensor(&self) -> &Tensor {
        &self.small
    }

    /// The same state cut off from the graph: gradients of what is computed from it reach
    /// neither this state nor anything it came from.
    pub fn detach(&self) -> Self {
        let cell = MemoryCell::default();
        if let Some(memory) = self.cell.memory.get() {
            // A fresh cell is unset, so this cannot fail.
            let _ = cell.memory.set(memory.clone());
        }
        Self {
            small: self.small.detach(),
            cell: Arc::new(cell),
        }
    }
}

impl fmt::Debug for StepState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepState")
            .field("tensor", &self.small.shape())
            .field("memory", &self.cell.memory.get().map(|m| m.shape().clone()))
            .finish()
    }
}

/// The memory of one state, and the sum of its gradients during a backward pass.
#[derive(Default)]
struct MemoryCell {
    /// `[B * M * N]`, each batch element's memory column-major; set by the op that makes the
    /// state.
    memory: OnceLock<Tensor>,
    /// The gradient of `memory` from the backward passes of the ops that used it so far, a
    /// `Vec<T>` in the state's dtype; taken by the backward pass of the op that made it.
    grad: Mutex<Option<Box<dyn Any + Send>>>,
}

impl MemoryCell {
    fn memory(&self) -> candle_core::Result<&Tensor> {
        match self.memory.get() {
            Some(m) => Ok(m),
            None => candle_core::bail!("fused memory step: a state without its memory"),
        }
    }

    fn set_memory<T: WithDType>(&self, memory: Vec<T>) -> candle_core::Result<()> {
        let len = memory.len();
        // Set once, by the forward pass that made the state; a recomputation keeps the first.
        let _ = self
            .memory
            .set(Tensor::from_vec(memory, len, &Device::Cpu)?);
        Ok(())
    }

    /// Adds `g` to the gradient so far.
    fn deposit<T: Real>(&self, g: Vec<T>) -> candle_core::Result<()> {
        let mut slot = self.grad.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_mut() {
            None => *slot = Some(Box::new(g)),
            Some(sum) => match sum.downcast_mut::<Vec<T>>() {
                Some(sum) if sum.len() == g.len() => {
                    sum.iter_mut().zip(&g).for_each(|(s, &x)| *s += x);
                }
                _ => candle_core::bail!("fused memory step: memory gradients that do not match"),
            },
        }
        Ok(())
    }

    /// The gradient so far, `len` zeros if nothing used the memory; leaves the cell empty.
    fn take<T: Real>(&self, len: usize) -> candle_core::Result<Vec<T>> {
        let taken = self.grad.lock().unwrap_or_else(|e| e.into_inner()).take();
        match taken.map(|g| g.downcast::<Vec<T>>()) {
            None => Ok(zeros::<T>(len)),
            Some(Ok(g)) if g.len() == len => Ok(*g),
            Some(_) => candle_core::bail!("fused memory step: a memory gradient of another size"),
        }
    }
}

/// The last `len` elements of `x`, flattened, as one custom op whose backward writes the
/// gradient straight into a zero tensor of the input's size (`narrow`'s backward builds zero
/// padding and then concatenates it with the gradient). CPU only, `f32` or `f64`; a `len` over
/// the number of elements is an error.
pub fn tail(x: &Tensor, len: usize) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1(Tail { len })
}

/// Sizes of an NTM memory step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StepDims {
    /// Rows `N`.
    pub n: usize,
    /// Width `M`.
    pub m: usize,
    /// Read heads `R`.
    pub r: usize,
    /// Write heads `W`.
    pub w: usize,
    /// Shift offsets `S`.
    pub s: usize,
}

impl StepDims {
    fn head(&self, heads: usize) -> Dims {
        Dims {
            b: 1,
            h: heads,
            n: self.n,
            m: self.m,
            s: self.s,
        }
    }

    /// Packed activated parameters per head.
    fn p(&self) -> usize {
        self.m + self.s + 3
    }

    /// Raw interface numbers per batch element.
    pub fn interface(&self) -> usize {
        self.w * (3 * self.m + 3 + self.s) + self.r * (self.m + 3 + self.s)
    }

    /// Lengths of the three parts of the flat output for `b` batch elements: memory, weightings
    /// (write heads, then read heads), reads.
    pub fn parts(&self, b: usize) -> [usize; 3] {
        [
            b * self.n * self.m,
            b * (self.w + self.r) * self.n,
            b * self.r * self.m,
        ]
    }
}

#[inline(always)]
fn softplus<T: Float>(x: T) -> T {
    x.max(T::zero()) + (-x.abs()).exp().ln_1p()
}

/// Where one kind of head's raw numbers sit in the interface vector.
#[derive(Clone, Copy)]
struct Section {
    start: usize,
    heads: usize,
}

impl Section {
    fn key(&self, d: StepDims, h: usize) -> usize {
        self.start + h * d.m
    }
    fn beta(&self, d: StepDims, h: usize) -> usize {
        self.start + self.heads * d.m + h
    }
    fn gate(&self, d: StepDims, h: usize) -> usize {
        self.start + self.heads * (d.m + 1) + h
    }
    fn shift(&self, d: StepDims, h: usize) -> usize {
        self.start + self.heads * (d.m + 2) + h * d.s
    }
    fn gamma(&self, d: StepDims, h: usize) -> usize {
        self.start + self.heads * (d.m + 2 + d.s) + h
    }
    /// First index after the head parameters (the write heads' erase vectors follow).
    fn end(&self, d: StepDims) -> usize {
        self.start + self.heads * d.p()
    }
}

fn sections(d: StepDims) -> (Section, Section) {
    let write = Section {
        start: 0,
        heads: d.w,
    };
    let read = Section {
        start: write.end(d) + 2 * d.w * d.m,
        heads: d.r,
    };
    (write, read)
}

/// Activated head parameters `[heads * (M + S + 3)]` from the raw interface `raw`.
#[inline(always)]
fn activate<T: Real>(d: StepDims, sec: Section, raw: &[T]) -> Vec<T> {
    let (m, s, p) = (d.m, d.s, d.p());
    let mut par = zeros::<T>(sec.heads * p);
    for h in 0..sec.heads {
        let out = &mut par[h * p..(h + 1) * p];
        for j in 0..m {
            out[j] = raw[sec.key(d, h) + j].tanh();
        }
        out[m] = softplus(raw[sec.beta(d, h)]);
        out[m + 1] = sigmoid(raw[sec.gate(d, h)]);
        let logits = &raw[sec.shift(d, h)..sec.shift(d, h) + s];
        let top = logits
            .iter()
            .fold(T::neg_infinity(), |a, &x| Float::max(a, x));
        let total = logits
            .iter()
            .fold(T::zero(), |a, &x| a + (x - top).exp_fast());
        for k in 0..s {
            out[m + 2 + k] = (logits[k] - top).exp_fast() / total;
        }
        out[m + 2 + s] = T::one() + softplus(raw[sec.gamma(d, h)]);
    }
    par
}

/// Backward of [`activate`]: raw gradients from the activated ones, written into `d_raw`.
#[inline(always)]
fn activate_backward<T: Real>(
    d: StepDims,
    sec: Section,
    raw: &[T],
    par: &[T],
    d_par: &[T],
    d_raw: &mut [T],
) {
    let (m, s, p) = (d.m, d.s, d.p());
    for h in 0..sec.heads {
        let (a, g) = (&par[h * p..(h + 1) * p], &d_par[h * p..(h + 1) * p]);
        for j in 0..m {
            d_raw[sec.key(d, h) + j] = g[j] * (T::one() - a[j] * a[j]);
        }
        d_raw[sec.beta(d, h)] = g[m] * sigmoid(raw[sec.beta(d, h)]);
        d_raw[sec.gate(d, h)] = g[m + 1] * a[m + 1] * (T::one() - a[m + 1]);
        let dot = (0..s).fold(T::zero(), |acc, k| acc + g[m + 2 + k] * a[m + 2 + k]);
        for k in 0..s {
            d_raw[sec.shift(d, h) + k] = a[m + 2 + k] * (g[m + 2 + k] - dot);
        }
        d_raw[sec.gamma(d, h)] = g[m + 2 + s] * sigmoid(raw[sec.gamma(d, h)]);
    }
}

/// Erase (sigmoid) and add (tanh) vectors of the write heads, `[W * 2M]`, erase then add per head.
#[inline(always)]
fn erase_add<T: Real>(d: StepDims, write: Section, raw: &[T]) -> Vec<T> {
    let (m, base) = (d.m, write.end(d));
    let mut ea = zeros::<T>(d.w * 2 * m);
    for h in 0..d.w {
        for j in 0..m {
            ea[h * 2 * m + j] = sigmoid(raw[base + h * m + j]);
            ea[h * 2 * m + m + j] = raw[base + d.w * m + h * m + j].tanh();
        }
    }
    ea
}

/// Where one batch element's step writes its output: the written memory `[N*M]` is appended
/// to `written`; the write then read weightings `[(W + R) * N]` and the reads `[R*M]` (zero on
/// entry) go to their slices.
struct StepOut<'a, T> {
    written: &'a mut Vec<T>,
    weights: &'a mut [T],
    reads: &'a mut [T],
}

/// The forward intermediates of one batch element that are not part of the output.
struct Forward<T> {
    write_par: Vec<T>,
    read_par: Vec<T>,
    ea: Vec<T>,
    norms: Vec<T>,
    written_norms: Vec<T>,
    write_caches: Vec<HeadCache<T>>,
    read_caches: Vec<HeadCache<T>>,
}

#[multiversion(targets("x86_64+avx2+fma"))]
fn step_one<T: Real>(
    d: StepDims,
    mem: &[T],
    raw: &[T],
    prev: &[T],
    out: StepOut<'_, T>,
) -> Forward<T> {
    let (n, m, p) = (d.n, d.m, d.p());
    let (ws, rs) = sections(d);
    let write_par = activate(d, ws, raw);
    let read_par = activate(d, rs, raw);
    let ea = erase_add(d, ws, raw);
    let norms = row_norms(mem, n, m);
    let StepOut {
        written,
        weights,
        reads,
    } = out;
    let write_caches: Vec<HeadCache<T>> = (0..d.w)
        .map(|h| {
            let (par, prev) = (&write_par[h * p..(h + 1) * p], &prev[h * n..(h + 1) * n]);
            head_forward(
                d.head(d.w),
                mem,
                &norms,
                par,
                prev,
                &mut weights[h * n..(h + 1) * n],
            )
        })
        .collect();
    let start = written.len();
    write_append((n, m, d.w), mem, &weights[..d.w * n], &ea, written);
    let written = &written[start..];
    let written_norms = row_norms(written, n, m);
    let read_caches: Vec<HeadCache<T>> = (0..d.r)
        .map(|h| {
            let o = (d.w + h) * n;
            let (par, prev) = (&read_par[h * p..(h + 1) * p], &prev[o..o + n]);
            head_forward(
                d.head(d.r),
                written,
                &written_norms,
                par,
                prev,
                &mut weights[o..o + n],
            )
        })
        .collect();
    for (h, out) in reads.chunks_exact_mut(m).enumerate() {
        let w = &weights[(d.w + h) * n..(d.w + h + 1) * n];
        for (r, col) in out.iter_mut().zip(written.chunks_exact(n)) {
            *r = dot(w, col);
        }
    }
    Forward {
        write_par,
        read_par,
        ea,
        norms,
        written_norms,
        write_caches,
        read_caches,
    }
}

/// Gradients of one batch element's inputs.
struct StepGrads<'a, T> {
    memory: &'a mut [T],
    interface: &'a mut [T],
    weights: &'a mut [T],
}

#[allow(clippy::too_many_arguments)]
#[multiversion(targets("x86_64+avx2+fma"))]
fn step_one_backward<T: Real>(
    d: StepDims,
    f: &Forward<T>,
    (written, weights): (&[T], &[T]),
    mem: &[T],
    raw: &[T],
    prev: &[T],
    g_weights_out: &[T],
    g_reads: &[T],
    out: StepGrads<'_, T>,
) {
    let (n, m, p) = (d.n, d.m, d.p());
    let (ws, rs) = sections(d);
    let mut g_w = g_weights_out.to_vec();
    // `out.memory` holds the gradient of the written memory; the write's backward turns it
    // into that of the previous memory in place.
    let g_written = out.memory;

    // Reads: r_h = sum_i wr_h(i) M'(i).
    for h in 0..d.r {
        let o = (d.w + h) * n;
        let gr = &g_reads[h * m..(h + 1) * m];
        let (w, gw) = (&weights[o..o + n], &mut g_w[o..o + n]);
        let cols = written.chunks_exact(n).zip(g_written.chunks_exact_mut(n));
        for ((col, g_col), &grj) in cols.zip(gr) {
            for ((gwi, gv), (&x, &wi)) in gw.iter_mut().zip(g_col).zip(col.iter().zip(w)) {
                *gwi += grj * x;
                *gv += wi * grj;
            }
        }
    }

    // Read-head addressing of the written memory.
    let mut d_read_par = zeros::<T>(d.r * p);
    for h in 0..d.r {
        let o = (d.w + h) * n;
        head_backward(
            d.head(d.r),
            written,
            &f.written_norms,
            &f.read_par[h * p..(h + 1) * p],
            &prev[o..o + n],
            &f.read_caches[h],
            &g_w[o..o + n],
            g_written,
            &mut d_read_par[h * p..(h + 1) * p],
            &mut out.weights[o..o + n],
        );
    }

    // Erase and add.
    let mut g_ea = zeros::<T>(d.w * 2 * m);
    write_one_backward(
        n,
        m,
        d.w,
        mem,
        &weights[..d.w * n],
        &f.ea,
        g_written,
        &mut g_w[..d.w * n],
        &mut g_ea,
    );

    // Write-head addressing of the previous memory.
    let mut d_write_par = zeros::<T>(d.w * p);
    for h in 0..d.w {
        head_backward(
            d.head(d.w),
            mem,
            &f.norms,
            &f.write_par[h * p..(h + 1) * p],
            &prev[h * n..(h + 1) * n],
            &f.write_caches[h],
            &g_w[h * n..(h + 1) * n],
            g_written,
            &mut d_write_par[h * p..(h + 1) * p],
            &mut out.weights[h * n..(h + 1) * n],
        );
    }

    // Activations.
    activate_backward(d, ws, raw, &f.write_par, &d_write_par, out.interface);
    activate_backward(d, rs, raw, &f.read_par, &d_read_par, out.interface);
    let base = ws.end(d);
    for h in 0..d.w {
        for j in 0..m {
            let (e, a) = (f.ea[h * 2 * m + j], f.ea[h * 2 * m + m + j]);
            out.interface[base + h * m + j] = g_ea[h * 2 * m + j] * e * (T::one() - e);
            out.interface[base + d.w * m + h * m + j] =
                g_ea[h * 2 * m + m + j] * (T::one() - a * a);
        }
    }
}

/// One NTM memory step: `(state tensor, interface [B, I])` to the next state's tensor, where a
/// state's tensor holds the weightings `[B*(W+R)*N]` (write heads first) and the reads
/// `[B*R*M]`, and its memory `[B*M*N]` (each element's column-major) lives in the state's cell
/// (see [`StepState`]). The previous reads are not an input of the step (their gradient is
/// zero).
///
/// Each application is a fresh op that keeps its forward intermediates for its own backward
/// pass, so the backward recomputes nothing.
struct FusedStep {
    dims: StepDims,
    /// The cell of the state the step starts from: its memory is read, and its gradient added.
    input: Arc<MemoryCell>,
    /// The cell of the state the step makes: its memory is written, and its gradient taken.
    output: Arc<MemoryCell>,
    saved: Mutex<Option<Box<dyn Any + Send>>>,
}

impl FusedStep {
    /// Runs the step for every batch element; returns the written memory, the output tensor
    /// (weightings, then reads) and the intermediates the backward pass needs.
    fn forwards<T: Real>(
        &self,
        b: usize,
        mem: &[T],
        prev: &[T],
        raw: &[T],
    ) -> (Vec<T>, Vec<T>, Vec<Forward<T>>) {
        let d = self.dims;
        let [lm, lw, lr] = d.parts(b);
        let (nm, nw, nr, ni) = (d.n * d.m, (d.w + d.r) * d.n, d.r * d.m, d.interface());
        let mut written = Vec::with_capacity(lm);
        let mut out = zeros::<T>(lw + lr);
        let (weights, reads) = out.split_at_mut(lw);
        let saved = weights
            .chunks_exact_mut(nw)
            .zip(reads.chunks_exact_mut(nr))
            .enumerate()
            .map(|(i, (weights, reads))| {
                step_one(
                    d,
                    &mem[i * nm..(i + 1) * nm],
                    &raw[i * ni..(i + 1) * ni],
                    &prev[i * nw..(i + 1) * nw],
                    StepOut {
                        written: &mut written,
                        weights,
                        reads,
                    },
                )
            })
            .collect();
        (written, out, saved)
    }

    fn forward<T: Real>(&self, b: usize, prev: &[T], raw: &[T]) -> candle_core::Result<Vec<T>> {
        let memory = self.input.memory()?;
        let (s_mem, l_mem) = memory.storage_and_layout();
        let mem = cpu_slice::<T>(&s_mem, l_mem)?;
        let [lm, lw, _] = self.dims.parts(b);
        if mem.len() != lm {
            candle_core::bail!(
                "fused memory step: a memory of {} elements for {lm}",
                mem.len()
            )
        }
        let (written, out, saved) = self.forwards(b, mem, &prev[..lw], raw);
        self.output.set_memory(written)?;
        *self.saved.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(saved));
        Ok(out)
    }

    fn backward<T: Real>(
        &self,
        t: [&Tensor; 4],
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let d = self.dims;
        let b = t[1].dim(0)?;
        let grad = t[3].contiguous()?;
        let (memory, written) = (self.input.memory()?, self.output.memory()?);
        let (s_mem, l_mem) = memory.storage_and_layout();
        let (s_written, l_written) = written.storage_and_layout();
        let (s_prev, l_prev) = t[0].storage_and_layout();
        let (s_raw, l_raw) = t[1].storage_and_layout();
        let (s_res, l_res) = t[2].storage_and_layout();
        let (s_grad, l_grad) = grad.storage_and_layout();
        let (mem, written, prev, raw, res, grad) = (
            cpu_slice::<T>(&s_mem, l_mem)?,
            cpu_slice::<T>(&s_written, l_written)?,
            cpu_slice::<T>(&s_prev, l_prev)?,
            cpu_slice::<T>(&s_raw, l_raw)?,
            cpu_slice::<T>(&s_res, l_res)?,
            cpu_slice::<T>(&s_grad, l_grad)?,
        );
        let [lm, lw, _] = d.parts(b);
        let (nm, nw, nr, ni) = (d.n * d.m, (d.w + d.r) * d.n, d.r * d.m, d.interface());
        let saved = self.saved.lock().unwrap_or_else(|e| e.into_inner()).take();
        let forwards: Vec<Forward<T>> =
            match saved.and_then(|s| s.downcast::<Vec<Forward<T>>>().ok()) {
                Some(f) if f.len() == b => *f,
                // Not saved (the op was applied again): recompute; the output is `res`.
                _ => self.forwards(b, mem, &prev[..lw], raw).2,
            };
        // The gradient of the written memory from every use of it; the step's backward turns
        // each element's part into that of the previous memory in place.
        let mut g_mem = self.output.take::<T>(lm)?;
        let mut g_prev = zeros::<T>(prev.len());
        let mut g_raw = zeros::<T>(raw.len());
        for (i, f) in forwards.iter().enumerate() {
            step_one_backward(
                d,
                f,
                (&written[i * nm..(i + 1) * nm], &res[i * nw..(i + 1) * nw]),
                &mem[i * nm..(i + 1) * nm],
                &raw[i * ni..(i + 1) * ni],
                &prev[i * nw..(i + 1) * nw],
                &grad[i * nw..(i + 1) * nw],
                &grad[lw + i * nr..lw + (i + 1) * nr],
                StepGrads {
                    memory: &mut g_mem[i * nm..(i + 1) * nm],
                    interface: &mut g_raw[i * ni..(i + 1) * ni],
                    weights: &mut g_prev[i * nw..(i + 1) * nw],
                },
            );
        }
        self.input.deposit(g_mem)?;
        let dev = t[0].device();
        Ok((
            Some(Tensor::from_vec(g_prev, t[0].shape(), dev)?),
            Some(Tensor::from_vec(g_raw, t[1].shape(), dev)?),
        ))
    }
}

impl CustomOp2 for FusedStep {
    fn name(&self) -> &'static str {
        "ntm-fused-memory-step"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (b, width) = l2.shape().dims2()?;
        if width != self.dims.interface() {
            candle_core::bail!(
                "fused memory step: interface has {width} entries, expected {}",
                self.dims.interface()
            )
        }
        let [_, lw, lr] = self.dims.parts(b);
        let total = lw + lr;
        if l1.shape().elem_count() != total {
            candle_core::bail!(
                "fused memory step: state has {} elements, expected {total}",
                l1.shape().elem_count()
            )
        }
        let out = match s1 {
            CpuStorage::F32(_) => {
                storage(self.forward::<f32>(b, slice(s1, l1)?, slice(s2, l2)?)?)
            }
            CpuStorage::F64(_) => {
                storage(self.forward::<f64>(b, slice(s1, l1)?, slice(s2, l2)?)?)
            }
            _ => candle_core::bail!("fused memory step: only f32 and f64 are supported"),
        };
        Ok((out, Shape::from(total)))
    }

    fn bwd(
        &self,
        state: &Tensor,
        interface: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let t = [state, interface, res, grad];
        match state.dtype() {
            DType::F32 => self.backward::<f32>(t),
            DType::F64 => self.backward::<f64>(t),
            dt => candle_core::bail!("fused memory step: unsupported dtype {dt:?}"),
        }
    }
}

/// Where a state starts: `(memory [B*M*N], each element's column-major; the weightings and
/// reads)` to the state's tensor, a copy of the second input. The memory is already in the
/// state's cell; it is an input only so that its gradient, which the backward takes from the
/// cell, reaches it.
struct Enter {
    cell: Arc<MemoryCell>,
}

impl CustomOp2 for Enter {
    fn name(&self) -> &'static str {
        "ntm-memory-state"
    }

    fn cpu_fwd(
        &self,
        _s1: &CpuStorage,
        _l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = match s2 {
            CpuStorage::F32(_) => storage(slice::<f32>(s2, l2)?.to_vec()),
            CpuStorage::F64(_) => storage(slice::<f64>(s2, l2)?.to_vec()),
            _ => candle_core::bail!("fused memory step: only f32 and f64 are supported"),
        };
        Ok((out, l2.shape().clone()))
    }

    fn bwd(
        &self,
        memory: &Tensor,
        _small: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (len, dev) = (memory.elem_count(), memory.device());
        let g = match memory.dtype() {
            DType::F32 => Tensor::from_vec(self.cell.take::<f32>(len)?, len, dev)?,
            DType::F64 => Tensor::from_vec(self.cell.take::<f64>(len)?, len, dev)?,
            dt => candle_core::bail!("fused memory step: unsupported dtype {dt:?}"),
        };
        Ok((Some(g), Some(grad.clone())))
    }
}

/// A state's memory as a tensor `[B, N, M]`, applied to the state's tensor (so that candle
/// orders its backward before that of the op that made the state). The backward adds the
/// memory's gradient to the cell and gives the state's tensor none.
struct Leave {
    cell: Arc<MemoryCell>,
    shape: (usize, usize, usize),
}

impl Leave {
    fn forward<T: Real>(&self) -> candle_core::Result<Vec<T>> {
        let (_, n, m) = self.shape;
        let memory = self.cell.memory()?;
        let (s, l) = memory.storage_and_layout();
        Ok(transpose(cpu_slice::<T>(&s, l)?, m, n))
    }

    fn backward<T: Real>(&self, x: &Tensor, grad: &Tensor) -> candle_core::Result<Tensor> {
        let (_, n, m) = self.shape;
        self.cell
            .deposit(transpose(&tensor_vec::<T>(grad)?, n, m))?;
        x.zeros_like()
    }
}

impl CustomOp1 for Leave {
    fn name(&self) -> &'static str {
        "ntm-memory-of-state"
    }

    fn cpu_fwd(&self, s: &CpuStorage, _l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = match s {
            CpuStorage::F32(_) => storage(self.forward::<f32>()?),
            CpuStorage::F64(_) => storage(self.forward::<f64>()?),
            _ => candle_core::bail!("fused memory step: only f32 and f64 are supported"),
        };
        Ok((out, Shape::from(self.shape)))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        match x.dtype() {
            DType::F32 => self.backward::<f32>(x, grad).map(Some),
            DType::F64 => self.backward::<f64>(x, grad).map(Some),
            dt => candle_core::bail!("fused memory step: unsupported dtype {dt:?}"),
        }
    }
}

/// The last `len` elements of a flat tensor. The backward writes the gradient straight into
/// a zero tensor of the input's size, where `narrow`'s backward builds zero padding and then
/// concatenates it with the gradient.
pub(crate) struct Tail {
    pub len: usize,
}

impl Tail {
    fn backward<T: WithDType>(&self, x: &Tensor, grad: &Tensor) -> candle_core::Result<Tensor> {
        let total = x.elem_count();
        let mut g = vec![T::zero(); total];
        g[total - self.len..].copy_from_slice(&tensor_vec::<T>(grad)?);
        Tensor::from_vec(g, x.shape(), x.device())
    }
}

impl CustomOp1 for Tail {
    fn name(&self) -> &'static str {
        "ntm-tail"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let total = l.shape().elem_count();
        if self.len > total {
            candle_core::bail!("tail: {} elements of {total}", self.len)
        }
        let out = match s {
            CpuStorage::F32(_) => storage(slice::<f32>(s, l)?[total - self.len..].to_vec()),
            CpuStorage::F64(_) => storage(slice::<f64>(s, l)?[total - self.len..].to_vec()),
            _ => candle_core::bail!("tail: only f32 and f64 are supported"),
        };
        Ok((out, Shape::from(self.len)))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        match x.dtype() {
            DType::F32 => self.backward::<f32>(x, grad).map(Some),
            DType::F64 => self.backward::<f64>(x, grad).map(Some),
            dt => candle_core::bail!("tail: unsupported dtype {dt:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{tail, MemoryStep};
    use candle_core::{DType, Device, Tensor, Var};

    #[test]
    fn tail_matches_narrow_in_value_and_gradient() {
        let x = Var::new(&[1f64, -2.0, 3.0, 4.5, -5.0, 6.0, 7.0], &Device::Cpu).unwrap();
        let weights = Tensor::new(&[2f64, -3.0, 0.5], &Device::Cpu).unwrap();
        let run = |y: Tensor| {
            let loss = (&y * &weights).unwrap().sum_all().unwrap();
            let g = loss.backward().unwrap();
            let gx: Vec<f64> = g.get(x.as_tensor()).unwrap().to_vec1().unwrap();
            (y.to_vec1::<f64>().unwrap(), gx)
        };
        let tail = run(tail(x.as_tensor(), 3).unwrap());
        let narrow = run(x.as_tensor().narrow(0, 4, 3).unwrap());
        assert_eq!(tail.0, vec![-5.0, 6.0, 7.0]);
        assert_eq!(tail.1, vec![0.0, 0.0, 0.0, 0.0, 2.0, -3.0, 0.5]);
        assert_eq!(tail, narrow);
    }

    #[test]
    fn a_tail_longer_than_its_input_is_an_error() {
        let x = Tensor::new(&[1f32, 2.0], &Device::Cpu).unwrap();
        assert!(tail(&x, 3).is_err());
    }

    #[test]
    fn bad_step_sizes_are_errors() {
        let zeros = |dims: &[usize]| Tensor::zeros(dims, DType::F32, &Device::Cpu).unwrap();
        let good = MemoryStep {
            rows: 4,
            width: 2,
            read_heads: 1,
            write_heads: 1,
            shifts: 1,
        };
        let state = good
            .pack(&zeros(&[1, 4, 2]), &zeros(&[1, 2, 4]), &zeros(&[1, 2]))
            .unwrap();
        assert!(good.memory(&state).is_ok());
        for (rows, width, shifts) in [(0, 2, 1), (4, 0, 1), (4, 2, 2), (2, 2, 3)] {
            let step = MemoryStep {
                rows,
                width,
                shifts,
                ..good
            };
            assert!(step.memory(&state).is_err(), "{step:?}");
            let packed = step.pack(
                &zeros(&[1, rows, width]),
                &zeros(&[1, 2, rows]),
                &zeros(&[1, width]),
            );
            assert!(packed.is_err(), "{step:?}");
        }
    }
}
