//! The few C and C++ library behaviours crushtool's output and options depend on, redone in
//! Rust so `shoal crush test` matches crushtool byte for byte: `atof` (how `--weight` values
//! are read), the float-to-16.16 conversion of `CrushTester::set_device_weight`, and the
//! default `ostream << float` formatting (`%g` with six significant digits) of the
//! "expected" column.

/// C's `atof`: the longest prefix of `text` (after leading white space) that is a decimal
/// or hexadecimal floating-point number, `inf`/`infinity` or `nan`; 0.0 when there is none.
/// Trailing garbage is ignored, as C does (`"0.5x"` is 0.5, `"abc"` is 0).
pub fn atof(text: &str) -> f64 {
    let bytes = text.as_bytes();
    let mut i = 0;
    // C's isspace() in the "C" locale.
    while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        i += 1;
    }
    let negative = match bytes.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let rest = &text[i..];
    let magnitude = if starts_with_ignore_case(rest, "inf") {
        f64::INFINITY
    } else if starts_with_ignore_case(rest, "nan") {
        f64::NAN
    } else if (starts_with_ignore_case(rest, "0x"))
        && rest[2..]
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_hexdigit() || b == b'.')
    {
        hex_prefix(&rest[2..])
    } else {
        decimal_prefix(rest)
    };
    if negative {
        -magnitude
    } else {
        magnitude
    }
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len()
        && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// The value of the longest decimal number at the start of `text` (digits, an optional
/// fraction, an optional exponent that has at least one digit), or 0.
fn decimal_prefix(text: &str) -> f64 {
    let bytes = text.as_bytes();
    let digits_from = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let int_end = digits_from(0);
    let mut end = int_end;
    let mut mantissa_digits = int_end;
    if bytes.get(end) == Some(&b'.') {
        let frac_end = digits_from(end + 1);
        mantissa_digits += frac_end - end - 1;
        end = frac_end;
    }
    if mantissa_digits == 0 {
        return 0.0;
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let mut j = end + 1;
        if matches!(bytes.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let exp_end = digits_from(j);
        if exp_end > j {
            end = exp_end;
        }
    }
    // Rust's parser rounds correctly, as glibc's strtod does; it only rejects a lone ".",
    // which cannot reach here (mantissa_digits > 0).
    text[..end].parse().unwrap_or(0.0)
}

/// The value of the hexadecimal float at the start of `text` (after its `0x`): hex digits,
/// an optional fraction and an optional binary exponent `p[+-]N`. Exact up to 13 hex
/// digits of mantissa, which is beyond anything a reweight needs.
fn hex_prefix(text: &str) -> f64 {
    let bytes = text.as_bytes();
    let mut value = 0.0f64;
    let mut scale = 0i32;
    let mut i = 0;
    while let Some(d) = bytes.get(i).and_then(|b| (*b as char).to_digit(16)) {
        value = value * 16.0 + d as f64;
        i += 1;
    }
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        while let Some(d) = bytes.get(i).and_then(|b| (*b as char).to_digit(16)) {
            value = value * 16.0 + d as f64;
            scale -= 4;
            i += 1;
        }
    }
    if matches!(bytes.get(i), Some(b'p' | b'P')) {
        let mut j = i + 1;
        let negative = match bytes.get(j) {
            Some(b'-') => {
                j += 1;
                true
            }
            Some(b'+') => {
                j += 1;
                false
            }
            _ => false,
        };
        let start = j;
        let mut exponent: i32 = 0;
        while let Some(d) = bytes.get(j).filter(|b| b.is_ascii_digit()) {
            exponent = exponent
                .saturating_mul(10)
                .saturating_add((d - b'0') as i32);
            j += 1;
        }
        if j > start {
            scale = scale.saturating_add(if negative { -exponent } else { exponent });
        }
    }
    value * 2f64.powi(scale)
}

/// What `crushtool --weight OSD W` stores for `W` already read by `atof` and narrowed to a C
/// `float`: `(int)(f * 0x10000)` in `float`, clamped to `[0, 0x10000]`.
///
/// A product outside `int`'s range (or NaN) is undefined behaviour in C; on x86-64, where
/// crushtool runs, the conversion instruction yields `INT_MIN`, which the clamp turns into 0.
/// So `--weight 3 40000` marks osd.3 out rather than in; we reproduce that.
pub fn crushtool_reweight(weight: f32) -> u32 {
    let scaled = weight * 65536.0f32;
    let truncated = if scaled.is_nan() || !(-2_147_483_648.0..2_147_483_648.0).contains(&scaled) {
        i32::MIN
    } else {
        scaled as i32
    };
    truncated.clamp(0, 0x10000) as u32
}

