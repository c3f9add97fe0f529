//! The agent's module graph has no circles (issue 22): a file that uses
//! another (by `crate::…` or `super::…` path) may not be used back by it,
//! directly or through others. A folder's `mod.rs` and the files below it
//! are one unit (the front door re-exports and shares types with its
//! rooms), so only edges between unrelated modules count. Test code is not
//! part of the graph. Reads the sources; builds nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`commands::engine`) → its source file, for every file under src/.
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().and_then(|x| x.to_str()) != Some("rs") {
                continue;
            }
            let rel = p.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
            if parts.last().map(String::as_str) == Some("mod") {
                parts.pop();
            }
            if matches!(parts.first().map(String::as_str), Some("main" | "lib" | "bin")) {
                continue;
            }
            out.insert(parts.join("::"), p);
        }
    }
    out
}

/// The longest module that `path` (a `::`-path) names, if any.
fn resolve(mods: &BTreeMap<String, PathBuf>, path: &[&str]) -> Option<String> {
    (1..=path.len()).rev().map(|n| path[..n].join("::")).find(|k| mods.contains_key(k))
}

fn related(a: &str, b: &str) -> bool {
    a.starts_with(&format!("{b}::")) || b.starts_with(&format!("{a}::"))
}

/// Identifier-and-`::` paths that start at `at` in `text` (`crate::a::b`).
fn path_at(text: &str, at: usize) -> Vec<&str> {
    let tail = &text[at..];
    let end = tail.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(tail.len());
    tail[..end].split("::").filter(|s| !s.is_empty()).collect()
}

fn graph(mods: &BTreeMap<String, PathBuf>) -> BTreeMap<String, BTreeSet<String>> {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, file) in mods {
        let full = std::fs::read_to_string(file).unwrap();
        let text = full.split("#[cfg(test)]").next().unwrap_or("");
        let me: Vec<&str> = m.split("::").collect();
        let mut add = |t: Option<String>| {
            if let Some(t) = t {
                if &t != m && !related(&t, m) {
                    g.entry(m.clone()).or_default().insert(t);
                }
            }
        };
        for (at, _) in text.match_indices("crate::") {
            let p = path_at(text, at);
            add(resolve(mods, &p[1..]));
        }
        for (at, _) in text.match_indices("super::") {
            // Only the first `super` of a chain starts a path.
            if text[..at].ends_with("::") {
                continue;
            }
            let p = path_at(text, at);
            let ups = p.iter().take_while(|s| **s == "super").count();
            let Some(keep) = me.len().checked_sub(ups) else { continue };
            let mut full: Vec<&str> = me[..keep].to_vec();
            full.extend_from_slice(&p[ups..]);
            add(resolve(mods, &full));
        }
    }
    g
}

/// Every cycle's members (strongly connected components of more than one module).
fn circles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Kosaraju: order by finish time, then walk the reversed graph.
    let nodes: BTreeSet<&String> = g.keys().chain(g.values().flatten()).collect();
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    for n in &nodes {
        let mut stack = vec![(*n, false)];
        while let Some((v, done)) = stack.pop() {
            if done {
                order.push(v);
                continue;
            }
            if !seen.insert(v) {
                continue;
            }
            stack.push((v, true));
            for w in g.get(v).into_iter().flatten() {
                if !seen.contains(w) {
                    stack.push((w, false));
                }
            }
        }
    }
    let mut rev: BTreeMap<&String, Vec<&String>> = BTreeMap::new();
    for (v, ws) in g {
        for w in ws {
            rev.entry(w).or_default().push(v);
        }
    }
    let mut assigned = BTreeSet::new();
    let mut out = Vec::new();
    for v in order.into_iter().rev() {
        if assigned.contains(v) {
            continue;
        }
        let mut comp = Vec::new();
        let mut stack = vec![v];
        assigned.insert(v);
        while let Some(x) = stack.pop() {
            comp.push(x.clone());
            for w in rev.get(x).into_iter().flatten() {
                if assigned.insert(*w) {
                    stack.push(w);
                }
            }
        }
        if comp.len() > 1 {
            comp.sort();
            out.push(comp);
        }
    }
    out
}

#[test]
fn the_agent_has_no_import_circles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mods = modules(&src);
    assert!(mods.len() > 50, "found only {} modules under {}", mods.len(), src.display());
    let g = graph(&mods);
    let found = circles(&g);
    let shown: Vec<String> = found
        .iter()
        .map(|c| {
            let edges: Vec<String> =
                c.iter().flat_map(|a| g[a].iter().filter(|b| c.contains(b)).map(move |b| format!("{a} -> {b}"))).collect();
            edges.join(", ")
        })
        .collect();
    assert!(found.is_empty(), "import circles:\n{}", shown.join("\n"));
}

#[test]
fn the_checker_finds_a_circle() {
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    g.insert("c".to_string(), BTreeSet::from(["a".to_string(), "d".to_string()]));
    assert_eq!(circles(&g), vec![vec!["a".to_string(), "b".to_string(), "c".to_string()]]);
    g.get_mut("c").unwrap().remove("a");
    assert!(circles(&g).is_empty());
}
