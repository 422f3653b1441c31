//! Random-program differential tests of `#[differentiable]`.
//!
//! `tests/random/generator.rs` writes random scalar functions (nested `if`/`else` as
//! statements and expressions, `else if` chains, `for` loops with carried values and nested
//! loops, early returns, compound assignment, shadowing, slices, arrays, calls, constants,
//! f64 and f32; and Rust as people write it: `while`, `break`, `continue`, labeled breaks,
//! `loop` with `break value`, `match` on integers and on floats with guards, `if let`,
//! `for` over iterator chains, `map`/`sum`/`product`/`fold`/`count` chains, closures); `tests/random/check.rs` compares their `_grad` and `_vjp` with finite
//! differences of the original, skipping points whose stencil crosses a branch boundary.
//!
//! - `cargo test --release --test random_programs` checks the fixed set checked in as
//!   `tests/random/programs.rs` (`PROGRAMS` programs from seed `SEED`).
//! - `cargo test --release --test random_programs -- --ignored regenerate` rewrites that
//!   file (constructs listed in `OFF` are switched off; `FUZZ_OFF=a,b` overrides the list,
//!   `FUZZ_OFF=` switches everything on; programs in `SKIP` are left out, `FUZZ_SKIP=1,2`
//!   overrides that list). If the file on disk no longer compiles, restore
//!   it with `git checkout tests/random/programs.rs` first.
//! - `FUZZ_N=3000 cargo test --release --test random_programs -- --ignored thousands --nocapture`
//!   writes `FUZZ_N` programs (seed `FUZZ_SEED`, default 1; `FUZZ_OFF` as above, default
//!   none) into a scratch crate under `target/fuzz-scratch/`, builds it in batches of
//!   `FUZZ_BATCH` (default 300), drops the programs that do not compile (recording the
//!   error), runs the checks, and prints the failures per construct with the seed and source
//!   of each failing program; the full report is `target/fuzz-scratch/report.md`.

#![allow(unused, unused_comparisons, clippy::all)]

#[path = "random/check.rs"]
mod check;
#[path = "random/generator.rs"]
mod generator;
#[path = "random/programs.rs"]
mod programs;

use check::{Case, Mix};
use generator::{C, Config};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The checked-in set: seed and size.
const SEED: u64 = 2026;
const PROGRAMS: usize = 320;
/// Points checked per program.
const POINTS: usize = 6;

/// Constructs the macro of this commit does not compile: the checked-in set is generated
/// without them. Every construct of the generator compiles now.
const OFF: &[C] = &[];

/// Programs of the set that do not compile with the macro of this commit; left out.
const SKIP: &[usize] = &[];

fn run_chunk(k: usize, of: usize) {
    let cases = programs::cases();
    assert!(
        cases.len() >= 300,
        "the set must hold at least 300 programs"
    );
    let chunk = cases.len().div_ceil(of);
    let mine = &cases[k * chunk..((k + 1) * chunk).min(cases.len())];
    let failures = check::check_all(mine, POINTS);
    if !failures.is_empty() {
        let mut msg = format!("{} of {} programs fail:\n", failures.len(), mine.len());
        for (name, e) in &failures {
            writeln!(msg, "--- {name} (tests/random/programs.rs): {e}").unwrap();
        }
        panic!("{msg}");
    }
}

#[test]
fn programs_part_0() {
    run_chunk(0, 4);
}
#[test]
fn programs_part_1() {
    run_chunk(1, 4);
}
#[test]
fn programs_part_2() {
    run_chunk(2, 4);
}
#[test]
fn programs_part_3() {
    run_chunk(3, 4);
}

// ---------------------------------------------------------------------------------------
// The checker itself: it passes on a correct hand-written gradient of a piecewise function,
// and fails when the gradient is wrong, on either piece.
// ---------------------------------------------------------------------------------------

fn piecewise(x: f64, y: f64, h: &mut u64) -> f64 {
    if check::__p(x * y > 0.3, h) {
        x * y.sin() + 1.0
    } else {
        (x - y).powi(2)
    }
}

