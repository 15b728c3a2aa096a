//! The code of docs/guide.md's chapter "Convolutions and attention", run: one test per Rust
//! block of the chapter, and a test that every block appears in this file line by line (the
//! guide's code is the code that runs here, so it cannot drift from the library).

use std::error::Error;

use flux::prelude::*;

type Res = Result<(), Box<dyn Error>>;

/// The first example: LeNet-5's shapes.
#[test]
fn lenet_shapes() -> Res {
    flux::seed(1);
    let model = chain![
        Conv::new(&[5, 5], 1, 6, relu).pad(&[2]), // [28, 28, 6, N]
        MaxPool::new(&[2, 2]),                    // [14, 14, 6, N]
        Conv::new(&[5, 5], 6, 16, relu),          // [10, 10, 16, N]
        MaxPool::new(&[2, 2]),                    // [5, 5, 16, N]
        flatten,                                  // [400, N]
        Dense::new(400, 10, identity)
    ];
    assert_eq!(model.forward(&Var::from(Tensor::rand(&[28, 28, 1, 4]))).shape(), &[10, 4]);
    assert_eq!(
        model.to_string(),
        "Chain(Conv((5, 5), 1 => 6, relu, pad=2), MaxPool((2, 2)), Conv((5, 5), 6 => 16, relu), MaxPool((2, 2)), flatten, Dense(400 => 10))"
    );
    Ok(())
}

/// Conv flips the kernel, CrossCor does not.
#[test]
fn conv_flips_and_crosscor_does_not() -> Res {
    let w = Tensor::from_vec(vec![1.0, 10.0], &[2, 1, 1]); // kernel [1, 10], 1 => 1
    let x = Var::from(Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3, 1, 1]));
    let conv = Conv::from_weights(w.clone(), Tensor::zeros(&[1]), identity)?;
    let xcor = CrossCor::from_weights(w, Tensor::zeros(&[1]), identity)?;
    assert_eq!(conv.forward(&x).to_vec(), vec![12.0, 23.0]); // 1·10 + 2·1, 2·10 + 3·1
    assert_eq!(xcor.forward(&x).to_vec(), vec![21.0, 32.0]); // 1·1 + 2·10, 2·1 + 3·10
    Ok(())
}

/// Stride, per-side padding, dilation, groups; ConvTranspose with outpad.
#[test]
fn geometry_and_outpad() -> Res {
    let c = Conv::new(&[3, 3], 4, 8, relu).pad(&[1, 1, 2, 2]).stride(&[2]).dilation(&[1, 2]).groups(2);
    assert_eq!(c.weight().shape(), &[3, 3, 2, 8]);
    assert_eq!(c.forward(&Var::from(Tensor::rand(&[9, 8, 4, 1]))).shape(), &[5, 4, 8, 1]);
    let up = ConvTranspose::new(&[3, 3], 8, 4, relu).stride(&[2]).pad(&[1]).outpad(&[1]);
    assert_eq!(up.forward(&Var::from(Tensor::rand(&[7, 7, 8, 1]))).shape(), &[14, 14, 4, 1]);
    Ok(())
}

/// Pools, flatten's neighbours, Upsample, a residual block.
#[test]
fn pooling_and_containers() -> Res {
    let x = Var::from(Tensor::rand(&[6, 6, 3, 2]));
    assert_eq!(MeanPool::new(&[2, 2]).forward(&x).shape(), &[3, 3, 3, 2]);
    assert_eq!(GlobalMaxPool.forward(&x).shape(), &[1, 1, 3, 2]);
    assert_eq!(AdaptiveMeanPool::new(&[2, 3]).forward(&x).shape(), &[2, 3, 3, 2]);
    assert_eq!(Upsample::new(UpsampleMode::Bilinear, &[2]).forward(&x).shape(), &[12, 12, 3, 2]);
    let block = SkipConnection::residual(chain![Conv::new(&[3, 3], 3, 3, relu).pad(&[1]), GroupNorm::new(3, 3)]);
    assert_eq!(block.forward(&x).shape(), &[6, 6, 3, 2]);
    Ok(())
}

