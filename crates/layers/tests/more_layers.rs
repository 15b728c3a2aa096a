//! The layers of SPEC 7.3 that are not convolutions: Embedding, SkipConnection, Parallel,
//! Maxout, GroupNorm, InstanceNorm, MultiHeadAttention. Reference values were computed in f64
//! with numpy following PyTorch's definitions (`nn.GroupNorm`, `nn.InstanceNorm2d`,
//! `nn.MultiheadAttention(bias=False)` with `average_attn_weights=False`), from inputs made by
//! the formula of [`wave`] (the script is in the commit message that added this file).

use flux_autograd::{gradient, gradient_params, Var};
use flux_layers::{
    causal_mask, deepcopy, identity, named_params, onehotbatch, params, relu, tanh, to_f64, Dense, Embedding, GroupNorm, InstanceNorm, Layer, Maxout,
    MultiHeadAttention, Parallel, SkipConnection,
};
use flux_tensor::{DType, Tensor};

/// `v[i] = sin(a i + b) (1 + i mod 3)`, as the reference script.
fn wave(n: usize, a: f64, b: f64) -> Vec<f64> {
    (0..n).map(|i| (a * i as f64 + b).sin() * (1.0 + (i % 3) as f64)).collect()
}

fn close(got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * (1.0 + w.abs()), "element {i}: {g} vs {w}");
    }
}

