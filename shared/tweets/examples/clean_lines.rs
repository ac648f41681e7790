//! The default cleaning (`clean-v2`, emoji described) of each line's text: reads JSON Lines
//! with a `text` field on standard input and writes each cleaned text as a JSON string, one a
//! line. The sentiment supplement's preparation compares texts in this form, so a supplement
//! tweet that differs from a capability-suite tweet only in what cleaning erases is caught.
//!
//!     cargo run -p tweets --example clean_lines < data/capabilities/sentiment.jsonl

use std::io::{BufRead, Write};

use tweets::{CleanConfig, clean_text};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = CleanConfig::default();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in std::io::stdin().lock().lines() {
        let value: serde_json::Value = serde_json::from_str(&line?)?;
        let text = value["text"]
            .as_str()
            .ok_or("a line without a string `text`")?;
        writeln!(
            out,
            "{}",
            serde_json::to_string(&clean_text(text, &config))?
        )?;
    }
    Ok(())
}
