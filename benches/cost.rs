//! criterion benches for `_core::cost` (results in benches/RESULTS.md).

use std::hint::black_box;

use _core::cost::{PriceTable, Usage};
use criterion::{criterion_group, criterion_main, Criterion};

fn bench(c: &mut Criterion) {
    let table = PriceTable::shipped().expect("shipped price table");
    let usage = Usage {
        prompt: 12_345,
        completion: 678,
        cached: 4_096,
        cache_write: 0,
    };
    c.bench_function("cost/lookup+cost (exact name)", |b| {
        b.iter(|| table.cost(black_box("gpt-4o"), black_box(usage)))
    });
    c.bench_function("cost/lookup+cost (snapshot name)", |b| {
        b.iter(|| table.cost(black_box("claude-sonnet-4-5-20250929"), black_box(usage)))
    });
    c.bench_function("cost/worst_case", |b| {
        b.iter(|| table.worst_case(black_box("gpt-4o-mini"), black_box(50_000), None))
    });
    c.bench_function("cost/build shipped table", |b| {
        b.iter(|| PriceTable::shipped().expect("table").len())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