const GROUPNORM: &[f64] = &[
    0.07817793052893736,
    1.46676357827692,
    2.7598999211084907,
    0.45843963219247014,
    -0.13435909556187453,
    -2.0547036877910636,
    -1.2432440035525945,
    -2.9572688562934264,
    -1.5561364285160146,
    1.5557917109972068,
    4.572528642926031,
    7.3240767951714245,
    4.2023931214769465,
    3.018361598947994,
    -0.6968512200669732,
    1.0292963396527468,
    -0.45691039225383756,
    0.848335231927628,
    0.4601465077681288,
    1.1772995438543727,
    1.817698609634574,
    0.6265963372673629,
    0.2995053347896089,
    -0.6957730074033833,
    -0.5500094031999608,
    -1.3847459757046239,
    -0.5982652266223609,
    0.92667254169984,
    2.4752132019373057,
    3.8284677994477065,
    4.07169333310083,
    2.490506090209292,
    -2.1801868651193277,
    0.15124772984385215,
    -1.611857703335895,
    0.16816725397625132,
    2.6148158247871867,
    5.039137369436798,
    7.1115246630233635,
    3.0766642345840376,
    1.9004463508475773,
    -1.475830477971054,
    -0.41803611940145535,
    -0.7483987475246867,
    -0.3913471033716379,
    0.2163165830101813,
    0.8640861585608846,
    1.4054842369945915,
];
const INSTANCENORM: &[f64] = &[
    -0.2372669258798105,
    0.7017597632413971,
    1.5762391592806544,
    0.019883857215068544,
    -0.3809944231713168,
    -1.679621430685993,
    -0.6925484202355952,
    -1.1625036593634506,
    -0.7783379781640253,
    0.07489756892565784,
    0.9020333738490244,
    1.656459114988389,
    1.629300513293124,
    0.959060950164388,
    -1.1439933768254436,
    -0.16688055144119449,
    -1.0081711182535307,
    -0.269316416937343,
    -0.19881805787012435,
    0.726450313493713,
    1.5526909773429158,
    0.015934937522651807,
    -0.40607674467283467,
    -1.6901814258163217,
    -0.720343368466563,
    -1.1714632984313251,
    -0.7464224506581888,
    0.07770559393193714,
    0.9145894411291433,
    1.6459340824949964,
    1.6292936866485386,
    0.9049786495443782,
    -1.2345865135632832,
    -0.1665958990750573,
    -0.9742445712947922,
    -0.1588453522597842,
    -0.16153211264998432,
    0.7499339623629853,
    1.5290842019674855,
    0.012107872630663933,
    -0.43011180743421007,
    -1.6994821168769398,
    -0.7484482062556469,
    -1.1801760878282084,
    -0.713570192306953,
    0.08054310531561117,
    0.9270679927957529,
    1.6345833882794443,
];
const INSTANCENORM_AFFINE: &[f64] = &[
    -0.18091822589252576,
    1.3213680504868148,
    2.7203894104395547,
    0.23048019001956202,
    -0.4108582789504941,
    -2.4884451613325442,
    -0.6213512176807261,
    -2.2525186033829243,
    -0.9191181479661727,
    2.042376651660521,
    4.9132818702966095,
    7.531817767809918,
    7.260833825125129,
    5.396133767778224,
    -0.4548570418889777,
    2.2636072830503737,
    -0.0769805522264515,
    1.978616401023973,
    0.09148824471718164,
    0.7791453894852828,
    1.393205389133131,
    0.25109213501824085,
    -0.06254589414034831,
    -1.0168892889295964,
    -0.9537600615376854,
    -1.6754768004106886,
    -0.9954822487033276,
    0.32298533662776324,
    1.6618600812258117,
    2.8318896775684936,
    7.4375292972550895,
    4.923504626117096,
    -2.5027109430987178,
    1.2041771039888847,
    -1.5990902362696704,
    1.2310784727445423,
    2.278487386627265,
    4.814313285075444,
    6.982018052741188,
    2.7615780728873798,
    1.5312611710805637,
    -2.0003042855495705,
    -0.31699551006647186,
    -0.6378545943571938,
    -0.2910742571311873,
    0.29910876410469495,
    0.9282439481396731,
    1.4540676245943769,
];
const MHA_Y: &[f64] = &[
    -0.9764704654324996,
    0.01669561430167287,
    2.1033086652485378,
    1.5219811417711546,
    -1.5105957544361501,
    -1.0332263098805101,
    3.62425789772366,
    0.9823740049554183,
    -1.4898056657764727,
    -0.7915003409582178,
    3.5272614889159795,
    1.278234274147671,
    -2.5886490404433444,
    1.5657906083875268,
    2.885799673540416,
    6.789007067850814,
    0.10827458372585119,
    -0.7996723822963583,
    2.356842364604928,
    -1.806395350484975,
    0.08557873869361772,
    -0.7613391910210101,
    2.399101491743962,
    -1.7201436154112224,
];
const MHA_A: &[f64] = &[
    0.04945860661426939,
    0.45007251722589636,
    0.5004688761598343,
    9.555276999123374e-06,
    0.9999832019607685,
    7.242762232455205e-06,
    0.08750266173976215,
    0.895422630595884,
    0.017074707664353758,
    5.330627543517597e-05,
    5.8656288342913205e-06,
    0.9999408280957306,
    0.027748958908095925,
    0.9722506745871919,
    3.665047119438763e-07,
    0.036762760073715504,
    0.9632369463884355,
    2.935378491759253e-07,
    0.6818002130728279,
    0.004138246698112448,
    0.3140615402290596,
    5.835971679378592e-05,
    0.999381833641974,
    0.000559806641232262,
    0.0005992184602764731,
    0.9983489707389219,
    0.0010518108008018112,
    0.09269633756700593,
    0.002145480891432016,
    0.9051581815415621,
    0.26061375015950117,
    0.6063215319924503,
    0.13306471784804855,
    2.6818594487535425e-05,
    0.999973104869912,
    7.65356004229712e-08,
];
const MHA_CAUSAL_Y: &[f64] = &[
    0.7413743739868112,
    -0.6818064797280998,
    -0.19123231658601628,
    -2.3053440151990787,
    -1.510592210454099,
    -1.0332326886649699,
    3.6242746605409435,
    0.9823544888919586,
    -1.4898056657764727,
    -0.7915003409582178,
    3.5272614889159795,
    1.278234274147671,
    0.9883746070657318,
    0.3647047513027394,
    -1.8092282048874515,
    -1.165804282169816,
    0.4992481877136364,
    -1.0499709805254294,
    1.853235561312519,
    -2.834210880608586,
    0.08557873869361772,
    -0.7613391910210101,
    2.399101491743962,
    -1.7201436154112224,
];
const MHA_CAUSAL_A: &[f64] = &[
    1.0,
    0.0,
    0.0,
    9.555346206223994e-06,
    0.9999904446537938,
    0.0,
    0.08750266173976215,
    0.895422630595884,
    0.017074707664353758,
    1.0,
    0.0,
    0.0,
    0.027748969078223846,
    0.9722510309217761,
    0.0,
    0.036762760073715504,
    0.9632369463884355,
    2.935378491759253e-07,
    1.0,
    0.0,
    0.0,
    5.839240525004242e-05,
    0.9999416075947499,
    0.0,
    0.0005992184602764731,
    0.9983489707389219,
    0.0010518108008018112,
    1.0,
    0.0,
    0.0,
    0.3006150003638014,
    0.6993849996361987,
    0.0,
    2.6818594487535425e-05,
    0.999973104869912,
    7.65356004229712e-08,
];
const MHA_BIAS_CAUSAL_Y: &[f64] = &[
    0.18540762130462546,
    -0.42412886894929613,
    1.057042523167602,
    -1.3992925400937961,
    -2.100158854642072,
    -0.7361080736652231,
    4.92801760457242,
    1.9962300509263877,
    -2.0886830609723406,
    -0.5822766788495534,
    4.880097202931698,
    2.184904251987248,
    0.43240785438354606,
    0.6223823620815427,
    -0.5609533651338333,
    -0.25975280706453385,
    -0.3424260080428089,
    -0.5922820174149491,
    3.4818627235123207,
    -1.1586042718312097,
    -0.4699566963056445,
    -0.5035080402171804,
    3.649179952623501,
    -0.8151995142464701,
];

