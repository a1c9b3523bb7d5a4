//! Output helpers for the cluster commands: the `--format` choice, JSON printing, aligned
//! text tables like Ceph's, and the small value formats Ceph uses (weights with five
//! decimals, UTC timestamps, byte sizes).

use clap::ValueEnum;

/// `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Text shaped like Ceph's.
    Plain,
    /// One line of JSON.
    Json,
    /// Indented JSON.
    JsonPretty,
}

impl Format {
    /// True for either JSON format.
    pub fn is_json(self) -> bool {
        !matches!(self, Format::Plain)
    }

    /// Prints `value` as JSON in this format (plain counts as compact JSON).
    pub fn print_json(self, value: &serde_json::Value) {
        let text = match self {
            Format::JsonPretty => serde_json::to_string_pretty(value),
            _ => serde_json::to_string(value),
        };
        // Serializing a `Value` cannot fail (its map keys are strings).
        outln!("{}", text.unwrap_or_default());
    }
}

/// Column alignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    /// Pad on the right.
    Left,
    /// Pad on the left.
    Right,
}

/// A text table with a header row, columns separated by two spaces.
pub struct Table {
    columns: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(columns: &[(&str, Align)]) -> Self {
        Table {
            columns: columns
                .iter()
                .map(|(name, align)| ((*name).to_owned(), *align))
                .collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells are empty).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, one line per row, with trailing spaces trimmed.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.columns.iter().map(|(name, _)| name.len()).collect();
        for row in &self.rows {
            for (index, cell) in row.iter().enumerate().take(widths.len()) {
                widths[index] = widths[index].max(cell.chars().count());
            }
        }
        let line = |cells: Vec<&str>| {
            let mut out = String::new();
            for (index, (_, align)) in self.columns.iter().enumerate() {
                let cell = cells.get(index).copied().unwrap_or("");
                let pad = widths[index].saturating_sub(cell.chars().count());
                if index > 0 {
                    out.push_str("  ");
                }
                match align {
                    Align::Left => {
                        out.push_str(cell);
                        out.push_str(&" ".repeat(pad));
                    }
                    Align::Right => {
                        out.push_str(&" ".repeat(pad));
                        out.push_str(cell);
                    }
                }
            }
            out.trim_end().to_owned()
        };
        let mut lines = vec![line(
            self.columns.iter().map(|(name, _)| name.as_str()).collect(),
        )];
        for row in &self.rows {
            lines.push(line(row.iter().map(String::as_str).collect()));
        }
        lines.join("\n")
    }
}

/// A 16.16 fixed-point weight as Ceph prints it (`1.00000`).
pub fn weight(fixed: u32) -> String {
    format!("{:.5}", f64::from(fixed) / 65536.0)
}

/// A 16.16 fixed-point weight as a JSON number.
pub fn weight_value(fixed: u32) -> f64 {
    f64::from(fixed) / 65536.0
}

/// Milliseconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.mmm+0000` (UTC).
pub fn timestamp(ms: u64) -> String {
    let seconds = ms / 1000;
    let days = i64::try_from(seconds / 86_400).unwrap_or(0);
    let of_day = seconds % 86_400;
    // Howard Hinnant's days-to-civil conversion (proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}+0000",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
        ms % 1000
    )
}

/// A byte count in Ceph's short form (`0 B`, `12 KiB`, `3.5 GiB`).
pub fn bytes(count: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = count as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value >= 10.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_weights_and_sizes() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000+0000");
        assert_eq!(timestamp(951_782_400_123), "2000-02-29T00:00:00.123+0000");
        assert_eq!(timestamp(1_735_689_599_000), "2024-12-31T23:59:59.000+0000");
        assert_eq!(weight(0x10000), "1.00000");
        assert_eq!(weight(0x8000), "0.50000");
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(50 << 20), "50 MiB");
    }

    #[test]
    fn tables_align_columns() {
        let mut table = Table::new(&[("ID", Align::Right), ("NAME", Align::Left)]);
        table.row(vec!["-1".into(), "root default".into()]);
        table.row(vec!["10".into(), "osd.10".into()]);
        assert_eq!(table.render(), "ID  NAME\n-1  root default\n10  osd.10");
    }
}
