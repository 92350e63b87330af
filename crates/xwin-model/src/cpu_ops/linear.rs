//! `x · W` (a bias-free Linear, every projection of Llama) as one operation whose three
//! products split their work between the cores by hand.
//!
//! burn's matmul hands each product to `gemm` with its own Rayon split, which on two cores
//! reached 80–170 GFLOP/s on a layer's shapes where splitting the rows (or, for the weight
//! gradient's small output, the columns) in two and running each half on one core reached
//! 140–176 (`SHAPES=layer cargo run -p xwin-bench --example gemm_probe`). Every element is
//! still one `gemm` dot product over the same `k` in the same order, so results do not
//! depend on the split or on how rows were batched.

use super::{f32s, flex};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, backend_extension};
use burn::tensor::{Shape, Tensor};

/// A bias-free linear layer as one operation.
#[backend_extension(Flex, Autodiff)]
pub trait LinearBackend: Backend {
    /// # Shapes
    /// - x `[..., d_in]`, weight `[d_in, d_out]` → `[..., d_out]`
    fn xwin_linear(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// `x · weight` on the CPU. Check that fused ops apply ([`super::fused_ops_apply`]); on
/// another backend this panics.
///
/// # Shapes
/// - x `[..., d_in]`, weight `[d_in, d_out]` → `[..., d_out]`
pub fn linear<const D: usize>(x: Tensor<D>, weight: Tensor<2>) -> Tensor<D> {
    assert_eq!(x.dims()[D - 1], weight.dims()[0], "linear: input width");
    let out = <burn::backend::Dispatch as LinearBackend>::xwin_linear(
        x.into_dispatch(),
        weight.into_dispatch(),
    );
    Tensor::from_dispatch(out)
}

/// A matrix operand: its elements and strides (row, column) in elements.
#[derive(Clone, Copy)]
struct Operand<'a> {
    data: &'a [f32],
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Operand<'a> {
    /// A row-major matrix `width` wide.
    fn rows(data: &'a [f32], width: usize) -> Self {
        Self {
            data,
            row_stride: width,
            col_stride: 1,
        }
    }

    /// The transpose of a row-major matrix `width` wide.
    fn transposed(data: &'a [f32], width: usize) -> Self {
        Self {
            data,
            row_stride: 1,
            col_stride: width,
        }
    }
}

/// Work below this many multiply-adds runs on one core (splitting costs more than it gains).
const SPLIT_MIN: usize = 1 << 21;

/// `dst[m × n] (+)= lhs[m × k] · rhs[k × n]`, `dst` row-major; the larger of `m` and `n` is
/// cut in two halves computed on two cores.
fn matmul(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    lhs: Operand<'_>,
    rhs: Operand<'_>,
    accumulate: bool,
) {
    assert_eq!(dst.len(), m * n, "matmul output");
    let last = |o: &Operand<'_>, rows: usize, cols: usize| {
        (rows - 1) * o.row_stride + (cols - 1) * o.col_stride
    };
    assert!(
        m == 0
            || n == 0
            || k == 0
            || (last(&lhs, m, k) < lhs.data.len() && last(&rhs, k, n) < rhs.data.len()),
        "matmul operands"
    );
    if m == 0 || n == 0 {
        return;
    }
    let out = SendPtr(dst.as_mut_ptr());
    let run = |rows: std::ops::Range<usize>, cols: std::ops::Range<usize>| {
        let out = &out;
        // SAFETY: rows × cols of `dst` (row stride n), of `lhs` rows × k and `rhs` k × cols,
        // all inside their slices (checked above); concurrent calls get disjoint blocks.
        unsafe {
            gemm::gemm(
                rows.len(),
                cols.len(),
                k,
                out.0.add(rows.start * n + cols.start),
                1,
                n as isize,
                accumulate,
                lhs.data.as_ptr().add(rows.start * lhs.row_stride),
                lhs.col_stride as isize,
                lhs.row_stride as isize,
                rhs.data.as_ptr().add(cols.start * rhs.col_stride),
                rhs.col_stride as isize,
                rhs.row_stride as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    };
    if m * n * k < SPLIT_MIN || rayon::current_num_threads() < 2 {
        run(0..m, 0..n);
    } else if m >= n {
        rayon::join(|| run(0..m / 2, 0..n), || run(m / 2..m, 0..n));
    } else {
        rayon::join(|| run(0..m, 0..n / 2), || run(0..m, n / 2..n));
    }
}

/// The output buffer, shared by the two halves of a split product (disjoint blocks).
struct SendPtr(*mut f32);
// SAFETY: only ever used to let two threads write disjoint blocks of one buffer.
unsafe impl Sync for SendPtr {}

/// Rows and width of `x`'s matrix view `[rows, d_in]`.
fn rows_of(x: &FlexTensor) -> (usize, usize) {
    let shape = x.layout().shape();
    let width = shape[shape.num_dims() - 1];
    (shape.num_elements() / width.max(1), width)
}

fn forward(x: &FlexTensor, weight: &FlexTensor) -> FlexTensor {
    let (rows, d_in) = rows_of(x);
    let d_out = weight.layout().shape()[1];
    let mut y = vec![0.0f32; rows * d_out];
    matmul(
        (rows, d_out, d_in),
        &mut y,
        Operand::rows(f32s(x), d_in),
        Operand::rows(f32s(weight), d_out),
        false,
    );
    let mut dims = x.layout().shape().to_vec();
    *dims.last_mut().expect("x has dimensions") = d_out;
    flex(y, Shape::from(dims))
}

impl LinearBackend for Flex {
    fn xwin_linear(x: FlexTensor, weight: FlexTensor) -> FlexTensor {
        forward(&x.to_contiguous(), &weight.to_contiguous())
    }
}

/// The backward step; its state is the (contiguous) input and weight.
#[derive(Debug)]
struct LinearBackward;

impl Backward<Flex, 2> for LinearBackward {
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (x, weight) = ops.state;
        let d_y = grads.consume::<Flex>(&ops.node).to_contiguous();
        let (rows, d_in) = rows_of(&x);
        let d_out = weight.layout().shape()[1];
        let [x_node, weight_node] = ops.parents;
        if let Some(node) = x_node {
            // dX = dY · Wᵀ
            let mut d_x = vec![0.0f32; rows * d_in];
            matmul(
                (rows, d_in, d_out),
                &mut d_x,
                Operand::rows(f32s(&d_y), d_out),
                Operand::transposed(f32s(&weight), d_out),
                false,
            );
            grads.register::<Flex>(node.id, flex(d_x, x.layout().shape().clone()));
        }
        if let Some(node) = weight_node {
            // dW = Xᵀ · dY
            let mut d_w = vec![0.0f32; d_in * d_out];
            matmul(
                (d_in, d_out, rows),
                &mut d_w,
                Operand::transposed(f32s(&x), d_in),
                Operand::rows(f32s(&d_y), d_out),
                false,
            );
            grads.register::<Flex>(node.id, flex(d_w, weight.layout().shape().clone()));
        }
    }
}

impl<C: CheckpointStrategy> LinearBackend for Autodiff<Flex, C> {
    fn xwin_linear(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        let guards = [x.node(), weight.node()];
        let x = x.into_primitive().to_contiguous();
        let weight = weight.into_primitive().to_contiguous();
        match LinearBackward
            .prepare::<C>(guards)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = forward(&x, &weight);
                prep.finish((x, weight), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(&x, &weight)),
        }
    }
}
