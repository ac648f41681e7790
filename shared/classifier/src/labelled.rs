//! Labelled examples from JSON Lines, CSV or TSV (chosen by file extension): a text column and
//! either one label column, a `labels` list (JSON Lines), or several 0/1 label columns
//! (multi-label, `--label-columns`).

use std::path::Path;

use serde_json::Value;

/// Why a labelled file cannot be read, with the file and line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LabelledError(String);

fn error(message: impl Into<String>) -> LabelledError {
    LabelledError(message.into())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labelled {
    pub text: String,
    /// One label (single-label) or any number (multi-label).
    pub labels: Vec<String>,
    /// The example's value in the group column, when one is read (`tweetclf eval
    /// --group-column`: a capability, a source).
    pub group: Option<String>,
    /// The line of the file the example starts on (from 1), for errors about it.
    pub line: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledSet {
    pub examples: Vec<Labelled>,
    /// True when labels come from a `labels` list or from several label columns.
    pub multi_label: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    pub text: String,
    pub label: String,
    /// When not empty: multi-label, one yes/no column per label.
    pub flags: Vec<String>,
    /// A column every example must fill, read into [`Labelled::group`].
    pub group: Option<String>,
}

impl Default for Columns {
    fn default() -> Self {
        Self {
            text: "text".to_owned(),
            label: "label".to_owned(),
            flags: Vec::new(),
            group: None,
        }
    }
}

pub fn read(path: &Path, columns: &Columns) -> Result<LabelledSet, LabelledError> {
    let extension = path
        .extension()
        .and_then(|extension| extension.to_str())
        .unwrap_or_default();
    let set = match extension {
        "jsonl" | "ndjson" | "json" => read_json_lines(path, columns)?,
        "csv" => read_delimited(path, b',', columns)?,
        "tsv" | "tab" => read_delimited(path, b'\t', columns)?,
        other => {
            return Err(error(format!(
                "{}: unknown extension `{other}` (expected .jsonl, .csv or .tsv)",
                path.display()
            )));
        }
    };
    if set.examples.is_empty() {
        return Err(error(format!("{}: no labelled examples", path.display())));
    }
    Ok(set)
}

/// A yes/no cell: 1 / 0, true / false, yes / no (any case); anything else is refused.
fn flag(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "y" => Some(true),
        "0" | "false" | "no" | "n" => Some(false),
        _ => None,
    }
}

/// The labels whose flag is on, or an error naming the column and its value.
fn flagged(
    flags: &[String],
    mut value_of: impl FnMut(&str) -> Option<String>,
) -> Result<Vec<String>, String> {
    let mut labels = Vec::new();
    for name in flags {
        let value = value_of(name).ok_or_else(|| format!("no `{name}` value"))?;
        match flag(&value) {
            Some(true) => labels.push(name.clone()),
            Some(false) => {}
            None => {
                return Err(format!(
                    "`{name}` is `{value}`, not 1/0, true/false or yes/no"
                ));
            }
        }
    }
    Ok(labels)
}

fn read_json_lines(path: &Path, columns: &Columns) -> Result<LabelledSet, LabelledError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| error(format!("reading {}: {source}", path.display())))?;
    let mut set = LabelledSet {
        examples: Vec::new(),
        multi_label: !columns.flags.is_empty(),
    };
    for (index, line) in text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
    {
        let at = || format!("{} line {}", path.display(), index + 1);
        let value: Value =
            serde_json::from_str(line).map_err(|source| error(format!("{}: {source}", at())))?;
        let text = value[&columns.text]
            .as_str()
            .ok_or_else(|| error(format!("{}: no string `{}`", at(), columns.text)))?
            .to_owned();
        let labels = if columns.flags.is_empty() {
            match (&value[&columns.label], &value["labels"]) {
                (Value::String(label), _) if !label.trim().is_empty() => {
                    vec![label.trim().to_owned()]
                }
                (_, Value::Array(labels)) => {
                    set.multi_label = true;
                    labels
                        .iter()
                        .map(|label| label.as_str().map(str::to_owned))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| error(format!("{}: `labels` must hold strings", at())))?
                }
                _ => {
                    return Err(error(format!(
                        "{}: needs a non-empty string `{}` or a `labels` list",
                        at(),
                        columns.label
                    )));
                }
            }
        } else {
            flagged(&columns.flags, |name| match &value[name] {
                Value::Bool(on) => Some(on.to_string()),
                Value::Number(number) => Some(number.to_string()),
                Value::String(text) => Some(text.clone()),
                _ => None,
            })
            .map_err(|message| error(format!("{}: {message}", at())))?
        };
        let group = match &columns.group {
            None => None,
            Some(name) => Some(
                value[name]
                    .as_str()
                    .filter(|group| !group.trim().is_empty())
                    .ok_or_else(|| error(format!("{}: no string `{name}`", at())))?
                    .trim()
                    .to_owned(),
            ),
        };
        set.examples.push(Labelled {
            text,
            labels,
            group,
            line: index as u64 + 1,
        });
    }
    Ok(set)
}

