//! Alert actions: what a fired rule does. Integrators add their own by implementing
//! [`AlertAction`] and registering it with [`crate::run::Orchestrator::add_action`].

use std::fmt::Debug;

use serde::Serialize;

/// A fired alert, as actions see it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    /// The rule's name (or `manual`, `azure_monitor` for inbound triggers).
    pub rule: String,
    /// The condition's value when it fired.
    pub value: f64,
    /// Events scored when it fired.
    pub at_event: u64,
    /// Why, in words (recorded as the retrained version's reason).
    pub reason: String,
}

/// What an action asks the loop to do next.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ActionOutcome {
    /// A line for the timeline.
    pub message: String,
    /// Run one retrain-gate-promote cycle for this alert.
    pub retrain: bool,
}

/// An alert action. It runs on the loop's thread: anything slow belongs in a thread of its own
/// (as the built-in retrain does: it only asks the loop to retrain).
pub trait AlertAction: Send + Sync + Debug {
    /// Runs the action for `alert`.
    fn run(&self, alert: &Alert) -> anyhow::Result<ActionOutcome>;
}

/// Asks the loop for one retrain-gate-promote cycle.
#[derive(Debug, Default)]
pub struct RetrainAction;

impl AlertAction for RetrainAction {
    fn run(&self, alert: &Alert) -> anyhow::Result<ActionOutcome> {
        Ok(ActionOutcome {
            message: format!("retrain requested by {}", alert.rule),
            retrain: true,
        })
    }
}

/// Only logs the alert.
#[derive(Debug, Default)]
pub struct LogAction;

impl AlertAction for LogAction {
    fn run(&self, alert: &Alert) -> anyhow::Result<ActionOutcome> {
        tracing::warn!(rule = %alert.rule, value = alert.value, "alert: {}", alert.reason);
        Ok(ActionOutcome {
            message: format!("logged: {}", alert.reason),
            retrain: false,
        })
    }
}

/// Runs a program with the alert as JSON in the `STREAMSCORE_ALERT` environment variable, in
/// the background (the loop does not wait for it).
#[derive(Debug)]
pub struct CommandAction {
    /// Program and arguments.
    pub argv: Vec<String>,
}

impl AlertAction for CommandAction {
    fn run(&self, alert: &Alert) -> anyhow::Result<ActionOutcome> {
        let (program, args) = self
            .argv
            .split_first()
            .ok_or_else(|| anyhow::anyhow!("command action: no program given (command:PROGRAM ARGS)"))?;
        let mut child = std::process::Command::new(program)
            .args(args)
            .env("STREAMSCORE_ALERT", serde_json::to_string(alert)?)
            .spawn()
            .map_err(|e| anyhow::anyhow!("command action: cannot run `{program}`: {e}"))?;
        let pid = child.id();
        // Reaped in the background so no zombie stays behind.
        std::thread::spawn(move || child.wait());
        Ok(ActionOutcome {
            message: format!("started `{program}` (pid {pid})"),
            retrain: false,
        })
    }
}

/// POSTs the alert as JSON to a URL, in the background.
#[derive(Debug)]
pub struct WebhookAction {
    /// Where to post.
    pub url: String,
}

impl AlertAction for WebhookAction {
    fn run(&self, alert: &Alert) -> anyhow::Result<ActionOutcome> {
        let body = serde_json::to_vec(alert)?;
        let url = self.url.clone();
        std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(r) => r,
                Err(e) => return tracing::error!("webhook action: {e}"),
            };
            runtime.block_on(async {
                let result = reqwest::Client::new()
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                match result {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => tracing::error!("webhook action: {url} answered {}", r.status()),
                    Err(e) => tracing::error!("webhook action: {url}: {e}"),
                }
            });
        });
        Ok(ActionOutcome {
            message: format!("posted to {}", self.url),
            retrain: false,
        })
    }
}

/// The built-in action named by `spec`: `retrain`, `log`, `command:PROGRAM ARGS`,
/// `webhook:URL`.
pub fn builtin(spec: &str) -> anyhow::Result<Box<dyn AlertAction>> {
    Ok(match spec {
        "retrain" => Box::new(RetrainAction),
        "log" => Box::new(LogAction),
        _ if spec.starts_with("command:") => Box::new(CommandAction {
            argv: spec["command:".len()..]
                .split_whitespace()
                .map(str::to_string)
                .collect(),
        }),
        _ if spec.starts_with("webhook:") => Box::new(WebhookAction {
            url: spec["webhook:".len()..].to_string(),
        }),
        _ => anyhow::bail!(
            "unknown alert action `{spec}`; actions: retrain, log, command:PROGRAM ARGS, webhook:URL (or one added with Orchestrator::add_action)"
        ),
    })
}
