//! The temporal-link part of a DNC memory step (link matrices, precedence, forward and backward
//! weightings) as one custom op over a flat link state, with an analytic backward.
//!
//! Composed of candle operations, the link update alone is a dozen nodes whose broadcasts read
//! and write `N x N` tensors several times over, forward and backward. Here one pass over each
//! link matrix makes the new matrix and both directional weightings, and one pass in the
//! backward makes every gradient; nothing but the inputs is kept for it.
#![allow(clippy::needless_range_loop)] // index loops mirror the equations

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Tensor};
use multiversion::multiversion;
use num_traits::Float;

use crate::real::{dot, zeros};
use crate::storage::{cpu_slice, slice, storage};

/// The link update of a DNC memory, and the flat link state it runs on.
///
/// A memory of `rows` rows with `write_heads` write heads keeps one link matrix `L` `[N, N]`
/// (zero diagonal) and one precedence weighting `p` `[N]` per write head. One step takes the
/// write weightings `w` `[B, Wh, N]` and the previous read weightings `u` `[B, R, N]` of the
/// `read_heads` read heads and computes, per write head,
///
/// - `L'[i, j] = (1 - w[i] - w[j]) L[i, j] + w[i] p[j]` for `i != j`, `L'[i, i] = 0`,
/// - `p' = (1 - sum_i w[i]) p + w`,
/// - the forward weightings `f[r] = L' u[r]` and the backward weightings `b[r] = L'^T u[r]`.
///
/// A state for `B` sequences is one flat tensor: the link state `[B, Wh, N + 1, N]` (each head's
/// matrix followed by its precedence as an extra row), then the directional weightings
/// `[B, R, 2 Wh, N]` of the step that made it (per read head, the backward weighting of every
/// write head, then the forward weighting of every write head: the order of a DNC's read modes).
/// A step reads only the link state of its input; the directional part leaves through
/// [`crate::tail`], so that the link matrices pass from one step to the next as a single
/// tensor. [`LinkStep::pack`] builds a state and [`LinkStep::links`],
/// [`LinkStep::precedence`] and [`LinkStep::directions`] take it apart, so no caller needs to
/// know the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStep {
    /// Memory rows `N`.
    pub rows: usize,
    /// Read heads `R`.
    pub read_heads: usize,
    /// Write heads `Wh`.
    pub write_heads: usize,
}

impl LinkStep {
    fn check(&self) -> candle_core::Result<()> {
        if self.rows == 0 || self.read_heads == 0 || self.write_heads == 0 {
            candle_core::bail!(
                "link step: {} rows, {} read heads, {} write heads (each must be at least 1)",
                self.rows,
                self.read_heads,
                self.write_heads
            )
        }
        Ok(())
    }

    /// Elements of the link state (matrices and precedence) for `batch` sequences.
    fn link_len(&self, batch: usize) -> usize {
        batch * self.write_heads * (self.rows + 1) * self.rows
    }

    /// Elements of the directional weightings for `batch` sequences.
    fn direction_len(&self, batch: usize) -> usize {
        batch * self.read_heads * 2 * self.write_heads * self.rows
    }

    /// Elements of the flat state for `batch` sequences.
    pub fn state_size(&self, batch: usize) -> usize {
        self.link_len(batch) + self.direction_len(batch)
    }

    /// The batch size of a flat state.
    fn batch_of(&self, state: &Tensor) -> candle_core::Result<usize> {
        self.check()?;
        let per = self.state_size(1);
        let len = state.dims1()?;
        if len % per != 0 {
            candle_core::bail!("link step: a state of {len} elements, not a multiple of {per}")
        }
        Ok(len / per)
    }

    /// The flat state holding `links` `[B, Wh, N, N]` and `precedence` `[B, Wh, N]`, with zero
    /// directional weightings. Differentiable in both.
    pub fn pack(&self, links: &Tensor, precedence: &Tensor) -> candle_core::Result<Tensor> {
        self.check()?;
        let (n, wh) = (self.rows, self.write_heads);
        let b = links.dim(0)?;
        for (name, t, want) in [
            ("links", links, vec![b, wh, n, n]),
            ("precedence", precedence, vec![b, wh, n]),
        ] {
            if t.dims() != want.as_slice() {
                candle_core::bail!(
                    "link state: {name} has shape {:?}, expected {want:?}",
                    t.dims()
                )
            }
        }
        let directions = Tensor::zeros(self.direction_len(b), links.dtype(), links.device())?;
        Tensor::cat(
            &[
                Tensor::cat(&[links, &precedence.unsqueeze(2)?], 2)?.flatten_all()?,
                directions,
            ],
            0,
        )
    }

