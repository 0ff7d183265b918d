//! `streamscore train`

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use ml_core::{Estimator, TypeHint};
use streamscore::config::{Config, TrainSection};
use streamscore::sweep::{ParamSpace, SweepFile, SweepSpec, sweep};
use streamscore::train::{SchemaSource, TrainOutcome, TrainRequest, ValidationMetrics, train_with_progress};

use super::{parse_key_value, parse_list, thousands};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Training data: CSV with a header row.
    #[arg(long, required_unless_present = "config")]
    data: Option<PathBuf>,
    /// The column to predict.
    #[arg(long, required_unless_present = "config")]
    target: Option<String>,
    /// Estimator to train [default: logistic_regression].
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(Estimator::NAMES))]
    estimator: Option<String>,
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
    /// Share of rows held out for validation [default: 0.2].
    #[arg(long)]
    validation_fraction: Option<f64>,
    /// Seed of the validation split (and of the CV folds) [default: 42].
    #[arg(long)]
    split_seed: Option<u64>,
    /// How rows are split: auto (stratified by class for classifiers, hash for regressors),
    /// stratified, or hash (a per-row hash: stable when rows are appended) [default: auto].
    #[arg(long, value_parser = ["auto", "hash", "stratified"])]
    split: Option<String>,
    /// Also run K-fold cross-validation on the training rows (stratified for classifiers) and
    /// record each fold's metrics with mean and std; a sweep then ranks trials by mean CV metric.
    #[arg(long, value_name = "K")]
    cv: Option<usize>,
    /// How missing values are filled in, learned at fit time and stored with the model
    /// [default: mean].
    #[arg(long, value_parser = ["mean", "median", "most_frequent"])]
    impute: Option<String>,
    /// How categorical columns are encoded (unseen categories follow the schema's policy)
    /// [default: onehot].
    #[arg(long, value_parser = ["onehot", "ordinal"])]
    encode: Option<String>,
    /// A streamscore.toml whose [train] section gives defaults for these flags (and may hold
    /// a [train.sweep] table).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Output directory for the model artifact (must not exist or be empty). Optional with
    /// --register.
    #[arg(long, required_unless_present_any = ["register", "config"])]
    out: Option<PathBuf>,
    /// Register the trained model in the registry as the next version of NAME.
    #[arg(long, value_name = "NAME")]
    register: Option<String>,
    #[command(flatten)]
    registry: super::registry::RegistryArg,
    /// Random-search options.
    #[command(flatten)]
    sweep_args: Box<SweepArgs>,
}

/// `--sweep` and its options (boxed: they would make every command's arguments larger).
#[derive(Debug, Default, clap::Args)]
pub struct SweepArgs {
    /// Random search: fit N trials with parameters drawn from --space / --space-file /
    /// --sweep-space and keep the best on validation (or on mean CV metric with --cv).
    #[arg(long, value_name = "N")]
    sweep: Option<usize>,
    /// Metric the sweep optimizes (f1, roc_auc, accuracy, log_loss, precision, recall, pr_auc;
    /// rmse, mae, r2). Default f1, or the sweep file's `metric`.
    #[arg(long)]
    metric: Option<String>,
    /// Sweep parameter as NAME=A..B (uniform range; integers if both ends are),
    /// NAME=log:A..B (log-uniform) or NAME=V1,V2,... (choice); repeatable.
    #[arg(long = "space", value_name = "NAME=SPEC")]
    space: Vec<String>,
    /// File of sweep parameters, one NAME=SPEC per line (# comments).
    #[arg(long, value_name = "FILE")]
    space_file: Option<PathBuf>,
    /// TOML sweep file: `trials`, `metric`, `seed`, `cv` and a `[space]` table (see the
    /// README); implies a sweep. Command-line flags override its options.
    #[arg(long, value_name = "FILE.toml")]
    sweep_space: Option<PathBuf>,
    /// Seed of the sweep's sampling. Default 0, or the sweep file's `seed`.
    #[arg(long)]
    sweep_seed: Option<u64>,
}

impl Args {
    /// Arguments for `demo`.
    pub fn new(data: PathBuf, target: &str, out: PathBuf) -> Self {
        Args {
            data: Some(data),
            target: Some(target.into()),
            estimator: Some("logistic_regression".into()),
            params: Vec::new(),
            schema: None,
            categorical: None,
            types: Vec::new(),
            drop: None,
            validation_fraction: None,
            split_seed: None,
            split: None,
            cv: None,
            impute: None,
            encode: None,
            config: None,
            out: Some(out),
            register: None,
            registry: super::registry::RegistryArg::new(ml_registry::local::DEFAULT_PATH),
            sweep_args: Box::default(),
        }
    }

