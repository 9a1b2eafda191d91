//! Which quality presets this deployment can run, so that an additive request for a preset no
//! engine has loaded is a 400 at submit rather than a failure at run time. The presets come from
//! the engine of this process's in-process workers (`Engine::presets`) and from what live remote
//! workers announced with their last lease request (`WorkerInfo::presets`, kept in the worker
//! registry): no extra state, and every replica of a fleet sees the same registry.
use super::error::ApiError;
use super::health::WORKER_LIVENESS;
use super::AppState;
use crate::domain::request::Quality;

/// Refuses `quality` (a 400 naming `quality` and listing the loaded presets) when no engine that
/// can run jobs here has loaded it. `None` (the engine's default, Krea's endpoint) always passes.
/// With no worker at all (no in-process workers and no live remote one) any preset is accepted:
/// nobody can say yet, and the job waits in the queue for a worker like any other.
pub async fn check(state: &AppState, quality: Option<Quality>) -> Result<(), ApiError> {
    let Some(quality) = quality else { return Ok(()) };
    judge(quality, loaded(state).await?.as_deref()).map_err(ApiError::bad_request)
}

/// The presets loaded by the engines that can run jobs here, in `Quality::ALL` order; `None`
/// when there is no such engine (no in-process workers, no live remote worker).
pub async fn loaded(state: &AppState) -> Result<Option<Vec<Quality>>, ApiError> {
    let mut workers = 0;
    let mut presets: Vec<Quality> = Vec::new();
    if let Some(engine) = &state.in_process_engine {
        workers += 1;
        presets.extend(engine.presets());
    }
    for worker in state.store.live_workers(WORKER_LIVENESS).await? {
        workers += 1;
        presets.extend(worker.info.presets);
    }
    Ok((workers > 0).then(|| Quality::ALL.into_iter().filter(|q| presets.contains(q)).collect()))
}

/// The rule, on its own: `loaded` as `loaded()` answers it.
fn judge(quality: Quality, loaded: Option<&[Quality]>) -> Result<(), String> {
    match loaded {
        None => Ok(()),
        Some(loaded) if loaded.contains(&quality) => Ok(()),
        Some(loaded) => {
            let names: Vec<String> = loaded.iter().map(|q| format!("`{}`", q.as_str())).collect();
            let offered = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
            Err(format!(
                "`quality`: no engine here has loaded the `{}` preset's weights; loaded presets: {offered}.",
                quality.as_str()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preset_passes_when_loaded_or_when_no_engine_can_tell() {
        assert_eq!(judge(Quality::Best, Some(&Quality::ALL)), Ok(()));
        assert_eq!(judge(Quality::Fast, Some(&[Quality::Fast])), Ok(()));
        assert_eq!(judge(Quality::Best, None), Ok(()), "no worker yet: the job waits for one");
    }

    #[test]
    fn an_unloaded_preset_is_refused_naming_the_field_and_the_loaded_ones() {
        let refused = judge(Quality::Best, Some(&[Quality::Fast, Quality::Balanced])).unwrap_err();
        assert!(refused.starts_with("`quality`: "), "{refused}");
        assert!(refused.contains("`best`") && refused.contains("`fast`, `balanced`"), "{refused}");
        let none = judge(Quality::Fast, Some(&[])).unwrap_err();
        assert!(none.ends_with("loaded presets: none."), "{none}");
    }
}