    /// The link state `[B, Wh, N + 1, N]` of a flat state (a view).
    fn link_state(&self, state: &Tensor) -> candle_core::Result<Tensor> {
        let b = self.batch_of(state)?;
        state.narrow(0, 0, self.link_len(b))?.reshape((
            b,
            self.write_heads,
            self.rows + 1,
            self.rows,
        ))
    }

    /// The link matrices `[B, Wh, N, N]` of a flat state (a strided view).
    pub fn links(&self, state: &Tensor) -> candle_core::Result<Tensor> {
        self.link_state(state)?.narrow(2, 0, self.rows)
    }

    /// The precedence weightings `[B, Wh, N]` of a flat state (a strided view).
    pub fn precedence(&self, state: &Tensor) -> candle_core::Result<Tensor> {
        self.link_state(state)?.narrow(2, self.rows, 1)?.squeeze(2)
    }

    /// The directional weightings `[B, R, 2 Wh, N]` of a flat state: per read head, the backward
    /// weighting through each write head's links, then the forward weighting through each.
    /// Through [`crate::tail`] where the kernels run, a narrow elsewhere.
    pub fn directions(&self, state: &Tensor) -> candle_core::Result<Tensor> {
        let b = self.batch_of(state)?;
        let len = self.direction_len(b);
        let directions = if crate::runs_on(state) {
            crate::tail(state, len)?
        } else {
            state.narrow(0, self.link_len(b), len)?
        };
        directions.reshape((b, self.read_heads, 2 * self.write_heads, self.rows))
    }

    /// One step: the flat `state`, this step's write weightings `[B, Wh, N]` and the previous
    /// read weightings `[B, R, N]` to the next flat state, as one custom op with an analytic
    /// backward (the directional part of `state` is not an input: its gradient is zero). CPU
    /// only, `f32` or `f64`; shapes that do not fit together are an error.
    pub fn step(
        &self,
        state: &Tensor,
        write_weights: &Tensor,
        read_weights: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let b = self.batch_of(state)?;
        for (name, t, want) in [
            (
                "write weights",
                write_weights,
                [b, self.write_heads, self.rows],
            ),
            (
                "read weights",
                read_weights,
                [b, self.read_heads, self.rows],
            ),
        ] {
            if t.dims() != want {
                candle_core::bail!(
                    "link step: {name} have shape {:?}, expected {want:?}",
                    t.dims()
                )
            }
        }
        state.contiguous()?.apply_op3(
            &write_weights.contiguous()?,
            &read_weights.contiguous()?,
            FusedLinks { dims: *self },
        )
    }
}

/// `(state, write weights [B, Wh, N], read weights [B, R, N])` to the next state (see
/// [`LinkStep`]). The backward recomputes the new link rows from the inputs as it goes, so the
/// op keeps nothing.
struct FusedLinks {
    dims: LinkStep,
}

/// Offsets of one batch element's pieces.
#[derive(Clone, Copy)]
struct Sizes {
    n: usize,
    r: usize,
    wh: usize,
}

impl Sizes {
    /// One head's link state: `N` link rows and the precedence row.
    fn head(&self) -> usize {
        (self.n + 1) * self.n
    }

    /// One element's link state.
    fn links(&self) -> usize {
        self.wh * self.head()
    }

    /// One element's directional weightings.
    fn directions(&self) -> usize {
        self.r * 2 * self.wh * self.n
    }

    /// Where read head `r`'s backward weighting through write head `h` starts in an element's
    /// directional weightings; its forward weighting starts `wh * n` later.
    fn backward_at(&self, r: usize, h: usize) -> usize {
        (r * 2 * self.wh + h) * self.n
    }
}

/// Appends row `i` of `L'` to `out`: `(1 - w[i] - w[j]) L[i, j] + w[i] p[j]`, zero at `j = i`.
#[inline(always)]
fn push_row<T: Float>(i: usize, l_row: &[T], w: &[T], p: &[T], out: &mut Vec<T>) {
    let wi = w[i];
    let keep = T::one() - wi;
    let start = out.len();
    out.extend((l_row.iter().zip(w).zip(p)).map(|((&l, &wj), &pj)| (keep - wj) * l + wi * pj));
    out[start + i] = T::zero();
}

