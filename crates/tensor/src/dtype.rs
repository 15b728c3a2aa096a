//! Element types: the runtime tag [`DType`] and the [`Element`] trait that kernels are generic over.

use std::fmt;

/// The element type of a tensor, chosen at run time (as in PyTorch and candle), so user code
/// needs no type parameters.
///
/// ```
/// use flux_tensor::{DType, Tensor};
/// assert_eq!(Tensor::rand(&[2]).dtype(), DType::F64);
/// assert_eq!(DType::F32.promote(DType::F64), DType::F64);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum DType {
    /// 32-bit IEEE float (`Float32`), the default of layers.
    F32,
    /// 64-bit IEEE float (`Float64`), the default of `rand`/`randn`.
    F64,
}

impl DType {
    /// The wider of two types: Julia's promotion rule for mixed arithmetic.
    ///
    /// ```
    /// use flux_tensor::DType;
    /// assert_eq!(DType::F32.promote(DType::F32), DType::F32);
    /// ```
    pub fn promote(self, other: DType) -> DType {
        if self == DType::F64 || other == DType::F64 {
            DType::F64
        } else {
            DType::F32
        }
    }

    /// Bytes per element.
    ///
    /// ```
    /// assert_eq!(flux_tensor::DType::F32.size_of(), 4);
    /// ```
    pub fn size_of(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 => 8,
        }
    }

    /// Julia's name for the type, used by `Display`.
    ///
    /// ```
    /// assert_eq!(flux_tensor::DType::F64.julia_name(), "Float64");
    /// ```
    pub fn julia_name(self) -> &'static str {
        match self {
            DType::F32 => "Float32",
            DType::F64 => "Float64",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
        })
    }
}

