//! A projection's output split into heads, `[batch, seq, heads · head_dim]` →
//! `[batch, heads, seq, head_dim]`, with the rotary embedding applied on the way (for q and
//! k) or not (for v), as one operation: one pass forward and one backward, where burn's
//! composite under autodiff ran a transposing copy, two slices, a concatenation, two products
//! and a sum, each tracked.

use super::{f32s, flex, record};
use crate::vecmath::{min_items_per_task, written};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, backend_extension};
use burn::tensor::{Shape, Tensor};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Head split with an optional rotary embedding, as one operation.
#[backend_extension(Flex, Autodiff)]
pub trait HeadsBackend: Backend {
    /// # Shapes
    /// - x `[batch, seq, heads · head_dim]`, cos and signed_sin `[batch, 1, seq, head_dim]`
    ///   (read only when `rotate`) → `[batch, heads, seq, head_dim]`
    fn xwin_heads(
        x: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        signed_sin: FloatTensor<Self>,
        heads: usize,
        rotate: bool,
    ) -> FloatTensor<Self>;
}

/// `x` split into `heads` heads, rotated by the tables when given: equal to
/// `RotaryEmbedding::apply(x.reshape([b, s, heads, d]).swap_dims(1, 2), tables)`. The tables
/// are constants (no gradient flows to them). Check that fused ops apply
/// ([`super::fused_ops_apply`]); on another backend this panics.
///
/// # Shapes
/// - x `[batch, seq, heads · head_dim]`, tables `[batch, 1, seq, head_dim]` →
///   `[batch, heads, seq, head_dim]`
pub fn split_heads(
    x: Tensor<3>,
    heads: usize,
    tables: Option<(Tensor<4>, Tensor<4>)>,
) -> Tensor<4> {
    let rotate = tables.is_some();
    // Without rotation the tables are not read; an untracked scalar stands in for them.
    let (cos, sin) = tables.unwrap_or_else(|| {
        let none = || Tensor::zeros([1, 1, 1, 1], &x.device().inner());
        (none(), none())
    });
    let out = <burn::backend::Dispatch as HeadsBackend>::xwin_heads(
        x.into_dispatch(),
        cos.into_dispatch(),
        sin.into_dispatch(),
        heads,
        rotate,
    );
    Tensor::from_dispatch(out)
}

/// Sizes of one call.
#[derive(Debug, Clone, Copy)]
struct Dims {
    batch: usize,
    seq: usize,
    heads: usize,
    head_dim: usize,
}

impl Dims {
    fn of(x: &FlexTensor, heads: usize) -> Self {
        let shape = x.layout().shape();
        assert_eq!(shape.num_dims(), 3, "split_heads input is 3-d");
        assert_eq!(
            shape[2] % heads,
            0,
            "split_heads: width not a multiple of heads"
        );
        Self {
            batch: shape[0],
            seq: shape[1],
            heads,
            head_dim: shape[2] / heads,
        }
    }

    fn out_shape(&self) -> Shape {
        Shape::from([self.batch, self.heads, self.seq, self.head_dim])
    }

    fn in_shape(&self) -> Shape {
        Shape::from([self.batch, self.seq, self.heads * self.head_dim])
    }
}

/// The rotation tables of one call, or none.
type Tables<'a> = Option<(&'a [f32], &'a [f32])>;

