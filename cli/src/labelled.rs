//! Which columns of a labelled file hold the text and the labels, as flags (the reader is
//! `classifier::labelled`).

pub use classifier::labelled::{Columns, LabelledSet, read};

/// Which columns (or JSON fields) hold the text and the labels.
#[derive(Debug, Clone, clap::Args)]
pub struct ColumnArgs {
    /// The column (CSV/TSV) or field (JSON Lines) holding the text.
    #[arg(long, default_value = "text")]
    pub text_column: String,
    /// The column or field holding one label per example (JSON Lines also accepts a
    /// `labels` list, for multi-label).
    #[arg(long, default_value = "label")]
    pub label_column: String,
    /// Multi-label from yes/no columns, comma-separated: each is a label, on when its value
    /// is 1, true or yes.
    #[arg(long, value_delimiter = ',')]
    pub label_columns: Vec<String>,
}

impl ColumnArgs {
    pub fn columns(&self) -> Columns {
        Columns {
            text: self.text_column.clone(),
            label: self.label_column.clone(),
            flags: self.label_columns.clone(),
            group: None,
        }
    }
}
