//! The README and docs/ stay true: the first screen fits, the curls answer what the README
//! shows, the commands can run as written, every relative link lands, and the settings table
//! is the list of settings the binary reads.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::docs::{self, Block};
use common::*;
use resume_gateway::config::{OPERATOR_SETTINGS, SETTINGS};
use serde_json::Value;

/// What fits on a first screen, before the README links out to docs/.
const FIRST_SCREEN_LINES: usize = 120;
/// Every curl the README shows posts to the gateway that `RESUME_DRY_RUN=true cargo run` starts.
const CURL: &str =
    "curl -s localhost:3000/api/function-resume -H 'content-type: application/json' -d ";
/// Answer members that change with every request or come from the host.
const VOLATILE: [&str; 3] = ["clientRequestId", "elapsedMs", "invocationId"];

fn readme() -> String {
    docs::read(Path::new("README.md"))
}

/// The README lines before its first link into docs/.
fn first_screen(readme: &str) -> usize {
    readme
        .lines()
        .position(|l| l.contains("](docs/"))
        .expect("the README links to docs/")
}

/// The README's curls, each with the block that follows it: the answer it shows.
fn readme_curls(readme: &str) -> Vec<(String, Block)> {
    let blocks = docs::blocks(readme);
    let mut curls = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        let Some(curl) = block.text.strip_suffix('\n') else {
            continue;
        };
        if block.info == "sh" && curl.starts_with("curl ") {
            assert!(
                curl.starts_with(CURL) && !curl.contains('\n'),
                "README line {}: a curl must be one line starting {CURL:?}",
                block.line
            );
            let answer = blocks
                .get(i + 1)
                .filter(|b| b.info == "json")
                .unwrap_or_else(|| {
                    panic!(
                        "README line {}: a json block with the answer must follow the curl",
                        block.line
                    )
                });
            curls.push((
                curl.to_owned(),
                Block {
                    info: answer.info.clone(),
                    text: answer.text.clone(),
                    line: answer.line,
                },
            ));
        }
    }
    curls
}

/// The body a curl's `-d` posts: `@FILE` (from the repository root) or one `'…'` literal.
fn curl_body(curl: &str) -> Vec<u8> {
    let arg = &curl[CURL.len()..];
    if let Some(file) = arg.strip_prefix('@') {
        assert!(!file.contains(' '), "{curl}");
        std::fs::read(docs::root().join(file)).unwrap_or_else(|e| panic!("{curl}: {e}"))
    } else {
        let literal = arg
            .strip_prefix('\'')
            .and_then(|a| a.strip_suffix('\''))
            .unwrap_or_else(|| panic!("{curl}: -d takes @FILE or one '…' literal"));
        assert!(!literal.contains('\''), "{curl}");
        literal.as_bytes().to_vec()
    }
}

fn normalised(mut answer: Value) -> Value {
    if let Some(object) = answer.as_object_mut() {
        for key in VOLATILE {
            if let Some(value) = object.get_mut(key) {
                *value = Value::String("(varies)".into());
            }
        }
    }
    answer
}

#[tokio::test]
async fn readme_curls_answer_what_the_readme_shows() {
    let readme = readme();
    let curls = readme_curls(&readme);
    assert_eq!(curls.len(), 3, "the README shows three curls");
    let screen = first_screen(&readme);
    let gw = Gateway::start(&[("RESUME_DRY_RUN".into(), "true".into())]).await;
    for (curl, shown) in curls {
        assert!(
            shown.line < screen,
            "{curl}: its answer must be on the first screen"
        );
        let expected: Value = serde_json::from_str(&shown.text)
            .unwrap_or_else(|e| panic!("README line {}: the answer is not JSON: {e}", shown.line));
        let response = gw
            .client
            .post(gw.url("/api/function-resume"))
            .header("content-type", "application/json")
            .body(curl_body(&curl))
            .send()
            .await
            .unwrap();
        let (status, _, actual) = answer(response).await;
        let shown_status = expected["status"].as_u64().unwrap_or(200);
        assert_eq!(u64::from(status), shown_status, "{curl}");
        assert_eq!(
            normalised(actual),
            normalised(expected),
            "README line {}: the answer shown differs from what the gateway answers to {curl}",
            shown.line
        );
    }
}

