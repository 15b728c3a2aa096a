//! Unit tests of the engine: the seed's derivative cells, nesting, long chains, threads.

use flux_tensor::Tensor;

use crate::*;

#[test]
fn seed_derivatives_nest() {
    let f = |x: &Var| 3.0 * x.powi(2) + 2.0 * x + 1.0;
    let df = |x: &Var| gradient(f, x);
    let d2f = |x: &Var| gradient(df, x);
    let d3f = |x: &Var| gradient(d2f, x);
    assert_eq!(df(&Var::scalar(2.0)).item(), 14.0);
    assert_eq!(d2f(&Var::scalar(2.0)).item(), 6.0);
    assert_eq!(d3f(&Var::scalar(2.0)).item(), 0.0);
    // top-level results are constants; nested spelling keeps them tracked
    assert!(!df(&Var::scalar(2.0)).is_tracked());
    assert!(gradient_nested(f, &Var::scalar(2.0)).is_tracked());
}

#[test]
fn third_derivative_of_sin() {
    let d = |f: &dyn Fn(&Var) -> Var, x: &Var| gradient(f, x);
    let f1 = |x: &Var| d(&|y: &Var| y.sin(), x);
    let f2 = |x: &Var| d(&f1, x);
    let f3 = |x: &Var| d(&f2, x);
    let x = 0.7;
    assert!((f1(&Var::scalar(x)).item() - x.cos()).abs() < 1e-14);
    assert!((f2(&Var::scalar(x)).item() + x.sin()).abs() < 1e-14);
    assert!((f3(&Var::scalar(x)).item() + x.cos()).abs() < 1e-14);
}

#[test]
fn many_arguments_and_params() {
    let g = gradients(|v: &[Var]| &v[0] * &v[2] + &v[1], &[2.0.into(), 3.0.into(), 4.0.into()]);
    assert_eq!(g.iter().map(|g| g.item()).collect::<Vec<_>>(), vec![4.0, 1.0, 2.0]);
    let w = param(2.0);
    let b = param(3.0);
    let f = |x: f64| &w * x + &b;
    let grads = gradient_params(|| f(4.0), &params![&w, &b]);
    assert_eq!(grads[&w].item(), 4.0);
    assert_eq!(grads[&b].item(), 1.0);
}

#[test]
fn unused_param_gets_zeros_and_unknown_is_an_error() {
    let w = param(Tensor::ones(&[2, 2]));
    let unused = param(Tensor::ones(&[3]));
    let gs = gradient_params(|| w.sum(), &params![&w, &unused]);
    assert_eq!(gs[&unused].to_vec(), vec![0.0; 3]);
    let stranger = param(1.0);
    let e = gs.try_get(&stranger).unwrap_err().to_string();
    assert!(e.contains("not one of the Params"), "{e}");
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| gs[&stranger].item()));
    assert!(r.is_err());
}

#[test]
fn million_op_chain_does_not_overflow() {
    let x = Var::scalar(1.0);
    let g = gradient(
        |x: &Var| {
            let mut y = x.clone();
            for _ in 0..1_000_000 {
                y = &y + 1e-6;
            }
            y
        },
        &x,
    );
    assert_eq!(g.item(), 1.0);
}

