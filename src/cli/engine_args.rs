//! The engine flags, the same for `serve` (in-process workers) and `worker`.
use crate::config::EngineChoice;
use crate::worker::engines::ltx::{LtxConfig, Pipeline};
use clap::Args;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Args, Clone)]
pub struct EngineArgs {
    /// The engine jobs run on: `preview` (a deterministic synthetic clip on the CPU, free) or
    /// `ltx` (LTX-2.3 on a GPU through the official Python pipelines).
    #[arg(long, env = "LTX_SERVE_ENGINE", value_parser = ["preview", "ltx"], default_value = "preview")]
    pub engine: String,
    /// ltx: the LTX-2.3 checkpoint (ltx-2.3-22b-distilled.safetensors, or …-dev… for --ltx-pipeline dev).
    #[arg(long, env = "LTX_SERVE_LTX_CHECKPOINT")]
    pub ltx_checkpoint: Option<PathBuf>,
    /// ltx: the Gemma-3 text encoder directory (weights, tokenizer.model, preprocessor_config.json).
    #[arg(long, env = "LTX_SERVE_LTX_GEMMA_DIR")]
    pub ltx_gemma_dir: Option<PathBuf>,
    /// ltx: the spatial upsampler (ltx-2.3-spatial-upscaler-x2-1.1.safetensors).
    #[arg(long, env = "LTX_SERVE_LTX_SPATIAL_UPSAMPLER")]
    pub ltx_spatial_upsampler: Option<PathBuf>,
    /// ltx: the distilled LoRA (ltx-2.3-22b-distilled-lora-384-1.1.safetensors); the dev pipeline needs it.
    #[arg(long, env = "LTX_SERVE_LTX_DISTILLED_LORA")]
    pub ltx_distilled_lora: Option<PathBuf>,
    /// ltx: `distilled` (8+3 steps, fastest) or `dev` (30 guided steps + 3, best quality).
    #[arg(long, env = "LTX_SERVE_LTX_PIPELINE", value_enum, default_value = "distilled")]
    pub ltx_pipeline: Pipeline,
    /// ltx: the quality presets the engine loads, comma-separated: `fast` (distilled), `balanced`
    /// (dev, two stages), `best` (the official HQ two-stage pipeline). An additive request for
    /// another preset is refused at submit. Default: what the --ltx-pipeline checkpoint runs
    /// (distilled: fast; dev: balanced,best).
    #[arg(long, env = "LTX_SERVE_LTX_PRESETS", value_delimiter = ',', value_parser = parse_quality)]
    pub ltx_presets: Vec<crate::domain::request::Quality>,
    /// Publish a low-resolution preview of a job's first stage while it samples: the job shows it
    /// as `intermediate-complete` (`result.urls`) until the final clip replaces it. The `ltx`
    /// engine decodes its stage-1 latents (a few seconds of decode, no extra denoising); the
    /// `preview` engine emulates it at half size. Off: jobs go straight from sampling to completed.
    #[arg(long, env = "LTX_SERVE_INTERMEDIATE_PREVIEWS")]
    pub intermediate_previews: bool,
    /// ltx: the engine environment's Python (made by engines/ltx/setup-venv). Default:
    /// ./.venv-ltx/bin/python when it exists, else python3.
    #[arg(long, env = "LTX_SERVE_LTX_PYTHON")]
    pub ltx_python: Option<PathBuf>,
    /// ltx: `auto`, `cpu`, `cuda` or `cuda:N`.
    #[arg(long, env = "LTX_SERVE_LTX_DEVICE", default_value = "auto")]
    pub ltx_device: String,
    /// ltx: a job with no result after this many seconds fails `timeout`; the engine is restarted.
    #[arg(long, env = "LTX_SERVE_LTX_JOB_TIMEOUT_SECS", default_value_t = 1800)]
    pub ltx_job_timeout_secs: u64,
    /// ltx: seconds the engine may take to load its models at start.
    #[arg(long, env = "LTX_SERVE_LTX_START_TIMEOUT_SECS", default_value_t = 1800)]
    pub ltx_start_timeout_secs: u64,
    /// ltx: stage-1 steps of the dev pipeline (default: 30, the checkpoint's recipe).
    #[arg(long, env = "LTX_SERVE_LTX_DEV_STEPS")]
    pub ltx_dev_steps: Option<u32>,
    /// ltx: bytes of LoRA files the engine keeps in CPU memory (the name is historical: LoRA sets
    /// are now swapped into the one resident transformer in place, never a second transformer).
    #[arg(long, env = "LTX_SERVE_LTX_TRANSFORMER_CACHE_BYTES", default_value_t = 48 << 30)]
    pub ltx_transformer_cache_bytes: u64,
    /// ltx: cast the transformer to fp8 (ltx-core's fp8 cast: ~45% less memory for it). Without it
    /// the engine still casts when that is the only way its memory plan fits (`ltx-serve engine plan`).
    #[arg(long, env = "LTX_SERVE_LTX_FP8")]
    pub ltx_fp8: bool,
    /// ltx: plan for this many GiB of GPU memory instead of the device's total (the engine refuses
    /// to start, naming the component and the shortfall, when its plan does not fit).
    #[arg(long, env = "LTX_SERVE_LTX_GPU_MEMORY_GIB")]
    pub ltx_gpu_memory_gib: Option<f64>,
    /// ltx: run this Python script instead of the built-in engine (one that speaks the engine
    /// protocol, such as a fake engine for tests).
    #[arg(long, env = "LTX_SERVE_LTX_ENGINE_SCRIPT", hide = true)]
    pub ltx_engine_script: Option<PathBuf>,
}

