//! Recovery codes: ten single-use codes per set, stored as keyed digests under the server key.
//! A code works once: one `DELETE … WHERE user_id AND digest` decides (one row or none).

use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TransactionTrait};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::entity::recovery_code;
use crate::service::audit::{EventKind, NewEvent};
use crate::service::{AuthError, AuthService};

/// Recovery codes per set.
pub const RECOVERY_CODES: usize = 10;
/// Below this many unused recovery codes the account page warns.
pub const RECOVERY_CODES_LOW: u64 = 3;
/// The purpose of recovery-code digests under the server key (api.md §14).
const RECOVERY_PURPOSE: &str = "recovery";
/// Lowercase RFC 4648 base32: no 0/1/8/9 to confuse with letters.
const CODE_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// One recovery code: 50 random bits as ten lowercase base32 characters, `xxxxx-xxxxx`.
fn new_recovery_code() -> Result<Zeroizing<String>, AuthError> {
    let mut bytes = Zeroizing::new([0u8; 8]);
    getrandom::fill(&mut bytes[..7]).map_err(|e| AuthError::Internal(e.to_string()))?;
    let bits = u64::from_le_bytes(*bytes);
    let mut code = Zeroizing::new(String::with_capacity(11));
    for i in 0..10 {
        if i == 5 {
            code.push('-');
        }
        code.push(char::from(CODE_ALPHABET[((bits >> (5 * i)) & 31) as usize]));
    }
    Ok(code)
}

/// The form a recovery code is compared in: lowercase, without separators or spaces.
fn normalise_recovery_code(code: &str) -> Option<Zeroizing<String>> {
    let code: String = code.chars().filter(|c| !c.is_whitespace() && *c != '-').flat_map(char::to_lowercase).collect();
    let code = Zeroizing::new(code);
    (code.len() == 10 && code.bytes().all(|b| CODE_ALPHABET.contains(&b))).then_some(code)
}

impl AuthService {
    fn recovery_digest(&self, normalised: &str) -> String {
        hex::encode(self.key().mac(RECOVERY_PURPOSE, normalised.as_bytes()))
    }

    /// A fresh set of recovery codes for `user_id`, stored as keyed digests in place of the old set.
    pub(super) async fn replace_recovery_codes<C: ConnectionTrait>(
        &self,
        db: &C,
        user_id: Uuid,
    ) -> Result<Vec<Zeroizing<String>>, AuthError> {
        recovery_code::Entity::delete_many().filter(recovery_code::Column::UserId.eq(user_id)).exec(db).await?;
        let at = self.now();
        let mut codes = Vec::with_capacity(RECOVERY_CODES);
        let mut rows = Vec::with_capacity(RECOVERY_CODES);
        while codes.len() < RECOVERY_CODES {
            let code = new_recovery_code()?;
            let Some(normalised) = normalise_recovery_code(&code) else { continue };
            let digest = self.recovery_digest(&normalised);
            // 2^-50 odds of a repeat; skip it rather than fail the insert.
            if rows.iter().any(|r: &recovery_code::ActiveModel| r.digest.as_ref() == &digest) {
                continue;
            }
            rows.push(recovery_code::ActiveModel { user_id: Set(user_id), digest: Set(digest), created_at: Set(at) });
            codes.push(code);
        }
        recovery_code::Entity::insert_many(rows).exec(db).await?;
        Ok(codes)
    }

    /// A new set of recovery codes after the password; the old ones stop working.
    pub async fn regenerate_recovery_codes(
        &self,
        presented: &str,
        current_password: &str,
    ) -> Result<Vec<Zeroizing<String>>, AuthError> {
        let user = self.check_current_password(presented, current_password).await?;
        let txn = self.db.begin().await?;
        if !self.totp_enabled(&txn, user.id).await? {
            return Err(AuthError::NotEnabled);
        }
        let codes = self.replace_recovery_codes(&txn, user.id).await?;
        self.audit_in(&txn, vec![NewEvent::new(EventKind::RecoveryCodesRegenerated, Some(user.id), &user.email)])
            .await?;
        txn.commit().await?;
        Ok(codes)
    }

    /// Uses up a recovery code: one DELETE of its digest decides.
    pub(super) async fn use_recovery_code(&self, user_id: Uuid, code: &str) -> Result<bool, AuthError> {
        let Some(normalised) = normalise_recovery_code(code) else { return Ok(false) };
        let used = recovery_code::Entity::delete_many()
            .filter(recovery_code::Column::UserId.eq(user_id))
            .filter(recovery_code::Column::Digest.eq(self.recovery_digest(&normalised)))
            .exec(&self.db)
            .await?;
        Ok(used.rows_affected == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_have_fifty_bits_in_the_documented_form() {
        let code = new_recovery_code().unwrap();
        assert_eq!(code.len(), 11);
        assert_eq!(&code[5..6], "-");
        assert!(normalise_recovery_code(&code).is_some());
        assert_eq!(normalise_recovery_code(&code.to_uppercase()).unwrap().as_str(), code.replace('-', ""));
        assert!(normalise_recovery_code("abcde-fghi1").is_none());
        assert!(normalise_recovery_code("").is_none());
        // Ten characters of 5 bits each.
        assert_eq!(CODE_ALPHABET.len(), 32);
    }
}
