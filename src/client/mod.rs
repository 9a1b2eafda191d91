//! The command-line client: `generate` (submit, follow the job's live events with a progress
//! bar, download the MP4), `jobs list|get|cancel` and `account`. It speaks only the public API.
use anyhow::{bail, Context};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const GENERATE_PATH: &str = crate::api::GENERATE_PATH;

mod modes;
pub use modes::ModeCommand;

#[derive(clap::Args, Clone)]
pub struct Connection {
    /// Base URL of the server.
    #[arg(long, env = "LTX_SERVE_SERVER", default_value = "http://127.0.0.1:8080", global = true)]
    pub server: String,
    /// API key (`<key-id>:<secret>`).
    #[arg(long, env = "LTX_SERVE_API_KEY", hide_env_values = true, global = true)]
    pub api_key: Option<String>,
}

/// `generate --prompt …` (Krea's endpoint), or `generate keyframes|audio-to-video|retake …`.
#[derive(clap::Args)]
#[command(subcommand_negates_reqs = true)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// An additive mode instead of Krea's text/image-to-video.
    #[command(subcommand)]
    pub mode: Option<ModeCommand>,
    #[arg(long, required = true)]
    pub prompt: Option<String>,
    /// 5, 10, 15 or 20 seconds.
    #[arg(long)]
    pub duration: Option<u32>,
    /// 9..481 (rounded up to 8k+1); wins over --duration.
    #[arg(long)]
    pub num_frames: Option<u32>,
    /// 16:9 or 9:16.
    #[arg(long)]
    pub aspect_ratio: Option<String>,
    #[arg(long)]
    pub seed: Option<u32>,
    /// Generate a silent clip.
    #[arg(long)]
    pub no_audio: bool,
    /// First frame: a local JPEG/PNG/WebP file (uploaded as an asset) or an URL.
    #[arg(long)]
    pub start_image: Option<String>,
    /// Last frame: a local file (uploaded as an asset) or an URL.
    #[arg(long)]
    pub end_image: Option<String>,
    /// A style as ID:STRENGTH (repeatable).
    #[arg(long = "style")]
    pub styles: Vec<String>,
    /// Where to save the MP4.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the final job as JSON instead of a progress bar.
    #[arg(long)]
    pub json: bool,
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Client {
    pub fn new(connection: &Connection) -> anyhow::Result<Client> {
        let key = connection.api_key.clone().context("no API key: pass --api-key or set LTX_SERVE_API_KEY")?;
        Ok(Client { http: reqwest::Client::new(), base: connection.server.trim_end_matches('/').to_owned(), key })
    }

    async fn call(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = request.bearer_auth(&self.key).send().await.context("the server did not answer")?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{status}: {}", body["error"].as_str().unwrap_or("no error message"));
        }
        Ok(body)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(self.http.get(format!("{}{path}", self.base))).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.call(self.http.delete(format!("{}{path}", self.base))).await
    }

    pub async fn submit(&self, body: &Value) -> anyhow::Result<Value> {
        self.submit_to(GENERATE_PATH, body).await
    }

    /// Submits to another generate endpoint (an additive mode's).
    pub async fn submit_to(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.call(self.http.post(format!("{}{path}", self.base)).json(body)).await
    }

    /// Uploads a local file as an asset (streamed) and returns the asset.
    pub async fn upload_asset(&self, path: &Path) -> anyhow::Result<Value> {
        let file = tokio::fs::File::open(path).await.with_context(|| format!("reading {}", path.display()))?;
        let length = file.metadata().await?.len();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "image".into());
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
        let form = reqwest::multipart::Form::new()
            .part("file", reqwest::multipart::Part::stream_with_length(body, length).file_name(name));
        self.call(self.http.post(format!("{}/assets", self.base)).multipart(form))
            .await
            .with_context(|| format!("uploading {}", path.display()))
    }
}

/// The request body from the flags.
pub fn request_body(args: &GenerateArgs) -> anyhow::Result<Value> {
    let mut body = json!({ "prompt": args.prompt });
    if let Some(d) = args.duration {
        body["duration"] = json!(d);
    }
    if let Some(n) = args.num_frames {
        body["num_frames"] = json!(n);
    }
    if let Some(a) = &args.aspect_ratio {
        body["aspect_ratio"] = json!(a);
    }
    if let Some(s) = args.seed {
        body["seed"] = json!(s);
    }
    if args.no_audio {
        body["generate_audio"] = json!(false);
    }
    if let Some(styles) = styles(&args.styles)? {
        body["styles"] = styles;
    }
    Ok(body)
}

