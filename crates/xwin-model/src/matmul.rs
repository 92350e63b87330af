//! Matrix products on host buffers through the `gemm` crate (burn Flex's own), for our CPU
//! kernels: operands given by strides, so transposes cost nothing, and a two-core split that
//! cuts the larger output side in half (on two cores that beat `gemm`'s own Rayon split on a
//! layer's shapes: 140–176 against 80–170 GFLOP/s, `SHAPES=layer cargo run -p xwin-bench
//! --example gemm_probe`). Every output element is one `gemm` dot product over `k` in the same
//! order whatever the split or the other dimensions, so results do not depend on batching.

use std::ops::Range;

/// A matrix operand: its elements and strides (row, column) in elements.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Operand<'a> {
    data: &'a [f32],
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Operand<'a> {
    /// A row-major matrix `width` wide.
    pub(crate) fn rows(data: &'a [f32], width: usize) -> Self {
        Self {
            data,
            row_stride: width,
            col_stride: 1,
        }
    }

    /// The transpose of a row-major matrix `width` wide.
    pub(crate) fn transposed(data: &'a [f32], width: usize) -> Self {
        Self {
            data,
            row_stride: 1,
            col_stride: width,
        }
    }

    /// Whether `rows` × `cols` elements fit in the buffer.
    fn holds(&self, rows: usize, cols: usize) -> bool {
        rows == 0
            || cols == 0
            || (rows - 1) * self.row_stride + (cols - 1) * self.col_stride < self.data.len()
    }
}

/// How a product writes its output.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    /// The product is multiplied by this.
    pub scale: f32,
    /// Added to what `dst` holds instead of replacing it.
    pub accumulate: bool,
}

impl Output {
    pub(crate) const SET: Self = Self {
        scale: 1.0,
        accumulate: false,
    };
    pub(crate) const ADD: Self = Self {
        scale: 1.0,
        accumulate: true,
    };

    pub(crate) fn scaled(scale: f32) -> Self {
        Self {
            scale,
            accumulate: false,
        }
    }
}

/// `dst[m × n] = out.scale · lhs[m × k] · rhs[k × n]` (plus `dst` when accumulating); `dst`
/// row-major with row stride `n`. One core.
pub(crate) fn product(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    lhs: Operand<'_>,
    rhs: Operand<'_>,
    out: Output,
) {
    check((m, n, k), dst, lhs, rhs);
    // SAFETY: `check` bounded every block this call touches.
    unsafe { block((m, n, k), dst.as_mut_ptr(), 0..m, 0..n, lhs, rhs, out) };
}

/// `lhs[m × k] · rhs[k × n]` as a new row-major buffer, the larger of `m` and `n` cut in two
/// halves, one per core, when the product is large enough to gain from it. The buffer is not
/// zeroed first: `gemm` writes every element (a zero fill was 5 % of a training step, on one
/// core while the other waited).
pub(crate) fn split_product(
    (m, n, k): (usize, usize, usize),
    lhs: Operand<'_>,
    rhs: Operand<'_>,
) -> Vec<f32> {
    /// Below this many multiply-adds a split costs more than it gains.
    const SPLIT_MIN: usize = 1 << 21;
    assert!(
        lhs.holds(m, k) && rhs.holds(k, n),
        "product operands: {m} × {k} × {n}"
    );
    if k == 0 {
        return vec![0.0; m * n]; // an empty sum; `gemm` need not write anything
    }
    let mut dst = Vec::<f32>::with_capacity(m * n);
    let ptr = SharedOutput(dst.as_mut_ptr());
    let run = |rows: Range<usize>, cols: Range<usize>| {
        let ptr = &ptr;
        // SAFETY: the buffer holds m × n elements and the operands were bounded above; the two
        // halves run at once write disjoint blocks; `gemm` without reading `dst` only writes.
        unsafe { block((m, n, k), ptr.0, rows, cols, lhs, rhs, Output::SET) }
    };
    if m * n * k < SPLIT_MIN || rayon::current_num_threads() < 2 {
        run(0..m, 0..n);
    } else if m >= n {
        rayon::join(|| run(0..m / 2, 0..n), || run(m / 2..m, 0..n));
    } else {
        rayon::join(|| run(0..m, 0..n / 2), || run(0..m, n / 2..n));
    }
    // SAFETY: the blocks above cover all m × n elements and `gemm` wrote each of them.
    unsafe { dst.set_len(m * n) };
    dst
}

fn check((m, n, k): (usize, usize, usize), dst: &[f32], lhs: Operand<'_>, rhs: Operand<'_>) {
    assert!(
        dst.len() >= m * n,
        "product output: {} < {m} × {n}",
        dst.len()
    );
    assert!(
        lhs.holds(m, k) && rhs.holds(k, n),
        "product operands: {m} × {k} × {n}"
    );
}

/// The output buffer, written by both halves of a split product (disjoint blocks).
struct SharedOutput(*mut f32);
// SAFETY: only used to let two threads write disjoint blocks of one buffer.
unsafe impl Sync for SharedOutput {}

/// The `rows` × `cols` block of the product.
///
/// # Safety
/// `dst` must address `m × n` elements (row stride `n`) and the operands hold `m × k` and
/// `k × n`; no other thread may touch this block meanwhile.
unsafe fn block(
    (_, n, k): (usize, usize, usize),
    dst: *mut f32,
    rows: Range<usize>,
    cols: Range<usize>,
    lhs: Operand<'_>,
    rhs: Operand<'_>,
    out: Output,
) {
    if rows.is_empty() || cols.is_empty() {
        return;
    }
    // SAFETY: in bounds by the caller's contract; gemm reads and writes only this block.
    unsafe {
        gemm::gemm(
            rows.len(),
            cols.len(),
            k,
            dst.add(rows.start * n + cols.start),
            1,
            n as isize,
            out.accumulate,
            lhs.data.as_ptr().add(rows.start * lhs.row_stride),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr().add(cols.start * rhs.col_stride),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            out.scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}