fn read_delimited(
    path: &Path,
    delimiter: u8,
    columns: &Columns,
) -> Result<LabelledSet, LabelledError> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .from_path(path)
        .map_err(|source| error(format!("reading {}: {source}", path.display())))?;
    let headers = reader
        .headers()
        .map_err(|source| error(format!("reading {}: {source}", path.display())))?
        .clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|header| header.trim() == name)
            .ok_or_else(|| {
                error(format!(
                    "{}: no `{name}` column (columns: {})",
                    path.display(),
                    headers.iter().collect::<Vec<_>>().join(", ")
                ))
            })
    };
    let text_column = column(&columns.text)?;
    let label_column = if columns.flags.is_empty() {
        Some(column(&columns.label)?)
    } else {
        None
    };
    let flag_columns = columns
        .flags
        .iter()
        .map(|name| Ok((name.clone(), column(name)?)))
        .collect::<Result<Vec<_>, LabelledError>>()?;
    let group_column = columns.group.as_deref().map(column).transpose()?;
    let mut examples = Vec::new();
    for record in reader.records() {
        let record =
            record.map_err(|source| error(format!("reading {}: {source}", path.display())))?;
        let line = record.position().map_or(0, csv::Position::line);
        let at = || format!("{} line {line}", path.display());
        let labels = match label_column {
            Some(label_column) => {
                let label = record.get(label_column).unwrap_or_default().trim();
                if label.is_empty() {
                    return Err(error(format!("{}: empty `{}`", at(), columns.label)));
                }
                vec![label.to_owned()]
            }
            None => flagged(&columns.flags, |name| {
                flag_columns
                    .iter()
                    .find(|(flag_name, _)| flag_name == name)
                    .and_then(|(_, position)| record.get(*position))
                    .map(str::to_owned)
            })
            .map_err(|message| error(format!("{}: {message}", at())))?,
        };
        let group = match group_column {
            None => None,
            Some(position) => {
                let group = record.get(position).unwrap_or_default().trim();
                if group.is_empty() {
                    let name = columns.group.as_deref().unwrap_or_default();
                    return Err(error(format!("{}: empty `{name}`", at())));
                }
                Some(group.to_owned())
            }
        };
        examples.push(Labelled {
            text: record.get(text_column).unwrap_or_default().to_owned(),
            labels,
            group,
            line,
        });
    }
    Ok(LabelledSet {
        examples,
        multi_label: !columns.flags.is_empty(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, content: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(name);
        std::fs::write(&path, content).expect("write");
        (dir, path)
    }

    fn texts_and_labels(set: &LabelledSet) -> Vec<(&str, &[String])> {
        set.examples
            .iter()
            .map(|example| (example.text.as_str(), example.labels.as_slice()))
            .collect()
    }

    fn lines(set: &LabelledSet) -> Vec<u64> {
        set.examples.iter().map(|example| example.line).collect()
    }

    #[test]
    fn single_labels_from_every_format_and_named_columns() {
        let (_dir, jsonl) = file(
            "a.jsonl",
            "{\"text\": \"hi\", \"label\": \"x\"}\n\n{\"text\": \"yo\", \"label\": \"y\"}\n",
        );
        let (_dir2, tsv) = file("b.tsv", "body\tmood\nhi\tx\nyo\ty\n");
        let from_jsonl = read(&jsonl, &Columns::default()).expect("jsonl");
        let named = Columns {
            text: "body".to_owned(),
            label: "mood".to_owned(),
            ..Columns::default()
        };
        let from_tsv = read(&tsv, &named).expect("tsv");
        assert_eq!(texts_and_labels(&from_jsonl), texts_and_labels(&from_tsv));
        assert_eq!(lines(&from_jsonl), [1, 3], "blank lines are counted");
        assert_eq!(lines(&from_tsv), [2, 3], "the header is line 1");
        assert!(!from_tsv.multi_label);
    }

    #[test]
    fn multi_labels_from_a_list_or_from_yes_no_columns() {
        let (_dir, jsonl) = file(
            "a.jsonl",
            "{\"text\": \"a\", \"labels\": [\"fire\", \"aid\"]}\n{\"text\": \"b\", \"labels\": []}\n",
        );
        let (_dir2, csv) = file("b.csv", "message,fire,aid,water\na,1,1,0\nb,0,0,no\n");
        let flags = Columns {
            text: "message".to_owned(),
            flags: vec!["fire".to_owned(), "aid".to_owned(), "water".to_owned()],
            ..Columns::default()
        };
        let from_list = read(&jsonl, &Columns::default()).expect("jsonl");
        let from_columns = read(&csv, &flags).expect("csv");
        assert!(from_list.multi_label && from_columns.multi_label);
        assert_eq!(
            texts_and_labels(&from_list),
            texts_and_labels(&from_columns)
        );
        assert!(from_columns.examples[1].labels.is_empty());
    }

    #[test]
    fn a_group_column_is_read_when_asked_for_and_must_be_filled() {
        let grouped = Columns {
            group: Some("capability".to_owned()),
            ..Columns::default()
        };
        let (_dir, jsonl) = file(
            "a.jsonl",
            "{\"text\": \"a\", \"label\": \"x\", \"capability\": \"negation\"}\n",
        );
        let (_dir2, csv) = file("b.csv", "text,label,capability\na,x,negation\n");
        for path in [&jsonl, &csv] {
            let set = read(path, &grouped).expect("grouped");
            assert_eq!(set.examples[0].group.as_deref(), Some("negation"));
            let set = read(path, &Columns::default()).expect("ungrouped");
            assert_eq!(set.examples[0].group, None);
        }
        let (_dir3, jsonl) = file("c.jsonl", "{\"text\": \"a\", \"label\": \"x\"}\n");
        let (_dir4, csv) = file("d.csv", "text,label,capability\na,x,\n");
        for path in [&jsonl, &csv] {
            let error = read(path, &grouped).expect_err("no group");
            assert!(error.to_string().contains("`capability`"), "{error}");
        }
    }

    #[test]
    fn bad_rows_are_refused_with_their_place() {
        let (_dir, csv) = file("a.csv", "text,label\nfine,x\nblank,\n");
        let error = read(&csv, &Columns::default()).expect_err("empty label");
        assert!(
            error.to_string().contains("a.csv line 3: empty `label`"),
            "{error}"
        );

        let (_dir2, csv) = file("b.csv", "text,fire\na,maybe\n");
        let flags = Columns {
            flags: vec!["fire".to_owned()],
            ..Columns::default()
        };
        let error = read(&csv, &flags).expect_err("not a flag");
        assert!(error.to_string().contains("`fire` is `maybe`"), "{error}");

        let (_dir3, csv) = file("c.csv", "text,fire\na,1\n");
        let missing = Columns {
            flags: vec!["fire".to_owned(), "aid".to_owned()],
            ..Columns::default()
        };
        let error = read(&csv, &missing).expect_err("missing column");
        assert!(error.to_string().contains("no `aid` column"), "{error}");

        let (_dir4, jsonl) = file("d.jsonl", "{\"text\": \"a\"}\n");
        let error = read(&jsonl, &Columns::default()).expect_err("no label");
        assert!(error.to_string().contains("line 1"), "{error}");
    }
}
