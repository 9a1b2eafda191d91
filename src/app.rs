//! Start-up of the `serve` role: store, HTTP listener, scheduler and in-process workers, and a
//! graceful stop. Tests build the same `Application` on port 0 with a fresh data dir.
use crate::api::{self, AppState};
use crate::config::EngineChoice;
use crate::config::ServeConfig;
use crate::storage::ResultStorage;
use crate::store::Store;
use crate::store::WorkerLease;
use crate::worker::engine::Engine;
use crate::worker::queue::{StoreQueue, WorkQueue};
use crate::worker::{spawn_workers, WorkerConfig};
use anyhow::Context;
use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    state: AppState,
    engine: Arc<dyn Engine>,
}

/// A server bound to its address whose engine is not loaded yet. Until `load` returns, the
/// address answers `/healthz`, and 503 `engine: loading` everywhere else (api/loading.rs), so a
/// starting replica is told apart from a dead one.
pub struct Starting {
    listener: TcpListener,
    address: SocketAddr,
    state: AppState,
    loading: LoadingAnswers,
}

impl Starting {
    pub async fn bind(config: ServeConfig) -> anyhow::Result<Starting> {
        crate::api::metrics::handle(); // installs the recorder before anything is counted
        let store =
            crate::store::open(config.database_url.as_deref(), &config.data_dir).await.with_context(
                || match &config.database_url {
                    Some(_) => "opening the PostgreSQL store (--database-url)".to_owned(),
                    None => format!("opening the store in {}", config.data_dir.display()),
                },
            )?;
        let listener =
            TcpListener::bind(config.listen).await.with_context(|| format!("listening on {}", config.listen))?;
        let address = listener.local_addr()?;
        let public_url = config.public_url.clone().unwrap_or_else(|| format!("http://{address}"));
        let results = ResultStorage::open(&config.storage, &config.data_dir, &public_url, config.result_url_ttl)
            .await
            .context("opening result storage (--storage)")?;
        let state = AppState::new(crate::api::SharedState {
            results: Arc::new(results),
            job_watch: crate::api::job_watch::JobWatch::start(store.clone()),
            store,
            key_cache: Arc::new(crate::api::key_cache::KeyCache::new(config.key_cache_ttl)),
            rate_limiter: Arc::new(crate::api::rate_limit::RateLimiter::new(config.rate_limit_per_minute)),
            config: Arc::new(config),
            public_url: public_url.trim_end_matches('/').into(),
            in_process_engine: None,
            rendered_jobs: Default::default(),
        });
        let (listener, loading) = answer_while_loading(listener)?;
        Ok(Starting { listener, address, state, loading })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Loads the engine (the LTX engine: its models, minutes), then stops the loading answers.
    /// A bad model path or environment stops the role here rather than failing its first job.
    pub async fn load(self) -> anyhow::Result<Application> {
        let Starting { listener, address, mut state, loading } = self;
        let engine = start_engine(&state.config).await;
        loading.stop().await;
        let engine = engine?;
        // With `--workers 0` the engine is a stand-in that runs nothing: the API must not use it.
        state.make_mut().in_process_engine = (state.config.workers > 0).then(|| engine.clone());
        Ok(Application { listener, address, state, engine })
    }
}

impl Application {
    /// Binds, then loads the engine (`Starting`): returns once the server can take work.
    pub async fn build(config: ServeConfig) -> anyhow::Result<Application> {
        Starting::bind(config).await?.load().await
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The name of the engine jobs run on (`preview`, `ltx`).
    pub fn engine_name(&self) -> &'static str {
        self.engine.name()
    }

    pub fn store(&self) -> Arc<dyn Store> {
        self.state.store.clone()
    }