/// by hand: d/dx, d/dy of each piece
fn piecewise_grad(x: f64, y: f64) -> (f64, Vec<f64>) {
    if x * y > 0.3 {
        (x * y.sin() + 1.0, vec![y.sin(), x * y.cos()])
    } else {
        ((x - y).powi(2), vec![2.0 * (x - y), -2.0 * (x - y)])
    }
}

fn case_with(grad: fn(&[f64]) -> (f64, Vec<f64>)) -> Case {
    Case {
        name: "piecewise",
        seed: 7,
        inputs: 2,
        f32: false,
        f: |v| piecewise(v[0], v[1], &mut 0),
        path: |v, h| piecewise(v[0], v[1], h),
        grad,
        vjp: |v, s| {
            let (y, g) = piecewise_grad(v[0], v[1]);
            (y, g.iter().map(|g| g * s).collect())
        },
    }
}

#[test]
fn checker_accepts_a_correct_gradient() {
    let st = check::check(&case_with(|v| piecewise_grad(v[0], v[1])), 400).unwrap();
    assert_eq!(st.checked, 400);
}

#[test]
fn checker_rejects_wrong_gradients() {
    // off by 1e-4 relative in one entry, on every piece
    let c = case_with(|v| {
        let (y, mut g) = piecewise_grad(v[0], v[1]);
        g[1] *= 1.0 + 1e-4;
        (y, g)
    });
    assert!(check::check(&c, 50).is_err());
    // wrong on one piece only (the derivative of the other piece)
    let c = case_with(|v| {
        let (y, g) = piecewise_grad(v[0], v[1]);
        if v[0] * v[1] > 0.3 {
            (y, vec![2.0 * (v[0] - v[1]), g[1]])
        } else {
            (y, g)
        }
    });
    assert!(check::check(&c, 50).is_err());
    // a wrong value
    let c = case_with(|v| {
        let (y, g) = piecewise_grad(v[0], v[1]);
        (y + 1e-9, g)
    });
    assert!(check::check(&c, 50).is_err());
}

#[test]
fn checker_skips_stencils_across_a_branch() {
    // points within 1e-3 of the boundary x*y = 0.3: the path test must skip all of them
    // rather than compare a difference quotient taken across the jump.
    let mut rng = Mix(3);
    let case = case_with(|v| piecewise_grad(v[0], v[1]));
    let mut skipped = 0;
    for _ in 0..200 {
        let x = rng.unif(0.5, 2.0);
        let y = 0.3 / x + rng.unif(-2e-4, 2e-4);
        let mut h0 = 0;
        piecewise(x, y, &mut h0);
        if check::richardson(&case, &[x, y], h0).is_none() {
            skipped += 1;
        }
    }
    assert_eq!(skipped, 200);
}

// ---------------------------------------------------------------------------------------
// Generation
// ---------------------------------------------------------------------------------------

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `FUZZ_OFF` if set, else `default`.
fn config(default: &[C]) -> Config {
    match std::env::var("FUZZ_OFF") {
        Ok(list) => Config::parse_off(&list).unwrap_or_else(|e| panic!("FUZZ_OFF: {e}")),
        Err(_) => Config::without(default),
    }
}

fn off_names(cfg: &Config) -> String {
    let off: Vec<&str> = generator::ALL
        .iter()
        .filter(|c| !cfg.on.contains(c))
        .map(|c| c.name())
        .collect();
    if off.is_empty() {
        "none".into()
    } else {
        off.join(", ")
    }
}

fn rustfmt(path: &Path) {
    let st = Command::new("rustfmt")
        .args(["--edition", "2024"])
        .arg(path)
        .status()
        .expect("rustfmt");
    assert!(st.success(), "rustfmt failed on {}", path.display());
}

