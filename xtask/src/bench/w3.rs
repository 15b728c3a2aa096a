//! W3: LSTM(64 => 256) then Dense(256, 10), sequence 50, batch 32: train step and forward.

use super::Opts;

pub fn run(_o: &Opts) {
    eprintln!("bench: W3 is not wired yet");
}
