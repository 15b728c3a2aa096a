//! Loads a PyTorch MLP's weights into the matching flux-rs `Chain` and prints its predictions.
//!
//! ```text
//! python docs/torch_export.py model.safetensors     # PyTorch: nn.Sequential(Linear, ReLU, ...)
//! cargo run --release --example torch_import -- model.safetensors
//! ```
//!
//! PyTorch's `nn.Sequential(Linear(4, 16), ReLU(), Linear(16, 16), ReLU(), Linear(16, 3))`
//! saves keys `0.*`, `2.*`, `4.*`; flux-rs folds the ReLUs into the `Dense` layers, and
//! `load_torch_state` matches the modules with tensors in order. The predictions printed are
//! PyTorch's (to f32 rounding), one column per sample (flux-rs is features-first).

use flux::prelude::*;

fn main() {
    let path = std::env::args().nth(1).unwrap_or_else(|| "model.safetensors".into());
    let model = chain![Dense::new(4, 16, relu), Dense::new(16, 16, relu), Dense::new(16, 3, identity)];
    if let Err(e) = load_torch_state(&model, &path) {
        eprintln!("{e}");
        eprintln!("(make the file with `python docs/torch_export.py {path}`)");
        std::process::exit(1);
    }
    println!("loaded {path} into {model}");
    // 3 samples of 4 features, x[f, n] = (4n + f) / 10 - 0.5 (the Python snippet's input)
    let x = Var::from(Tensor::from_vec((0..12).map(|k| k as f32 / 10.0 - 0.5).collect::<Vec<f32>>(), &[4, 3]));
    let y = model.forward(&x);
    println!("predictions ([3 outputs, 3 samples]; PyTorch prints the transpose):");
    for n in 0..3 {
        let row: Vec<String> = (0..3).map(|o| format!("{:>9.5}", y.data().get(&[o, n]))).collect();
        println!("  sample {n}: {}", row.join(" "));
    }
}