/// Writes `path` through a temporary file and a rename.
fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("rs.tmp");
    std::fs::write(&tmp, text).unwrap_or_else(|e| panic!("{}: {e}", tmp.display()));
    std::fs::rename(&tmp, path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

const PRELUDE: &str = "use super::check::{Case, Flat, __p};\nuse symgrad::differentiable;\n\n";

#[test]
#[ignore = "rewrites tests/random/programs.rs"]
fn regenerate() {
    let cfg = config(OFF);
    let skip: Vec<usize> = match std::env::var("FUZZ_SKIP") {
        Ok(list) => list
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect(),
        Err(_) => SKIP.to_vec(),
    };
    let mut text = format!(
        "// @generated by `cargo test --release --test random_programs -- --ignored regenerate`:\n\
         // programs 0..{PROGRAMS} of seed {SEED} except {skip:?}; constructs switched off: {}.\n\n{PRELUDE}",
        off_names(&cfg)
    );
    let progs: Vec<_> = (0..PROGRAMS)
        .filter(|i| !skip.contains(i))
        .map(|i| generator::program(SEED, i, &cfg))
        .collect();
    for p in &progs {
        text.push_str(&p.full());
        text.push('\n');
    }
    text.push_str("pub fn cases() -> Vec<Case> {\nvec![\n");
    for p in &progs {
        writeln!(text, "{},", p.case).unwrap();
    }
    text.push_str("]\n}\n");
    let path = root().join("tests/random/programs.rs");
    let tmp = root().join("tests/random/programs.rs.tmp");
    std::fs::write(&tmp, &text).unwrap();
    rustfmt(&tmp);
    std::fs::rename(&tmp, &path).unwrap();
    let mut count: BTreeMap<C, usize> = BTreeMap::new();
    for p in &progs {
        for c in &p.used {
            *count.entry(*c).or_default() += 1;
        }
    }
    eprintln!("wrote {} ({} programs)", path.display(), progs.len());
    for (c, n) in count {
        eprintln!("  {:>18}: {n} programs", c.name());
    }
}

// ---------------------------------------------------------------------------------------
// Thousands: a scratch crate under target/
// ---------------------------------------------------------------------------------------

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v}: not a number"))
        })
        .unwrap_or(default)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// The scratch crate's manifest: a path dependency on this workspace's `symgrad`, the same
/// release profile (so that the dependencies built for the workspace are reused).
fn scratch_manifest() -> String {
    format!(
        "[package]\nname = \"symgrad-fuzz-scratch\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n\
         [dependencies]\nsymgrad = {{ path = {:?} }}\n\n[profile.release]\ndebug = 1\n\n[workspace]\n",
        root().display().to_string()
    )
}

struct Outcome {
    /// program index -> first compile error line
    compile: BTreeMap<usize, String>,
    /// program index -> check failure
    check: BTreeMap<usize, String>,
    /// programs checked
    ran: usize,
}

