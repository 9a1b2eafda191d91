//! Settings of the `ltx` engine and the checks made at start-up, so a wrong path is an error
//! when the worker starts, not at its first job.
use super::process::Launch;
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Pipeline {
    /// The distilled checkpoint: 8 + 3 steps, no guidance (fastest).
    Distilled,
    /// The dev checkpoint: 30 guided steps at half resolution, then 3 with the distilled LoRA.
    Dev,
}

impl Pipeline {
    pub fn as_str(self) -> &'static str {
        match self {
            Pipeline::Distilled => "distilled",
            Pipeline::Dev => "dev",
        }
    }
}

#[derive(Clone, Debug)]
pub struct LtxConfig {
    /// The Python of the engine's environment (engines/ltx/setup-venv makes `.venv-ltx`).
    pub python: PathBuf,
    /// The bundled LTX-2.3 checkpoint (`ltx-2.3-22b-distilled.safetensors` or `…-dev…`).
    pub checkpoint: PathBuf,
    /// The Gemma-3 text encoder directory.
    pub gemma_dir: PathBuf,
    pub spatial_upsampler: PathBuf,
    /// Needed by the dev pipeline's second stage.
    pub distilled_lora: Option<PathBuf>,
    pub pipeline: Pipeline,
    /// `--ltx-presets`: the quality presets whose pipelines the engine loads (empty: the one
    /// `pipeline` runs, see `LtxConfig::presets`).
    pub presets: Vec<crate::domain::request::Quality>,
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// A job with no result after this long is stopped: the engine is killed and restarted.
    pub job_timeout: Duration,
    pub start_timeout: Duration,
    /// How long a cancelled job may take to stop before the engine is killed. The engine checks
    /// for a cancel between denoising steps, LoRA-swap tensors and VAE decode chunks; the longest
    /// of those is one denoising step, which at 1080p × 20 s on the full model can take tens of
    /// seconds. Killing a healthy engine costs a model reload (minutes), so the grace is generous.
    pub cancel_grace: Duration,
    /// Stage-1 steps of the dev pipeline (default: the checkpoint's, 30 for LTX-2.3).
    pub dev_steps: Option<u32>,
    /// Bytes of LoRA files the engine keeps in CPU memory (historical name: LoRA sets are swapped
    /// into the one resident transformer in place; there is no transformer cache any more).
    pub transformer_cache_bytes: u64,
    /// Cast the transformer to fp8 (the engine's memory plan may also choose it to fit).
    pub fp8: bool,
    /// Plan for this much GPU memory instead of the device's total.
    pub gpu_memory_gib: Option<f64>,
    /// Runs this script instead of the engine built into the binary (a fake engine in tests).
    pub engine_script: Option<PathBuf>,
    /// Where the built-in engine's Python source is written before it starts.
    pub work_dir: PathBuf,
}

impl LtxConfig {
    pub fn new(checkpoint: PathBuf, gemma_dir: PathBuf, spatial_upsampler: PathBuf, work_dir: PathBuf) -> LtxConfig {
        LtxConfig {
            python: default_python(),
            checkpoint,
            gemma_dir,
            spatial_upsampler,
            distilled_lora: None,
            pipeline: Pipeline::Distilled,
            presets: Vec::new(),
            device: "auto".into(),
            job_timeout: Duration::from_secs(30 * 60),
            start_timeout: Duration::from_secs(30 * 60),
            cancel_grace: Duration::from_secs(60),
            dev_steps: None,
            transformer_cache_bytes: 48 << 30,
            fp8: false,
            gpu_memory_gib: None,
            engine_script: None,
            work_dir,
        }
    }

    /// The quality presets the engine serves: `--ltx-presets` as given, else what the
    /// `--ltx-pipeline` checkpoint runs (distilled: `fast`; dev: `balanced` and `best`, the HQ
    /// pipeline being the dev checkpoint with another sampler).
    pub fn presets(&self) -> Vec<crate::domain::request::Quality> {
        use crate::domain::request::Quality;
        if !self.presets.is_empty() {
            return Quality::ALL.into_iter().filter(|q| self.presets.contains(q)).collect();
        }
        match self.pipeline {
            Pipeline::Distilled => vec![Quality::Fast],
            Pipeline::Dev => vec![Quality::Balanced, Quality::Best],
        }
    }

