//! Cases for the ops and losses of SPEC §7.3's last item: `prod`, `cumsum`, `var`, `std`,
//! `inv`, `det`, `logdet`, `solve`, `dot`, `kron`, `logsigmoid` and the losses `huber_loss`,
//! `kldivergence`, `focal_loss`, `binary_focal_loss`, `crossentropy_weighted`, alone and in
//! compositions. Matrices
//! for `inv`/`det`/`solve` are kept well-conditioned (a random matrix plus a multiple of the
//! identity) so finite differences are meaningful; `det` is also checked at a negative
//! determinant, `logdet` at symmetric positive definite and non-symmetric positive-determinant
//! matrices.

use flux_autograd::{dot, kron, Var};
use flux_layers::{binary_focal_loss, crossentropy_weighted, focal_loss, huber_loss, kldivergence, logsigmoid, onehotbatch, sigmoid};
use flux_tensor::{DType, Tensor};

use super::Case;

fn randn(shape: &[usize]) -> Tensor {
    Tensor::randn(shape).to_f64()
}

/// A random `n × n` matrix made well-conditioned: `randn + shift·I`.
fn conditioned(n: usize, shift: f64) -> Tensor {
    &randn(&[n, n]) + &Tensor::eye_of(n, DType::F64).map(|v| v * shift)
}

/// A matrix with a positive determinant, not symmetric (the first column's sign flipped if
/// needed).
fn positive_det(n: usize) -> Tensor {
    let a = conditioned(n, 2.0);
    if a.det().item() > 0.0 {
        a
    } else {
        let mut v = a.to_vec();
        v[..n].iter_mut().for_each(|x| *x = -*x);
        Tensor::from_vec(v, &[n, n])
    }
}

/// `B·Bᵀ + I`: symmetric positive definite.
fn spd(n: usize) -> Tensor {
    let b = randn(&[n, n]);
    &b.matmul(&b.transpose()) + &Tensor::eye_of(n, DType::F64)
}

/// Values in `[0.5, 1.5)` (away from zero, for `var`/`std` spreads and weights).
fn positive(shape: &[usize]) -> Tensor {
    Tensor::rand(shape).to_f64().map(|u| u + 0.5)
}

pub fn cases() -> Vec<Case> {
    let mut v = Vec::new();

    // prod: odd and even lengths, a matrix, one element, and a zero entry (exact there)
    for shape in [&[1][..], &[5][..], &[8][..], &[2, 3][..]] {
        v.push(Case::new("prod", format!("{shape:?}"), vec![randn(shape)], |x| x[0].prod().sin()));
    }
    v.push(Case::new("prod", "with a zero entry", vec![Tensor::from_vec(vec![0.7, 0.0, -1.2, 0.9], &[4])], |x| x[0].prod().tanh()));

    // cumsum along every dim, composed with a nonlinearity so second order is not zero
    for dim in 0..3 {
        v.push(Case::new("cumsum", format!("[3, 4, 2] dim {dim}"), vec![randn(&[3, 4, 2])], move |x| x[0].cumsum(dim).sin()));
    }
    v.push(Case::new("cumsum", "vector, twice", vec![randn(&[5])], |x| x[0].cumsum(0).cumsum(0).tanh()));

    // var and std (corrected)
    for shape in [&[6][..], &[2, 3][..]] {
        v.push(Case::new("var", format!("{shape:?}"), vec![randn(shape)], |x| x[0].var()));
        v.push(Case::new("std", format!("{shape:?}"), vec![randn(shape)], |x| x[0].std()));
    }

    // solve: vector and matrix right-hand sides, both operands differentiated
    for n in [1, 3, 4] {
        v.push(Case::new("solve", format!("[{n}, {n}] \\ [{n}]"), vec![conditioned(n, 3.0), randn(&[n])], |x| x[0].solve(&x[1]).tanh()));
    }
    v.push(Case::new("solve", "[3, 3] \\ [3, 2]", vec![conditioned(3, 3.0), randn(&[3, 2])], |x| x[0].solve(&x[1]).sin()));
    v.push(Case::new("solve", "needs pivoting", vec![Tensor::from_vec(vec![0.1, 2.0, 0.3, 1.5, -0.4, 0.2, 0.5, 0.8, 3.0], &[3, 3]), randn(&[3])], |x| {
        x[0].solve(&x[1]).tanh()
    }));

    // inv
    for n in [1, 2, 4] {
        v.push(Case::new("inv", format!("[{n}, {n}]"), vec![conditioned(n, 3.0)], |x| x[0].inv().tanh()));
    }

    // det: positive and negative determinants
    for n in [1, 3, 4] {
        v.push(Case::new("det", format!("[{n}, {n}]"), vec![conditioned(n, 2.0)], |x| x[0].det()));
    }
    let mut neg = positive_det(3).to_vec();
    neg[..3].iter_mut().for_each(|x| *x = -*x);
    v.push(Case::new("det", "negative determinant", vec![Tensor::from_vec(neg, &[3, 3])], |x| x[0].det().sin()));

    // logdet: symmetric positive definite and a non-symmetric positive determinant
    v.push(Case::new("logdet", "spd [3, 3]", vec![spd(3)], |x| x[0].logdet()));
    v.push(Case::new("logdet", "non-symmetric [4, 4]", vec![positive_det(4)], |x| x[0].logdet()));

    // dot and kron
    v.push(Case::new("dot", "[4]·[4]", vec![randn(&[4]), randn(&[4])], |x| dot(&x[0], &x[1]).sin()));
    v.push(Case::new("dot", "[2, 3]·[6]", vec![randn(&[2, 3]), randn(&[6])], |x| dot(&x[0], &x[1]).tanh()));
    v.push(Case::new("kron", "vectors", vec![randn(&[2]), randn(&[3])], |x| kron(&x[0], &x[1]).sin()));
    v.push(Case::new("kron", "matrices", vec![randn(&[2, 3]), randn(&[2, 2])], |x| kron(&x[0], &x[1]).tanh()));
    v.push(Case::new("kron", "vector ⊗ matrix", vec![randn(&[3]), randn(&[2, 2])], |x| kron(&x[0], &x[1]).sin()));

    // logsigmoid at large magnitudes (the plain range is in the activation list)
    v.push(Case::new("logsigmoid", "large |x|", vec![Tensor::from_vec(vec![-30.0, -8.0, 0.0, 8.0, 30.0], &[5])], |x| logsigmoid(&x[0])));

    losses(&mut v);
    compositions(&mut v);
    v
}

