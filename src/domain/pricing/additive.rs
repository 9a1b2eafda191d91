//! Prices of the additive endpoints (keyframes, audio-to-video, retake): a dollar rate per second
//! of clip for each quality preset, plus a LoRA surcharge per second when styles are applied.
//! Krea's endpoint keeps its own table (`super::price`); an operator sets these in the config.
//!
//! Billing rule: the clip is billed on whole seconds, `ceil((num_frames − 1) / 24)`, at least
//! one — the same clip length Krea's table uses (`GenerateRequest::clip_seconds`), rounded up to
//! a second instead of to a 5-second tier. The price is fixed at submit and held like Krea's.
use super::{Price, FPS};
use crate::domain::money::MicroUsd;
use crate::domain::request::Quality;

/// The operator's rates. Defaults: `fast` runs what Krea's endpoint runs (the distilled model),
/// so it costs what Krea charges per second of its 5 s clip ($0.1798 / 5 = $0.03596). `balanced`
/// (the dev model, two stages) and `best` (the HQ two-stage pipeline, res_2s) cost more GPU time
/// per clip: stage 1 runs ~30 guided steps instead of 8 (each a conditional and an unconditional
/// pass) and res_2s takes two model evaluations a step, so at the stage-1 half resolution and the
/// same stage-2 refinement they run about 3× and 5× the distilled pipeline's transformer work:
/// $0.10788 and $0.1798 a second. The LoRA surcharge is Krea's per second: ($0.2022 − $0.1798) / 5
/// = $0.00448.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdditivePrices {
    pub fast_per_second: MicroUsd,
    pub balanced_per_second: MicroUsd,
    pub best_per_second: MicroUsd,
    pub lora_per_second: MicroUsd,
}

pub const DEFAULT_FAST_PER_SECOND: MicroUsd = MicroUsd(35_960);
pub const DEFAULT_BALANCED_PER_SECOND: MicroUsd = MicroUsd(107_880);
pub const DEFAULT_BEST_PER_SECOND: MicroUsd = MicroUsd(179_800);
pub const DEFAULT_LORA_PER_SECOND: MicroUsd = MicroUsd(4_480);

impl Default for AdditivePrices {
    fn default() -> Self {
        AdditivePrices {
            fast_per_second: DEFAULT_FAST_PER_SECOND,
            balanced_per_second: DEFAULT_BALANCED_PER_SECOND,
            best_per_second: DEFAULT_BEST_PER_SECOND,
            lora_per_second: DEFAULT_LORA_PER_SECOND,
        }
    }
}

/// The whole seconds a clip of `num_frames` frames is billed for.
pub fn billed_seconds(num_frames: u32) -> u32 {
    num_frames.saturating_sub(1).div_ceil(FPS).max(1)
}

impl AdditivePrices {
    /// The rate of a preset, without LoRA.
    pub fn per_second(&self, quality: Quality) -> MicroUsd {
        match quality {
            Quality::Fast => self.fast_per_second,
            Quality::Balanced => self.balanced_per_second,
            Quality::Best => self.best_per_second,
        }
    }

    /// The price of a clip: billed seconds × (the preset's rate + the LoRA surcharge when any
    /// style is applied). `quality: None` is the default preset, `fast`. `tier_seconds` is the
    /// billed seconds (the job's `billed_duration_s`).
    pub fn price(&self, num_frames: u32, quality: Option<Quality>, with_styles: bool) -> Price {
        let seconds = billed_seconds(num_frames);
        let rate =
            self.per_second(quality.unwrap_or(Quality::Fast)).0 + if with_styles { self.lora_per_second.0 } else { 0 };
        Price { tier_seconds: seconds, amount: MicroUsd(rate.saturating_mul(i64::from(seconds))) }
    }

    /// A negative rate is a configuration mistake (it would credit the caller).
    pub fn check(&self) -> Result<(), String> {
        for (name, rate) in self.named() {
            if rate.0 < 0 {
                return Err(format!("the {name} price must not be negative (got {rate})"));
            }
        }
        Ok(())
    }

    /// Each rate with its name, as `GET /openapi.json` and the docs list them.
    pub fn named(&self) -> [(&'static str, MicroUsd); 4] {
        [
            ("fast", self.fast_per_second),
            ("balanced", self.balanced_per_second),
            ("best", self.best_per_second),
            ("lora", self.lora_per_second),
        ]
    }

    /// The table as JSON: `{"unit": "USD per clip second", "billing": …, "quality": {…}, "lora_surcharge": …}`.
    pub fn to_json(&self) -> serde_json::Value {
        let usd = |m: MicroUsd| serde_json::to_value(m).unwrap_or_default();
        serde_json::json!({
            "unit": "USD per second of clip",
            "billing": "whole seconds: ceil((num_frames - 1) / 24), at least 1; (quality rate + LoRA surcharge when styles are applied) × seconds",
            "quality": {
                "fast": usd(self.fast_per_second),
                "balanced": usd(self.balanced_per_second),
                "best": usd(self.best_per_second),
            },
            "lora_surcharge": usd(self.lora_per_second),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clips_are_billed_on_whole_seconds() {
        assert_eq!(billed_seconds(9), 1);
        assert_eq!(billed_seconds(25), 1);
        assert_eq!(billed_seconds(33), 2);
        assert_eq!(billed_seconds(121), 5);
        assert_eq!(billed_seconds(481), 20);
        assert_eq!(billed_seconds(1), 1, "never free");
    }

    #[test]
    fn fast_matches_kreas_five_second_price() {
        let prices = AdditivePrices::default();
        assert_eq!(prices.price(121, None, false), Price { tier_seconds: 5, amount: MicroUsd(179_800) });
        assert_eq!(prices.price(121, Some(Quality::Fast), true).amount, MicroUsd(202_200));
        assert_eq!(super::super::price(121, true).amount, MicroUsd(202_200));
    }

    #[test]
    fn each_preset_has_its_rate_and_lora_adds_its_surcharge() {
        let prices = AdditivePrices {
            fast_per_second: MicroUsd(10),
            balanced_per_second: MicroUsd(20),
            best_per_second: MicroUsd(30),
            lora_per_second: MicroUsd(5),
        };
        assert_eq!(prices.price(49, Some(Quality::Balanced), false), Price { tier_seconds: 2, amount: MicroUsd(40) });
        assert_eq!(prices.price(49, Some(Quality::Best), true).amount, MicroUsd(70));
        assert_eq!(prices.price(65, None, true).amount, MicroUsd(45));
        assert_eq!(prices.check(), Ok(()));
        let negative = AdditivePrices { lora_per_second: MicroUsd(-1), ..prices };
        assert!(negative.check().unwrap_err().contains("lora"));
    }

    #[test]
    fn the_table_as_json_lists_every_rate() {
        let json = AdditivePrices::default().to_json();
        assert_eq!(json["quality"]["fast"], "0.03596");
        assert_eq!(json["quality"]["balanced"], "0.10788");
        assert_eq!(json["quality"]["best"], "0.1798");
        assert_eq!(json["lora_surcharge"], "0.00448");
    }
}