/// One batch element's forward: `prev` its link state `[Wh*(N+1)*N]`, `w` `[Wh*N]`, `u`
/// `[R*N]`; appends the new link state to `links` and adds the directional weightings to `dirs`
/// (which must hold zeros).
#[multiversion(targets("x86_64+avx2+fma"))]
fn forward_one<T: Float>(
    s: Sizes,
    prev: &[T],
    w: &[T],
    u: &[T],
    links: &mut Vec<T>,
    dirs: &mut [T],
) {
    let n = s.n;
    for h in 0..s.wh {
        let (l, p) = prev[h * s.head()..(h + 1) * s.head()].split_at(n * n);
        let wv = &w[h * n..(h + 1) * n];
        for i in 0..n {
            let start = links.len();
            push_row(i, &l[i * n..(i + 1) * n], wv, p, links);
            let row = &links[start..];
            for r in 0..s.r {
                let ur = &u[r * n..(r + 1) * n];
                let at = s.backward_at(r, h);
                // f[r, i] = sum_j L'[i, j] u[r, j]; b[r, :] += u[r, i] L'[i, :]
                dirs[at + s.wh * n + i] = dot(row, ur);
                let ui = ur[i];
                for (d, &x) in dirs[at..at + n].iter_mut().zip(row) {
                    *d = *d + ui * x;
                }
            }
        }
        let unwritten = T::one() - wv.iter().fold(T::zero(), |a, &x| a + x);
        links.extend((p.iter().zip(wv)).map(|(&pj, &wj)| unwritten * pj + wj));
    }
}

/// Gradients of one batch element: appends that of its link state to `g_links` and accumulates
/// into `g_w` and `g_u`. `g_out` is the gradient of the new link state, `g_dirs` that of the
/// directional weightings.
#[multiversion(targets("x86_64+avx2+fma"))]
fn backward_one<T: Float>(
    s: Sizes,
    (prev, w, u): (&[T], &[T], &[T]),
    g_out: &[T],
    g_dirs: &[T],
    g_links: &mut Vec<T>,
    g_w: &mut [T],
    g_u: &mut [T],
) {
    let n = s.n;
    let (mut row, mut g_row) = (Vec::with_capacity(n), zeros::<T>(n));
    // Column sums of G * L and of G weighted by w[i], over the rows of one head.
    let (mut col_gl, mut col_gw) = (zeros::<T>(n), zeros::<T>(n));
    for h in 0..s.wh {
        let (l, p) = prev[h * s.head()..(h + 1) * s.head()].split_at(n * n);
        let (gl_out, gp_out) = g_out[h * s.head()..(h + 1) * s.head()].split_at(n * n);
        let wv = &w[h * n..(h + 1) * n];
        let gw = &mut g_w[h * n..(h + 1) * n];
        col_gl.fill(T::zero());
        col_gw.fill(T::zero());
        for i in 0..n {
            let (wi, l_row) = (wv[i], &l[i * n..(i + 1) * n]);
            row.clear();
            push_row(i, l_row, wv, p, &mut row);
            // G[i, :] = dL'[i, :] + sum_r (df[r, i] u[r, :] + u[r, i] db[r, :]), zero at i.
            g_row.copy_from_slice(&gl_out[i * n..(i + 1) * n]);
            for r in 0..s.r {
                let ur = &u[r * n..(r + 1) * n];
                let at = s.backward_at(r, h);
                let fwd = at + s.wh * n;
                let (gb, gf) = (&g_dirs[at..at + n], &g_dirs[fwd..fwd + n]);
                let (gfi, ui) = (gf[i], ur[i]);
                for ((g, &uj), &gbj) in g_row.iter_mut().zip(ur).zip(gb) {
                    *g = *g + gfi * uj + ui * gbj;
                }
                // du[r, i] += sum_j L'[i, j] db[r, j];  du[r, :] += df[r, i] L'[i, :]
                let gu = &mut g_u[r * n..(r + 1) * n];
                gu[i] = gu[i] + dot(&row, gb);
                for (g, &x) in gu.iter_mut().zip(row.iter()) {
                    *g = *g + gfi * x;
                }
            }
            g_row[i] = T::zero();
            let keep = T::one() - wi;
            g_links.extend((g_row.iter().zip(wv)).map(|(&g, &wj)| g * (keep - wj)));
            let mut gwi = T::zero();
            for j in 0..n {
                let (g, lij) = (g_row[j], l_row[j]);
                gwi = gwi + g * (p[j] - lij);
                col_gl[j] = col_gl[j] + g * lij;
                col_gw[j] = col_gw[j] + wi * g;
            }
            gw[i] = gw[i] + gwi;
        }
        // p' = (1 - sum w) p + w
        let unwritten = T::one() - wv.iter().fold(T::zero(), |a, &x| a + x);
        let gp_dot_p = dot(gp_out, p);
        g_links.extend((col_gw.iter().zip(gp_out)).map(|(&c, &g)| c + unwritten * g));
        for j in 0..n {
            gw[j] = gw[j] - col_gl[j] + gp_out[j] - gp_dot_p;
        }
    }
}

