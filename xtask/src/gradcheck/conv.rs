//! Cases for convolutions and pooling: conv (1-, 2- and 3-d), its two adjoints, the transposed
//! conv, max and mean pooling, at odd sizes, strides larger than the kernel, padding larger than
//! half the kernel (and per side), groups > 1, dilation > 1, flipped and unflipped kernels.

use flux_layers::{
    flatten, tanh, AdaptiveMaxPool, AdaptiveMeanPool, Conv, ConvTranspose, CrossCor, GlobalMaxPool, GlobalMeanPool, Layer, MaxPool, MeanPool, Upsample,
    UpsampleMode,
};
use flux_tensor::{ConvSpec, PoolSpec, Tensor};

use super::Case;

fn randn(shape: &[usize]) -> Tensor {
    Tensor::randn(shape).to_f64()
}

/// A conv case in both arguments (bilinear: the second order is the cross term).
fn conv_case(what: &str, x: &[usize], w: &[usize], spec: ConvSpec) -> Case {
    let s = spec.clone();
    Case::new("conv", format!("{what}: x {x:?}, w {w:?}, {spec:?}"), vec![randn(x), randn(w)], move |v| v[0].conv(&v[1], &s))
}

pub fn cases() -> Vec<Case> {
    let mut v = vec![
        conv_case("1-d, stride 2, pad per side (1, 2), flipped", &[7, 3, 2], &[3, 3, 4], ConvSpec::new().stride(&[2]).pad(&[1, 2]).flip(true)),
        conv_case("1-d, stride 3 > kernel 2, dilation 2", &[9, 2, 1], &[2, 2, 3], ConvSpec::new().stride(&[3]).dilation(&[2])),
        conv_case(
            "2-d, groups 2, dilation 2, pad 2 > k/2, stride 3",
            &[7, 5, 4, 2],
            &[3, 2, 2, 4],
            ConvSpec::new().groups(2).dilation(&[2, 1]).pad(&[2]).stride(&[3, 2]),
        ),
        conv_case("2-d, asymmetric pad (0, 2, 1, 0), flipped", &[5, 6, 2, 2], &[3, 3, 2, 3], ConvSpec::new().pad(&[0, 2, 1, 0]).flip(true)),
        conv_case("2-d, depthwise (groups = channels = 3)", &[5, 5, 3, 1], &[3, 3, 1, 3], ConvSpec::new().groups(3).pad(&[1])),
        conv_case("3-d, stride (1, 2, 1), pad 1", &[5, 4, 3, 2, 1], &[2, 2, 2, 2, 3], ConvSpec::new().stride(&[1, 2, 1]).pad(&[1])),
        conv_case("3-d, flipped, groups 2", &[3, 4, 3, 4, 2], &[2, 3, 2, 2, 2], ConvSpec::new().groups(2).flip(true)),
    ];
    // the adjoints as ops in their own right (their backward rules are conv and each other)
    let spec = ConvSpec::new().stride(&[2]).pad(&[1, 0, 2, 1]).groups(2).flip(true);
    let (xs, ws) = ([7usize, 6, 4, 2], [3usize, 2, 2, 4]);
    let ys = spec.output_shape(&xs, &ws).expect("valid case");
    let s = spec.clone();
    v.push(Case::new("conv_data", format!("2-d, stride 2, per-side pad, groups 2: dy {ys:?}"), vec![randn(&ys), randn(&ws)], move |v| {
        v[0].conv_data(&v[1], &xs, &s)
    }));
    let s = spec.clone();
    v.push(Case::new("conv_filter", format!("2-d, stride 2, per-side pad, groups 2: x {xs:?}"), vec![randn(&xs), randn(&ys)], move |v| {
        v[0].conv_filter(&v[1], &ws, &s)
    }));
    let s = ConvSpec::new().stride(&[3]).dilation(&[2]).pad(&[2]);
    v.push(Case::new("conv_filter", "1-d, stride 3, dilation 2, pad 2", vec![randn(&[11, 2, 2]), randn(&[5, 3, 2])], move |v| {
        v[0].conv_filter(&v[1], &[2, 2, 3], &s)
    }));
    // transposed convs
    for (what, x, w, spec) in [
        ("2-d, stride 2, pad 1, groups 2", vec![3, 4, 4, 2], vec![3, 3, 1, 4], ConvSpec::new().stride(&[2]).pad(&[1]).groups(2).flip(true)),
        ("1-d, stride 3 > kernel 2, dilation 2", vec![4, 2, 1], vec![2, 3, 2], ConvSpec::new().stride(&[3]).dilation(&[2])),
        ("3-d, stride 2", vec![2, 3, 2, 2, 1], vec![2, 2, 2, 1, 2], ConvSpec::new().stride(&[2])),
    ] {
        v.push(Case::new("conv_transpose", format!("{what}: x {x:?}, w {w:?}"), vec![randn(&x), randn(&w)], move |v| v[0].conv_transpose(&v[1], &spec)));
    }
    // pooling: max pooling is piecewise linear (second order is zero, checked all the same),
    // mean pooling linear; composed with a smooth function the second order is not trivial
    for (what, x, spec) in [
        ("2-d, odd 7x5, window 3, stride 2, pad 1", vec![7, 5, 2, 2], PoolSpec::new(&[3, 3]).stride(&[2]).pad(&[1])),
        ("1-d, stride 3 > window 2", vec![9, 2, 2], PoolSpec::new(&[2]).stride(&[3])),
        ("2-d, per-side pad (1, 0, 0, 1)", vec![5, 5, 1, 2], PoolSpec::new(&[2, 2]).pad(&[1, 0, 0, 1])),
        ("3-d, window 2", vec![4, 5, 3, 2, 1], PoolSpec::new(&[2, 2, 2])),
    ] {
        let s = spec.clone();
        v.push(Case::new("maxpool", format!("{what}: x {x:?}"), vec![randn(&x)], move |v| v[0].maxpool(&s)));
        v.push(Case::new("meanpool", format!("{what}: x {x:?}"), vec![randn(&x)], move |v| v[0].meanpool(&spec)));
    }
    v.push(Case::new("meanpool", "2-d, pad 2 > window/2, then tanh", vec![randn(&[5, 4, 2, 1])], |v| v[0].meanpool(&PoolSpec::new(&[3, 3]).pad(&[2])).tanh()));
    // a small CNN: conv, tanh, max pool, conv, mean; second order through all of it
    v.push(Case::new(
        "conv",
        "conv → tanh → maxpool → conv (a CNN's gradient penalty)",
        vec![randn(&[6, 6, 2, 2]), randn(&[3, 3, 2, 3]), randn(&[2, 2, 3, 2])],
        |v| {
            let h = v[0].conv(&v[1], &ConvSpec::new().pad(&[1]).flip(true)).tanh().maxpool(&PoolSpec::new(&[2, 2]));
            h.conv(&v[2], &ConvSpec::new()).tanh()
        },
    ));
    layer_cases(&mut v);
    v
}

