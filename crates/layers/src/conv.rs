//! Convolutional layers: [`Conv`] (Flux's: the kernel flipped, a true convolution), [`CrossCor`]
//! (PyTorch's `Conv2d`: no flip) and [`ConvTranspose`], in 1, 2 or 3 spatial dims, Julia's
//! layout `[spatial..., C, N]`.

use std::fmt;

use flux_autograd::{in_jvp, is_recording, param, Var};
use flux_tensor::{ConvSpec, Tensor, TensorError};

use crate::dense::Activation;
use crate::error::LayerError;
use crate::input::cast_like;
use crate::Layer;

/// Glorot-uniform with a convolution's fans (`prod(k)·cin`, `prod(k)·cout`, Flux's `nfan`), f32.
fn conv_init(shape: &[usize]) -> Tensor {
    let nd = shape.len() - 2;
    let rf: usize = shape[..nd].iter().product();
    let (fi, fo) = ((rf * shape[nd]) as f64, (rf * shape[nd + 1]) as f64);
    let limit = (6.0 / (fi + fo).max(1.0)).sqrt();
    ((Tensor::rand(shape) * 2.0 - 1.0) * limit).to_f32()
}

/// Julia's printing of a tuple of sizes: `(3,)`, `(3, 3)`.
fn tuple(v: &[usize]) -> String {
    match v {
        [a] => format!("({a},)"),
        _ => format!("({})", v.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")),
    }
}

/// Flux's `_maybetuple_string`: one number when all are equal, else the tuple.
fn maybe_tuple(v: &[usize]) -> String {
    if v.iter().all(|&x| x == v[0]) {
        v[0].to_string()
    } else {
        tuple(v)
    }
}

/// What `Conv`, `CrossCor` and `ConvTranspose` share: the weight, the bias, the activation and
/// the geometry.
#[derive(Clone)]
struct Geometry {
    nd: usize,
    stride: Vec<usize>,
    pad: Vec<usize>,
    dilation: Vec<usize>,
    groups: usize,
}

impl Geometry {
    fn new(nd: usize) -> Geometry {
        Geometry { nd, stride: vec![1; nd], pad: vec![0; 2 * nd], dilation: vec![1; nd], groups: 1 }
    }
    fn per_dim(&self, layer: &str, what: &str, v: &[usize]) -> Vec<usize> {
        match v.len() {
            1 => vec![v[0]; self.nd],
            n if n == self.nd => v.to_vec(),
            n => panic!("{layer}: {what} has {n} values; give 1 or {}", self.nd),
        }
    }
    fn set_pad(&mut self, layer: &str, p: &[usize]) {
        self.pad = match p.len() {
            1 => vec![p[0]; 2 * self.nd],
            n if n == self.nd => p.iter().flat_map(|&x| [x, x]).collect(),
            n if n == 2 * self.nd => p.to_vec(),
            n => panic!("{layer}: the padding has {n} values; give 1, {} or {}", self.nd, 2 * self.nd),
        };
    }
    fn spec(&self) -> ConvSpec {
        ConvSpec::new().stride(&self.stride).pad(&self.pad).dilation(&self.dilation).groups(self.groups)
    }
    fn fmt_opts(&self, f: &mut fmt::Formatter<'_>, act: &Activation) -> fmt::Result {
        if !act.is_identity() {
            write!(f, ", {}", act.name())?;
        }
        if self.pad.iter().any(|&p| p != 0) {
            write!(f, ", pad={}", maybe_tuple(&self.pad))?;
        }
        if self.stride.iter().any(|&s| s != 1) {
            write!(f, ", stride={}", maybe_tuple(&self.stride))?;
        }
        if self.dilation.iter().any(|&d| d != 1) {
            write!(f, ", dilation={}", maybe_tuple(&self.dilation))?;
        }
        if self.groups != 1 {
            write!(f, ", groups={}", self.groups)?;
        }
        Ok(())
    }
}

/// Maps a kernel's shape error to one naming the layer and the input's shape.
fn input_error(layer: String, x: &Var, e: TensorError) -> LayerError {
    let reason = match e {
        TensorError::ShapeMismatch { reason, .. } => reason,
        e => e.to_string(),
    };
    LayerError::InputShape { layer, got: x.shape().to_vec(), expected: reason }
}

macro_rules! conv_layer {
    ($name:ident, $flip:expr, $doc:literal, $example:literal) => {
        #[doc = $doc]
        ///
        /// ```
        #[doc = $example]
        /// ```
        #[derive(Layer)]
        #[layer(try_forward, fmt, torch)]
        pub struct $name {
            weight: Var,
            bias: Var,
            #[layer(skip)]
            act: Activation,
            #[layer(skip)]
            geom: Geometry,
            /// Input channels, all groups together.
            #[layer(skip)]
            cin: usize,
            /// Whether the weight is the constructor's initialisation (re-drawn when `groups` changes its shape).
            #[layer(skip)]
            fresh: bool,
        }

        impl $name {
            /// A layer with kernel `k` (one size per spatial dim), `cin => cout` channels and an
            /// activation: glorot-uniform weight `[k..., cin, cout]` and zero bias `[cout]`, f32;
            /// stride 1, no padding, dilation 1, one group (change them with the builders).
            /// Panics for a kernel of other than 1 to 3 dims.
            pub fn new<F: Fn(&Var) -> Var + Send + Sync + 'static>(k: &[usize], cin: usize, cout: usize, act: F) -> $name {
                assert!((1..=3).contains(&k.len()), "{}: the kernel {:?} must have 1 to 3 dims", stringify!($name), k);
                let mut shape = k.to_vec();
                shape.extend([cin, cout]);
                $name {
                    weight: param(conv_init(&shape)),
                    bias: param(Tensor::zeros(&[cout]).to_f32()),
                    act: Activation::new(act),
                    geom: Geometry::new(k.len()),
                    cin,
                    fresh: true,
                }
            }

            /// A layer from a given weight `[k..., cin / groups, cout]` and bias `[cout]` (made
            /// into params); errors if the shapes disagree.
            pub fn from_weights<F: Fn(&Var) -> Var + Send + Sync + 'static>(weight: Tensor, bias: Tensor, act: F) -> Result<$name, LayerError> {
                let r = weight.rank();
                if !(3..=5).contains(&r) || bias.shape() != &[weight.shape()[r - 1]][..] {
                    return Err(LayerError::Config {
                        layer: stringify!($name).into(),
                        reason: format!(
                            "weight {:?} must be [k..., cin, cout] with 1 to 3 spatial dims and bias {:?} must be [cout]",
                            weight.shape(),
                            bias.shape()
                        ),
                    });
                }
                let cin = weight.shape()[r - 2];
                Ok($name { geom: Geometry::new(r - 2), weight: param(weight), bias: param(bias), act: Activation::new(act), cin, fresh: false })
            }

            /// The stride: one value or one per spatial dim. Panics for another count.
            pub fn stride(mut self, s: &[usize]) -> $name {
                self.geom.stride = self.geom.per_dim(stringify!($name), "the stride", s);
                self
            }

            /// The padding: one value, one per spatial dim, or one per side as Flux's
            /// `pad = (1, 1, 2, 2)` (`lo1, hi1, lo2, hi2`). Panics for another count.
            pub fn pad(mut self, p: &[usize]) -> $name {
                self.geom.set_pad(stringify!($name), p);
                self
            }

            /// The dilation: one value or one per spatial dim. Panics for another count.
            pub fn dilation(mut self, d: &[usize]) -> $name {
                self.geom.dilation = self.geom.per_dim(stringify!($name), "the dilation", d);
                self
            }

            /// Splits the channels into `g` groups: a layer made by `new` draws a fresh weight
            /// `[k..., cin / g, cout]`; one made by `from_weights` reads its weight as one group's
            /// and takes `g` times its input channels. Panics when `cin` or `cout` does not split.
            pub fn groups(mut self, g: usize) -> $name {
                let nd = self.geom.nd;
                let cout = self.weight.shape()[nd + 1];
                if self.fresh {
                    assert!(
                        g > 0 && self.cin.is_multiple_of(g) && cout.is_multiple_of(g),
                        "{}: {} => {} channels do not split into {g} groups",
                        stringify!($name),
                        self.cin,
                        cout
                    );
                    let mut shape = self.weight.shape()[..nd].to_vec();
                    shape.extend([self.cin / g, cout]);
                    self.weight = param(conv_init(&shape));
                } else {
                    assert!(g > 0 && cout.is_multiple_of(g), "{}: {cout} output channels do not split into {g} groups", stringify!($name));
                    self.cin = self.weight.shape()[nd] * g;
                }
                self.geom.groups = g;
                self
            }

            /// The weight `[k..., cin / groups, cout]`.
            pub fn weight(&self) -> &Var {
                &self.weight
            }

            /// The bias `[cout]`.
            pub fn bias(&self) -> &Var {
                &self.bias
            }

            /// The activation.
            pub fn activation(&self) -> &Activation {
                &self.act
            }

            /// The geometry as a [`ConvSpec`] (stride, padding per side, dilation, groups, flip).
            pub fn spec(&self) -> ConvSpec {
                self.geom.spec().flip($flip)
            }

            /// The forward pass, or an error naming the layer and the input's shape.
            pub fn try_forward(&self, x: &Var) -> Result<Var, LayerError> {
                let nd = self.geom.nd;
                let s = x.shape();
                if s.rank() != nd + 2 || s[nd] != self.cin {
                    return Err(LayerError::InputShape {
                        layer: self.to_string(),
                        got: s.to_vec(),
                        expected: format!("[spatial..., {}, N] with {nd} spatial dims (weight is {:?})", self.cin, self.weight.shape()),
                    });
                }
                let x = cast_like(x, &self.weight);
                if !is_recording() || (!in_jvp() && !x.is_tracked() && !self.weight.is_tracked() && !self.bias.is_tracked()) {
                    // nothing records: the bias is added inside the convolution's own output pass
                    let y = x.data().try_conv_bias(&self.weight.data(), &self.bias.data(), &self.spec());
                    return Ok(self.act.apply(&Var::constant(y.map_err(|e| input_error(self.to_string(), &x, e))?)));
                }
                let y = x.try_conv(&self.weight, &self.spec()).map_err(|e| input_error(self.to_string(), &x, e))?;
                let mut bshape = vec![1; nd];
                bshape.push(self.bias.numel());
                Ok(self.act.apply(&(&y + &self.bias.reshape(&bshape))))
            }

            /// Prints Flux's form, e.g. `Conv((3, 3), 1 => 6, relu, pad=1)`.
            pub fn fmt_layer(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let nd = self.geom.nd;
                write!(f, "{}({}, {} => {}", stringify!($name), tuple(&self.weight.shape()[..nd]), self.cin, self.weight.shape()[nd + 1])?;
                self.geom.fmt_opts(f, &self.act)?;
                f.write_str(")")
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.fmt_layer(f)
            }
        }

        /// PyTorch's `Conv1d/2d/3d`: `weight [cout, cin / groups, k...]` (our kernel with its
        /// dimensions reversed, and flipped for `Conv`, which convolves where PyTorch
        /// cross-correlates), `bias [cout]` (absent with `bias=False`: zeros). Stride, padding,
        /// dilation and groups are the layer's to match; the file does not record them.
        impl crate::TorchModule for $name {
            fn torch_kind(&self) -> &'static str {
                ["Conv1d", "Conv2d", "Conv3d"][self.weight.shape().rank().clamp(3, 5) - 3]
            }
            fn torch_export(&self) -> Vec<(String, crate::TorchValue)> {
                crate::torch::conv_export(&self.weight, &self.bias, $flip)
            }
            fn torch_import(&self, src: &mut crate::TorchSource<'_>) -> Vec<(Var, Tensor)> {
                crate::torch::conv_import(src, &self.weight, &self.bias, $flip)
            }
        }
    };
}

