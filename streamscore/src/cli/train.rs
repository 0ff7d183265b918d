//! `streamscore train`

use std::collections::BTreeMap;
use std::path::PathBuf;

use ml_core::{Estimator, TypeHint};
use streamscore::train::{SchemaSource, TrainOutcome, TrainRequest, train};

use super::{parse_key_value, parse_list, thousands};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Training data: CSV with a header row.
    #[arg(long)]
    data: PathBuf,
    /// The column to predict.
    #[arg(long)]
    target: String,
    /// Estimator to train.
    #[arg(long, default_value = "logistic_regression", value_parser = clap::builder::PossibleValuesParser::new(Estimator::NAMES))]
    estimator: String,
    /// Estimator parameter as KEY=VALUE (repeatable), e.g. --param c=0.5.
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    params: Vec<(String, String)>,
    /// Schema file (JSON). Default: <data>.schema.json beside the data if present, else inferred.
    #[arg(long, conflicts_with_all = ["categorical", "types"])]
    schema: Option<PathBuf>,
    /// Columns to treat as categorical when inferring the schema (comma-separated).
    #[arg(long, value_name = "COLS")]
    categorical: Option<String>,
    /// Type overrides for inference as COLUMN=TYPE (float, int, bool, categorical, string); repeatable.
    #[arg(long = "type", id = "types", value_name = "COLUMN=TYPE", value_parser = parse_key_value)]
    types: Vec<(String, String)>,
    /// Columns to leave out of the features (comma-separated).
    #[arg(long, value_name = "COLS")]
    drop: Option<String>,
    /// Share of rows held out for validation.
    #[arg(long, default_value_t = 0.2)]
    validation_fraction: f64,
    /// Seed of the validation split.
    #[arg(long, default_value_t = 42)]
    split_seed: u64,
    /// Output directory for the model artifact (must not exist or be empty). Optional with
    /// --register.
    #[arg(long, required_unless_present = "register")]
    out: Option<PathBuf>,
    /// Register the trained model in the registry as the next version of NAME.
    #[arg(long, value_name = "NAME")]
    register: Option<String>,
    #[command(flatten)]
    registry: super::registry::RegistryArg,
}

impl Args {
    /// Arguments for `demo`.
    pub fn new(data: PathBuf, target: &str, out: PathBuf) -> Self {
        Args {
            data,
            target: target.into(),
            estimator: "logistic_regression".into(),
            params: Vec::new(),
            schema: None,
            categorical: None,
            types: Vec::new(),
            drop: None,
            validation_fraction: 0.2,
            split_seed: 42,
            out: Some(out),
            register: None,
            registry: super::registry::RegistryArg::new(ml_registry::local::DEFAULT_PATH),
        }
    }

    /// Also register the model as `name` in `registry` (for `demo`).
    pub fn with_register(mut self, name: &str, registry: super::registry::RegistryArg) -> Self {
        self.register = Some(name.to_string());
        self.registry = registry;
        self
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    run_with_outcome(args).map(|_| ())
}

/// Trains, prints progress and metrics, saves; returns the outcome for `demo`.
pub fn run_with_outcome(args: Args) -> anyhow::Result<TrainOutcome> {
    let estimator = Estimator::from_name(&args.estimator, &args.params)?;
    let mut request = TrainRequest::new(&args.data, &args.target, estimator);
    request.schema = args.schema.clone();
    let mut types = BTreeMap::new();
    for c in args.categorical.as_deref().map(parse_list).unwrap_or_default() {
        types.insert(c, TypeHint::Categorical);
    }
    for (c, t) in &args.types {
        types.insert(c.clone(), t.parse::<TypeHint>()?);
    }
    request.types = types;
    request.drop = args.drop.as_deref().map(parse_list).unwrap_or_default();
    request.validation_fraction = args.validation_fraction;
    request.split_seed = args.split_seed;

    if let Some(out) = &args.out
        && out.exists()
        && std::fs::read_dir(out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        anyhow::bail!(
            "output directory {} already exists and is not empty; choose another --out or remove it",
            out.display()
        );
    }
    if let Some(name) = &args.register {
        ml_registry::validate_model_name(name)?;
    }
    eprintln!("reading {}", args.data.display());
    let outcome = train(&request)?;
    match &outcome.schema_source {
        SchemaSource::File(p) => eprintln!("schema: {}", p.display()),
        SchemaSource::Sidecar(p) => eprintln!("schema: {} (found beside the data)", p.display()),
        SchemaSource::Inferred => eprintln!("schema: inferred from the data"),
    }
    if !outcome.ignored_columns.is_empty() {
        eprintln!("not used as features: {}", outcome.ignored_columns.join(", "));
    }
    let m = &outcome.metrics;
    eprintln!(
        "trained {} on {} rows in {:.2} s; validating on {} rows",
        args.estimator,
        thousands(m.n_train),
        outcome.fit_time.as_secs_f64(),
        thousands(m.n_validation)
    );
    println!("validation metrics ({} rows):", thousands(m.n_validation));
    println!("  accuracy  {:.4}", m.validation.accuracy);
    println!("  f1        {:.4}", m.validation.f1);
    println!("  roc_auc   {:.4}", m.validation.roc_auc);
    println!("  log_loss  {:.4}", m.validation.log_loss);
    let mut artifact = outcome.artifact(&request)?;
    if let Some(out) = &args.out {
        artifact.save(out)?;
        eprintln!("saved model artifact to {}", out.display());
    }
    if let Some(name) = &args.register {
        let options = ml_registry::RegisterOptions {
            training_data: Some(args.data.display().to_string()),
            ..ml_registry::RegisterOptions::default()
        };
        super::registry::register_artifact(&args.registry, name, &artifact, &options)?;
    }
    Ok(outcome)
}
