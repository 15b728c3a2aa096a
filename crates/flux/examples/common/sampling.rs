//! Drawing the next character of the character models (`char_lstm`, `char_transformer`).

use flux::tensor::rand::Rng;

/// An index drawn from the probabilities `p` (summing to 1) with `rng`: the first index at
/// which the running sum passes a uniform draw; the last index if rounding leaves it short.
pub fn draw(p: &[f64], rng: &mut impl Rng) -> usize {
    let mut u: f64 = rng.random();
    for (i, pi) in p.iter().enumerate() {
        if u < *pi {
            return i;
        }
        u -= pi;
    }
    p.len() - 1
}