#[test]
fn threads_differentiate_shared_params_independently() {
    flux_tensor::seed(3);
    let w = param(Tensor::randn(&[4, 3]));
    let serial: Vec<Vec<f64>> = (0..4)
        .map(|i| {
            let x = Var::from(Tensor::full(&[3], i as f64));
            gradient_params(|| w.matmul(&x).tanh().sum(), &params![&w])[&w].to_vec()
        })
        .collect();
    let parallel: Vec<Vec<f64>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|i| {
                let w = &w;
                s.spawn(move || {
                    let x = Var::from(Tensor::full(&[3], i as f64));
                    let mut last = vec![];
                    for _ in 0..50 {
                        last = gradient_params(|| w.matmul(&x).tanh().sum(), &params![w])[w].to_vec();
                    }
                    last
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(serial, parallel);
}

#[test]
fn hessian_vector_product_through_mlp() {
    // HVP w.r.t. the input of sum(W2·tanh(W1·x + b1)) against the analytic form
    flux_tensor::seed(5);
    let w1 = Var::from(Tensor::randn(&[6, 4]));
    let b1 = Var::from(Tensor::randn(&[6]));
    let w2 = Var::from(Tensor::randn(&[1, 6]));
    let v = Var::from(Tensor::randn(&[4]));
    let x0 = Var::from(Tensor::randn(&[4]));
    let f = |x: &Var| w2.matmul(&(w1.matmul(x) + &b1).tanh()).sum();
    let hvp = gradient(|x: &Var| (gradient(f, x) * &v).sum(), &x0);
    let t = (w1.matmul(&x0) + &b1).tanh().data();
    let w2v = w2.data().reshape(&[6]);
    let inner = &(&w2v * &(&t * &(1.0 - &(&t * &t)))) * -2.0;
    let want = w1.data().transpose().matmul(&(&inner * &w1.data().matmul(&v.data())));
    assert!(hvp.data().allclose(&want, 1e-10, 1e-12), "{:?} vs {:?}", hvp.data(), want);
}

#[test]
fn update_changes_value_in_place_and_checks_shape() {
    let w = param(Tensor::ones(&[2]));
    let alias = w.clone();
    update(&w, &Tensor::full(&[2], 0.5));
    assert_eq!(alias.to_vec(), vec![1.5, 1.5]);
    assert!(try_update(&w, &Tensor::ones(&[3])).unwrap_err().to_string().contains("[3]"));
    assert_eq!(w.to_vec(), vec![1.5, 1.5]);
    let not_leaf = &w * 2.0;
    assert!(try_update(&not_leaf, &Tensor::ones(&[2])).is_err());
}

#[test]
fn mixed_dtypes_promote_and_grads_keep_param_dtype() {
    let w = param(Tensor::ones(&[2]).to_f32());
    let x = Var::from(Tensor::ones(&[2]));
    let y = &w * &x;
    assert_eq!(y.dtype(), flux_tensor::DType::F64);
    let gs = gradient_params(|| (&w * &x).sum(), &params![&w]);
    assert_eq!(gs[&w].dtype(), flux_tensor::DType::F32);
}

#[test]
fn non_scalar_loss_is_a_clear_error() {
    let r = std::panic::catch_unwind(|| gradient(|x: &Var| x * 2.0, &Var::from(Tensor::ones(&[2]))));
    let msg = r.unwrap_err().downcast::<String>().unwrap();
    assert!(msg.contains("one element") && msg.contains("[2]"), "{msg}");
}

#[test]
fn display_marks_tracked_values() {
    let w = param(2.0);
    assert_eq!(format!("{}", &w * 7.0), "14.0 (tracked)");
    assert_eq!(format!("{}", Var::scalar(1.5)), "1.5");
    let v = param(Tensor::zeros(&[2]));
    assert!(format!("{v}").starts_with("Tracked 2-element Vector{Float64}:"));
    assert_eq!(format!("{}", params![&v]), "Params([[0.0, 0.0] (tracked)])");
}

#[test]
fn graph_is_freed_after_use() {
    // the graph holds handles to `w`; once it is freed, `w`'s own handle is the only one left
    let w = param(Tensor::ones(&[3]));
    {
        let y = (&w * 2.0).exp().sum();
        let _ = gradient_params(|| y.clone(), &params![&w]);
        assert!(crate::shared::Shared::count(&w.0) > 1);
    }
    assert_eq!(crate::shared::Shared::count(&w.0), 1);
}

#[test]
fn gradient_inside_no_grad_still_differentiates() {
    let g = no_grad(|| gradient(|x: &Var| x.powi(3), &Var::scalar(2.0)));
    assert_eq!(g.item(), 12.0);
    let w = param(3.0);
    let gs = no_grad(|| gradient_params(|| &w * &w, &params![&w]));
    assert_eq!(gs[&w].item(), 6.0);
}

#[test]
fn values_from_other_threads_are_found_whatever_their_ids() {
    // ids are handed to threads in blocks: a param made on another thread after this thread's
    // graph began has a larger id than values of that graph, and one made far earlier lies far
    // below them; both must be found by the reverse pass and by a checkpoint
    let x = param(0.5);
    for i in 0..1_100_000 {
        // more ids than the reverse pass keeps in its vector: x is found through the map
        drop(Var::scalar(i as f64));
    }
    let start = &x * 1.0;
    let w = std::thread::spawn(|| param(2.0)).join().unwrap();
    assert!(w.id() > start.id() && start.id() - x.id() > 1 << 20);
    let f = || {
        let h = checkpoint(
            {
                let w = w.clone();
                move |h: &Var| (&w * h).sin()
            },
            &start,
        );
        (&h * &w).sum()
    };
    let gs = gradient_params(f, &params![&x, &w]);
    let (xv, wv) = (0.5f64, 2.0f64);
    // f = w sin(w x)
    assert!((gs[&x].item() - wv * wv * (wv * xv).cos()).abs() < 1e-12);
    assert!((gs[&w].item() - ((wv * xv).sin() + wv * xv * (wv * xv).cos())).abs() < 1e-12);
}

#[test]
fn constants_stay_writable_and_gradient_temporaries_are_values() {
    let c = Var::scalar(1.0) * 2.0;
    c.set_data(Tensor::scalar(5.0));
    assert_eq!(c.item(), 5.0);
    let seen = std::sync::Mutex::new(None);
    let g = gradient(
        |x: &Var| {
            let k = Var::scalar(3.0) * 2.0; // untracked, inside a gradient call
            *seen.lock().unwrap() = Some(k.clone());
            x * &k
        },
        &Var::scalar(1.0),
    );
    assert_eq!(g.item(), 6.0);
    let k = seen.into_inner().unwrap().unwrap();
    assert!(!k.is_tracked());
    assert_eq!(k.item(), 6.0);
}

/// A recorded node with its count must stay within 120 bytes: it then lives in the blocks each
/// thread reuses (`shared::BLOCK`), and blocks that go back to glibc fit its fast bins (its slow
/// paths were a tenth of W4's time per op at 176 bytes).
#[test]
#[cfg(target_pointer_width = "64")]
fn a_node_fits_the_fast_allocation_size() {
    assert!(std::mem::size_of::<crate::var::Node>() + 8 <= 120, "Node is {} bytes", std::mem::size_of::<crate::var::Node>());
}
