//! Cases for the autograd crate's primitives: every unary function, broadcasting arithmetic,
//! reductions, matmul, shape and indexing ops, softmax-like ops, custom ops.

use flux_autograd::Var;
use flux_tensor::{BinaryOp, ReduceOp, Tensor, UnaryOp};

use super::Case;

fn randn(shape: &[usize]) -> Tensor {
    Tensor::randn(shape)
}

/// Values away from zero (for ln, sqrt, recip, powf, abs).
fn positive(shape: &[usize]) -> Tensor {
    Tensor::rand(shape) + 0.5
}

pub fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    use UnaryOp::*;
    let smooth = [
        (Neg, "neg"),
        (Exp, "exp"),
        (Sin, "sin"),
        (Cos, "cos"),
        (Tanh, "tanh"),
        (Sigmoid, "sigmoid"),
        (Softplus, "softplus"),
        (Gelu, "gelu"),
        (GeluDeriv, "gelu_deriv"),
        (Powi(3), "powi"),
        (AddScalar(1.5), "add_scalar"),
        (MulScalar(-2.0), "mul_scalar"),
        (RSubScalar(2.0), "rsub_scalar"),
    ];
    for (op, name) in smooth {
        for shape in [&[][..], &[3][..], &[2, 3][..]] {
            v.push(Case::new(name, format!("{shape:?}"), vec![randn(shape)], move |x| x[0].unary(op)));
        }
    }
    let positive_ops = [(Ln, "ln"), (Log1p, "log1p"), (Sqrt, "sqrt"), (Recip, "recip"), (Powf(1.7), "powf"), (RDivScalar(3.0), "rdiv_scalar"), (Abs, "abs")];
    for (op, name) in positive_ops {
        for shape in [&[][..], &[2, 3][..]] {
            v.push(Case::new(name, format!("{shape:?}"), vec![positive(shape)], move |x| x[0].unary(op)));
        }
    }
    // piecewise-linear ops: first order only (their second derivative is zero almost everywhere
    // and the checker's step must not straddle a kink)
    for (op, name) in [(Relu, "relu"), (MaxScalar(0.1), "max_scalar"), (MinScalar(0.1), "min_scalar")] {
        let x = randn(&[4, 3]).map(|x| if x.abs() < 0.05 { x + 0.2 } else { x });
        v.push(Case::new(name, "[4, 3]", vec![x], move |x| x[0].unary(op)).first_only());
    }
    // but their composition with smooth functions is checked to second order
    v.push(Case::new("relu", "relu(x)^2", vec![randn(&[5]).map(|x| if x.abs() < 0.05 { 0.3 } else { x })], |x| x[0].relu().powi(2)));

    // broadcasting arithmetic: same shape, vector against matrix, row against matrix, scalar
    let pairs: [(&[usize], &[usize]); 5] = [(&[2, 3], &[2, 3]), (&[2, 3], &[2]), (&[3], &[3, 4]), (&[1, 3], &[2, 3]), (&[], &[2, 2])];
    for (op, name) in [(BinaryOp::Add, "add"), (BinaryOp::Sub, "sub"), (BinaryOp::Mul, "mul"), (BinaryOp::Div, "div")] {
        for (sa, sb) in pairs {
            let b = if op == BinaryOp::Div { positive(sb) } else { randn(sb) };
            v.push(Case::new(name, format!("{sa:?} with {sb:?}"), vec![randn(sa), b], move |x| x[0].binary(&x[1], op)));
        }
    }
    for (op, name) in [(BinaryOp::TanhGrad, "tanh_grad"), (BinaryOp::SigmoidGrad, "sigmoid_grad")] {
        for (sa, sb) in [(&[2, 3][..], &[2, 3][..]), (&[2, 3][..], &[2][..])] {
            v.push(Case::new(name, format!("{sa:?} with {sb:?}"), vec![randn(sa), randn(sb)], move |x| x[0].binary(&x[1], op)));
        }
    }
    v.push(Case::new("pow", "[2, 3] .^ [2]", vec![positive(&[2, 3]), randn(&[2])], |x| x[0].pow(&x[1])));
    for (op, name) in [(BinaryOp::Max, "max"), (BinaryOp::Min, "min")] {
        // keep the two inputs apart so the step never swaps which one wins
        let a = randn(&[3, 2]);
        let b = &a + &Tensor::rand(&[3, 2]).map(|u| if u < 0.5 { -0.5 - u } else { 0.5 + u });
        v.push(Case::new(name, "elementwise", vec![a, b], move |x| x[0].binary(&x[1], op).powi(2)));
    }
    v.push(Case::new("sum_to", "[2, 3] -> [2]", vec![randn(&[2, 3])], |x| x[0].sum_to(&[2]).powi(2)));
    v.push(Case::new("broadcast_to", "[2] -> [2, 3]", vec![randn(&[2])], |x| x[0].broadcast_to(&[2, 3]).powi(3)));

    // reductions (composed with a nonlinearity so second order is not trivially zero)
    for (op, name) in [(ReduceOp::Sum, "sum"), (ReduceOp::Mean, "mean"), (ReduceOp::Max, "max_reduce"), (ReduceOp::Min, "min_reduce")] {
        for dims in [&[0][..], &[1][..], &[0, 1][..]] {
            v.push(Case::new(name, format!("dims {dims:?}"), vec![randn(&[3, 4])], move |x| x[0].reduce(op, dims).powi(2)));
        }
    }
    v.push(Case::new("sum", "all, 0-d result", vec![randn(&[2, 2])], |x| x[0].sum().powi(2)));
    v.push(Case::new("mean", "all, 0-d result", vec![randn(&[2, 2])], |x| x[0].mean().exp()));
    v.push(Case::new("max_reduce", "all, 0-d result", vec![randn(&[2, 3])], |x| x[0].max().powi(2)));
    v.push(Case::new("min_reduce", "all, 0-d result", vec![randn(&[3])], |x| x[0].min().powi(3)));
    v.push(Case::new("sum", "all of a 0-d value", vec![randn(&[])], |x| x[0].sum().sin()));

    // matrix products in every shape combination, including transposed flags and batches
    v.push(Case::new("matmul", "[3, 4]·[4, 2]", vec![randn(&[3, 4]), randn(&[4, 2])], |x| x[0].matmul(&x[1]).tanh()));
    v.push(Case::new("matmul", "[3, 4]·[4]", vec![randn(&[3, 4]), randn(&[4])], |x| x[0].matmul(&x[1]).tanh()));
    for ta in [false, true] {
        let sa = if ta { [4, 3] } else { [3, 4] };
        v.push(Case::new("matvec", format!("transposed {ta}"), vec![randn(&sa), randn(&[4])], move |x| x[0].matvec_t(&x[1], ta).tanh()));
    }
    v.push(Case::new("matmul", "[3, 4]·[4, 2, 2]", vec![randn(&[3, 4]), randn(&[4, 2, 2])], |x| x[0].matmul(&x[1]).tanh()));
    for (ta, tb) in [(true, false), (false, true), (true, true)] {
        v.push(Case::new("matmul", format!("transposed {ta} {tb}"), vec![randn(&[3, 3]), randn(&[3, 3])], move |x| x[0].matmul_t(&x[1], ta, tb).sin()));
    }
    // matmul_t and bmm_t with every transpose flag and every operand a vector (a one-column
    // matrix, [r] for matmul_t, [r, 1, batch] for bmm_t) or a matrix: the gradient of a vector
    // operand must be a vector of its shape
    for (ta, tb, a_vec, b_vec) in (0..16).map(|i| (i & 1 != 0, i & 2 != 0, i & 4 != 0, i & 8 != 0)) {
        let (ra, ca, rb, cb) = operand_shapes(ta, tb, a_vec, b_vec);
        let what = format!("{} {} {ta} {tb}", if a_vec { "vector" } else { "matrix" }, if b_vec { "vector" } else { "matrix" });
        let (sa, sb) = (if a_vec { vec![ra] } else { vec![ra, ca] }, if b_vec { vec![rb] } else { vec![rb, cb] });
        v.push(Case::new("matmul", format!("matmul_t {what}: {sa:?}, {sb:?}"), vec![randn(&sa), randn(&sb)], move |x| x[0].matmul_t(&x[1], ta, tb).sin()));
        let (sa, sb) = ([ra, ca, 2], [rb, cb, 2]);
        v.push(Case::new("batched_matmul", format!("bmm_t {what}: {sa:?}, {sb:?}"), vec![randn(&sa), randn(&sb)], move |x| x[0].bmm_t(&x[1], ta, tb).sin()));
    }
    v.push(Case::new("affine", "[3, 4]·[4, 2] .+ [3]", vec![randn(&[3, 4]), randn(&[4, 2]), randn(&[3])], |x| {
        Var::affine(&x[0], &x[1], &x[2]).unwrap().tanh()
    }));
    v.push(Case::new("affine", "[3, 4]·[4] .+ [3]", vec![randn(&[3, 4]), randn(&[4]), randn(&[3])], |x| Var::affine(&x[0], &x[1], &x[2]).unwrap().sin()));
    v.push(Case::new("affine", "[3, 4]·[4, 2, 2] .+ [3]", vec![randn(&[3, 4]), randn(&[4, 2, 2]), randn(&[3])], |x| {
        Var::affine(&x[0], &x[1], &x[2]).unwrap().tanh()
    }));
    // layer normalisation as one op, with respect to the input, scale and bias together
    for shape in [&[4][..], &[4, 3][..], &[3, 2, 2][..]] {
        let n = shape[0];
        v.push(Case::new("layernorm", format!("{shape:?}"), vec![randn(shape), randn(&[n]), randn(&[n])], |x| x[0].layernorm(&x[1], &x[2], 1e-3)));
    }
    v.push(Case::new("batched_matmul", "[2, 3, 2]·[3, 2, 2]", vec![randn(&[2, 3, 2]), randn(&[3, 2, 2])], |x| x[0].matmul(&x[1]).tanh()));
    v.push(Case::new("batched_matmul", "transposed", vec![randn(&[3, 2, 2]), randn(&[2, 3, 2])], |x| x[0].bmm_t(&x[1], true, true).tanh()));

    // shape and indexing
    v.push(Case::new("reshape", "[2, 3] -> [3, 2]", vec![randn(&[2, 3])], |x| x[0].reshape(&[3, 2]).matmul(&x[0]).sin()));
    v.push(Case::new("permute", "[2, 3, 4]", vec![randn(&[2, 3, 4])], |x| x[0].permute(&[2, 0, 1]).tanh()));
    v.push(Case::new("transpose", "[2, 3]", vec![randn(&[2, 3])], |x| x[0].transpose().matmul(&x[0]).tanh()));
    v.push(Case::new("index_select", "repeats", vec![randn(&[4, 3])], |x| x[0].index_select(0, &[3, 1, 1]).powi(3)));
    v.push(Case::new("index_add", "repeats", vec![randn(&[3, 2])], |x| x[0].index_add(0, &[2, 0, 2], &[4, 2]).powi(3)));
    v.push(Case::new("slice", "dim 1", vec![randn(&[2, 5])], |x| x[0].slice(1, 1..4).tanh()));
    v.push(Case::new("select", "column", vec![randn(&[3, 4])], |x| x[0].select(1, 2).exp()));
    v.push(Case::new("concat", "dim 1", vec![randn(&[2, 2]), randn(&[2, 3])], |x| Var::concat(&[x[0].clone(), x[1].clone()], 1).tanh()));
    v.push(Case::new("stack", "vectors", vec![randn(&[3]), randn(&[3])], |x| Var::stack(&[x[0].clone(), x[1].clone()], 1).sin()));
    // through f32 the function is only accurate to ~1e-7: a wide step and loose tolerance
    let f32_tol = flux_autograd::GradcheckConfig { eps: 1e-2, rtol: 1e-2, atol: 1e-3, ..Default::default() };
    v.push(Case::new("cast", "f64 -> f32 -> f64", vec![randn(&[3])], |x| x[0].to_f32().to_f64().powi(2)).with_config(f32_tol));

    // softmax family along both dims
    for dim in [0usize, 1] {
        v.push(Case::new("softmax", format!("dim {dim}"), vec![randn(&[3, 4])], move |x| x[0].softmax(dim)));
        v.push(Case::new("logsoftmax", format!("dim {dim}"), vec![randn(&[3, 4])], move |x| x[0].logsoftmax(dim)));
        v.push(Case::new("logsumexp", format!("dim {dim}"), vec![randn(&[3, 4])], move |x| x[0].logsumexp(dim)));
    }
    v.push(Case::new("softmax", "vector", vec![randn(&[5])], |x| x[0].softmax(0)));
    v.push(Case::new("custom", "cube with a hand-written rule", vec![randn(&[3])], |x| cube(&x[0])));
    v
}

