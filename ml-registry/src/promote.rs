//! Promotion: moving a version along dev → staging → prod, inside one registry (an alias) or
//! between registries (a verified copy that records where it came from).

use crate::error::{Error, LineageConflict, Result};
use crate::reference::{Reference, validate_alias};
use crate::{ModelRegistry, ModelVersion, RegisterOptions, SourceVersion};

/// What [`promote()`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct Promotion {
    /// The version promoted, as it is in the source registry.
    pub source: ModelVersion,
    /// The version in the target registry (the source itself when both are one registry).
    pub target: ModelVersion,
    /// `true` when the target already held this copy (same source, same sha256): nothing was
    /// copied again.
    pub already_present: bool,
    /// The alias set, and the version it pointed at before.
    pub alias: Option<(String, Option<u32>)>,
}

/// Promotes the version `reference` selects in `from` to `to`, and points `alias` at it there.
///
/// When `from` and `to` are the same registry (same [`ModelRegistry::location`]) only the
/// alias moves. Otherwise the artifact is loaded from `from` (every checksum verified),
/// registered in `to` as the next version with the same metrics, tags, description and
/// lineage, plus a [`SourceVersion`] in front of its `copied_from` chain; its digest must come
/// out equal to the source's. Promoting the same source version again reuses the copy; if the
/// target holds a copy of that source version with different content, the promotion is refused
/// with [`Error::LineageConflict`].
pub async fn promote(
    from: &dyn ModelRegistry,
    reference: &Reference,
    to: &dyn ModelRegistry,
    alias: Option<&str>,
) -> Result<Promotion> {
    if let Some(a) = alias {
        validate_alias(a)?;
    }
    let name = reference.name.as_str();
    if from.location() == to.location() {
        let source = from.resolve(reference).await?;
        let alias = match alias {
            Some(a) => Some((a.to_string(), to.set_alias(name, a, source.version).await?)),
            None => None,
        };
        return Ok(Promotion {
            target: source.clone(),
            source,
            already_present: true,
            alias,
        });
    }
    let loaded = from.get(reference).await?;
    let source = loaded.version;
    let origin = SourceVersion {
        registry: from.location(),
        name: name.to_string(),
        version: source.version,
    };
    let existing = match to.versions(name).await {
        Ok(v) => v,
        Err(Error::ModelNotFound { .. }) => Vec::new(),
        Err(e) => return Err(e),
    };
    let copy = existing
        .into_iter()
        .find(|v| v.copied_from.first() == Some(&origin));
    let (target, already_present) = match copy {
        Some(v) if v.sha256 == source.sha256 => (v, true),
        Some(v) => {
            return Err(Error::LineageConflict(Box::new(LineageConflict {
                target: to.location(),
                name: name.to_string(),
                existing: v.version,
                source_registry: origin.registry,
                source_version: origin.version,
                existing_sha256: v.sha256,
                sha256: source.sha256,
            })));
        }
        None => {
            let mut copied_from = vec![origin];
            copied_from.extend(source.copied_from.iter().cloned());
            let options = RegisterOptions {
                tags: source.tags.clone(),
                description: source.description.clone(),
                parent_version: source.parent_version,
                training_data: source.training_data.clone(),
                copied_from,
            };
            let target = to.register(name, &loaded.artifact, &options).await?;
            if target.sha256 != source.sha256 {
                return Err(Error::Internal(format!(
                    "the copy of `{reference}` in {} has sha256 {} but the source has {}",
                    to.location(),
                    target.sha256,
                    source.sha256
                )));
            }
            (target, false)
        }
    };
    let alias = match alias {
        Some(a) => Some((a.to_string(), to.set_alias(name, a, target.version).await?)),
        None => None,
    };
    Ok(Promotion {
        source,
        target,
        already_present,
        alias,
    })
}