#[test]
fn embedding_lookup_gradient_scatters_and_adds() {
    let emb = Embedding::from_weights(Tensor::from_vec(wave(12, 0.3, 0.1), &[3, 4])).unwrap();
    let gs = gradient_params(|| emb.lookup(&[1, 3, 1]).sum(), &params(&emb));
    assert_eq!(gs[emb.weight()].to_vec(), vec![0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    // the one-hot forward gives the same values and the same gradient
    let x = Var::from(onehotbatch(&[1, 3, 1], 4).to_f64());
    assert_eq!(emb.forward(&x).to_vec(), emb.lookup(&[1, 3, 1]).to_vec());
    let gs2 = gradient_params(|| emb.forward(&x).sum(), &params(&emb));
    assert_eq!(gs2[emb.weight()].to_vec(), gs[emb.weight()].to_vec());
    assert_eq!(emb.try_lookup_array(&[0, 1, 2, 3], &[2, 2]).unwrap().shape(), &[3, 2, 2]);
}

#[test]
fn embedding_errors_name_the_layer() {
    let emb = Embedding::new(5, 2);
    let e = emb.try_lookup(&[4, 5]).unwrap_err().to_string();
    assert!(e.contains("Embedding(5 => 2)") && e.contains("index 5"), "{e}");
    let e = emb.try_forward(&Var::from(Tensor::zeros(&[4, 3]))).unwrap_err().to_string();
    assert!(e.contains("Embedding(5 => 2)") && e.contains("[4, 3]"), "{e}");
    assert_eq!(emb.forward(&Var::from(onehotbatch(&[0], 5))).dtype(), DType::F32);
    assert_eq!(named_params(&emb)[0].0, "weight");
}

#[test]
fn skip_connection_is_combine_of_layer_and_input() {
    let d = Dense::from_parts(Tensor::from_vec(wave(4, 0.5, 0.2), &[2, 2]), Tensor::zeros(&[2]), identity).unwrap();
    let m = SkipConnection::new(d, |a, b| a * b);
    let x = Var::from(Tensor::from_vec(vec![1.0, 2.0], &[2]));
    let want: Vec<f64> = m.layer().forward(&x).to_vec().iter().zip([1.0, 2.0]).map(|(a, b)| a * b).collect();
    assert_eq!(m.forward(&x).to_vec(), want);
    assert_eq!(named_params(&m).iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), vec!["layers.weight", "layers.bias"]);
    let c = deepcopy(&m);
    assert_eq!(c.forward(&x).to_vec(), want);
    assert_ne!(params(&c).iter().next().unwrap().id(), params(&m).iter().next().unwrap().id());
    let e = SkipConnection::residual(Dense::new(3, 3, relu)).try_forward(&Var::from(Tensor::zeros(&[2]))).unwrap_err().to_string();
    assert!(e.contains("Dense(3 => 3, relu)") && e.contains("[2]"), "{e}");
}

#[test]
fn parallel_combines_branches_in_order() {
    let m = Parallel::new(|ys: &[Var]| &ys[0] - &ys[1], vec![Box::new(|x: &Var| x * 3.0), Box::new(|x: &Var| x + 1.0)]);
    assert_eq!(m.forward(&Var::scalar(2.0)).item(), 3.0);
    assert_eq!(m.try_forward_each(&[Var::scalar(2.0), Var::scalar(5.0)]).unwrap().item(), 0.0);
    let m = Parallel::vcat(vec![Box::new(Dense::new(3, 2, tanh)), Box::new(Dense::new(3, 1, relu))]);
    let names: Vec<String> = named_params(&m).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, vec!["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"]);
    let x = Var::from(Tensor::randn(&[3, 4]));
    let y = m.forward(&x);
    assert_eq!(y.shape(), &[3, 4]);
    let c = deepcopy(&m);
    assert_eq!(c.forward(&x).to_vec(), y.to_vec());
    assert_eq!(c.to_string(), m.to_string());
}