impl EngineArgs {
    pub fn choice(&self, scratch_dir: &Path) -> anyhow::Result<EngineChoice> {
        if self.engine != "ltx" {
            return Ok(EngineChoice::Preview);
        }
        let required = |path: &Option<PathBuf>, flag: &str, what: &str| {
            path.clone().ok_or_else(|| anyhow::anyhow!("--engine ltx needs {flag} ({what})"))
        };
        let mut config = LtxConfig::new(
            required(&self.ltx_checkpoint, "--ltx-checkpoint", "the LTX-2.3 .safetensors checkpoint")?,
            required(&self.ltx_gemma_dir, "--ltx-gemma-dir", "the Gemma-3 text encoder directory")?,
            required(&self.ltx_spatial_upsampler, "--ltx-spatial-upsampler", "the x2 spatial upsampler")?,
            scratch_dir.join("ltx-engine"),
        );
        self.apply(&mut config);
        config.check().map_err(|e| anyhow::anyhow!(e))?;
        Ok(EngineChoice::Ltx(Box::new(config)))
    }

    /// The optional flags over `LtxConfig::new`'s defaults (which the flags' defaults equal).
    fn apply(&self, config: &mut LtxConfig) {
        if let Some(python) = &self.ltx_python {
            config.python.clone_from(python);
        }
        config.distilled_lora.clone_from(&self.ltx_distilled_lora);
        config.pipeline = self.ltx_pipeline;
        config.presets.clone_from(&self.ltx_presets);
        config.device.clone_from(&self.ltx_device);
        config.job_timeout = Duration::from_secs(self.ltx_job_timeout_secs.max(1));
        config.start_timeout = Duration::from_secs(self.ltx_start_timeout_secs.max(1));
        config.dev_steps = self.ltx_dev_steps;
        config.transformer_cache_bytes = self.ltx_transformer_cache_bytes;
        config.engine_script.clone_from(&self.ltx_engine_script);
        config.fp8 = self.ltx_fp8;
        config.gpu_memory_gib = self.ltx_gpu_memory_gib;
    }
}

/// One preset of `--ltx-presets`.
fn parse_quality(text: &str) -> Result<crate::domain::request::Quality, String> {
    use crate::domain::request::Quality;
    Quality::ALL
        .into_iter()
        .find(|q| q.as_str() == text.trim())
        .ok_or_else(|| format!("`{text}` is no quality preset (fast, balanced, best)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches, Parser};

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        engine: EngineArgs,
    }

    #[test]
    fn the_flags_defaults_are_the_engines_defaults() {
        // The environment of the test run must not count: the variables are taken off the flags.
        let matches = Flags::command().mut_args(|arg| arg.env(None)).try_get_matches_from(["x"]).expect("parsed");
        let flags = Flags::from_arg_matches(&matches).expect("parsed");
        let fresh = LtxConfig::new("c".into(), "g".into(), "u".into(), "w".into());
        let mut from_flags = fresh.clone();
        flags.engine.apply(&mut from_flags);
        assert_eq!(format!("{from_flags:?}"), format!("{fresh:?}"));
    }

    #[test]
    fn ltx_presets_default_to_what_the_pipeline_runs_and_are_a_checked_list() {
        use crate::domain::request::Quality;
        let parse = |args: &[&str]| {
            let command = Flags::command().mut_args(|arg| arg.env(None));
            let matches = command.try_get_matches_from([&["x"], args].concat())?;
            Ok::<_, clap::Error>(Flags::from_arg_matches(&matches).expect("parsed").engine)
        };
        let config = |flags: EngineArgs| {
            let mut config = LtxConfig::new("c".into(), "g".into(), "u".into(), "w".into());
            flags.apply(&mut config);
            config.presets()
        };
        assert_eq!(config(parse(&[]).unwrap()), [Quality::Fast]);
        assert_eq!(config(parse(&["--ltx-pipeline", "dev"]).unwrap()), [Quality::Balanced, Quality::Best]);
        let listed = parse(&["--ltx-presets", "best,fast"]).unwrap();
        assert_eq!(listed.ltx_presets, [Quality::Best, Quality::Fast]);
        assert_eq!(config(listed), [Quality::Fast, Quality::Best], "in the presets' own order");
        let wrong = parse(&["--ltx-presets", "fast,ultra"]).err().expect("refused").to_string();
        assert!(wrong.contains("`ultra` is no quality preset"), "{wrong}");
    }
}
