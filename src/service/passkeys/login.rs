//! Logging in with a passkey (api.md §11): request options for any discoverable credential of
//! this relying party, then the assertion verified against an unused login challenge; the
//! passkey's owner gets a full session (a passkey is both factors).

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;
use webauthn_rs::prelude::{DiscoverableAuthentication, Passkey, PublicKeyCredential};

use super::challenges::LOGIN;
use super::{Challenge, cred_id_text};
use crate::entity::{passkey, user};
use crate::service::audit::{EventKind, NewEvent};
use crate::service::metrics::LoginResult;
use crate::service::{AuthError, AuthService, NewSession};

impl AuthService {
    /// `POST /api/v1/passkeys/login/start`: request options for any discoverable credential of
    /// this relying party, user verification required.
    pub async fn start_passkey_login(&self) -> Result<Challenge, AuthError> {
        let rp = self.rp()?;
        let (rcr, state) = rp
            .start_discoverable_authentication()
            .map_err(|e| AuthError::Internal(format!("starting a passkey login: {e}")))?;
        let options = serde_json::to_value(&rcr.public_key).map_err(|e| AuthError::Internal(e.to_string()))?;
        let challenge_id = self.store_challenge(LOGIN, None, &state).await?;
        Ok(Challenge { challenge_id, options })
    }

    /// `POST /api/v1/passkeys/login/finish`: verifies the assertion against an unused login
    /// challenge and opens a full session for the passkey's owner. With `expected_user` (a pending
    /// login of §10), the passkey must belong to that user. Every failure is `PasskeyLoginFailed`.
    pub async fn finish_passkey_login(
        &self,
        challenge_id: &str,
        credential: &serde_json::Value,
        expected_user: Option<Uuid>,
    ) -> Result<NewSession, AuthError> {
        let result = self.finish_passkey_login_checked(challenge_id, credential, expected_user).await;
        let outcome = match &result {
            Ok(_) => Some(LoginResult::Success),
            Err(AuthError::PasskeyLoginFailed) => Some(LoginResult::Invalid),
            Err(_) => None,
        };
        if let Some(outcome) = outcome {
            self.count(|m| m.login(outcome));
        }
        result
    }

    async fn finish_passkey_login_checked(
        &self,
        challenge_id: &str,
        credential: &serde_json::Value,
        expected_user: Option<Uuid>,
    ) -> Result<NewSession, AuthError> {
        let rp = self.rp()?;
        let state = self.claim_challenge(challenge_id, LOGIN, None).await?.ok_or(AuthError::PasskeyLoginFailed)?;
        let state: DiscoverableAuthentication =
            serde_json::from_str(&state).map_err(|e| AuthError::Internal(format!("stored passkey state: {e}")))?;
        let assertion: PublicKeyCredential =
            serde_json::from_value(credential.clone()).map_err(|_| AuthError::PasskeyLoginFailed)?;
        let (user_id, cred_id) =
            rp.identify_discoverable_authentication(&assertion).map_err(|_| AuthError::PasskeyLoginFailed)?;
        if expected_user.is_some_and(|u| u != user_id) {
            return Err(AuthError::PasskeyLoginFailed);
        }
        let found = passkey::Entity::find()
            .filter(passkey::Column::CredentialId.eq(cred_id_text(cred_id)))
            .filter(passkey::Column::UserId.eq(user_id))
            .find_also_related(user::Entity)
            .one(&self.db)
            .await?;
        let Some((stored, Some(user))) = found else {
            return Err(AuthError::PasskeyLoginFailed);
        };
        let mut key: Passkey = serde_json::from_str(&stored.credential)
            .map_err(|e| AuthError::Internal(format!("stored passkey {}: {e}", stored.id)))?;
        let verified = match rp.finish_discoverable_authentication_v2(&assertion, state, &key) {
            Ok(v) => v,
            Err(e) => {
                tracing::info!(error = %e, passkey = %stored.id, "passkey assertion refused");
                self.audit_alone(vec![NewEvent::new(EventKind::LoginFailed, Some(user.id), &user.email)]).await?;
                return Err(AuthError::PasskeyLoginFailed);
            }
        };
        // webauthn-rs refuses a counter that went backwards (a cloned authenticator); a new counter
        // or backup state is stored, as it advises.
        let mut update = passkey::Entity::update_many().col_expr(passkey::Column::LastUsedAt, Expr::value(self.now()));
        if key.update_credential(&verified) == Some(true) {
            let json = serde_json::to_string(&key).map_err(|e| AuthError::Internal(e.to_string()))?;
            update = update.col_expr(passkey::Column::Credential, Expr::value(json));
        }
        update.filter(passkey::Column::Id.eq(stored.id)).exec(&self.db).await?;
        Self { login_method: "passkey", ..self.clone() }.open_session(user, None).await
    }
}
