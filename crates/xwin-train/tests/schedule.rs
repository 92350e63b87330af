//! Learning-rate schedules against hand-computed values of transformers' formulas.

use xwin_train::{Schedule, Warmup};

#[test]
fn cosine_with_warmup_steps() {
    // get_cosine_schedule_with_warmup(peak 2e-5, warmup 10, total 110).
    let lr = |s| Schedule::Cosine.lr(2e-5, s, 110, Warmup::Steps(10));
    assert_eq!(lr(0), 0.0);
    assert!((lr(5) - 1e-5).abs() < 1e-18);
    assert!((lr(10) - 2e-5).abs() < 1e-18);
    // Half-way through the decay: 0.5 * (1 + cos(pi/2)) = 0.5.
    assert!((lr(60) - 1e-5).abs() < 1e-15);
    // A quarter: 0.5 * (1 + cos(pi/4)) = 0.853553.
    assert!((lr(35) - 2e-5 * 0.853_553_390_593_273_8).abs() < 1e-15);
    assert!(lr(110).abs() < 1e-20);
}

#[test]
fn linear_with_fractional_warmup() {
    // DPO: linear to 0; RM: 3 % warm-up of 1000 steps = 30 steps.
    assert_eq!(Warmup::Fraction(0.03).steps(1000), 30);
    let lr = |s| Schedule::Linear.lr(5e-7, s, 1000, Warmup::Fraction(0.03));
    assert!((lr(15) - 2.5e-7).abs() < 1e-20);
    assert!((lr(30) - 5e-7).abs() < 1e-20);
    assert!((lr(515) - 5e-7 * 485.0 / 970.0).abs() < 1e-20);
    assert_eq!(lr(1000), 0.0);
    assert_eq!(
        Schedule::Constant.lr(1e-5, 500, 1000, Warmup::Steps(0)),
        1e-5
    );
}