conv_layer!(
    Conv,
    true,
    "A convolution as Flux's `Conv`: the kernel is flipped (a true convolution), `y = act.(conv(x, w) .+ b)`. \
     Weight `[k..., cin / groups, cout]`, bias `[cout]`; input `[spatial..., cin, N]` (1 to 3 spatial dims), \
     converted to the weight's element type.",
    "use flux_layers::{Conv, Layer, relu};\nuse flux_autograd::Var;\nuse flux_tensor::Tensor;\n\
     let c = Conv::new(&[3, 3], 1, 6, relu).pad(&[1]).stride(&[2]);\n\
     assert_eq!(c.to_string(), \"Conv((3, 3), 1 => 6, relu, pad=1, stride=2)\");\n\
     assert_eq!(c.weight().shape(), &[3, 3, 1, 6]);\n\
     assert_eq!(c.forward(&Var::from(Tensor::rand(&[28, 28, 1, 2]))).shape(), &[14, 14, 6, 2]);\n\
     let e = c.try_forward(&Var::from(Tensor::rand(&[28, 28, 3, 2]))).unwrap_err();\n\
     assert!(e.to_string().contains(\"[28, 28, 3, 2]\"));"
);

conv_layer!(
    CrossCor,
    false,
    "A cross-correlation (PyTorch's `Conv1d/2d/3d`; Flux's `CrossCor`): as [`Conv`] without the kernel flip.",
    "use flux_layers::{CrossCor, Layer, identity};\nuse flux_autograd::Var;\nuse flux_tensor::Tensor;\n\
     let w = Tensor::from_vec(vec![1.0f32, 10.0], &[2, 1, 1]);\n\
     let c = CrossCor::from_weights(w, Tensor::zeros(&[1]).to_f32(), identity).unwrap();\n\
     assert_eq!(c.to_string(), \"CrossCor((2,), 1 => 1)\");\n\
     let x = Var::from(Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3, 1, 1]));\n\
     assert_eq!(c.forward(&x).to_vec(), vec![21.0, 32.0]);"
);