/// Stored shapes `([ra, ca], [rb, cb])` of two operands of `op(a)·op(b)` with `op(a): [m, k]`,
/// `op(b): [k, n]`, where a "vector" operand has one column (so a dimension of the product
/// becomes 1).
fn operand_shapes(ta: bool, tb: bool, a_vec: bool, b_vec: bool) -> (usize, usize, usize, usize) {
    let (mut m, mut k, mut n) = (3, 4, 2);
    // a's stored columns are k (not transposed) or m (transposed); b's are n or k
    if a_vec {
        if ta {
            m = 1
        } else {
            k = 1
        }
    }
    if b_vec {
        if tb {
            k = 1
        } else {
            n = 1
        }
    }
    let (ra, ca) = if ta { (k, m) } else { (m, k) };
    let (rb, cb) = if tb { (n, k) } else { (k, n) };
    (ra, ca, rb, cb)
}

struct Cube;
impl flux_autograd::CustomOp for Cube {
    fn name(&self) -> &str {
        "cube"
    }
    fn forward(&self, xs: &[Tensor]) -> Result<Tensor, flux_tensor::TensorError> {
        Ok(xs[0].powi(3))
    }
    fn backward(&self, xs: &[Var], _y: &Var, g: &Var) -> Vec<Option<Var>> {
        vec![Some(g * &(3.0 * xs[0].powi(2)))]
    }
}

fn cube(x: &Var) -> Var {
    Var::custom(std::sync::Arc::new(Cube), std::slice::from_ref(x)).expect("cube")
}
