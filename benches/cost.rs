//! criterion benches for `_core::cost` (results in benches/RESULTS.md). Each bench runs
//! twice: `cost/…` in wall-clock time and `cost_cpu/…` in the bench thread's CPU time.

use std::hint::black_box;

use _core::cost::{PriceTable, Usage};
use criterion::measurement::Measurement;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};

#[path = "support/cpu_time.rs"]
mod cpu_time;

fn run<M: Measurement>(mut group: BenchmarkGroup<'_, M>) {
    let table = PriceTable::shipped().expect("shipped price table");
    let usage = Usage {
        prompt: 12_345,
        completion: 678,
        cached: 4_096,
        cache_write: 0,
    };
    group.bench_function("lookup+cost (exact name)", |b| {
        b.iter(|| table.cost(black_box("gpt-4o"), black_box(usage)))
    });
    group.bench_function("lookup+cost (snapshot name)", |b| {
        b.iter(|| table.cost(black_box("claude-sonnet-4-5-20250929"), black_box(usage)))
    });
    group.bench_function("worst_case", |b| {
        b.iter(|| table.worst_case(black_box("gpt-4o-mini"), black_box(50_000), None))
    });
    group.bench_function("build shipped table", |b| {
        b.iter(|| PriceTable::shipped().expect("table").len())
    });
    group.finish();
}

fn wall(c: &mut Criterion) {
    run(c.benchmark_group("cost"));
}

fn cpu(c: &mut Criterion<cpu_time::CpuTime>) {
    run(c.benchmark_group("cost_cpu"));
}

criterion_group!(wall_benches, wall);
criterion_group! {
    name = cpu_benches;
    config = Criterion::default().with_measurement(cpu_time::CpuTime);
    targets = cpu
}
criterion_main!(wall_benches, cpu_benches);
