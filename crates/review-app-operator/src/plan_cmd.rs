//! `plan`: what the operator would do for one `ReviewApp`, as YAML, without a cluster.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use k8s_openapi::jiff::Timestamp;
use reviewapp_api::{ReviewApp, validate};
use reviewapp_resources::{Action, Manifest, render};
use reviewapp_state::{AppEvent, BuildObservation, Observed, transition};

/// Arguments of `plan`.
#[derive(Args)]
pub struct PlanArgs {
    /// The ReviewApp manifest (YAML).
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    /// Operator configuration file.
    #[arg(long, env = "REVIEWAPP_CONFIG")]
    config: Option<PathBuf>,
    /// The event to plan for.
    #[arg(long, value_enum, default_value_t = EventArg::Add)]
    event: EventArg,
    /// What the build Job named in the app's status is doing (a Job as the operator creates it:
    /// held by its build-outcome finalizer, not being deleted).
    #[arg(long, value_enum, default_value_t = BuildArg::Missing)]
    build: BuildArg,
}

#[derive(Clone, Copy, ValueEnum)]
enum EventArg {
    Add,
    Modify,
    Reconcile,
    Delete,
}

#[derive(Clone, Copy, ValueEnum)]
enum BuildArg {
    Running,
    Succeeded,
    Failed,
    Missing,
}

/// Prints the plan; exits 2 with the field errors when the ReviewApp is invalid.
pub fn run(args: &PlanArgs) -> anyhow::Result<std::process::ExitCode> {
    let config = crate::load_config(args.config.as_deref())?;
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let app: ReviewApp =
        serde_yaml::from_str(&text).with_context(|| format!("parsing {}", args.file.display()))?;
    let event = match args.event {
        EventArg::Add => AppEvent::Add,
        EventArg::Modify => AppEvent::Modify,
        EventArg::Reconcile => AppEvent::Reconcile,
        EventArg::Delete => AppEvent::Delete,
    };
    if event != AppEvent::Delete
        && let Err(errors) = validate(&app.spec, &config)
    {
        let mut stderr = std::io::stderr().lock();
        writeln!(
            stderr,
            "{} is invalid; the operator would apply nothing:",
            args.file.display()
        )?;
        for error in errors {
            writeln!(stderr, "  {error}")?;
        }
        return Ok(std::process::ExitCode::from(2));
    }
    let build = match args.build {
        BuildArg::Running => BuildObservation::Running,
        BuildArg::Succeeded => BuildObservation::Succeeded,
        BuildArg::Failed => BuildObservation::Failed {
            reason: "BackoffLimitExceeded".into(),
            message: "(simulated by plan)".into(),
        },
        BuildArg::Missing => BuildObservation::Missing,
    };
    let t = transition(
        &app,
        event,
        &Observed::build(build),
        &config,
        Timestamp::now(),
    );
    let plan = render(&app, t.spec.as_ref(), &config, &t.intents)?;
    let after = render(&app, t.spec.as_ref(), &config, &t.after_status)?;
    let mut out = std::io::stdout().lock();
    print_actions(&mut out, &plan.actions)?;
    writeln!(out, "# status after this event:")?;
    for line in serde_yaml::to_string(&serde_json::json!({ "status": t.status }))?.lines() {
        writeln!(out, "#   {line}")?;
    }
    if !after.actions.is_empty() {
        writeln!(out, "# once that status is written:")?;
        print_actions(&mut out, &after.actions)?;
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn print_actions(out: &mut impl Write, actions: &[Action]) -> anyhow::Result<()> {
    for action in actions {
        match action {
            Action::Apply(m) => document(out, "server-side apply", m)?,
            Action::CreateJob(m) => document(out, "create (or adopt) build Job", m)?,
            Action::CopySecret {
                source: (ns, name),
                target,
            } => document(
                out,
                &format!("copy type and data of Secret {ns}/{name}, then apply"),
                target,
            )?,
            Action::Delete(child) => writeln!(
                out,
                "# delete {} {}/{} (propagationPolicy Background; absent counts as done)",
                child.kind.kind(),
                child.namespace,
                child.name
            )?,
            Action::AddFinalizer => writeln!(out, "# add finalizer {}", reviewapp_api::FINALIZER)?,
            Action::RemoveFinalizer => {
                writeln!(out, "# remove finalizer {}", reviewapp_api::FINALIZER)?
            }
            Action::ReleaseJob(job) => writeln!(
                out,
                "# release {} {}/{} (remove finalizer {})",
                job.kind.kind(),
                job.namespace,
                job.name,
                reviewapp_api::BUILD_FINALIZER
            )?,
            Action::Event(e) => writeln!(out, "# event {:?} {}: {}", e.kind, e.reason, e.note)?,
        }
    }
    Ok(())
}

fn document(out: &mut impl Write, what: &str, manifest: &Manifest) -> anyhow::Result<()> {
    writeln!(out, "---")?;
    writeln!(
        out,
        "# {what}: {} {}/{}",
        manifest.child.kind.kind(),
        manifest.child.namespace,
        manifest.child.name
    )?;
    write!(out, "{}", serde_yaml::to_string(&manifest.object)?)?;
    Ok(())
}
