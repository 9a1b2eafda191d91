//! The worker loop, the same in-process and remote: take a job from the queue, prepare its
//! inputs, run the engine while forwarding progress as heartbeats, then store the result and
//! complete the job. A refused heartbeat means the job was cancelled (or the lease expired):
//! the engine is stopped and the job left alone. On shutdown a running job is handed back.
use super::disk_full;
use super::engine::{Engine, EngineError, ProgressSink, RenderSpec, RenderedClip};
use super::inputs;
use super::queue::{FinishedClip, WorkItem, WorkQueue};
use crate::domain::job::{FailureCode, JobStatus};
use crate::domain::pricing::FPS;
use crate::store::{JobResult, Progress, StoreError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct WorkerConfig {
    pub name: String,
    pub heartbeat_every: Duration,
    /// Per-job scratch folders and the LoRA cache (`<scratch>/loras`) live here.
    pub scratch_dir: PathBuf,
    /// Fetches input images from other sites (a `fetch::guarded_client`).
    pub image_client: reqwest::Client,
    /// Bytes of LoRA files kept in `<scratch>/loras` (least recently used removed beyond it).
    pub lora_cache_bytes: u64,
    /// Jobs leased ahead while every model slot is busy, their inputs and LoRAs fetched, so a
    /// slot goes from one job to the next without waiting for a lease or a download. They wait
    /// for the slot inside their lease (heartbeats continue), so another, idle worker cannot
    /// take them meanwhile — for `prefetch_max_wait` at most.
    pub prefetch: usize,
    /// How long a job leased ahead waits for a model slot at most. Then it is handed back to the
    /// queue (the attempt not counted) for an idle worker elsewhere, and this worker leases no job
    /// ahead until a model slot frees: a long job must not hold the next one hostage.
    pub prefetch_max_wait: Duration,
    /// `--intermediate-previews`: engines with a first stage publish a preview of it.
    pub intermediate_previews: bool,
}

/// How long one wait for work lasts before the loop looks at shutdown again (a long poll for
/// remote workers).
const WAIT_FOR_WORK: Duration = Duration::from_secs(20);

/// What the loops of one worker share. `model`: jobs on the engine's model at once (the
/// worker's concurrency, one per GPU). `lease`: jobs leased and not yet done with the model
/// (concurrency + prefetch). A job gives both back as soon as its engine is done with the
/// model, so encoding and uploading its clip overlap the next job's model time.
struct Slots {
    model: Arc<Semaphore>,
    lease: Arc<Semaphore>,
    /// The LoRA set (`style_set_key`) of each job the worker holds, oldest lease first.
    held: std::sync::Mutex<Vec<(uuid::Uuid, String)>>,
    /// Set when a job leased ahead was handed back for waiting too long; cleared once a model
    /// slot is free. Meanwhile no job is leased ahead (it would wait as long again).
    prefetch_paused: std::sync::atomic::AtomicBool,
}

impl Slots {
    /// What the worker announces when it asks for a lease: the LoRA set its engine will have
    /// when the job it is asking for starts. Jobs start on the model in lease order, so while
    /// it holds jobs (running, prefetched) that is the set of the last one leased, whatever the
    /// engine has now; with none, what the engine has now. (A job that fails before reaching
    /// the engine makes this briefly wrong: a missed preference, never a wrong result.)
    fn announced_style_sets(&self, engine: &dyn Engine) -> Vec<String> {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        match held.last() {
            Some((_, key)) => vec![key.clone()],
            None => engine.resident_style_sets(),
        }
    }

    /// Returns at once unless prefetching is paused; then when a model slot is free (or on
    /// shutdown). Polled: it only waits while a long job holds every slot.
    async fn prefetch_resumed(&self, shutdown: &CancellationToken) {
        use std::sync::atomic::Ordering;
        while self.prefetch_paused.load(Ordering::SeqCst) {
            if self.model.available_permits() > 0 {
                self.prefetch_paused.store(false, Ordering::SeqCst);
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    fn prefetch_is_paused(&self) -> bool {
        self.prefetch_paused.load(std::sync::atomic::Ordering::SeqCst) && self.model.available_permits() == 0
    }

    fn hold(self: &Arc<Self>, job: uuid::Uuid, key: String) -> HeldJob {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).push((job, key));
        HeldJob { slots: self.clone(), job }
    }
}

/// A job counted in `Slots::held` until it is dropped (the job is done with, whatever the outcome).
struct HeldJob {
    slots: Arc<Slots>,
    job: uuid::Uuid,
}

impl Drop for HeldJob {
    fn drop(&mut self) {
        self.slots.held.lock().unwrap_or_else(|e| e.into_inner()).retain(|(job, _)| *job != self.job);
    }
}

/// Starts the loops of one worker with `count` model slots. One loop more than the slots and
/// prefetched jobs, so that a finished clip's encode and upload never hold up the next lease.
pub fn spawn_workers(
    count: usize,
    queue: impl Fn(usize) -> Arc<dyn WorkQueue>,
    engine: Arc<dyn Engine>,
    config: WorkerConfig,
    shutdown: CancellationToken,
) -> Vec<JoinHandle<()>> {
    if count == 0 {
        return Vec::new();
    }
    let slots = Arc::new(Slots {
        model: Arc::new(Semaphore::new(count)),
        lease: Arc::new(Semaphore::new(count + config.prefetch)),
        held: Default::default(),
        prefetch_paused: Default::default(),
    });
    (0..count + config.prefetch + 1)
        .map(|i| {
            let config = WorkerConfig { name: format!("{}-{i}", config.name), ..config.clone() };
            tokio::spawn(worker_loop(queue(i), engine.clone(), config, slots.clone(), shutdown.clone()))
        })
        .collect()
}

async fn worker_loop(
    queue: Arc<dyn WorkQueue>,
    engine: Arc<dyn Engine>,
    config: WorkerConfig,
    slots: Arc<Slots>,
    shutdown: CancellationToken,
) {
    while !shutdown.is_cancelled() {
        let lease_slot = tokio::select! {
            permit = slots.lease.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = shutdown.cancelled() => break,
        };
        slots.prefetch_resumed(&shutdown).await;
        if shutdown.is_cancelled() {
            break;
        }
        let resident = slots.announced_style_sets(&*engine);
        match queue.next(resident, WAIT_FOR_WORK, &shutdown).await {
            Ok(Some(item)) if shutdown.is_cancelled() => {
                let _ = queue.hand_back(item.lease).await;
            }
            // Asked for before prefetching was paused: it would only wait as long again.
            Ok(Some(item)) if slots.prefetch_is_paused() => {
                let _ = queue.hand_back(item.lease).await;
            }
            Ok(Some(item)) => {
                let _held = slots.hold(item.lease.job_id, crate::store::codec::style_set_key(&item.request.styles));
                run_job(&*queue, &*engine, &config, item, (&slots, lease_slot), &shutdown).await
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "leasing failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
        }
    }
}

/// Why a job's work ended without a clip.
enum NotDone {
    Failed(EngineError),
    /// Leased ahead, it waited for a model slot longer than `prefetch_max_wait`.
    WaitedTooLong(Duration),
}

impl From<EngineError> for NotDone {
    fn from(e: EngineError) -> Self {
        NotDone::Failed(e)
    }
}

enum Outcome {
    Done(Result<FinishedClip, EngineError>),
    /// Leased ahead, it waited too long for the engine: give it back for another worker.
    WaitedTooLong(Duration),
    /// The lease is gone (cancelled, expired): drop the work.
    LeaseLost,
    /// The worker is stopping: give the job back.
    ShuttingDown,
}

async fn run_job(
    queue: &dyn WorkQueue,
    engine: &dyn Engine,
    config: &WorkerConfig,
    item: WorkItem,
    (slots, lease_slot): (&Slots, OwnedSemaphorePermit),
    shutdown: &CancellationToken,
) {
    let lease = item.lease;
    let job_id = lease.job_id;
    tracing::info!(%job_id, worker = %config.name, attempt = item.attempt, "job leased");
    let waited = (time::OffsetDateTime::now_utc() - item.created_at).as_seconds_f64().max(0.0);
    metrics::histogram!("ltx_job_queue_wait_seconds", "engine" => engine.name()).record(waited);
    let started = std::time::Instant::now();
    let (progress, mut progress_rx) = ProgressSink::new();
    let progress = progress.with_intermediate_previews(config.intermediate_previews);
    let mut previews = super::intermediate::Previews::new(&progress);
    let cancel = CancellationToken::new();
    let scratch = match crate::media::encode::scratch_dir(&config.scratch_dir) {
        Ok(dir) => dir,
        Err(e) => {
            tracing::error!(%job_id, error = %e, "no scratch space; handing the job back");
            let _ = queue.hand_back(lease).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            return;
        }
    };
    let held = (slots, lease_slot, config.prefetch_max_wait);
    let scratch_path = scratch.path().to_owned();
    let work = async {
        let spec = prepare(queue, config, &item, &scratch_path).await?;
        // Where a mode keeps the input's audio, its exact track replaces the engine's (any engine).
        let (kept_audio, num_frames, fps) = (super::modes::kept_audio(&spec.mode), spec.num_frames, spec.fps);
        let clip = render_on_model(engine, spec, &scratch_path, progress, held, cancel.clone()).await?;
        let clip = super::modes::keep_input_audio(clip, kept_audio, num_frames, fps).await?;
        Ok::<_, NotDone>(finished_clip(engine, &item, clip))
    };
    tokio::pin!(work);
    let mut ticker = tokio::time::interval(config.heartbeat_every);
    let outcome = loop {
        tokio::select! {
            result = &mut work => break match result {
                Ok(clip) => Outcome::Done(Ok(clip)),
                Err(NotDone::Failed(e)) => Outcome::Done(Err(e)),
                Err(NotDone::WaitedTooLong(waited)) => Outcome::WaitedTooLong(waited),
            },
            _ = shutdown.cancelled() => break Outcome::ShuttingDown,
            Some(preview) = previews.next() => {
                if let Err(StoreError::LeaseLost) = previews.publish(queue, engine, lease, preview).await {
                    break Outcome::LeaseLost;
                }
            }
            _ = ticker.tick() => {
                let (status, fraction) = *progress_rx.borrow_and_update();
                let status = previews.status_after(status);
                let update = Progress { status, progress: fraction, engine: Some(engine.name().to_owned()) };
                match queue.heartbeat(lease, update).await {
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
        Outcome::Done(Ok(clip)) => {
            match with_retries(|| queue.complete(lease, clip.clone()), REPORT_RETRY_FOR, shutdown).await {
                // The clip could not be stored for want of space: rendered again later.
                Err(StoreError::Internal(why)) if disk_full::says_out_of_space(&why) => {
                    disk_full::hand_back(queue, lease, &why).await
                }
                other => other.map(|_| "completed"),
            }
        }
        Outcome::Done(Err(e))
            if e.code != FailureCode::InvalidInput
                && disk_full::out_of_space(&e.message, &config.scratch_dir).await =>
        {
            disk_full::hand_back(queue, lease, &e.message).await
        }
        Outcome::Done(Err(e)) => {
            with_retries(|| queue.fail(lease, e.code, e.message.clone()), REPORT_RETRY_FOR, shutdown)
                .await
                .map(|_| "failed")
        }
        Outcome::LeaseLost => Ok("stopped (cancelled or lease lost)"),
        Outcome::ShuttingDown => queue.hand_back(lease).await.map(|_| "handed back"),
        Outcome::WaitedTooLong(waited) => {
            tracing::info!(%job_id, waited_secs = waited.as_secs_f64(), "leased ahead, the job waited too long for the engine; handing it back for an idle worker");
            queue.hand_back(lease).await.map(|_| "handed back")
        }
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

/// How long a finished job's outcome is retried while the server is unreachable (a replica
/// restarting): a finished clip is worth keeping. Safe to repeat: a report that arrives after
/// the lease was lost is refused, never applied twice.
const REPORT_RETRY_FOR: Duration = Duration::from_secs(20);

async fn with_retries<F, Fut>(report: F, retry_for: Duration, shutdown: &CancellationToken) -> Result<(), StoreError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), StoreError>>,
{
    let deadline = tokio::time::Instant::now() + retry_for;
    let mut pause = Duration::from_millis(200);
    loop {
        match report().await {
            Err(StoreError::Unavailable(why)) if tokio::time::Instant::now() + pause < deadline => {
                tracing::warn!(error = %why, "could not report the job's outcome; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.cancelled() => return Err(StoreError::Unavailable(why)),
                }
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

/// The job's render spec, with its input images fetched and fitted and its LoRAs in the cache.
async fn prepare(
    queue: &dyn WorkQueue,
    config: &WorkerConfig,
    item: &WorkItem,
    scratch: &Path,
) -> Result<RenderSpec, EngineError> {
    let (w, h) = (item.width, item.height);
    let client = &config.image_client;
    // A continued clip (`start_video`) starts on the input's last frame: both engines take it as
    // their frame-0 image conditioning, exactly as a start image (normalise refuses both at once).
    let start_image = match (&item.request.start_image, &item.request.start_video) {
        (Some(uri), _) => Some(inputs::image(queue, client, scratch, "start_image", uri, (w, h)).await?),
        (None, Some(uri)) => Some(inputs::last_frame_of_video(queue, client, scratch, uri, (w, h)).await?),
        (None, None) => None,
    };
    let end_image = match &item.request.end_image {
        Some(uri) => Some(inputs::image(queue, client, scratch, "end_image", uri, (w, h)).await?),
        None => None,
    };
    let loras = inputs::loras(queue, item, &config.scratch_dir.join("loras"), config.lora_cache_bytes).await?;
    let mode = super::modes::render_mode(queue, client, scratch, item, (w, h)).await?;
    Ok(RenderSpec {
        prompt: item.request.prompt.clone(),
        seed: item.seed,
        width: w,
        height: h,
        num_frames: item.request.num_frames,
        fps: FPS,
        generate_audio: item.request.generate_audio,
        start_image,
        end_image,
        loras,
        mode,
        quality: item.request.quality,
        enhance_prompt: item.request.enhance_prompt,
    })
}

/// Waits for a model slot (the job stays `processing` meanwhile), then renders; the slot and
/// the lease slot are given back as soon as the engine is done with the model. A job that
/// waits longer than `max_wait` pauses prefetching and ends as `WaitedTooLong`, to be handed back.
async fn render_on_model(
    engine: &dyn Engine,
    spec: RenderSpec,
    scratch: &Path,
    progress: ProgressSink,
    (slots, lease_slot, max_wait): (&Slots, OwnedSemaphorePermit, Duration),
    cancel: CancellationToken,
) -> Result<RenderedClip, NotDone> {
    let model_slot = match tokio::time::timeout(max_wait, slots.model.clone().acquire_owned()).await {
        Ok(slot) => slot.expect("the semaphore is never closed"),
        Err(_) => {
            // Paused before the lease slot is given back (when this returns): another loop
            // must not lease ahead again at once, maybe this very job.
            slots.prefetch_paused.store(true, std::sync::atomic::Ordering::SeqCst);
            drop(lease_slot);
            return Err(NotDone::WaitedTooLong(max_wait));
        }
    };
    progress.report(JobStatus::Sampling, 0.0);
    let mut model_finished = progress.model_finished_signal();
    let render = engine.render(spec, scratch, progress, cancel);
    tokio::pin!(render);
    let mut slots = Some((model_slot, lease_slot));
    loop {
        tokio::select! {
            clip = &mut render => return clip.map_err(NotDone::Failed),
            _ = model_finished.wait_for(|done| *done), if slots.is_some() => slots = None,
        }
    }
}

fn finished_clip(engine: &dyn Engine, item: &WorkItem, clip: RenderedClip) -> FinishedClip {
    FinishedClip {
        video: clip.video,
        poster: clip.poster,
        result: JobResult {
            video_key: String::new(),
            poster_key: String::new(),
            width: item.width,
            height: item.height,
            num_frames: item.request.num_frames,
            fps: FPS,
            has_audio: clip.has_audio,
            engine: engine.name().to_owned(),
            enhanced_prompt: clip.enhanced_prompt.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Answers with each of `replies` in turn, then Ok; counts the calls.
    fn scripted(replies: Vec<StoreError>) -> (impl Fn() -> std::future::Ready<Result<(), StoreError>>, Arc<AtomicU32>) {
        let calls = Arc::new(AtomicU32::new(0));
        let seen = calls.clone();
        let replies = std::sync::Mutex::new(replies.into_iter());
        let report = move || {
            seen.fetch_add(1, Ordering::SeqCst);
            std::future::ready(match replies.lock().unwrap().next() {
                Some(e) => Err(e),
                None => Ok(()),
            })
        };
        (report, calls)
    }

    fn down() -> StoreError {
        StoreError::Unavailable("connection refused".into())
    }

    #[test]
    fn a_worker_announces_the_set_its_engine_will_have_for_the_next_lease() {
        let engine = crate::worker::engines::preview::PreviewEngine::new(Duration::ZERO);
        let slots = Arc::new(Slots {
            model: Arc::new(Semaphore::new(1)),
            lease: Arc::new(Semaphore::new(2)),
            held: Default::default(),
            prefetch_paused: Default::default(),
        });
        assert_eq!(slots.announced_style_sets(&engine), vec![String::new()], "idle: what the engine has");
        let running = slots.hold(uuid::Uuid::new_v4(), "a@1".into());
        let prefetched = slots.hold(uuid::Uuid::new_v4(), "b@1".into());
        assert_eq!(slots.announced_style_sets(&engine), vec!["b@1".to_owned()], "the last job leased runs last");
        drop(prefetched);
        assert_eq!(slots.announced_style_sets(&engine), vec!["a@1".to_owned()]);
        drop(running);
        assert_eq!(slots.announced_style_sets(&engine), vec![String::new()]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_outcome_is_retried_while_the_server_is_unreachable() {
        let (report, calls) = scripted(vec![down(), down()]);
        assert!(with_retries(report, Duration::from_secs(20), &CancellationToken::new()).await.is_ok());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_lease_is_not_retried_and_retries_end_at_the_deadline() {
        let (report, calls) = scripted(vec![StoreError::LeaseLost]);
        assert!(matches!(
            with_retries(report, Duration::from_secs(20), &CancellationToken::new()).await,
            Err(StoreError::LeaseLost)
        ));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let (report, calls) = scripted((0..100).map(|_| down()).collect());
        let started = tokio::time::Instant::now();
        assert!(matches!(
            with_retries(report, Duration::from_secs(20), &CancellationToken::new()).await,
            Err(StoreError::Unavailable(_))
        ));
        assert!(started.elapsed() <= Duration::from_secs(20));
        assert!(calls.load(Ordering::SeqCst) > 3, "it kept trying");
    }
}
