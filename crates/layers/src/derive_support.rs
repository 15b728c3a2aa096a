//! What `#[derive(Layer)]`'s generated code calls: printing children and checking buffers.
//! Public only through the hidden `__derive` module.

use std::fmt;

use flux_autograd::Var;

use crate::layer::Layer;

/// How a child prints inside a derived layer's `Name(child, child)`.
pub trait FmtChild {
    /// Writes the child.
    fn fmt_child(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

impl<L: Layer + ?Sized> FmtChild for L {
    fn fmt_child(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_layer(f)
    }
}

impl FmtChild for Var {
    fn fmt_child(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_var(self, f)
    }
}

/// A parameter as Julia summarises an array: `5×10 Matrix{Float32}`, `5-element
/// Vector{Float32}`, `2×3×4 Array{Float32, 3}`, or a 0-d value's number.
pub fn fmt_var(v: &Var, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let s = v.shape();
    let t = match v.dtype() {
        flux_tensor::DType::F32 => "Float32",
        flux_tensor::DType::F64 => "Float64",
    };
    match s.rank() {
        0 => write!(f, "{}", v.item()),
        1 => write!(f, "{}-element Vector{{{t}}}", s[0]),
        r => {
            let dims: Vec<String> = s.iter().map(|d| d.to_string()).collect();
            if r == 2 {
                write!(f, "{} Matrix{{{t}}}", dims.join("×"))
            } else {
                write!(f, "{} Array{{{t}, {r}}}", dims.join("×"))
            }
        }
    }
}

/// A `#[layer(buffer)]` field must be a `Var`.
pub fn as_buffer(v: &Var) -> &Var {
    v
}
