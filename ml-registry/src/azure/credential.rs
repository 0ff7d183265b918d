//! Entra ID credentials for the Blob registry, from the official `azure_identity` crate.
//!
//! `azure_identity` 1.0 has no default chain of its own, so the registry builds one from its
//! credentials, in the order Azure's SDKs document for their default chain, and words its
//! failure so that it says which variables to set:
//!
//! 1. **environment** — a service principal: `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
//!    `AZURE_CLIENT_SECRET` ([`azure_identity::ClientSecretCredential`]);
//! 2. **workload identity** — `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
//!    `AZURE_FEDERATED_TOKEN_FILE`, as AKS workload identity sets them
//!    ([`azure_identity::WorkloadIdentityCredential`]);
//! 3. **managed identity** — App Service, Functions, Container Apps (`IDENTITY_ENDPOINT`) or a VM's
//!    instance metadata service; a user-assigned identity by `AZURE_CLIENT_ID`
//!    ([`azure_identity::ManagedIdentityCredential`]);
//! 4. **Azure CLI** — the account of `az login` ([`azure_identity::AzureCliCredential`]).
//!
//! A service principal or workload identity that is configured is used alone: a half-set or
//! wrong configuration fails loudly instead of silently falling back to whoever is signed in to
//! the CLI. Otherwise managed identity and the CLI are tried; the CLI first unless a managed
//! identity endpoint is advertised (`IDENTITY_ENDPOINT`/`MSI_ENDPOINT`), because asking a VM
//! metadata service that is not there waits for network timeouts, while a missing or signed-out
//! `az` answers at once. `STREAMSCORE_AZURE_CREDENTIAL` (`environment`, `workload_identity`,
//! `managed_identity`, `azure_cli`, comma-separated for several) pins the choice.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::error::ErrorKind;
use azure_identity::{
    AzureCliCredential, ClientSecretCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};

/// The variable that pins which Entra ID credential(s) to use.
pub const CREDENTIAL_ENV: &str = "STREAMSCORE_AZURE_CREDENTIAL";

/// What to set to use Entra ID, for error messages.
pub(crate) const ENTRA_HELP: &str = "for Entra ID set AZURE_STORAGE_ACCOUNT_URL (https://ACCOUNT.blob.core.windows.net) or AZURE_STORAGE_ACCOUNT, plus one of: AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (service principal); AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_FEDERATED_TOKEN_FILE (workload identity); a managed identity on the host (AZURE_CLIENT_ID for a user-assigned one); or `az login`";

/// One kind of Entra ID credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialSource {
    /// A service principal with a client secret from the environment.
    Environment,
    /// Workload identity federation (a token file from the environment).
    WorkloadIdentity,
    /// The host's managed identity.
    ManagedIdentity,
    /// The account signed in to the Azure CLI.
    AzureCli,
}

impl CredentialSource {
    /// The name used in `STREAMSCORE_AZURE_CREDENTIAL` and in messages.
    pub fn name(self) -> &'static str {
        match self {
            CredentialSource::Environment => "environment",
            CredentialSource::WorkloadIdentity => "workload_identity",
            CredentialSource::ManagedIdentity => "managed_identity",
            CredentialSource::AzureCli => "azure_cli",
        }
    }

    fn parse(s: &str) -> Option<CredentialSource> {
        [
            CredentialSource::Environment,
            CredentialSource::WorkloadIdentity,
            CredentialSource::ManagedIdentity,
            CredentialSource::AzureCli,
        ]
        .into_iter()
        .find(|c| c.name() == s.trim())
    }

    /// The variables this credential needs that `var` does not have.
    fn missing(self, var: &dyn Fn(&str) -> Option<String>) -> Vec<&'static str> {
        let needs: &[&'static str] = match self {
            CredentialSource::Environment => &["AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"],
            CredentialSource::WorkloadIdentity => {
                &["AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE"]
            }
            CredentialSource::ManagedIdentity | CredentialSource::AzureCli => &[],
        };
        needs.iter().copied().filter(|v| var(v).is_none()).collect()
    }
}

