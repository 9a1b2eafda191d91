//! `ltx-serve jobs list|get|cancel`: the jobs API from the command line.
use super::print_json;
use clap::Subcommand;

#[derive(Subcommand)]
pub(super) enum JobsCommand {
    List {
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        status: Option<String>,
    },
    Get {
        id: String,
    },
    Cancel {
        id: String,
    },
}

pub(super) async fn jobs(connection: crate::client::Connection, command: JobsCommand) -> anyhow::Result<()> {
    let client = crate::client::Client::new(&connection)?;
    let out = match command {
        JobsCommand::List { limit, status } => {
            let status = status.map(|s| format!("&status={s}")).unwrap_or_default();
            client.get(&format!("/jobs?limit={limit}{status}")).await?
        }
        JobsCommand::Get { id } => client.get(&format!("/jobs/{id}")).await?,
        JobsCommand::Cancel { id } => client.delete(&format!("/jobs/{id}")).await?,
    };
    print_json(&out)
}
