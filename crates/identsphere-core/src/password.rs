//! Password hashing (Argon2id, off the async runtime in a bounded pool) and policy.
use crate::error::{CoreError, FieldError, Result};
use argon2::{
    password_hash::{
        rand_core::OsRng, PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString,
    },
    Algorithm, Argon2, Params, Version,
};
use secrecy::{ExposeSecret, SecretString};
use std::sync::{Arc, OnceLock};
use tokio::sync::Semaphore;

/// Nothing longer is ever hashed: a long password costs the hasher, not the attacker.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Argon2id parameters: OWASP's first recommended setting (19 MiB, 2 passes, 1 lane).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    /// Memory in KiB.
    pub m_cost: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for HashParams {
    fn default() -> Self {
        Self {
            m_cost: 19_456,
            t_cost: 2,
            p_cost: 1,
        }
    }
}

/// Hashes and verifies passwords on blocking threads, at most `concurrency` at once,
/// so a burst of logins queues instead of starving the async runtime or the memory.
#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    permits: Arc<Semaphore>,
    dummy: Arc<OnceLock<String>>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher").finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// A hasher with `params`, running at most `concurrency` hashes at once.
    ///
    /// # Errors
    /// When the parameters are outside Argon2's ranges.
    pub fn new(params: HashParams, concurrency: usize) -> Result<Self> {
        let params = Params::new(params.m_cost, params.t_cost, params.p_cost, None)
            .map_err(|e| CoreError::Internal(format!("argon2 parameters: {e}")))?;
        Ok(Self {
            argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy: Arc::new(OnceLock::new()),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Argon2<'static>) -> T + Send + 'static,
    ) -> Result<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| CoreError::Internal("password hashing pool closed".into()))?;
        let argon2 = self.argon2.clone();
        tokio::task::spawn_blocking(move || job(&argon2))
            .await
            .map_err(|e| CoreError::Internal(format!("password hashing task: {e}")))
    }

    /// Hashes a password into a PHC string.
    ///
    /// # Errors
    /// Only when the hashing pool is gone.
    pub async fn hash(&self, password: &SecretString) -> Result<String> {
        let password = password.clone();
        self.run(move |argon2| {
            let salt = SaltString::generate(&mut OsRng);
            argon2
                .hash_password(password.expose_secret().as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| CoreError::Internal(format!("argon2: {e}")))
        })
        .await?
    }

    /// Verifies `password` against `stored`. With no stored hash, it verifies
    /// against a dummy hash anyway, so that unknown accounts take as long to
    /// refuse as wrong passwords do.
    ///
    /// # Errors
    /// Only when the hashing pool is gone.
    pub async fn verify(&self, password: &SecretString, stored: Option<&str>) -> Result<bool> {
        let known = stored.is_some();
        let stored = match stored {
            Some(s) => s.to_owned(),
            None => self.dummy_hash().await?,
        };
        let password = password.clone();
        let ok = self
            .run(move |argon2| {
                PasswordHash::new(&stored)
                    .map(|parsed| {
                        argon2
                            .verify_password(password.expose_secret().as_bytes(), &parsed)
                            .is_ok()
                    })
                    .unwrap_or(false)
            })
            .await?;
        Ok(ok && known)
    }

    async fn dummy_hash(&self) -> Result<String> {
        if let Some(h) = self.dummy.get() {
            return Ok(h.clone());
        }
        let h = self
            .hash(&SecretString::from(crate::secret::random_token("")))
            .await?;
        Ok(self.dummy.get_or_init(|| h).clone())
    }
}

/// Rules a new password must meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Fewest characters (Unicode scalar values).
    pub min_chars: usize,
    /// Most characters.
    pub max_chars: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_chars: 10,
            max_chars: 128,
        }
    }
}

impl PasswordPolicy {
    /// Checks a new password; `field` names it in the error.
    ///
    /// # Errors
    /// `Validation` naming the rule that failed.
    pub fn check(&self, field: &str, password: &SecretString) -> Result<()> {
        check_size(field, password)?;
        let chars = password.expose_secret().chars().count();
        if chars < self.min_chars {
            return Err(CoreError::field(
                field,
                format!("must be at least {} characters", self.min_chars),
            ));
        }
        if chars > self.max_chars {
            return Err(CoreError::field(
                field,
                format!("must be at most {} characters", self.max_chars),
            ));
        }
        Ok(())
    }
}

/// Refuses a password too large to be worth hashing (any password, new or presented).
///
/// # Errors
/// `Validation` on `field`.
pub fn check_size(field: &str, password: &SecretString) -> Result<()> {
    let p = password.expose_secret();
    if p.len() > MAX_PASSWORD_BYTES {
        return Err(CoreError::Validation(vec![FieldError::new(
            field,
            format!("must be at most {MAX_PASSWORD_BYTES} bytes"),
        )]));
    }
    if p.is_empty() {
        return Err(CoreError::field(field, "must not be empty"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> PasswordHasher {
        PasswordHasher::new(
            HashParams {
                m_cost: 64,
                t_cost: 1,
                p_cost: 1,
            },
            2,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let h = fast();
        let pw = SecretString::from("correct horse battery");
        let phc = h.hash(&pw).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(h.verify(&pw, Some(&phc)).await.unwrap());
        assert!(!h
            .verify(&SecretString::from("wrong"), Some(&phc))
            .await
            .unwrap());
        assert!(!h.verify(&pw, None).await.unwrap());
        assert!(!h.verify(&pw, Some("garbage")).await.unwrap());
    }

    #[test]
    fn default_params_are_owasp() {
        assert_eq!(
            HashParams::default(),
            HashParams {
                m_cost: 19_456,
                t_cost: 2,
                p_cost: 1
            }
        );
    }

    #[test]
    fn policy() {
        let p = PasswordPolicy::default();
        assert!(p.check("password", &SecretString::from("short")).is_err());
        assert!(p
            .check("password", &SecretString::from("long enough pw"))
            .is_ok());
        assert!(p
            .check("password", &SecretString::from("x".repeat(129)))
            .is_err());
        assert!(check_size("password", &SecretString::from("é".repeat(600))).is_err());
    }
}