impl FusedLinks {
    fn sizes(&self) -> Sizes {
        Sizes {
            n: self.dims.rows,
            r: self.dims.read_heads,
            wh: self.dims.write_heads,
        }
    }

    fn forward<T: Float>(&self, b: usize, state: &[T], w: &[T], u: &[T]) -> Vec<T> {
        let s = self.sizes();
        let (ll, ld) = (b * s.links(), b * s.directions());
        // The link state is appended element by element (no zeroing of the large part); the
        // directional weightings are sums, from zero.
        let mut out = Vec::with_capacity(ll + ld);
        let mut dirs = zeros::<T>(ld);
        for i in 0..b {
            forward_one(
                s,
                &state[i * s.links()..(i + 1) * s.links()],
                &w[i * s.wh * s.n..(i + 1) * s.wh * s.n],
                &u[i * s.r * s.n..(i + 1) * s.r * s.n],
                &mut out,
                &mut dirs[i * s.directions()..(i + 1) * s.directions()],
            );
        }
        out.extend_from_slice(&dirs);
        out
    }

    fn backward<T: Float + candle_core::WithDType>(
        &self,
        t: [&Tensor; 4],
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let s = self.sizes();
        let b = t[1].dim(0)?;
        let grad = t[3].contiguous()?;
        let (s_state, l_state) = t[0].storage_and_layout();
        let (s_w, l_w) = t[1].storage_and_layout();
        let (s_u, l_u) = t[2].storage_and_layout();
        let (s_grad, l_grad) = grad.storage_and_layout();
        let (state, w, u, grad) = (
            cpu_slice::<T>(&s_state, l_state)?,
            cpu_slice::<T>(&s_w, l_w)?,
            cpu_slice::<T>(&s_u, l_u)?,
            cpu_slice::<T>(&s_grad, l_grad)?,
        );
        let ll = b * s.links();
        let mut g_state = Vec::with_capacity(state.len());
        let (mut g_w, mut g_u) = (zeros::<T>(w.len()), zeros::<T>(u.len()));
        let (wn, rn) = (s.wh * s.n, s.r * s.n);
        for i in 0..b {
            let (li, di) = (
                i * s.links()..(i + 1) * s.links(),
                ll + i * s.directions()..ll + (i + 1) * s.directions(),
            );
            backward_one(
                s,
                (
                    &state[li.clone()],
                    &w[i * wn..(i + 1) * wn],
                    &u[i * rn..(i + 1) * rn],
                ),
                &grad[li],
                &grad[di],
                &mut g_state,
                &mut g_w[i * wn..(i + 1) * wn],
                &mut g_u[i * rn..(i + 1) * rn],
            );
        }
        // The directional part of the input state is not read: its gradient is zero.
        g_state.resize(state.len(), T::zero());
        let dev = t[0].device();
        Ok((
            Some(Tensor::from_vec(g_state, t[0].shape(), dev)?),
            Some(Tensor::from_vec(g_w, t[1].shape(), dev)?),
            Some(Tensor::from_vec(g_u, t[2].shape(), dev)?),
        ))
    }
}

impl CustomOp3 for FusedLinks {
    fn name(&self) -> &'static str {
        "ntm-fused-link-step"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let d = self.dims;
        let b = l2.shape().dims3()?.0;
        let total = d.state_size(b);
        if l1.shape().elem_count() != total
            || l2.shape().dims() != [b, d.write_heads, d.rows]
            || l3.shape().dims() != [b, d.read_heads, d.rows]
        {
            candle_core::bail!(
                "link step: state {:?}, write weights {:?} and read weights {:?} do not fit {d:?}",
                l1.shape(),
                l2.shape(),
                l3.shape()
            )
        }
        let out = match s1 {
            CpuStorage::F32(_) => {
                storage(self.forward::<f32>(b, slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?))
            }
            CpuStorage::F64(_) => {
                storage(self.forward::<f64>(b, slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?))
            }
            _ => candle_core::bail!("link step: only f32 and f64 are supported"),
        };
        Ok((out, Shape::from(total)))
    }

    fn bwd(
        &self,
        state: &Tensor,
        write_weights: &Tensor,
        read_weights: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let t = [state, write_weights, read_weights, grad];
        match state.dtype() {
            DType::F32 => self.backward::<f32>(t),
            DType::F64 => self.backward::<f64>(t),
            dt => candle_core::bail!("link step: unsupported dtype {dt:?}"),
        }
    }
}
