//! Stream scoring with a saved model: what `streamscore stream` runs, callable from Rust.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ml_core::{LocalScorer, ModelArtifact};
use ml_stream::{Pipeline, PipelineConfig, SpecRegistry};

/// What to stream.
#[derive(Debug, Clone)]
pub struct StreamRequest {
    /// The model artifact directory.
    pub model: PathBuf,
    /// The source spec (`file:events.jsonl`, `stdin:`, ...).
    pub source: String,
    /// Sink specs (at least one).
    pub sinks: Vec<String>,
    /// Dead-letter sink spec; without one, dead letters are printed to standard error.
    pub dead_letter: Option<String>,
    /// Batching, queues, commits, retries.
    pub config: PipelineConfig,
}

/// Builds the pipeline for a request: loads and verifies the model, builds source and sinks
/// from their specs. The model name and version recorded in every record are the artifact's
/// directory name and its `model_uuid`.
pub fn build(
    request: &StreamRequest,
    specs: &SpecRegistry,
) -> ml_stream::Result<(Pipeline, Box<dyn ml_stream::StreamSource>)> {
    let artifact = ModelArtifact::load(&request.model)?;
    let version = artifact.mlmodel().model_uuid.clone();
    build_with_artifact(request, &artifact, &model_name(&request.model), &version, specs)
}

/// [`build`] with a model already loaded (from a registry: `credit@prod`), recorded in every
/// record as `name` and `version`; `request.model` is not read.
pub fn build_with_artifact(
    request: &StreamRequest,
    artifact: &ModelArtifact,
    name: &str,
    version: &str,
    specs: &SpecRegistry,
) -> ml_stream::Result<(Pipeline, Box<dyn ml_stream::StreamSource>)> {
    let model = artifact.load_model()?;
    let schema = Arc::new(model.schema().clone());
    let mut config = request.config.clone();
    config.model_name = name.to_string();
    config.model_version = version.to_string();
    let sinks = request
        .sinks
        .iter()
        .map(|s| specs.sink(s))
        .collect::<ml_stream::Result<Vec<_>>>()?;
    let source = specs.source(&request.source)?;
    let scorer: Arc<dyn ml_core::Scorer> = Arc::new(LocalScorer::new(model));
    let mut pipeline = Pipeline::new(config, schema, scorer, sinks)?;
    if let Some(d) = &request.dead_letter {
        pipeline = pipeline.with_dead_letter(specs.sink(d)?);
    }
    Ok((pipeline, source))
}

fn model_name(dir: &Path) -> String {
    dir.canonicalize()
        .ok()
        .as_deref()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into())
}

/// Builds the pipeline for a request scored by a remote endpoint (`streamscore stream
/// --remote URL`): the schema and output kind come from the endpoint's swagger;
/// `request.model` is not read. Records name the endpoint URL as the model.
pub async fn build_remote(
    request: &StreamRequest,
    remote: ml_stream::RemoteConfig,
    specs: &SpecRegistry,
) -> ml_stream::Result<(Pipeline, Box<dyn ml_stream::StreamSource>)> {
    let scorer = ml_stream::RemoteScorer::connect(remote).await?;
    let schema = Arc::new(
        ml_core::Scorer::schema(&scorer)
            .cloned()
            .ok_or_else(|| ml_stream::Error::Internal("a connected remote scorer has a schema".into()))?,
    );
    let mut config = request.config.clone();
    config.model_name = scorer.endpoint().to_string();
    config.model_version = "remote".into();
    let sinks = request
        .sinks
        .iter()
        .map(|s| specs.sink(s))
        .collect::<ml_stream::Result<Vec<_>>>()?;
    let source = specs.source(&request.source)?;
    let mut pipeline = Pipeline::new(config, schema, Arc::new(scorer), sinks)?;
    if let Some(d) = &request.dead_letter {
        pipeline = pipeline.with_dead_letter(specs.sink(d)?);
    }
    Ok((pipeline, source))
}
