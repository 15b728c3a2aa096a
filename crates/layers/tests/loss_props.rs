//! Property tests: every loss against a naive reference computation, over random shapes and
//! values; shapes of results; gradients finite at extreme inputs.

use flux_autograd::{gradient, Var};
use flux_layers::{binarycrossentropy, crossentropy, logitbinarycrossentropy, logitcrossentropy, mse, norm, onecold, onehotbatch};
use flux_tensor::Tensor;
use proptest::prelude::*;

/// A shape `[C]` or `[C, N]` or `[C, A, B]`, and two arrays of that many elements.
fn shaped() -> impl Strategy<Value = (Vec<usize>, Vec<f64>, Vec<f64>)> {
    prop_oneof![
        (1usize..6).prop_map(|c| vec![c]),
        (1usize..6, 1usize..5).prop_map(|(c, n)| vec![c, n]),
        (1usize..4, 1usize..3, 1usize..3).prop_map(|(c, a, b)| vec![c, a, b]),
    ]
    .prop_flat_map(|shape| {
        let n: usize = shape.iter().product();
        (Just(shape), prop::collection::vec(-5.0f64..5.0, n), prop::collection::vec(0.0f64..1.0, n))
    })
}

fn var(v: &[f64], shape: &[usize]) -> Var {
    Var::from(Tensor::from_vec(v.to_vec(), shape))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * (1.0 + b.abs())
}

/// Columns (samples) of a column-major array with `c` features.
fn columns(v: &[f64], c: usize) -> Vec<&[f64]> {
    v.chunks(c).collect()
}

fn softmax_col(col: &[f64]) -> Vec<f64> {
    let m = col.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = col.iter().map(|x| (x - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn mse_is_the_mean_squared_difference((shape, a, b) in shaped()) {
        let l = mse(&var(&a, &shape), &var(&b, &shape));
        prop_assert_eq!(l.rank(), 0);
        let want = a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / a.len() as f64;
        prop_assert!(close(l.item(), want), "{} vs {}", l.item(), want);
    }

    #[test]
    fn crossentropy_sums_features_and_averages_samples((shape, logits, y) in shaped()) {
        let c = shape[0];
        let p: Vec<f64> = columns(&logits, c).into_iter().flat_map(softmax_col).collect();
        let l = crossentropy(&var(&p, &shape), &var(&y, &shape));
        let samples = (p.len() / c) as f64;
        let want = -p.iter().zip(&y).map(|(p, y)| if *y == 0.0 { 0.0 } else { y * p.ln() }).sum::<f64>() / samples;
        prop_assert!(close(l.item(), want), "{} vs {}", l.item(), want);
        // the logit form agrees
        let ll = logitcrossentropy(&var(&logits, &shape), &var(&y, &shape));
        prop_assert!(close(ll.item(), want), "{} vs {}", ll.item(), want);
    }

    #[test]
    fn binary_losses_average_every_element((shape, logits, y) in shaped()) {
        let n = logits.len() as f64;
        let eps = f64::EPSILON;
        let p: Vec<f64> = logits.iter().map(|x| 1.0 / (1.0 + (-x).exp())).collect();
        let want = p.iter().zip(&y).map(|(p, y)| -y * (p + eps).ln() - (1.0 - y) * (1.0 - p + eps).ln()).sum::<f64>() / n;
        let l = binarycrossentropy(&var(&p, &shape), &var(&y, &shape));
        prop_assert!(close(l.item(), want), "{} vs {}", l.item(), want);
        let want_logit = logits.iter().zip(&y).map(|(x, y)| (1.0 - y) * x + (1.0 + (-x).exp()).ln()).sum::<f64>() / n;
        let ll = logitbinarycrossentropy(&var(&logits, &shape), &var(&y, &shape));
        prop_assert!(close(ll.item(), want_logit), "{} vs {}", ll.item(), want_logit);
    }

    #[test]
    fn logit_losses_are_finite_at_extreme_logits((shape, logits, y) in shaped(), scale in 1e2f64..1e30) {
        let x = var(&logits.iter().map(|v| v * scale).collect::<Vec<_>>(), &shape);
        let y = var(&y, &shape);
        for f in [logitcrossentropy as fn(&Var, &Var) -> Var, logitbinarycrossentropy] {
            prop_assert!(f(&x, &y).item().is_finite());
            let g = gradient(|x: &Var| f(x, &y), &x);
            prop_assert!(g.to_vec().iter().all(|v| v.is_finite()));
        }
    }

    #[test]
    fn crossentropy_gradient_is_softmax_minus_target((shape, logits, labels) in shaped()) {
        // one-hot targets: d logitcrossentropy / d logits = (softmax - y) / samples
        let c = shape[0];
        let samples = logits.len() / c;
        let lab: Vec<usize> = labels.iter().take(samples).map(|u| ((u * c as f64) as usize).min(c - 1)).collect();
        let y = Var::from(onehotbatch(&lab, c).to_f64().reshape(&shape));
        let g = gradient(|x: &Var| logitcrossentropy(x, &y), &var(&logits, &shape)).to_vec();
        let p: Vec<f64> = columns(&logits, c).into_iter().flat_map(softmax_col).collect();
        for ((g, p), y) in g.iter().zip(p).zip(y.to_vec()) {
            prop_assert!((g - (p - y) / samples as f64).abs() < 1e-12);
        }
        prop_assert_eq!(onecold(&y), lab);
    }

    #[test]
    fn norm_is_the_l2_norm((shape, a, _b) in shaped()) {
        let n = norm(&var(&a, &shape)).item();
        let want = a.iter().map(|x| x * x).sum::<f64>().sqrt();
        prop_assert!(close(n, want));
    }

    #[test]
    fn mismatched_shapes_are_errors((shape, a, _b) in shaped(), extra in 1usize..3) {
        let mut other = shape.clone();
        other[0] += extra;
        let n: usize = other.iter().product();
        let y = Var::from(Tensor::zeros(&other));
        for (name, f) in [
            ("mse", flux_layers::try_mse as fn(&Var, &Var) -> Result<Var, flux_layers::LayerError>),
            ("crossentropy", flux_layers::try_crossentropy),
            ("logitcrossentropy", flux_layers::try_logitcrossentropy),
            ("binarycrossentropy", flux_layers::try_binarycrossentropy),
            ("logitbinarycrossentropy", flux_layers::try_logitbinarycrossentropy),
        ] {
            let msg = f(&var(&a, &shape), &y).unwrap_err().to_string();
            prop_assert!(msg.starts_with(name), "{}", msg);
            prop_assert!(msg.contains(&format!("{shape:?}")) && msg.contains(&format!("{other:?}")), "{}", msg);
        }
        prop_assert!(n > 0);
    }
}