#[test]
fn maxout_takes_the_elementwise_maximum() {
    let m = Maxout::from_layers(vec![Box::new(|x: &Var| x * 2.0), Box::new(|x: &Var| -x), Box::new(|x: &Var| x * 0.0 + 0.5)]);
    let x = Var::from(Tensor::from_vec(vec![-2.0, 0.1, 1.0], &[3]));
    assert_eq!(m.forward(&x).to_vec(), vec![2.0, 0.5, 2.0]);
    // the gradient goes to the branch that won
    assert_eq!(gradient(|x: &Var| m.forward(x).sum(), &x).to_vec(), vec![-1.0, 0.0, 2.0]);
    let m = Maxout::new(|| Dense::new(2, 3, identity), 3);
    assert_eq!(params(&m).len(), 6);
    assert!(m.try_forward(&Var::from(Tensor::zeros(&[3]))).is_err());
}

fn wh_input() -> Var {
    Var::from(Tensor::from_vec(wave(48, 0.7, 0.3), &[3, 2, 4, 2]))
}

#[test]
fn groupnorm_matches_pytorch() {
    let gn = GroupNorm::new(4, 2);
    to_f64(&gn);
    gn.scale().set_data(Tensor::from_vec(wave(4, 1.3, 0.1), &[4]) + 1.5);
    gn.bias().set_data(Tensor::from_vec(wave(4, 0.9, 0.2), &[4]));
    close(&gn.forward(&wh_input()).to_vec(), GROUPNORM, 1e-10);
    // groups = channels is instance norm with an affine map; one group normalises whole samples
    assert!(GroupNorm::try_new(4, 3, 1e-5).is_err());
    let e = gn.try_forward(&Var::from(Tensor::zeros(&[4]))).unwrap_err().to_string();
    assert!(e.contains("GroupNorm(4, 2)") && e.contains("[4]"), "{e}");
    let gs = gradient_params(|| gn.forward(&wh_input()).sum(), &params(&gn));
    assert_eq!(gs[gn.bias()].to_vec(), vec![12.0; 4]);
}

#[test]
fn instancenorm_matches_pytorch() {
    let m = InstanceNorm::new(4);
    close(&m.forward(&wh_input()).to_vec(), INSTANCENORM, 1e-10);
    let m = InstanceNorm::affine(4);
    to_f64(&m);
    m.scale().unwrap().set_data(Tensor::from_vec(wave(4, 1.3, 0.1), &[4]) + 1.5);
    m.bias().unwrap().set_data(Tensor::from_vec(wave(4, 0.9, 0.2), &[4]));
    close(&m.forward(&wh_input()).to_vec(), INSTANCENORM_AFFINE, 1e-10);
    assert_eq!(named_params(&m).iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), vec!["scale", "bias"]);
    // GroupNorm with one channel per group is the affine InstanceNorm
    let gn = GroupNorm::new(4, 4);
    to_f64(&gn);
    gn.scale().set_data(m.scale().unwrap().data());
    gn.bias().set_data(m.bias().unwrap().data());
    close(&gn.forward(&wh_input()).to_vec(), INSTANCENORM_AFFINE, 1e-12);
}