    /// Sweeps `trials` trials over `space` (`NAME=SPEC` entries) on `metric` (for `demo`).
    pub fn with_sweep(mut self, trials: usize, metric: &str, space: &[&str]) -> Self {
        self.sweep_args.sweep = Some(trials);
        self.sweep_args.metric = Some(metric.into());
        self.sweep_args.space = space.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Also register the model as `name` in `registry` (for `demo`).
    pub fn with_register(mut self, name: &str, registry: super::registry::RegistryArg) -> Self {
        self.register = Some(name.to_string());
        self.registry = registry;
        self
    }
}

impl Args {
    /// Sets the estimator and its parameters (for `demo`).
    pub fn with_estimator(mut self, name: &str, params: &[(&str, &str)]) -> Self {
        self.estimator = Some(name.into());
        self.params = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self
    }
}

/// The sweep to run, from `--sweep`, `--space`, `--space-file` and `--sweep-space` (the TOML
/// file's options yield to the flags); `None` without a sweep. A TOML file's `cv` sets
/// `request.cv` unless `--cv` did.
fn sweep_spec(
    sw: &SweepArgs,
    section: Option<&toml::Table>,
    request: &mut TrainRequest,
) -> anyhow::Result<Option<SweepSpec>> {
    let file = match (&sw.sweep_space, section) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read sweep file {}: {e}", path.display()))?;
            Some(SweepFile::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?)
        }
        (None, Some(table)) => {
            Some(SweepFile::from_table(table).map_err(|e| anyhow::anyhow!("[train.sweep]: {e}"))?)
        }
        (None, None) => None,
    };
    let trials = sw.sweep.or(file.as_ref().and_then(|f| f.trials));
    let Some(trials) = trials else {
        if file.is_some() {
            anyhow::bail!("the sweep file gives no `trials`; add `trials = N` to it or pass --sweep N");
        }
        if sw.metric.is_some() || !sw.space.is_empty() || sw.space_file.is_some() || sw.sweep_seed.is_some() {
            anyhow::bail!(
                "--metric, --space, --space-file and --sweep-seed need --sweep N (or --sweep-space FILE)"
            );
        }
        return Ok(None);
    };
    let mut space = file.as_ref().map(|f| f.space.clone()).unwrap_or_default();
    if let Some(path) = &sw.space_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read space file {}: {e}", path.display()))?;
        for (name, domain) in ParamSpace::parse_file(&text)?.params {
            space.params.retain(|(n, _)| n != &name);
            space.params.push((name, domain));
        }
    }
    for entry in &sw.space {
        space.add(entry)?;
    }
    if request.cv.is_none() {
        request.cv = file.as_ref().and_then(|f| f.cv);
    }
    Ok(Some(SweepSpec {
        trials,
        metric: sw
            .metric
            .clone()
            .or_else(|| file.as_ref().and_then(|f| f.metric.clone()))
            .unwrap_or_else(|| "f1".into()),
        space,
        seed: sw.sweep_seed.or(file.as_ref().and_then(|f| f.seed)).unwrap_or(0),
    }))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    run_with_outcome(args).map(|_| ())
}

