//! [`DataLoader`]: mini-batches of `(x, y)` along the last (batch) dimension, optionally
//! shuffled every epoch with a reproducible generator.

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
        Ok(DataLoader { x, y, batchsize, shuffle: false, partial: true, rng: None })
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
        if self.partial {
            n.div_ceil(self.batchsize)
        } else {
            n / self.batchsize
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
        let start = self.batch * l.batchsize;
        let end = (start + l.batchsize).min(l.nobs());
        self.batch += 1;
        Some(match &self.order {
            Some(order) => l.gather(&order[start..end]),
            None => (l.x.slice(l.x.rank() - 1, start..end), l.y.slice(l.y.rank() - 1, start..end)),
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
