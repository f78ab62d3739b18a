//! Registering a passkey (api.md §11): the caller confirms their password, gets creation options
//! for a discoverable credential with user verification required, and sends back the browser's
//! credential, verified against their own unused challenge.

use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, SqlErr, TransactionTrait};
use uuid::Uuid;
use webauthn_rs::prelude::{Passkey, PasskeyRegistration, RegisterPublicKeyCredential};

use super::challenges::REGISTER;
use super::{Challenge, PasskeyInfo, cred_id_text, parse_name};
use crate::entity::passkey;
use crate::service::audit::{EventKind, NewEvent};
use crate::service::reauth::OnRightPassword;
use crate::service::{AuthError, AuthService};

impl AuthService {
    /// `POST /api/v1/passkeys/register/start`: the caller (a full session) confirms their password
    /// and gets creation options for a discoverable credential with user verification required.
    pub async fn start_passkey_registration(
        &self,
        session: &str,
        current_password: &str,
    ) -> Result<Challenge, AuthError> {
        let rp = self.rp()?;
        let caller = self.authenticate(session).await?;
        let ticket = self.hasher.admit(self.hash_client())?;
        let user = self.confirm_current_password(ticket, &caller, current_password, OnRightPassword::Clear).await?;
        let existing = passkey::Entity::find().filter(passkey::Column::UserId.eq(user.id)).all(&self.db).await?;
        let exclude: Vec<_> = existing
            .iter()
            .filter_map(|p| serde_json::from_str::<Passkey>(&p.credential).ok())
            .map(|p| p.cred_id().clone())
            .collect();
        // The user handle is the account's id: a login's authenticator hands it back.
        let (ccr, state) = rp
            .start_passkey_registration(user.id, &user.email, &user.email, Some(exclude))
            .map_err(|e| AuthError::Internal(format!("starting a passkey registration: {e}")))?;
        let mut options = serde_json::to_value(&ccr.public_key).map_err(|e| AuthError::Internal(e.to_string()))?;
        // Discoverable: the login asks for no email, so the credential must live on the authenticator.
        if let Some(sel) = options.get_mut("authenticatorSelection").and_then(|s| s.as_object_mut()) {
            sel.insert("residentKey".into(), "required".into());
            sel.insert("requireResidentKey".into(), true.into());
        }
        let challenge_id = self.store_challenge(REGISTER, Some(user.id), &state).await?;
        Ok(Challenge { challenge_id, options })
    }

    /// `POST /api/v1/passkeys/register/finish`: verifies the browser's credential against the
    /// caller's own unused challenge and stores the passkey under `name`.
    pub async fn finish_passkey_registration(
        &self,
        session: &str,
        challenge_id: &str,
        name: &str,
        credential: &serde_json::Value,
    ) -> Result<PasskeyInfo, AuthError> {
        let rp = self.rp()?;
        let caller = self.authenticate(session).await?;
        let name = parse_name(name)?;
        // Claimed before anything else is checked: a challenge is spent by any attempt.
        let state =
            self.claim_challenge(challenge_id, REGISTER, Some(caller.id)).await?.ok_or(AuthError::InvalidPasskey)?;
        let state: PasskeyRegistration =
            serde_json::from_str(&state).map_err(|e| AuthError::Internal(format!("stored passkey state: {e}")))?;
        let reg: RegisterPublicKeyCredential =
            serde_json::from_value(credential.clone()).map_err(|_| AuthError::InvalidPasskey)?;
        let key = rp.finish_passkey_registration(&reg, &state).map_err(|e| {
            tracing::info!(error = %e, "passkey registration refused");
            AuthError::InvalidPasskey
        })?;
        let json = serde_json::to_string(&key).map_err(|e| AuthError::Internal(e.to_string()))?;
        let at = self.now();
        let txn = self.db.begin().await?;
        let model = passkey::ActiveModel {
            id: Set(Uuid::new_v4()),
            user_id: Set(caller.id),
            credential_id: Set(cred_id_text(key.cred_id())),
            name: Set(name),
            credential: Set(json),
            created_at: Set(at),
            last_used_at: Set(None),
        };
        let stored = match model.insert(&txn).await {
            Ok(m) => m,
            // The same credential registered before (to this or another account).
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                return Err(AuthError::InvalidPasskey);
            }
            Err(e) => return Err(e.into()),
        };
        self.audit_in(&txn, vec![NewEvent::new(EventKind::PasskeyAdded, Some(caller.id), &caller.email)]).await?;
        txn.commit().await?;
        Ok(stored.into())
    }
}
