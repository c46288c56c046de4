//! The module dependency rule, checked on the source: every `crate::`/`super::`/`self::` path
//! and every `use` of a child module is resolved to the file that defines it, then
//!
//! 1. no file imports, directly or through others, a file that imports it (no import circle),
//!    and
//! 2. no module imports a module above it in the layer order of `LAYERS` (the order of the
//!    design: server → protocol → api → group/txn → log → tier → catalog → leaves).
//!
//! Test code (`#[cfg(test)]` items and the `*tests.rs` files they include) is left out: a test
//! may reach anywhere. A new top-level module must be given a layer here.

#![allow(clippy::disallowed_methods)] // a test (or benchmark) reads and writes its files directly

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules from the top floor down; a module may import only modules on lower floors.
/// Leaves (floor 0) may import each other, as long as no circle forms.
const LAYERS: &[(&str, u32)] = &[
    ("broker", 9),
    ("server", 8),
    ("api", 7),
    ("protocol", 6),
    ("group", 5),
    ("txn", 5),
    ("share", 5),
    ("log", 4),
    ("journal", 3),
    ("tier", 2),
    ("security", 2),
    ("cluster", 3),
    ("catalog", 1),
    ("telemetry", 1),
    ("config", 0),
    ("format", 0),
    ("fs", 0),
    ("clock", 0),
    ("backoff", 0),
    ("metrics", 0),
    ("alloc", 0),
    ("etcd", 0),
    ("shard", 0),
];

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Path, // ::
    Open,
    Close,
    Semi,
    Comma,
    Hash,
    Other(char),
}

/// Tokens of Rust source without comments, strings and character literals.
fn lex(src: &str) -> Vec<Tok> {
    let b: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == '/' && b.get(i + 1) == Some(&'/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && b.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == 'r' && (b.get(i + 1) == Some(&'#') || b.get(i + 1) == Some(&'"')) {
            // raw string r#"…"#
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(Tok::Ident("r".into()));
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == '"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            i = j;
        } else if c == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
        } else if c == '\'' {
            // a char literal ('x', '\n', '\u{…}') or a lifetime ('a)
            if b.get(i + 1) == Some(&'\\') {
                i += 2;
                while i < b.len() && b[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if b.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(b[start..i].iter().collect()));
        } else if c == ':' && b.get(i + 1) == Some(&':') {
            out.push(Tok::Path);
            i += 2;
        } else {
            out.push(match c {
                '{' => Tok::Open,
                '}' => Tok::Close,
                ';' => Tok::Semi,
                ',' => Tok::Comma,
                '#' => Tok::Hash,
                c if c.is_whitespace() => {
                    i += 1;
                    continue;
                }
                c => Tok::Other(c),
            });
            i += 1;
        }
    }
    out
}

/// Drops every item marked `#[cfg(test)]`.
fn without_tests(toks: Vec<Tok>) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut i = 0;
    let is_cfg_test = |t: &[Tok]| {
        t.len() >= 7
            && t[0] == Tok::Hash
            && t[1] == Tok::Other('[')
            && t[2] == Tok::Ident("cfg".into())
            && t[3] == Tok::Other('(')
            && t[4] == Tok::Ident("test".into())
            && t[5] == Tok::Other(')')
            && t[6] == Tok::Other(']')
    };
    while i < toks.len() {
        if !is_cfg_test(&toks[i..]) {
            out.push(toks[i].clone());
            i += 1;
            continue;
        }
        i += 7;
        // the item: up to a `;` at depth 0 or the close of its first block
        let mut depth = 0i32;
        let mut brackets = 0i32;
        while i < toks.len() {
            match &toks[i] {
                Tok::Other('[') => brackets += 1,
                Tok::Other(']') => brackets -= 1,
                Tok::Open => depth += 1,
                Tok::Close => {
                    depth -= 1;
                    if depth == 0 {
                        i += 1;
                        break;
                    }
                }
                Tok::Semi if depth == 0 && brackets == 0 => {
                    i += 1;
                    break;
                }
                _ => {}
            }
            i += 1;
        }
    }
    out
}

/// Expands a `use` tree starting at `toks[i]` into whole paths; returns the index after it.
fn use_tree(toks: &[Tok], mut i: usize, prefix: &[String], out: &mut Vec<Vec<String>>) -> usize {
    let mut path = prefix.to_vec();
    while i < toks.len() {
        match &toks[i] {
            Tok::Ident(s) if s == "as" => {
                i += 2; // the alias
            }
            Tok::Ident(s) => {
                path.push(s.clone());
                i += 1;
            }
            Tok::Path => i += 1,
            Tok::Open => {
                i += 1;
                loop {
                    i = use_tree(toks, i, &path, out);
                    match toks.get(i) {
                        Some(Tok::Comma) => i += 1,
                        Some(Tok::Close) => {
                            i += 1;
                            break;
                        }
                        _ => break,
                    }
                    if toks.get(i) == Some(&Tok::Close) {
                        i += 1;
                        break;
                    }
                }
                return i;
            }
            _ => break,
        }
    }
    if path.len() > prefix.len() {
        out.push(path);
    }
    i
}