/// `value` as C++'s default `ostream << double` prints it: `%g` with six significant
/// digits (fixed notation for exponents -4..5, scientific otherwise, trailing zeros and a
/// trailing point removed).
pub fn format_g(value: f64) -> String {
    const PRECISION: i32 = 6;
    if value.is_nan() {
        return if value.is_sign_negative() {
            "-nan"
        } else {
            "nan"
        }
        .to_string();
    }
    if value.is_infinite() {
        return if value < 0.0 { "-inf" } else { "inf" }.to_string();
    }
    if value == 0.0 {
        return if value.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    // The exponent %g decides with is the one of the value rounded to PRECISION digits.
    let scientific = format!("{:.*e}", (PRECISION - 1) as usize, value);
    let (mantissa, exponent) = scientific
        .split_once('e')
        .expect("Rust's {:e} output always has an exponent");
    let exponent: i32 = exponent
        .parse()
        .expect("Rust's {:e} exponent is an integer");
    if !(-4..PRECISION).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!(
            "{}e{}{:02}",
            strip_fraction_zeros(mantissa),
            sign,
            exponent.abs()
        )
    } else {
        let decimals = (PRECISION - 1 - exponent) as usize;
        strip_fraction_zeros(&format!("{value:.decimals$}")).to_string()
    }
}

/// Removes trailing zeros of a fraction, and the point if nothing is left after it.
fn strip_fraction_zeros(number: &str) -> &str {
    if number.contains('.') {
        number.trim_end_matches('0').trim_end_matches('.')
    } else {
        number
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atof_reads_prefixes_like_c() {
        assert_eq!(atof("0.5"), 0.5);
        assert_eq!(atof("  .25xyz"), 0.25);
        assert_eq!(atof("1e-1"), 0.1);
        assert_eq!(atof("1e"), 1.0);
        assert_eq!(atof("2.E+2"), 200.0);
        assert_eq!(atof("-0.75"), -0.75);
        assert_eq!(atof("+3"), 3.0);
        assert_eq!(atof("abc"), 0.0);
        assert_eq!(atof(""), 0.0);
        assert_eq!(atof("."), 0.0);
        assert_eq!(atof("-"), 0.0);
        assert_eq!(atof("0x1p-1"), 0.5);
        assert_eq!(atof("0x.8"), 0.5);
        assert_eq!(atof("0xg"), 0.0);
        assert_eq!(atof("INF"), f64::INFINITY);
        assert_eq!(atof("-infinity"), f64::NEG_INFINITY);
        assert!(atof("nan").is_nan());
    }

    #[test]
    fn reweight_truncates_and_clamps_like_crushtool() {
        assert_eq!(crushtool_reweight(0.0), 0);
        assert_eq!(crushtool_reweight(1.0), 0x10000);
        assert_eq!(crushtool_reweight(0.5), 0x8000);
        // 0.9 is 0.89999997615814208984375 as a float: 58982.398... truncated.
        assert_eq!(crushtool_reweight(0.9), 58982);
        assert_eq!(crushtool_reweight(0.25), 16384);
        assert_eq!(crushtool_reweight(-0.5), 0);
        assert_eq!(crushtool_reweight(2.0), 0x10000);
        // Out of int range: x86-64 gives INT_MIN, clamped to 0.
        assert_eq!(crushtool_reweight(40000.0), 0);
        assert_eq!(crushtool_reweight(f32::INFINITY), 0);
        assert_eq!(crushtool_reweight(f32::NAN), 0);
    }

    #[test]
    fn format_g_matches_printf() {
        // Expected strings are what glibc's printf("%g") prints.
        let cases: &[(f64, &str)] = &[
            (750.0, "750"),
            (99.99749755859375, "99.9975"),
            (30000.0, "30000"),
            (0.5, "0.5"),
            (1.0, "1"),
            (123456.0, "123456"),
            (1234567.0, "1.23457e+06"),
            (999999.5, "1e+06"),
            (0.0001, "0.0001"),
            (0.00001234, "1.234e-05"),
            (0.1 + 0.2, "0.3"),
            (-2.5, "-2.5"),
            (1e100, "1e+100"),
            (0.0, "0"),
            (f64::INFINITY, "inf"),
        ];
        for &(value, expected) in cases {
            assert_eq!(format_g(value), expected, "{value:e}");
        }
    }
}
