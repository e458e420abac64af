//! The server's layout holds: no module imports from a module above it (the
//! layers of `docs/ARCHITECTURE.md`), and no two files of `server/src/`
//! import each other in a loop, directly or through others.
//!
//! "Imports" are what a reader follows: `use crate::…`, `use super::…`,
//! `use self::…` (with nested braces), paths written inline (`crate::a::b`,
//! `super::c`), and a parent's `child::…` paths to a module it declares.
//! Each resolves to the file that defines the longest prefix of its path.
//! Comments, string literals and `#[cfg(test)] mod tests` blocks are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level modules, bottom to top; a module may import only from lower
/// ranks (one rank may hold several modules that do not import each other).
const LAYERS: &[&[&str]] = &[
    &["ids"],
    &["config", "files", "metrics"],
    &["tls"],
    &["frames", "auth", "store", "transport", "redis_server"],
    &["blob", "notify", "search", "audit", "backup"],
    &["shard"],
    &["presence"],
    &["conversation"],
    &["retention", "transcript"],
    &["command"],
    &["session", "api"],
    &["health"],
    &["web", "cluster"],
    &["node"],
];

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// Source files under `dir`, by path relative to it.
fn sources(dir: &Path, base: &Path, out: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).expect("read server/src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            sources(&path, base, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(base).expect("under src").to_string_lossy().replace('\\', "/");
            out.insert(rel, strip(&std::fs::read_to_string(&path).expect("read source")));
        }
    }
}

/// The code without comments, string contents and the unit-test module.
fn strip(src: &str) -> String {
    // The unit-test module (its `super` is the file itself, not its parent).
    let test_mod = ["mod tests", "pub(crate) mod tests", "pub(super) mod tests", "pub mod tests"]
        .map(|m| format!("#[cfg(test)]\n{m}"));
    let src = match test_mod.iter().filter_map(|m| src.find(m)).min() {
        Some(i) => &src[..i],
        None => src,
    };
    let mut out = String::with_capacity(src.len());
    let mut chars = src.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '"' => {
                out.push('"');
                let mut escaped = false;
                for c in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        break;
                    }
                }
                out.push('"');
            }
            _ => out.push(c),
        }
    }
    out
}

/// A file's module path (`shard/mod.rs` → `[shard]`, `lib.rs` → `[]`).
fn module_path(file: &str) -> Vec<String> {
    let mut parts: Vec<String> = file.trim_end_matches(".rs").split('/').map(str::to_string).collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib" || p == "main") {
        parts.pop();
    }
    parts
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths one `use` tree names, with nested braces expanded.
fn expand(prefix: &[String], tree: &str, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    if let Some(inner) = tree.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
        let (mut depth, mut start) = (0, 0);
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(prefix, &inner[start..i], out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand(prefix, &inner[start..], out);
        return;
    }
    match tree.split_once("::") {
        Some((head, rest)) => {
            let mut p = prefix.to_vec();
            p.push(head.trim().to_string());
            expand(&p, rest, out);
        }
        None if tree.is_empty() || tree == "self" || tree == "*" => out.push(prefix.to_vec()),
        None => {
            let mut p = prefix.to_vec();
            p.push(tree.split(" as ").next().unwrap_or(tree).trim().to_string());
            out.push(p);
        }
    }
}