/// A transposed convolution as Flux's `ConvTranspose` (the gradient of a `Conv` with respect to
/// its input; the kernel flipped as `Conv` flips it): weight `[k..., cout / groups, cin]`, bias
/// `[cout]`, output size `(in - 1)·stride - pads + dilation·(k - 1) + 1`.
///
/// ```
/// use flux_layers::{ConvTranspose, Layer, relu};
/// use flux_autograd::Var;
/// use flux_tensor::Tensor;
/// let c = ConvTranspose::new(&[3, 3], 6, 1, relu).stride(&[2]).pad(&[1]);
/// assert_eq!(c.to_string(), "ConvTranspose((3, 3), 6 => 1, relu, pad=1, stride=2)");
/// assert_eq!(c.weight().shape(), &[3, 3, 1, 6]);
/// assert_eq!(c.forward(&Var::from(Tensor::rand(&[7, 7, 6, 2]))).shape(), &[13, 13, 1, 2]);
/// ```
#[derive(Layer)]
#[layer(try_forward, fmt, torch)]
pub struct ConvTranspose {
    weight: Var,
    bias: Var,
    #[layer(skip)]
    act: Activation,
    #[layer(skip)]
    geom: Geometry,
    #[layer(skip)]
    cout: usize,
    #[layer(skip)]
    fresh: bool,
    /// Extra output size per spatial dim, at the high end (Flux's `outpad`).
    #[layer(skip)]
    outpad: Vec<usize>,
}

