//! `enginebench` against the real binaries: the truncation workloads with lastbyte, the hyper
//! engine and the hyper 1.10.1 reproduction build (built from tools/hyper110 by the tool), and
//! its usage errors. The h2load throughput workloads are benchmarks, not tests.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn enginebench(args: &[&str]) -> (i32, String, String) {
    let out = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_enginebench"))
        .args(args)
        .arg("--out")
        .arg(out.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(1200);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("enginebench did not finish");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let o = child.wait_with_output().unwrap();
    let md = std::fs::read_to_string(out.path().join("enginebench.md")).unwrap_or_default();
    if o.status.success() {
        let png = std::fs::metadata(out.path().join("ratios.png")).unwrap();
        let svg = std::fs::metadata(out.path().join("ratios.svg")).unwrap();
        assert!(png.len() > 10_000 && svg.len() > 1_000, "empty chart files");
    }
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code().unwrap_or(-1), md, log)
}

/// `| title | a | b | c |` → the truncation counts `x of n` per engine.
fn row(md: &str, prefix: &str) -> Vec<(u64, u64)> {
    let line = md
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no row {prefix:?} in\n{md}"));
    line.split('|')
        .skip(2)
        .filter(|c| c.contains(" of "))
        .map(|c| {
            let (x, n) = c.trim().split_once(" of ").unwrap();
            (x.parse().unwrap(), n.parse().unwrap())
        })
        .collect()
}

#[test]
fn hyper_1_10_truncates_where_lastbyte_does_not() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let client = if cores > 1 { "1" } else { "0" };
    let (code, md, log) = enginebench(&[
        "--only",
        "truncation",
        "--rounds",
        "1",
        "--trunc-requests",
        "16",
        "--client-cpu",
        client,
    ]);
    assert_eq!(code, 0, "{log}");
    assert!(md.contains("| lastbyte | hyper 1."), "{md}");
    assert!(md.contains("hyper 1.10.1 |"), "{md}");
    // Columns: lastbyte, hyper (current), hyper 1.10.1.
    let unix = row(&md, "| Unix:");
    let tcp = row(&md, "| TCP:");
    assert_eq!(unix.len(), 3, "{md}");
    assert_eq!(unix[0], (0, 16), "lastbyte over Unix: {md}");
    assert_eq!(tcp[0], (0, 16), "lastbyte over TCP: {md}");
    assert_eq!(
        unix[1],
        (0, 16),
        "current hyper flushes before shutdown: {md}"
    );
    assert!(unix[2].0 > 0, "hyper 1.10.1 truncates over Unix: {md}");
    assert!(
        tcp[2].0 > 0,
        "hyper 1.10.1 loses the response to the reset: {md}"
    );
    assert!(log.contains("truncated"), "{log}");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["--rounds", "0"][..],
        &["--only", "everything"],
        &["--server-cpu", "4096"],
    ] {
        let (code, _, log) = enginebench(args);
        assert_eq!(code, 2, "{args:?}: {log}");
    }
}
