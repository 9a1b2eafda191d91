//! `serve`'s prices of the additive endpoints (keyframes, audio-to-video, retake): dollars per
//! second of clip for each quality preset, and the LoRA surcharge (domain::pricing::additive).
use super::parse_usd;
use crate::config::ServeConfig;
use crate::domain::money::MicroUsd;
use crate::domain::pricing::additive::AdditivePrices;
use clap::Args;

#[derive(Args, Clone)]
pub struct AdditivePriceArgs {
    /// Price of the additive endpoints with `quality: "fast"` (the default preset), in dollars per
    /// second of clip; clips are billed on whole seconds. The default is Krea's 5 s price / 5.
    #[arg(long, env = "LTX_SERVE_ADDITIVE_PRICE_FAST_USD", default_value = "0.03596", value_parser = parse_usd)]
    pub additive_price_fast_usd: MicroUsd,
    /// Price of the additive endpoints with `quality: "balanced"` (dev model, two stages), in
    /// dollars per second of clip.
    #[arg(long, env = "LTX_SERVE_ADDITIVE_PRICE_BALANCED_USD", default_value = "0.10788", value_parser = parse_usd)]
    pub additive_price_balanced_usd: MicroUsd,
    /// Price of the additive endpoints with `quality: "best"` (HQ two-stage, res_2s), in dollars
    /// per second of clip.
    #[arg(long, env = "LTX_SERVE_ADDITIVE_PRICE_BEST_USD", default_value = "0.1798", value_parser = parse_usd)]
    pub additive_price_best_usd: MicroUsd,
    /// Surcharge of an additive clip with styles (LoRAs), in dollars per second of clip, added
    /// to its preset's price.
    #[arg(long, env = "LTX_SERVE_ADDITIVE_PRICE_LORA_USD", default_value = "0.00448", value_parser = parse_usd)]
    pub additive_price_lora_usd: MicroUsd,
}

impl AdditivePriceArgs {
    pub fn apply(&self, config: ServeConfig) -> anyhow::Result<ServeConfig> {
        let additive_prices = AdditivePrices {
            fast_per_second: self.additive_price_fast_usd,
            balanced_per_second: self.additive_price_balanced_usd,
            best_per_second: self.additive_price_best_usd,
            lora_per_second: self.additive_price_lora_usd,
        };
        additive_prices.check().map_err(|e| anyhow::anyhow!("--additive-price-*-usd: {e}"))?;
        Ok(ServeConfig { additive_prices, ..config })
    }
}
