//! First-stage previews (`--intermediate-previews`): the worker loop stores the preview an engine
//! reports and keeps the job `intermediate-complete` from then on (the engine goes on reporting
//! `sampling` progress, which would otherwise move the job back and hide the preview).
use super::engine::{Engine, IntermediateClip, ProgressSink};
use super::queue::{FinishedClip, WorkQueue};
use crate::domain::job::JobStatus;
use crate::domain::pricing::FPS;
use crate::store::{JobResult, LeaseRef, StoreError};
use tokio::sync::watch;

pub struct Previews {
    reported: watch::Receiver<Option<IntermediateClip>>,
    published: bool,
}

impl Previews {
    pub fn new(progress: &ProgressSink) -> Previews {
        Previews { reported: progress.intermediate_signal(), published: false }
    }

    /// The next preview the engine reports; never resolves once the engine is done.
    pub async fn next(&mut self) -> Option<IntermediateClip> {
        if self.reported.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
        self.reported.borrow_and_update().clone()
    }

    /// Stores the preview and shows it. `LeaseLost` stops the job; any other failure only costs
    /// the preview (the final clip still comes).
    pub async fn publish(
        &mut self,
        queue: &dyn WorkQueue,
        engine: &dyn Engine,
        lease: LeaseRef,
        preview: IntermediateClip,
    ) -> Result<(), StoreError> {
        let clip = FinishedClip {
            video: preview.clip.video,
            poster: preview.clip.poster,
            result: JobResult {
                video_key: String::new(),
                poster_key: String::new(),
                width: preview.width,
                height: preview.height,
                num_frames: preview.num_frames,
                fps: FPS,
                has_audio: preview.clip.has_audio,
                engine: engine.name().to_owned(),
                enhanced_prompt: None,
            },
        };
        match queue.publish_preview(lease, clip).await {
            Ok(()) => {
                self.published = true;
                tracing::info!(job_id = %lease.job_id, "first-stage preview published");
                Ok(())
            }
            Err(StoreError::LeaseLost) => Err(StoreError::LeaseLost),
            Err(e) => {
                tracing::warn!(job_id = %lease.job_id, error = %e, "could not publish the first-stage preview");
                Ok(())
            }
        }
    }

    /// The status a heartbeat reports: once the preview is shown, sampling goes on as
    /// `intermediate-complete`.
    pub fn status_after(&self, engine_status: JobStatus) -> JobStatus {
        if self.published && engine_status == JobStatus::Sampling {
            JobStatus::IntermediateComplete
        } else {
            engine_status
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reported_preview_is_seen_once_and_only_when_asked_for() {
        let (sink, _) = ProgressSink::new();
        let mut previews = Previews::new(&sink);
        let clip = IntermediateClip {
            clip: crate::worker::engine::RenderedClip {
                video: "v".into(),
                poster: "p".into(),
                has_audio: false,
                enhanced_prompt: None,
            },
            width: 32,
            height: 16,
            num_frames: 9,
        };
        sink.intermediate(clip.clone());
        let nothing = tokio::time::timeout(std::time::Duration::from_millis(50), previews.next()).await;
        assert!(nothing.is_err(), "not asked for: no preview");

        let (sink, _) = ProgressSink::new();
        let sink = sink.with_intermediate_previews(true);
        let mut previews = Previews::new(&sink);
        sink.intermediate(clip.clone());
        assert_eq!(previews.next().await, Some(clip));
        drop(sink);
        let after = tokio::time::timeout(std::time::Duration::from_millis(50), previews.next()).await;
        assert!(after.is_err(), "the engine is done: nothing more, and no busy loop");
    }

    #[test]
    fn sampling_reads_as_intermediate_complete_once_published() {
        let (sink, _) = ProgressSink::new();
        let mut previews = Previews::new(&sink);
        assert_eq!(previews.status_after(JobStatus::Sampling), JobStatus::Sampling);
        previews.published = true;
        assert_eq!(previews.status_after(JobStatus::Sampling), JobStatus::IntermediateComplete);
        assert_eq!(previews.status_after(JobStatus::Processing), JobStatus::Processing);
    }
}