/// PyTorch's `ConvTranspose1d/2d/3d`: `weight [cin, cout / groups, k...]` (our
/// `[k..., cout / groups, cin]` with the dimensions reversed, and flipped: ours is the gradient of
/// a convolution, PyTorch's of a cross-correlation), `bias [cout]` (absent with `bias=False`:
/// zeros). Stride, padding and groups are the layer's to match.
impl crate::TorchModule for ConvTranspose {
    fn torch_kind(&self) -> &'static str {
        ["ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"][self.weight.shape().rank().clamp(3, 5) - 3]
    }
    fn torch_export(&self) -> Vec<(String, crate::TorchValue)> {
        crate::torch::conv_export(&self.weight, &self.bias, true)
    }
    fn torch_import(&self, src: &mut crate::TorchSource<'_>) -> Vec<(Var, Tensor)> {
        crate::torch::conv_import(src, &self.weight, &self.bias, true)
    }
}

impl ConvTranspose {
    /// Kernel `k`, `cin => cout` channels, an activation: glorot-uniform weight
    /// `[k..., cout, cin]`, zero bias `[cout]`, f32. Panics for a kernel of other than 1 to 3 dims.
    ///
    /// ```
    /// assert_eq!(flux_layers::ConvTranspose::new(&[2], 4, 3, flux_layers::identity).weight().shape(), &[2, 3, 4]);
    /// ```
    pub fn new<F: Fn(&Var) -> Var + Send + Sync + 'static>(k: &[usize], cin: usize, cout: usize, act: F) -> ConvTranspose {
        assert!((1..=3).contains(&k.len()), "ConvTranspose: the kernel {k:?} must have 1 to 3 dims");
        let mut shape = k.to_vec();
        shape.extend([cout, cin]);
        ConvTranspose {
            weight: param(conv_init(&shape)),
            bias: param(Tensor::zeros(&[cout]).to_f32()),
            act: Activation::new(act),
            geom: Geometry::new(k.len()),
            cout,
            fresh: true,
            outpad: vec![0; k.len()],
        }
    }

    /// A layer from a given weight `[k..., cout / groups, cin]` and bias `[cout]`.
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// let c = flux_layers::ConvTranspose::from_weights(Tensor::ones(&[2, 3, 4]), Tensor::zeros(&[3]), flux_layers::identity).unwrap();
    /// assert_eq!(c.to_string(), "ConvTranspose((2,), 4 => 3)");
    /// ```
    pub fn from_weights<F: Fn(&Var) -> Var + Send + Sync + 'static>(weight: Tensor, bias: Tensor, act: F) -> Result<ConvTranspose, LayerError> {
        let r = weight.rank();
        if !(3..=5).contains(&r) || bias.shape() != &[weight.shape()[r - 2]][..] {
            return Err(LayerError::Config {
                layer: "ConvTranspose".into(),
                reason: format!("weight {:?} must be [k..., cout, cin] with 1 to 3 spatial dims and bias {:?} must be [cout]", weight.shape(), bias.shape()),
            });
        }
        let cout = weight.shape()[r - 2];
        Ok(ConvTranspose {
            geom: Geometry::new(r - 2),
            weight: param(weight),
            bias: param(bias),
            act: Activation::new(act),
            cout,
            fresh: false,
            outpad: vec![0; r - 2],
        })
    }

    /// The stride: one value or one per spatial dim.
    ///
    /// ```
    /// let c = flux_layers::ConvTranspose::new(&[2, 2], 1, 1, flux_layers::identity).stride(&[2]);
    /// assert_eq!(c.spec().stride_values(), &[2, 2]);
    /// ```
    pub fn stride(mut self, s: &[usize]) -> ConvTranspose {
        self.geom.stride = self.geom.per_dim("ConvTranspose", "the stride", s);
        self
    }

    /// The padding: one value, one per spatial dim, or one per side.
    ///
    /// ```
    /// let c = flux_layers::ConvTranspose::new(&[3], 1, 1, flux_layers::identity).pad(&[1, 0]);
    /// assert_eq!(c.spec().pad_values(), &[1, 0]);
    /// ```
    pub fn pad(mut self, p: &[usize]) -> ConvTranspose {
        self.geom.set_pad("ConvTranspose", p);
        self
    }

    /// The dilation: one value or one per spatial dim.
    ///
    /// ```
    /// let c = flux_layers::ConvTranspose::new(&[3], 1, 1, flux_layers::identity).dilation(&[2]);
    /// assert_eq!(c.spec().dilation_values(), &[2]);
    /// ```
    pub fn dilation(mut self, d: &[usize]) -> ConvTranspose {
        self.geom.dilation = self.geom.per_dim("ConvTranspose", "the dilation", d);
        self
    }

    /// Extra output size per spatial dim (Flux's `outpad`, PyTorch's `output_padding`): one value
    /// or one per spatial dim, added at the high end of each dim. A strided convolution maps
    /// several input sizes to one output size; `outpad` picks which of them the transpose gives
    /// back, so it must be smaller than the stride (checked by the forward pass). Panics for
    /// another count.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// use flux_layers::Layer;
    /// use flux_tensor::Tensor;
    /// let c = flux_layers::ConvTranspose::new(&[3, 3], 1, 1, flux_layers::identity).stride(&[2]).pad(&[1]).outpad(&[1]);
    /// assert_eq!(c.to_string(), "ConvTranspose((3, 3), 1 => 1, pad=1, stride=2, outpad=1)");
    /// // a stride-2 Conv((3, 3), pad=1) takes 13x13 and 14x14 inputs to 7x7; outpad=1 gives 14x14 back
    /// assert_eq!(c.forward(&Var::from(Tensor::rand(&[7, 7, 1, 1]))).shape(), &[14, 14, 1, 1]);
    /// ```
    pub fn outpad(mut self, p: &[usize]) -> ConvTranspose {
        self.outpad = self.geom.per_dim("ConvTranspose", "outpad", p);
        self
    }

    /// Splits the channels into `g` groups (a layer made by `new` draws a fresh weight
    /// `[k..., cout / g, cin]`). Panics when the channels do not split.
    ///
    /// ```
    /// let c = flux_layers::ConvTranspose::new(&[3], 4, 2, flux_layers::identity).groups(2);
    /// assert_eq!(c.weight().shape(), &[3, 1, 4]);
    /// ```
    pub fn groups(mut self, g: usize) -> ConvTranspose {
        let nd = self.geom.nd;
        let cin = self.weight.shape()[nd + 1];
        if self.fresh {
            assert!(
                g > 0 && self.cout.is_multiple_of(g) && cin.is_multiple_of(g),
                "ConvTranspose: {cin} => {} channels do not split into {g} groups",
                self.cout
            );
            let mut shape = self.weight.shape()[..nd].to_vec();
            shape.extend([self.cout / g, cin]);
            self.weight = param(conv_init(&shape));
        } else {
            assert!(g > 0 && cin.is_multiple_of(g), "ConvTranspose: {cin} input channels do not split into {g} groups");
            self.cout = self.weight.shape()[nd] * g;
            self.bias = param(Tensor::zeros(&[self.cout]).to_dtype(self.bias.dtype()));
        }
        self.geom.groups = g;
        self
    }

    /// The weight `[k..., cout / groups, cin]`.
    ///
    /// ```
    /// assert!(flux_layers::ConvTranspose::new(&[3], 1, 1, flux_layers::identity).weight().is_param());
    /// ```
    pub fn weight(&self) -> &Var {
        &self.weight
    }

    /// The bias `[cout]`.
    ///
    /// ```
    /// assert_eq!(flux_layers::ConvTranspose::new(&[3], 1, 5, flux_layers::identity).bias().shape(), &[5]);
    /// ```
    pub fn bias(&self) -> &Var {
        &self.bias
    }

    /// The geometry as a [`ConvSpec`] (the kernel flipped, as Flux's).
    ///
    /// ```
    /// assert!(flux_layers::ConvTranspose::new(&[3], 1, 1, flux_layers::identity).spec().flipped());
    /// ```
    pub fn spec(&self) -> ConvSpec {
        self.geom.spec().flip(true)
    }

    /// The forward pass, or an error naming the layer and the input's shape.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// let c = flux_layers::ConvTranspose::new(&[3], 2, 1, flux_layers::identity);
    /// assert!(c.try_forward(&Var::from(flux_tensor::Tensor::zeros(&[5, 3, 1]))).is_err());
    /// ```
    pub fn try_forward(&self, x: &Var) -> Result<Var, LayerError> {
        let nd = self.geom.nd;
        let s = x.shape();
        let cin = self.weight.shape()[nd + 1];
        if s.rank() != nd + 2 || s[nd] != cin {
            return Err(LayerError::InputShape {
                layer: self.to_string(),
                got: s.to_vec(),
                expected: format!("[spatial..., {cin}, N] with {nd} spatial dims (weight is {:?})", self.weight.shape()),
            });
        }
        if let Some(d) = (0..nd).find(|&d| self.outpad[d] >= self.geom.stride[d]) {
            return Err(LayerError::Config {
                layer: self.to_string(),
                reason: format!("outpad {:?} must be smaller than the stride {:?} (dim {})", self.outpad, self.geom.stride, d + 1),
            });
        }
        let x = cast_like(x, &self.weight);
        let spec = self.spec();
        // the gradient of a convolution whose input was `outpad` larger: the same windows, so
        // the extra positions get what the padding would have cropped
        let y = spec
            .transpose_output_shape(&x.shape(), &self.weight.shape())
            .and_then(|mut out| {
                out.iter_mut().zip(&self.outpad).for_each(|(o, p)| *o += p);
                x.try_conv_data(&self.weight, &out, &spec)
            })
            .map_err(|e| input_error(self.to_string(), &x, e))?;
        let mut bshape = vec![1; nd];
        bshape.push(self.cout);
        Ok(self.act.apply(&(&y + &self.bias.reshape(&bshape))))
    }

    /// Prints Flux's form, e.g. `ConvTranspose((3, 3), 6 => 1, relu)`.
    ///
    /// ```
    /// assert_eq!(flux_layers::ConvTranspose::new(&[3], 2, 1, flux_layers::identity).to_string(), "ConvTranspose((3,), 2 => 1)");
    /// ```
    pub fn fmt_layer(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nd = self.geom.nd;
        write!(f, "ConvTranspose({}, {} => {}", tuple(&self.weight.shape()[..nd]), self.weight.shape()[nd + 1], self.cout)?;
        self.geom.fmt_opts(f, &self.act)?;
        if self.outpad.iter().any(|&p| p != 0) {
            write!(f, ", outpad={}", maybe_tuple(&self.outpad))?;
        }
        f.write_str(")")
    }
}

