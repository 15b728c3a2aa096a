//! Convolutions and pools against PyTorch (held-out values in f64, to 1e-6): outputs and the
//! gradients of `sum(y .* r)` for cross-correlation with per-side padding, stride, dilation and
//! groups (1-d and 2-d), max pooling and mean pooling. The values come from
//! `data/conv_torch_gen.py`; the inputs are formulas computed on both sides.

use flux_autograd::{gradient, Var};
use flux_tensor::{ConvSpec, PoolSpec, Tensor};

include!("data/conv_torch.rs");

fn fill(shape: &[usize], f: impl Fn(usize) -> f64) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec((0..n).map(f).collect::<Vec<_>>(), shape)
}
fn xf(i: usize) -> f64 {
    (0.37 * i as f64 + 0.1).sin()
}
fn wf(i: usize) -> f64 {
    (0.23 * i as f64).cos()
}
fn rf(i: usize) -> f64 {
    (0.11 * i as f64 + 0.5).sin()
}

fn close(got: &Tensor, want: &[f64], what: &str) {
    let g = got.to_vec();
    assert_eq!(g.len(), want.len(), "{what}: {} values, PyTorch has {}", g.len(), want.len());
    for (i, (a, b)) in g.iter().zip(want).enumerate() {
        assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{what}[{i}]: {a} vs PyTorch's {b}");
    }
}

/// `y = f(x, w)`, then `d/dx` and `d/dw` of `sum(y .* r)`.
fn check(tag: &str, xs: &[usize], ws: &[usize], f: impl Fn(&Var, &Var) -> Var, y: &[f64], dx: &[f64], dw: Option<&[f64]>) {
    let x = Var::from(fill(xs, xf));
    let w = Var::from(fill(ws, wf));
    let out = f(&x, &w);
    close(&out.data(), y, &format!("{tag} y"));
    let r = Var::from(fill(&out.shape(), rf));
    close(&gradient(|x| (f(x, &w) * &r).sum(), &x).data(), dx, &format!("{tag} dx"));
    if let Some(dw) = dw {
        close(&gradient(|w| (f(&x, w) * &r).sum(), &w).data(), dw, &format!("{tag} dw"));
    }
}

#[test]
fn crosscor_2d_groups_stride_dilation_per_side_padding() {
    // torch: x (2, 4, 7, 9), w (6, 2, 3, 2), pad (left 1, right 2, top 0, bottom 1), stride (2, 1),
    // dilation (1, 2), groups 2
    let spec = ConvSpec::new().pad(&[1, 2, 0, 1]).stride(&[1, 2]).dilation(&[2, 1]).groups(2);
    check("conv 2-d", &[9, 7, 4, 2], &[2, 3, 2, 6], |x, w| x.conv(w, &spec), C2_Y, C2_DX, Some(C2_DW));
}

#[test]
fn crosscor_1d_stride_dilation_asymmetric_padding() {
    let spec = ConvSpec::new().pad(&[2, 1]).stride(&[2]).dilation(&[2]);
    check("conv 1-d", &[11, 3, 2], &[3, 3, 4], |x, w| x.conv(w, &spec), C1_Y, C1_DX, Some(C1_DW));
}

#[test]
fn maxpool_2d_stride_padding() {
    let spec = PoolSpec::new(&[2, 3]).stride(&[2]).pad(&[1]);
    check("maxpool", &[6, 7, 3, 2], &[1], |x, _| x.maxpool(&spec), MP_Y, MP_DX, None);
}

#[test]
fn meanpool_2d_stride_padding_counted() {
    let spec = PoolSpec::new(&[3, 2]).stride(&[1, 2]).pad(&[1]);
    check("meanpool", &[6, 7, 3, 2], &[1], |x, _| x.meanpool(&spec), AP_Y, AP_DX, None);
}
