use burn::tensor::{Device, Distribution, Int, Tensor, activation::log_softmax};
use xwin_bench::{median, time};
fn main() {
    let device = Device::flex().autodiff();
    let (n, v) = (2048, 32000);
    let logits =
        Tensor::<2>::random([n, v], Distribution::Normal(0.0, 0.5), &device).require_grad();
    let targets: Tensor<2, Int> = Tensor::<1, Int>::from_ints(
        &(0..n)
            .map(|i| ((i * 104_729) % v) as i64)
            .collect::<Vec<_>>()[..],
        &device,
    )
    .reshape([n, 1]);
    let sync = || device.sync().unwrap();
    let a = median(time(3, || {
        let _ = log_softmax(logits.clone(), 1)
            .gather(1, targets.clone())
            .mean()
            .into_scalar::<f32>();
    }));
    let b = median(time(3, || {
        let _ = log_softmax(logits.clone(), 1)
            .gather(1, targets.clone())
            .mean()
            .neg()
            .backward();
        sync();
    }));
    let lse = |x: Tensor<2>| {
        let m = x.clone().detach().max_dim(1);
        (x - m.clone()).exp().sum_dim(1).log() + m
    };
    let c = median(time(3, || {
        let _ = (logits.clone().gather(1, targets.clone()) - lse(logits.clone()))
            .mean()
            .into_scalar::<f32>();
    }));
    let d = median(time(3, || {
        let _ = (logits.clone().gather(1, targets.clone()) - lse(logits.clone()))
            .mean()
            .neg()
            .backward();
        sync();
    }));
    let inner = logits.clone().detach().inner();
    let e = median(time(3, || {
        let _ = inner.clone().exp().sum().into_scalar::<f32>();
    }));
    let f = median(time(3, || {
        let _ = inner.clone().max_dim(1).sum().into_scalar::<f32>();
    }));
    let g = median(time(3, || {
        let _ = (inner.clone() - inner.clone().max_dim(1))
            .sum()
            .into_scalar::<f32>();
    }));
    println!(
        "log_softmax fwd {a:.3} fwd+bwd {b:.3} | lse fwd {c:.3} fwd+bwd {d:.3} | exp+sum {e:.3} max_dim {f:.3} sub-bcast {g:.3}"
    );
}
