//! criterion benches for `_core::redact` (results in benches/RESULTS.md): mixed 10 KB
//! prompts with every detector enabled, a 1 MB prompt, and the stream path. Each bench
//! runs twice: `redact/…` in wall-clock time and `redact_cpu/…` in the bench thread's CPU
//! time, which stays meaningful when the machine is shared and the thread is descheduled.

use std::hint::black_box;

use std::sync::Arc;

use _core::redact::{Modes, Redactor, StreamRedactor};
use criterion::measurement::Measurement;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};

#[path = "support/cpu_time.rs"]
mod cpu_time;
use cpu_time::CpuTime;

const PROSE: &[&str] = &[
    "Please summarise the following meeting notes for the team and list the action items. ",
    "The deployment on 2024-03-15 at 12:30:45 failed because version 1.4.2 of the service ",
    "could not reach the database; see ticket #4521 and commit 3f786850e387550fdab836ed7e6dc881de23001b. ",
    "Customer id 550e8400-e29b-41d4-a716-446655440000 asked about invoice 20240315-0042 for $1,299.00. ",
    "In Python, use `std::` nothing; x = a[1:3] and print(f\"{x}: {y}\") then return 42.\n",
    "The quick brown fox jumps over the lazy dog while the task-based sk-learn pipeline runs. ",
    "Our token budget is 4096 tokens and the password policy requires 12 characters. ",
];

const SECRETS: &[&str] = &[
    "Contact jane.doe@example.com or call +1 (415) 555-2671. ",
    "Card 4111 1111 1111 1111 exp 12/27, IBAN GB82 WEST 1234 5698 7654 32. ",
    "SSN 123-45-6789, server 192.168.10.24 and 2001:db8:85a3::8a2e:370:7334. ",
    "export OPENAI_API_KEY=sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb3dEf6hIj\n",
    "aws AKIAIOSFODNN7EXAMPLE github ghp_aB3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb3d ",
    "password = \"Xk9#mQ2!vL7p\" and Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U\n",
];

/// Roughly `len` bytes of prose with a secret every ~1 KB.
fn mixed(len: usize, seed: usize) -> String {
    let mut out = String::with_capacity(len + 256);
    let mut i = seed;
    while out.len() < len {
        out.push_str(PROSE[i % PROSE.len()]);
        if i % 9 == 0 {
            out.push_str(SECRETS[(i / 9) % SECRETS.len()]);
        }
        i += 1;
    }
    out
}

fn run<M: Measurement>(mut g: BenchmarkGroup<'_, M>) {
    let r = Arc::new(Redactor::new(None, &[], None).expect("redactor"));
    let modes = Modes::default();
    let prompts: Vec<String> = (0..8).map(|s| mixed(10 * 1024, s)).collect();
    let total: usize = prompts.iter().map(String::len).sum();

    g.throughput(Throughput::Bytes(total as u64));
    g.bench_function("mixed_10kb_x8_scan", |b| {
        b.iter(|| {
            for p in &prompts {
                black_box(r.scan(black_box(p)));
            }
        })
    });
    g.bench_function("mixed_10kb_x8_redact", |b| {
        b.iter(|| {
            for p in &prompts {
                black_box(r.redact(black_box(p), &modes));
            }
        })
    });
    let big = mixed(1024 * 1024, 3);
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.bench_function("prompt_1mb_redact", |b| {
        b.iter(|| black_box(r.redact(black_box(&big), &modes)))
    });
    let chunks: Vec<&str> = big.as_bytes()[..64 * 1024]
        .chunks(16)
        .map(|c| std::str::from_utf8(c).expect("ascii bench text"))
        .collect();
    g.throughput(Throughput::Bytes(64 * 1024));
    g.bench_function("stream_64kb_in_16b_chunks", |b| {
        b.iter(|| {
            let mut s = StreamRedactor::new(Arc::clone(&r), Modes::default());
            for c in &chunks {
                black_box(s.feed(black_box(c)));
            }
            black_box(s.finish())
        })
    });
    g.finish();
}

fn wall(c: &mut Criterion) {
    run(c.benchmark_group("redact"));
}

fn cpu(c: &mut Criterion<CpuTime>) {
    run(c.benchmark_group("redact_cpu"));
}

criterion_group!(wall_benches, wall);
criterion_group! {
    name = cpu_benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = cpu
}
criterion_main!(wall_benches, cpu_benches);
