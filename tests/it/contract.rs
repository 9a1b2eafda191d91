//! Contract fuzzing: schemathesis (from the pinned test venv) generates requests from our own
//! `/openapi.json` — valid ones and invalid ones — against a live server, and checks every answer:
//! no 5xx, every status and body as documented, invalid input refused, valid input accepted
//! (exceptions, each with its reason, in tests/contract/schemathesis.toml). Deterministic seed,
//! so a failure reproduces; failures found are kept below as regression tests.
use crate::helpers::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the test tools venv: LTX_TEST_PYTHON (scripts/test makes it)"]
async fn schemathesis_finds_no_contract_violation() {
    let app = TestApp::start_with(|c| c.allow_private_urls = false).await;
    let acct = app.account("5000").await;
    let mut command = schemathesis();
    command
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/contract"))
        // Every check runs by default in schemathesis 4; the exceptions are in the config file.
        .args(["--no-color", "run", &app.url("/openapi.json"), "--max-examples", "12"])
        .args(["--seed", "1", "--header", &format!("Authorization: Bearer {}", acct.key)]);
    passes(command, "contract violations").await;
}

/// schemathesis from the test venv (`LTX_TEST_PYTHON`, made by scripts/test).
pub fn schemathesis() -> tokio::process::Command {
    let python = std::env::var("LTX_TEST_PYTHON")
        .expect("LTX_TEST_PYTHON is not set: run the suite with scripts/test, which installs schemathesis");
    tokio::process::Command::new(std::path::Path::new(&python).with_file_name("schemathesis"))
}

/// Runs a schemathesis command and fails with its report unless it found nothing.
pub async fn passes(mut command: tokio::process::Command, found: &str) {
    let output = command.output().await.expect("schemathesis runs");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found {found}:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Found by schemathesis: an empty `cursor` or `limit` was taken as "not given", though the
/// document says they are a date-time and an integer.
#[tokio::test(flavor = "multi_thread")]
async fn empty_paging_parameters_are_refused_as_documented() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let acct = app.account("1").await;
    for path in ["/jobs?cursor=", "/assets?limit=", "/styles?cursor=", "/styles?liked=AAA", "/styles?user=u"] {
        let (status, body) = app.get(&acct.key, path).await;
        assert_eq!(status, 400, "{path}: {body}");
    }
    assert_eq!(app.get(&acct.key, "/styles?liked=false&filter=all").await.1["items"], json!([]));
}
