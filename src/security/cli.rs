//! `tiercel user …`: SCRAM users kept in a data dir's catalog, managed offline — the first user
//! of a broker whose listeners all need SASL is made this way, before the broker first runs.
//! While a broker runs, manage users over the Kafka API instead (AlterUserScramCredentials:
//! `kafka-configs.sh --alter --add-config 'SCRAM-SHA-512=[password=…]' --entity-type users`),
//! since a running broker does not read the catalog file again.

use super::scram::{Scram, MAX_ITERATIONS, MIN_ITERATIONS};
use crate::catalog::{CatalogStore, Change, FileCatalog};
use clap::{Parser, Subcommand};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "tiercel user",
    about = "Manage SASL/SCRAM users in a data dir (with the broker stopped)"
)]
struct UserCli {
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user or change its password
    Set {
        /// The broker's data dir (its catalog is created if there is none yet)
        #[arg(long, env = "TIERCEL_DATA_DIR")]
        data_dir: PathBuf,
        #[arg(long)]
        user: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512 (PLAIN clients are checked against either)
        #[arg(long, default_value = "SCRAM-SHA-512")]
        mechanism: String,
        #[arg(long, default_value_t = 8192)]
        iterations: u32,
        /// Read the password from standard input (its first line)
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete a user's credential (every mechanism unless one is given)
    Delete {
        #[arg(long, env = "TIERCEL_DATA_DIR")]
        data_dir: PathBuf,
        #[arg(long)]
        user: String,
        #[arg(long)]
        mechanism: Option<String>,
    },
    /// List users and their mechanisms
    List {
        #[arg(long, env = "TIERCEL_DATA_DIR")]
        data_dir: PathBuf,
    },
}

/// Runs `tiercel user` with `args` (the words after `user`).
pub fn run(args: impl IntoIterator<Item = String>) -> ExitCode {
    let cli = UserCli::parse_from(std::iter::once("tiercel user".to_string()).chain(args));
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(cli.command)) {
        Ok(out) => {
            if !out.is_empty() {
                println!("{out}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn mechanism(name: &str) -> Result<Scram, String> {
    Scram::from_name(name).ok_or_else(|| format!("`{name}` is not SCRAM-SHA-256 or SCRAM-SHA-512"))
}

async fn execute(cmd: UserCommand) -> Result<String, String> {
    let data_dir = match &cmd {
        UserCommand::Set { data_dir, .. }
        | UserCommand::Delete { data_dir, .. }
        | UserCommand::List { data_dir } => data_dir.clone(),
    };
    let store = FileCatalog::open(&data_dir, None)
        .await
        .map_err(|e| format!("catalog in {}: {e}", data_dir.display()))?;
    let commit = |changes: Vec<Change>| {
        let store = store.clone();
        async move {
            let results = store.commit(changes).await.map_err(|e| e.to_string())?;
            match results.into_iter().find_map(Result::err) {
                Some(e) => Err(e.to_string()),
                None => Ok(()),
            }
        }
    };
    match cmd {
        UserCommand::Set {
            user,
            mechanism: m,
            iterations,
            password_stdin,
            ..
        } => {
            let mech = mechanism(&m)?;
            if user.is_empty() {
                return Err("--user must not be empty".into());
            }
            if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
                return Err(format!(
                    "--iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}"
                ));
            }
            if !password_stdin {
                return Err("give the password on standard input with --password-stdin".into());
            }
            let mut input = String::new();
            std::io::stdin()
                .read_to_string(&mut input)
                .map_err(|e| format!("reading the password: {e}"))?;
            let password = input.lines().next().unwrap_or_default();
            if password.is_empty() {
                return Err("the password is empty".into());
            }
            let credential = mech.new_credential(password.as_bytes(), iterations);
            commit(vec![Change::SetScramCredential {
                user: user.clone(),
                mechanism: mech.name().into(),
                credential: Some(credential),
            }])
            .await?;
            Ok(format!("set {} for user {user}", mech.name()))
        }
        UserCommand::Delete {
            user, mechanism: m, ..
        } => {
            let mechs = match m {
                Some(m) => vec![mechanism(&m)?],
                None => {
                    let state = store.state();
                    let have = state
                        .users
                        .get(&user)
                        .ok_or_else(|| format!("no user {user}"))?;
                    have.keys().filter_map(|k| Scram::from_name(k)).collect()
                }
            };
            let changes = mechs
                .iter()
                .map(|m| Change::SetScramCredential {
                    user: user.clone(),
                    mechanism: m.name().into(),
                    credential: None,
                })
                .collect();
            commit(changes).await?;
            Ok(format!("deleted user {user}"))
        }
        UserCommand::List { .. } => {
            let state = store.state();
            let lines: Vec<String> = state
                .users
                .iter()
                .map(|(u, creds)| {
                    let mechs: Vec<String> = creds
                        .iter()
                        .map(|(m, c)| format!("{m} (iterations {})", c.iterations))
                        .collect();
                    format!("{u}\t{}", mechs.join(", "))
                })
                .collect();
            Ok(lines.join("\n"))
        }
    }
}
