//! Kubernetes resource quantities (`100m`, `1`, `128Mi`, `1G`, `1e3`, `0.5`), parsed to
//! an exact integer number of thousandths ("millis"), which is how the scheduler and
//! kubelet compare them. Grammar from `k8s.io/apimachinery/pkg/api/resource`:
//! a signed decimal number followed by a binary-SI suffix (`Ki`..`Ei`), a decimal-SI
//! suffix (`n`, `u`, `m`, ``, `k`, `M`, `G`, `T`, `P`, `E`) or an exponent (`e3`, `E-2`).

/// Upstream's format error, the text kubectl users see for `cpu: 1x`.
pub const QUANTITY_FORMAT_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// Parses a quantity into millis (value x 1000), rounding a finer fraction up (away
/// from zero) as upstream's `MilliValue` does: `1m` is 1, `0.1m` is 1, `1Ki` is
/// 1_024_000, `2` is 2000.
pub fn parse_quantity(s: &str) -> Result<i128, String> {
    let s = s.trim();
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let num_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(num_end);
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if (int_part.is_empty() && frac_part.is_empty()) || frac_part.contains('.') {
        return Err(QUANTITY_FORMAT_ERROR.to_string());
    }
    // Digits beyond 30 after the point cannot change a milli-rounded result except by
    // making it non-zero, so they are folded into a single "something follows" flag.
    let (frac_kept, frac_tail_nonzero) = if frac_part.len() > 30 {
        (&frac_part[..30], frac_part[30..].bytes().any(|c| c != b'0'))
    } else {
        (frac_part, false)
    };
    let too_large = || "quantity is too large: it must fit in 64-bit millis".to_string();
    let mut mantissa: i128 = 0;
    for c in int_part.bytes().chain(frac_kept.bytes()) {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(i128::from(c - b'0')))
            .ok_or_else(too_large)?;
    }
    // value = mantissa * mul_num / (10^frac * mul_den)
    let mut num: i128 = 1000;
    let mut den: i128 = 10i128.pow(frac_kept.len() as u32);
    let pow10 = |e: u32| 10i128.checked_pow(e).ok_or_else(too_large);
    match suffix {
        "" => {}
        "n" => den = den.checked_mul(pow10(9)?).ok_or_else(too_large)?,
        "u" => den = den.checked_mul(pow10(6)?).ok_or_else(too_large)?,
        "m" => den = den.checked_mul(1000).ok_or_else(too_large)?,
        "k" => num *= 1_000,
        "M" => num *= 1_000_000,
        "G" => num *= 1_000_000_000,
        "T" => num *= 1_000_000_000_000,
        "P" => num *= 1_000_000_000_000_000,
        "E" => num *= 1_000_000_000_000_000_000,
        "Ki" => num <<= 10,
        "Mi" => num <<= 20,
        "Gi" => num <<= 30,
        "Ti" => num <<= 40,
        "Pi" => num <<= 50,
        "Ei" => num <<= 60,
        other => {
            let exp = other
                .strip_prefix('e')
                .or_else(|| other.strip_prefix('E'))
                .ok_or_else(|| {
                    if other
                        .bytes()
                        .all(|c| b"eEinumkKMGTP+-0123456789".contains(&c))
                    {
                        "unable to parse quantity's suffix".to_string()
                    } else {
                        QUANTITY_FORMAT_ERROR.to_string()
                    }
                })?;
            let e: i32 = exp
                .parse()
                .map_err(|_| "unable to parse quantity's suffix".to_string())?;
            if e.unsigned_abs() > 30 {
                return Err(too_large());
            }
            if e >= 0 {
                num = num.checked_mul(pow10(e as u32)?).ok_or_else(too_large)?;
            } else {
                den = den
                    .checked_mul(pow10(e.unsigned_abs())?)
                    .ok_or_else(too_large)?;
            }
        }
    }
    let scaled = mantissa.checked_mul(num).ok_or_else(too_large)?;
    let mut millis = scaled / den;
    if scaled % den != 0 || (frac_tail_nonzero && millis == 0) {
        millis += 1;
    }
    if millis > i128::from(i64::MAX) {
        return Err(too_large());
    }
    Ok(if negative { -millis } else { millis })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_suffix_kind() {
        let cases: &[(&str, i128)] = &[
            ("0", 0),
            ("1", 1000),
            ("100m", 100),
            ("1.5", 1500),
            ("0.1", 100),
            (".5", 500),
            ("5.", 5000),
            ("1k", 1_000_000),
            ("128Mi", 128 * 1024 * 1024 * 1000),
            ("1Ki", 1_024_000),
            ("1G", 1_000_000_000_000),
            ("1Gi", (1i128 << 30) * 1000),
            ("1e3", 1_000_000),
            ("1E3", 1_000_000),
            ("5e-3", 5),
            ("1e-4", 1),
            ("0.1m", 1),
            ("1n", 1),
            ("1000000u", 1000),
            ("-1", -1000),
            ("+2", 2000),
            ("250m", 250),
        ];
        for (s, want) in cases {
            assert_eq!(parse_quantity(s), Ok(*want), "{s}");
        }
    }

    #[test]
    fn rejects_malformed_quantities() {
        let cases: &[(&str, &str)] = &[
            ("", "quantities must match"),
            ("abc", "quantities must match"),
            ("1x", "quantities must match"),
            ("1.2.3", "quantities must match"),
            ("1Kb", "quantities must match"),
            ("1KM", "unable to parse quantity's suffix"),
            ("1ki", "unable to parse quantity's suffix"),
            ("1e", "unable to parse quantity's suffix"),
            ("m", "quantities must match"),
            (
                "99999999999999999999999999999999999999999",
                "quantity is too large",
            ),
            ("1e30", "quantity is too large"),
        ];
        for (s, want) in cases {
            let err = parse_quantity(s).unwrap_err();
            assert!(err.starts_with(want), "{s}: {err}");
        }
    }
}
