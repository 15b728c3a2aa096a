//! [`DataLoader`]: mini-batches of `(x, y)` along the last (batch) dimension, optionally
//! shuffled every epoch with a reproducible generator, and optionally sharded over the ranks of
//! a data-parallel job ([`DataLoader::shard`]).

use std::sync::Mutex;

use flux_autograd::Var;
use flux_tensor::rand::rngs::StdRng;
use flux_tensor::rand::seq::SliceRandom;
use flux_tensor::rand::SeedableRng;
use flux_tensor::{with_rng, Tensor};

use crate::optimiser::OptimError;

/// Mini-batches of a data set `(x, y)` whose **last** dimension indexes the samples
/// (column-major, features first: a `[64, N]` matrix holds `N` samples as columns), after
/// Flux's `DataLoader(data; batchsize, shuffle, partial)`.
///
/// Each pass (`for (x, y) in &loader`, or [`DataLoader::iter`]) is one epoch of `(Var, Var)`
/// constants ready for [`crate::train`]. With [`DataLoader::shuffle`] every epoch draws a new
/// order: from the loader's own generator when it was given one ([`DataLoader::seed`],
/// [`DataLoader::rng`]), otherwise from the thread's default generator (so `flux::seed` makes
/// it reproducible). The last, smaller batch is kept unless [`DataLoader::partial`]`(false)`.
///
/// ```
/// use flux_optim::DataLoader;
/// use flux_tensor::Tensor;
/// let x = Tensor::from_vec((0..10).map(|i| i as f64).collect::<Vec<_>>(), &[2, 5]); // 5 samples
/// let y = Tensor::from_vec(vec![0.0, 1.0, 2.0, 3.0, 4.0], &[5]);
/// let loader = DataLoader::new(x, y, 2);
/// let sizes: Vec<usize> = loader.iter().map(|(x, _)| x.shape()[1]).collect();
/// assert_eq!(sizes, vec![2, 2, 1]);
/// let (x0, y0) = loader.iter().next().unwrap();
/// assert_eq!(x0.to_vec(), vec![0.0, 1.0, 2.0, 3.0]);
/// assert_eq!(y0.to_vec(), vec![0.0, 1.0]);
/// ```
#[derive(Debug)]
pub struct DataLoader {
    x: Tensor,
    y: Tensor,
    batchsize: usize,
    shuffle: bool,
    partial: bool,
    rng: Option<Mutex<StdRng>>,
    /// `(rank, size)` when this loader yields only one rank's part of every batch.
    shard: Option<(usize, usize)>,
}