/// `out[b, h, s, i] = x[b, s, h, i]·cos[b, s, i] + x[b, s, h, (i + d/2) mod d]·sin[b, s, i]`
/// (or the plain copy without tables); `inverse` computes the gradient instead:
/// `dx[b, s, h, j] = dy[b, h, s, j]·cos[j] + dy[b, h, s, j']·sin[j']` with `j' = (j + d/2) mod d`.
fn transform(d: Dims, src: &[f32], tables: Tables<'_>, inverse: bool) -> Vec<f32> {
    let (seq, heads, hd) = (d.seq, d.heads, d.head_dim);
    let half = hd / 2;
    // One task per (batch, position): it reads or writes that row of `[b, s, h·d]`.
    let rows: Vec<(usize, usize)> = (0..d.batch)
        .flat_map(|b| (0..seq).map(move |s| (b, s)))
        .collect();
    let fill = |dst: &mut [MaybeUninit<f32>]| {
        let dst_ptr = SharedOutput(dst.as_mut_ptr());
        let min_rows = min_items_per_task(heads * hd);
        rows.par_iter().with_min_len(min_rows).for_each(|&(b, s)| {
            let dst_ptr = &dst_ptr;
            let t = (b * seq + s) * hd;
            for h in 0..heads {
                let row = ((b * seq + s) * heads + h) * hd; // in [b, s, h, d]
                let head = ((b * heads + h) * seq + s) * hd; // in [b, h, s, d]
                let (from, to) = if inverse { (head, row) } else { (row, head) };
                // SAFETY: each (b, s, h) writes its own `hd` elements of `dst`, disjoint
                // across tasks; the index is within `dst` (same size as `src`).
                let out = unsafe { std::slice::from_raw_parts_mut(dst_ptr.0.add(to), hd) };
                let x = &src[from..from + hd];
                match tables {
                    None => {
                        for (o, &v) in out.iter_mut().zip(x) {
                            o.write(v);
                        }
                    }
                    Some((cos, sin)) => {
                        let (cos, sin) = (&cos[t..t + hd], &sin[t..t + hd]);
                        for (i, o) in out.iter_mut().enumerate() {
                            let j = (i + half) % hd;
                            o.write(if inverse {
                                x[i] * cos[i] + x[j] * sin[j]
                            } else {
                                x[i] * cos[i] + x[j] * sin[i]
                            });
                        }
                    }
                }
            }
        })
    };
    // SAFETY: the (b, s, h) blocks of `hd` elements cover all of `dst`, and each is written.
    unsafe { written(src.len(), fill) }
}

/// The output buffer, written by every task at disjoint places.
struct SharedOutput(*mut MaybeUninit<f32>);
// SAFETY: only used to let tasks write disjoint parts of one buffer.
unsafe impl Sync for SharedOutput {}

/// The forward pass on contiguous operands (the tables read only when `rotate`), and its sizes.
fn forward(
    x: &FlexTensor,
    (cos, sin): (&FlexTensor, &FlexTensor),
    heads: usize,
    rotate: bool,
) -> (FlexTensor, Dims) {
    let d = Dims::of(x, heads);
    let tables = rotate.then(|| (f32s(cos), f32s(sin)));
    (flex(transform(d, f32s(x), tables, false), d.out_shape()), d)
}

impl HeadsBackend for Flex {
    fn xwin_heads(
        x: FlexTensor,
        cos: FlexTensor,
        sin: FlexTensor,
        heads: usize,
        rotate: bool,
    ) -> FlexTensor {
        let (cos, sin) = (cos.to_contiguous(), sin.to_contiguous());
        forward(&x.to_contiguous(), (&cos, &sin), heads, rotate).0
    }
}

/// The backward step; its state is the tables (when rotating) and the sizes.
#[derive(Debug)]
struct HeadsBackward;

impl Backward<Flex, 1> for HeadsBackward {
    type State = (Option<(FlexTensor, FlexTensor)>, Dims);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (kept, d) = ops.state;
        let d_out = grads.consume::<Flex>(&ops.node).to_contiguous();
        let [x_node] = ops.parents;
        if let Some(node) = x_node {
            let tables = kept.as_ref().map(|(cos, sin)| (f32s(cos), f32s(sin)));
            let d_x = transform(d, f32s(&d_out), tables, true);
            grads.register::<Flex>(node.id, flex(d_x, d.in_shape()));
        }
    }
}

impl<C: CheckpointStrategy> HeadsBackend for Autodiff<Flex, C> {
    fn xwin_heads(
        x: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        signed_sin: FloatTensor<Self>,
        heads: usize,
        rotate: bool,
    ) -> FloatTensor<Self> {
        let guards = [x.node()];
        let x = x.into_primitive().to_contiguous();
        let cos = cos.into_primitive().to_contiguous();
        let sin = signed_sin.into_primitive().to_contiguous();
        let (out, d) = forward(&x, (&cos, &sin), heads, rotate);
        // Only the tables are needed backward (none without rotation).
        let kept = rotate.then_some((cos, sin));
        record::<1, _, C>(HeadsBackward, guards, out, || (kept, d))
    }
}
