//! The import rules of ARCHITECTURE.md that the compiler cannot check. Inside a layer, private
//! modules and `unreachable_pub` keep the files behind their folder's `pub use` surface; between
//! the layers at the crate root, every one of which is public, nothing in the language stops an
//! arrow pointing back up. This test reads `src/` and fails on one.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module and the ones it may name (besides itself). The order is the data flow:
/// config → state → serving and lifecycle → observability and admin → app → cli.
const MAY_USE: &[(&str, &[&str])] = &[
    // Leaves every layer may use.
    ("catalogue", &[]),
    ("inflight", &[]),
    ("crypto", &[]),
    // One HTTP/1.1 exchange (hyper's) for the probe, the ACME self-check and the admin client.
    ("http1", &[]),
    ("config", &["catalogue"]),
    ("state", &["config", "catalogue", "crypto", "testkit"]),
    (
        "serve",
        &["config", "state", "catalogue", "inflight", "crypto"],
    ),
    (
        "acme",
        &["config", "state", "catalogue", "http1", "testkit"],
    ),
    // The admin API's documents and client: below the probe (its node client) and the admin
    // API (its routes), which both use it.
    ("api", &["config", "state", "catalogue", "http1"]),
    // The probe derives DNS-01 values the way the ACME client does (`acme::txt_value`).
    (
        "probe",
        &[
            "config",
            "state",
            "catalogue",
            "acme",
            "api",
            "http1",
            "testkit",
        ],
    ),
    (
        "metrics",
        &["config", "state", "catalogue", "acme", "probe"],
    ),
    (
        "admin",
        &[
            "config",
            "state",
            "catalogue",
            "acme",
            "api",
            "probe",
            "metrics",
            "inflight",
        ],
    ),
    (
        "app",
        &[
            "config",
            "state",
            "catalogue",
            "serve",
            "acme",
            "probe",
            "metrics",
            "admin",
            "inflight",
            "crypto",
        ],
    ),
    (
        "cli",
        &[
            "config",
            "state",
            "catalogue",
            "acme",
            "api",
            "probe",
            "admin",
            "app",
        ],
    ),
    ("testkit", &[]),
    ("lib", &[]),
    ("main", &[]),
];

/// `crate::<name>` references outside comments, per top-level module.
fn imports() -> BTreeMap<String, BTreeSet<(String, String)>> {
    let mut found: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(&root).unwrap();
            let first = rel.components().next().unwrap().as_os_str();
            let layer = first.to_string_lossy().trim_end_matches(".rs").to_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            for line in text.lines() {
                let code = line.split("//").next().unwrap_or("");
                let mut rest = code;
                while let Some(at) = rest.find("crate::") {
                    rest = &rest[at + "crate::".len()..];
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                        .collect();
                    assert!(
                        !rest.starts_with('{'),
                        "{}: name each layer in its own `use crate::…` line: {line}",
                        rel.display()
                    );
                    if !name.is_empty() {
                        found
                            .entry(layer.clone())
                            .or_default()
                            .insert((name, rel.display().to_string()));
                    }
                }
            }
        }
    }
    found
}

#[test]
fn no_module_reaches_back_up_the_data_flow() {
    let rules: BTreeMap<&str, &[&str]> = MAY_USE.iter().copied().collect();
    let mut wrong = Vec::new();
    for (layer, uses) in imports() {
        let Some(allowed) = rules.get(layer.as_str()) else {
            wrong.push(format!(
                "src/{layer}: a top-level module missing from MAY_USE"
            ));
            continue;
        };
        for (name, file) in uses {
            if name != layer && !allowed.contains(&name.as_str()) {
                wrong.push(format!("src/{file} uses crate::{name}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the data flow:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_rules_name_every_top_level_module_once() {
    let names: Vec<&str> = MAY_USE.iter().map(|(n, _)| *n).collect();
    let unique: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(names.len(), unique.len());
    // An arrow back up in the table itself: a layer allowed a layer that is allowed it.
    for (layer, allowed) in MAY_USE {
        for other in *allowed {
            let back = MAY_USE.iter().find(|(n, _)| n == other).unwrap().1;
            assert!(
                !back.contains(layer),
                "{layer} and {other} may use each other"
            );
        }
    }
}