impl DataLoader {
    /// Batches of `batchsize` samples of `(x, y)`, in order, the last partial batch kept.
    /// Panics where [`DataLoader::try_new`] returns an error.
    ///
    /// ```
    /// use flux_optim::DataLoader;
    /// use flux_tensor::Tensor;
    /// let l = DataLoader::new(Tensor::zeros(&[3, 10]), Tensor::zeros(&[1, 10]), 4);
    /// assert_eq!(l.len(), 3);
    /// ```
    pub fn new(x: Tensor, y: Tensor, batchsize: usize) -> DataLoader {
        DataLoader::try_new(x, y, batchsize).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Checks that both tensors have a batch dimension of the same length and that `batchsize`
    /// is at least 1.
    ///
    /// ```
    /// use flux_optim::DataLoader;
    /// use flux_tensor::Tensor;
    /// let e = DataLoader::try_new(Tensor::zeros(&[3, 10]), Tensor::zeros(&[1, 9]), 4).unwrap_err();
    /// assert!(e.to_string().contains("10") && e.to_string().contains("9"));
    /// ```
    pub fn try_new(x: Tensor, y: Tensor, batchsize: usize) -> Result<DataLoader, OptimError> {
        if batchsize == 0 {
            return Err(OptimError::Data("DataLoader: batchsize must be at least 1".into()));
        }
        if x.rank() == 0 || y.rank() == 0 {
            return Err(OptimError::Data(format!(
                "DataLoader: x (shape {:?}) and y (shape {:?}) need a last (batch) dimension; a 0-d value has none",
                x.shape().dims(),
                y.shape().dims()
            )));
        }
        let (nx, ny) = (x.shape()[x.rank() - 1], y.shape()[y.rank() - 1]);
        if nx != ny {
            return Err(OptimError::Data(format!(
                "DataLoader: x has {nx} samples (shape {:?}) but y has {ny} (shape {:?}); samples run along the last dimension",
                x.shape().dims(),
                y.shape().dims()
            )));
        }
        Ok(DataLoader { x, y, batchsize, shuffle: false, partial: true, rng: None, shard: None })
    }

    /// Draws a new sample order every epoch.
    ///
    /// ```
    /// use flux_optim::DataLoader;
    /// use flux_tensor::Tensor;
    /// let l = DataLoader::new(Tensor::zeros(&[1, 4]), Tensor::zeros(&[4]), 2).shuffle(true);
    /// assert!(l.is_shuffled());
    /// ```
    pub fn shuffle(mut self, on: bool) -> Self {
        self.shuffle = on;
        self
    }

    /// Gives the loader its own generator seeded with `seed` (and turns shuffling on): the
    /// sequence of epoch orders is then the same on every run, whatever else uses randomness.
    ///
    /// ```
    /// use flux_optim::DataLoader;
    /// use flux_tensor::Tensor;
    /// let x = Tensor::from_vec((0..8).map(|i| i as f64).collect::<Vec<_>>(), &[8]);
    /// let a = DataLoader::new(x.clone(), x.clone(), 8).seed(7);
    /// let b = DataLoader::new(x.clone(), x, 8).seed(7);
    /// assert_eq!(a.iter().next().unwrap().0.to_vec(), b.iter().next().unwrap().0.to_vec());
    /// ```
    pub fn seed(self, seed: u64) -> Self {
        self.rng(StdRng::seed_from_u64(seed))
    }

    /// Gives the loader its own generator (and turns shuffling on).
    ///
    /// ```
    /// use flux_optim::DataLoader;
    /// use flux_tensor::{rand::{rngs::StdRng, SeedableRng}, Tensor};
    /// let l = DataLoader::new(Tensor::zeros(&[4]), Tensor::zeros(&[4]), 2).rng(StdRng::seed_from_u64(1));
    /// assert!(l.is_shuffled());
    /// ```
    pub fn rng(mut self, rng: StdRng) -> Self {
        self.rng = Some(Mutex::new(rng));
        self.shuffle = true;
        self
    }

    /// `true` (the default) keeps the last batch when it is smaller than `batchsize`; `false`
    /// drops it.
    ///
    /// ```
    /// use flux_optim::DataLoader;
    /// use flux_tensor::Tensor;
    /// let l = DataLoader::new(Tensor::zeros(&[3, 10]), Tensor::zeros(&[10]), 4).partial(false);
    /// assert_eq!(l.len(), 2);
    /// ```
    pub fn partial(mut self, keep: bool) -> Self {
        self.partial = keep;
        self
    }

    /// This rank's part of every epoch, for data-parallel training over `size` ranks (MPI
    /// processes, see the `flux-distributed` crate). Panics where [`DataLoader::try_shard`]
    /// returns an error.
    ///
    /// The batch size stays the batch each rank sees. Every rank draws the same epoch order (so
    /// a shuffling loader needs a generator that all ranks seed alike, [`DataLoader::seed`]),
    /// cuts it into global batches of `batchsize * size` samples, and takes its own contiguous
    /// part of each: rank `r` gets samples `r * batchsize .. (r + 1) * batchsize` of every full
    /// global batch. The ranks' parts are disjoint, cover the epoch, and every rank has the same
    /// number of batches ([`DataLoader::len`]), so no rank waits for a peer that has run out.
    ///
    /// Concatenated in rank order, the parts of step `k` are exactly batch `k` of the unsharded
    /// loader with batch size `batchsize * size` and the same seed: training the ranks with
    /// averaged gradients is training one process on that loader. The last, smaller global
    /// batch (kept unless [`DataLoader::partial`]`(false)`) is split as evenly as it goes (sizes
    /// differ by at most one, so its averaged gradient weighs the ranks equally rather than the
    /// samples); when it has fewer samples than there are ranks it is left out of that epoch
    /// (at most `size - 1` samples, a different few each epoch when shuffling).
    ///
    /// ```
    /// use flux_optim::DataLoader;
    /// use flux_tensor::Tensor;
    /// let x = Tensor::from_vec((0..8).map(|i| i as f64).collect::<Vec<_>>(), &[8]);
    /// let part = |rank| -> Vec<Vec<f64>> {
    ///     let l = DataLoader::new(x.clone(), x.clone(), 2).shard(rank, 2);
    ///     l.iter().map(|(x, _)| x.data().to_vec()).collect()
    /// };
    /// assert_eq!(part(0), vec![vec![0.0, 1.0], vec![4.0, 5.0]]);
    /// assert_eq!(part(1), vec![vec![2.0, 3.0], vec![6.0, 7.0]]);
    /// ```
    pub fn shard(self, rank: usize, size: usize) -> Self {
        self.try_shard(rank, size).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`DataLoader::shard`]: `size` must be at least 1 and `rank` below it, and a
    /// loader that shuffles must have its own generator ([`DataLoader::seed`] or
    /// [`DataLoader::rng`]) so that every rank draws the same order; the thread's default
    /// generator could differ between processes and the parts would overlap.
    ///
    /// ```
    /// use flux_optim::DataLoader;
    /// use flux_tensor::Tensor;
    /// let l = || DataLoader::new(Tensor::zeros(&[4]), Tensor::zeros(&[4]), 2);
    /// assert!(l().try_shard(2, 2).is_err());
    /// assert!(l().shuffle(true).try_shard(0, 2).is_err());
    /// assert_eq!(l().seed(3).try_shard(1, 2).unwrap().sharding(), Some((1, 2)));
    /// ```
    pub fn try_shard(mut self, rank: usize, size: usize) -> Result<Self, OptimError> {
        if size == 0 || rank >= size {
            return Err(OptimError::Data(format!("DataLoader::shard: rank {rank} of {size} ranks; the rank must be below the number of ranks")));
        }
        if self.shuffle && self.rng.is_none() {
            return Err(OptimError::Data(
                "DataLoader::shard: a shuffling loader needs its own generator, seeded alike on every rank (call .seed(s) first), or the ranks' parts would overlap".into(),
            ));
        }
        self.shard = Some((rank, size));
        Ok(self)
    }

    /// `Some((rank, size))` for a loader made by [`DataLoader::shard`].
    ///
    /// ```
    /// use flux_optim::DataLoader;
    /// use flux_tensor::Tensor;
    /// assert_eq!(DataLoader::new(Tensor::zeros(&[4]), Tensor::zeros(&[4]), 2).sharding(), None);
    /// ```
    pub fn sharding(&self) -> Option<(usize, usize)> {
        self.shard
    }

    /// The samples of batch `batch` of this loader's epoch, as positions in the epoch order:
    /// the whole batch, or this rank's part of the global batch when sharded.
    fn batch_range(&self, batch: usize) -> std::ops::Range<usize> {
        let n = self.nobs();
        match self.shard {
            None => {
                let start = batch * self.batchsize;
                start..(start + self.batchsize).min(n)
            }
            Some((rank, size)) => {
                let global = self.batchsize * size;
                let start = batch * global;
                let m = global.min(n - start);
                let (base, extra) = (m / size, m % size);
                let from = start + rank * base + rank.min(extra);
                from..from + base + usize::from(rank < extra)
            }
        }
    }

    /// Is the order drawn anew each epoch?
    ///
    /// ```
    /// use flux_optim::DataLoader;
    /// use flux_tensor::Tensor;
    /// assert!(!DataLoader::new(Tensor::zeros(&[4]), Tensor::zeros(&[4]), 2).is_shuffled());
    /// ```
    pub fn is_shuffled(&self) -> bool {
        self.shuffle
    }

    /// The batch size.
    ///
    /// ```
    /// use flux_optim::DataLoader;
    /// use flux_tensor::Tensor;
    /// assert_eq!(DataLoader::new(Tensor::zeros(&[4]), Tensor::zeros(&[4]), 2).batchsize(), 2);
    /// ```
    pub fn batchsize(&self) -> usize {
        self.batchsize
    }

    /// The number of samples.
    ///
    /// ```
    /// use flux_optim::DataLoader;
    /// use flux_tensor::Tensor;
    /// assert_eq!(DataLoader::new(Tensor::zeros(&[3, 7]), Tensor::zeros(&[7]), 2).nobs(), 7);
    /// ```
    pub fn nobs(&self) -> usize {
        self.x.shape()[self.x.rank() - 1]
    }

    /// Batches per epoch.
    ///
    /// ```
    /// use flux_optim::DataLoader;
    /// use flux_tensor::Tensor;
    /// assert_eq!(DataLoader::new(Tensor::zeros(&[3, 7]), Tensor::zeros(&[7]), 2).len(), 4);
    /// ```
    pub fn len(&self) -> usize {
        let n = self.nobs();
        match self.shard {
            None if self.partial => n.div_ceil(self.batchsize),
            None => n / self.batchsize,
            Some((_, size)) => {
                let global = self.batchsize * size;
                let full = n / global;
                // A last, smaller global batch counts only when every rank gets a sample of it.
                full + usize::from(self.partial && n % global >= size)
            }
        }
    }

    /// True when an epoch has no batches.
    ///
    /// ```
    /// use flux_optim::DataLoader;
    /// use flux_tensor::Tensor;
    /// assert!(DataLoader::new(Tensor::zeros(&[3, 1]), Tensor::zeros(&[1]), 2).partial(false).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole data set `(x, y)`.
    ///
    /// ```
    /// use flux_optim::DataLoader;
    /// use flux_tensor::Tensor;
    /// let l = DataLoader::new(Tensor::zeros(&[3, 7]), Tensor::zeros(&[7]), 2);
    /// assert_eq!(l.data().0.shape(), &[3, 7]);
    /// ```
    pub fn data(&self) -> (&Tensor, &Tensor) {
        (&self.x, &self.y)
    }

    /// One epoch of batches. With shuffling, the order is drawn when this is called.
    ///
    /// ```
    /// use flux_optim::DataLoader;
    /// use flux_tensor::Tensor;
    /// let l = DataLoader::new(Tensor::zeros(&[3, 7]), Tensor::zeros(&[7]), 2);
    /// assert_eq!(l.iter().count(), 4);
    /// ```
    pub fn iter(&self) -> Batches<'_> {
        assert!(
            !(self.shuffle && self.rng.is_none() && self.shard.is_some()),
            "DataLoader: a sharded loader that shuffles needs its own generator, seeded alike on every rank (call .seed(s)), or the ranks' parts would overlap"
        );
        let order = if self.shuffle {
            let mut idx: Vec<usize> = (0..self.nobs()).collect();
            match &self.rng {
                Some(r) => idx.shuffle(&mut *r.lock().unwrap_or_else(|e| e.into_inner())),
                None => with_rng(|r| idx.shuffle(r)),
            }
            Some(idx)
        } else {
            None
        };
        Batches { loader: self, order, batch: 0, nbatches: self.len() }
    }

