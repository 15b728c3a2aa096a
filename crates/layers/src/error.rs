//! [`LayerError`]: bad input to a layer, and failures saving or loading model state.

use flux_tensor::TensorError;

/// Errors from layers and saved state. Each names the layer or the saved key at fault.
///
/// ```
/// use flux_layers::{identity, Dense, Layer};
/// use flux_autograd::Var;
/// let d = Dense::new(10, 5, identity);
/// let e = d.try_forward(&Var::from(flux_tensor::Tensor::zeros(&[3]))).unwrap_err();
/// assert!(e.to_string().contains("Dense(10 => 5)") && e.to_string().contains("[3]"));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// Input of a shape the layer cannot take.
    #[error("{layer}: input of shape {got:?} does not fit: expected {expected}")]
    InputShape {
        /// The layer, as it prints.
        layer: String,
        /// The input's shape.
        got: Vec<usize>,
        /// What it accepts.
        expected: String,
    },
    /// Bad arguments to a layer constructor.
    #[error("{layer}: {reason}")]
    Config {
        /// The layer being built.
        layer: String,
        /// What was wrong.
        reason: String,
    },
    /// Saved state that does not match the model; nothing was changed.
    #[error("load_state: {0}; the model was left unchanged")]
    State(String),
    /// Reading or writing the state file failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// `save_state` or `load_state`.
        op: &'static str,
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The state file is not valid JSON of the expected form.
    #[error("load_state {path}: malformed state file: {source}; the model was left unchanged")]
    Json {
        /// The file.
        path: String,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// A weights file (safetensors, a PyTorch state dict) that cannot be read into the model,
    /// or a model that cannot be written as one; `reason` names the key at fault and what was
    /// expected. After a failed load nothing was changed.
    #[error("{op} {path}: {reason}")]
    Weights {
        /// `save_safetensors`, `load_safetensors`, `save_torch_state` or `load_torch_state`.
        op: &'static str,
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] TensorError),
}