/// Embedding lookups and the one-hot forward.
#[test]
fn embeddings() -> Res {
    let emb = Embedding::new(10, 4);
    let a = emb.lookup(&[3, 1, 3]); // [4, 3]
    assert_eq!(a.to_vec(), emb.forward(&Var::from(onehotbatch(&[3, 1, 3], 10))).to_vec());
    assert_eq!(emb.try_lookup_array(&[0, 1, 2, 3, 4, 5], &[3, 2])?.shape(), &[4, 3, 2]);
    Ok(())
}

/// A pre-norm causal transformer block as a derived layer.
#[test]
fn attention_block() -> Res {
    #[derive(Layer)]
    struct Block {
        ln1: LayerNorm,
        attn: MultiHeadAttention,
        ln2: LayerNorm,
        fc1: Dense,
        fc2: Dense,
    }

    impl Block {
        fn forward(&self, x: &Var) -> Var {
            let mask = causal_mask(x.shape()[1]);
            let h = self.ln1.forward(x);
            let x = x + &self.attn.forward_qkv(&h, &h, &h, Some(&mask)).0;
            &x + &self.fc2.forward(&self.fc1.forward(&self.ln2.forward(&x)))
        }
    }

    let block = Block {
        ln1: LayerNorm::new(16),
        attn: MultiHeadAttention::new(16, 4),
        ln2: LayerNorm::new(16),
        fc1: Dense::new(16, 64, gelu),
        fc2: Dense::new(64, 16, identity),
    };
    let x = Var::from(Tensor::randn(&[16, 10, 2]).to_f32()); // [dim, len, batch]
    assert_eq!(block.forward(&x).shape(), &[16, 10, 2]);
    let (_, scores) = block.attn.forward_qkv(&x, &x, &x, Some(&causal_mask(10)));
    assert_eq!(scores.shape(), &[10, 10, 4, 2]);
    assert_eq!(scores.data().get(&[3, 2, 0, 0]), 0.0); // query 2 cannot see key 3
    Ok(())
}

/// The new ops and losses.
#[test]
fn ops_and_losses() -> Res {
    let a = Var::from(Tensor::from_vec(vec![2.0, 1.0, 1.0, 3.0], &[2, 2]));
    let b = Var::from(Tensor::from_vec(vec![1.0, 2.0], &[2]));
    assert!((a.det().item() - 5.0).abs() < 1e-12);
    assert!((a.matmul(&a.solve(&b)) - &b).abs().sum().item() < 1e-12); // a \ b
    assert_eq!(b.cumsum(0).to_vec(), vec![1.0, 3.0]);
    let g = gradient(|a: &Var| a.logdet(), &a); // inv(a)ᵀ
    assert!((g.data().get(&[0, 0]) - 0.6).abs() < 1e-12);
    let p = Var::from(Tensor::from_vec(vec![0.4, 0.5, 0.1, 0.2, 0.5, 0.3], &[3, 2]));
    let y = Var::from(onehotbatch(&[0, 2], 3));
    assert!((focal_loss(&p, &y).item() - 0.45990566879720157).abs() < 1e-12); // Flux's test value
    Ok(())
}

/// The chapter's Rust blocks, each as consecutive lines of this file (runs of spaces aside: the
/// guide may align comments that rustfmt does not).
#[test]
fn the_guide_chapter_is_this_file() {
    let guide = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/guide.md")).expect("docs/guide.md");
    let chapter = guide.split("\n## Convolutions and attention\n").nth(1).expect("the chapter").split("\n## ").next().unwrap_or_default();
    let words = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
    let here: Vec<String> = include_str!("guide_conv_attention.rs").lines().map(words).collect();
    let blocks: Vec<Vec<String>> = chapter.split("```rust\n").skip(1).map(|b| b.split("```").next().unwrap_or_default().lines().map(words).collect()).collect();
    assert_eq!(blocks.len(), 7, "the chapter's Rust blocks (one test each above)");
    for b in &blocks {
        assert!(here.windows(b.len()).any(|w| w == b.as_slice()), "this block of the guide is not in tests/guide_conv_attention.rs:\n{}", b.join("\n"));
    }
}