/// Builds and runs one batch of programs in the scratch crate.
fn run_batch(dir: &Path, progs: &[(usize, generator::Program)]) -> Outcome {
    let src = dir.join("src");
    let _ = std::fs::remove_dir_all(&src);
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(dir.join("Cargo.toml"), scratch_manifest()).unwrap();
    std::fs::copy(root().join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    std::fs::write(
        src.join("check.rs"),
        std::fs::read_to_string(root().join("tests/random/check.rs")).unwrap(),
    )
    .unwrap();
    // Each program in its own module; its instrumented copy in a child module `path`, so
    // that an error there (the generator's fault, not the macro's) is told apart.
    for (_, p) in progs {
        let text = format!(
            "{}{}\nmod path;\nuse path::*;\n\npub fn case() -> Case {{\n{}\n}}\n",
            PRELUDE.replace("super::", "crate::"),
            p.source(),
            p.case
        );
        std::fs::write(src.join(format!("{}.rs", p.name)), text).unwrap();
        std::fs::create_dir_all(src.join(&p.name)).unwrap();
        std::fs::write(
            src.join(&p.name).join("path.rs"),
            format!("use super::*;\n\n{}\n", p.path_source()),
        )
        .unwrap();
    }
    // rustfmt layout, as a user writes it (and readable in the report)
    let st = Command::new("rustfmt")
        .args(["--edition", "2024"])
        .args(
            progs
                .iter()
                .map(|(_, p)| src.join(format!("{}.rs", p.name))),
        )
        .status()
        .expect("rustfmt");
    assert!(st.success(), "rustfmt failed on the scratch programs");
    let mut live: BTreeSet<usize> = progs.iter().map(|(i, _)| *i).collect();
    let by_name: BTreeMap<String, usize> =
        progs.iter().map(|(i, p)| (p.name.clone(), *i)).collect();
    let mut compile = BTreeMap::new();
    let write_lib = |live: &BTreeSet<usize>| {
        let mut lib = String::from("#![allow(unused, clippy::all)]\npub mod check;\n");
        for (i, p) in progs {
            if live.contains(i) {
                writeln!(lib, "pub mod {};", p.name).unwrap();
            }
        }
        lib.push_str(&format!(
            "\n#[test]\nfn fuzz() {{\n    let cases: Vec<check::Case> = vec![{}];\n    \
             for c in &cases {{\n        match check::check(c, {POINTS}) {{\n            \
             Ok(_) => println!(\"PASS {{}}\", c.name),\n            \
             Err(e) => println!(\"FAIL {{}} {{}}\", c.name, e.replace('\\n', \" \")),\n        }}\n    }}\n}}\n",
            progs
                .iter()
                .filter(|(i, _)| live.contains(i))
                .map(|(_, p)| format!("{}::case()", p.name))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        std::fs::write(src.join("lib.rs"), lib).unwrap();
    };
    // Build; drop the programs with errors; again, until it builds.
    for round in 0.. {
        write_lib(&live);
        let out = Command::new("cargo")
            .args([
                "test",
                "--release",
                "--lib",
                "--no-run",
                "--message-format=short",
            ])
            .current_dir(dir)
            .env("CARGO_TARGET_DIR", target_dir())
            .env_remove("RUSTFLAGS")
            .output()
            .expect("cargo");
        if out.status.success() {
            break;
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mut dropped = 0;
        for line in stderr.lines() {
            // src/p00012.rs:3:1: error[E0425]: cannot find value `__a_4` in this scope
            let Some(rest) = line.strip_prefix("src/") else {
                continue;
            };
            let Some((file, msg)) = rest.split_once(".rs:") else {
                continue;
            };
            if !msg.contains("error") {
                continue;
            }
            // an error in the instrumented copy is the generator's fault: reported apart
            let (file, harness) = match file.strip_suffix("/path") {
                Some(f) => (f, "GENERATOR BUG (instrumented copy): "),
                None => (file, ""),
            };
            if let Some(&i) = by_name.get(file) {
                if live.remove(&i) {
                    dropped += 1;
                }
                compile.entry(i).or_insert_with(|| {
                    let m = msg.splitn(3, ':').nth(2).unwrap_or(msg).trim();
                    format!("{harness}{m}")
                });
            }
        }
        assert!(
            dropped > 0 && round < 20,
            "the scratch crate does not build and no program is to blame:\n{stderr}"
        );
    }
    let out = Command::new("cargo")
        .args(["test", "--release", "--lib", "--", "--nocapture"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .expect("cargo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut check = BTreeMap::new();
    let mut ran = 0;
    for line in stdout.lines() {
        // With `--nocapture` the first program's line may follow libtest's `test fuzz ... `.
        let line = line.strip_prefix("test fuzz ... ").unwrap_or(line);
        if line.starts_with("PASS ") {
            ran += 1;
        } else if let Some(rest) = line.strip_prefix("FAIL ") {
            ran += 1;
            let (name, e) = rest.split_once(' ').unwrap_or((rest, ""));
            check.insert(by_name[name], e.to_string());
        }
    }
    assert_eq!(
        ran,
        live.len(),
        "the scratch tests did not run every program:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Outcome {
        compile,
        check,
        ran,
    }
}

/// The kind of a compile error: its code and message with names and numbers blanked.
fn error_kind(msg: &str) -> String {
    let mut out = String::new();
    let mut in_tick = false;
    for ch in msg.chars() {
        match ch {
            '`' => {
                in_tick = !in_tick;
                out.push_str(if in_tick { "`…" } else { "`" });
            }
            _ if in_tick => {}
            _ => out.push(ch),
        }
    }
    out
}

/// `text` through rustfmt (as is if rustfmt fails).
fn formatted(text: &str) -> String {
    use std::io::Write;
    let Ok(mut child) = Command::new("rustfmt")
        .args(["--edition", "2024", "--emit", "stdout", "--quiet"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
    else {
        return text.to_string();
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    match child.wait_with_output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        _ => text.to_string(),
    }
}

#[test]
#[ignore = "generates and checks thousands of programs in target/fuzz-scratch (minutes)"]
fn thousands() {
    let n = env_usize("FUZZ_N", 1000);
    let batch = env_usize("FUZZ_BATCH", 300).max(1);
    let seed = env_usize("FUZZ_SEED", 1) as u64;
    let cfg = config(&[]);
    let dir = target_dir().join("fuzz-scratch");
    std::fs::create_dir_all(&dir).unwrap();
    let progs: Vec<(usize, generator::Program)> = (0..n)
        .map(|i| (i, generator::program(seed, i, &cfg)))
        .collect();
    let mut compile = BTreeMap::new();
    let mut failed = BTreeMap::new();
    let mut ran = 0;
    for part in progs.chunks(batch) {
        let t = std::time::Instant::now();
        let o = run_batch(&dir, part);
        eprintln!(
            "programs {}..{}: {} do not compile, {} of {} checked fail ({:.0} s)",
            part[0].0,
            part[0].0 + part.len(),
            o.compile.len(),
            o.check.len(),
            o.ran,
            t.elapsed().as_secs_f64()
        );
        compile.extend(o.compile);
        failed.extend(o.check);
        ran += o.ran;
    }
    // The report: per construct, per error kind, then every failing program.
    let mut rep = format!(
        "# Random programs: {n} from seed {seed}, constructs off: {}\n\n\
         {} do not compile, {} of {ran} compiled programs fail the gradient check.\n\n\
         | construct | programs using it | do not compile | gradient check fails |\n| --- | --- | --- | --- |\n",
        off_names(&cfg),
        compile.len(),
        failed.len()
    );
    for c in generator::ALL {
        let using: Vec<usize> = progs
            .iter()
            .filter(|(_, p)| p.used.contains(&c))
            .map(|(i, _)| *i)
            .collect();
        let nc = using.iter().filter(|i| compile.contains_key(i)).count();
        let nf = using.iter().filter(|i| failed.contains_key(i)).count();
        writeln!(rep, "| {} | {} | {nc} | {nf} |", c.name(), using.len()).unwrap();
    }
    let mut kinds: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, e) in &compile {
        kinds.entry(error_kind(e)).or_default().push(*i);
    }
    writeln!(rep, "\n## Compile errors by kind\n").unwrap();
    for (k, v) in &kinds {
        let names: Vec<String> = v.iter().take(8).map(|i| progs[*i].1.name.clone()).collect();
        writeln!(
            rep,
            "- {} programs: {k} (e.g. {})",
            v.len(),
            names.join(", ")
        )
        .unwrap();
    }
    writeln!(rep, "\n## Failing programs\n").unwrap();
    for (i, e) in compile
        .iter()
        .map(|(i, e)| (i, format!("compile error: {e}")))
        .chain(failed.iter().map(|(i, e)| (i, e.clone())))
    {
        let p = &progs[*i].1;
        writeln!(
            rep,
            "### {} (seed {}, generator seed {seed} index {i})\n\n{e}\n\n```rust\n{}\n```\n",
            p.name,
            p.seed,
            formatted(&p.source())
        )
        .unwrap();
    }
    std::fs::write(dir.join("report.md"), &rep).unwrap();
    let head: String = rep
        .split("\n## Failing programs")
        .next()
        .unwrap()
        .to_string();
    eprintln!(
        "{head}\nfull report with sources: {}",
        dir.join("report.md").display()
    );
    assert!(
        compile.is_empty() && failed.is_empty(),
        "{} programs do not compile, {} fail the check",
        compile.len(),
        failed.len()
    );
}
