//! `x · W` (a bias-free Linear, every projection of Llama) as one operation whose three
//! products split their work between the cores by hand ([`crate::matmul::split_product`]),
//! where burn's matmul leaves the split to `gemm`'s Rayon scheduling.

use super::{f32s, flex, record};
use crate::matmul::{Operand, split_product};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
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

/// Rows and width of `x`'s matrix view `[rows, d_in]`.
fn rows_of(x: &FlexTensor) -> (usize, usize) {
    let shape = x.layout().shape();
    let width = shape[shape.num_dims() - 1];
    (shape.num_elements() / width.max(1), width)
}

fn forward(x: &FlexTensor, weight: &FlexTensor) -> FlexTensor {
    let (rows, d_in) = rows_of(x);
    let d_out = weight.layout().shape()[1];
    let y = split_product(
        (rows, d_out, d_in),
        Operand::rows(f32s(x), d_in),
        Operand::rows(f32s(weight), d_out),
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
            let d_x = split_product(
                (rows, d_in, d_out),
                Operand::rows(f32s(&d_y), d_out),
                Operand::transposed(f32s(&weight), d_out),
            );
            grads.register::<Flex>(node.id, flex(d_x, x.layout().shape().clone()));
        }
        if let Some(node) = weight_node {
            // dW = Xᵀ · dY
            let d_w = split_product(
                (d_in, d_out, rows),
                Operand::transposed(f32s(&x), d_in),
                Operand::rows(f32s(&d_y), d_out),
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
        let y = forward(&x, &weight);
        record::<2, _, C>(LinearBackward, guards, y, || (x, weight))
    }
}
