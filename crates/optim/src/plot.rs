//! Training curves as SVG or PNG: [`plot_history`] and [`plot_losses`], drawn with `plotters`
//! (no system font library: the text of PNG files is rendered from an embedded subset of DejaVu
//! Sans, see `assets/DejaVuSans-LICENSE.txt`).

use std::io::BufWriter;
use std::path::Path;
use std::sync::Once;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::history::History;

/// DejaVu Sans, cut down to Latin-1, Greek and a few symbols (26 KiB).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans-subset.ttf");
/// The family name the embedded font is registered under.
const FAMILY: &str = "sans-serif";

const WIDTH: u32 = 960;
const PANEL_HEIGHT: u32 = 340;

/// The colours of the series, in order (matplotlib's "tab10").
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Why a plot could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The path does not end in `.svg` or `.png`.
    #[error("plot {path}: unknown image format {ext:?}; use a path ending in .svg or .png")]
    Format {
        /// The path asked for.
        path: String,
        /// Its extension ("" when it has none).
        ext: String,
    },
    /// There was nothing to draw: no metric, or no finite value in any.
    #[error("plot {path}: nothing to plot (the history has no finite value)")]
    Empty {
        /// The path asked for.
        path: String,
    },
    /// Creating or writing the file failed.
    #[error("plot {path}: {source}")]
    Io {
        /// The path asked for.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Drawing or encoding failed.
    #[error("plot {path}: {reason}")]
    Draw {
        /// The path asked for.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Svg,
    Png,
}

fn format_of(path: &Path) -> Result<Format, PlotError> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "svg" => Ok(Format::Svg),
        "png" => Ok(Format::Png),
        _ => Err(PlotError::Format { path: path.display().to_string(), ext }),
    }
}

/// Draws every metric of `history` to `path`, an SVG or a PNG file as its extension says: one
/// line per metric, labelled axes and a legend. Metrics of one kind share a panel (names with
/// "loss" in them, names with "acc", the learning rate `lr`); any other metric gets its own.
/// The panels are stacked over one x axis, the history's [`x_label`](History::x_label). A
/// panel whose values are all positive and span two decades or more has a log scale. A series
/// of at most 100 points also marks each point. Non-finite values are left out.
///
/// An unknown extension, an unwritable path, or a history with no finite value is an `Err`.
///
/// ```
/// use flux_optim::{plot_history, History, PlotError};
/// let mut h = History::new();
/// for step in 1..=100 {
///     h.push("train loss", step, 2.3 * (-(step as f64) / 20.0).exp());
/// }
/// for epoch in 1..=5 {
///     h.push("held-out accuracy", 20 * epoch, 1.0 - 0.5 / epoch as f64);
/// }
/// let path = std::env::temp_dir().join(format!("flux_optim_plot_doc_{}.svg", std::process::id()));
/// plot_history(&h, &path).unwrap();
/// assert!(std::fs::read_to_string(&path).unwrap().starts_with("<svg"));
/// assert!(matches!(plot_history(&h, "curves.pdf"), Err(PlotError::Format { .. })));
/// # std::fs::remove_file(path).unwrap();
/// ```
pub fn plot_history(history: &History, path: impl AsRef<Path>) -> Result<(), PlotError> {
    let path = path.as_ref();
    let format = format_of(path)?;
    let shown = path.display().to_string();
    let panels = panels(history);
    if panels.is_empty() {
        return Err(PlotError::Empty { path: shown });
    }
    register_font();
    let size = (WIDTH, PANEL_HEIGHT * panels.len() as u32);
    let draw_err = |e: String| PlotError::Draw { path: shown.clone(), reason: e };
    match format {
        Format::Svg => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
                draw(&root, history, &panels).map_err(draw_err)?;
            }
            std::fs::write(path, svg).map_err(|source| PlotError::Io { path: shown.clone(), source })
        }
        Format::Png => {
            let mut rgb = vec![255u8; (size.0 * size.1 * 3) as usize];
            {
                let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
                draw(&root, history, &panels).map_err(draw_err)?;
            }
            write_png(path, size, &rgb).map_err(|e| match e {
                png::EncodingError::IoError(source) => PlotError::Io { path: shown.clone(), source },
                e => PlotError::Draw { path: shown.clone(), reason: e.to_string() },
            })
        }
    }
}