impl fmt::Debug for ConvTranspose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_layer(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity;

    #[test]
    fn conv_flips_and_crosscor_does_not() {
        let w = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2, 1, 1]);
        let x = Var::from(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2, 1, 1]));
        let c = Conv::from_weights(w.clone(), Tensor::from_vec(vec![0.5], &[1]), identity).unwrap();
        let cc = CrossCor::from_weights(w, Tensor::from_vec(vec![0.5], &[1]), identity).unwrap();
        assert_eq!(c.forward(&x).to_vec(), vec![20.5]);
        assert_eq!(cc.forward(&x).to_vec(), vec![30.5]);
    }

    #[test]
    fn forward_without_recording_matches_the_recorded_one() {
        // the fused path (bias inside the convolution's output pass) against conv + bias + relu
        let w = Tensor::randn(&[3, 2, 2, 6]).to_f32();
        let c = Conv::from_weights(w, Tensor::randn(&[6]).to_f32(), crate::relu).unwrap().pad(&[1, 0, 2, 1]).stride(&[2, 1]).groups(2);
        let x = Var::from(Tensor::randn(&[9, 7, 4, 3]).to_f32());
        let tracked_x = flux_autograd::param(x.data().clone());
        let with_graph = c.forward(&tracked_x);
        let without = flux_autograd::no_grad(|| c.forward(&x));
        assert!(with_graph.is_tracked() && !without.is_tracked());
        assert!(without.data().allclose(&with_graph.data(), 1e-5, 1e-5));
    }

    #[test]
    fn printing_and_errors() {
        let c = Conv::new(&[3, 3], 4, 8, crate::relu).pad(&[1, 1, 2, 2]).groups(2).dilation(&[2, 1]);
        assert_eq!(c.to_string(), "Conv((3, 3), 4 => 8, relu, pad=(1, 1, 2, 2), dilation=(2, 1), groups=2)");
        assert_eq!(c.weight().shape(), &[3, 3, 2, 8]);
        let y = c.forward(&Var::from(Tensor::rand(&[9, 7, 4, 2])));
        assert_eq!(y.shape(), &[7, 9, 8, 2]);
        let e = c.try_forward(&Var::from(Tensor::rand(&[2, 2, 4, 1]))).unwrap_err().to_string();
        assert!(e.starts_with("Conv((3, 3), 4 => 8") && e.contains("[2, 2, 4, 1]"), "{e}");
        assert!(Conv::from_weights(Tensor::ones(&[3, 3, 2, 4]), Tensor::zeros(&[3]), identity).is_err());
        // f64 input to an f32 layer gives f32
        let c = CrossCor::new(&[2], 1, 1, identity);
        assert_eq!(c.forward(&Var::from(Tensor::rand(&[4, 1, 1]).to_f64())).dtype(), flux_tensor::DType::F32);
    }
}
