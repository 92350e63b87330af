//! Batching: padding with attention and loss masks, length-sorted buckets, and packing.

use crate::template::TokenizedConversation;
use crate::transform::stable_hash;

/// Side on which sequences are padded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PadSide {
    Left,
    Right,
}

/// A rectangular batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub ids: Vec<Vec<u32>>,
    /// true for real tokens.
    pub attention: Vec<Vec<bool>>,
    /// true for loss targets.
    pub loss_mask: Vec<Vec<bool>>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    pub fn seq_len(&self) -> usize {
        self.ids.first().map_or(0, Vec::len)
    }
    /// Share of positions that are padding.
    pub fn padding_fraction(&self) -> f64 {
        let total = self.len() * self.seq_len();
        let real: usize = self
            .attention
            .iter()
            .map(|r| r.iter().filter(|a| **a).count())
            .sum();
        if total == 0 {
            0.0
        } else {
            1.0 - real as f64 / total as f64
        }
    }
}

/// How micro-batches are padded: the id of padding tokens and an optional length multiple
/// (see [`padded_width`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Padding {
    pub id: u32,
    pub multiple: Option<usize>,
}

impl Padding {
    /// Padding with `id` to each micro-batch's longest row.
    pub fn to_longest(id: u32) -> Self {
        Self { id, multiple: None }
    }
}

/// The width a micro-batch is padded to: its longest row, rounded up to a multiple of
/// `multiple` when one above 1 is given (HF's `pad_to_multiple_of`; 0 and 1 pad to the longest). A GPU compiles and tunes its
/// kernels for each new shape; with lengths in a few buckets it does so once per bucket.
pub fn padded_width(longest: usize, multiple: Option<usize>) -> usize {
    match multiple {
        Some(m) if m > 1 => longest.div_ceil(m) * m,
        _ => longest,
    }
}

/// Right-pads token rows to the longest with `pad`: the padded ids and the attention mask
/// (true for real tokens).
pub fn pad_rows(rows: &[&[u32]], pad: u32) -> (Vec<Vec<u32>>, Vec<Vec<bool>>) {
    pad_rows_to(rows, Padding::to_longest(pad))
}

/// [`pad_rows`] to the [`padded_width`] of the longest row.
pub fn pad_rows_to(rows: &[&[u32]], padding: Padding) -> (Vec<Vec<u32>>, Vec<Vec<bool>>) {
    let width = padded_width(
        rows.iter().map(|r| r.len()).max().unwrap_or(0),
        padding.multiple,
    );
    let pad = padding.id;
    let ids = rows
        .iter()
        .map(|r| {
            let fill = std::iter::repeat_n(pad, width - r.len());
            r.iter().copied().chain(fill).collect()
        })
        .collect();
    let attention = rows
        .iter()
        .map(|r| (0..width).map(|t| t < r.len()).collect())
        .collect();
    (ids, attention)
}

/// Pads sequences to the longest one.
pub fn pad_batch(seqs: &[&TokenizedConversation], pad_id: u32, side: PadSide) -> Batch {
    pad_batch_to(seqs, Padding::to_longest(pad_id), side)
}

/// [`pad_batch`] to the [`padded_width`] of the longest sequence.
pub fn pad_batch_to(seqs: &[&TokenizedConversation], padding: Padding, side: PadSide) -> Batch {
    let len = padded_width(
        seqs.iter().map(|s| s.len()).max().unwrap_or(0),
        padding.multiple,
    );
    let pad_id = padding.id;
    let mut batch = Batch {
        ids: Vec::new(),
        attention: Vec::new(),
        loss_mask: Vec::new(),
    };
    for s in seqs {
        let pad = len - s.len();
        let (ids, att, mask) = match side {
            PadSide::Right => (
                s.ids
                    .iter()
                    .copied()
                    .chain(std::iter::repeat_n(pad_id, pad))
                    .collect(),
                std::iter::repeat_n(true, s.len())
                    .chain(std::iter::repeat_n(false, pad))
                    .collect(),
                s.mask
                    .iter()
                    .copied()
                    .chain(std::iter::repeat_n(false, pad))
                    .collect(),
            ),
            PadSide::Left => (
                std::iter::repeat_n(pad_id, pad)
                    .chain(s.ids.iter().copied())
                    .collect(),
                std::iter::repeat_n(false, pad)
                    .chain(std::iter::repeat_n(true, s.len()))
                    .collect(),
                std::iter::repeat_n(false, pad)
                    .chain(s.mask.iter().copied())
                    .collect(),
            ),
        };
        batch.ids.push(ids);
        batch.attention.push(att);
        batch.loss_mask.push(mask);
    }
    batch
}

/// Groups indices into batches of similar length (little padding): sort by length, cut into
/// batches of at most `batch_size` sequences and `max_tokens` padded tokens, then shuffle the
/// batch order with `seed` so training does not see lengths in order.
pub fn length_buckets(
    lengths: &[usize],
    batch_size: usize,
    max_tokens: usize,
    seed: u64,
) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| (lengths[i], i));
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    for i in order {
        // Sorted ascending, so the newest sequence is the longest of the batch.
        let padded = (current.len() + 1) * lengths[i];
        if !current.is_empty() && (current.len() == batch_size.max(1) || padded > max_tokens) {
            batches.push(std::mem::take(&mut current));
        }
        current.push(i);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
        .sort_by_key(|b| stable_hash(&[seed.to_le_bytes(), (b[0] as u64).to_le_bytes()].concat()));
    batches
}