    /// Serves until `stop` resolves, then stops taking work, lets in-flight requests finish and
    /// hands running jobs back to the queue.
    pub async fn run_until_stopped(self, stop: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let config = self.state.config.clone();
        let shutdown = CancellationToken::new();
        let scheduler = crate::scheduler::spawn(
            self.state.store.clone(),
            Duration::from_secs(1),
            config.max_attempts,
            config.max_run_time,
            shutdown.clone(),
        );
        let engine = self.engine.clone();
        let worker_config = WorkerConfig {
            name: format!("in-process@{}", self.address),
            // Often enough that progress reads as live (SSE, polling), rarely enough to cost nothing.
            heartbeat_every: heartbeat_interval(config.lease_ttl),
            scratch_dir: config.data_dir.join("tmp"),
            image_client: crate::fetch::guarded_client(
                crate::fetch::UrlPolicy { allow_private: config.allow_private_urls },
                Duration::from_secs(20),
            ),
            lora_cache_bytes: crate::worker::inputs::LORA_CACHE_BYTES,
            prefetch: config.prefetch_jobs,
            prefetch_max_wait: config.prefetch_max_wait,
            intermediate_previews: config.intermediate_previews,
        };
        let store = self.state.store.clone();
        let (lease_ttl, affinity_max_wait, results) =
            (config.lease_ttl, config.affinity_max_wait, self.state.results.clone());
        let kept_files_url = format!("{}/files/", self.state.public_url);
        let name = worker_config.name.clone();
        let queue = move |i: usize| -> Arc<dyn WorkQueue> {
            Arc::new(StoreQueue {
                store: store.clone(),
                worker: WorkerLease::named(format!("{name}-{i}")),
                affinity_max_wait,
                lease_ttl,
                results: results.clone(),
                kept_files_url: kept_files_url.clone(),
            })
        };
        let dispatcher = crate::webhooks::spawn(
            self.state.store.clone(),
            crate::webhooks::DispatcherConfig {
                policy: crate::fetch::UrlPolicy { allow_private: config.allow_private_urls },
                results: self.state.results.clone(),
                retry_base: config.webhook_retry_base,
                timeout: Duration::from_secs(15),
                horizon: config.webhook_retry_horizon,
                concurrency: 64,
            },
            shutdown.clone(),
        );
        let workers = spawn_workers(config.workers, queue, engine, worker_config, shutdown.clone());
        let janitor = spawn_upload_janitor(config.data_dir.clone(), config.max_run_time, shutdown.clone());
        let retention = crate::retention::spawn(
            self.state.store.clone(),
            self.state.results.clone(),
            config.retention_policy(),
            shutdown.clone(),
        );
        let replica_count = api::rate_limit::spawn_replica_count(
            self.state.store.clone(),
            self.state.rate_limiter.clone(),
            shutdown.clone(),
        );

        let http_stop = shutdown.clone();
        let limits = crate::server::ConnectionLimits {
            header_read_timeout: config.header_read_timeout,
            idle_timeout: config.idle_timeout,
            max_connections: config.max_connections,
        };
        // A request is in flight (not idle) until its response body is done (api/every_request.rs).
        use axum::ServiceExt as _;
        let service = api::service(self.state);
        let listener = crate::server::GuardedListener::new(self.listener, limits);
        let server = axum::serve(listener, service.into_make_service_with_connect_info::<crate::server::Connection>())
            .with_graceful_shutdown(async move { http_stop.cancelled().await });
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            stop.await;
            tracing::info!("shutting down: no new work; finishing in-flight requests; handing running jobs back");
            trigger.cancel();
        });
        // In-flight requests get a few seconds; a connection that would hold the stop longer (a
        // client that stopped sending a body, an event stream) is dropped.
        let grace = shutdown.clone();
        let served = tokio::select! {
            served = server.into_future() => served,
            _ = async move { grace.cancelled().await; tokio::time::sleep(SHUTDOWN_GRACE).await } => {
                tracing::warn!(grace_secs = SHUTDOWN_GRACE.as_secs(), "connections still open after the grace period; closing them");
                Ok(())
            }
        };
        shutdown.cancel();
        for worker in workers {
            let _ = worker.await;
        }
        let _ = scheduler.await;
        let _ = janitor.await;
        let _ = retention.await;
        let _ = replica_count.await;
        let _ = dispatcher.await;
        served.context("HTTP server")
    }
}

/// How long a stopping server waits for in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Every ten minutes, removes remote workers' uploads that were never completed (the worker
/// died mid-upload) once they are older than the longest a job may run.
fn spawn_upload_janitor(data_dir: PathBuf, max_age: Duration, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(600));
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            let dir = data_dir.clone();
            if let Ok(n) = tokio::task::spawn_blocking(move || api::internal::remove_stale_uploads(&dir, max_age)).await
            {
                if n > 0 {
                    tracing::info!(removed = n, "removed stale worker uploads");
                }
            }
        }
    })
}

/// The same interval the worker API tells remote workers.
pub use crate::worker_protocol::heartbeat_interval;

/// Resolves on SIGINT or SIGTERM.
pub async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// The engine of the in-process workers (none is started with `--workers 0`: the preview
/// engine stands in, doing nothing).
async fn start_engine(config: &ServeConfig) -> anyhow::Result<Arc<dyn Engine>> {
    if config.workers == 0 {
        return crate::worker::engines::start(&EngineChoice::Preview, config.preview_sampling_time).await;
    }
    if config.workers > 1 && matches!(config.engine, EngineChoice::Ltx(_)) {
        tracing::warn!("--engine ltx runs one job at a time per engine; extra workers wait their turn");
    }
    crate::worker::engines::start(&config.engine, config.preview_sampling_time).await
}

/// The server of the loading spell, on a second handle of the same socket: once it stops, the
/// connections waiting in the kernel's queue go to the real server.
struct LoadingAnswers {
    stop: CancellationToken,
    server: JoinHandle<()>,
}

impl LoadingAnswers {
    /// Stops taking connections and lets the open ones finish (idle keep-alive ones close at
    /// once); one that takes longer than a few seconds (a client trickling a request head) is
    /// dropped rather than holding up the start.
    async fn stop(self) {
        self.stop.cancel();
        let abort = self.server.abort_handle();
        if tokio::time::timeout(Duration::from_secs(5), self.server).await.is_err() {
            abort.abort();
        }
    }
}

fn answer_while_loading(listener: TcpListener) -> std::io::Result<(TcpListener, LoadingAnswers)> {
    let socket = listener.into_std()?;
    let during_load = TcpListener::from_std(socket.try_clone()?)?;
    let stop = CancellationToken::new();
    let until = stop.clone();
    let server = tokio::spawn(async move {
        let served = axum::serve(during_load, api::loading::router())
            .with_graceful_shutdown(async move { until.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "the server of the loading spell stopped");
        }
    });
    Ok((TcpListener::from_std(socket)?, LoadingAnswers { stop, server }))
}
