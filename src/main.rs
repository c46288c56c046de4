//! The `tiercel` binary: CLI → config → tracing → broker until SIGINT/SIGTERM; `tiercel user …`
//! manages SASL users in a data dir.

use clap::Parser;
use std::process::ExitCode;
use tiercel::broker::Broker;
use tiercel::config::{Cli, Config, LogFormat};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    tiercel::alloc::limit_arenas();
    if std::env::args().nth(1).as_deref() == Some("user") {
        return tiercel::security::cli::run(std::env::args().skip(2));
    }
    let cli = Cli::parse(); // bad flags: clap prints the error and exits with 2
    let config = match Config::load(cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log_level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let broker = Broker::bind(config).await?;
        broker.run(shutdown_signal()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "broker failed");
            eprintln!("error: {e}");
            match e {
                // a configuration problem the operator has to fix, like a bad flag
                tiercel::broker::BrokerError::TierRefused(_)
                | tiercel::broker::BrokerError::Cluster(_)
                | tiercel::broker::BrokerError::Config(_) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
