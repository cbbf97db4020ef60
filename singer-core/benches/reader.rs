//! Reader throughput: RECORD lines per second through the parsing layers a target uses.
//!
//! Lines are ~650-byte records of the mixed-type benchmark table (bigint key, int, enum-like
//! string, decimal, smallint, double, boolean, unicode text with quotes and newlines, a JSON
//! object, two timestamps, a nullable date). Run with `cargo xtask bench`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use singer_core::io::{ChunkReader, LineReader, Next};
use singer_core::message::{Message, MessageRef, parse_line};
use singer_core::record::RawFields;

const LINES: usize = 20_000;

fn corpus() -> Vec<u8> {
    let mut out = String::new();
    for i in 0..LINES {
        out.push_str(&format!(
            concat!(
                r#"{{"type":"RECORD","stream":"bench-mixed","record":{{"id":{id},"qty":{qty},"#,
                r#""status":"{status}","price":{price}.{cents:02},"small":{small},"ratio":{ratio},"#,
                r#""active":{active},"note":"Ünïcødé text \"quoted\" with a\nnewline and emoji 🚀 and tab\t and backslash \\ row {id} lorem ipsum dolor sit amet consectetur","#,
                r#""attrs":{{"color":"blue","sizes":[1,2,3],"nested":{{"k":"v","n":{id}}}}},"#,
                r#""created_at":"2024-03-{day:02}T12:34:56.123456Z","updated_at":"2024-03-{day:02}T12:34:56Z","#,
                r#""birthday":{date}}},"version":1700000000000,"time_extracted":"2026-11-22T00:00:00.000000Z"}}"#,
                "\n"
            ),
            id = 1_000_000 + i,
            qty = i * 7 % 1000,
            status = ["new", "paid", "shipped", "returned"][i % 4],
            price = i % 100_000,
            cents = i % 100,
            small = i % 32_000,
            ratio = (i as f64) / 7.0,
            active = i % 2 == 0,
            day = 1 + i % 28,
            date = if i % 3 == 0 { "null".to_string() } else { format!("\"1990-01-{:02}\"", 1 + i % 28) },
        ));
    }
    out.into_bytes()
}

fn bench(c: &mut Criterion) {
    let data = corpus();
    let mut g = c.benchmark_group("reader");
    g.throughput(Throughput::Elements(LINES as u64));
    g.bench_function("parse_line (envelope, raw record)", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                if let Ok(MessageRef::Record(r)) = parse_line(line) {
                    n += r.record.get().len();
                }
            }
            black_box(n)
        })
    });
    g.bench_function("line reader + parse_line", |b| {
        b.iter(|| {
            let mut reader = LineReader::new(data.as_slice());
            let mut n = 0usize;
            while let Ok(Some(line)) = reader.next_line() {
                if let Ok(MessageRef::Record(r)) = parse_line(line.bytes) {
                    n += r.record.get().len();
                }
            }
            black_box(n)
        })
    });
    g.bench_function("chunk reader thread + parse_line", |b| {
        b.iter(|| {
            let reader = ChunkReader::spawn(std::io::Cursor::new(data.clone()), 1 << 28, 1 << 20);
            let mut n = 0usize;
            while let Ok(Next::Chunk(chunk)) = reader.next(std::time::Duration::from_secs(5)) {
                for line in chunk.lines() {
                    if let Ok(MessageRef::Record(r)) = parse_line(line.bytes) {
                        n += r.record.get().len();
                    }
                }
            }
            black_box(n)
        })
    });
    g.bench_function("parse_line + record fields", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                if let Ok(MessageRef::Record(r)) = parse_line(line) {
                    n += RawFields::parse(r.record).map(|f| f.len()).unwrap_or(0);
                }
            }
            black_box(n)
        })
    });
    g.bench_function("owned Message::parse", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                if let Ok(Some(Message::Record(r))) = Message::parse(line) {
                    n += r.record.len();
                }
            }
            black_box(n)
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
