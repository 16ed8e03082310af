//! Every relative link in README.md, BENCHMARKS.md and docs/*.md leads somewhere: the file
//! exists, and a `#fragment` names a heading of it (GitHub's anchors). The README is the
//! front door and the guide is split over docs/, so a moved section must not leave a link
//! pointing at nothing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The documents a reader follows links in.
fn documents() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut all = vec![root.join("README.md"), root.join("BENCHMARKS.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    all.extend(docs);
    all
}

/// The text of a Markdown file outside fenced code blocks and inline code.
fn prose(markdown: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Drop inline code spans, keeping a link whose label is code: [`x`](y).
        let mut in_code = false;
        for (i, part) in line.split('`').enumerate() {
            if i > 0 {
                in_code = !in_code;
            }
            if in_code {
                out.push_str("code");
            } else {
                out.push_str(part);
            }
        }
        out.push('\n');
    }
    out
}

/// The targets of `[label](target)` links.
fn links(markdown: &str) -> Vec<String> {
    let text = prose(markdown);
    let mut found = Vec::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        if let Some(end) = after.find(')') {
            found.push(after[..end].trim().to_owned());
        }
        rest = after;
    }
    found
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of every heading of a Markdown file.
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut fenced = false;
    let mut out = BTreeSet::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            out.insert(anchor(line.trim_start_matches('#')));
        }
    }
    out
}

#[test]
fn every_relative_link_in_the_readme_and_the_docs_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for document in documents() {
        let text = std::fs::read_to_string(&document).unwrap();
        for target in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, fragment) = target.split_once('#').unwrap_or((&target, ""));
            let file = if path.is_empty() {
                document.clone()
            } else {
                document.parent().unwrap().join(path)
            };
            if !file.exists() {
                broken.push(format!("{}: {target} (no such file)", document.display()));
                continue;
            }
            if !fragment.is_empty() {
                let headings = anchors(&std::fs::read_to_string(&file).unwrap());
                if !headings.contains(fragment) {
                    broken.push(format!(
                        "{}: {target} (no such heading)",
                        document.display()
                    ));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert!(
        checked > 30,
        "only {checked} links checked: is the parser still finding them?"
    );
}

#[test]
fn the_readme_is_a_front_door_with_the_guide_one_link_away() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(readme.lines().count() <= 250, "README.md is a front door");
    // Within its first screen, a new user finds how to record, verify, prune and search.
    let first_screen: String = readme.lines().take(40).collect::<Vec<_>>().join("\n");
    for (task, doc) in [
        ("record", "docs/recording.md"),
        ("verify", "docs/tamper-evidence.md"),
        ("prune", "docs/lifecycle.md"),
        ("search", "docs/cli.md"),
    ] {
        let row = first_screen
            .lines()
            .find(|l| l.contains(task) && l.contains(&format!("]({doc})")));
        assert!(
            row.is_some(),
            "no link for '{task}' to {doc} in the first screen"
        );
    }
    // The two commands the README promises.
    assert!(readme.contains("cargo run --example reasoning"));
    assert!(readme.contains("cargo test"));
}

#[test]
fn anchors_are_made_as_github_makes_them() {
    assert_eq!(
        anchor(" Backups: never `cp` a live database"),
        "backups-never-cp-a-live-database"
    );
    assert_eq!(
        anchor("Erasure: a person's data goes, and the rest still proves itself"),
        "erasure-a-persons-data-goes-and-the-rest-still-proves-itself"
    );
    assert_eq!(
        links("see [a](x.md#y) and `[b](not-a-link)`\n```\n[c](code)\n```\n[`d`](e.md)"),
        ["x.md#y", "e.md"]
    );
}
