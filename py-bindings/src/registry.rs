//! `_native.Registry`: a local directory registry, or Azure Blob Storage (`blob://...`) when
//! the wheel is built with the `azure` feature.

use std::collections::BTreeMap;
use std::future::Future;

use ml_registry::{LocalRegistry, ModelRegistry, ModelVersion, Reference, RegisterOptions};
use pyo3::prelude::*;

use crate::model::PyModel;
use crate::{Error, Result, guarded};

/// A model registry: named models with versions and aliases.
#[pyclass(name = "Registry", module = "streamscore._native", frozen)]
pub struct PyRegistry {
    inner: Box<dyn ModelRegistry>,
}

/// Runs a registry future to completion (the Azure SDK's HTTP client needs a tokio reactor;
/// the local registry does its I/O inside the future).
fn block_on<T>(f: impl Future<Output = T>) -> T {
    #[cfg(feature = "azure")]
    if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
        return rt.block_on(f);
    }
    futures::executor::block_on(f)
}

fn open(location: &str) -> Result<Box<dyn ModelRegistry>> {
    if location.starts_with("blob://") {
        #[cfg(feature = "azure")]
        {
            let r = ml_registry::azure::BlobRegistry::from_location(location)?;
            block_on(r.create_container_if_missing())?;
            return Ok(Box::new(r));
        }
        #[cfg(not(feature = "azure"))]
        return Err(ml_registry::Error::Location {
            location: location.to_string(),
            reason: "this streamscore wheel was built without Azure Blob Storage support; use a directory"
                .into(),
        }
        .into());
    }
    if location.contains("://") {
        return Err(ml_registry::Error::Location {
            location: location.to_string(),
            reason: "unknown scheme; use a directory path or blob://CONTAINER[/PREFIX]".into(),
        }
        .into());
    }
    Ok(Box::new(LocalRegistry::open(location)?))
}

fn reference(text: &str) -> Result<Reference> {
    Ok(text.parse::<Reference>()?)
}

fn json(v: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Core(ml_core::Error::Internal(e.to_string())))
}

fn version_json(v: &ModelVersion) -> Result<String> {
    json(v)
}

#[pymethods]
impl PyRegistry {
    /// Opens (creating if needed) the registry at `location`: a directory, or
    /// `blob://CONTAINER[/PREFIX]` with the account from `AZURE_STORAGE_*` variables.
    #[new]
    fn new(py: Python<'_>, location: String) -> PyResult<PyRegistry> {
        let inner = py.detach(move || guarded("opening the registry", || open(&location)))?;
        Ok(PyRegistry { inner })
    }

    /// Where the registry lives.
    #[getter]
    fn location(&self) -> String {
        self.inner.location()
    }

    /// Registers `model` as the next version of `name`; returns the version's metadata (JSON).
    #[pyo3(signature = (name, model, tags = None, description = None, training_data = None, parent_version = None))]
    #[allow(clippy::too_many_arguments)]
    fn register(
        &self,
        py: Python<'_>,
        name: &str,
        model: &PyModel,
        tags: Option<BTreeMap<String, String>>,
        description: Option<String>,
        training_data: Option<String>,
        parent_version: Option<u32>,
    ) -> PyResult<String> {
        let options = RegisterOptions {
            tags: tags.unwrap_or_default(),
            description,
            training_data,
            parent_version,
            ..RegisterOptions::default()
        };
        let artifact = &model.artifact;
        let registry = &self.inner;
        Ok(py.detach(|| {
            guarded("registering", || {
                version_json(&block_on(registry.register(name, artifact, &options))?)
            })
        })?)
    }

    /// Loads the version `reference` selects (`name:3`, `name@prod`, `name@latest`, `name`).
    fn get(&self, py: Python<'_>, reference: &str) -> PyResult<PyModel> {
        let registry = &self.inner;
        Ok(py.detach(|| {
            guarded("loading from the registry", || {
                let r = self::reference(reference)?;
                PyModel::from_artifact(block_on(registry.get(&r))?.artifact)
            })
        })?)
    }

    /// The metadata of the version `reference` selects (JSON), without loading it.
    fn resolve(&self, py: Python<'_>, reference: &str) -> PyResult<String> {
        let registry = &self.inner;
        Ok(py.detach(|| {
            guarded("resolving", || {
                version_json(&block_on(registry.resolve(&self::reference(reference)?))?)
            })
        })?)
    }

    /// The versions of `name`, oldest first (JSON list).
    fn versions(&self, py: Python<'_>, name: &str) -> PyResult<String> {
        let registry = &self.inner;
        Ok(py.detach(|| guarded("listing versions", || json(&block_on(registry.versions(name))?)))?)
    }

    /// Every model (or only `name`): `[{"name", "versions": [...], "aliases": {...}}]` (JSON).
    #[pyo3(signature = (name = None))]
    fn list(&self, py: Python<'_>, name: Option<&str>) -> PyResult<String> {
        let registry = &self.inner;
        Ok(py.detach(|| {
            guarded("listing", || {
                let models = block_on(registry.list(name))?;
                let list: Vec<serde_json::Value> = models
                    .iter()
                    .map(|m| {
                        serde_json::json!({
                            "name": m.name,
                            "versions": m.versions,
                            "aliases": m.aliases,
                        })
                    })
                    .collect();
                json(&list)
            })
        })?)
    }

    /// Points `alias` at the version `reference` selects, in this registry or copied into
    /// `to` (promotion dev → prod keeps checksums and lineage); returns the target version (JSON).
    #[pyo3(signature = (reference, alias, to = None))]
    fn promote(
        &self,
        py: Python<'_>,
        reference: &str,
        alias: &str,
        to: Option<&PyRegistry>,
    ) -> PyResult<String> {
        let from = &self.inner;
        let to = to.map_or(from, |t| &t.inner);
        Ok(py.detach(|| {
            guarded("promoting", || {
                let r = self::reference(reference)?;
                let p = block_on(ml_registry::promote(from.as_ref(), &r, to.as_ref(), Some(alias)))?;
                version_json(&p.target)
            })
        })?)
    }

    fn __repr__(&self) -> String {
        format!("Registry({:?})", self.inner.location())
    }
}