/// Every module path `code` (of the file at `me`) refers to.
fn references(me: &[String], code: &str) -> Vec<Vec<String>> {
    let parent: Vec<String> = me.iter().take(me.len().saturating_sub(1)).cloned().collect();
    let base = |kw: &str| match kw {
        "crate" => Vec::new(),
        "super" => parent.clone(),
        _ => me.to_vec(),
    };
    let mut out = Vec::new();
    // `use` statements.
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let before_ok = i == 0 || !is_ident(rest[..i].chars().last().unwrap_or(' '));
        let after = &rest[i + 4..];
        let end = after.find(';').unwrap_or(after.len());
        if before_ok {
            for kw in ["crate", "super", "self"] {
                if let Some(tree) = after[..end].trim().strip_prefix(kw).and_then(|t| t.strip_prefix("::")) {
                    expand(&base(kw), tree, &mut out);
                }
            }
        }
        rest = &after[end.min(after.len())..];
    }
    // Inline paths.
    for kw in ["crate::", "super::"] {
        for (i, _) in code.match_indices(kw) {
            if i > 0 && is_ident(code[..i].chars().last().unwrap_or(' ')) {
                continue;
            }
            let tail: String = code[i + kw.len()..].chars().take_while(|c| is_ident(*c) || *c == ':').collect();
            if tail.is_empty() {
                // `super::{a, b}`: a use tree, read above.
                continue;
            }
            let mut p = base(kw.trim_end_matches("::"));
            p.extend(tail.split("::").filter(|s| !s.is_empty()).map(str::to_string));
            out.push(p);
        }
    }
    // A parent's paths into the children it declares.
    for (i, _) in code.match_indices("mod ") {
        let name: String = code[i + 4..].chars().take_while(|c| is_ident(*c)).collect();
        let declared = code[i + 4 + name.len()..].trim_start().starts_with(';');
        if name.is_empty() || !declared {
            continue;
        }
        let used = code.match_indices(&format!("{name}::")).any(|(j, _)| {
            let prev = code[..j].chars().last().unwrap_or(' ');
            !is_ident(prev) && prev != ':'
        });
        if used {
            let mut p = me.to_vec();
            p.push(name);
            out.push(p);
        }
    }
    out
}

#[test]
fn no_import_loops_and_no_upward_imports() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    sources(&src, &src, &mut files);
    let by_module: BTreeMap<Vec<String>, String> = files.keys().map(|f| (module_path(f), f.clone())).collect();
    let resolve = |path: &[String]| {
        (1..=path.len()).rev().find_map(|n| by_module.get(&path[..n]).cloned()).filter(|f| f != "lib.rs")
    };
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, code) in &files {
        let me = module_path(file);
        let targets = references(&me, code).iter().filter_map(|p| resolve(p)).filter(|t| t != file).collect();
        edges.insert(file.clone(), targets);
    }

    let mut upward = Vec::new();
    for (file, targets) in &edges {
        let Some(from) = module_path(file).first().cloned() else { continue };
        for t in targets {
            let Some(to) = module_path(t).first().cloned() else { continue };
            if from == to {
                continue;
            }
            match (rank(&from), rank(&to)) {
                (Some(a), Some(b)) if b < a => {}
                _ => upward.push(format!("{file} -> {t}")),
            }
        }
    }
    assert!(upward.is_empty(), "imports from a module at the same or a higher layer (see LAYERS):\n{upward:#?}");

    // Depth-first search for cycles among files.
    fn visit(
        f: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
        cycles: &mut Vec<String>,
    ) {
        state.insert(f.to_string(), 1);
        stack.push(f.to_string());
        for t in edges.get(f).into_iter().flatten() {
            match state.get(t).copied() {
                Some(1) => {
                    let from = stack.iter().position(|s| s == t).unwrap_or(0);
                    cycles.push(format!("{} -> {t}", stack[from..].join(" -> ")));
                }
                None => visit(t, edges, state, stack, cycles),
                _ => {}
            }
        }
        stack.pop();
        state.insert(f.to_string(), 2);
    }
    let (mut state, mut cycles) = (BTreeMap::new(), Vec::new());
    for f in edges.keys() {
        if !state.contains_key(f) {
            visit(f, &edges, &mut state, &mut Vec::new(), &mut cycles);
        }
    }
    assert!(cycles.is_empty(), "files that import each other in a loop:\n{cycles:#?}");
    assert!(edges.len() > 30 && edges.values().map(BTreeSet::len).sum::<usize>() > 100, "the scan found the code");
}

#[test]
fn the_scanner_sees_what_a_reader_follows() {
    let me = vec!["session".to_string(), "read".to_string()];
    let code = strip(
        "use super::state::{Session, err};\nuse crate::command::{self, message};\n// use crate::node;\n\
         fn f() { crate::presence::query(); let s = \"crate::web\"; }\nmod child;\nfn g() { child::h(); }",
    );
    let refs = references(&me, &code);
    let names: Vec<String> = refs.iter().map(|p| p.join("::")).collect();
    for want in ["session::state::Session", "command", "command::message", "presence::query", "session::read::child"] {
        assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
    }
    assert!(!names.iter().any(|n| n.starts_with("node") || n.starts_with("web")), "comments and strings: {names:?}");
}
