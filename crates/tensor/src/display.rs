//! `Display` like Julia's REPL: a summary line (`2×3 Matrix{Float64}:`) and the values, with
//! rows and columns elided past a screenful. `Debug` is the compact one-line form.

use std::fmt;

use crate::tensor::Tensor;

const MAX_ROWS: usize = 20;
const MAX_COLS: usize = 12;

/// Each element formatted in its own type's shortest round-trip form (`0.1`, `14.0`).
fn formatted(t: &Tensor) -> Vec<String> {
    crate::dispatch!(t, |v: T| v.iter().map(|x| format!("{x:?}")).collect())
}

impl Tensor {
    /// Julia's summary: `5-element Vector{Float32}`, `2×3 Matrix{Float64}`,
    /// `2×3×4 Array{Float64, 3}` (the first line of `Display`).
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// assert_eq!(Tensor::zeros(&[2, 3]).summary(), "2×3 Matrix{Float64}");
    /// ```
    pub fn summary(&self) -> String {
        let ty = self.dtype().julia_name();
        match self.rank() {
            0 => format!("0-dimensional Array{{{ty}, 0}}"),
            1 => format!("{}-element Vector{{{ty}}}", self.shape()[0]),
            2 => format!("{} Matrix{{{ty}}}", self.shape().times_string()),
            r => format!("{} Array{{{ty}, {r}}}", self.shape().times_string()),
        }
    }

    /// The compact inline form Julia uses inside containers: `[0.1, 0.2]` or `Float32[0.1, 0.2]`,
    /// matrices as `[1.0 3.0; 2.0 4.0]`, eliding past a few entries.
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// assert_eq!(Tensor::from_vec(vec![1.0, 2.0], &[2]).inline(), "[1.0, 2.0]");
    /// assert_eq!(Tensor::from_vec(vec![1.0f32, 2.0], &[2]).inline(), "Float32[1.0, 2.0]");
    /// ```
    pub fn inline(&self) -> String {
        inline(self)
    }
}

/// Which of `n` indices to show: all, or the first and last few with a gap (None) between.
fn shown(n: usize, max: usize) -> Vec<Option<usize>> {
    if n <= max {
        (0..n).map(Some).collect()
    } else {
        let half = max / 2;
        (0..half).map(Some).chain(std::iter::once(None)).chain((n - half..n).map(Some)).collect()
    }
}

/// Writes the rows of one matrix (column-major `cells`, `rows × cols`), columns aligned.
fn write_matrix(f: &mut fmt::Formatter<'_>, cells: &[String], rows: usize, cols: usize) -> fmt::Result {
    let (rs, cs) = (shown(rows, MAX_ROWS), shown(cols, MAX_COLS));
    let width: Vec<usize> = cs
        .iter()
        .map(|c| match c {
            Some(j) => rs.iter().flatten().map(|&i| cells[i + j * rows].chars().count()).max().unwrap_or(0),
            None => 1,
        })
        .collect();
    for (ri, r) in rs.iter().enumerate() {
        if ri > 0 {
            writeln!(f)?;
        }
        for (ci, c) in cs.iter().enumerate() {
            let cell = match (r, c) {
                (Some(i), Some(j)) => cells[i + j * rows].as_str(),
                (None, _) => "⋮",
                (_, None) => "…",
            };
            write!(f, " {cell:>w$}", w = width[ci])?;
        }
    }
    Ok(())
}

impl fmt::Display for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cells = formatted(self);
        if self.rank() == 0 {
            return write!(f, "{}", cells[0]);
        }
        writeln!(f, "{}:", self.summary())?;
        match self.rank() {
            1 => write_matrix(f, &cells, self.shape()[0], 1),
            _ => {
                let (rows, cols) = (self.shape()[0], self.shape()[1]);
                let slices: usize = self.shape()[2..].iter().product();
                if self.rank() == 2 {
                    return write_matrix(f, &cells, rows, cols);
                }
                let per = rows * cols;
                for s in 0..slices {
                    // Julia labels each slice with its trailing indices: [:, :, 1, 2]
                    let mut idx = Vec::new();
                    let mut r = s;
                    for &d in &self.shape()[2..] {
                        idx.push((r % d + 1).to_string());
                        r /= d;
                    }
                    if s > 0 {
                        writeln!(f)?;
                        writeln!(f)?;
                    }
                    writeln!(f, "[:, :, {}] =", idx.join(", "))?;
                    write_matrix(f, &cells[s * per..(s + 1) * per], rows, cols)?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cells = formatted(self);
        let n = cells.len();
        let body = if n > 10 { format!("{}, …, {}", cells[..5].join(", "), cells[n - 5..].join(", ")) } else { cells.join(", ") };
        write!(f, "Tensor({}, {:?}, [{}])", self.dtype(), self.shape(), body)
    }
}

/// [`Tensor::inline`].
fn inline(t: &Tensor) -> String {
    let cells = formatted(t);
    let prefix = if t.dtype() == crate::DType::F32 { "Float32" } else { "" };
    match t.rank() {
        0 => cells[0].clone(),
        1 => {
            let n = cells.len();
            let body = if n > 10 { format!("{}, …, {}", cells[..5].join(", "), cells[n - 5..].join(", ")) } else { cells.join(", ") };
            format!("{prefix}[{body}]")
        }
        _ => {
            let rows = t.shape()[0];
            let cols = t.numel() / rows.max(1);
            let row = |i: usize| -> String {
                let cs = shown(cols, 4);
                cs.iter().map(|c| c.map(|j| cells[i + j * rows].clone()).unwrap_or_else(|| "…".into())).collect::<Vec<_>>().join(" ")
            };
            let rs = shown(rows, 4);
            let body: Vec<String> = rs.iter().map(|r| r.map(row).unwrap_or_else(|| "…".into())).collect();
            format!("{prefix}[{}]", body.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn julia_like_display() {
        let m = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
        assert_eq!(m.to_string(), "2×3 Matrix{Float64}:\n 1.0 3.0 5.0\n 2.0 4.0 6.0");
        let v = Tensor::from_vec(vec![0.5f32, -1.25], &[2]);
        assert_eq!(v.to_string(), "2-element Vector{Float32}:\n   0.5\n -1.25");
        assert_eq!(Tensor::scalar(14.0).to_string(), "14.0");
    }

    #[test]
    fn large_arrays_are_elided() {
        let v = Tensor::zeros(&[100]);
        let s = v.to_string();
        assert!(s.contains('⋮'));
        assert!(s.lines().count() < 30);
        let m = Tensor::zeros(&[3, 50]);
        assert!(m.to_string().contains('…'));
        assert!(format!("{:?}", Tensor::zeros(&[50])).contains('…'));
    }
}
