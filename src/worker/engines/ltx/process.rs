//! One engine child process. Its stdout is read as protocol events on a task of its own, its
//! stderr is logged (the last lines are kept for error messages), and commands go through a
//! channel to a writer task, so a job that is dropped mid-way can still send `cancel`.
use super::protocol::{Command, Event, Hello, PROTOCOL_VERSION};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// How to start the process.
#[derive(Clone, Debug)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(String, OsString)>,
    /// Loading the models can take minutes on a GPU host (tens of GB from disk).
    pub start_timeout: Duration,
}

const STDERR_LINES_KEPT: usize = 40;

pub struct EngineProcess {
    child: tokio::process::Child,
    commands: mpsc::UnboundedSender<String>,
    events: mpsc::Receiver<Event>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    pub hello: Hello,
}

impl EngineProcess {
    /// Starts the process and waits for its `hello`.
    pub async fn start(launch: &Launch) -> Result<EngineProcess, String> {
        let mut command = tokio::process::Command::new(&launch.program);
        command.args(&launch.args).envs(launch.env.iter().map(|(k, v)| (k, v)));
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| format!("could not start `{}`: {e}", launch.program.display()))?;
        let (commands, mut to_write) = mpsc::unbounded_channel::<String>();
        let mut stdin = child.stdin.take().expect("stdin is piped");
        tokio::spawn(async move {
            while let Some(line) = to_write.recv().await {
                if stdin.write_all(line.as_bytes()).await.is_err() || stdin.flush().await.is_err() {
                    break;
                }
            }
        });
        let (events_tx, events) = mpsc::channel(1024);
        let stdout = child.stdout.take().expect("stdout is piped");
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match serde_json::from_str::<Event>(&line) {
                    Ok(event) => {
                        if events_tx.send(event).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, line = %truncate(&line, 300), "unreadable engine event"),
                }
            }
        });
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let tail = stderr_tail.clone();
        let stderr = child.stderr.take().expect("stderr is piped");
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::info!(target: "ltx_engine", "{line}");
                let mut tail = tail.lock().expect("not poisoned");
                if tail.len() == STDERR_LINES_KEPT {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        });
        let mut process = EngineProcess { child, commands, events, stderr_tail, hello: Hello::default() };
        match tokio::time::timeout(launch.start_timeout, process.wait_for_hello()).await {
            Ok(Ok(hello)) => {
                process.hello = hello;
                Ok(process)
            }
            Ok(Err(why)) => {
                process.kill().await;
                Err(why)
            }
            Err(_) => {
                process.kill().await;
                Err(format!(
                    "the engine did not say hello within {} s (loading the models?){}",
                    launch.start_timeout.as_secs(),
                    process.stderr_excerpt()
                ))
            }
        }
    }

    async fn wait_for_hello(&mut self) -> Result<Hello, String> {
        loop {
            match self.events.recv().await {
                Some(Event::Hello(hello)) if hello.protocol == PROTOCOL_VERSION => return Ok(hello),
                Some(Event::Hello(hello)) => {
                    return Err(format!(
                        "the engine speaks protocol {}, this worker {PROTOCOL_VERSION}; update one of them",
                        hello.protocol
                    ))
                }
                Some(Event::Error { message, .. }) => return Err(format!("{message}{}", self.stderr_excerpt())),
                Some(_) => continue,
                None => return Err(self.exit_description().await),
            }
        }
    }

    pub fn send(&self, command: &Command) -> bool {
        self.commands.send(command.to_line()).is_ok()
    }

    /// Sends commands from places that cannot wait (a dropped job's guard).
    pub fn sender(&self) -> mpsc::UnboundedSender<String> {
        self.commands.clone()
    }

    /// The next event; `None` once the process has closed its stdout (it exited).
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    pub fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Why the process ended: its exit status and the last lines it wrote to stderr.
    pub async fn exit_description(&mut self) -> String {
        let status = match tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await {
            Ok(Ok(status)) => status.to_string(),
            _ => {
                self.kill().await;
                "killed after closing its output".to_owned()
            }
        };
        // The stderr task may still be reading the last lines.
        tokio::time::sleep(Duration::from_millis(50)).await;
        format!("the engine process exited ({status}){}", self.stderr_excerpt())
    }

    fn stderr_excerpt(&self) -> String {
        let tail = self.stderr_tail.lock().expect("not poisoned");
        let last: Vec<&str> = tail.iter().rev().take(6).map(String::as_str).collect();
        if last.is_empty() {
            String::new()
        } else {
            let lines: Vec<&str> = last.into_iter().rev().collect();
            format!("; its last output: {}", truncate(&lines.join(" | "), 1500))
        }
    }
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}
