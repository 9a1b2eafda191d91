//! `ltx-serve engine plan`: the GPU memory plan of the LTX engine, printed without a GPU and without
//! the weights. The planner is the engine's own (`ltx_engine.plan`, carried in the binary), run by the
//! engine environment's Python, so the plan printed here is the plan the engine enforces at start-up.
use crate::worker::engines::ltx::{default_python, write_engine_source};
use clap::{Args, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum EngineCommand {
    /// Print the memory plan: what each model weighs, what stays on the GPU, what waits on the CPU,
    /// and the most the GPU holds during a job. Exits 0 when it fits, 3 when it does not.
    Plan(Box<PlanArgs>),
}

#[derive(Args)]
pub struct PlanArgs {
    /// `distilled` or `dev`.
    #[arg(long, default_value = "distilled", value_parser = ["distilled", "dev"])]
    pipeline: String,
    /// The GPU's total memory in GiB (an H100 80 GB reports about 79.2, an H200 about 139.8).
    #[arg(long)]
    gpu_memory_gib: f64,
    /// Cast the transformer to fp8 (ltx-core's fp8 cast).
    #[arg(long)]
    fp8: bool,
    /// The rendered size: the engine renders 1280×768 for 720p and 1920×1088 for 1080p.
    #[arg(long, default_value_t = 1280)]
    width: u32,
    #[arg(long, default_value_t = 768)]
    height: u32,
    /// Frames (8k+1): 121 is 5 s at 24 fps.
    #[arg(long, default_value_t = 121)]
    num_frames: u32,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Plan these files (their headers are read, not their weights); without them the full-size
    /// LTX-2.3 model is planned from the published dimensions.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    #[arg(long)]
    gemma: Option<PathBuf>,
    #[arg(long)]
    spatial_upsampler: Option<PathBuf>,
    #[arg(long)]
    distilled_lora: Option<PathBuf>,
    /// A style LoRA to plan for (repeatable).
    #[arg(long)]
    style_lora: Vec<PathBuf>,
    /// The engine environment's Python. Default: ./.venv-ltx/bin/python when it exists, else python3.
    #[arg(long, env = "LTX_SERVE_LTX_PYTHON")]
    python: Option<PathBuf>,
}

impl PlanArgs {
    /// The planner's command line (`python -m ltx_engine.plan …`).
    fn planner_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["-m".into(), "ltx_engine.plan".into()];
        let mut flag = |name: &str, value: OsString| {
            args.push(name.into());
            args.push(value);
        };
        flag("--pipeline", self.pipeline.clone().into());
        flag("--gpu-memory-gib", self.gpu_memory_gib.to_string().into());
        flag("--width", self.width.to_string().into());
        flag("--height", self.height.to_string().into());
        flag("--num-frames", self.num_frames.to_string().into());
        let paths = [
            ("--checkpoint", &self.checkpoint),
            ("--gemma", &self.gemma),
            ("--spatial-upsampler", &self.spatial_upsampler),
            ("--distilled-lora", &self.distilled_lora),
        ];
        for (name, path) in paths {
            if let Some(path) = path {
                flag(name, path.clone().into());
            }
        }
        for path in &self.style_lora {
            flag("--style-lora", path.clone().into());
        }
        if self.fp8 {
            args.push("--fp8".into());
        }
        if self.json {
            args.push("--json".into());
        }
        args
    }
}

pub fn run(command: EngineCommand) -> anyhow::Result<ExitCode> {
    let EngineCommand::Plan(args) = command;
    let source = tempfile::tempdir()?;
    write_engine_source(source.path())?;
    let python = args.python.clone().unwrap_or_else(default_python);
    let status = std::process::Command::new(&python)
        .args(args.planner_args())
        .env("PYTHONPATH", source.path())
        .status()
        .map_err(|e| anyhow::anyhow!("cannot run the engine's Python {}: {e}", python.display()))?;
    // The planner's own exit status: 0 fits, 3 does not fit, anything else an error it printed.
    Ok(ExitCode::from(status.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: EngineCommand,
    }

    #[test]
    fn passes_every_flag_to_the_planner() {
        let cli = Cli::parse_from([
            "engine",
            "plan",
            "--pipeline",
            "dev",
            "--gpu-memory-gib",
            "79.2",
            "--fp8",
            "--width",
            "1920",
            "--height",
            "1088",
            "--num-frames",
            "241",
            "--json",
            "--checkpoint",
            "/m/ck.safetensors",
            "--style-lora",
            "/m/a.safetensors",
            "--style-lora",
            "/m/b.safetensors",
        ]);
        let EngineCommand::Plan(args) = cli.command;
        let line: Vec<String> = args.planner_args().iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(
            line.join(" "),
            "-m ltx_engine.plan --pipeline dev --gpu-memory-gib 79.2 --width 1920 --height 1088 --num-frames 241 \
             --checkpoint /m/ck.safetensors --style-lora /m/a.safetensors --style-lora /m/b.safetensors --fp8 --json"
        );
    }
}
