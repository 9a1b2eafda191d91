//! The binary itself: first-run bootstrap, the admin CLI, and a graceful stop that hands a
//! running job back so nothing is lost.
use crate::helpers::GENERATE;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_ltx-serve");

pub struct Server {
    pub child: Child,
    pub base: String,
    pub printed: String,
}

impl Server {
    /// The key printed on a first start.
    pub fn printed_key(&self) -> String {
        self.printed
            .split("export LTX_SERVE_API_KEY='")
            .nth(1)
            .expect("a key is printed")
            .split('\'')
            .next()
            .unwrap()
            .to_owned()
    }
}

pub fn start_server(data_dir: &std::path::Path, extra: &[&str]) -> Server {
    start_server_with(data_dir, extra, Command::new(BIN).stderr(Stdio::null()))
}

/// Starts `serve` from `command` (its stderr and environment already set) and waits for its address.
fn start_server_with(data_dir: &std::path::Path, extra: &[&str], command: &mut Command) -> Server {
    let mut child = command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut printed = String::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("serve printed its address").unwrap();
        printed.push_str(&line);
        printed.push('\n');
        if let Some(rest) = line.strip_prefix("ltx-serve listening on ") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    Server { child, base, printed }
}

pub fn sigterm(server: &mut Server) -> std::process::ExitStatus {
    Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap();
    for _ in 0..200 {
        if let Some(status) = server.child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    server.child.kill().unwrap();
    panic!("serve did not stop within 10 s of SIGTERM");
}

fn admin(data_dir: &std::path::Path, args: &[&str]) -> Value {
    let out = Command::new(BIN).args(["admin", "--data-dir"]).arg(data_dir).args(args).output().unwrap();
    assert!(out.status.success(), "admin {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn first_start_prints_a_working_key_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start_server(dir.path(), &[]);
    let key = server.printed_key();
    assert!(server.printed.contains(&format!("curl -s {}{GENERATE}", server.base)), "{}", server.printed);
    let client = reqwest::Client::new();
    let job = submit(&client, &server.base, &key, json!({"prompt": "first run", "num_frames": 9})).await;
    assert_eq!(job["status"], "queued", "{job}");
    assert!(sigterm(&mut server).success());

    // The second start finds the account and prints no key.
    let mut again = start_server(dir.path(), &[]);
    assert!(!again.printed.contains("API key"), "{}", again.printed);
    let account: Value =
        client.get(format!("{}/account", again.base)).bearer_auth(&key).send().await.unwrap().json().await.unwrap();
    assert_eq!(account["name"], "default");
    assert!(sigterm(&mut again).success());
}

#[test]
fn admin_commands_print_json() {
    let dir = tempfile::tempdir().unwrap();
    let created = admin(
        dir.path(),
        &[
            "account",
            "create",
            "--name",
            "acme",
            "--credits-usd",
            "12.5",
            "--max-concurrent",
            "2",
            "--max-backlog",
            "5",
        ],
    );
    let account = created["account_id"].as_str().unwrap().to_owned();
    assert!(created["api_key"].as_str().unwrap().starts_with(created["key_id"].as_str().unwrap()));
    assert_eq!(created["balance_usd"], "12.50");
    let credited = admin(dir.path(), &["credits", "add", "--account", &account, "--usd", "0.25"]);
    assert_eq!(credited["balance_usd"], "12.75");
    let limits = admin(dir.path(), &["limits", "set", "--account", &account, "--max-concurrent", "3"]);
    assert_eq!((limits["max_concurrent"].as_u64(), limits["max_backlog"].as_u64()), (Some(3), Some(5)));
    let key = admin(dir.path(), &["key", "create", "--account", &account, "--label", "ci"]);
    let revoked = admin(dir.path(), &["key", "revoke", "--key-id", key["key_id"].as_str().unwrap()]);
    assert_eq!(revoked["revoked"], true);
    let shown = admin(dir.path(), &["account", "show", "--account", &account]);
    assert_eq!(shown["recent_ledger"].as_array().unwrap().len(), 2);
    let out = Command::new(BIN)
        .args(["admin", "--data-dir"])
        .arg(dir.path())
        .args(["account", "show", "--account", &uuid::Uuid::new_v4().to_string()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no account with id"));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_hands_a_running_job_back_and_it_completes_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let created = admin(dir.path(), &["account", "create", "--name", "t", "--credits-usd", "1"]);
    let key = created["api_key"].as_str().unwrap().to_owned();
    let mut server = start_server(dir.path(), &["--preview-sampling-ms", "60000"]);
    let client = reqwest::Client::new();
    let job = submit(&client, &server.base, &key, json!({"prompt": "long", "num_frames": 9})).await;
    let url = format!("{}/jobs/{}", server.base, job["job_id"].as_str().unwrap());
    let running = poll(&client, &url, &key, |j| j["status"] == "sampling").await;
    assert_eq!(running["status"], "sampling", "{running}");
    assert!(sigterm(&mut server).success());

    let mut again = start_server(dir.path(), &[]);
    let url = format!("{}/jobs/{}", again.base, job["job_id"].as_str().unwrap());
    let last = poll(&client, &url, &key, |j| !j["completed_at"].is_null()).await;
    assert_eq!(last["status"], "completed", "{last}");
    assert_eq!(last["attempts"], 1, "the handed-back attempt does not count: {last}");
    assert!(sigterm(&mut again).success());
}

/// Polls a job for up to 20 s until `done`; returns the last state seen.
async fn poll(client: &reqwest::Client, url: &str, key: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..400 {
        last = client.get(url).bearer_auth(key).send().await.unwrap().json().await.unwrap();
        if done(&last) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    last
}

async fn submit(client: &reqwest::Client, base: &str, key: &str, body: Value) -> Value {
    client.post(format!("{base}{GENERATE}")).bearer_auth(key).json(&body).send().await.unwrap().json().await.unwrap()
}

#[test]
fn the_example_configuration_is_complete_and_checks() {
    let example = std::process::Command::new(BIN).args(["config", "example"]).output().unwrap();
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/ltx-serve.example.toml")).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&example.stdout),
        committed,
        "ltx-serve.example.toml is out of date: regenerate it with `ltx-serve config example > ltx-serve.example.toml`"
    );
    let checked = std::process::Command::new(BIN)
        .args(["config", "check", concat!(env!("CARGO_MANIFEST_DIR"), "/ltx-serve.example.toml")])
        .env_remove("LTX_SERVE_WORKERS")
        .output()
        .unwrap();
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
    assert!(String::from_utf8_lossy(&checked.stdout).contains("workers = 1  # default"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_configuration_file_sets_what_flags_and_environment_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ltx-serve.toml");
    std::fs::write(
        &file,
        "[serve]\ndemo_credits_usd = \"7\"\nworkers = 0\ndatabase_url = \"postgres://ltx:hunter2@db/ltx\"\nlisten = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    let checked = std::process::Command::new(BIN)
        .args(["config", "check"])
        .arg(&file)
        .env("LTX_SERVE_WORKERS", "2")
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&checked.stdout);
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
    assert!(printed.contains("database_url = \"postgres://ltx:********@db/ltx\"  # file"), "{printed}");
    assert!(!printed.contains("hunter2"), "the password is masked");
    assert!(printed.contains("workers = 2  # environment"), "{printed}");
    assert!(printed.contains("demo_credits_usd = 7  # file"), "{printed}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[serve]\nworkerz = 1\n").unwrap();
    let refused = std::process::Command::new(BIN).args(["config", "check"]).arg(&bad).output().unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("unknown key `serve.workerz`"));

    // `serve --config`: the file's demo credit and worker count apply; the --listen flag wins over its listen.
    std::fs::write(&file, "[serve]\ndemo_credits_usd = \"7\"\nworkers = 0\nlisten = \"127.0.0.1:1\"\n").unwrap();
    let mut server = start_server(dir.path(), &["--config", file.to_str().unwrap()]);
    assert!(server.printed.contains("$7.00 of demo credit"), "{}", server.printed);
    let ready = reqwest::get(format!("{}/readyz", server.base)).await.unwrap();
    assert_eq!(ready.status(), 503, "no in-process worker (workers = 0 from the file)");
    assert!(sigterm(&mut server).success());
}

/// Starts `serve` with its log (stderr) going to a file, as under a service manager.
pub fn start_server_logging_to(data_dir: &std::path::Path, log: &std::path::Path, extra: &[&str]) -> Server {
    let mut command = Command::new(BIN);
    command
        .env("RUST_LOG", "debug,hyper=info,sqlx=info,h2=info,reqwest=info")
        .env_remove("NO_COLOR")
        .stderr(Stdio::from(std::fs::File::create(log).unwrap()));
    start_server_with(data_dir, extra, &mut command)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_log_file_gets_plain_text_and_json_lines_carry_the_request_id() {
    let client = reqwest::Client::new();
    for format in ["text", "json"] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log.txt");
        let mut server = start_server_logging_to(&dir.path().join("data"), &log, &["--log-format", format]);
        let key = server.printed_key();
        let response = client
            .get(format!("{}/account", server.base))
            .bearer_auth(&key)
            .header("x-request-id", format!("log-test-{format}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(sigterm(&mut server).success());
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("/account"), "the access log has the request ({format}):\n{text}");
        assert!(!text.contains('\u{1b}'), "no escape codes in a log file ({format}):\n{text}");
        if format == "json" {
            let request_lines: Vec<Value> = text
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
                .filter(|l| l["fields"]["path"] == "/account")
                .collect();
            assert!(!request_lines.is_empty(), "{text}");
            for line in request_lines {
                assert_eq!(line["span"]["request_id"], "log-test-json", "{line}");
            }
        }
    }
}
