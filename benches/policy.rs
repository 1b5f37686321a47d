//! criterion benches for `_core::policy` (results in benches/RESULTS.md). The scans run
//! twice: `policy/…` in wall-clock time and `policy_cpu/…` in the bench thread's CPU time,
//! which stays meaningful when the machine is shared.

use std::hint::black_box;

use _core::policy::{PolicyMatcher, RuleSpec};
use criterion::measurement::Measurement;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};

#[path = "support/cpu_time.rs"]
mod cpu_time;

/// A small deterministic generator, so every run scans the same text.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn word(&mut self, min: usize, max: usize) -> String {
        let len = min + (self.next() as usize) % (max - min + 1);
        (0..len)
            .map(|_| (b'a' + (self.next() % 26) as u8) as char)
            .collect()
    }
}

const PROSE: &[&str] = &[
    "the",
    "quarterly",
    "report",
    "shows",
    "revenue",
    "growth",
    "across",
    "all",
    "regions",
    "please",
    "summarise",
    "customer",
    "feedback",
    "and",
    "draft",
    "a",
    "reply",
    "to",
    "our",
    "partners",
    "about",
    "the",
    "launch",
    "timeline",
    "for",
    "next",
    "year",
    "with",
    "costs",
    "Delivery",
    "schedule",
    "Tokyo",
    "Berlin",
    "München",
    "café",
    "résumé",
    "function",
    "return",
    "value",
    "error",
    "handling",
    "in",
    "rust",
    "python",
    "code",
    "review",
    "notes",
];

fn prompt(rng: &mut Lcg, bytes: usize) -> String {
    let mut text = String::with_capacity(bytes + 16);
    while text.len() < bytes {
        text.push_str(PROSE[(rng.next() as usize) % PROSE.len()]);
        text.push(if rng.next() % 12 == 0 { '\n' } else { ' ' });
    }
    text
}

fn keyword_rules(rng: &mut Lcg, count: usize, rules: usize, whole_word: bool) -> Vec<RuleSpec> {
    (0..rules)
        .map(|r| RuleSpec {
            id: format!("rule-{r}"),
            keywords: (0..count / rules).map(|_| rng.word(5, 12)).collect(),
            whole_word,
            ..RuleSpec::default()
        })
        .collect()
}

fn scans<M: Measurement>(mut group: BenchmarkGroup<'_, M>) {
    let mut rng = Lcg(0x7011_4005e);
    let text = prompt(&mut rng, 100 * 1024);
    group.throughput(Throughput::Bytes(text.len() as u64));

    let matcher = PolicyMatcher::new(keyword_rules(&mut rng, 10_000, 1, false)).expect("rules");
    group.bench_function("10k keywords, 1 rule, 100 KB, no match", |b| {
        b.iter(|| matcher.check(black_box(&text), Some("gpt-4o"), Some(25_000)))
    });

    let rules = keyword_rules(&mut rng, 10_000, 100, true);
    let planted = rules[99].keywords[0].clone();
    let matcher = PolicyMatcher::new(rules).expect("rules");
    let mut hit_text = text.clone();
    hit_text.insert_str(hit_text.len() / 2, &format!(" {planted} "));
    group.bench_function("10k keywords, 100 whole-word rules, 100 KB, one hit", |b| {
        b.iter(|| {
            let hits = matcher.check(black_box(&hit_text), None, None);
            assert_eq!(hits.len(), 1);
            hits
        })
    });

    let mut mixed = keyword_rules(&mut rng, 2_000, 20, false);
    mixed.push(RuleSpec {
        id: "regexes".to_owned(),
        regex: vec![
            r"\b\d{3}-\d{2}-\d{4}\b".to_owned(),
            r"(?i)ignore (all|previous) instructions".to_owned(),
            r"sk-[A-Za-z0-9]{20,}".to_owned(),
        ],
        ..RuleSpec::default()
    });
    mixed.push(RuleSpec {
        id: "models".to_owned(),
        models_deny: vec!["*-preview".to_owned(), "o1*".to_owned()],
        max_bytes: Some(1 << 20),
        ..RuleSpec::default()
    });
    let matcher = PolicyMatcher::new(mixed).expect("rules");
    group.bench_function("2k keywords + 3 regexes + globs, 100 KB", |b| {
        b.iter(|| matcher.check(black_box(&text), Some("gpt-4o"), None))
    });
    group.finish();
}

fn cpu(c: &mut Criterion<cpu_time::CpuTime>) {
    scans(c.benchmark_group("policy_cpu"));
}

fn bench(c: &mut Criterion) {
    scans(c.benchmark_group("policy"));

    let mut rng = Lcg(0x5eed);
    let rules = keyword_rules(&mut rng, 10_000, 1, false);
    c.bench_function("policy/compile 10k keywords", |b| {
        b.iter(|| PolicyMatcher::new(black_box(rules.clone())).expect("rules"))
    });
    let small = "Please summarise the attached quarterly report in three bullet points.";
    let matcher = PolicyMatcher::new(keyword_rules(&mut rng, 10_000, 10, true)).expect("rules");
    c.bench_function("policy/10k keywords, 70-byte prompt", |b| {
        b.iter(|| matcher.check(black_box(small), Some("gpt-4o"), None))
    });
}

criterion_group!(benches, bench);
criterion_group! {
    name = cpu_benches;
    config = Criterion::default().with_measurement(cpu_time::CpuTime);
    targets = cpu
}
criterion_main!(benches, cpu_benches);