/// The layers, with respect to their input (their parameters enter through the conv ops above).
fn layer_cases(v: &mut Vec<Case>) {
    let c = Conv::from_weights(randn(&[3, 2, 2, 3]), randn(&[3]), tanh).expect("valid parts").pad(&[1, 1, 0, 2]).stride(&[2, 1]);
    v.push(Case::new("Conv", c.to_string(), vec![randn(&[7, 5, 2, 2])], move |x| c.forward(&x[0])));
    let c = CrossCor::from_weights(randn(&[3, 1, 4]), randn(&[4]), tanh).expect("valid parts").groups(2).dilation(&[2]);
    v.push(Case::new("CrossCor", c.to_string(), vec![randn(&[9, 2, 2])], move |x| c.forward(&x[0])));
    let c = ConvTranspose::from_weights(randn(&[3, 3, 2, 3]), randn(&[2]), tanh).expect("valid parts").stride(&[2]).pad(&[1]);
    v.push(Case::new("ConvTranspose", c.to_string(), vec![randn(&[3, 4, 3, 2])], move |x| c.forward(&x[0])));
    let p = MaxPool::new(&[3, 2]).stride(&[2]).pad(&[1]);
    v.push(Case::new("MaxPool", p.to_string(), vec![randn(&[7, 5, 2, 2])], move |x| p.forward(&x[0])));
    let p = MeanPool::new(&[3]).stride(&[4]);
    v.push(Case::new("MeanPool", p.to_string(), vec![randn(&[11, 2, 2])], move |x| p.forward(&x[0]).tanh()));
    v.push(Case::new("GlobalMaxPool", "[5, 3, 2, 2]", vec![randn(&[5, 3, 2, 2])], |x| GlobalMaxPool.forward(&x[0])));
    v.push(Case::new("GlobalMeanPool", "[5, 3, 2, 2], then tanh", vec![randn(&[5, 3, 2, 2])], |x| GlobalMeanPool.forward(&x[0]).tanh()));
    let p = AdaptiveMaxPool::new(&[2, 3]);
    v.push(Case::new("AdaptiveMaxPool", p.to_string(), vec![randn(&[7, 8, 2, 1])], move |x| p.forward(&x[0])));
    let p = AdaptiveMeanPool::new(&[3, 2]);
    v.push(Case::new("AdaptiveMeanPool", p.to_string(), vec![randn(&[7, 5, 2, 1])], move |x| p.forward(&x[0]).tanh()));
    let u = Upsample::new(UpsampleMode::Nearest, &[2, 3]);
    v.push(Case::new("Upsample", u.to_string(), vec![randn(&[3, 2, 2, 1])], move |x| u.forward(&x[0]).tanh()));
    let u = Upsample::new(UpsampleMode::Bilinear, &[3, 2]);
    v.push(Case::new("Upsample", u.to_string(), vec![randn(&[3, 2, 2, 2])], move |x| u.forward(&x[0]).tanh()));
    v.push(Case::new("flatten", "[3, 2, 2, 2], then tanh", vec![randn(&[3, 2, 2, 2])], |x| flatten(&x[0]).tanh()));
}