/// Trains, prints progress and metrics, saves; returns the outcome for `demo`.
pub fn run_with_outcome(args: Args) -> anyhow::Result<TrainOutcome> {
    let section = match &args.config {
        Some(path) => Config::load(path)?.train.unwrap_or_default(),
        None => TrainSection::default(),
    };
    let data = args
        .data
        .clone()
        .or(section.data.as_ref().map(PathBuf::from))
        .context("no training data: pass --data FILE (or set data in the [train] section of --config)")?;
    let target = args
        .target
        .clone()
        .or(section.target.clone())
        .context("no target: pass --target COLUMN (or set target in the [train] section of --config)")?;
    let estimator_name = args
        .estimator
        .clone()
        .or(section.estimator.clone())
        .unwrap_or_else(|| "logistic_regression".into());
    // The section's parameters first, so that --param overrides them one by one.
    let mut params: Vec<(String, String)> = section
        .params
        .iter()
        .map(|(k, v)| Ok((k.clone(), serde_json::to_string(v)?)))
        .collect::<anyhow::Result<_>>()?;
    params.extend(args.params.iter().cloned());
    let estimator = Estimator::from_name(&estimator_name, &params)?;
    let out = args.out.clone().or(section.out.as_ref().map(PathBuf::from));
    if out.is_none() && args.register.is_none() {
        anyhow::bail!(
            "no output: pass --out DIR or --register NAME (or set out in the [train] section of --config)"
        );
    }
    let mut request = TrainRequest::new(&data, &target, estimator);
    request.schema = args.schema.clone().or(section.schema.as_ref().map(PathBuf::from));
    let mut types = BTreeMap::new();
    for c in args.categorical.as_deref().map(parse_list).unwrap_or_default() {
        types.insert(c, TypeHint::Categorical);
    }
    for (c, t) in &args.types {
        types.insert(c.clone(), t.parse::<TypeHint>()?);
    }
    request.types = types;
    request.drop = args
        .drop
        .as_deref()
        .map(parse_list)
        .unwrap_or_else(|| section.drop.clone());
    request.validation_fraction = args
        .validation_fraction
        .or(section.validation_fraction)
        .unwrap_or(request.validation_fraction);
    request.split_seed = args
        .split_seed
        .or(section.split_seed)
        .unwrap_or(request.split_seed);
    let choice = |flag: &Option<String>, file: &Option<String>| flag.clone().or(file.clone());
    if let Some(split) = choice(&args.split, &section.split) {
        request.split = split.parse()?;
    }
    if let Some(impute) = choice(&args.impute, &section.impute) {
        request.preprocessing.impute = impute.parse()?;
    }
    if let Some(encode) = choice(&args.encode, &section.encode) {
        request.preprocessing.encode = encode.parse()?;
    }
    request.cv = args.cv.or(section.cv);

    if let Some(out) = &out
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
    let sweep_spec = sweep_spec(&args.sweep_args, section.sweep.as_ref(), &mut request)?;
    if let Some(name) = &args.register {
        ml_registry::validate_model_name(name)?;
    }
    eprintln!("reading {}", data.display());
    let outcome = match &sweep_spec {
        Some(spec) => {
            let bar = fit_progress_bar(spec.trials.max(2), "sweep trials");
            bar.set_length(spec.trials as u64);
            let outcome = sweep(&request, spec, &|| bar.inc(1));
            bar.finish_and_clear();
            outcome?
        }
        None => {
            let bar = fit_progress_bar(request.n_steps(), "fitting");
            let outcome = train_with_progress(&request, &|| bar.inc(1));
            bar.finish_and_clear();
            outcome?
        }
    };
    if let Some(record) = &outcome.metrics.sweep {
        eprintln!(
            "sweep: {} trials, best is trial {} by {} ({})",
            record.trials.len(),
            record.best_trial,
            record.metric,
            record.direction
        );
        for t in &record.trials {
            eprintln!(
                "  trial {:>3}{} {} = {:.4}  {}",
                t.trial,
                if t.trial == record.best_trial { "*" } else { " " },
                record.metric,
                t.score,
                serde_json::Value::Object(t.params.clone())
            );
        }
    }
    if let Some(cv) = &outcome.metrics.cv {
        eprintln!(
            "{}-fold cross-validation{} on the training rows (mean ± std):",
            cv.k,
            if cv.stratified { " (stratified)" } else { "" }
        );
        for (name, mean) in &cv.mean {
            eprintln!(
                "  {name:<9} {mean:.4} ± {:.4}",
                cv.std.get(name).copied().unwrap_or(f64::NAN)
            );
        }
    }
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
        "trained {} on {} rows in {:.2} s; validating on {} rows ({} split)",
        estimator_name,
        thousands(m.n_train),
        outcome.fit_time.as_secs_f64(),
        thousands(m.n_validation),
        m.split
    );
    println!("validation metrics ({} rows):", thousands(m.n_validation));
    match &m.validation {
        ValidationMetrics::Classification(v) => {
            println!("  accuracy  {:.4}", v.accuracy);
            println!("  f1        {:.4}", v.f1);
            println!("  roc_auc   {:.4}", v.roc_auc);
            println!("  log_loss  {:.4}", v.log_loss);
        }
        ValidationMetrics::Regression(v) => {
            println!("  rmse      {:.4}", v.rmse);
            println!("  mae       {:.4}", v.mae);
            println!("  r2        {:.4}", v.r2);
        }
    }
    let mut artifact = outcome.artifact(&request)?;
    if let Some(out) = &out {
        artifact.save(out)?;
        eprintln!("saved model artifact to {}", out.display());
    }
    if let Some(name) = &args.register {
        let options = ml_registry::RegisterOptions {
            training_data: Some(data.display().to_string()),
            ..ml_registry::RegisterOptions::default()
        };
        super::registry::register_artifact(&args.registry, name, &artifact, &options)?;
    }
    Ok(outcome)
}

/// A progress bar over `steps` fitting steps (trees), drawn on stderr only when it is a
/// terminal; a one-step fit gets a spinner-free hidden bar.
pub fn fit_progress_bar(steps: usize, message: &'static str) -> ProgressBar {
    if steps <= 1 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(steps as u64);
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({elapsed})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message);
    bar
}
