//! The table people read after a run.

use std::io::{self, Write};

use tweets::Report;

pub fn write_report(out: &mut impl Write, report: &Report) -> io::Result<()> {
    let share = |count: u64| {
        if report.records_in == 0 {
            0.0
        } else {
            100.0 * count as f64 / report.records_in as f64
        }
    };
    writeln!(out, "  records in    {:>8}", report.records_in)?;
    writeln!(
        out,
        "  kept          {:>8}  {:>5.1}%",
        report.kept,
        share(report.kept)
    )?;
    let filtered = report.filtered_total();
    writeln!(
        out,
        "  filtered      {:>8}  {:>5.1}%",
        filtered,
        share(filtered)
    )?;
    for (reason, count) in &report.filtered {
        writeln!(out, "    {:<16}{:>6}", reason.as_str(), count)?;
    }
    writeln!(
        out,
        "  rejected      {:>8}  {:>5.1}%",
        report.rejected,
        share(report.rejected)
    )?;
    if !report.warnings.is_empty() {
        writeln!(out, "  kept, with a warning")?;
        for (warning, count) in &report.warnings {
            writeln!(out, "    {:<22}{:>6}", warning.as_str(), count)?;
        }
    }
    Ok(())
}