    /// Every model path exists and looks like what it should be.
    pub fn check(&self) -> Result<(), String> {
        checkpoint_with_config(&self.checkpoint, "--ltx-checkpoint")?;
        checkpoint_with_config(&self.spatial_upsampler, "--ltx-spatial-upsampler")?;
        if !self.gemma_dir.is_dir() {
            return Err(format!("--ltx-gemma-dir {} is not a directory", self.gemma_dir.display()));
        }
        type FileNamed = fn(&str) -> bool;
        let wanted_files: [(&str, FileNamed); 3] = [
            ("tokenizer.model", |n: &str| n == "tokenizer.model"),
            ("preprocessor_config.json", |n: &str| n == "preprocessor_config.json"),
            ("model*.safetensors", |n: &str| n.starts_with("model") && n.ends_with(".safetensors")),
        ];
        for (what, wanted) in wanted_files {
            if !contains_file(&self.gemma_dir, wanted, 3) {
                return Err(format!(
                    "--ltx-gemma-dir {} has no {what}; it must hold the Gemma-3 text encoder (weights and tokenizer)",
                    self.gemma_dir.display()
                ));
            }
        }
        match (&self.distilled_lora, self.pipeline) {
            (Some(lora), _) => readable(lora, "--ltx-distilled-lora")?,
            (None, Pipeline::Dev) => {
                return Err("the dev pipeline needs --ltx-distilled-lora (its second stage fuses it)".into())
            }
            (None, Pipeline::Distilled) => {}
        }
        if let Some(script) = &self.engine_script {
            readable(script, "--ltx-engine-script")?;
        }
        if self.python.components().count() > 1 && !self.python.is_file() {
            return Err(format!(
                "--ltx-python {} does not exist; create the engine's environment with engines/ltx/setup-venv",
                self.python.display()
            ));
        }
        Ok(())
    }

    /// The command line of the engine process. The built-in engine's source is written to
    /// `work_dir` first, so the binary carries its engine with it.
    pub fn launch(&self) -> std::io::Result<Launch> {
        let mut args: Vec<OsString> = match &self.engine_script {
            Some(script) => vec![script.into()],
            None => {
                super::source::write_to(&self.work_dir)?;
                vec!["-m".into(), "ltx_engine.server".into()]
            }
        };
        let mut flag = |name: &str, value: OsString| {
            args.push(name.into());
            args.push(value);
        };
        flag("--checkpoint", self.checkpoint.clone().into());
        flag("--gemma", self.gemma_dir.clone().into());
        flag("--spatial-upsampler", self.spatial_upsampler.clone().into());
        if let Some(lora) = &self.distilled_lora {
            flag("--distilled-lora", lora.clone().into());
        }
        flag("--pipeline", self.pipeline.as_str().into());
        flag("--device", self.device.clone().into());
        flag("--transformer-cache-bytes", self.transformer_cache_bytes.to_string().into());
        if let Some(steps) = self.dev_steps {
            flag("--dev-steps", steps.to_string().into());
        }
        if let Some(gib) = self.gpu_memory_gib {
            flag("--gpu-memory-gib", gib.to_string().into());
        }
        if self.fp8 {
            args.push("--fp8".into());
        }
        Ok(Launch {
            program: self.python.clone(),
            args,
            env: vec![
                ("PYTHONPATH".into(), self.work_dir.clone().into()),
                ("PYTHONUNBUFFERED".into(), "1".into()),
                ("TQDM_DISABLE".into(), "1".into()),
                ("TOKENIZERS_PARALLELISM".into(), "false".into()),
                // Weights, LoRA swaps and per-size activations fragment torch's CUDA allocator;
                // expandable segments let freed blocks be reused. An operator's own value wins.
                (
                    "PYTORCH_CUDA_ALLOC_CONF".into(),
                    std::env::var_os("PYTORCH_CUDA_ALLOC_CONF").unwrap_or_else(|| "expandable_segments:True".into()),
                ),
            ],
            start_timeout: self.start_timeout,
        })
    }
}

