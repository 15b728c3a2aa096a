//! One-hot encoding: [`onehot`], [`onehotbatch`] and their inverse [`onecold`]. Labels are
//! 0-based class indices (Flux's are the labels themselves; `onehotbatch(ys, 0:9)` there is
//! `onehotbatch(&ys, 10)` here).

use flux_autograd::Var;
use flux_tensor::Tensor;

use crate::error::LayerError;

fn check_label(op: &str, label: usize, nclasses: usize, at: Option<usize>) -> Result<(), LayerError> {
    if label >= nclasses {
        let place = at.map(|i| format!(" (at position {i})")).unwrap_or_default();
        return Err(LayerError::Config {
            layer: op.to_string(),
            reason: format!("label {label}{place} is out of range for {nclasses} classes (labels are 0-based: 0..{nclasses})"),
        });
    }
    Ok(())
}

/// The one-hot vector of `label` among `nclasses` classes: `[nclasses]`, f32, a 1 at `label`.
/// Panics when `label >= nclasses` (see [`try_onehot`]).
///
/// ```
/// assert_eq!(flux_layers::onehot(2, 4).to_vec(), vec![0.0, 0.0, 1.0, 0.0]);
/// ```
pub fn onehot(label: usize, nclasses: usize) -> Tensor {
    try_onehot(label, nclasses).unwrap_or_else(|e| panic!("{e}"))
}

/// [`onehot`], returning an error for a label out of range.
///
/// ```
/// let e = flux_layers::try_onehot(4, 4).unwrap_err();
/// assert!(e.to_string().contains("label 4 is out of range for 4 classes"));
/// ```
pub fn try_onehot(label: usize, nclasses: usize) -> Result<Tensor, LayerError> {
    check_label("onehot", label, nclasses, None)?;
    let mut v = vec![0.0f32; nclasses];
    v[label] = 1.0;
    Ok(Tensor::from_vec(v, &[nclasses]))
}

/// One-hot columns for a batch of labels: `[nclasses, labels.len()]`, f32, column `j` is
/// `onehot(labels[j], nclasses)`. Panics for a label out of range (see [`try_onehotbatch`]).
///
/// ```
/// let y = flux_layers::onehotbatch(&[1, 0, 2], 3);
/// assert_eq!(y.shape(), &[3, 3]);
/// assert_eq!(y.to_vec(), vec![0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
/// ```
pub fn onehotbatch(labels: &[usize], nclasses: usize) -> Tensor {
    try_onehotbatch(labels, nclasses).unwrap_or_else(|e| panic!("{e}"))
}

/// [`onehotbatch`], returning an error naming the first label out of range and its position.
///
/// ```
/// let e = flux_layers::try_onehotbatch(&[0, 7], 3).unwrap_err();
/// assert!(e.to_string().contains("label 7 (at position 1)"));
/// ```
pub fn try_onehotbatch(labels: &[usize], nclasses: usize) -> Result<Tensor, LayerError> {
    let mut v = vec![0.0f32; nclasses * labels.len()];
    for (j, &l) in labels.iter().enumerate() {
        check_label("onehotbatch", l, nclasses, Some(j))?;
        v[j * nclasses + l] = 1.0;
    }
    Ok(Tensor::from_vec(v, &[nclasses, labels.len()]))
}

/// The inverse of one-hot: the index of the largest value along the first (class) dimension,
/// one per column (Flux's `onecold`, 0-based). A vector gives one label; `[C, N]` gives `N`.
/// The first maximum wins ties. Panics for a 0-d value or an empty class dimension (see
/// [`try_onecold`]).
///
/// ```
/// use flux_autograd::Var;
/// use flux_layers::{onecold, onehotbatch};
/// use flux_tensor::Tensor;
/// let p = Var::from(Tensor::from_vec(vec![0.1, 0.7, 0.2, 0.5, 0.3, 0.2], &[3, 2]));
/// assert_eq!(onecold(&p), vec![1, 0]);
/// assert_eq!(onecold(&Var::from(onehotbatch(&[2, 0, 1], 3))), vec![2, 0, 1]);
/// ```
pub fn onecold(x: &Var) -> Vec<usize> {
    try_onecold(x).unwrap_or_else(|e| panic!("{e}"))
}

/// [`onecold`], returning an error for a 0-d value or an empty class dimension.
///
/// ```
/// assert!(flux_layers::try_onecold(&flux_autograd::Var::scalar(1.0)).is_err());
/// ```
pub fn try_onecold(x: &Var) -> Result<Vec<usize>, LayerError> {
    let shape = x.shape();
    if shape.rank() == 0 || shape[0] == 0 {
        return Err(LayerError::InputShape { layer: "onecold".into(), got: shape.to_vec(), expected: "[C] or [C, N...] with C >= 1 classes".into() });
    }
    if shape.numel() == 0 {
        return Ok(Vec::new());
    }
    Ok(x.data().try_argmax(0)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flux_tensor::DType;

    #[test]
    fn round_trip() {
        let labels = [3, 0, 0, 9, 4];
        let y = onehotbatch(&labels, 10);
        assert_eq!(y.dtype(), DType::F32);
        assert_eq!(y.sum().item(), 5.0);
        assert_eq!(onecold(&Var::from(y)), labels.to_vec());
    }

    #[test]
    fn empty_batch() {
        let y = onehotbatch(&[], 4);
        assert_eq!(y.shape(), &[4, 0]);
        assert_eq!(onecold(&Var::from(y)), Vec::<usize>::new());
    }

    #[test]
    fn higher_rank_gives_one_label_per_column() {
        let x = Var::from(Tensor::from_vec(vec![0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0], &[2, 2, 2]));
        assert_eq!(onecold(&x), vec![1, 0, 1, 0]);
    }

    #[test]
    #[should_panic(expected = "onehot: label 3 is out of range for 3 classes")]
    fn out_of_range_panics() {
        onehot(3, 3);
    }

    #[test]
    fn onecold_errors() {
        assert!(try_onecold(&Var::from(Tensor::zeros(&[0, 3]))).unwrap_err().to_string().contains("onecold"));
    }
}
