//! Kubernetes resource quantities (`100m`, `2`, `128Mi`, `1Gi`, `1e3`, `500k`) turned into
//! integers the scheduler can add and compare: CPU in millicores, everything else in whole
//! units (bytes, pods, devices), both rounded up like upstream's `MilliValue`/`Value`.
//!
//! See <https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/>.

/// A quantity that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("quantity {0:?} is not a number with an optional suffix (like 100m, 2, 128Mi, 1e3)")]
    Syntax(String),
    #[error("quantity {0:?} is too large to schedule with")]
    Overflow(String),
}

/// The quantity times 1000, rounded up (what a CPU request is counted in).
pub fn parse_milli(s: &str) -> Result<i64, QuantityError> {
    let v = scaled(s, 3)?;
    i64::try_from(v).map_err(|_| QuantityError::Overflow(s.to_string()))
}

/// The quantity rounded up to a whole number (bytes of memory, pods, devices).
pub fn parse_value(s: &str) -> Result<i64, QuantityError> {
    let v = scaled(s, 0)?;
    i64::try_from(v).map_err(|_| QuantityError::Overflow(s.to_string()))
}

/// `ceil(quantity * 10^extra_exp10)` computed exactly in integers.
fn scaled(s: &str, extra_exp10: i32) -> Result<i128, QuantityError> {
    let syntax = || QuantityError::Syntax(s.to_string());
    let overflow = || QuantityError::Overflow(s.to_string());
    let t = s.trim();
    let (negative, rest) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let num_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(num_end);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return Err(syntax());
    }
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    let mut mantissa: i128 = 0;
    for c in int_part.chars().chain(frac_part.chars()) {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(i128::from(c as u8 - b'0')))
            .ok_or_else(overflow)?;
    }
    let (pow2, exp10): (u32, i32) = match suffix {
        "" => (0, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        "Ki" => (10, 0),
        "Mi" => (20, 0),
        "Gi" => (30, 0),
        "Ti" => (40, 0),
        "Pi" => (50, 0),
        "Ei" => (60, 0),
        e if e.starts_with(['e', 'E']) => {
            let exp: i32 = e[1..].parse().map_err(|_| syntax())?;
            if !(-40..=40).contains(&exp) {
                return Err(overflow());
            }
            (0, exp)
        }
        _ => return Err(syntax()),
    };
    let exp = exp10 + extra_exp10 - frac_part.len() as i32;
    let mut num = mantissa.checked_mul(1i128 << pow2).ok_or_else(overflow)?;
    let mut den: i128 = 1;
    if exp >= 0 {
        num = num
            .checked_mul(10i128.checked_pow(exp as u32).ok_or_else(overflow)?)
            .ok_or_else(overflow)?;
    } else {
        den = 10i128.checked_pow((-exp) as u32).ok_or_else(overflow)?;
    }
    // Round away from zero only for positive values: a negative request makes no sense
    // for scheduling, but keeping the sign lets validation elsewhere reject it.
    let q = if negative {
        -(num / den)
    } else {
        (num + den - 1) / den
    };
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milli_values() {
        let cases: &[(&str, i64)] = &[
            ("100m", 100),
            ("2", 2000),
            ("0.5", 500),
            ("1.5", 1500),
            ("1e3", 1_000_000),
            ("500k", 500_000_000),
            ("1n", 1), // rounds up
            ("250u", 1),
            ("0", 0),
            (".5", 500),
            ("+3", 3000),
            ("1E-3", 1),
        ];
        for (input, want) in cases {
            assert_eq!(parse_milli(input), Ok(*want), "input {input}");
        }
    }

    #[test]
    fn whole_values() {
        let cases: &[(&str, i64)] = &[
            ("128Mi", 128 * 1024 * 1024),
            ("1Gi", 1 << 30),
            ("1G", 1_000_000_000),
            ("500k", 500_000),
            ("1e3", 1000),
            ("110", 110),
            ("100m", 1), // rounds up
            ("1.5Gi", 3 << 29),
            ("2Ki", 2048),
            ("1Ei", 1 << 60),
        ];
        for (input, want) in cases {
            assert_eq!(parse_value(input), Ok(*want), "input {input}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for input in ["", "abc", "1.2.3", "12Qi", "m", "1e", "1ex", "."] {
            assert!(
                matches!(parse_value(input), Err(QuantityError::Syntax(_))),
                "input {input:?}"
            );
        }
        assert!(matches!(
            parse_value("1e39"),
            Err(QuantityError::Overflow(_))
        ));
        assert!(matches!(
            parse_milli("99999999999999999999Ei"),
            Err(QuantityError::Overflow(_))
        ));
    }
}