/// Draws one loss per step (a [`TrainSummary::losses`](crate::TrainSummary::losses), say) to
/// `path` (`.svg` or `.png`), as [`plot_history`] does for a history with one metric, `loss`.
///
/// ```
/// use flux_optim::plot_losses;
/// let losses: Vec<f64> = (0..500).map(|i| 2.0 / (1.0 + i as f64)).collect();
/// let path = std::env::temp_dir().join(format!("flux_optim_plot_losses_doc_{}.png", std::process::id()));
/// plot_losses(&losses, &path).unwrap();
/// assert!(std::fs::read(&path).unwrap().starts_with(b"\x89PNG"));
/// # std::fs::remove_file(path).unwrap();
/// ```
pub fn plot_losses(losses: &[f64], path: impl AsRef<Path>) -> Result<(), PlotError> {
    let mut h = History::new();
    h.extend("loss", losses);
    plot_history(&h, path)
}

fn write_png(path: &Path, (w, h): (u32, u32), rgb: &[u8]) -> Result<(), png::EncodingError> {
    let file = std::fs::File::create(path)?;
    let mut enc = png::Encoder::new(BufWriter::new(file), w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::High);
    let mut writer = enc.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is ours and known to parse; a failure would show as a drawing error.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

/// One panel: a title for its y axis and the indices of its metrics (in the history's order).
struct Panel {
    title: String,
    metrics: Vec<usize>,
    /// Where the legend goes: below the curves for metrics that rise (accuracies).
    legend_low: bool,
}

/// The panel a metric belongs to.
fn kind_of(name: &str) -> (String, bool) {
    let lower = name.to_lowercase();
    if lower.contains("loss") {
        ("loss".into(), false)
    } else if lower.contains("acc") {
        ("accuracy".into(), true)
    } else if lower == "lr" || lower.contains("learning rate") || lower.contains("learning_rate") {
        ("learning rate".into(), false)
    } else {
        (name.to_string(), false)
    }
}

fn finite_points(points: &[(usize, f64)]) -> Vec<(f64, f64)> {
    points.iter().filter(|(_, v)| v.is_finite()).map(|&(s, v)| (s as f64, v)).collect()
}

fn panels(history: &History) -> Vec<Panel> {
    let mut panels: Vec<Panel> = Vec::new();
    for (i, name) in history.names().enumerate() {
        if finite_points(history.get(name).unwrap_or(&[])).is_empty() {
            continue;
        }
        let (title, legend_low) = kind_of(name);
        match panels.iter_mut().find(|p| p.title == title) {
            Some(p) => p.metrics.push(i),
            None => panels.push(Panel { title, metrics: vec![i], legend_low }),
        }
    }
    panels
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, plotters::coord::Shift>, history: &History, panels: &[Panel]) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let names: Vec<&str> = history.names().collect();
    let all: Vec<(f64, f64)> = panels.iter().flat_map(|p| &p.metrics).flat_map(|&i| finite_points(history.get(names[i]).unwrap_or(&[]))).collect();
    let (mut x0, mut x1) = all.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &(x, _)| (a.min(x), b.max(x)));
    if x1 <= x0 {
        (x0, x1) = (x0 - 1.0, x1 + 1.0);
    }
    let areas = root.split_evenly((panels.len(), 1));
    for (area, panel) in areas.iter().zip(panels) {
        let series: Vec<(&str, Vec<(f64, f64)>, RGBColor)> =
            panel.metrics.iter().map(|&i| (names[i], finite_points(history.get(names[i]).unwrap_or(&[])), PALETTE[i % PALETTE.len()])).collect();
        let (lo, hi) = series.iter().flat_map(|s| &s.1).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &(_, y)| (a.min(y), b.max(y)));
        let x = x0..x1;
        if lo > 0.0 && hi / lo >= 100.0 {
            let y = (lo / 1.25..hi * 1.25).log_scale();
            draw_panel(area, history.x_label(), panel, &series, true, x, y, |v: &f64| format_log_tick(*v))
        } else {
            let pad = if hi > lo { 0.05 * (hi - lo) } else { 0.1 * hi.abs().max(1.0) };
            draw_panel(area, history.x_label(), panel, &series, false, x, lo - pad..hi + pad, |v: &f64| format_tick(*v))
        }
        .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}

