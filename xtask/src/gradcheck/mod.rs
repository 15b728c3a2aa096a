//! The cross-crate gradient-check suite: every differentiable op of every crate, first and
//! second order, against finite differences in f64, plus random compositions of ops.

mod autograd;
mod compositions;
mod conv;
mod forward;
mod layers;
mod more_layers;
mod more_ops;
mod recurrent;

use flux_autograd::{gradcheck2_with, gradcheck_with, GradcheckConfig, Var};
use flux_tensor::Tensor;

/// A function of the inputs under test.
pub type CaseFn = Box<dyn Fn(&[Var]) -> Var>;

/// One function to check at one point.
pub struct Case {
    /// The op (or layer) under test; the summary counts distinct names.
    pub op: &'static str,
    /// What distinguishes this case from others of the same op (shapes, broadcasting, ...).
    pub what: String,
    /// The function of the inputs.
    pub f: CaseFn,
    /// Where to check it (converted to f64).
    pub inputs: Vec<Tensor>,
    /// Also check the gradient of the gradient.
    pub second_order: bool,
    /// Step and tolerances, when the defaults do not fit (f32 round trips).
    pub config: Option<GradcheckConfig>,
}

impl Case {
    /// A case checked at first and second order.
    pub fn new(op: &'static str, what: impl Into<String>, inputs: Vec<Tensor>, f: impl Fn(&[Var]) -> Var + 'static) -> Case {
        Case { op, what: what.into(), f: Box::new(f), inputs, second_order: true, config: None }
    }

    /// A case checked at first order only (for functions whose second derivative is zero or
    /// undefined almost everywhere, the check would say nothing).
    pub fn first_only(mut self) -> Case {
        self.second_order = false;
        self
    }

    /// Checks with these tolerances instead of the defaults.
    pub fn with_config(mut self, config: GradcheckConfig) -> Case {
        self.config = Some(config);
        self
    }
}

/// Runs every case; prints failures and the summary line; returns the number of failures.
pub fn run(filter: Option<&str>) -> usize {
    flux_tensor::seed(20261127);
    let mut cases = autograd::cases();
    cases.extend(layers::cases());
    cases.extend(more_ops::cases());
    cases.extend(more_layers::cases());
    cases.extend(recurrent::cases());
    cases.extend(conv::cases());
    let mut ops = std::collections::BTreeSet::new();
    let (mut first, mut second, mut failed) = (0usize, 0usize, 0usize);
    for case in cases.iter().filter(|c| filter.is_none_or(|f| c.op.contains(f))) {
        ops.insert(case.op);
        first += 1;
        let c1 = case.config.unwrap_or_default();
        let c2 = case.config.unwrap_or(GradcheckConfig { rtol: 1e-4, atol: 1e-5, ..GradcheckConfig::default() });
        if let Err(e) = gradcheck_with(&case.f, &case.inputs, &c1) {
            failed += 1;
            println!("FAILED {} [{}]: {e}", case.op, case.what);
        }
        if case.second_order {
            second += 1;
            if let Err(e) = gradcheck2_with(&case.f, &case.inputs, &c2) {
                failed += 1;
                println!("FAILED {} [{}]: {e}", case.op, case.what);
            }
        }
    }
    let (n, c2, f2) = compositions::run();
    first += n;
    second += c2;
    failed += f2;
    // after the compositions, whose inputs come from the seeded generator that layers in
    // forward mode (dropout) would otherwise advance
    let (tangent, mixed, f3) = forward::run(cases.iter().filter(|c| filter.is_none_or(|f| c.op.contains(f))));
    failed += f3;
    ops.insert("random compositions");
    println!(
        "gradcheck: {} ops, {} checks (first order {}, second order {}, forward mode {}, reverse over forward vs forward over reverse {}), {} failed",
        ops.len(),
        first + second + tangent + mixed,
        first,
        second,
        tangent,
        mixed,
        failed
    );
    failed
}
