//! criterion benches for `_core::tokens` (results in benches/RESULTS.md): throughput of
//! exact counting on a mixed 10 KB–100 KB prompt corpus, the reference encoder
//! (tiktoken-rs) on the same text, and a whole chat body.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use _core::tokens::{corpus, count_chat_body, Encoding};

const SIZES: [usize; 3] = [10_000, 30_000, 100_000];

fn bench_text(c: &mut Criterion) {
    for enc in [Encoding::O200kBase, Encoding::Cl100kBase] {
        enc.count("warm up");
        let mut group = c.benchmark_group(format!("count/{}", enc.name()));
        for (i, size) in SIZES.into_iter().enumerate() {
            let text = corpus::mixed(i as u64 + 1, size);
            group.throughput(Throughput::Bytes(text.len() as u64));
            group.bench_with_input(BenchmarkId::new("fast", size), &text, |b, t| {
                b.iter(|| enc.count(black_box(t)))
            });
            group.bench_with_input(BenchmarkId::new("reference", size), &text, |b, t| {
                b.iter(|| enc.reference().encode_ordinary(black_box(t)).len())
            });
        }
        // No-space scripts: long letter pieces that miss the vocabulary and need merges.
        let cjk =
            "日本語のテキストを数える。中文分词测试，包括标点符号。한국어 문장입니다. ".repeat(300);
        group.throughput(Throughput::Bytes(cjk.len() as u64));
        group.bench_with_input(BenchmarkId::new("fast_cjk", cjk.len()), &cjk, |b, t| {
            b.iter(|| enc.count(black_box(t)))
        });
        group.finish();
    }
}

fn bench_chat(c: &mut Criterion) {
    let messages: Vec<serde_json::Value> = (0..10)
        .map(|i| {
            serde_json::json!({
                "role": if i % 2 == 0 { "user" } else { "assistant" },
                "content": corpus::mixed(100 + i, 5_000),
            })
        })
        .collect();
    let body =
        serde_json::to_vec(&serde_json::json!({"model": "gpt-4o", "messages": messages})).unwrap();
    let mut group = c.benchmark_group("chat_body");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("gpt-4o/50KB", |b| {
        b.iter(|| count_chat_body("gpt-4o", black_box(&body)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench_text, bench_chat);
criterion_main!(benches);
