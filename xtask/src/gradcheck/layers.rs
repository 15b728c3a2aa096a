//! Cases for the layers crate: every activation, Dense and Chain (with respect to input and
//! parameters), losses and normalisation layers.

use flux_tensor::Tensor;

use super::Case;

pub fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for (name, f) in flux_layers::activation::ALL {
        let x = Tensor::randn(&[4, 3]).map(|x| if x.abs() < 0.05 { x + 0.2 } else { x });
        let case = Case::new(name, "[4, 3]", vec![x], move |x| f(&x[0]));
        // relu and leakyrelu are piecewise linear: their second derivative is zero where defined
        v.push(if matches!(name, "relu" | "leakyrelu") { case.first_only() } else { case });
    }
    v
}
