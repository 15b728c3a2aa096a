//! The data-parallel scenarios of `tests/common` with ranks as threads (`Comm::local_group`):
//! no MPI needed, so plain `cargo test` checks the whole algorithm (sharding, one fused
//! all-reduce per step, the optimiser wrapper) against one process on the union of the batches.

mod common;

use flux_distributed::Comm;

fn on_threads<R: Send>(n: usize, f: impl Fn(Comm) -> R + Sync) -> Vec<R> {
    std::thread::scope(|s| {
        let hs: Vec<_> = Comm::local_group(n).into_iter().map(|c| s.spawn(|| f(c))).collect();
        hs.into_iter().map(|h| h.join().expect("a rank panicked")).collect()
    })
}

#[test]
fn mlp_on_two_ranks_equals_one_process_on_the_union() {
    for o in on_threads(2, |c| common::mlp(&c)) {
        eprintln!("{o:?}");
        o.check("MLP, 2 ranks").unwrap();
    }
}

#[test]
fn mlp_on_three_ranks_equals_one_process_on_the_union() {
    for o in on_threads(3, |c| common::mlp(&c)) {
        eprintln!("{o:?}");
        o.check("MLP, 3 ranks").unwrap();
    }
}

#[test]
fn lstm_on_two_ranks_equals_one_process_on_the_union() {
    for o in on_threads(2, |c| common::lstm(&c)) {
        eprintln!("{o:?}");
        o.check("LSTM, 2 ranks").unwrap();
    }
}

#[test]
fn one_rank_alone_is_plain_training() {
    let o = common::mlp(&Comm::single());
    assert_eq!(o.diff_to_reference, 0.0, "one rank must be bit-identical to plain training: {o:?}");
    o.check("MLP, single").unwrap();
}
