//! A signed-out Entra ID credential for tests, shared by every crate whose tests check what an
//! Azure client does when no credential gives a token: include it with
//! `#[path = "../../../test-support/entra.rs"] mod entra;`.

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};

/// A credential as `az login` leaves it when nobody is signed in: every token request fails
/// with the Azure CLI's message. It also checks that the client asks for Azure Storage's scope.
#[derive(Debug)]
pub struct SignedOut;

#[async_trait::async_trait]
impl TokenCredential for SignedOut {
    async fn get_token(
        &self,
        scopes: &[&str],
        _: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        assert_eq!(scopes, ["https://storage.azure.com/.default"]);
        Err(azure_core::Error::with_message(
            azure_core::error::ErrorKind::Credential,
            "Please run 'az login' to set up an account",
        ))
    }
}
