//! Host-side description of a padded batch: which keys are real and where each query sits.
//! It is turned into the attention mask and rotary tables on the device once per forward.

use crate::error::{ModelError, Result};
use burn::tensor::{Bool, Device, Tensor, TensorData};

/// Positions of the queries in this call and validity of every key (past and present).
/// Built only through constructors that check the shapes, so the mask and rotary tables made
/// from it never index out of bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchLayout {
    /// `[batch][seq]`: rotary position of each query token.
    pub(crate) positions: Vec<Vec<usize>>,
    /// `[batch][past + seq]`: false where the key is padding. `None` means no padding.
    pub(crate) key_valid: Option<Vec<Vec<bool>>>,
}

impl BatchLayout {
    /// A layout from its parts: every row of `positions` as long as the first, and, with
    /// padding, one `key_valid` row per sequence covering at least the queries.
    pub fn new(positions: Vec<Vec<usize>>, key_valid: Option<Vec<Vec<bool>>>) -> Result<Self> {
        let seq = positions.first().map_or(0, Vec::len);
        if positions.iter().any(|r| r.len() != seq) {
            return Err(ModelError::InvalidInput(
                "layout: position rows differ in length".into(),
            ));
        }
        if let Some(keys) = &key_valid {
            let k = keys.first().map_or(0, Vec::len);
            if keys.len() != positions.len() {
                return Err(ModelError::InvalidInput(format!(
                    "layout: {} key rows for {} sequences",
                    keys.len(),
                    positions.len()
                )));
            }
            if keys.iter().any(|r| r.len() != k) || k < seq {
                return Err(ModelError::InvalidInput(format!(
                    "layout: key rows must be equally long and cover the {seq} queries"
                )));
            }
        }
        Ok(Self {
            positions,
            key_valid,
        })
    }

    /// `[batch][seq]`: rotary position of each query token.
    pub fn positions(&self) -> &[Vec<usize>] {
        &self.positions
    }

    /// `[batch][past + seq]`: false where a key is padding; `None` without padding.
    pub fn key_valid(&self) -> Option<&[Vec<bool>]> {
        self.key_valid.as_deref()
    }

    /// Unpadded sequences starting at position `past`.
    pub fn contiguous(batch: usize, seq: usize, past: usize) -> Self {
        Self {
            positions: vec![(past..past + seq).collect(); batch],
            key_valid: None,
        }
    }

    /// From an HF-style attention mask (`[batch][seq]`, 1 = token, 0 = padding).
    ///
    /// Positions count real tokens only (`cumsum(mask) - 1`, as HF `generate` does), so a
    /// left-padded prompt is rotated exactly as the same prompt without padding.
    pub fn from_attention_mask(mask: &[Vec<bool>]) -> Result<Self> {
        let seq = mask.first().map_or(0, Vec::len);
        if mask.iter().any(|row| row.len() != seq) {
            return Err(ModelError::InvalidInput(
                "attention mask rows differ in length".into(),
            ));
        }
        let positions = mask
            .iter()
            .map(|row| {
                let mut real = 0usize;
                row.iter()
                    .map(|&valid| {
                        real += usize::from(valid);
                        // HF fills padding positions with 1; they are never read.
                        if valid { real - 1 } else { 1 }
                    })
                    .collect()
            })
            .collect();
        let padded = mask.iter().any(|row| row.iter().any(|v| !v));
        Ok(Self {
            positions,
            key_valid: padded.then(|| mask.to_vec()),
        })
    }

    pub fn batch(&self) -> usize {
        self.positions.len()
    }

    pub fn seq(&self) -> usize {
        self.positions.first().map_or(0, Vec::len)
    }

    /// The layout of the next decode step: one new (real) token per row.
    pub fn next_step(&self) -> Self {
        let positions = self
            .positions
            .iter()
            .map(|row| vec![row.last().map_or(0, |p| p + 1)])
            .collect();
        let key_valid = self.key_valid.as_ref().map(|rows| {
            rows.iter()
                .map(|row| row.iter().copied().chain(std::iter::once(true)).collect())
                .collect()
        });
        Self {
            positions,
            key_valid,
        }
    }

    /// `[batch, keys]`: 1 where a key is a real token, 0 where it is padding, for the fused
    /// CPU attention. `None` without padding.
    pub fn key_valid_tensor(&self, device: &Device) -> Option<Tensor<2>> {
        let rows = self.key_valid.as_ref()?;
        let k = rows.first().map_or(0, Vec::len);
        let data: Vec<f32> = rows
            .iter()
            .flatten()
            .map(|&v| f32::from(u8::from(v)))
            .collect();
        Some(Tensor::from_data(
            TensorData::new(data, [self.batch(), k]),
            device,
        ))
    }

    /// Boolean mask `[batch, heads, seq, keys]`, true where a real query must not see a
    /// padding key. Padding queries see everything causal so that no row is empty; their
    /// outputs are never read. `None` when nothing is padded (causality is applied apart).
    pub fn padding_mask(&self, heads: usize, device: &Device) -> Option<Tensor<4, Bool>> {
        let key_valid = self.key_valid.as_ref()?;
        let (b, q) = (self.batch(), self.seq());
        let k = key_valid.first().map_or(0, Vec::len);
        let past = k - q;
        let mut data = Vec::with_capacity(b * q * k);
        for row in key_valid {
            for qi in 0..q {
                let query_real = row[past + qi];
                data.extend(row.iter().map(|&key_real| query_real && !key_real));
            }
        }
        let mask = Tensor::<4, Bool>::from_data(TensorData::new(data, [b, 1, q, k]), device);
        Some(mask.expand([b, heads, q, k]))
    }
}

#[cfg(test)]
mod checks {
    use super::BatchLayout;

    /// Inconsistent parts are an error, not a panic later in the mask or rotary tables.
    #[test]
    fn inconsistent_layouts_are_errors() {
        assert!(BatchLayout::new(vec![vec![0, 1], vec![0]], None).is_err());
        let keys = Some(vec![vec![true; 3]]);
        assert!(BatchLayout::new(vec![vec![0, 1], vec![0, 1]], keys).is_err());
        assert!(BatchLayout::new(vec![vec![2, 3]], Some(vec![vec![true]])).is_err());
        let ok = BatchLayout::new(vec![vec![2, 3]], Some(vec![vec![false, true, true, true]]));
        assert_eq!(ok.unwrap().positions(), [vec![2, 3]]);
    }
}