/// Keeps [`Element`] (and with it [`StorageElement`](crate::StorageElement) and
/// [`GemmElement`](crate::GemmElement)) implemented for `f32` and `f64` only: the module is
/// private, so no other crate can name `Sealed`, let alone implement it.
pub(crate) mod sealed {
    /// The private supertrait of [`Element`](super::Element).
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// A float type that kernels are written over: `f32` and `f64`, and nothing else.
///
/// ```
/// use flux_tensor::Element;
/// assert_eq!(<f32 as Element>::from_f64(0.5), 0.5f32);
/// ```
///
/// The trait is sealed: kernels (the GEMM among them) may rely on every `Element` being one of
/// the two IEEE types its [`DType`] names, so it cannot be implemented outside flux-tensor. Even a
/// type that provides everything else does not compile:
///
/// ```compile_fail
/// use flux_tensor::{DType, Element};
/// # use std::{fmt, ops};
/// #[derive(Clone, Copy, PartialEq, PartialOrd, Debug)]
/// struct MyFloat(f64);
/// # impl fmt::Display for MyFloat {
/// #     fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { self.0.fmt(f) }
/// # }
/// # macro_rules! binop { ($($tr:ident $f:ident),*) => { $(impl ops::$tr for MyFloat {
/// #     type Output = MyFloat;
/// #     fn $f(self, o: MyFloat) -> MyFloat { MyFloat(ops::$tr::$f(self.0, o.0)) }
/// # })* } }
/// # binop!(Add add, Sub sub, Mul mul, Div div);
/// # impl ops::Neg for MyFloat { type Output = MyFloat; fn neg(self) -> MyFloat { MyFloat(-self.0) } }
/// # impl ops::AddAssign for MyFloat { fn add_assign(&mut self, o: MyFloat) { self.0 += o.0 } }
/// # impl std::iter::Sum for MyFloat {
/// #     fn sum<I: Iterator<Item = MyFloat>>(it: I) -> MyFloat { MyFloat(it.map(|x| x.0).sum()) }
/// # }
/// # macro_rules! unary { ($($f:ident),*) => { $(fn $f(self) -> Self { MyFloat(self.0.$f()) })* } }
/// // ... with Copy, Display, arithmetic and the rest all implemented (hidden here) ...
/// impl Element for MyFloat { // error: `MyFloat: Sealed` is not satisfied
///     const DTYPE: DType = DType::F64;
///     // ... every method, delegating to f64 ...
/// #   const ZERO: Self = MyFloat(0.0);
/// #   const ONE: Self = MyFloat(1.0);
/// #   fn from_f64(x: f64) -> Self { MyFloat(x) }
/// #   fn to_f64(self) -> f64 { self.0 }
/// #   unary!(exp, ln, ln_1p, sqrt, abs, sin, cos, tanh);
/// #   fn powi(self, n: i32) -> Self { MyFloat(self.0.powi(n)) }
/// #   fn powf(self, y: Self) -> Self { MyFloat(self.0.powf(y.0)) }
/// #   fn maximum(self, o: Self) -> Self { MyFloat(self.0.max(o.0)) }
/// #   fn minimum(self, o: Self) -> Self { MyFloat(self.0.min(o.0)) }
/// #   fn is_nan(self) -> bool { self.0.is_nan() }
/// #   fn neg_infinity() -> Self { MyFloat(f64::NEG_INFINITY) }
/// #   fn infinity() -> Self { MyFloat(f64::INFINITY) }
/// }
/// ```
pub trait Element:
    sealed::Sealed
    + Copy
    + Send
    + Sync
    + 'static
    + PartialOrd
    + PartialEq
    + fmt::Debug
    + fmt::Display
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
    + std::ops::AddAssign
    + std::iter::Sum
{
    /// The matching runtime tag.
    const DTYPE: DType;
    /// Additive identity.
    const ZERO: Self;
    /// Multiplicative identity.
    const ONE: Self;
    /// Converts (rounding when narrowing).
    fn from_f64(x: f64) -> Self;
    /// Widens to f64.
    fn to_f64(self) -> f64;
    /// `e^x`.
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// `ln(1 + x)`, accurate near 0.
    fn ln_1p(self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// Sine.
    fn sin(self) -> Self;
    /// Cosine.
    fn cos(self) -> Self;
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
    /// Integer power.
    fn powi(self, n: i32) -> Self;
    /// Real power.
    fn powf(self, y: Self) -> Self;
    /// The larger of two values (NaN propagates).
    fn maximum(self, other: Self) -> Self;
    /// The smaller of two values (NaN propagates).
    fn minimum(self, other: Self) -> Self;
    /// Is this value NaN?
    fn is_nan(self) -> bool;
    /// Negative infinity.
    fn neg_infinity() -> Self;
    /// Positive infinity.
    fn infinity() -> Self;
}

macro_rules! impl_element {
    ($t:ty, $dt:expr) => {
        impl Element for $t {
            const DTYPE: DType = $dt;
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            #[inline(always)]
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline(always)]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline(always)]
            fn ln_1p(self) -> Self {
                <$t>::ln_1p(self)
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline(always)]
            fn sin(self) -> Self {
                <$t>::sin(self)
            }
            #[inline(always)]
            fn cos(self) -> Self {
                <$t>::cos(self)
            }
            #[inline(always)]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline(always)]
            fn powi(self, n: i32) -> Self {
                <$t>::powi(self, n)
            }
            #[inline(always)]
            fn powf(self, y: Self) -> Self {
                <$t>::powf(self, y)
            }
            #[inline(always)]
            fn maximum(self, other: Self) -> Self {
                if self.is_nan() || other.is_nan() {
                    <$t>::NAN
                } else if self >= other {
                    self
                } else {
                    other
                }
            }
            #[inline(always)]
            fn minimum(self, other: Self) -> Self {
                if self.is_nan() || other.is_nan() {
                    <$t>::NAN
                } else if self <= other {
                    self
                } else {
                    other
                }
            }
            #[inline(always)]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
            #[inline(always)]
            fn neg_infinity() -> Self {
                <$t>::NEG_INFINITY
            }
            #[inline(always)]
            fn infinity() -> Self {
                <$t>::INFINITY
            }
        }
    };
}

impl_element!(f32, DType::F32);
impl_element!(f64, DType::F64);