fn mha_ref() -> MultiHeadAttention {
    let w = |a, b| Tensor::from_vec(wave(16, a, b), &[4, 4]) * 0.5;
    MultiHeadAttention::from_weights(w(0.37, 0.1), w(0.53, 0.4), w(0.29, 0.7), w(0.61, 0.9), 2).unwrap()
}

#[test]
fn attention_matches_pytorch() {
    let m = mha_ref();
    let x = Var::from(Tensor::from_vec(wave(24, 0.45, 0.05), &[4, 3, 2]));
    let (y, a) = m.forward_qkv(&x, &x, &x, None);
    close(&y.to_vec(), MHA_Y, 1e-10);
    close(&a.to_vec(), MHA_A, 1e-10);
    assert_eq!(m.forward(&x).to_vec(), y.to_vec());
    let (y, a) = m.forward_qkv(&x, &x, &x, Some(&causal_mask(3)));
    close(&y.to_vec(), MHA_CAUSAL_Y, 1e-10);
    close(&a.to_vec(), MHA_CAUSAL_A, 1e-10);
    // the mask also works at full size, and one sequence without a batch dim
    let full = causal_mask(3).reshape(&[3, 3, 1, 1]).broadcast_to(&[3, 3, 2, 2]);
    assert_eq!(m.forward_qkv(&x, &x, &x, Some(&full)).0.to_vec(), y.to_vec());
    let x1 = Var::from(Tensor::from_vec(wave(24, 0.45, 0.05)[..12].to_vec(), &[4, 3]));
    close(&m.forward_qkv(&x1, &x1, &x1, Some(&causal_mask(3))).0.to_vec(), &MHA_CAUSAL_Y[..12], 1e-10);
}

#[test]
fn attention_with_biases_matches_pytorch() {
    let w = |a, b| Tensor::from_vec(wave(16, a, b), &[4, 4]) * 0.5;
    let bias = |a| Tensor::from_vec(wave(4, a, 0.2), &[4]) * 0.3;
    let m =
        MultiHeadAttention::from_weights_and_biases([w(0.37, 0.1), w(0.53, 0.4), w(0.29, 0.7), w(0.61, 0.9)], [bias(0.3), bias(0.5), bias(0.7), bias(0.9)], 2)
            .unwrap();
    assert_eq!(m.to_string(), "MultiHeadAttention(4; nheads=2, bias=true)");
    let x = Var::from(Tensor::from_vec(wave(24, 0.45, 0.05), &[4, 3, 2]));
    close(&m.forward_qkv(&x, &x, &x, Some(&causal_mask(3))).0.to_vec(), MHA_BIAS_CAUSAL_Y, 1e-10);
    let names: Vec<String> = named_params(&m).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, vec!["q_proj", "k_proj", "v_proj", "out_proj", "q_bias", "k_bias", "v_bias", "out_bias"]);
    let e = MultiHeadAttention::from_weights_and_biases(
        [w(0.1, 0.1), w(0.1, 0.1), w(0.1, 0.1), w(0.1, 0.1)],
        [bias(0.3), bias(0.3), Tensor::zeros(&[3]), bias(0.3)],
        2,
    );
    assert!(e.unwrap_err().to_string().contains("[3]"));
}

#[test]
fn attention_errors_and_dtypes() {
    let m = MultiHeadAttention::new(4, 2);
    let x = Var::from(Tensor::randn(&[4, 3, 2]));
    let kv = Var::from(Tensor::randn(&[4, 5, 2]));
    let e = m.try_forward_qkv(&x, &kv, &x, None).unwrap_err().to_string();
    assert!(e.contains("MultiHeadAttention(4; nheads=2)"), "{e}");
    assert!(m.try_forward_qkv(&x, &x, &x, Some(&causal_mask(4))).is_err());
    assert!(m.try_forward(&Var::from(Tensor::randn(&[4, 3, 2, 1]))).is_err());
    assert_eq!(m.forward(&x).dtype(), DType::F32);
    let names: Vec<String> = named_params(&m).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, vec!["q_proj", "k_proj", "v_proj", "out_proj"]);
    // every weight gets a gradient through the masked attention
    let gs = gradient_params(|| m.forward_qkv(&x, &x, &x, Some(&causal_mask(3))).0.powi(2).sum(), &params(&m));
    for p in params(&m).iter() {
        assert!(gs[p].to_vec().iter().any(|g| *g != 0.0));
    }
}
