//! Money is held as integer micro-dollars; floats never touch a balance.
use serde::{Serialize, Serializer};
use std::fmt;

/// An amount of US dollars in millionths (1 USD = 1_000_000).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MicroUsd(pub i64);

impl MicroUsd {
    pub const ZERO: MicroUsd = MicroUsd(0);

    /// Parses a decimal dollar amount such as `5`, `0.1798` or `12.50` (at most 6 decimals).
    pub fn parse_usd(text: &str) -> Result<MicroUsd, String> {
        let text = text.trim();
        let bad = || format!("`{text}` is not a dollar amount (use e.g. 5 or 0.25)");
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('$').unwrap_or(text)),
        };
        let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty() && frac.is_empty()
            || !whole.chars().all(|c| c.is_ascii_digit())
            || !frac.chars().all(|c| c.is_ascii_digit())
        {
            return Err(bad());
        }
        if frac.len() > 6 {
            return Err(format!("`{text}` has more than 6 decimal places"));
        }
        let whole: i64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| bad())? };
        let frac: i64 = format!("{frac:0<6}").parse().map_err(|_| bad())?;
        let micros = whole
            .checked_mul(1_000_000)
            .and_then(|w| w.checked_add(frac))
            .ok_or_else(|| format!("`{text}` is too large"))?;
        Ok(MicroUsd(if negative { -micros } else { micros }))
    }

    pub fn saturating_sub(self, other: MicroUsd) -> MicroUsd {
        MicroUsd(self.0.saturating_sub(other.0))
    }
}

/// `$0.1798`: trailing zeros beyond the cents are dropped, cents are always shown.
impl fmt::Display for MicroUsd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let mut frac = format!("{:06}", abs % 1_000_000);
        while frac.len() > 2 && frac.ends_with('0') {
            frac.pop();
        }
        write!(f, "{sign}${}.{frac}", abs / 1_000_000)
    }
}

/// Serialised as a decimal string of dollars (`"0.1798"`), exact and easy to read.
impl Serialize for MicroUsd {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.to_string().replacen('$', "", 1).as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dollar_amounts() {
        assert_eq!(MicroUsd::parse_usd("5"), Ok(MicroUsd(5_000_000)));
        assert_eq!(MicroUsd::parse_usd("0.1798"), Ok(MicroUsd(179_800)));
        assert_eq!(MicroUsd::parse_usd("$12.5"), Ok(MicroUsd(12_500_000)));
        assert_eq!(MicroUsd::parse_usd(".25"), Ok(MicroUsd(250_000)));
        assert_eq!(MicroUsd::parse_usd("-1"), Ok(MicroUsd(-1_000_000)));
        assert!(MicroUsd::parse_usd("1.0000001").is_err());
        assert!(MicroUsd::parse_usd("abc").is_err());
        assert!(MicroUsd::parse_usd("").is_err());
        assert!(MicroUsd::parse_usd("1e3").is_err());
        assert!(MicroUsd::parse_usd("99999999999999999").is_err());
    }

    #[test]
    fn displays_with_cents_at_least() {
        assert_eq!(MicroUsd(179_800).to_string(), "$0.1798");
        assert_eq!(MicroUsd(5_000_000).to_string(), "$5.00");
        assert_eq!(MicroUsd(1).to_string(), "$0.000001");
        assert_eq!(MicroUsd(-250_000).to_string(), "-$0.25");
        assert_eq!(serde_json::to_string(&MicroUsd(202_200)).unwrap(), "\"0.2022\"");
    }
}
