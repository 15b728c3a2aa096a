//! [`TrainMode`]: when a layer with training behaviour (`Dropout`, `BatchNorm`) uses it.

use std::sync::atomic::{AtomicU8, Ordering};

/// When a layer behaves as in training.
///
/// `Auto` (the default) trains exactly while a gradient call runs on this thread
/// ([`flux_autograd::in_gradient`], Flux's `istraining()`); `testmode`/`trainmode` fix it to
/// `Test`/`Train` for a whole model.
///
/// ```
/// use flux_layers::{Dropout, TrainMode, testmode};
/// let d = Dropout::new(0.5);
/// assert_eq!(d.mode(), TrainMode::Auto);
/// testmode(&d);
/// assert_eq!(d.mode(), TrainMode::Test);
/// d.set_mode(TrainMode::Auto);
/// assert!(!d.mode().is_training());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TrainMode {
    /// Training inside a gradient call, test behaviour outside one.
    #[default]
    Auto,
    /// Always training behaviour.
    Train,
    /// Always test behaviour.
    Test,
}

impl TrainMode {
    /// Does this mode mean training right now (on this thread)?
    ///
    /// ```
    /// use flux_layers::TrainMode;
    /// assert!(TrainMode::Train.is_training());
    /// assert!(!TrainMode::Test.is_training());
    /// assert!(!TrainMode::Auto.is_training()); // no gradient call is running
    /// ```
    pub fn is_training(self) -> bool {
        match self {
            TrainMode::Auto => flux_autograd::in_gradient(),
            TrainMode::Train => true,
            TrainMode::Test => false,
        }
    }
}

/// A [`TrainMode`] that can be changed through a shared reference (layers are `Sync`).
#[derive(Debug, Default)]
pub(crate) struct ModeCell(AtomicU8);

impl Clone for ModeCell {
    fn clone(&self) -> ModeCell {
        ModeCell(AtomicU8::new(self.0.load(Ordering::Relaxed)))
    }
}

impl ModeCell {
    pub(crate) fn get(&self) -> TrainMode {
        match self.0.load(Ordering::Relaxed) {
            1 => TrainMode::Train,
            2 => TrainMode::Test,
            _ => TrainMode::Auto,
        }
    }

    pub(crate) fn set(&self, m: TrainMode) {
        let v = match m {
            TrainMode::Auto => 0,
            TrainMode::Train => 1,
            TrainMode::Test => 2,
        };
        self.0.store(v, Ordering::Relaxed)
    }
}
