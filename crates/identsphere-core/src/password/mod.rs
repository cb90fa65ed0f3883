//! Password hashing (Argon2id, off the async runtime in a bounded pool), the
//! verification of imported legacy hashes, and the policy for new passwords.
mod legacy;
mod policy;

pub use legacy::{identify, HashScheme};
pub use policy::{
    common_list_len, is_common, CharClass, PasswordPolicy, PolicyError, MIN_ALLOWED_CHARS,
};

use crate::error::{CoreError, FieldError, Result};
use argon2::{
    password_hash::{rand_core::OsRng, Output, ParamsString, PasswordHash, SaltString},
    Algorithm, Argon2, Block, Params, Version,
};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::{mpsc, oneshot};

/// Nothing longer is ever hashed: a long password costs the hasher, not the attacker.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Stored hashes asking for more memory than this (an imported hash, say) are
/// refused rather than allowed to balloon a worker.
pub(crate) const MAX_VERIFY_KIB: u32 = 256 * 1024;

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

type Job = Box<dyn FnOnce(&mut Worker) + Send>;

/// One hashing thread's state: its Argon2 memory, allocated once and reused.
///
/// Allocating and freeing 19 MiB per hash fragments glibc's heap badly
/// (hundreds of MiB resident after a few hundred logins); reusing one buffer
/// per thread keeps the server's memory flat under any login load.
struct Worker {
    argon2: Argon2<'static>,
    memory: Vec<Block>,
}

impl Worker {
    fn blocks(&mut self, count: usize) -> &mut [Block] {
        if self.memory.len() < count {
            self.memory.resize(count, Block::default());
        }
        &mut self.memory[..count]
    }

    fn hash(&mut self, password: &[u8]) -> Result<String> {
        let err = |e: argon2::Error| CoreError::Internal(format!("argon2: {e}"));
        let mut salt = [0u8; 16];
        OsRng.fill_bytes(&mut salt);
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        let argon2 = self.argon2.clone();
        let count = argon2.params().block_count();
        argon2
            .hash_password_into_with_memory(password, &salt, &mut out, self.blocks(count))
            .map_err(err)?;
        let phc_err = |e: argon2::password_hash::Error| CoreError::Internal(format!("argon2: {e}"));
        let salt = SaltString::encode_b64(&salt).map_err(phc_err)?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(argon2.params()).map_err(phc_err)?,
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&out).map_err(phc_err)?),
        };
        Ok(phc.to_string())
    }

    /// Verifies against a stored hash of any supported scheme, and says whether
    /// it should be replaced by a hash with the current parameters.
    fn verify(&mut self, password: &[u8], stored: &str) -> Verification {
        let refused = Verification {
            matches: false,
            needs_rehash: false,
        };
        let parsed = match legacy::parse(stored) {
            Ok(parsed) => parsed,
            Err(reason) => {
                // The reason names the scheme and its parameters, never the hash.
                tracing::warn!(reason, "stored password hash cannot be verified");
                return refused;
            }
        };
        let legacy::Stored::Argon2(phc) = parsed else {
            return Verification {
                matches: parsed.verify_legacy(password),
                needs_rehash: true,
            };
        };
        let (Ok(algorithm), Ok(params)) =
            (Algorithm::try_from(phc.algorithm), Params::try_from(&phc))
        else {
            return refused;
        };
        let version = phc.version.map_or(Ok(Version::V0x13), Version::try_from);
        let (Ok(version), Some(expected), Some(salt)) = (version, phc.hash, phc.salt) else {
            return refused;
        };
        let mut salt_buf = [0u8; 64];
        let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
            return refused;
        };
        let current = self.argon2.params();
        // Weaker: another variant or version, or less memory or fewer passes.
        let needs_rehash = algorithm != Algorithm::Argon2id
            || version != Version::V0x13
            || params.m_cost() < current.m_cost()
            || params.t_cost() < current.t_cost();
        let count = params.block_count();
        let argon2 = Argon2::new(algorithm, version, params);
        let mut out = vec![0u8; expected.len()];
        if argon2
            .hash_password_into_with_memory(password, salt, &mut out, self.blocks(count))
            .is_err()
        {
            return refused;
        }
        Verification {
            // Output's equality is constant-time.
            matches: Output::new(&out).is_ok_and(|o| o == expected),
            needs_rehash,
        }
    }
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    /// The password is the account's.
    pub matches: bool,
    /// The stored hash is a legacy scheme or weaker Argon2 than the current
    /// parameters: once the password matched, store a fresh hash.
    pub needs_rehash: bool,
}

