//! SPEC §7.7 through the prelude: the names a user writes to watch training.

use flux::prelude::*;

#[test]
fn spec_7_7_names_work_through_the_prelude() {
    set_progress(false);
    flux::seed(3);
    let model = Dense::new(4, 1, identity);
    let ps = params(&model);
    let data = vec![(Tensor::rand(&[4, 8]), Tensor::zeros(&[1, 8])); 25];
    let s: TrainSummary = train(|x: &Var, y: &Var| mse(&model.forward(x), y), &ps, &data, &mut Adam::new(0.05));
    assert_eq!(s.losses.len(), 25);
    assert!(s.losses[24] < s.losses[0]);

    let mut h = History::new();
    for (i, l) in s.losses.iter().enumerate() {
        h.push("loss", i + 1, *l);
    }
    h.push("accuracy", 25, 0.5);
    assert_eq!(h.series("loss").len(), 25);
    assert_eq!(h.series("accuracy"), vec![(25, 0.5)]);

    let dir = std::env::temp_dir().join(format!("flux_watch_names_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    h.save_csv(dir.join("h.csv")).unwrap();
    assert_eq!(History::load_csv(dir.join("h.csv")).unwrap(), h);
    plot_history(&h, dir.join("h.svg")).unwrap();
    plot_history(&h, dir.join("h.png")).unwrap();
    plot_losses(&s.losses, dir.join("l.svg")).unwrap();
    assert!(plot_losses(&s.losses, dir.join("l.jpg")).is_err());
    std::fs::remove_dir_all(dir).unwrap();
}
