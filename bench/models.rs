//! Model-fitting benchmark: simulates N BG/NBD customers at day resolution (time unit: weeks),
//! writes them as `x,t_x,T` CSV for the Python side, and times clv's BG/NBD and Pareto/NBD fits.
//! Run through `bench/models.sh` (release build, `lifetimes` side by side); not a test.
//!
//! usage: bench_models N CSV_OUT [REPEATS]

use clv::models::{Rfm, bgnbd, paretonbd};
use clv::sample::Rng;
use std::io::Write;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let csv = args.get(2).cloned().unwrap_or_else(|| "models.csv".into());
    let repeats: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(3);
    let (x, t_x, t) = simulate(n, 20_261_122);
    let mut out = std::io::BufWriter::new(std::fs::File::create(&csv).expect("create csv"));
    writeln!(out, "x,t_x,T").expect("write");
    for i in 0..n {
        writeln!(out, "{},{},{}", x[i], t_x[i], t[i]).expect("write");
    }
    drop(out);

    let started = Instant::now();
    let d = Rfm::compress(&x, &t_x, &t);
    let compress = started.elapsed().as_secs_f64();
    let time = |f: &dyn Fn() -> Vec<f64>| {
        let mut times = Vec::new();
        let mut params = Vec::new();
        for _ in 0..repeats {
            let s = Instant::now();
            params = f();
            times.push(s.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        (times[times.len() / 2], times[0], times[times.len() - 1], params)
    };
    let bg = time(&|| bgnbd::fit(&d, &bgnbd::starts(&d), None).params);
    // As the clv stage does: Pareto/NBD starts from the BG/NBD fit (included in the time).
    let pn = time(&|| {
        let start = paretonbd::start(&d, &bgnbd::fit(&d, &bgnbd::starts(&d), None));
        paretonbd::fit(&d, &[start], None).params
    });
    println!(
        "{{\"customers\": {n}, \"unique_triples\": {}, \"compress_s\": {compress:.4}, \
         \"bgnbd_s\": {:.4}, \"bgnbd_min_s\": {:.4}, \"bgnbd_max_s\": {:.4}, \"bgnbd_params\": {:?}, \
         \"pnbd_s\": {:.4}, \"pnbd_min_s\": {:.4}, \"pnbd_max_s\": {:.4}, \"pnbd_params\": {:?}}}",
        d.len(),
        bg.0,
        bg.1,
        bg.2,
        bg.3,
        pn.0,
        pn.1,
        pn.2,
        pn.3
    );
}

/// BG/NBD with r 0.25, alpha 4 (weeks), a 0.8, b 2.5; first purchases spread over half a year,
/// observed to day 365; purchase days are whole days, reported in weeks.
fn simulate(n: usize, seed: u64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut rng = Rng::new(seed);
    let (mut xs, mut txs, mut ts) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let lambda = rng.gamma(0.25, 1.0 / 4.0) / 7.0; // per day
        let drop = rng.beta(0.8, 2.5);
        let first = rng.below(183) as f64;
        let (mut x, mut last, mut now) = (0.0, first, first);
        loop {
            now += rng.exp(lambda.max(1e-12));
            if now.floor() > 365.0 {
                break;
            }
            x += 1.0;
            last = now.floor();
            if rng.chance(drop) {
                break;
            }
        }
        xs.push(x);
        txs.push((last - first) / 7.0);
        ts.push((365.0 - first) / 7.0);
    }
    (xs, txs, ts)
}
