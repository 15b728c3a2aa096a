//! W2: one training step of the seed's MLP (forward, backward, SGD update).

use super::Opts;

pub fn run(_o: &Opts) {
    eprintln!("bench: W2 is not wired yet");
}