/// The log lines the README shows for `RESUME_DRY_RUN=true cargo run`, without the timestamp.
fn shown_start_lines(readme: &str) -> Vec<String> {
    readme
        .lines()
        .filter(|l| l.starts_with("20") && l.as_bytes().get(10) == Some(&b'T'))
        .map(|l| l.split_once(' ').unwrap().1.to_owned())
        .collect()
}

#[tokio::test]
async fn readme_shows_the_lines_the_gateway_prints_at_start() {
    let readme = readme();
    let mut shown = shown_start_lines(&readme);
    assert!(!shown.is_empty(), "the README shows the start-up lines");
    let gw = Gateway::start(&[
        ("RESUME_DRY_RUN".into(), "true".into()),
        // What a terminal gets by default; the test's pipe would get JSON.
        ("LOG_FORMAT".into(), "text".into()),
    ])
    .await;
    let started = Instant::now();
    let port = format!("addr=127.0.0.1:{}", gw.port);
    let mut printed = loop {
        let mut lines = gw.output.stdout();
        lines.extend(gw.output.stderr());
        if lines.len() >= shown.len() || started.elapsed() > Duration::from_secs(20) {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for line in &mut printed {
        *line = line
            .split_once(' ')
            .map_or(line.as_str(), |(_, rest)| rest)
            .replace(&port, "addr=127.0.0.1:3000");
    }
    // The open-files limits are the machine's: compare the line, not the figures.
    for line in printed.iter_mut().chain(shown.iter_mut()) {
        if line.contains("open files limit") {
            *line = line
                .split(' ')
                .map(|w| match w.split_once('=') {
                    Some((key @ ("before" | "after"), _)) => format!("{key}=N"),
                    _ => w.to_owned(),
                })
                .collect::<Vec<_>>()
                .join(" ");
        }
    }
    // Two pipes: only a terminal shows their true order, so compare as sets.
    printed.sort();
    shown.sort();
    assert_eq!(printed, shown, "the README's start-up lines drifted");
}

#[test]
fn readme_first_screen_fits_before_the_first_link_out() {
    let readme = readme();
    let screen = first_screen(&readme);
    assert!(
        screen <= FIRST_SCREEN_LINES,
        "the README's first screen is {screen} lines before its first link to docs/ (at most {FIRST_SCREEN_LINES})"
    );
    let first = readme.lines().take(screen).collect::<Vec<_>>().join("\n");
    for needed in [
        "RESUME_DRY_RUN=true cargo run",
        "cargo test --locked",
        "rust-version",
    ] {
        assert!(first.contains(needed), "the first screen lacks {needed:?}");
    }
    let rust_version = std::fs::read_to_string(docs::root().join("Cargo.toml"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap();
    assert!(
        first.contains(&format!("Rust {rust_version} or later")),
        "the prerequisites must name Cargo.toml's rust-version {rust_version}"
    );
}

/// GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens, repeats numbered.
fn anchors(markdown: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    for (_, line) in docs::prose(markdown) {
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        let slug: String = heading
            .trim_start_matches('#')
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let mut unique = slug.clone();
        let mut n = 0;
        while !seen.insert(unique.clone()) {
            n += 1;
            unique = format!("{slug}-{n}");
        }
    }
    seen
}

/// Link targets in prose: `[text](target)`, with their line numbers.
fn links(markdown: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in docs::prose(markdown) {
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let end = rest.find(')').unwrap_or_else(|| panic!("line {n}: {line}"));
            found.push((n, rest[..end].to_owned()));
            rest = &rest[end..];
        }
    }
    found
}

#[test]
fn every_relative_link_and_anchor_exists() {
    let mut checked = 0;
    for file in docs::files() {
        let text = docs::read(&file);
        let dir = file.parent().unwrap_or(Path::new(""));
        for (line, target) in links(&text) {
            if target.starts_with("https://") || target.starts_with("http://") {
                continue;
            }
            let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let linked: PathBuf = if path.is_empty() {
                file.clone()
            } else {
                dir.join(path)
            };
            assert!(
                docs::root().join(&linked).exists(),
                "{file:?} line {line}: {target} points at no file"
            );
            if !anchor.is_empty() {
                assert!(
                    anchors(&docs::read(&linked)).contains(anchor),
                    "{file:?} line {line}: {target}: {linked:?} has no heading #{anchor}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} relative links found");
}

#[test]
fn the_settings_table_is_what_the_binary_reads() {
    let settings = docs::read(Path::new("docs/settings.md"));
    let table: BTreeSet<&str> = settings
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .map(|l| l.split_once('`').unwrap().0)
        .collect();
    let read: BTreeSet<&str> = SETTINGS.iter().chain(OPERATOR_SETTINGS).copied().collect();
    assert_eq!(
        table, read,
        "docs/settings.md's tables and config::SETTINGS with OPERATOR_SETTINGS must name the same settings"
    );
}

/// Commands in `sh` and `console` blocks: a `sh` block's lines, a `console` block's `$ ` lines.
fn commands(block: &Block) -> Vec<&str> {
    match block.info.as_str() {
        "sh" => block.text.lines().filter(|l| !l.starts_with('#')).collect(),
        "console" => block
            .text
            .lines()
            .filter_map(|l| l.strip_prefix("$ "))
            .collect(),
        _ => Vec::new(),
    }
}

/// Inline code in prose that is a whole command with arguments, e.g. `X=1 handler check --json`.
fn inline_commands(markdown: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in docs::prose(markdown) {
        for (i, span) in line.split('`').enumerate() {
            // Odd pieces are inside backticks.
            let words: Vec<&str> = span.split_whitespace().collect();
            let program = words.iter().position(|w| !w.contains('='));
            if i % 2 == 1
                && program.is_some_and(|p| words.get(p + 2).is_some())
                && words.iter().any(|w| w.starts_with("--"))
            {
                found.push((n, words[program.unwrap()..].join(" ")));
            }
        }
    }
    found
}

#[test]
fn commands_run_as_written_from_the_repository_root() {
    let mut checked = 0;
    for file in docs::files() {
        for (line, command) in inline_commands(&docs::read(&file)) {
            assert!(
                !command.starts_with("handler "),
                "{file:?} line {line}: `{command}` runs a bare `handler`; use target/release/handler or cargo run --"
            );
        }
        for block in docs::blocks(&docs::read(&file)) {
            for command in commands(&block) {
                let words: Vec<&str> = command.split_whitespace().collect();
                // `handler` is not on PATH: name the built file or go through cargo.
                for (i, word) in words.iter().enumerate() {
                    let starts = i == 0 || matches!(words[i - 1], "|" | "&&" | ";" | "$(");
                    assert!(
                        !(starts && (*word == "handler" || word.starts_with("handler "))),
                        "{file:?} line {}: `{command}` runs a bare `handler`; use target/release/handler or cargo run --",
                        block.line
                    );
                }
                // Repository files the command reads or runs must exist where it says.
                for word in words {
                    let word = word.trim_start_matches('@').trim_end_matches(';');
                    let in_repo = ["samples/", "scripts/", "infra/", "docs/", "tests/", ".ci/"]
                        .iter()
                        .any(|dir| word.starts_with(dir));
                    if in_repo && !word.contains('<') {
                        assert!(
                            docs::root().join(word).exists(),
                            "{file:?} line {}: `{command}` names {word}, which does not exist",
                            block.line
                        );
                    }
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 20, "only {checked} commands found");
}

/// Every `.rs` file under `dir`, as paths relative to the repository root.
fn sources(dir: &Path, found: &mut Vec<String>) {
    for entry in std::fs::read_dir(docs::root().join(dir)).unwrap() {
        let path = entry.unwrap().path();
        let relative = path.strip_prefix(docs::root()).unwrap().to_path_buf();
        if path.is_dir() {
            sources(&relative, found);
        } else if path.extension().is_some_and(|x| x == "rs") {
            found.push(relative.to_string_lossy().into_owned());
        }
    }
}

#[test]
fn the_module_map_names_every_source_file() {
    let map = docs::read(Path::new("docs/architecture.md"));
    let mut files = Vec::new();
    sources(Path::new("src"), &mut files);
    for file in files.iter().filter(|f| f.as_str() != "src/lib.rs") {
        assert!(
            map.contains(&format!("`{file}`")),
            "docs/architecture.md's module map lacks `{file}`"
        );
    }
    assert!(files.len() >= 10, "only {} source files found", files.len());
}

#[test]
fn every_rust_file_the_docs_name_exists() {
    let mut checked = 0;
    for file in docs::files() {
        let text = docs::read(&file);
        for word in text.split(|c: char| c.is_whitespace() || "`()[],;:'\"".contains(c)) {
            let word = word.trim_end_matches('.');
            if (word.starts_with("src/") || word.starts_with("tests/")) && word.ends_with(".rs") {
                assert!(
                    docs::root().join(word).exists(),
                    "{file:?} names {word}, which does not exist"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "only {checked} Rust files named");
}