/// The credentials to try, in order, for the environment that `var` reads (see the module
/// docs). Errors say which variables are missing or what the valid names are.
pub fn credential_chain(var: &dyn Fn(&str) -> Option<String>) -> Result<Vec<CredentialSource>, String> {
    let chain = if let Some(pinned) = var(CREDENTIAL_ENV) {
        let mut chain = Vec::new();
        for item in pinned.split(',').filter(|s| !s.trim().is_empty()) {
            chain.push(CredentialSource::parse(item).ok_or_else(|| {
                format!(
                    "{CREDENTIAL_ENV}={pinned:?}: unknown credential {:?}; use environment, workload_identity, managed_identity or azure_cli (comma-separated for several)",
                    item.trim()
                )
            })?);
        }
        if chain.is_empty() {
            return Err(format!(
                "{CREDENTIAL_ENV} is empty; use environment, workload_identity, managed_identity or azure_cli"
            ));
        }
        chain
    } else if var("AZURE_CLIENT_SECRET").is_some() {
        vec![CredentialSource::Environment]
    } else if var("AZURE_FEDERATED_TOKEN_FILE").is_some() {
        vec![CredentialSource::WorkloadIdentity]
    } else if var("IDENTITY_ENDPOINT").is_some() || var("MSI_ENDPOINT").is_some() {
        vec![CredentialSource::ManagedIdentity, CredentialSource::AzureCli]
    } else {
        vec![CredentialSource::AzureCli, CredentialSource::ManagedIdentity]
    };
    for source in &chain {
        let missing = source.missing(var);
        if !missing.is_empty() {
            return Err(format!(
                "the {} credential needs {} (not set)",
                source.name(),
                missing.join(", ")
            ));
        }
    }
    Ok(chain)
}

/// Builds the credential for `chain`, reading the variables through `var`.
pub fn build(
    chain: &[CredentialSource],
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Arc<dyn TokenCredential>, String> {
    let get = |name: &str| var(name).unwrap_or_default();
    let mut sources: Vec<(CredentialSource, Arc<dyn TokenCredential>)> = Vec::new();
    for &source in chain {
        let built: azure_core::Result<Arc<dyn TokenCredential>> = match source {
            CredentialSource::Environment => ClientSecretCredential::new(
                &get("AZURE_TENANT_ID"),
                get("AZURE_CLIENT_ID"),
                Secret::new(get("AZURE_CLIENT_SECRET")),
                None,
            )
            .map(|c| c as Arc<dyn TokenCredential>),
            CredentialSource::WorkloadIdentity => {
                WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                    client_id: var("AZURE_CLIENT_ID"),
                    tenant_id: var("AZURE_TENANT_ID"),
                    token_file_path: var("AZURE_FEDERATED_TOKEN_FILE").map(Into::into),
                    ..Default::default()
                }))
                .map(|c| c as Arc<dyn TokenCredential>)
            }
            CredentialSource::ManagedIdentity => {
                ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                    user_assigned_id: var("AZURE_CLIENT_ID").map(UserAssignedId::ClientId),
                    ..Default::default()
                }))
                .map(|c| c as Arc<dyn TokenCredential>)
            }
            CredentialSource::AzureCli => {
                AzureCliCredential::new(None).map(|c| c as Arc<dyn TokenCredential>)
            }
        };
        let built = built.map_err(|e| format!("the {} credential: {e}", source.name()))?;
        sources.push((source, built));
    }
    Ok(Arc::new(ChainCredential::new(sources)))
}

/// Tries its credentials in order until one gives a token, then keeps using that one.
pub struct ChainCredential {
    sources: Vec<(CredentialSource, Arc<dyn TokenCredential>)>,
    /// Index of the credential that worked; `usize::MAX` until one has.
    chosen: AtomicUsize,
}

impl ChainCredential {
    /// A chain over `sources`, tried in this order.
    pub fn new(sources: Vec<(CredentialSource, Arc<dyn TokenCredential>)>) -> ChainCredential {
        ChainCredential {
            sources,
            chosen: AtomicUsize::new(usize::MAX),
        }
    }
}

impl fmt::Debug for ChainCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.sources.iter().map(|(s, _)| s.name()).collect();
        f.debug_struct("ChainCredential")
            .field("sources", &names)
            .finish()
    }
}