/// `--style ID:STRENGTH` flags as `styles` (`None` when there are none).
fn styles(flags: &[String]) -> anyhow::Result<Option<Value>> {
    if flags.is_empty() {
        return Ok(None);
    }
    let styles: Vec<Value> = flags
        .iter()
        .map(|s| {
            let (id, strength) = s.rsplit_once(':').context("--style takes ID:STRENGTH")?;
            let strength: f64 = strength.parse().with_context(|| format!("`{strength}` is not a number"))?;
            Ok(json!({ "id": id, "strength": strength }))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(Some(json!(styles)))
}

/// A URL as it is; a local file uploaded as an asset, by its `image_url`.
async fn image_reference(client: &Client, value: &str) -> anyhow::Result<String> {
    if value.starts_with("http://") || value.starts_with("https://") || value.starts_with("data:") {
        return Ok(value.to_owned());
    }
    let asset = client.upload_asset(Path::new(value)).await?;
    asset["image_url"].as_str().map(str::to_owned).context("the server returned no image_url")
}

/// Whether to cancel after Ctrl-C: asked on a terminal; a script's interrupt means stop.
async fn confirm_cancel(id: &str, bar: Option<&indicatif::ProgressBar>) -> bool {
    use std::io::{IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return true;
    }
    let ask = move || {
        eprint!("\nCancel job {id}? It is not charged if cancelled. [y/N] ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        matches!(answer.trim(), "y" | "Y" | "yes")
    };
    match bar {
        Some(bar) => bar.suspend(ask),
        None => ask(),
    }
}

pub async fn generate(mut args: GenerateArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.connection)?;
    if let Some(mode) = args.mode.take() {
        return modes::generate(client, mode).await;
    }
    let mut body = request_body(&args)?;
    for (field, value) in [("start_image", &args.start_image), ("end_image", &args.end_image)] {
        if let Some(value) = value {
            body[field] = json!(image_reference(&client, value).await?);
        }
    }
    let job = client.submit(&body).await?;
    follow_and_save(&client, job, args.out.as_deref(), args.json).await
}

/// Follows a submitted job with a progress bar (or quietly with `json`), cancels it on Ctrl-C
/// when confirmed, saves the MP4 to `out` and prints the outcome.
async fn follow_and_save(client: &Client, job: Value, out: Option<&Path>, json: bool) -> anyhow::Result<()> {
    let id = job["job_id"].as_str().context("the server returned no job id")?.to_owned();
    let bar = (!json).then(|| {
        let bar = indicatif::ProgressBar::new(1000);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {percent:>3}% {msg}")
                .expect("valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    let followed = follow(client, &id, |job| {
        if let Some(bar) = &bar {
            let status = job["status"].as_str().unwrap_or("?");
            let place = job["queue_position"].as_u64().map(|p| format!(" (#{p} in line)")).unwrap_or_default();
            bar.set_message(format!("{status}{place} {id}"));
            bar.set_position((job["progress"].as_f64().unwrap_or(0.0) * 1000.0) as u64);
        }
    });
    tokio::pin!(followed);
    let finished = loop {
        tokio::select! {
            finished = &mut followed => break finished?,
            _ = tokio::signal::ctrl_c() => {
                if confirm_cancel(&id, bar.as_ref()).await {
                    let cancelled = client.delete(&format!("/jobs/{id}")).await?;
                    if let Some(bar) = &bar {
                        bar.abandon_with_message(format!("cancelled {id}"));
                    }
                    if json {
                        println!("{}", serde_json::to_string_pretty(&cancelled)?);
                    }
                    bail!("cancelled job {id}");
                }
            }
        }
    };
    if let Some(bar) = &bar {
        bar.finish();
    }
    if let (Some(out), Some(url)) = (out, finished["result"]["urls"][0].as_str()) {
        download(url, out).await?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&finished)?);
    } else {
        match finished["status"].as_str() {
            Some("completed") => {
                println!("completed: {}", finished["result"]["urls"][0].as_str().unwrap_or(""));
                if let Some(out) = out {
                    println!("saved to {}", out.display());
                }
            }
            other => println!("{}: {}", other.unwrap_or("?"), finished["error"]["message"].as_str().unwrap_or("")),
        }
    }
    if finished["status"] != "completed" {
        bail!("the job did not complete");
    }
    Ok(())
}

/// Follows the job's events until it is terminal (falls back to polling if the stream breaks).
async fn follow(client: &Client, id: &str, mut on_change: impl FnMut(&Value)) -> anyhow::Result<Value> {
    let url = format!("{}/jobs/{id}/events", client.base);
    if let Ok(response) = client.http.get(&url).bearer_auth(&client.key).send().await {
        let mut stream = response.bytes_stream();
        let mut buffer = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let data: String = block.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
                if let Ok(job) = serde_json::from_str::<Value>(&data) {
                    on_change(&job);
                    if !job["completed_at"].is_null() {
                        return Ok(job);
                    }
                }
            }
        }
    }
    loop {
        let job = client.get(&format!("/jobs/{id}")).await?;
        on_change(&job);
        if !job["completed_at"].is_null() {
            return Ok(job);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn download(url: &str, out: &Path) -> anyhow::Result<()> {
    let bytes = reqwest::get(url).await?.error_for_status()?.bytes().await?;
    std::fs::write(out, &bytes).with_context(|| format!("writing {}", out.display()))
}
