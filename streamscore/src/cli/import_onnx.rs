//! `streamscore import-onnx`

use std::path::PathBuf;

use anyhow::Context;
use ml_core::onnx::{Engine, OnnxModel, OnnxOptions};
use ml_core::{Model, Schema};
use ml_registry::RegisterOptions;

use super::parse_list;
use super::registry::{RegistryArg, register_artifact};

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("dest").required(true).args(["name", "out"])))]
pub struct Args {
    /// The `.onnx` file (e.g. exported with skl2onnx or onnxmltools).
    model: PathBuf,
    /// Schema JSON of the fields the model reads (default: derived from the model's inputs).
    #[arg(long, conflicts_with = "columns")]
    schema: Option<PathBuf>,
    /// Names of the features of a single [N, F] input, comma-separated (default f0..f{F-1}).
    #[arg(long, value_name = "A,B,C")]
    columns: Option<String>,
    /// Class labels in probability-column order, when the graph names none.
    #[arg(long, value_name = "A,B")]
    labels: Option<String>,
    /// How the model is scored: `native` (the classical ONNX-ML operators, evaluated by
    /// streamscore), `runtime` (ONNX Runtime), or `auto` (native when every operator is
    /// supported, else ONNX Runtime). Recorded with the model.
    #[arg(long, default_value = "auto", value_name = "auto|native|runtime")]
    engine: Engine,
    /// Register the model under this name (in --registry).
    #[arg(long)]
    name: Option<String>,
    /// Write a model artifact directory instead of registering.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Free-text description (with --name).
    #[arg(long)]
    description: Option<String>,
    #[command(flatten)]
    registry: RegistryArg,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let schema = match &args.schema {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            Some(Schema::from_json(&text).with_context(|| format!("schema {}", path.display()))?)
        }
        None => None,
    };
    let columns = args.columns.as_deref().map(parse_list);
    let options = OnnxOptions {
        labels: args.labels.as_deref().map(parse_list),
        engine: args.engine,
        ..OnnxOptions::default()
    };
    let bytes =
        std::fs::read(&args.model).with_context(|| format!("cannot read {}", args.model.display()))?;
    let origin = args.model.display().to_string();
    let model = OnnxModel::from_bytes(bytes, &origin, schema, columns.as_deref(), &options)?;
    eprintln!(
        "ONNX model {origin}{}: inputs {} → {} fields ({}); predicts {}; engine {}",
        if model.producer().is_empty() {
            String::new()
        } else {
            format!(" ({})", model.producer())
        },
        model.input_names().join(", "),
        model.schema().len(),
        model.schema().names().collect::<Vec<_>>().join(", "),
        match model.output().labels() {
            [] => "a value (regression)".to_string(),
            labels => format!("classes {}", labels.join(", ")),
        },
        match model.native() {
            Some(native) => format!("native ({})", native.graph().summary()),
            None => format!(
                "ONNX Runtime ({})",
                model
                    .runtime_library()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ),
        }
    );
    let mut artifact = model.to_artifact()?;
    match (&args.name, &args.out) {
        (Some(name), _) => {
            let options = RegisterOptions {
                description: args.description,
                ..RegisterOptions::default()
            };
            let v = register_artifact(&args.registry, name, &artifact, &options)?;
            println!("{}:{}", v.name, v.version);
        }
        (None, Some(out)) => {
            artifact.save(out)?;
            eprintln!("wrote {}", out.display());
            println!("{}", out.display());
        }
        (None, None) => anyhow::bail!("give --name (register) or --out (artifact directory)"),
    }
    Ok(())
}