#[async_trait::async_trait]
impl TokenCredential for ChainCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let chosen = self.chosen.load(Ordering::Relaxed);
        if let Some((_, credential)) = self.sources.get(chosen) {
            return credential.get_token(scopes, options).await;
        }
        let mut failures = Vec::new();
        for (i, (source, credential)) in self.sources.iter().enumerate() {
            match credential.get_token(scopes, options.clone()).await {
                Ok(token) => {
                    self.chosen.store(i, Ordering::Relaxed);
                    return Ok(token);
                }
                Err(e) => failures.push(format!("{}: {e}", source.name())),
            }
        }
        Err(azure_core::Error::with_message(
            ErrorKind::Credential,
            format!(
                "no Entra ID credential gave a token ({}); {ENTRA_HELP}, or set AZURE_STORAGE_CONNECTION_STRING",
                failures.join("; ")
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    use CredentialSource::*;

    #[test]
    fn the_chain_follows_the_environment() {
        assert_eq!(credential_chain(&env(&[])).unwrap(), [AzureCli, ManagedIdentity]);
        assert_eq!(
            credential_chain(&env(&[("IDENTITY_ENDPOINT", "http://169.254.1.1/msi")])).unwrap(),
            [ManagedIdentity, AzureCli]
        );
        let sp = [
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_CLIENT_SECRET", "s"),
        ];
        assert_eq!(credential_chain(&env(&sp)).unwrap(), [Environment]);
        let wi = [
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token"),
        ];
        assert_eq!(credential_chain(&env(&wi)).unwrap(), [WorkloadIdentity]);
        assert_eq!(
            credential_chain(&env(&[(CREDENTIAL_ENV, "managed_identity, azure_cli")])).unwrap(),
            [ManagedIdentity, AzureCli]
        );
    }

    #[test]
    fn a_half_configured_credential_names_what_is_missing() {
        let e =
            credential_chain(&env(&[("AZURE_CLIENT_SECRET", "s"), ("AZURE_CLIENT_ID", "c")])).unwrap_err();
        assert_eq!(e, "the environment credential needs AZURE_TENANT_ID (not set)");
        let e = credential_chain(&env(&[("AZURE_FEDERATED_TOKEN_FILE", "/t")])).unwrap_err();
        assert_eq!(
            e,
            "the workload_identity credential needs AZURE_TENANT_ID, AZURE_CLIENT_ID (not set)"
        );
        let e = credential_chain(&env(&[(CREDENTIAL_ENV, "environment")])).unwrap_err();
        assert!(
            e.contains("AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET"),
            "{e}"
        );
        let e = credential_chain(&env(&[(CREDENTIAL_ENV, "default")])).unwrap_err();
        assert!(
            e.contains("unknown credential \"default\"")
                && e.contains("environment, workload_identity, managed_identity or azure_cli"),
            "{e}"
        );
    }

    #[test]
    fn every_credential_of_a_chain_can_be_built() {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "service-account-token").unwrap();
        let token_path = token_file.to_str().unwrap().to_string();
        let vars = env(&[
            ("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_CLIENT_SECRET", "s"),
            ("AZURE_FEDERATED_TOKEN_FILE", &token_path),
        ]);
        let c = build(&[Environment, WorkloadIdentity, AzureCli, ManagedIdentity], &vars).unwrap();
        assert!(
            format!("{c:?}")
                .contains("[\"environment\", \"workload_identity\", \"azure_cli\", \"managed_identity\"]")
        );
        std::fs::remove_file(&token_file).unwrap();
        let e = build(&[WorkloadIdentity], &vars).unwrap_err();
        assert!(
            e.starts_with("the workload_identity credential: failed to read federated token from file"),
            "{e}"
        );
    }

    /// A credential that answers from a script and counts its calls.
    #[derive(Debug)]
    struct Fake {
        token: Option<&'static str>,
        calls: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl TokenCredential for Fake {
        async fn get_token(
            &self,
            _: &[&str],
            _: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            match self.token {
                Some(t) => Ok(AccessToken::new(
                    t.to_string(),
                    azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
                )),
                None => Err(azure_core::Error::with_message(
                    ErrorKind::Credential,
                    "not signed in",
                )),
            }
        }
    }

    fn fake(token: Option<&'static str>) -> Arc<Fake> {
        Arc::new(Fake {
            token,
            calls: AtomicUsize::new(0),
        })
    }

    #[test]
    fn the_chain_keeps_the_first_credential_that_works() {
        let (cli, mi) = (fake(None), fake(Some("from-mi")));
        let chain = ChainCredential::new(vec![(AzureCli, cli.clone()), (ManagedIdentity, mi.clone())]);
        futures::executor::block_on(async {
            let scope = ["https://storage.azure.com/.default"];
            assert_eq!(
                chain.get_token(&scope, None).await.unwrap().token.secret(),
                "from-mi"
            );
            assert_eq!(
                chain.get_token(&scope, None).await.unwrap().token.secret(),
                "from-mi"
            );
        });
        assert_eq!(
            cli.calls.load(Ordering::Relaxed),
            1,
            "not asked again once another worked"
        );
        assert_eq!(mi.calls.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_chain_where_nothing_works_says_what_each_said_and_what_to_set() {
        let chain = ChainCredential::new(vec![(AzureCli, fake(None)), (ManagedIdentity, fake(None))]);
        let e = futures::executor::block_on(chain.get_token(&["s"], None)).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with(
                "no Entra ID credential gave a token (azure_cli: not signed in; managed_identity: not signed in); for Entra ID set AZURE_STORAGE_ACCOUNT_URL"
            ),
            "{msg}"
        );
        assert!(
            msg.contains("AZURE_CLIENT_SECRET") && msg.contains("`az login`"),
            "{msg}"
        );
    }
}
