//! The endpoint page's price table and the rule that maps a clip onto it (docs/api.md, Prices).
use super::money::MicroUsd;

pub mod additive;

/// Output frame rate of every clip.
pub const FPS: u32 = 24;

/// Billed durations in seconds with their prices without and with LoRA styles, from the
/// endpoint page's table.
pub const PRICE_TABLE: [(u32, MicroUsd, MicroUsd); 4] = [
    (5, MicroUsd(179_800), MicroUsd(202_200)),
    (10, MicroUsd(357_900), MicroUsd(402_500)),
    (15, MicroUsd(534_500), MicroUsd(601_100)),
    (20, MicroUsd(712_600), MicroUsd(801_400)),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Price {
    /// The listed duration this clip is billed as.
    pub tier_seconds: u32,
    pub amount: MicroUsd,
}

/// Price of a clip of `frames` frames: the smallest listed duration ≥ (frames − 1) / 24 s; the
/// LoRA column when any style is applied. Frames are already validated (≤ 481 = 20 s).
pub fn price(frames: u32, with_styles: bool) -> Price {
    let clip_frames = frames.saturating_sub(1);
    let (tier_seconds, plain, lora) = PRICE_TABLE
        .iter()
        .copied()
        .find(|(seconds, _, _)| clip_frames <= seconds * FPS)
        .unwrap_or(PRICE_TABLE[PRICE_TABLE.len() - 1]);
    Price { tier_seconds, amount: if with_styles { lora } else { plain } }
}

/// The price table as markdown, in the endpoint page's layout.
pub fn price_table_markdown() -> String {
    let mut out = String::from("| LoRA | Duration |   Price |\n| ---- | -------- | ------: |\n");
    for (seconds, plain, lora) in PRICE_TABLE {
        for (label, amount) in [("No", plain), ("Yes", lora)] {
            let duration = format!("{seconds}s");
            out.push_str(&format!("| {label:<4} | {duration:<8} | {:>7} |\n", amount.to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_follow_clip_seconds() {
        assert_eq!(price(9, false), Price { tier_seconds: 5, amount: MicroUsd(179_800) });
        assert_eq!(price(121, false).tier_seconds, 5);
        assert_eq!(price(129, false).tier_seconds, 10);
        assert_eq!(price(241, false), Price { tier_seconds: 10, amount: MicroUsd(357_900) });
        assert_eq!(price(249, true), Price { tier_seconds: 15, amount: MicroUsd(601_100) });
        assert_eq!(price(361, false).tier_seconds, 15);
        assert_eq!(price(369, false).tier_seconds, 20);
        assert_eq!(price(481, true), Price { tier_seconds: 20, amount: MicroUsd(801_400) });
    }

    #[test]
    fn markdown_table_lists_every_price() {
        let table = price_table_markdown();
        assert!(table.contains("| No   | 5s       | $0.1798 |"), "{table}");
        assert!(table.contains("| Yes  | 20s      | $0.8014 |"), "{table}");
        assert_eq!(table.lines().count(), 10);
    }

    #[test]
    fn lora_column_applies_with_styles() {
        for (frames, plain, lora) in
            [(121, 179_800, 202_200), (241, 357_900, 402_500), (361, 534_500, 601_100), (481, 712_600, 801_400)]
        {
            assert_eq!(price(frames, false).amount, MicroUsd(plain));
            assert_eq!(price(frames, true).amount, MicroUsd(lora));
        }
    }
}
