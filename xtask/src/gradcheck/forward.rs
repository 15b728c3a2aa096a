//! Forward-mode checks, run on every case of the suite: the tangent `jvp` carries against
//! finite differences (every case), and reverse over forward against forward over reverse
//! (every case checked at second order). Together they exercise each primitive's tangent rule,
//! that rule differentiated in reverse mode, and each backward rule differentiated in forward
//! mode.

use flux_autograd::{gradcheck_forward_with, gradcheck_mixed_with, GradcheckConfig};

use super::Case;

/// Counts of one run: (tangent checks, mixed second-order checks, failures).
pub fn run<'a>(cases: impl Iterator<Item = &'a Case>) -> (usize, usize, usize) {
    let (mut tangent, mut mixed, mut failed) = (0, 0, 0);
    for case in cases {
        tangent += 1;
        let c1 = case.config.unwrap_or_default();
        if let Err(e) = gradcheck_forward_with(&case.f, &case.inputs, &c1) {
            failed += 1;
            println!("FAILED {} [{}]: {e}", case.op, case.what);
        }
        if case.second_order {
            mixed += 1;
            // two analytic routes to one Hessian-vector product: they agree far more closely
            // than finite differences do, except through an f32 round trip
            let c2 = case.config.unwrap_or(GradcheckConfig { rtol: 1e-8, atol: 1e-10, ..GradcheckConfig::default() });
            if let Err(e) = gradcheck_mixed_with(&case.f, &case.inputs, &c2) {
                failed += 1;
                println!("FAILED {} [{}]: {e}", case.op, case.what);
            }
        }
    }
    (tangent, mixed, failed)
}
