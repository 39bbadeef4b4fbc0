//! Human units on the command line: durations (`500ms`, `10s`, `5m`, `1h`) and sizes (`64MiB`).

use std::time::Duration;

/// Parses `500ms`, `10s`, `5m`, `1h` (a bare number is an error: the unit must be explicit).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; write it like 500ms, 10s, 5m or 1h"))?;
    let too_large = || format!("`{text}` is too large");
    let d = match unit.trim() {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(too_large)?),
        "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(too_large)?),
        "" => {
            return Err(format!(
                "`{text}` has no unit; write it like 500ms, 10s, 5m or 1h"
            ))
        }
        other => {
            return Err(format!(
                "`{text}` has an unknown unit `{other}`; use ms, s, m or h"
            ))
        }
    };
    Ok(d)
}

/// Parses `1048576`, `512KiB`, `64MiB`, `1GiB` (also KB/MB/GB as powers of ten) into bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size; write it like 64MiB or 1GiB"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(format!(
                "`{text}` has an unknown unit `{other}`; use B, KiB, MiB or GiB"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// Formats a duration the way it is parsed (for `--help` defaults and logs).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 3_600_000 == 0 && ms > 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms % 60_000 == 0 && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let cases = [
            ("500ms", Some(Duration::from_millis(500))),
            ("10s", Some(Duration::from_secs(10))),
            ("5m", Some(Duration::from_secs(300))),
            ("1h", Some(Duration::from_secs(3600))),
            ("10", None),
            ("ten s", None),
            ("10d", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text).ok(), want, "{text}");
        }
    }

    #[test]
    fn sizes() {
        let cases = [
            ("128MiB", Some(128 << 20)),
            ("1GiB", Some(1 << 30)),
            ("512KiB", Some(512 << 10)),
            ("1000", Some(1000)),
            ("5MB", Some(5_000_000)),
            ("5 mb", None),
            ("MiB", None),
            ("99999999999999999999GiB", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size(text).ok(), want, "{text}");
        }
    }

    #[test]
    fn duration_round_trips() {
        for text in ["500ms", "10s", "5m", "1h"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }
}