/// Every path a file names: its `use` trees, and `crate::`/`super::`/`self::` paths elsewhere.
fn paths(toks: &[Tok]) -> Vec<(Vec<String>, bool)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if toks[i] == Tok::Ident("use".into()) {
            let mut trees = Vec::new();
            i = use_tree(toks, i + 1, &[], &mut trees);
            out.extend(trees.into_iter().map(|p| (p, true)));
            continue;
        }
        if let Tok::Ident(s) = &toks[i] {
            let after_path = i > 0 && toks[i - 1] == Tok::Path;
            if !after_path && (s == "crate" || s == "super" || s == "self") {
                let mut p = vec![s.clone()];
                let mut j = i + 1;
                while toks.get(j) == Some(&Tok::Path) {
                    match toks.get(j + 1) {
                        Some(Tok::Ident(n)) => {
                            p.push(n.clone());
                            j += 2;
                        }
                        _ => break,
                    }
                }
                if p.len() > 1 {
                    out.push((p, false));
                }
                i = j;
                continue;
            }
        }
        i += 1;
    }
    out
}

struct Source {
    /// `src/log/partition.rs` → `["log", "partition"]`; `src/log/mod.rs` → `["log"]`.
    module: Vec<String>,
    toks: Vec<Tok>,
}

fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("file name");
    let stem = last.trim_end_matches(".rs").to_string();
    if stem != "mod" {
        parts.push(stem);
    }
    parts
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The file defining the longest prefix of `path` (a module path), if any.
fn resolve(files: &BTreeMap<Vec<String>, PathBuf>, path: &[String]) -> Option<PathBuf> {
    (1..=path.len())
        .rev()
        .find_map(|n| files.get(&path[..n]).cloned())
}

#[test]
fn no_circles_and_no_module_imports_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    collect(&src, &mut all);
    let mut sources: BTreeMap<PathBuf, Source> = BTreeMap::new();
    let mut files: BTreeMap<Vec<String>, PathBuf> = BTreeMap::new();
    for f in all {
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        let is_test = name.ends_with("tests.rs");
        if is_test || name == "main.rs" || name == "lib.rs" && f.parent() == Some(src.as_path()) {
            continue;
        }
        let text = std::fs::read_to_string(&f).expect("read");
        let module = module_path(&src, &f);
        files.insert(module.clone(), f.clone());
        sources.insert(
            f,
            Source {
                module,
                toks: without_tests(lex(&text)),
            },
        );
    }
    let layer = |m: &str| LAYERS.iter().find(|(n, _)| *n == m).map(|(_, l)| *l);
    let mut problems = Vec::new();
    let mut edges: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for (file, s) in &sources {
        let top = s.module[0].clone();
        let Some(my_layer) = layer(&top) else {
            problems.push(format!(
                "module `{top}` has no layer in tests/layers.rs LAYERS"
            ));
            continue;
        };
        for (p, in_use) in paths(&s.toks) {
            let abs: Vec<String> = match p[0].as_str() {
                "crate" => p[1..].to_vec(),
                "super" => {
                    let mut base = s.module.clone();
                    let mut rest = &p[..];
                    while rest.first().map(String::as_str) == Some("super") {
                        base.pop();
                        rest = &rest[1..];
                    }
                    base.extend_from_slice(rest);
                    base
                }
                "self" => {
                    let mut base = s.module.clone();
                    base.extend_from_slice(&p[1..]);
                    base
                }
                // `use child::X` in a module with a child of that name
                first if in_use => {
                    let mut child = s.module.clone();
                    child.push(first.to_string());
                    if !files.contains_key(&child) {
                        continue;
                    }
                    let mut base = s.module.clone();
                    base.extend_from_slice(&p);
                    base
                }
                _ => continue,
            };
            let Some(target) = resolve(&files, &abs) else {
                continue;
            };
            if &target == file {
                continue;
            }
            let their_top = abs[0].as_str();
            if their_top != top {
                match layer(their_top) {
                    Some(l) if l < my_layer || (l == 0 && my_layer == 0) => {}
                    Some(_) => problems.push(format!(
                        "{} imports {} (`{}`): `{top}` may not import `{their_top}`, which is not below it",
                        file.display(),
                        target.display(),
                        p.join("::")
                    )),
                    None => problems.push(format!("module `{their_top}` has no layer")),
                }
            }
            edges.entry(file.clone()).or_default().insert(target);
        }
    }
    // circles between files: depth-first search for a back edge
    fn visit(
        f: &PathBuf,
        edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        state: &mut BTreeMap<PathBuf, u8>,
        stack: &mut Vec<PathBuf>,
        found: &mut Vec<String>,
    ) {
        state.insert(f.clone(), 1);
        stack.push(f.clone());
        for t in edges.get(f).into_iter().flatten() {
            match state.get(t).copied().unwrap_or(0) {
                0 => visit(t, edges, state, stack, found),
                1 => {
                    let at = stack.iter().position(|x| x == t).unwrap_or(0);
                    let circle: Vec<String> = stack[at..]
                        .iter()
                        .chain(std::iter::once(t))
                        .map(|p| p.display().to_string())
                        .collect();
                    found.push(format!("import circle: {}", circle.join(" -> ")));
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(f.clone(), 2);
    }
    let mut state = BTreeMap::new();
    for f in sources.keys() {
        if state.get(f).copied().unwrap_or(0) == 0 {
            visit(f, &edges, &mut state, &mut Vec::new(), &mut problems);
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checker_sees_circles_and_upward_imports() {
    let toks = without_tests(lex(
        "use crate::log::{partition::Partition, LogError as E};\n// crate::api::x\nfn f() { let s = \"crate::api\"; crate::tier::Tier::new(); }\n#[cfg(test)]\nmod tests { use crate::api::Handler; }\n",
    ));
    let got: Vec<String> = paths(&toks)
        .into_iter()
        .map(|(p, _)| p.join("::"))
        .collect();
    assert_eq!(
        got,
        vec![
            "crate::log::partition::Partition",
            "crate::log::LogError",
            "crate::tier::Tier::new"
        ]
    );
}
