//! The worker loop: lease a job, prepare its inputs, run the engine while forwarding progress as
//! heartbeats, store the result and complete the job. A refused heartbeat means the job was
//! cancelled (or the lease expired): the engine is stopped and the job left alone. On shutdown a
//! running job is handed back to the queue.
use super::engine::{Engine, EngineError, ProgressSink, RenderSpec};
use super::results::LocalResults;
use crate::domain::job::{FailureCode, JobStatus};
use crate::domain::pricing::FPS;
use crate::media::input_image;
use crate::store::{JobResult, Lease, Progress, Store, StoreError};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct WorkerConfig {
    pub name: String,
    pub lease_ttl: Duration,
    pub heartbeat_every: Duration,
    pub scratch_dir: PathBuf,
    pub results: LocalResults,
}

pub fn spawn_workers(
    count: usize,
    store: Arc<dyn Store>,
    engine: Arc<dyn Engine>,
    config: WorkerConfig,
    shutdown: CancellationToken,
) -> Vec<JoinHandle<()>> {
    (0..count)
        .map(|i| {
            let config = WorkerConfig { name: format!("{}-{i}", config.name), ..config.clone() };
            tokio::spawn(worker_loop(store.clone(), engine.clone(), config, shutdown.clone()))
        })
        .collect()
}

async fn worker_loop(
    store: Arc<dyn Store>,
    engine: Arc<dyn Engine>,
    config: WorkerConfig,
    shutdown: CancellationToken,
) {
    let signal = store.queue_signal();
    while !shutdown.is_cancelled() {
        // Register for the wake-up before looking, so a job queued in between is not missed.
        let notified = signal.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match store.lease(crate::store::WorkerLease::named(config.name.clone()), config.lease_ttl).await {
            Ok(Some(lease)) => run_job(&*store, &*engine, &config, lease, &shutdown).await,
            Ok(None) => {
                tokio::select! {
                    _ = notified => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "leasing failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

enum Outcome {
    Done(Result<JobResult, EngineError>),
    /// The lease is gone (cancelled, expired): drop the work.
    LeaseLost,
    /// The server is stopping: give the job back.
    ShuttingDown,
}

async fn run_job(
    store: &dyn Store,
    engine: &dyn Engine,
    config: &WorkerConfig,
    lease: Lease,
    shutdown: &CancellationToken,
) {
    let lease_ref = lease.lease;
    let job_id = lease_ref.job_id;
    tracing::info!(%job_id, worker = %config.name, attempt = lease.job.attempts, "job leased");
    let waited = (time::OffsetDateTime::now_utc() - lease.job.created_at).as_seconds_f64().max(0.0);
    metrics::histogram!("ltx_job_queue_wait_seconds", "engine" => engine.name()).record(waited);
    let started = std::time::Instant::now();
    let (progress, mut progress_rx) = ProgressSink::new();
    let cancel = CancellationToken::new();
    let work = prepare_and_render(engine, config, lease, progress, cancel.clone());
    tokio::pin!(work);
    let mut ticker = tokio::time::interval(config.heartbeat_every);
    let outcome = loop {
        tokio::select! {
            result = &mut work => break Outcome::Done(result),
            _ = shutdown.cancelled() => break Outcome::ShuttingDown,
            _ = ticker.tick() => {
                let (status, fraction) = *progress_rx.borrow_and_update();
                let update = Progress { status, progress: fraction, engine: Some(engine.name().to_owned()) };
                match store.heartbeat(lease_ref, update, config.lease_ttl).await {
                    Ok(()) => {}
                    Err(StoreError::LeaseLost) => break Outcome::LeaseLost,
                    Err(e) => tracing::warn!(%job_id, error = %e, "heartbeat failed"),
                }
            }
        }
    };
    // Stops the engine if it is still running (cancelled job, shutdown).
    cancel.cancel();
    let reported = match outcome {
        Outcome::Done(Ok(result)) => store.complete(lease_ref, result).await.map(|_| "completed"),
        Outcome::Done(Err(e)) => store.fail(lease_ref, e.code, e.message).await.map(|_| "failed"),
        Outcome::LeaseLost => Ok("stopped (cancelled or lease lost)"),
        Outcome::ShuttingDown => store.hand_back(lease_ref).await.map(|_| "handed back"),
    };
    if let Ok(outcome) = reported {
        let outcome = outcome.split(' ').next().unwrap_or(outcome);
        metrics::histogram!("ltx_job_run_seconds", "engine" => engine.name(), "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
    }
    match reported {
        Ok(what) => tracing::info!(%job_id, "job {what}"),
        Err(StoreError::LeaseLost) => {
            tracing::info!(%job_id, "job finished after its lease was lost; result discarded")
        }
        Err(e) => {
            tracing::error!(%job_id, error = %e, "could not record the job's outcome; its lease will expire")
        }
    }
}

async fn prepare_and_render(
    engine: &dyn Engine,
    config: &WorkerConfig,
    lease: Lease,
    progress: ProgressSink,
    cancel: CancellationToken,
) -> Result<JobResult, EngineError> {
    let job = lease.job;
    let request = job.request.clone();
    let (w, h) = (job.width, job.height);
    let decode = move |uri: Option<String>, field: &'static str| -> Result<_, EngineError> {
        uri.map(|u| {
            input_image::load_data_uri(&u, w, h).map_err(|why| {
                EngineError::new(FailureCode::InvalidInput, format!("`{field}` could not be used: {why}."))
            })
        })
        .transpose()
    };
    let (start_image, end_image) = tokio::task::spawn_blocking(move || {
        Ok::<_, EngineError>((decode(request.start_image, "start_image")?, decode(request.end_image, "end_image")?))
    })
    .await
    .map_err(|e| EngineError::new(FailureCode::InternalError, e.to_string()))??;
    let spec = RenderSpec {
        prompt: job.request.prompt.clone(),
        seed: job.seed,
        width: w,
        height: h,
        num_frames: job.request.num_frames,
        fps: FPS,
        generate_audio: job.request.generate_audio,
        start_image,
        end_image,
        styles: job.request.styles.clone(),
    };
    progress.report(JobStatus::Sampling, 0.0);
    let internal = |e: std::io::Error| EngineError::new(FailureCode::InternalError, format!("result storage: {e}"));
    let scratch = crate::media::encode::scratch_dir(&config.scratch_dir).map_err(internal)?;
    let clip = engine.render(spec, scratch.path(), progress, cancel).await?;
    let results = config.results.clone();
    let (video, poster) = (clip.video.clone(), clip.poster.clone());
    let stored = tokio::task::spawn_blocking(move || results.put(&video, &poster))
        .await
        .map_err(|e| EngineError::new(FailureCode::InternalError, e.to_string()))?
        .map_err(internal)?;
    Ok(JobResult {
        video_key: stored.video_key,
        poster_key: stored.poster_key,
        width: w,
        height: h,
        num_frames: job.request.num_frames,
        fps: FPS,
        has_audio: clip.has_audio,
        engine: engine.name().to_owned(),
    })
}
