//! [`History`]: named metrics recorded over steps or epochs, written to and read from CSV.

use std::fmt::Write as _;
use std::path::Path;

use crate::optimiser::OptimError;
use crate::train::TrainEvent;

/// Named metrics over training steps (or epochs): the loss of every step, held-out accuracy
/// every epoch, the learning rate, anything a user measures. Each name keeps its points in the
/// order they were pushed; names keep the order in which they first appeared (the order of the
/// legend in `plot_history`).
///
/// ```
/// use flux_optim::History;
/// let mut h = History::new();
/// h.push("loss", 1, 2.3);
/// h.push("loss", 2, 1.9);
/// h.push("accuracy", 2, 0.41);
/// assert_eq!(h.series("loss"), vec![(1, 2.3), (2, 1.9)]);
/// assert_eq!(h.last("accuracy"), Some((2, 0.41)));
/// assert_eq!(h.names().collect::<Vec<_>>(), ["loss", "accuracy"]);
/// assert!(h.series("missing").is_empty());
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    metrics: Vec<(String, Vec<(usize, f64)>)>,
    x_label: Option<String>,
}

impl History {
    /// An empty history.
    pub fn new() -> History {
        History::default()
    }

    /// What the steps count, for the x axis of plots and the CSV header: `"step"` unless
    /// [`History::set_x_label`] said otherwise.
    pub fn x_label(&self) -> &str {
        self.x_label.as_deref().unwrap_or("step")
    }

    /// Names what the steps count (`"epoch"`, say).
    ///
    /// ```
    /// use flux_optim::History;
    /// let mut h = History::new();
    /// h.set_x_label("epoch");
    /// h.push("accuracy", 1, 0.9);
    /// assert_eq!(h.to_csv(), "metric,epoch,value\naccuracy,1,0.9\n");
    /// assert_eq!(History::from_csv(&h.to_csv()).unwrap().x_label(), "epoch");
    /// ```
    pub fn set_x_label(&mut self, label: &str) {
        self.x_label = (label != "step").then(|| label.replace([',', '"', '\n', '\r'], " "));
    }

    /// Records `value` for the metric `name` at `step` (a step, an epoch: the x axis of its
    /// plot). Non-finite values are kept (a NaN loss is worth seeing in the CSV); plots skip
    /// them.
    pub fn push(&mut self, name: &str, step: usize, value: f64) {
        match self.metrics.iter_mut().find(|(n, _)| n == name) {
            Some((_, points)) => points.push((step, value)),
            None => self.metrics.push((name.to_string(), vec![(step, value)])),
        }
    }

    /// Appends `values` to `name` at the steps that follow its last one (from 1 for a new
    /// metric): `h.extend("loss", &summary.losses)` after each epoch gives one curve over all of
    /// them.
    ///
    /// ```
    /// use flux_optim::History;
    /// let mut h = History::new();
    /// h.extend("loss", &[3.0, 2.0]);
    /// h.extend("loss", &[1.0]);
    /// assert_eq!(h.series("loss"), vec![(1, 3.0), (2, 2.0), (3, 1.0)]);
    /// ```
    pub fn extend(&mut self, name: &str, values: &[f64]) {
        let first = self.last_step(name).map_or(1, |s| s + 1);
        for (i, &v) in values.iter().enumerate() {
            self.push(name, first + i, v);
        }
    }

    /// The points of `name` as `(step, value)`, in the order pushed; empty if it was never
    /// recorded.
    pub fn series(&self, name: &str) -> Vec<(usize, f64)> {
        self.get(name).map(<[_]>::to_vec).unwrap_or_default()
    }

    /// The points of `name`, borrowed.
    pub fn get(&self, name: &str) -> Option<&[(usize, f64)]> {
        self.metrics.iter().find(|(n, _)| n == name).map(|(_, p)| p.as_slice())
    }

    /// The last point of `name`.
    pub fn last(&self, name: &str) -> Option<(usize, f64)> {
        self.get(name).and_then(|p| p.last().copied())
    }

    /// The largest step recorded for `name`.
    pub fn last_step(&self, name: &str) -> Option<usize> {
        self.get(name).and_then(|p| p.iter().map(|&(s, _)| s).max())
    }

