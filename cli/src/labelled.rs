//! Labelled examples from JSON Lines (`{"text", "label"}` or `{"text", "labels": [...]}`), CSV
//! or TSV (a `text` column and a `label` column), chosen by file extension.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, bail};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labelled {
    pub text: String,
    /// One label (single-label) or several (multi-label).
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledSet {
    pub examples: Vec<Labelled>,
    /// True when any example uses a `labels` list.
    pub multi_label: bool,
}

impl LabelledSet {
    /// Every label seen, sorted.
    pub fn label_names(&self) -> Vec<String> {
        let names: BTreeSet<&String> = self
            .examples
            .iter()
            .flat_map(|example| &example.labels)
            .collect();
        names.into_iter().cloned().collect()
    }
}

pub fn read(path: &Path) -> anyhow::Result<LabelledSet> {
    let extension = path
        .extension()
        .and_then(|extension| extension.to_str())
        .unwrap_or_default();
    let set = match extension {
        "jsonl" | "ndjson" | "json" => read_json_lines(path)?,
        "csv" => read_delimited(path, b',')?,
        "tsv" | "tab" => read_delimited(path, b'\t')?,
        other => bail!(
            "{}: unknown extension `{other}` (expected .jsonl, .csv or .tsv)",
            path.display()
        ),
    };
    if set.examples.is_empty() {
        bail!("{}: no labelled examples", path.display());
    }
    Ok(set)
}

fn read_json_lines(path: &Path) -> anyhow::Result<LabelledSet> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut set = LabelledSet {
        examples: Vec::new(),
        multi_label: false,
    };
    for (index, line) in text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
    {
        let at = || format!("{} line {}", path.display(), index + 1);
        let value: serde_json::Value = serde_json::from_str(line).with_context(at)?;
        let text = value["text"]
            .as_str()
            .with_context(|| format!("{}: no string `text`", at()))?
            .to_owned();
        let labels = match (&value["label"], &value["labels"]) {
            (serde_json::Value::String(label), _) => vec![label.clone()],
            (_, serde_json::Value::Array(labels)) => {
                set.multi_label = true;
                labels
                    .iter()
                    .map(|label| label.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .with_context(|| format!("{}: `labels` must hold strings", at()))?
            }
            _ => bail!("{}: needs a string `label` or a `labels` list", at()),
        };
        set.examples.push(Labelled { text, labels });
    }
    Ok(set)
}

fn read_delimited(path: &Path, delimiter: u8) -> anyhow::Result<LabelledSet> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .from_path(path)
        .with_context(|| format!("reading {}", path.display()))?;
    let headers = reader.headers()?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|header| header.trim() == name)
            .with_context(|| {
                format!(
                    "{}: no `{name}` column (columns: {})",
                    path.display(),
                    headers.iter().collect::<Vec<_>>().join(", ")
                )
            })
    };
    let (text_column, label_column) = (column("text")?, column("label")?);
    let mut examples = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("{} record {}", path.display(), index + 1))?;
        examples.push(Labelled {
            text: record.get(text_column).unwrap_or_default().to_owned(),
            labels: vec![
                record
                    .get(label_column)
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
            ],
        });
    }
    Ok(LabelledSet {
        examples,
        multi_label: false,
    })
}