/// Hashes and verifies passwords on a fixed pool of dedicated threads, so a
/// burst of logins queues instead of starving the async runtime or the memory.
#[derive(Clone)]
pub struct PasswordHasher {
    jobs: mpsc::Sender<Job>,
    dummy: Arc<OnceLock<String>>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher").finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// A hasher with `params` on `threads` dedicated threads. The threads end
    /// when the last clone of the hasher is dropped.
    ///
    /// # Errors
    /// When the parameters are outside Argon2's ranges or a thread cannot start.
    pub fn new(params: HashParams, threads: usize) -> Result<Self> {
        let params = Params::new(params.m_cost, params.t_cost, params.p_cost, None)
            .map_err(|e| CoreError::Internal(format!("argon2 parameters: {e}")))?;
        let (jobs, queue) = mpsc::channel::<Job>(4096);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            let mut worker = Worker {
                argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone()),
                memory: Vec::new(),
            };
            std::thread::Builder::new()
                .name(format!("identsphere-hash-{i}"))
                .spawn(move || loop {
                    // Only the waiting thread holds the lock; it is released before the job runs.
                    let job = queue
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .blocking_recv();
                    match job {
                        Some(job) => job(&mut worker),
                        None => return,
                    }
                })
                .map_err(|e| CoreError::Internal(format!("starting hashing thread: {e}")))?;
        }
        Ok(Self {
            jobs,
            dummy: Arc::new(OnceLock::new()),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Worker) -> T + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |worker| {
            let _ = tx.send(job(worker));
        });
        let gone = || CoreError::Internal("password hashing pool stopped".into());
        self.jobs.send(job).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }

    /// Hashes a password into an Argon2id PHC string.
    ///
    /// # Errors
    /// Only when the hashing pool is gone.
    pub async fn hash(&self, password: &SecretString) -> Result<String> {
        let password = password.clone();
        self.run(move |w| w.hash(password.expose_secret().as_bytes()))
            .await?
    }

    /// Verifies `password` against `stored`. With no stored hash, it verifies
    /// against a dummy hash anyway, so that unknown accounts take as long to
    /// refuse as wrong passwords do.
    ///
    /// # Errors
    /// Only when the hashing pool is gone.
    pub async fn verify(&self, password: &SecretString, stored: Option<&str>) -> Result<bool> {
        Ok(self.verify_detailed(password, stored).await?.matches)
    }

    /// [`Self::verify`], also telling whether a matching hash should be
    /// replaced (legacy schemes such as bcrypt, or weaker Argon2 parameters).
    /// Legacy schemes are verified on the pool's threads too.
    ///
    /// # Errors
    /// Only when the hashing pool is gone.
    pub async fn verify_detailed(
        &self,
        password: &SecretString,
        stored: Option<&str>,
    ) -> Result<Verification> {
        let known = stored.is_some();
        let stored = match stored {
            Some(s) => s.to_owned(),
            None => self.dummy_hash().await?,
        };
        let password = password.clone();
        let v = self
            .run(move |w| w.verify(password.expose_secret().as_bytes(), &stored))
            .await?;
        Ok(Verification {
            matches: v.matches && known,
            needs_rehash: v.needs_rehash && known,
        })
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

    #[tokio::test]
    async fn interoperates_with_the_argon2_crate() {
        use argon2::{PasswordHasher as _, PasswordVerifier};
        let h = fast();
        let pw = SecretString::from("interop password");
        let ours = h.hash(&pw).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"interop password", &parsed)
            .is_ok());
        // A hash made by the crate's own API, with other parameters and variant, verifies here.
        let params = Params::new(32, 3, 2, None).unwrap();
        let theirs = Argon2::new(Algorithm::Argon2i, Version::V0x13, params)
            .hash_password(b"interop password", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert!(h.verify(&pw, Some(&theirs)).await.unwrap());
        assert!(!h
            .verify(&SecretString::from("other"), Some(&theirs))
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn concurrent_use_of_the_pool() {
        let h = fast();
        let pw = SecretString::from("pool password");
        let phc = h.hash(&pw).await.unwrap();
        let results = futures::future::join_all((0..20).map(|_| h.verify(&pw, Some(&phc)))).await;
        assert!(results.into_iter().all(|r| r.unwrap()));
    }

    #[tokio::test]
    async fn legacy_hashes_verify_on_the_pool_and_ask_for_a_rehash() {
        let h = fast();
        let pw = SecretString::from("Tr0ub4dor&3 legacy");
        let wrong = SecretString::from("Tr0ub4dor&3 legac");
        for (_, hash) in legacy::tests::VECTORS {
            let v = h.verify_detailed(&pw, Some(hash)).await.unwrap();
            assert_eq!(
                v,
                Verification {
                    matches: true,
                    needs_rehash: true
                },
                "{hash}"
            );
            assert!(!h.verify(&wrong, Some(hash)).await.unwrap(), "{hash}");
        }
    }

    #[tokio::test]
    async fn weaker_argon2_asks_for_a_rehash_and_current_does_not() {
        use argon2::PasswordHasher as _;
        let h = PasswordHasher::new(
            HashParams {
                m_cost: 256,
                t_cost: 2,
                p_cost: 1,
            },
            1,
        )
        .unwrap();
        let pw = SecretString::from("argon2 upgrade pw");
        let current = h.hash(&pw).await.unwrap();
        let v = h.verify_detailed(&pw, Some(&current)).await.unwrap();
        assert!(v.matches && !v.needs_rehash);
        let make = |alg, m, t| {
            Argon2::new(alg, Version::V0x13, Params::new(m, t, 1, None).unwrap())
                .hash_password(b"argon2 upgrade pw", &SaltString::generate(&mut OsRng))
                .unwrap()
                .to_string()
        };
        for weaker in [
            make(Algorithm::Argon2id, 64, 2),
            make(Algorithm::Argon2id, 256, 1),
            make(Algorithm::Argon2i, 256, 2),
        ] {
            let v = h.verify_detailed(&pw, Some(&weaker)).await.unwrap();
            assert!(v.matches && v.needs_rehash, "{weaker}");
        }
        let stronger = make(Algorithm::Argon2id, 512, 3);
        let v = h.verify_detailed(&pw, Some(&stronger)).await.unwrap();
        assert!(v.matches && !v.needs_rehash);
        // A wrong password is never worth a rehash, nor an unknown account.
        let v = h
            .verify_detailed(&SecretString::from("nope"), Some(&current))
            .await
            .unwrap();
        assert!(!v.matches);
        let v = h.verify_detailed(&pw, None).await.unwrap();
        assert_eq!(
            v,
            Verification {
                matches: false,
                needs_rehash: false
            }
        );
    }

    #[tokio::test]
    async fn hashes_asking_for_too_much_memory_are_refused() {
        let h = fast();
        let pw = SecretString::from("x");
        let greedy = "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA";
        assert!(!h.verify(&pw, Some(greedy)).await.unwrap());
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
}
