//! [`crate::cpu_attention`] as a burn operation: forward only on `Flex`, and on
//! `Autodiff<Flex, C>` a forward saving the output and log-sum-exp, then the fused backward.

use super::{f32s, flex, record};
use crate::cpu_attention::{self, AttentionDims, Inputs};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, backend_extension};
use burn::tensor::{Shape, Tensor};
use std::sync::Arc;

/// Causal attention with GQA and optional key padding as one operation.
#[backend_extension(Flex, Autodiff)]
pub trait CausalAttentionBackend: Backend {
    /// # Shapes
    /// - q `[batch, heads, seq_q, head_dim]`, k and v `[batch, kv_heads, seq_k, head_dim]`,
    ///   key_valid `[batch, seq_k]` (1 = real token) → `[batch, heads, seq_q, head_dim]`
    fn xwin_causal_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        key_valid: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self>;
}

/// `softmax(q·kᵀ/√d + causal and padding masks)·v`, fused. Key/value heads are shared by
/// `heads / kv_heads` query heads without being repeated. Check that fused ops apply
/// first ([`super::fused_ops_apply`]); on another backend this panics.
///
/// # Shapes
/// - q `[batch, heads, seq_q, head_dim]`, k and v `[batch, kv_heads, seq_k, head_dim]`,
///   key_valid `[batch, seq_k]` (1 = real token, 0 = padding; all ones without padding) →
///   `[batch, heads, seq_q, head_dim]`
pub fn fused_causal_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    key_valid: Tensor<2>,
) -> Tensor<4> {
    let scale = 1.0 / (q.dims()[3] as f32).sqrt();
    let out = <burn::backend::Dispatch as CausalAttentionBackend>::xwin_causal_attention(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
        key_valid.into_dispatch(),
        scale,
    );
    Tensor::from_dispatch(out)
}

/// The kernel's view of Flex tensors: contiguous f32 buffers and the sizes.
#[derive(Debug, Clone)]
struct Operands {
    dims: AttentionDims,
    q: FlexTensor,
    /// Keys and values in head blocks `kv_stride` apart ([`head_blocks`]).
    k: FlexTensor,
    v: FlexTensor,
    kv_stride: usize,
    key_valid: Option<FlexTensor>,
    scale: f32,
}

impl Operands {
    fn new(q: FlexTensor, k: FlexTensor, v: FlexTensor, key_valid: FlexTensor, scale: f32) -> Self {
        let dims4 = |t: &FlexTensor| -> [usize; 4] {
            let s = t.layout().shape();
            assert_eq!(s.num_dims(), 4, "attention operands are 4-d");
            [s[0], s[1], s[2], s[3]]
        };
        let ([batch, heads, seq_q, head_dim], [_, kv_heads, seq_k, _]) = (dims4(&q), dims4(&k));
        let dims = AttentionDims {
            batch,
            heads,
            kv_heads,
            seq_q,
            seq_k,
            head_dim,
        };
        let (k, stride_k) = head_blocks(k);
        let (v, stride_v) = head_blocks(v);
        let (k, v, kv_stride) = if stride_k == stride_v {
            (k, v, stride_k)
        } else {
            (k.to_contiguous(), v.to_contiguous(), seq_k * head_dim)
        };
        Self {
            dims,
            q: q.to_contiguous(),
            k,
            v,
            kv_stride,
            // All real: the kernel skips the padding test per key.
            key_valid: Some(key_valid.to_contiguous()).filter(|t| f32s(t).contains(&0.0)),
            scale,
        }
    }

    fn inputs(&self) -> Inputs<'_> {
        Inputs {
            dims: self.dims,
            q: f32s(&self.q),
            k: from_start(&self.k),
            v: from_start(&self.v),
            kv_stride: self.kv_stride,
            key_valid: self.key_valid.as_ref().map(f32s),
            scale: self.scale,
        }
    }

    fn q_shape(&self) -> Shape {
        let d = self.dims;
        Shape::from([d.batch, d.heads, d.seq_q, d.head_dim])
    }

    fn kv_shape(&self) -> Shape {
        let d = self.dims;
        Shape::from([d.batch, d.kv_heads, d.seq_k, d.head_dim])
    }
}

/// `t` (`[batch, kv_heads, seq_k, head_dim]`) as equally spaced `[seq_k, head_dim]` blocks from
/// the start of its buffer, and their spacing: a KV cache's filled prefix of a longer buffer
/// as it is (decode steps would otherwise copy the whole cache each token), anything else made
/// contiguous.
fn head_blocks(t: FlexTensor) -> (FlexTensor, usize) {
    let layout = t.layout();
    let (shape, strides) = (layout.shape(), layout.strides());
    let (kv_heads, seq_k, head_dim) = (shape[1], shape[2], shape[3]);
    let block = strides[1];
    let in_place = layout.start_offset() == 0
        && strides[3] == 1
        && strides[2] == head_dim as isize
        && block >= (seq_k * head_dim) as isize
        && strides[0] == block * kv_heads as isize;
    if in_place {
        (t, block as usize)
    } else {
        (t.to_contiguous(), seq_k * head_dim)
    }
}

/// The f32 buffer behind `t` from its first element (which [`head_blocks`] puts at the start).
fn from_start(t: &FlexTensor) -> &[f32] {
    &t.storage::<f32>()[t.layout().start_offset()..]
}

impl CausalAttentionBackend for Flex {
    fn xwin_causal_attention(
        q: FlexTensor,
        k: FlexTensor,
        v: FlexTensor,
        key_valid: FlexTensor,
        scale: f32,
    ) -> FlexTensor {
        let ops = Operands::new(q, k, v, key_valid, scale);
        flex(cpu_attention::forward(ops.inputs()).out, ops.q_shape())
    }
}

/// The backward step: the operands and the saved forward.
#[derive(Debug)]
struct AttentionBackward;

impl Backward<Flex, 3> for AttentionBackward {
    /// Operands, output, log-sum-exp per query row.
    type State = (Arc<Operands>, FlexTensor, Arc<Vec<f32>>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (operands, out, lse) = ops.state;
        let d_out = grads.consume::<Flex>(&ops.node).to_contiguous();
        let g = cpu_attention::backward(operands.inputs(), f32s(&out), &lse, f32s(&d_out));
        let [q, k, v] = ops.parents;
        for (parent, grad, shape) in [
            (q, g.d_q, operands.q_shape()),
            (k, g.d_k, operands.kv_shape()),
            (v, g.d_v, operands.kv_shape()),
        ] {
            if let Some(node) = parent {
                grads.register::<Flex>(node.id, flex(grad, shape));
            }
        }
    }
}

impl<C: CheckpointStrategy> CausalAttentionBackend for Autodiff<Flex, C> {
    fn xwin_causal_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        key_valid: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self> {
        let guards = [q.node(), k.node(), v.node()];
        let operands = Operands::new(
            q.into_primitive(),
            k.into_primitive(),
            v.into_primitive(),
            key_valid.into_primitive(),
            scale,
        );
        let saved = cpu_attention::forward(operands.inputs());
        let out = flex(saved.out, operands.q_shape());
        let kept = out.clone();
        record::<3, _, C>(AttentionBackward, guards, out, || {
            (Arc::new(operands), kept, Arc::new(saved.lse))
        })
    }
}
