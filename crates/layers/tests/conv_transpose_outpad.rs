//! `ConvTranspose` with `outpad` against PyTorch's `conv_transpose2d` with `output_padding`
//! (f64, to 1e-6): the output and the gradients of `sum(y .* r)` for the input and the weight,
//! with stride (sH 2, sW 3), padding (pH 1, pW 0), output padding (oH 1, oW 2) and dilation
//! (dH 2, dW 1). Inputs are formulas computed on both sides; the values were made by
//!
//! ```python
//! import math, torch
//! torch.set_default_dtype(torch.float64)
//! fill = lambda shape, f: torch.tensor([f(i) for i in range(math.prod(shape))]).reshape(shape)
//! x = fill([1, 2, 2, 3], lambda i: math.sin(0.37 * i + 0.1)).requires_grad_()  # (N, Cin, H, W)
//! w = fill([2, 2, 3, 2], lambda i: math.cos(0.23 * i)).requires_grad_()        # (Cin, Cout, kH, kW)
//! b = fill([2], lambda i: 0.1 * i - 0.05)
//! y = torch.nn.functional.conv_transpose2d(x, w, b, stride=(2, 3), padding=(1, 0), output_padding=(1, 2), dilation=(2, 1))
//! (y * fill(list(y.shape), lambda i: math.sin(0.11 * i + 0.5))).sum().backward()
//! ```
//!
//! A contiguous torch `(N, C, H, W)` tensor has the memory of a column-major `[W, H, C, N]` one,
//! and its `(Cin, Cout, kH, kW)` weight that of `[kW, kH, Cout, Cin]`: ours with the kernel
//! flipped (Flux's `ConvTranspose` is the gradient of a convolution, PyTorch's of a
//! cross-correlation).

use flux_autograd::{gradient, Var};
use flux_layers::{identity, ConvTranspose, Layer};
use flux_tensor::Tensor;

#[rustfmt::skip]
const Y: &[f64] = &[-0.05, -0.05, -0.05, -0.05, -0.05, -0.05, -0.05, -0.05, -0.05, -0.05, 0.5090579028837476, 0.5214543944273254, -0.05, 1.4885578034033136, 1.4619439003767476, -0.05, 2.259821122933176, 2.19779889225965, -0.05, -0.05, -0.05, -0.05, -0.05, -0.05, -0.05, -0.05, -0.05, -0.05, -0.05, -0.05, 0.5037539773803195, 0.45688888332424166, -0.05, 1.3557001304570735, 1.1754220565847002, -0.05, 2.0173913653138795, 1.7281001032011607, -0.05, -0.05, -0.05, -0.05, -0.05, -0.05, -0.05, -0.05, -0.05, -0.05, -0.05, -0.05, 0.7610020252676879, 0.5366947241996144, -0.05, 1.0810906711067116, 0.7984072590598467, -0.05, 1.248091500797649, 0.9452918514647015, -0.05, -0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.2728141597365618, 0.14694961401980233, 0.05, 0.4016459522577042, 0.05063060503155768, 0.05, 0.4828841147865016, -0.045773753389406466, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.01597900262308559, -0.113199817760738, 0.05, -0.30041795440220637, -0.6330109778474658, 0.05, -0.5693874851840965, -1.0603798062318814, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, -0.6702688905032474, -0.8713244806890159, 0.05, -0.824678837447118, -1.1027890662057256, 0.05, -0.8607051070464395, -1.1782290595894704, 0.05, 0.05];
#[rustfmt::skip]
const DX: &[f64] = &[1.6005334144328414, 1.5630503262039608, 1.3568901728767675, 1.287070036113319, 0.7010490646341729, 0.03937416395647553, -1.6801612715895284, -1.2985791828807765, -0.7768605152698863, -1.002974204616827, -0.5192188169339929, 0.020568231864284026];
#[rustfmt::skip]
const DW: &[f64] = &[2.5882815926400395, 2.4661994084003593, -1.20865578575143, -1.438216198047152, -1.0331736200683677, -0.7802589806772815, 2.1574051975995383, 1.9547038976563673, -1.8207077529688664, -1.9934441957722806, -0.28172635157410386, -0.010294489005004626, -1.5181009075803904, -1.4246110148550182, 2.7177309708240434, 2.7615480044575422, -1.155711385625544, -1.4253924897574262, -1.2032712745231857, -1.0639605202847815, 2.753440233855336, 2.7010956116433116, -1.883349220346039, -2.095337711572906];

