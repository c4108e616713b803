//! Terminal output: error reports, JSON documents and aligned plain-text tables.
//!
//! Writes go through these helpers so a closed pipe (`spr list containers | head -1`)
//! ends the output quietly instead of panicking the way `println!` does.

use crate::error::CliError;
use std::io::{self, Write};

/// `error: <msg>` and one `  caused by: <cause>` line per source, on stderr.
pub fn print_error(err: &CliError) {
    let mut text = String::new();
    for (i, line) in err.chain().iter().enumerate() {
        if i == 0 {
            text.push_str(&format!("error: {line}\n"));
        } else {
            text.push_str(&format!("  caused by: {line}\n"));
        }
    }
    stderr(&text);
}

/// Write to stdout and flush; a broken pipe is not worth a second error.
pub fn stdout(text: &str) {
    let mut out = io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Write to stderr; nowhere is left to report a failure of stderr itself.
pub fn stderr(text: &str) {
    let mut err = io::stderr().lock();
    let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
}

/// One pretty JSON document on stdout.
pub fn json<T: serde::Serialize + ?Sized>(value: &T) {
    let text = serde_json::to_string_pretty(value).expect("CLI output types serialize to JSON");
    stdout(&format!("{text}\n"));
}

/// A table for people: a header row, then rows, each column padded to its widest cell.
#[derive(Debug)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.header.len());
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                line.push_str(&" ".repeat(w - cell.chars().count()));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_are_padded_to_the_widest_cell() {
        let mut t = Table::new(&["ID", "NAME"]);
        t.row(vec!["abc".into(), "x".into()]);
        t.row(vec!["a".into(), "longer".into()]);
        assert_eq!(t.render(), "ID   NAME\nabc  x\na    longer\n");
    }
}
