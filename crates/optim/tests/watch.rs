//! Training you can watch: every step's loss, `History` and its CSV, the ready-made callbacks
//! (early stopping, checkpoints, every-n, log lines), and the plots.

use std::ops::ControlFlow;
use std::path::PathBuf;

use flux_autograd::{param, params, Var};
use flux_optim::*;

/// A fresh, empty directory under the system's temporary one.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flux_optim_watch_{name}_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn constant_data(n: usize) -> Vec<(Var, Var)> {
    vec![(Var::scalar(1.0), Var::scalar(3.0)); n]
}

#[test]
fn summary_keeps_every_loss() {
    let w = param(0.0);
    let mut seen = Vec::new();
    let s = train_with(|x: &Var, y: &Var| (&w * x - y).powi(2), &params![&w], constant_data(20), &mut Descent::new(0.1), |e: &TrainEvent| seen.push(e.loss));
    assert_eq!(s.steps, 20);
    assert_eq!(s.losses, seen);
    assert_eq!(s.losses[0], 9.0);
    assert_eq!(*s.losses.last().unwrap(), s.last_loss);
    assert!((s.losses.iter().sum::<f64>() / 20.0 - s.mean_loss).abs() < 1e-12);
    // stopped early: only the steps taken
    let w = param(0.0);
    let s = train_with(
        |x: &Var, y: &Var| (&w * x - y).powi(2),
        &params![&w],
        constant_data(20),
        &mut Descent::new(0.1),
        |e: &TrainEvent| {
            if e.step == 7 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
    );
    assert_eq!((s.steps, s.losses.len()), (7, 7));
}

#[test]
fn events_carry_the_learning_rate() {
    let w = param(0.0);
    let mut lrs = Vec::new();
    let mut opt = Adam::new(0.01);
    train_with(|x: &Var, y: &Var| (&w * x - y).powi(2), &params![&w], constant_data(3), &mut opt, |e: &TrainEvent| lrs.push(e.lr));
    assert_eq!(lrs, [Some(0.01); 3]);
    let mut lrs = Vec::new();
    train_with(|x: &Var, y: &Var| (&w * x - y).powi(2), &params![&w], constant_data(2), &mut ClipNorm::new(1.0), |e: &TrainEvent| lrs.push(e.lr));
    assert_eq!(lrs, [None, None]);
}

#[test]
fn history_csv_round_trips_exactly() {
    let mut h = History::new();
    h.push("train loss", 1, 2.302585092994047);
    h.push("train loss", 2, 0.1 + 0.2);
    h.push("train loss", 3, f64::NAN);
    h.push("accuracy, held out", 2, 0.5);
    h.push("say \"hi\"", 7, f64::INFINITY);
    h.push("tiny", 8, -1e-300);
    let dir = scratch("csv");
    let path = dir.join("h.csv");
    h.save_csv(&path).unwrap();
    let back = History::load_csv(&path).unwrap();
    assert_eq!(back.names().collect::<Vec<_>>(), h.names().collect::<Vec<_>>());
    for name in h.names() {
        let (a, b) = (h.series(name), back.series(name));
        assert_eq!(a.len(), b.len(), "{name}");
        for ((sa, va), (sb, vb)) in a.iter().zip(&b) {
            assert_eq!(sa, sb);
            assert!(va.to_bits() == vb.to_bits() || (va.is_nan() && vb.is_nan()), "{name}: {va} read back as {vb}");
        }
    }
    assert_eq!(back.x_label(), "step");
    // the x label travels in the header
    let mut e = History::new();
    e.set_x_label("epoch");
    e.push("acc", 3, 0.75);
    let p2 = dir.join("e.csv");
    e.save_csv(&p2).unwrap();
    assert_eq!(History::load_csv(&p2).unwrap(), e);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn history_csv_errors_name_the_line() {
    let err = History::from_csv("metric,step,value\nloss,1,0.5\nloss,two,0.4\n").unwrap_err().to_string();
    assert!(err.contains("line 3") && err.contains("two"), "{err}");
    let err = History::from_csv("a,b\n").unwrap_err().to_string();
    assert!(err.contains("line 1") && err.contains("header"), "{err}");
    let err = History::from_csv("metric,step,value\n\"unterminated,1,2\n").unwrap_err().to_string();
    assert!(err.contains("line 2") && err.contains("quote"), "{err}");
    assert!(History::from_csv("").is_err());
    let err = History::load_csv("/nonexistent/dir/h.csv").unwrap_err().to_string();
    assert!(err.contains("/nonexistent/dir/h.csv"), "{err}");
    assert!(History::new().save_csv("/nonexistent/dir/h.csv").is_err());
}

#[test]
fn recorder_continues_over_epochs() {
    let w = param(0.0);
    let mut h = History::new();
    let mut opt = Adam::new(0.1);
    let mut all = Vec::new();
    for _epoch in 0..3 {
        let s = train_with(|x: &Var, y: &Var| (&w * x - y).powi(2), &params![&w], constant_data(4), &mut opt, h.recorder());
        all.extend(s.losses);
    }
    let loss = h.series("loss");
    assert_eq!(loss.iter().map(|p| p.0).collect::<Vec<_>>(), (1..=12).collect::<Vec<_>>());
    assert_eq!(loss.iter().map(|p| p.1).collect::<Vec<_>>(), all);
    assert_eq!(h.series("lr").len(), 12);
    // `extend` continues a series the same way
    let mut g = History::new();
    g.extend("loss", &all[..4]);
    g.extend("loss", &all[4..]);
    assert_eq!(g.series("loss"), loss);
}

#[test]
fn early_stopping_stops_when_the_metric_stalls() {
    let w = param(0.0);
    // the update jumps w to each target in turn: the loss stays at 4 after the first step
    let data: Vec<(Var, Var)> = (0..1000).map(|i| (Var::scalar(1.0), Var::scalar(if i % 2 == 0 { 2.0 } else { 4.0 }))).collect();
    let s = train_with(|x: &Var, y: &Var| (&w * x - y).powi(2), &params![&w], &data, &mut Descent::new(0.5), early_stopping(|e: &TrainEvent| e.loss, 5));
    assert!(s.stopped_early);
    assert_eq!(s.steps, 6, "one best, then five without improvement");

    // a loss that keeps falling never triggers it
    let w = param(0.0);
    let s = train_with(
        |x: &Var, y: &Var| (&w * x - y).powi(2),
        &params![&w],
        constant_data(50),
        &mut Descent::new(0.1),
        early_stopping(|e: &TrainEvent| e.loss, 2),
    );
    assert!(!s.stopped_early);
    assert_eq!(s.steps, 50);

    // between epochs, on a held-out metric that peaks
    let mut es = EarlyStopping::new(2).maximize().min_delta(0.01);
    let accs = [0.5, 0.7, 0.8, 0.805, 0.79, 0.9];
    let stopped_at = accs.iter().position(|&a| es.observe(a).is_break());
    assert_eq!(stopped_at, Some(4));
    assert_eq!((es.best(), es.best_index()), (Some(0.8), Some(2)));
    // NaN is never an improvement
    let mut es = EarlyStopping::new(1);
    assert!(es.observe(f64::NAN).is_break());
}

#[test]
fn callbacks_combine_as_tuples_and_errors_stop_training() {
    let w = param(0.0);
    let mut seen = 0;
    let s = train_with(
        |x: &Var, y: &Var| (&w * x - y).powi(2),
        &params![&w],
        constant_data(100),
        &mut Descent::new(0.1),
        |e: &TrainEvent| ((), { seen += 1 }, if e.step == 30 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }),
    );
    assert_eq!((s.steps, seen), (30, 30));
    assert!(s.stopped_early);

    let w = param(0.0);
    let r = try_train_with(
        |x: &Var, y: &Var| (&w * x - y).powi(2),
        &params![&w],
        constant_data(10),
        &mut Descent::new(0.1),
        |e: &TrainEvent| {
            if e.step == 4 {
                Err("the disk is full")
            } else {
                Ok(())
            }
        },
    );
    match r {
        Err(OptimError::Callback { step: 4, source }) => assert_eq!(source.to_string(), "the disk is full"),
        other => panic!("expected a callback error at step 4, got {other:?}"),
    }
    assert_ne!(w.item(), 0.0, "the steps before the error were applied");
}

#[test]
#[should_panic(expected = "the callback failed at step 1: nope")]
fn train_with_panics_on_a_callback_error() {
    let w = param(0.0);
    train_with(|x: &Var, y: &Var| (&w * x - y).powi(2), &params![&w], constant_data(3), &mut Descent::new(0.1), |_: &TrainEvent| Err::<(), _>("nope"));
}

#[test]
fn every_runs_on_multiples_only() {
    let w = param(0.0);
    let mut steps = Vec::new();
    train_with(|x: &Var, y: &Var| (&w * x - y).powi(2), &params![&w], constant_data(12), &mut Descent::new(0.1), every(5, |e: &TrainEvent| steps.push(e.step)));
    assert_eq!(steps, [5, 10]);
    let mut n = 0;
    train_with(|x: &Var, y: &Var| (&w * x - y).powi(2), &params![&w], constant_data(3), &mut Descent::new(0.1), every(0, |_: &TrainEvent| n += 1));
    assert_eq!(n, 3);
}

#[test]
fn checkpoints_are_written_every_n_steps_and_load_back() {
    use flux_layers::{identity, load_state, params as model_params, Dense, Layer};
    use flux_tensor::Tensor;
    let model = Dense::new(3, 2, identity);
    let data = vec![(Tensor::ones(&[3, 5]), Tensor::zeros(&[2, 5])); 7];
    let dir = scratch("ckpt");
    let mut ckpt = checkpoint_every(&model, dir.join("m-{step}.json"), 3);
    let mut last = checkpoint_every(&model, dir.join("last.json"), 1);
    let ps = model_params(&model);
    let mut opt = Descent::new(0.01);
    for _epoch in 0..2 {
        let s = train_with(|x: &Var, y: &Var| (model.forward(x) - y).powi(2).mean(), &ps, &data, &mut opt, |e: &TrainEvent| (ckpt(e), last(e)));
        assert!(!s.stopped_early);
    }
    let mut files: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    files.sort();
    assert_eq!(files, ["last.json", "m-12.json", "m-3.json", "m-6.json", "m-9.json"]);
    // the last checkpoint holds the trained weights
    let fresh = Dense::new(3, 2, identity);
    load_state(&fresh, dir.join("last.json")).unwrap();
    assert_eq!(model_params(&fresh).iter().map(|p| p.to_vec()).collect::<Vec<_>>(), ps.iter().map(|p| p.to_vec()).collect::<Vec<_>>());

    // an unwritable checkpoint path stops training with the error
    let mut bad = checkpoint_every(&model, dir.join("no/such/dir/m.json"), 2);
    let r = try_train_with(|x: &Var, y: &Var| (model.forward(x) - y).powi(2).mean(), &ps, &data, &mut opt, &mut bad);
    match r {
        Err(OptimError::Callback { step: 2, source }) => assert!(source.to_string().contains("no/such/dir"), "{source}"),
        other => panic!("expected a callback error at step 2, got {other:?}"),
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[cfg(feature = "plot")]
mod plots {
    use super::*;

    /// Matplotlib's tab10, the order plot_history colours series in.
    const PALETTE: [(u8, u8, u8); 4] = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)];

    fn sample_history() -> History {
        let mut h = History::new();
        for step in 1..=300 {
            let t = step as f64;
            h.push("train loss", step, 2.3 * (-t / 40.0).exp() + 0.002);
        }
        for epoch in 1..=10 {
            h.push("test loss", 30 * epoch, 2.3 * (-(30.0 * epoch as f64) / 50.0).exp() + 0.01);
            h.push("accuracy", 30 * epoch, 1.0 - 0.6 / epoch as f64);
        }
        h
    }

    fn stroke_count(svg: &str, (r, g, b): (u8, u8, u8)) -> usize {
        let stroke = format!("stroke=\"#{r:02X}{g:02X}{b:02X}\"");
        svg.split("<polyline").skip(1).filter(|p| p.split('>').next().unwrap_or("").contains(&stroke)).count()
    }

    /// The contents of the SVG's `<text>` elements.
    fn texts(svg: &str) -> Vec<String> {
        svg.split("<text").skip(1).filter_map(|t| Some(t.split_once('>')?.1.split_once("</text>")?.0.trim().to_string())).collect()
    }

    #[test]
    fn svg_has_one_line_per_metric_a_legend_and_labelled_axes() {
        let dir = scratch("svg");
        let path = dir.join("curves.svg");
        let h = sample_history();
        plot_history(&h, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        // each series: its line plus its legend sample, in its own colour; the long one (300
        // steps) also its raw values, faint, under a moving average
        assert_eq!(stroke_count(&svg, PALETTE[0]), 3, "train loss");
        assert_eq!(stroke_count(&svg, PALETTE[1]), 2, "test loss");
        assert_eq!(stroke_count(&svg, PALETTE[2]), 2, "accuracy");
        assert_eq!(stroke_count(&svg, PALETTE[3]), 0);
        // nothing else is drawn in colour (the axes and the mesh are grey or black)
        let coloured = svg.split("<polyline").skip(1).filter(|p| !p.split('>').next().unwrap_or("").contains("stroke=\"#000000\"")).count();
        assert_eq!(coloured, 7);
        let texts = texts(&svg);
        for label in ["train loss", "test loss", "accuracy", "step", "loss"] {
            assert!(texts.iter().any(|t| t == label), "{label} missing from {texts:?}");
        }
        // the loss panel spans three decades: a log axis with ticks at powers of ten
        for tick in ["0.01", "0.1", "1"] {
            assert!(texts.iter().any(|t| t == tick), "{tick} missing from {texts:?}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn png_is_a_valid_image_with_one_colour_per_metric() {
        let dir = scratch("png");
        let path = dir.join("curves.PNG");
        let h = sample_history();
        plot_history(&h, &path).unwrap();
        let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert!(info.width >= 600 && info.height >= 300, "{}x{}", info.width, info.height);
        let pixels: Vec<(u8, u8, u8)> = buf[..info.buffer_size()].chunks(3).map(|p| (p[0], p[1], p[2])).collect();
        let count = |c: (u8, u8, u8)| pixels.iter().filter(|&&p| p == c).count();
        for (i, c) in PALETTE.iter().take(3).enumerate() {
            assert!(count(*c) > 100, "series {i} drew {} pixels", count(*c));
        }
        assert_eq!(count(PALETTE[3]), 0, "a fourth series appeared");
        // text was drawn: dark pixels outside the curves (axis labels, legend)
        assert!(pixels.iter().filter(|&&(r, g, b)| r < 60 && g < 60 && b < 60).count() > 1000);

        // plot_losses: one series
        let p2 = dir.join("losses.png");
        plot_losses(&h.series("train loss").iter().map(|p| p.1).collect::<Vec<_>>(), &p2).unwrap();
        let bytes = std::fs::read(&p2).unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_extensions_unwritable_paths_and_empty_histories_are_errors() {
        let h = sample_history();
        for bad in ["curves.pdf", "curves", "curves.svg.txt"] {
            match plot_history(&h, bad) {
                Err(PlotError::Format { path, .. }) => assert_eq!(path, bad),
                other => panic!("{bad}: expected a format error, got {other:?}"),
            }
        }
        assert!(!std::path::Path::new("curves.pdf").exists());
        let dir = scratch("bad");
        for ext in ["svg", "png"] {
            let missing = dir.join(format!("no/such/dir/curves.{ext}"));
            let e = plot_history(&h, &missing).unwrap_err();
            assert!(matches!(e, PlotError::Io { .. }), "{e}");
            assert!(e.to_string().contains("no/such/dir"), "{e}");
            // a directory where the file should be
            let taken = dir.join(format!("taken.{ext}"));
            std::fs::create_dir_all(&taken).unwrap();
            assert!(matches!(plot_history(&h, &taken), Err(PlotError::Io { .. })));
        }
        let e = plot_history(&History::new(), dir.join("empty.svg")).unwrap_err();
        assert!(matches!(e, PlotError::Empty { .. }), "{e}");
        let mut nan = History::new();
        nan.push("loss", 1, f64::NAN);
        assert!(matches!(plot_losses(&[f64::NAN, f64::INFINITY], dir.join("nan.png")), Err(PlotError::Empty { .. })));
        assert!(matches!(plot_history(&nan, dir.join("nan.svg")), Err(PlotError::Empty { .. })));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_long_run_gives_a_small_svg() {
        let dir = scratch("long");
        let losses: Vec<f64> = (0..200_000).map(|i| 3.0 / (1.0 + i as f64 / 1000.0) * (1.0 + 0.3 * ((i * 7919 % 1000) as f64 / 1000.0))).collect();
        plot_losses(&losses, dir.join("long.svg")).unwrap();
        let size = std::fs::metadata(dir.join("long.svg")).unwrap().len();
        assert!(size < 400_000, "{size} bytes for 200k steps");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_single_point_and_non_finite_values_still_plot() {
        let dir = scratch("one");
        let mut h = History::new();
        h.push("loss", 1, 0.5);
        h.push("loss", 2, f64::NAN);
        plot_history(&h, dir.join("one.svg")).unwrap();
        plot_history(&h, dir.join("one.png")).unwrap();
        plot_losses(&[0.0, 0.0, 0.0], dir.join("zeros.svg")).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// The progress bar, seen from outside: this test binary runs itself as a child whose stderr is
/// a pipe (as in CI) and trains for a little over the bar's two-second delay.
#[test]
fn progress_bar_stays_off_when_stderr_is_not_a_terminal_unless_forced() {
    if let Ok(mode) = std::env::var("FLUX_OPTIM_PROGRESS_CHILD") {
        if mode == "forced" {
            set_progress(true);
        }
        let w = param(0.0);
        let data = constant_data(60);
        let s = train(
            |x: &Var, y: &Var| {
                std::thread::sleep(std::time::Duration::from_millis(40));
                (&w * x - y).powi(2)
            },
            &params![&w],
            &data,
            &mut Descent::new(0.01),
        );
        assert_eq!(s.steps, 60);
        return;
    }
    let run = |mode: &str| {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "progress_bar_stays_off_when_stderr_is_not_a_terminal_unless_forced", "--nocapture", "--test-threads=1"])
            .env("FLUX_OPTIM_PROGRESS_CHILD", mode)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (quiet, forced) = (run("default"), run("forced"));
    let (quiet, forced) = (quiet.wait_with_output().unwrap(), forced.wait_with_output().unwrap());
    assert!(quiet.status.success() && forced.status.success());
    let quiet = String::from_utf8_lossy(&quiet.stderr);
    assert!(!quiet.contains("step") && !quiet.contains('\r'), "the bar drew into a pipe: {quiet:?}");
    let forced = String::from_utf8_lossy(&forced.stderr);
    assert!(forced.contains("train") && forced.contains("step 60/60") && forced.contains("steps/s"), "{forced:?}");
}

/// The pattern of docs/guide.md: a recorder per epoch, a checkpoint kept over epochs, early
/// stopping on a metric observed between epochs.
#[test]
fn the_guide_pattern_runs() {
    use flux_layers::{identity, params as model_params, Dense, Layer};
    use flux_tensor::Tensor;
    let model = Dense::new(2, 1, identity);
    let ps = model_params(&model);
    let data = vec![(Tensor::ones(&[2, 3]), Tensor::zeros(&[1, 3])); 4];
    let loss = |x: &Var, y: &Var| (model.forward(x) - y).powi(2).mean();
    let dir = scratch("guide");
    let mut h = History::new();
    let mut es = EarlyStopping::new(3).maximize();
    let mut ckpt = checkpoint_every(&model, dir.join("ckpt-{step}.json"), 6);
    let mut opt = Adam::new(0.01);
    let mut epochs = 0;
    for epoch in 1..=100 {
        epochs = epoch;
        let mut record = h.recorder();
        train_with(loss, &ps, &data, &mut opt, |e: &TrainEvent| (record(e), ckpt(e)));
        // a metric that peaks at epoch 4
        let metric = -((epoch as f64) - 4.0).abs();
        if es.observe(metric).is_break() {
            break;
        }
    }
    assert_eq!(epochs, 7, "best at 4, then 3 epochs without improvement");
    assert_eq!(h.last_step("loss"), Some(28));
    assert_eq!(h.series("lr").len(), 28);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 4, "checkpoints at steps 6, 12, 18, 24");
    std::fs::remove_dir_all(dir).unwrap();
}
