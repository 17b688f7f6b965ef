//! Reading the SMSC's journal file (one JSON line per submit_sm, arrival stamp in µs): counting
//! lines as they come (cheap progress, no database query) and reading the stamps afterwards.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::BenchError;

/// Follows a growing journal, counting complete lines.
pub struct JournalTail {
    path: PathBuf,
    file: Option<File>,
    /// Bytes of complete lines read so far.
    offset: u64,
    lines: u64,
    partial: Vec<u8>,
}

impl JournalTail {
    pub fn new(path: &Path) -> JournalTail {
        JournalTail {
            path: path.to_path_buf(),
            file: None,
            offset: 0,
            lines: 0,
            partial: Vec::new(),
        }
    }

    /// Reads what was appended; returns the number of complete lines so far.
    pub fn poll(&mut self) -> Result<u64, BenchError> {
        if self.file.is_none() {
            match File::open(&self.path) {
                Ok(file) => self.file = Some(file),
                Err(_) => return Ok(self.lines), // not created yet
            }
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(self.lines);
        };
        let mut chunk = Vec::new();
        file.read_to_end(&mut chunk)
            .map_err(|e| BenchError::io("read the SMSC journal", e))?;
        for byte in chunk {
            self.partial.push(byte);
            if byte == b'\n' {
                self.lines += 1;
                self.offset += self.partial.len() as u64;
                self.partial.clear();
            }
        }
        Ok(self.lines)
    }

    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Byte offset just after the last complete line read.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

/// One journal line's fields that the bench uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arrival {
    pub at_us: i64,
    pub destination: String,
}

/// The arrivals recorded from byte `offset` on, in file order.
pub fn read_arrivals(path: &Path, offset: u64) -> Result<Vec<Arrival>, BenchError> {
    let mut file = File::open(path).map_err(|e| BenchError::io("open the SMSC journal", e))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| BenchError::io("seek in the SMSC journal", e))?;
    let mut arrivals = Vec::new();
    for line in BufReader::new(file).lines() {
        let line = line.map_err(|e| BenchError::io("read the SMSC journal", e))?;
        if let Some(arrival) = parse_line(&line) {
            arrivals.push(arrival);
        }
    }
    Ok(arrivals)
}

/// First arrival per destination (a resend arrives again; the first one is the latency).
pub fn first_arrival_by_destination(arrivals: &[Arrival]) -> HashMap<&str, i64> {
    let mut first = HashMap::new();
    for a in arrivals {
        first.entry(a.destination.as_str()).or_insert(a.at_us);
    }
    first
}

/// Parses `{"at_us":N,...,"destination":"D",...}`; destinations are digits, so no escapes.
fn parse_line(line: &str) -> Option<Arrival> {
    let at = field_start(line, "\"at_us\":")?;
    let digits: String = at.chars().take_while(char::is_ascii_digit).collect();
    let destination = field_start(line, "\"destination\":\"")?;
    let end = destination.find('"')?;
    Some(Arrival {
        at_us: digits.parse().ok()?,
        destination: destination[..end].to_string(),
    })
}

fn field_start<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.find(key).map(|i| &line[i + key.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn parses_a_journal_line() {
        let line = r#"{"at_us":1700000000123456,"connection":1,"seq":7,"destination":"447700000001","text_hex":"41"}"#;
        assert_eq!(
            parse_line(line),
            Some(Arrival {
                at_us: 1_700_000_000_123_456,
                destination: "447700000001".into()
            })
        );
        assert_eq!(parse_line("{}"), None);
    }

    #[test]
    fn tail_counts_only_complete_lines() {
        let path = std::env::temp_dir().join(format!("bench-tail-{}", std::process::id()));
        let mut file = File::create(&path).unwrap();
        let mut tail = JournalTail::new(&path);
        write!(file, "{{\"at_us\":1,\"destination\":\"1\"}}\n{{\"at_us\":2").unwrap();
        file.flush().unwrap();
        assert_eq!(tail.poll().unwrap(), 1);
        let after_first = tail.offset();
        writeln!(file, ",\"destination\":\"2\"}}").unwrap();
        file.flush().unwrap();
        assert_eq!(tail.poll().unwrap(), 2);
        let all = read_arrivals(&path, 0).unwrap();
        assert_eq!(all.len(), 2);
        let second = read_arrivals(&path, after_first).unwrap();
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].at_us, 2);
        assert_eq!(first_arrival_by_destination(&all).get("2"), Some(&2));
        let _ = std::fs::remove_file(&path);
    }
}