    /// The `(x, y)` tensors of samples `idx` (in that order).
    fn gather(&self, idx: &[usize]) -> (Tensor, Tensor) {
        (self.x.index_select(self.x.rank() - 1, idx), self.y.index_select(self.y.rank() - 1, idx))
    }
}

impl<'a> IntoIterator for &'a DataLoader {
    type Item = (Var, Var);
    type IntoIter = Batches<'a>;
    fn into_iter(self) -> Batches<'a> {
        self.iter()
    }
}

/// One epoch of a [`DataLoader`]: `(x, y)` batches as untracked [`Var`]s.
///
/// ```
/// use flux_optim::DataLoader;
/// use flux_tensor::Tensor;
/// let l = DataLoader::new(Tensor::zeros(&[3, 7]), Tensor::zeros(&[7]), 2);
/// let mut it = l.iter();
/// assert_eq!(it.len(), 4);
/// assert_eq!(it.next_tensors().unwrap().0.shape(), &[3, 2]);
/// ```
#[derive(Debug)]
pub struct Batches<'a> {
    loader: &'a DataLoader,
    order: Option<Vec<usize>>,
    batch: usize,
    nbatches: usize,
}

impl Batches<'_> {
    /// The next batch as tensors.
    ///
    /// ```
    /// use flux_optim::DataLoader;
    /// use flux_tensor::Tensor;
    /// let l = DataLoader::new(Tensor::zeros(&[3, 2]), Tensor::zeros(&[2]), 2);
    /// assert!(l.iter().next_tensors().is_some());
    /// ```
    pub fn next_tensors(&mut self) -> Option<(Tensor, Tensor)> {
        if self.batch >= self.nbatches {
            return None;
        }
        let l = self.loader;
        let range = l.batch_range(self.batch);
        self.batch += 1;
        Some(match &self.order {
            Some(order) => l.gather(&order[range]),
            None => (l.x.slice(l.x.rank() - 1, range.clone()), l.y.slice(l.y.rank() - 1, range)),
        })
    }
}