fn fill(shape: &[usize], f: impl Fn(usize) -> f64) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec((0..n).map(f).collect::<Vec<_>>(), shape)
}

fn close(got: &Tensor, want: &[f64], what: &str) {
    let g = got.to_vec();
    assert_eq!(g.len(), want.len(), "{what}: {} values, PyTorch has {}", g.len(), want.len());
    for (i, (a, b)) in g.iter().zip(want).enumerate() {
        assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{what}[{i}]: {a} vs PyTorch's {b}");
    }
}

/// PyTorch's weight `[kW, kH, Cout, Cin]` (flat as torch stores it) with the kernel flipped.
fn flipped(t: &Tensor) -> Tensor {
    let s = t.shape().to_vec();
    let (kw, kh, rest) = (s[0], s[1], s[2] * s[3]);
    let v = t.to_vec();
    let out: Vec<f64> = (0..kw * kh * rest).map(|i| v[(kw - 1 - i % kw) + kw * ((kh - 1 - (i / kw) % kh) + kh * (i / (kw * kh)))]).collect();
    Tensor::from_vec(out, &s)
}

#[test]
fn outpad_matches_pytorch_output_padding() {
    let torch_w = fill(&[2, 3, 2, 2], |i| (0.23 * i as f64).cos());
    let bias = fill(&[2], |i| 0.1 * i as f64 - 0.05);
    let layer = ConvTranspose::from_weights(flipped(&torch_w), bias, identity).unwrap().stride(&[3, 2]).pad(&[0, 0, 1, 1]).dilation(&[1, 2]).outpad(&[2, 1]);
    assert_eq!(layer.to_string(), "ConvTranspose((2, 3), 2 => 2, pad=(0, 0, 1, 1), stride=(3, 2), dilation=(1, 2), outpad=(2, 1))");
    let x = Var::from(fill(&[3, 2, 2, 1], |i| (0.37 * i as f64 + 0.1).sin()));
    let y = layer.forward(&x);
    assert_eq!(y.shape(), &[10, 6, 2, 1]);
    close(&y.data(), Y, "y");
    let r = Var::from(fill(&[10, 6, 2, 1], |i| (0.11 * i as f64 + 0.5).sin()));
    close(&gradient(|x| (layer.forward(x) * &r).sum(), &x).data(), DX, "dx");
    let gs = flux_autograd::gradient_params(|| (layer.forward(&x) * &r).sum(), &flux_layers::params(&layer));
    close(&flipped(&gs[layer.weight()].data()), DW, "dw");
}

#[test]
fn outpad_must_be_smaller_than_the_stride() {
    let c = ConvTranspose::new(&[3], 1, 1, identity).stride(&[2]).outpad(&[2]);
    let e = c.try_forward(&Var::from(Tensor::rand(&[5, 1, 1]))).unwrap_err().to_string();
    assert!(e.contains("ConvTranspose((3,), 1 => 1, stride=2, outpad=2)") && e.contains("smaller than the stride"), "{e}");
    // without outpad the sizes are the plain transpose's; outpad 1 adds one at the end
    let x = Var::from(Tensor::rand(&[5, 1, 1]));
    assert_eq!(ConvTranspose::new(&[3], 1, 1, identity).stride(&[2]).forward(&x).shape(), &[11, 1, 1]);
    assert_eq!(ConvTranspose::new(&[3], 1, 1, identity).stride(&[2]).outpad(&[1]).forward(&x).shape(), &[12, 1, 1]);
}