fn losses(v: &mut Vec<Case>) {
    // huber: errors kept away from the kink at |e| = 1 (and from 0, where |e| is not smooth)
    let offsets = Tensor::from_vec(vec![0.3, -0.6, 1.7, -2.2, 0.5, -1.4], &[2, 3]);
    let y = randn(&[2, 3]);
    let yhat = &y + &offsets;
    v.push(Case::new("huber_loss", "both branches", vec![yhat, y], |x| huber_loss(&x[0], &x[1])));

    // kldivergence of a softmax prediction from positive targets, both differentiated
    v.push(Case::new("kldivergence", "[4, 3]", vec![randn(&[4, 3]), positive(&[4, 3])], |x| kldivergence(&x[0].softmax(0), &x[1])));

    // focal loss and weighted cross-entropy of softmax outputs against one-hot targets
    let y = onehotbatch(&[0, 2, 1], 4).to_f64();
    let yf = y.clone();
    v.push(Case::new("focal_loss", "[4, 3]", vec![randn(&[4, 3])], move |x| focal_loss(&x[0].softmax(0), &Var::constant(yf.clone()))));
    let soft = Tensor::from_vec(vec![0.1, 0.2, 0.3, 0.4, 0.7, 0.1, 0.1, 0.1, 0.25, 0.25, 0.25, 0.25], &[4, 3]);
    v.push(Case::new("focal_loss", "soft targets differentiated", vec![randn(&[4, 3]), soft], |x| focal_loss(&x[0].softmax(0), &x[1])));
    // binary focal loss of sigmoid outputs against 0/1 targets, then against soft targets too
    let b = Tensor::from_vec(vec![1.0, 0.0, 0.0, 1.0, 1.0, 0.0], &[2, 3]);
    v.push(Case::new("binary_focal_loss", "[2, 3]", vec![randn(&[2, 3])], move |x| binary_focal_loss(&sigmoid(&x[0]), &Var::constant(b.clone()))));
    let soft = Tensor::from_vec(vec![0.2, 0.9, 0.5, 0.3, 0.7, 0.1], &[2, 3]);
    v.push(Case::new("binary_focal_loss", "soft targets differentiated", vec![randn(&[2, 3]), soft], |x| binary_focal_loss(&sigmoid(&x[0]), &x[1])));
    v.push(Case::new("crossentropy_weighted", "[4, 3], weights differentiated", vec![randn(&[4, 3]), positive(&[4])], move |x| {
        crossentropy_weighted(&x[0].softmax(0), &Var::constant(y.clone()), &x[1])
    }));
}

fn compositions(v: &mut Vec<Case>) {
    // a Gaussian log-likelihood's pieces: logdet(W·Wᵀ + I) and a solve against the same matrix
    v.push(Case::new("logdet", "composition: logdet(W·Wᵀ + I) + xᵀ(W·Wᵀ + I)⁻¹x", vec![randn(&[3, 4]), randn(&[3])], |x| {
        let cov = &x[0].matmul(&x[0].transpose()) + &Var::constant(Tensor::eye_of(3, DType::F64));
        &cov.logdet() + &dot(&x[1], &cov.solve(&x[1]))
    }));
    v.push(Case::new("inv", "composition: kron(inv(A), B)·c", vec![conditioned(2, 3.0), randn(&[2, 2]), randn(&[4])], |x| {
        kron(&x[0].inv(), &x[1]).matmul(&x[2]).tanh()
    }));
    v.push(Case::new("cumsum", "composition: prod(cumsum(A \\ b)) / std(b)", vec![conditioned(3, 3.0), randn(&[3])], |x| {
        &x[0].solve(&x[1]).cumsum(0).prod() / &x[1].std()
    }));
    v.push(Case::new("det", "composition: det(A)·var(A) + logsigmoid(trace)", vec![conditioned(3, 2.0)], |x| {
        let tr = dot(&x[0], &Var::constant(Tensor::eye_of(3, DType::F64)));
        &(&x[0].det() * &x[0].var()) + &logsigmoid(&tr)
    }));
}
