//! A job as clients see it: Krea's fields first (`job_id`, `status`, `created_at`,
//! `completed_at`, `result`), then our additive ones.
use crate::domain::job::JobStatus;
use crate::store::Job;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

pub fn job_json(job: &Job, public_url: &str) -> Value {
    let error = job.failure.as_ref().map(|f| json!({ "code": f.code.as_str(), "message": f.message }));
    let result = match (job.status, &job.result, &error) {
        (JobStatus::Completed, Some(r), _) => {
            let sandbox = r.engine == "preview";
            json!({
                "urls": [format!("{public_url}/results/{}", r.video_key)],
                "thumbnail_url": format!("{public_url}/results/{}", r.poster_key),
                "width": r.width,
                "height": r.height,
                "num_frames": r.num_frames,
                "fps": r.fps,
                "duration_s": f64::from(r.num_frames) / f64::from(r.fps),
                "has_audio": r.has_audio,
                "seed": job.seed,
                "engine": r.engine,
                "sandbox": sandbox,
            })
        }
        (JobStatus::Failed, _, Some(e)) => json!({ "error": e }),
        _ => Value::Null,
    };
    let mut request = serde_json::to_value(&job.request).unwrap_or(Value::Null);
    request["seed"] = json!(job.seed);
    for field in ["start_image", "end_image"] {
        if let Some(uri) = request[field].as_str().filter(|u| u.starts_with("data:")) {
            request[field] = json!(summarise_data_uri(uri));
        }
    }
    let mut body = json!({
        "job_id": job.id,
        "status": job.status.as_str(),
        "created_at": rfc3339(job.created_at),
        "completed_at": job.completed_at.map(rfc3339),
        "result": result,
        "type": job.kind,
        "progress": job.progress,
        "queue_position": job.queue_position,
        "attempts": job.attempts,
        "engine": job.engine,
        "started_at": job.started_at.map(rfc3339),
        "request": request,
        "width": job.width,
        "height": job.height,
        "price_usd": job.price,
        "billed_duration_s": job.price_tier_seconds,
        "webhook": job.webhook,
    });
    if let Some(error) = error {
        body["error"] = error;
    }
    body
}

/// A `data:` image is echoed as its type and size, not its megabytes of base64 (on every poll
/// and webhook).
fn summarise_data_uri(uri: &str) -> String {
    let (meta, payload) = uri.split_once(',').unwrap_or((uri, ""));
    format!("{meta},<{} bytes>", payload.len() / 4 * 3)
}
