//! The CRI container log format, written by the runtime to the path the kubelet gives
//! in the sandbox's `log_directory` and the container's `log_path`:
//!
//! `<RFC 3339 time> <stdout|stderr> <P|F> <content>`
//!
//! `F` ends a line; `P` marks a partial line that continues in the next record (the
//! runtime splits lines longer than its buffer). `kubectl logs` shows the joined lines.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One record of a CRI log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub time: &'a str,
    pub stream: Stream,
    /// True for a `P` record: the line continues in the next record.
    pub partial: bool,
    pub content: &'a str,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed cri log record {line:?}: {why}")]
pub struct ParseError {
    pub line: String,
    pub why: &'static str,
}

/// Parses one record (without its trailing newline).
pub fn parse_record(line: &str) -> Result<Record<'_>, ParseError> {
    let bad = |why| ParseError {
        line: line.to_string(),
        why,
    };
    let mut parts = line.splitn(4, ' ');
    let time = parts
        .next()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("no timestamp"))?;
    let stream = match parts.next() {
        Some("stdout") => Stream::Stdout,
        Some("stderr") => Stream::Stderr,
        _ => return Err(bad("stream must be stdout or stderr")),
    };
    // The tag field is a ':'-separated list; only the first tag (P or F) is defined.
    let partial = match parts.next().map(|t| t.split(':').next().unwrap_or("")) {
        Some("P") => true,
        Some("F") => false,
        _ => return Err(bad("tag must be P or F")),
    };
    if !time.contains('T') {
        return Err(bad("timestamp is not RFC 3339"));
    }
    Ok(Record {
        time,
        stream,
        partial,
        content: parts.next().unwrap_or(""),
    })
}

/// All complete lines of a log file, partial records joined, in order. Malformed
/// records are skipped (a runtime may be writing the last one right now).
pub fn lines(text: &str) -> Vec<(Stream, String)> {
    let mut out = Vec::new();
    let mut pending: [String; 2] = [String::new(), String::new()];
    for record in text.lines().filter_map(|l| parse_record(l).ok()) {
        let slot = &mut pending[record.stream as usize];
        slot.push_str(record.content);
        if !record.partial {
            out.push((record.stream, std::mem::take(slot)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse_or_say_why_not() {
        let ok = parse_record("2024-01-02T03:04:05.123456789Z stdout F hello world").unwrap();
        assert_eq!(
            ok,
            Record {
                time: "2024-01-02T03:04:05.123456789Z",
                stream: Stream::Stdout,
                partial: false,
                content: "hello world"
            }
        );
        let p = parse_record("2024-01-02T03:04:05Z stderr P ").unwrap();
        assert!(p.partial);
        assert_eq!(p.content, "");
        let cases = [
            ("", "no timestamp"),
            (
                "2024-01-02T03:04:05Z stdin F x",
                "stream must be stdout or stderr",
            ),
            ("2024-01-02T03:04:05Z stdout X x", "tag must be P or F"),
            ("yesterday stdout F x", "timestamp is not RFC 3339"),
        ];
        for (line, why) in cases {
            assert_eq!(parse_record(line).unwrap_err().why, why, "{line}");
        }
    }

    #[test]
    fn partial_records_join_per_stream() {
        let text = "\
2024-01-01T00:00:00Z stdout P hel
2024-01-01T00:00:00Z stderr F oops
2024-01-01T00:00:01Z stdout F lo
garbage
2024-01-01T00:00:02Z stdout F  two  spaces
";
        assert_eq!(
            lines(text),
            vec![
                (Stream::Stderr, "oops".to_string()),
                (Stream::Stdout, "hello".to_string()),
                (Stream::Stdout, " two  spaces".to_string()),
            ]
        );
    }
}