    /// The metric names, in the order they first appeared.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.metrics.iter().map(|(n, _)| n.as_str())
    }

    /// The number of metrics.
    pub fn len(&self) -> usize {
        self.metrics.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.metrics.is_empty()
    }

    /// A [`train_with`](crate::train_with) callback that records every step's `loss` and, for
    /// optimisers that have one, its learning rate as `lr`. Steps continue from the last one
    /// recorded for `loss`, so calling [`train`](crate::train) once per epoch gives one curve.
    ///
    /// ```
    /// use flux_optim::{train_with, Adam, History};
    /// use flux_autograd::{param, params, Var};
    /// let w = param(0.0);
    /// let data = vec![(Var::scalar(1.0), Var::scalar(3.0)); 5];
    /// let mut h = History::new();
    /// let mut opt = Adam::new(0.1);
    /// for _epoch in 0..2 {
    ///     train_with(|x: &Var, y: &Var| (&w * x - y).powi(2), &params![&w], &data, &mut opt, h.recorder());
    /// }
    /// assert_eq!(h.series("loss").len(), 10);
    /// assert_eq!(h.last_step("loss"), Some(10));
    /// assert_eq!(h.last("lr"), Some((10, 0.1)));
    /// ```
    pub fn recorder(&mut self) -> impl FnMut(&TrainEvent) + '_ {
        let offset = self.last_step("loss").unwrap_or(0);
        move |e: &TrainEvent| {
            self.push("loss", offset + e.step, e.loss);
            if let Some(lr) = e.lr {
                self.push("lr", offset + e.step, lr);
            }
        }
    }

    /// The history as CSV text: a header `metric,step,value` (with the
    /// [`x_label`](History::x_label) for `step`), then one line per point, metrics in order. Values are written so that they read back exactly (`NaN`, `inf` and `-inf`
    /// included); a name with a comma or a quote is quoted, and a line break in a name is
    /// written as a space.
    ///
    /// ```
    /// use flux_optim::History;
    /// let mut h = History::new();
    /// h.push("loss", 1, 0.5);
    /// assert_eq!(h.to_csv(), "metric,step,value\nloss,1,0.5\n");
    /// ```
    pub fn to_csv(&self) -> String {
        let mut out = format!("metric,{},value\n", self.x_label());
        for (name, points) in &self.metrics {
            let name = csv_field(name);
            for (s, v) in points {
                let _ = writeln!(out, "{name},{s},{v:?}");
            }
        }
        out
    }

    /// Reads the text [`History::to_csv`] writes. An error names the line and what was wrong.
    ///
    /// ```
    /// use flux_optim::History;
    /// let h = History::from_csv("metric,step,value\nloss,1,0.5\n\"a,b\",2,NaN\n").unwrap();
    /// assert_eq!(h.series("loss"), vec![(1, 0.5)]);
    /// assert!(h.last("a,b").unwrap().1.is_nan());
    /// assert!(History::from_csv("metric,step,value\nloss,x,1\n").is_err());
    /// ```
    pub fn from_csv(text: &str) -> Result<History, OptimError> {
        let bad = |line: usize, what: String| OptimError::Data(format!("History::from_csv: line {line}: {what}"));
        let mut lines = text.lines().enumerate();
        let mut h = History::new();
        match lines.next().map(|(_, l)| l.trim().split(',').collect::<Vec<_>>()) {
            Some(f) if f.len() == 3 && f[0] == "metric" && f[2] == "value" && !f[1].is_empty() => h.set_x_label(f[1]),
            Some(f) => return Err(bad(1, format!("expected the header `metric,step,value`, found `{}`", f.join(",")))),
            None => return Err(bad(1, "empty file, expected the header `metric,step,value`".into())),
        }
        for (i, line) in lines {
            let n = i + 1;
            if line.trim().is_empty() {
                continue;
            }
            let (name, rest) = split_name(line).map_err(|e| bad(n, e))?;
            let (step, value) = rest.split_once(',').ok_or_else(|| bad(n, format!("expected `metric,step,value`, found `{line}`")))?;
            let step: usize = step.trim().parse().map_err(|e| bad(n, format!("step `{step}`: {e}")))?;
            let value: f64 = value.trim().parse().map_err(|e| bad(n, format!("value `{value}`: {e}")))?;
            h.push(&name, step, value);
        }
        Ok(h)
    }

    /// Writes [`History::to_csv`] to `path`.
    ///
    /// ```
    /// use flux_optim::History;
    /// let mut h = History::new();
    /// h.push("loss", 1, 0.25);
    /// let path = std::env::temp_dir().join(format!("flux_optim_history_doc_{}.csv", std::process::id()));
    /// h.save_csv(&path).unwrap();
    /// assert_eq!(History::load_csv(&path).unwrap(), h);
    /// # std::fs::remove_file(path).unwrap();
    /// ```
    pub fn save_csv(&self, path: impl AsRef<Path>) -> Result<(), OptimError> {
        let path = path.as_ref();
        std::fs::write(path, self.to_csv()).map_err(|source| OptimError::Io { op: "History::save_csv", path: path.display().to_string(), source })
    }

    /// Reads a file written by [`History::save_csv`].
    pub fn load_csv(path: impl AsRef<Path>) -> Result<History, OptimError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| OptimError::Io { op: "History::load_csv", path: path.display().to_string(), source })?;
        History::from_csv(&text).map_err(|e| match e {
            OptimError::Data(m) => OptimError::Data(format!("{m} (in {})", path.display())),
            e => e,
        })
    }
}

/// A CSV field, quoted when it needs to be.
fn csv_field(s: &str) -> String {
    let s = s.replace(['\n', '\r'], " ");
    if s.contains([',', '"']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// Splits the first CSV field (possibly quoted) off a line.
fn split_name(line: &str) -> Result<(String, &str), String> {
    let Some(quoted) = line.strip_prefix('"') else {
        return line.split_once(',').map(|(a, b)| (a.to_string(), b)).ok_or_else(|| format!("expected `metric,step,value`, found `{line}`"));
    };
    let mut name = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == '"' {
            if quoted[i + 1..].starts_with('"') {
                name.push('"');
                chars.next();
            } else {
                let rest = &quoted[i + 1..];
                return rest.strip_prefix(',').map(|r| (name, r)).ok_or_else(|| format!("expected a comma after the quoted name in `{line}`"));
            }
        } else {
            name.push(c);
        }
    }
    Err(format!("unterminated quote in `{line}`"))
}
