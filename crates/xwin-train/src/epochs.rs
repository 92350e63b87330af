//! Epochs as Hugging Face's Trainer lays them out: each epoch is `ceil(batches / accum)`
//! optimizer steps, the last window of an epoch shorter when `accum` does not divide the
//! number of micro-batches (windows never reach into the next epoch), and every epoch visits
//! the micro-batches in a fresh seeded order.

use xwin_data::stable_hash;

/// Where every micro-batch of a multi-epoch run comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochPlan {
    batches: usize,
    grad_accum: usize,
    /// Each epoch's batch order.
    orders: Vec<Vec<usize>>,
}

impl EpochPlan {
    /// `batches` micro-batches per pass, `grad_accum` per optimizer step, `epochs` passes,
    /// each in an order drawn from (`seed`, epoch).
    pub fn new(batches: usize, grad_accum: usize, epochs: usize, seed: u64) -> Self {
        Self {
            batches,
            grad_accum: grad_accum.max(1),
            orders: (0..epochs).map(|e| order(batches, seed, e)).collect(),
        }
    }

    /// The same plan visiting the micro-batches in their given order every epoch (data that
    /// is already shuffled, or a reference that fixes the order).
    pub fn in_order(batches: usize, grad_accum: usize, epochs: usize) -> Self {
        Self {
            batches,
            grad_accum: grad_accum.max(1),
            orders: vec![(0..batches).collect(); epochs],
        }
    }

    pub fn epochs(&self) -> usize {
        self.orders.len()
    }

    /// Optimizer steps per epoch (transformers' `num_update_steps_per_epoch`).
    pub fn steps_per_epoch(&self) -> usize {
        self.batches.div_ceil(self.grad_accum.max(1)).max(1)
    }

    /// Optimizer steps of the whole run (`max_steps` for whole epochs).
    pub fn total_steps(&self) -> usize {
        self.steps_per_epoch() * self.epochs()
    }

    /// `(epoch, batch index)` of micro-batch `micro` of optimizer step `step`, or `None` past
    /// the end of that step's window. The index is into the epoch's shuffled order.
    pub fn locate(&self, step: usize, micro: usize) -> Option<(usize, usize)> {
        let per_epoch = self.steps_per_epoch();
        let (epoch, within) = (step / per_epoch, step % per_epoch);
        let position = within * self.grad_accum + micro;
        if micro >= self.grad_accum || position >= self.batches {
            return None;
        }
        self.orders.get(epoch).map(|o| (epoch, o[position]))
    }

    /// The batch order of `epoch`.
    pub fn order(&self, epoch: usize) -> &[usize] {
        &self.orders[epoch]
    }
}

/// A permutation of `0..n` drawn from (seed, epoch).
fn order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let key = |i: usize| {
        let bytes = [seed, epoch as u64, i as u64]
            .map(u64::to_le_bytes)
            .concat();
        stable_hash(&bytes)
    };
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_cached_key(|&i| (key(i), i));
    order
}

#[cfg(test)]
mod tests {
    use super::EpochPlan;

    fn plan(batches: usize, grad_accum: usize, epochs: usize) -> EpochPlan {
        EpochPlan::new(batches, grad_accum, epochs, 3)
    }

    /// 5 micro-batches, accumulation 2, 2 epochs: windows of 2, 2, 1 per epoch (as the
    /// Trainer's `remainder`), every batch once per epoch, no window spanning epochs.
    #[test]
    fn windows_stop_at_the_epoch_end() {
        let p = plan(5, 2, 2);
        assert_eq!(p.steps_per_epoch(), 3);
        assert_eq!(p.total_steps(), 6);
        let window = |step| (0..2).map_while(|m| p.locate(step, m)).collect::<Vec<_>>();
        let sizes: Vec<usize> = (0..6).map(|s| window(s).len()).collect();
        assert_eq!(sizes, [2, 2, 1, 2, 2, 1]);
        for epoch in 0..2 {
            let mut seen: Vec<usize> = (epoch * 3..epoch * 3 + 3)
                .flat_map(window)
                .map(|(e, i)| {
                    assert_eq!(e, epoch);
                    i
                })
                .collect();
            seen.sort();
            assert_eq!(seen, [0, 1, 2, 3, 4]);
        }
        assert_eq!(p.locate(6, 0), None, "past the last epoch");
    }

    #[test]
    fn each_epoch_has_its_own_order() {
        let p = plan(64, 1, 3);
        let orders: Vec<&[usize]> = (0..3).map(|e| p.order(e)).collect();
        assert_ne!(orders[0], orders[1]);
        assert_ne!(orders[1], orders[2]);
        assert_eq!(plan(64, 1, 3).order(1), orders[1], "deterministic");
        assert_ne!(EpochPlan::new(64, 1, 3, 4).order(0), orders[0]);
    }
}
