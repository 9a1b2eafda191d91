//! `ltx-serve config check FILE`.
use super::*;

/// `config check`: the file's settings merged under the environment, parsed exactly as the role
/// would parse them, checked, and printed with where each value came from.
pub(super) fn run(file: &std::path::Path, role: &str) -> anyhow::Result<()> {
    use clap::parser::ValueSource;
    use clap::CommandFactory;
    let command = Cli::command();
    let mut from_file = crate::config_file::settings(file, role, &command).map_err(anyhow::Error::msg)?;
    // Those the environment overrides are not the file's.
    from_file.retain(|(env, _)| std::env::var_os(env).is_none());
    for (env, value) in &from_file {
        std::env::set_var(env, value);
    }
    // clap reads each variable when the command is built: build it again, after the file.
    let command = Cli::command();
    let argv = vec!["ltx-serve".to_owned(), role.to_owned()];
    if role == "worker" {
        // Required flags a file may leave to the environment of the worker host.
        for (flag, env) in [("--server", "LTX_SERVE_SERVER"), ("--token", "LTX_SERVE_WORKER_TOKEN")] {
            if std::env::var_os(env).is_none() {
                anyhow::bail!("`worker.{}` is required (or {env})", &flag[2..]);
            }
        }
    }
    let matches = command
        .clone()
        .try_get_matches_from(&argv)
        .map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_start_matches("error: ").trim_end()))?;
    let (_, sub) = matches.subcommand().expect("a role was given");
    if role == "serve" {
        let parsed = Cli::try_parse_from(&argv)?;
        if let Command::Serve(args) = parsed.command {
            serve_config(*args)?;
        }
    }
    println!("# effective settings of `ltx-serve {role}` with {}", file.display());
    println!("[{role}]");
    let role_command = command.find_subcommand(role).expect("a known role");
    for arg in role_command.get_arguments().filter(|a| a.get_env().is_some() && a.get_long() != Some("config")) {
        let id = arg.get_id().as_str();
        let key = arg.get_long().unwrap_or(id).replace('-', "_");
        let env = arg.get_env().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default();
        let source = match sub.value_source(id) {
            Some(ValueSource::EnvVariable) if from_file.iter().any(|(e, _)| *e == env) => "file",
            Some(ValueSource::EnvVariable) => "environment",
            Some(ValueSource::CommandLine) => "flag",
            _ => "default",
        };
        let value = sub.get_raw(id).and_then(|mut v| v.next()).map(|v| v.to_string_lossy().into_owned());
        let secret = arg.is_hide_env_values_set();
        match value {
            Some(value) => {
                println!(
                    "{key} = {}  # {source}",
                    crate::config_file::toml_value(&crate::config_file::masked(&value, secret))
                )
            }
            None => println!("# {key} is not set"),
        }
    }
    Ok(())
}
