//! The physical limit of password login: Argon2id hashes per second with the
//! server's parameters, on as many threads as the server hashes with, each
//! reusing its memory as the server's pool does.
use argon2::{Algorithm, Argon2, Block, Params, Version};
use identsphere_core::password::HashParams;
use std::time::{Duration, Instant};

/// Hashes per second over `threads` threads for `duration`.
pub fn hashes_per_sec(threads: usize, duration: Duration) -> anyhow::Result<f64> {
    let p = HashParams::default();
    let params =
        Params::new(p.m_cost, p.t_cost, p.p_cost, Some(32)).map_err(|e| anyhow::anyhow!("{e}"))?;
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let params = params.clone();
            std::thread::spawn(move || {
                let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
                let mut memory = vec![Block::default(); params.block_count()];
                let mut out = [0u8; 32];
                let salt = [t as u8; 16];
                let mut n = 0u64;
                while start.elapsed() < duration {
                    let _ = argon.hash_password_into_with_memory(
                        b"correct horse battery staple",
                        &salt,
                        &mut out,
                        &mut memory,
                    );
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    Ok(total as f64 / start.elapsed().as_secs_f64())
}