/// `.venv-ltx/bin/python` when the working directory has it (engines/ltx/setup-venv), else `python3`.
pub fn default_python() -> PathBuf {
    let venv = PathBuf::from(".venv-ltx/bin/python");
    match std::fs::canonicalize(&venv) {
        Ok(_) => std::path::absolute(&venv).unwrap_or(venv),
        Err(_) => PathBuf::from("python3"),
    }
}

fn readable(path: &Path, flag: &str) -> Result<(), String> {
    std::fs::File::open(path).map(drop).map_err(|e| format!("{flag} {}: {e}", path.display()))
}

/// A safetensors file whose header metadata carries the model `config` (as LTX's files do).
fn checkpoint_with_config(path: &Path, flag: &str) -> Result<(), String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("{flag} {}: {e}", path.display()))?;
    let not_ltx = |why: &str| format!("{flag} {} is not an LTX safetensors file ({why})", path.display());
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(|_| not_ltx("shorter than a header"))?;
    let len = u64::from_le_bytes(len);
    if len > 100 << 20 {
        return Err(not_ltx("its header length is absurd"));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header).map_err(|_| not_ltx("truncated header"))?;
    let header: serde_json::Value = serde_json::from_slice(&header).map_err(|_| not_ltx("header is not JSON"))?;
    match header.pointer("/__metadata__/config") {
        Some(serde_json::Value::String(_)) => Ok(()),
        _ => Err(not_ltx("no `config` in its metadata")),
    }
}

fn contains_file(dir: &Path, wanted: fn(&str) -> bool, depth: u32) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    entries.flatten().any(|entry| {
        let path = entry.path();
        if path.is_dir() {
            depth > 0 && contains_file(&path, wanted, depth - 1)
        } else {
            entry.file_name().to_str().is_some_and(wanted)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn safetensors(dir: &Path, name: &str, header: &str) -> PathBuf {
        let path = dir.join(name);
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn start_up_checks_name_the_bad_path() {
        let dir = tempfile::tempdir().unwrap();
        let good = r#"{"__metadata__":{"config":"{}"}}"#;
        let checkpoint = safetensors(dir.path(), "ltx.safetensors", good);
        let upsampler = safetensors(dir.path(), "up.safetensors", good);
        let gemma = dir.path().join("gemma");
        std::fs::create_dir_all(gemma.join("tok")).unwrap();
        for file in ["tok/tokenizer.model", "preprocessor_config.json", "model-00001-of-00005.safetensors"] {
            std::fs::write(gemma.join(file), b"x").unwrap();
        }
        let mut config = LtxConfig::new(checkpoint, gemma.clone(), upsampler, dir.path().join("src"));
        config.python = "python3".into();
        assert_eq!(config.check(), Ok(()));

        let mut wrong = config.clone();
        wrong.checkpoint = safetensors(dir.path(), "plain.safetensors", r#"{"__metadata__":{"format":"pt"}}"#);
        assert!(wrong.check().unwrap_err().contains("no `config` in its metadata"));
        wrong.checkpoint = dir.path().join("missing.safetensors");
        assert!(wrong.check().unwrap_err().starts_with("--ltx-checkpoint"));

        let mut dev = config.clone();
        dev.pipeline = Pipeline::Dev;
        assert!(dev.check().unwrap_err().contains("--ltx-distilled-lora"));

        std::fs::remove_file(gemma.join("tok/tokenizer.model")).unwrap();
        assert!(config.check().unwrap_err().contains("no tokenizer.model"));
    }

    #[test]
    fn the_memory_plan_flags_reach_the_engine() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = LtxConfig::new("c".into(), "g".into(), "u".into(), dir.path().join("src"));
        let line = |config: &LtxConfig| -> Vec<String> {
            config.launch().unwrap().args.iter().map(|a| a.to_string_lossy().into_owned()).collect()
        };
        assert!(!line(&config).iter().any(|a| a == "--fp8" || a == "--gpu-memory-gib"));
        config.fp8 = true;
        config.gpu_memory_gib = Some(79.2);
        let args = line(&config);
        assert!(args.contains(&"--fp8".to_owned()));
        assert!(args.windows(2).any(|w| w[0] == "--gpu-memory-gib" && w[1] == "79.2"), "{args:?}");
    }
}