fn draw_panel<DB, Y>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    x_label: &str,
    panel: &Panel,
    series: &[(&str, Vec<(f64, f64)>, RGBColor)],
    log: bool,
    x: std::ops::Range<f64>,
    y: Y,
    y_fmt: impl Fn(&f64) -> String,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
where
    DB: DrawingBackend,
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(area)
        .margin(16)
        .margin_right(28)
        .x_label_area_size(52)
        .y_label_area_size(86)
        .build_cartesian_2d::<RangedCoordf64, Y::CoordDescType>(x.into(), y.into())?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(panel.title.as_str())
        .axis_desc_style((FAMILY, 20))
        .label_style((FAMILY, 16))
        .x_label_formatter(&|v: &f64| format_tick(*v))
        .y_label_formatter(&y_fmt)
        .light_line_style(RGBColor(238, 238, 238))
        .bold_line_style(RGBColor(210, 210, 210))
        .draw()?;
    for (name, points, color) in series {
        let color = *color;
        // A long, noisy series: the raw values faint and one pixel wide, a centred moving
        // average over it in full colour. (Wide lines through sharp zigzags would draw spikes
        // where the polygon's inner corners meet.)
        let line = if points.len() > SMOOTH_ABOVE {
            chart.draw_series(LineSeries::new(thin(points, MAX_DRAWN), color.mix(0.3).stroke_width(1)))?;
            let smoothed = smooth(points, log);
            let k = smoothed.len().div_ceil(MAX_DRAWN / 2);
            smoothed.iter().step_by(k.max(1)).chain(smoothed.last().filter(|_| !(smoothed.len() - 1).is_multiple_of(k))).copied().collect()
        } else {
            points.clone()
        };
        chart
            .draw_series(LineSeries::new(line, color.stroke_width(2)))?
            .label(*name)
            .legend(move |(lx, ly)| PathElement::new(vec![(lx, ly), (lx + 24, ly)], color.stroke_width(3)));
        if points.len() <= 100 {
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
    }
    chart
        .configure_series_labels()
        .position(if panel.legend_low { SeriesLabelPosition::LowerRight } else { SeriesLabelPosition::UpperRight })
        .margin(12)
        .label_font((FAMILY, 17))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(160, 160, 160))
        .draw()?;
    Ok(())
}

/// Series longer than this are drawn faint with a moving average over them.
const SMOOTH_ABOVE: usize = 200;

/// At most about this many points of one series are drawn (a long run's SVG stays small).
const MAX_DRAWN: usize = 4000;

/// `points` in at most about `max` points: when there are more, consecutive runs are replaced
/// by their first, lowest, highest and last points (in step order), which keeps the envelope
/// of a noisy curve as a pixel-wide line would show it.
fn thin(points: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    if points.len() <= max {
        return points.to_vec();
    }
    let run = points.len().div_ceil(max / 4);
    let mut out = Vec::with_capacity(max + 4);
    for chunk in points.chunks(run) {
        let lo = chunk.iter().copied().min_by(|a, b| a.1.total_cmp(&b.1)).unwrap_or(chunk[0]);
        let hi = chunk.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap_or(chunk[0]);
        let mut four = [chunk[0], lo, hi, chunk[chunk.len() - 1]];
        four.sort_by(|a, b| a.0.total_cmp(&b.0));
        for p in four {
            if out.last() != Some(&p) {
                out.push(p);
            }
        }
    }
    out
}

