//! The README is what automation is built on: its lists of metrics, label values and audit
//! decisions are held to what the code emits, and it points at nothing outside the repository.

use syncjob_facade::audit::Decision;
use syncjob_facade::telemetry::FAMILIES;

const README: &str = include_str!("../README.md");

/// The rows of the table whose header starts with `header`, as cells.
fn table(header: &str) -> Vec<Vec<String>> {
    let start = README
        .find(header)
        .unwrap_or_else(|| panic!("a table headed {header}"));
    README[start..]
        .lines()
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            line.trim_matches('|')
                .split('|')
                .map(|cell| cell.trim().to_owned())
                .collect()
        })
        .collect()
}

#[test]
fn the_metrics_table_lists_exactly_the_families_labels_and_values_emitted() {
    let rows = table("| metric | type |");
    let documented: Vec<&str> = rows.iter().map(|r| r[0].trim_matches('`')).collect();
    let emitted: Vec<&str> = FAMILIES.iter().map(|f| f.name).collect();
    assert_eq!(documented, emitted);
    for (row, family) in rows.iter().zip(FAMILIES) {
        assert_eq!(row[1], family.kind, "{}", family.name);
        let labels: Vec<(String, Option<Vec<String>>)> = row[2]
            .split("; ")
            .filter(|cell| !cell.is_empty())
            .map(|cell| {
                let name = cell.split('`').nth(1).unwrap().to_owned();
                let values = cell
                    .split_once("`: ")
                    .map(|(_, values)| values.split(", ").map(str::to_owned).collect::<Vec<_>>());
                (name, values)
            })
            .collect();
        let expected: Vec<(String, Option<Vec<String>>)> = family
            .labels
            .iter()
            .map(|(name, values)| {
                (
                    (*name).to_owned(),
                    values.map(|v| v.iter().map(|s| (*s).to_owned()).collect()),
                )
            })
            .collect();
        assert_eq!(labels, expected, "{}", family.name);
    }
}

#[test]
fn the_audit_decisions_are_exactly_those_the_code_records() {
    let documented: Vec<String> = table("| decision | meaning |")
        .iter()
        .map(|r| r[0].trim_matches('`').to_owned())
        .collect();
    let recorded: Vec<&str> = Decision::ALL.iter().map(|d| d.as_str()).collect();
    assert_eq!(documented, recorded);
}

#[test]
fn the_readme_names_no_document_outside_the_repository() {
    for outside in ["DESIGN.md", "../shared", "STYLE.md"] {
        assert!(!README.contains(outside), "the README refers to {outside}");
    }
}
