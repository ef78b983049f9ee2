//! The module tree is the architecture: each top-level module of `src/` has one job, and the
//! dependencies between them run one way, along the data path. This test reads the sources
//! (no extra tool to install) and fails on an import cycle between top-level modules, naming
//! the cycle and the lines that close it, so a shortcut back up the path is caught in review.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level module → (module it uses → first `file:line` that uses it).
type Graph = BTreeMap<String, BTreeMap<String, String>>;

#[test]
fn top_level_modules_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = module_graph(&src);
    assert!(
        graph.len() >= 5,
        "expected the crate's modules under src/, found {:?}",
        graph.keys()
    );
    if let Some(cycle) = find_cycle(&graph) {
        let closing: Vec<String> = cycle
            .windows(2)
            .map(|pair| format!("{} -> {} ({})", pair[0], pair[1], graph[&pair[0]][&pair[1]]))
            .collect();
        panic!(
            "import cycle between top-level modules: {}\n  {}",
            cycle.join(" -> "),
            closing.join("\n  ")
        );
    }
}

#[test]
fn the_checker_sees_a_cycle() {
    let mut graph = Graph::new();
    graph
        .entry("a".into())
        .or_default()
        .insert("b".into(), "a.rs:1".into());
    graph
        .entry("b".into())
        .or_default()
        .insert("c".into(), "b.rs:1".into());
    graph
        .entry("c".into())
        .or_default()
        .insert("a".into(), "c.rs:9".into());
    let cycle = find_cycle(&graph).expect("a -> b -> c -> a is a cycle");
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(cycle.len(), 4);
    graph.get_mut("c").unwrap().clear();
    assert_eq!(find_cycle(&graph), None);
}

#[test]
fn the_checker_reads_paths_not_comments() {
    let uses = crate_paths("use crate::graph::X; let a = crate::retry::run; // see crate::ops");
    assert_eq!(uses, ["graph", "retry"]);
    assert!(crate_paths("/// [`crate::ops`] in a doc comment").is_empty());
    assert_eq!(
        crate_paths("use crate::{graph, identity::Token};"),
        ["graph", "identity"]
    );
}

/// The top-level module a file belongs to: `src/x.rs` and everything under `src/x/` are `x`.
/// `lib.rs` and `main.rs` are the roots that assemble the modules, not modules themselves.
fn top_level(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    match first {
        "lib.rs" | "main.rs" => None,
        name => Some(name.trim_end_matches(".rs").to_owned()),
    }
}

fn module_graph(src: &Path) -> Graph {
    let mut graph = Graph::new();
    for file in rust_files(src) {
        let Some(module) = top_level(src, &file) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).expect("source file is readable");
        let uses = graph.entry(module.clone()).or_default();
        for (n, line) in text.lines().enumerate() {
            for used in crate_paths(line) {
                if used != module {
                    let place = format!("{}:{}", file.strip_prefix(src).unwrap().display(), n + 1);
                    uses.entry(used).or_insert(place);
                }
            }
        }
    }
    graph
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The top-level modules a line of code names through `crate::`, comments left out;
/// `crate::{a, b::c}` names `a` and `b`.
fn crate_paths(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or_default();
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or_default();
            found.extend(inner.split(',').filter_map(|p| ident(p.trim())));
        } else if let Some(name) = ident(rest) {
            found.push(name);
        }
    }
    found
}

fn ident(s: &str) -> Option<String> {
    let name: String = s
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty() && name != "self").then_some(name)
}

/// A cycle as `[a, b, …, a]`, or `None`; depth-first with the path kept on a stack.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[start..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flat_map(BTreeMap::keys) {
            if let Some(cycle) = visit(next, graph, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}