impl Iterator for Batches<'_> {
    type Item = (Var, Var);
    fn next(&mut self) -> Option<(Var, Var)> {
        self.next_tensors().map(|(x, y)| (Var::from(x), Var::from(y)))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.nbatches - self.batch;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Batches<'_> {}

#[cfg(test)]
mod shard_tests {
    use super::*;
    use proptest::prelude::*;

    /// The sample ids (the values of a `[n]` tensor holding `0..n`) of every batch of an epoch.
    fn epoch(l: &DataLoader) -> Vec<Vec<usize>> {
        l.iter().map(|(x, _)| x.data().to_vec().into_iter().map(|v| v as usize).collect()).collect()
    }

    fn ids(n: usize) -> Tensor {
        Tensor::from_vec((0..n).map(|i| i as f64).collect::<Vec<_>>(), &[n])
    }

    fn loader(n: usize, bs: usize, seed: Option<u64>, partial: bool) -> DataLoader {
        let l = DataLoader::new(ids(n), ids(n), bs).partial(partial);
        match seed {
            Some(s) => l.seed(s),
            None => l,
        }
    }

    proptest! {
        /// Disjoint, covering all but the at most `size - 1` samples of a too-small last batch,
        /// the same number of batches on every rank, and (rank parts concatenated) exactly the
        /// unsharded loader with `batchsize * size`, epoch after epoch.
        #[test]
        fn parts_partition_the_global_batches(n in 0usize..60, bs in 1usize..6, size in 1usize..5, seed in proptest::option::of(0u64..1000), partial in any::<bool>()) {
            let shards: Vec<DataLoader> = (0..size).map(|r| loader(n, bs, seed, partial).shard(r, size)).collect();
            let whole = loader(n, bs * size, seed, partial);
            for _epoch in 0..3 {
                let parts: Vec<Vec<Vec<usize>>> = shards.iter().map(epoch).collect();
                let global = epoch(&whole);
                let nb = parts[0].len();
                for (r, p) in parts.iter().enumerate() {
                    prop_assert_eq!(p.len(), nb, "rank {} has {} batches, rank 0 {}", r, p.len(), nb);
                    prop_assert_eq!(shards[r].len(), nb);
                    prop_assert!(p.iter().all(|b| !b.is_empty() && b.len() <= bs));
                }
                let mut seen = vec![false; n];
                for k in 0..nb {
                    let joined: Vec<usize> = parts.iter().flat_map(|p| p[k].iter().copied()).collect();
                    prop_assert_eq!(&joined, &global[k]);
                    for &i in &joined {
                        prop_assert!(!seen[i], "sample {} twice", i);
                        seen[i] = true;
                    }
                }
                let covered = seen.iter().filter(|&&s| s).count();
                let dropped_tail = global.len() - nb;
                prop_assert!(dropped_tail <= 1);
                let expect = if dropped_tail == 1 { n - global[nb].len() } else if partial { n } else { n / (bs * size) * bs * size };
                prop_assert_eq!(covered, expect);
                if dropped_tail == 1 {
                    prop_assert!(global[nb].len() < size);
                }
            }
        }
    }

    #[test]
    fn reshuffled_every_epoch_alike_on_every_rank() {
        let a = loader(40, 4, Some(5), true).shard(0, 2);
        let b = loader(40, 4, Some(5), true).shard(1, 2);
        let (a1, a2) = (epoch(&a), epoch(&a));
        let (b1, b2) = (epoch(&b), epoch(&b));
        assert_ne!(a1, a2, "a new order each epoch");
        for (x, y) in [(&a1, &b1), (&a2, &b2)] {
            let mut all: Vec<usize> = x.iter().chain(y.iter()).flatten().copied().collect();
            all.sort_unstable();
            assert_eq!(all, (0..40).collect::<Vec<_>>(), "the two ranks' parts of one epoch partition it");
        }
    }

    #[test]
    fn uneven_last_batch_is_split_evenly() {
        // 11 samples, 2 per rank, 3 ranks: global batches of 6 and 5; the 5 split 2, 2, 1.
        let parts: Vec<Vec<Vec<usize>>> = (0..3).map(|r| epoch(&loader(11, 2, None, true).shard(r, 3))).collect();
        assert_eq!(parts[0], vec![vec![0, 1], vec![6, 7]]);
        assert_eq!(parts[1], vec![vec![2, 3], vec![8, 9]]);
        assert_eq!(parts[2], vec![vec![4, 5], vec![10]]);
    }

    #[test]
    fn bad_shards_are_errors_naming_the_problem() {
        let e = loader(4, 2, None, true).try_shard(3, 2).unwrap_err().to_string();
        assert!(e.contains("rank 3 of 2"), "{e}");
        let e = loader(4, 2, None, true).try_shard(0, 0).unwrap_err().to_string();
        assert!(e.contains("0 ranks"), "{e}");
        let e = loader(4, 2, None, true).shuffle(true).try_shard(0, 2).unwrap_err().to_string();
        assert!(e.contains("seed"), "{e}");
    }

    #[test]
    #[should_panic(expected = "needs its own generator")]
    fn shuffling_after_sharding_without_a_seed_panics_rather_than_overlap() {
        let l = loader(4, 2, None, true).shard(0, 2).shuffle(true);
        let _ = l.iter();
    }
}