/// A centred moving average over about 2% of the points (at least 5), in log space on a log
/// axis (a geometric mean, so a spike does not dominate). Near the ends the window shrinks
/// symmetrically, down to a quarter of its half-width (then cut at the end), so the curve
/// follows the steep start of a training run without ending on one noisy point.
fn smooth(points: &[(f64, f64)], log: bool) -> Vec<(f64, f64)> {
    let half = (points.len() / 100).max(2);
    let f = |v: f64| if log { v.ln() } else { v };
    let mut prefix = Vec::with_capacity(points.len() + 1);
    prefix.push(0.0);
    for &(_, v) in points {
        prefix.push(prefix.last().copied().unwrap_or(0.0) + f(v));
    }
    (0..points.len())
        .map(|i| {
            let h = half.min(i).min(points.len() - 1 - i).max(half / 4);
            let (a, b) = (i.saturating_sub(h), (i + h + 1).min(points.len()));
            let mean = (prefix[b] - prefix[a]) / (b - a) as f64;
            (points[i].0, if log { mean.exp() } else { mean })
        })
        .collect()
}

/// A tick label: an integer when it is one, else up to four significant digits.
fn format_tick(v: f64) -> String {
    if v == v.round() && v.abs() < 1e7 {
        format!("{v:.0}")
    } else if v.abs() >= 1e-3 && v.abs() < 1e5 {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0');
        s.trim_end_matches('.').to_string()
    } else {
        format!("{v:.1e}")
    }
}

/// A tick label on a log axis.
fn format_log_tick(v: f64) -> String {
    if (1e-3..1e5).contains(&v.abs()) {
        format_tick(v)
    } else {
        format!("{v:.0e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_read_well() {
        assert_eq!(format_tick(100.0), "100");
        assert_eq!(format_tick(0.25), "0.25");
        assert_eq!(format_tick(0.123456), "0.1235");
        assert_eq!(format_tick(-1.5), "-1.5");
        assert_eq!(format_tick(2e-5), "2.0e-5");
        assert_eq!(format_log_tick(1e-4), "1e-4");
    }

    #[test]
    fn thinning_keeps_the_envelope_and_the_ends() {
        let pts: Vec<(f64, f64)> = (0..100_000).map(|i| (i as f64, ((i * 7919) % 1000) as f64)).collect();
        let t = thin(&pts, 4000);
        assert!(t.len() <= 4004 && t.len() > 3000, "{}", t.len());
        assert_eq!((t[0], t[t.len() - 1]), (pts[0], pts[99_999]));
        assert!(t.windows(2).all(|w| w[0].0 < w[1].0), "steps stay in order");
        let (lo, hi) = t.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.1), b.max(p.1)));
        assert_eq!((lo, hi), (0.0, 999.0));
        assert_eq!(thin(&pts[..10], 4000), pts[..10].to_vec());
    }

    #[test]
    fn smoothing_averages_a_centred_window() {
        let pts: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, if i % 2 == 0 { 1.0 } else { 3.0 })).collect();
        let s = smooth(&pts, false);
        assert_eq!(s.len(), 10);
        assert_eq!((s[0], s[9]), (pts[0], pts[9]));
        assert_eq!(s[1], (1.0, (1.0 + 3.0 + 1.0) / 3.0));
        assert_eq!(s[4], (4.0, (1.0 + 3.0 + 1.0 + 3.0 + 1.0) / 5.0));
        // geometric on a log axis: 1 and 100 average to 10
        let pts = [(0.0, 1.0), (1.0, 100.0), (2.0, 1.0), (3.0, 100.0), (4.0, 1.0), (5.0, 100.0)];
        let s = smooth(&pts, true);
        assert!((s[2].1 - 10f64.powf(0.8)).abs() < 1e-9, "{:?}", s[2]);
    }

    #[test]
    fn metrics_of_one_kind_share_a_panel() {
        let mut h = History::new();
        h.push("train loss", 1, 1.0);
        h.push("test loss", 1, 1.0);
        h.push("accuracy", 1, 0.5);
        h.push("lr", 1, 0.1);
        h.push("grad norm", 1, 3.0);
        h.push("all nan", 1, f64::NAN);
        let p = panels(&h);
        let titles: Vec<&str> = p.iter().map(|p| p.title.as_str()).collect();
        assert_eq!(titles, ["loss", "accuracy", "learning rate", "grad norm"]);
        assert_eq!(p[0].metrics, [0, 1]);
        assert!(p[1].legend_low && !p[0].legend_low);
    }
}
