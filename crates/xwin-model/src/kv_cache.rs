//! Keys and values of the positions seen so far, for decoding one token at a time.
//!
//! Each layer keeps its keys and values in buffers with room for more positions than are
//! filled: a decode step writes its position in place, where concatenating would copy the
//! whole cache every token (O(len) per token, O(len²) per sequence; 10 % of a decode step at
//! the benchmark's 96 positions). Attention reads the filled prefix as a view of the buffers.
//! A full buffer grows by half of what it holds (at least [`MIN_GROWTH`] positions), never past
//! the rows' longest possible length when the cache knows it: the cache stays within 1.5× the
//! positions it holds plus 16 (rows that stop early never pay for the longest possible row),
//! and each position is copied a few times in all. Growing costs 0–5 % of a 512-token
//! generation against buffers reserved whole up front (`decode_parts`, alternated 3×).

use burn::tensor::{Int, Tensor};

/// Positions a full buffer grows by at the least.
pub const MIN_GROWTH: usize = 16;

/// Keys and values of every layer, grown by each decode step.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    pub(crate) layers: Vec<LayerCache>,
}

impl KvCache {
    /// A cache for rows of any length.
    pub fn new(num_layers: usize) -> Self {
        Self::empty(num_layers, None)
    }

    /// A cache for rows of at most `positions` positions (prompt and new tokens): its buffers
    /// never hold room for more.
    pub fn with_max_positions(num_layers: usize, positions: usize) -> Self {
        Self::empty(num_layers, Some(positions))
    }

    /// `num_layers` empty layers.
    fn empty(num_layers: usize, max_positions: Option<usize>) -> Self {
        let layer = LayerCache {
            buffers: None,
            len: 0,
            max_positions,
        };
        Self {
            layers: vec![layer; num_layers],
        }
    }

    /// Number of positions cached so far.
    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, |l| l.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps only the given batch rows (drops finished sequences during generation).
    pub fn select_rows(&mut self, rows: &Tensor<1, Int>) {
        for layer in &mut self.layers {
            if let Some((keys, values)) = layer.buffers.take() {
                layer.buffers =
                    Some((keys.select(0, rows.clone()), values.select(0, rows.clone())));
            }
        }
    }

    /// Makes the cache fit a model of `num_layers` layers (emptied when it did not).
    pub(crate) fn fit(&mut self, num_layers: usize) {
        if self.layers.len() != num_layers {
            let max_positions = self.layers.first().and_then(|l| l.max_positions);
            *self = Self::empty(num_layers, max_positions);
        }
    }
}

/// Room for `end` positions and the growth after them, within `max_positions`.
fn capacity_for(end: usize, max_positions: Option<usize>) -> usize {
    let room = end + (end / 2).max(MIN_GROWTH);
    max_positions.map_or(room, |max| room.min(max.max(end)))
}

/// One layer's keys and values (rotary already applied).
///
/// # Shapes
/// - buffers: `[batch, kv_heads, capacity, head_dim]`, positions `..len` filled
#[derive(Debug, Clone)]
pub struct LayerCache {
    buffers: Option<(Tensor<4>, Tensor<4>)>,
    len: usize,
    /// The most positions a row can reach, when known: no buffer grows past it.
    max_positions: Option<usize>,
}

impl LayerCache {
    /// Appends the new positions' keys and values and returns every position's so far.
    ///
    /// # Shapes
    /// - k, v `[batch, kv_heads, new, head_dim]` → keys, values `[batch, kv_heads, len + new,
    ///   head_dim]` (views of the buffers)
    pub(crate) fn append(&mut self, k: Tensor<4>, v: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let [b, h, s, d] = k.dims();
        let (start, end) = (self.len, self.len + s);
        let (keys, values) = match self.buffers.take() {
            Some((keys, values)) if keys.dims()[2] >= end => (
                // In place: the last step's views are gone by now. (A clone of the cache shares
                // the buffers; burn then copies before writing, so the clone keeps its values.)
                keys.slice_assign([0..b, 0..h, start..end, 0..d], k),
                values.slice_assign([0..b, 0..h, start..end, 0..d], v),
            ),
            old => {
                let capacity = capacity_for(end, self.max_positions);
                let room = |new: Tensor<4>, old: Option<Tensor<4>>| {
                    let buffer = Tensor::zeros([b, h, capacity, d], (&new.device(), new.dtype()));
                    let buffer = match old {
                        Some(old) => buffer.slice_assign(
                            [0..b, 0..h, 0..start, 0..d],
                            old.slice([0..b, 0..h, 0..start, 0..d]),
                        ),
                        None => buffer,
                    };
                    buffer.slice_assign([0..b, 0..h, start..end, 0..d], new)
                };
                let (old_k, old_v) = old.unzip();
                (room(k, old_k), room(v, old_v))
            }
        };
        self.len = end;
        let filled = |t: &Tensor<4>| t.clone().slice([0..b, 0..h, 0..end, 0..d]);
        let views = (filled(&keys), filled(&values));
        self.buffers = Some((keys, values));
        views
    }
}
