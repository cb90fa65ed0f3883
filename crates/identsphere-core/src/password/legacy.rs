//! Reading stored password hashes: our Argon2 PHC strings, and the bcrypt,
//! scrypt and PBKDF2-SHA256 hashes of imported accounts, which are verified
//! once and then replaced with Argon2id.
//!
//! Every format is parsed and bounded before any work is done: a hash that
//! asks for more memory or time than [`MAX_VERIFY_KIB`] and the constants here
//! is refused, so an import file cannot turn a login into a denial of service.
use super::MAX_VERIFY_KIB;
use argon2::password_hash::PasswordHash;
use base64::{
    engine::general_purpose::{STANDARD, STANDARD_NO_PAD},
    Engine,
};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// bcrypt costs above this (2^16 rounds, seconds per login) are refused.
const MAX_BCRYPT_COST: u32 = 16;
/// PBKDF2 iteration counts above this are refused (Django's 2024 default is 870,000).
const MAX_PBKDF2_ROUNDS: u32 = 10_000_000;
/// scrypt parallelism above this is refused.
const MAX_SCRYPT_P: u32 = 16;
/// Derived-key lengths outside this range are not real password hashes.
const OUTPUT_LEN: std::ops::RangeInclusive<usize> = 16..=64;

/// The crypt(3) alphabet of scrypt's modular format (`$7$`).
const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The hash family of a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashScheme {
    /// Argon2 (`$argon2id$`, `$argon2i$`, `$argon2d$` PHC strings).
    Argon2,
    /// bcrypt (`$2a$`, `$2b$`, `$2y$`).
    Bcrypt,
    /// scrypt (PHC `$scrypt$` or the modular `$7$`).
    Scrypt,
    /// PBKDF2-HMAC-SHA256 (PHC, passlib or Django form).
    Pbkdf2Sha256,
}

impl HashScheme {
    /// A short name, for summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Argon2 => "argon2",
            Self::Bcrypt => "bcrypt",
            Self::Scrypt => "scrypt",
            Self::Pbkdf2Sha256 => "pbkdf2-sha256",
        }
    }
}

/// A stored hash, parsed and within bounds.
pub(super) enum Stored<'a> {
    Argon2(PasswordHash<'a>),
    Bcrypt(&'a str),
    Scrypt {
        params: scrypt::Params,
        salt: Vec<u8>,
        expected: Vec<u8>,
    },
    Pbkdf2 {
        rounds: u32,
        salt: Vec<u8>,
        expected: Vec<u8>,
    },
}

/// Checks that `stored` is a hash this server can verify, without verifying
/// anything; the error says why not and never contains the hash.
///
/// # Errors
/// A reason, e.g. `"unrecognised hash format"` or `"bcrypt cost 20 is above 16"`.
pub fn identify(stored: &str) -> Result<HashScheme, String> {
    Ok(match parse(stored)? {
        Stored::Argon2(_) => HashScheme::Argon2,
        Stored::Bcrypt(_) => HashScheme::Bcrypt,
        Stored::Scrypt { .. } => HashScheme::Scrypt,
        Stored::Pbkdf2 { .. } => HashScheme::Pbkdf2Sha256,
    })
}

pub(super) fn parse(stored: &str) -> Result<Stored<'_>, String> {
    if stored.starts_with("$argon2") {
        return parse_argon2(stored);
    }
    if ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|p| stored.starts_with(p))
    {
        return parse_bcrypt(stored);
    }
    if stored.starts_with("$scrypt$") {
        return parse_scrypt_phc(stored);
    }
    if let Some(rest) = stored.strip_prefix("$7$") {
        return parse_scrypt_mcf(rest);
    }
    if stored.starts_with("$pbkdf2-sha256$") {
        return parse_pbkdf2_dollar(stored);
    }
    if let Some(rest) = stored.strip_prefix("pbkdf2_sha256$") {
        return parse_pbkdf2_django(rest);
    }
    Err(
        "unrecognised hash format (expected argon2, bcrypt $2a$/$2b$/$2y$, scrypt, \
         pbkdf2-sha256 or Django pbkdf2_sha256)"
            .into(),
    )
}

fn parse_argon2(stored: &str) -> Result<Stored<'_>, String> {
    let phc = PasswordHash::new(stored).map_err(|e| format!("malformed argon2 hash: {e}"))?;
    let params = argon2::Params::try_from(&phc).map_err(|e| format!("argon2 parameters: {e}"))?;
    argon2::Algorithm::try_from(phc.algorithm).map_err(|e| format!("argon2: {e}"))?;
    if phc.salt.is_none() || phc.hash.is_none() {
        return Err("argon2 hash without salt or output".into());
    }
    if params.m_cost() > MAX_VERIFY_KIB {
        return Err(format!(
            "argon2 memory {} KiB is above {MAX_VERIFY_KIB} KiB",
            params.m_cost()
        ));
    }
    Ok(Stored::Argon2(phc))
}

fn parse_bcrypt(stored: &str) -> Result<Stored<'_>, String> {
    let parts: bcrypt::HashParts = stored
        .parse()
        .map_err(|_| "malformed bcrypt hash".to_owned())?;
    let cost = parts.get_cost();
    if !(4..=MAX_BCRYPT_COST).contains(&cost) {
        return Err(format!(
            "bcrypt cost {cost} is outside 4..={MAX_BCRYPT_COST}"
        ));
    }
    Ok(Stored::Bcrypt(stored))
}

fn scrypt_bounds(log_n: u8, r: u32, p: u32) -> Result<(), String> {
    // scrypt's memory is 128 · r · N bytes (checked before shifting by ln).
    let too_much =
        log_n >= 64 || (128u128 * u128::from(r)) << log_n > u128::from(MAX_VERIFY_KIB) * 1024;
    if too_much {
        return Err(format!(
            "scrypt memory (ln={log_n}, r={r}) is above {MAX_VERIFY_KIB} KiB"
        ));
    }
    if p == 0 || p > MAX_SCRYPT_P {
        return Err(format!(
            "scrypt parallelism {p} is outside 1..={MAX_SCRYPT_P}"
        ));
    }
    Ok(())
}

fn output_len(len: usize) -> Result<(), String> {
    if OUTPUT_LEN.contains(&len) {
        Ok(())
    } else {
        Err(format!("hash output of {len} bytes is not a password hash"))
    }
}

fn parse_scrypt_phc(stored: &str) -> Result<Stored<'_>, String> {
    let phc = PasswordHash::new(stored).map_err(|e| format!("malformed scrypt hash: {e}"))?;
    let params = scrypt::Params::try_from(&phc).map_err(|e| format!("scrypt parameters: {e}"))?;
    scrypt_bounds(params.log_n(), params.r(), params.p())?;
    let (Some(salt), Some(expected)) = (phc.salt, phc.hash) else {
        return Err("scrypt hash without salt or output".into());
    };
    let mut buf = [0u8; 64];
    let salt = salt
        .decode_b64(&mut buf)
        .map_err(|_| "scrypt salt is not base64".to_owned())?
        .to_vec();
    output_len(expected.len())?;
    Ok(Stored::Scrypt {
        params,
        salt,
        expected: expected.as_bytes().to_vec(),
    })
}

fn itoa64(c: u8) -> Option<u32> {
    ITOA64.iter().position(|&a| a == c).map(|i| i as u32)
}

/// `$7$` + N (1 char, log2) + r (5 chars) + p (5 chars) + salt + `$` + 43-char
/// output, as libsodium's `crypto_pwhash_scryptsalsa208sha256_str` and
/// Colin Percival's reference write it. The salt is used as the text it is.
fn parse_scrypt_mcf(rest: &str) -> Result<Stored<'_>, String> {
    let malformed = || "malformed $7$ scrypt hash".to_owned();
    let bytes = rest.as_bytes();
    if bytes.len() < 11 {
        return Err(malformed());
    }
    let log_n = itoa64(bytes[0]).ok_or_else(malformed)?;
    let uint30 = |chunk: &[u8]| -> Option<u32> {
        chunk
            .iter()
            .enumerate()
            .try_fold(0u32, |acc, (i, &c)| Some(acc | itoa64(c)? << (6 * i)))
    };
    let r = uint30(&bytes[1..6]).ok_or_else(malformed)?;
    let p = uint30(&bytes[6..11]).ok_or_else(malformed)?;
    let (salt, encoded) = rest[11..].rsplit_once('$').ok_or_else(malformed)?;
    let log_n = u8::try_from(log_n).map_err(|_| malformed())?;
    scrypt_bounds(log_n, r, p)?;
    let expected = decode_itoa64(encoded.as_bytes()).ok_or_else(malformed)?;
    if salt.is_empty() || expected.len() != 32 {
        return Err(malformed());
    }
    let params = scrypt::Params::new(log_n, r, p, expected.len())
        .map_err(|_| "scrypt parameters out of range".to_owned())?;
    Ok(Stored::Scrypt {
        params,
        salt: salt.as_bytes().to_vec(),
        expected,
    })
}

/// libsodium's `encode64` in reverse: each group of up to 4 characters holds
/// up to 3 bytes, least significant 6 bits first.
fn decode_itoa64(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.chunks(4) {
        let value = chunk
            .iter()
            .enumerate()
            .try_fold(0u32, |acc, (i, &c)| Some(acc | itoa64(c)? << (6 * i)))?;
        let n = chunk.len() * 6 / 8;
        if n == 0 {
            return None;
        }
        out.extend_from_slice(&value.to_le_bytes()[..n]);
    }
    Some(out)
}

/// `$pbkdf2-sha256$i=…,l=…$salt$hash` (PHC, RustCrypto) or passlib's
/// `$pbkdf2-sha256$rounds$salt$hash` (base64 with `.` for `+`).
fn parse_pbkdf2_dollar(stored: &str) -> Result<Stored<'_>, String> {
    let fields: Vec<&str> = stored.split('$').collect();
    if let [_, _, rounds, salt, hash] = fields[..] {
        if let Ok(rounds) = rounds.parse::<u32>() {
            let ab64 = |s: &str| STANDARD_NO_PAD.decode(s.replace('.', "+"));
            let salt = ab64(salt).map_err(|_| "pbkdf2 salt is not base64".to_owned())?;
            let expected = ab64(hash).map_err(|_| "pbkdf2 hash is not base64".to_owned())?;
            return pbkdf2_checked(rounds, salt, expected);
        }
    }
    let phc = PasswordHash::new(stored).map_err(|e| format!("malformed pbkdf2 hash: {e}"))?;
    let params = pbkdf2::Params::try_from(&phc).map_err(|e| format!("pbkdf2 parameters: {e}"))?;
    let (Some(salt), Some(expected)) = (phc.salt, phc.hash) else {
        return Err("pbkdf2 hash without salt or output".into());
    };
    let mut buf = [0u8; 64];
    let salt = salt
        .decode_b64(&mut buf)
        .map_err(|_| "pbkdf2 salt is not base64".to_owned())?
        .to_vec();
    pbkdf2_checked(params.rounds, salt, expected.as_bytes().to_vec())
}

/// Django's `pbkdf2_sha256$iterations$salt$base64(hash)`; the salt is used as text.
fn parse_pbkdf2_django(rest: &str) -> Result<Stored<'_>, String> {
    let malformed = || "malformed Django pbkdf2_sha256 hash".to_owned();
    let mut fields = rest.splitn(3, '$');
    let (Some(rounds), Some(salt), Some(hash)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(malformed());
    };
    let rounds = rounds.parse::<u32>().map_err(|_| malformed())?;
    let expected = STANDARD.decode(hash).map_err(|_| malformed())?;
    pbkdf2_checked(rounds, salt.as_bytes().to_vec(), expected)
}

fn pbkdf2_checked(
    rounds: u32,
    salt: Vec<u8>,
    expected: Vec<u8>,
) -> Result<Stored<'static>, String> {
    if rounds == 0 || rounds > MAX_PBKDF2_ROUNDS {
        return Err(format!(
            "pbkdf2 iteration count {rounds} is outside 1..={MAX_PBKDF2_ROUNDS}"
        ));
    }
    if salt.is_empty() {
        return Err("pbkdf2 hash with an empty salt".into());
    }
    output_len(expected.len())?;
    Ok(Stored::Pbkdf2 {
        rounds,
        salt,
        expected,
    })
}

impl Stored<'_> {
    /// Verifies a non-Argon2 hash (Argon2 runs on the worker's reused memory).
    pub(super) fn verify_legacy(&self, password: &[u8]) -> bool {
        match self {
            Self::Argon2(_) => false,
            // bcrypt reads at most 72 bytes, as the system that made the hash did.
            Self::Bcrypt(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            Self::Scrypt {
                params,
                salt,
                expected,
            } => {
                let mut out = vec![0u8; expected.len()];
                scrypt::scrypt(password, salt, params, &mut out).is_ok()
                    && bool::from(out.ct_eq(expected))
            }
            Self::Pbkdf2 {
                rounds,
                salt,
                expected,
            } => {
                let mut out = vec![0u8; expected.len()];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, *rounds, &mut out);
                bool::from(out.ct_eq(expected))
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    //! Vectors made by independent implementations, all for the password
    //! `Tr0ub4dor&3 legacy`, generated once with:
    //! python 3.11 + bcrypt 5.0.0 (`bcrypt.hashpw`), passlib 1.7.4 (`pbkdf2_sha256`,
    //! `django_pbkdf2_sha256`, `scrypt`, and its pure-Python bcrypt backend for `$2y$`),
    //! `hashlib.pbkdf2_hmac`/`hashlib.scrypt` formatted as PHC by hand, and
    //! PyNaCl 1.6.2 (libsodium) `nacl.pwhash.scrypt.str` for `$7$`.
    use super::*;

    const PASSWORD: &[u8] = b"Tr0ub4dor&3 legacy";

    pub(crate) const VECTORS: &[(HashScheme, &str)] = &[
        // python bcrypt 5.0.0
        (
            HashScheme::Bcrypt,
            "$2b$04$ayYakpr31rlJxT7O3OkvsOLnfVyKP/gNd8xEeqLRCAwD38NPIULvK",
        ),
        (
            HashScheme::Bcrypt,
            "$2a$05$VmIotaKje0BLIG03IAAxyes1ET0z1ZKEhAn6FPGPX1cpihRgS3HEC",
        ),
        // passlib 1.7.4, builtin bcrypt backend
        (
            HashScheme::Bcrypt,
            "$2y$04$WYWY998K9WGOf3UyBpdEROetx4hbq3kMOYwQM78poAXsIBpMLuU/i",
        ),
        // passlib pbkdf2_sha256
        (
            HashScheme::Pbkdf2Sha256,
            "$pbkdf2-sha256$1000$G6MUojTGOOdcyznn3HvvXQ$SN/R1LnJexmh/Z3wcK7o0.2RoqS4hidcpgXzyGfgBE8",
        ),
        // passlib django_pbkdf2_sha256
        (
            HashScheme::Pbkdf2Sha256,
            "pbkdf2_sha256$1000$q7QmVOm3C7lH$IiVN/qy6mFVRlwKlKObaBwz7c3aM5ENXA6r6+g30WPI=",
        ),
        // hashlib.pbkdf2_hmac, PHC by hand
        (
            HashScheme::Pbkdf2Sha256,
            "$pbkdf2-sha256$i=1200,l=32$77qqO9dkIuvAUs6jNKLt7g$52yYqSmz5MaWeZ1gxq3qVe7MK3hWjh2pbgg59dbrZNQ",
        ),
        // passlib scrypt
        (
            HashScheme::Scrypt,
            "$scrypt$ln=4,r=8,p=1$XevdG4MQwvgfo7T2PsdY6w$2tzdJCmf4r8pc4/EcaMImc/f/AlUi0nfuIdt2hoU89U",
        ),
        // hashlib.scrypt, PHC by hand
        (
            HashScheme::Scrypt,
            "$scrypt$ln=5,r=8,p=1$MceDLMNn8j32++g4vCBQag$Pb3IGHEHHPCmNV1QlyzozATMl3g+FCtOOzPWtH5gVWc",
        ),
        // PyNaCl 1.6.2 / libsodium
        (
            HashScheme::Scrypt,
            "$7$86..../....XoGdreX8TkvTww.YFOmT1pWOIK3uBph31rqp82Y4HuB$2bQ7kXBkMNLADQmwOxGIJWDMJbAQher.r7noD7hENE1",
        ),
    ];

    #[test]
    fn every_vector_verifies_and_only_with_its_password() {
        for (scheme, hash) in VECTORS {
            assert_eq!(identify(hash).as_ref(), Ok(scheme), "{hash}");
            let parsed = parse(hash).unwrap();
            assert!(parsed.verify_legacy(PASSWORD), "{hash}");
            assert!(!parsed.verify_legacy(b"Tr0ub4dor&3 legacY"), "{hash}");
            assert!(!parsed.verify_legacy(b""), "{hash}");
        }
    }

    #[test]
    fn a_changed_hash_no_longer_verifies() {
        for (_, hash) in VECTORS {
            // Flip the last character of the output.
            let mut bad = hash.to_string();
            let last = bad.pop().unwrap();
            bad.push(if last == 'A' { 'B' } else { 'A' });
            if let Ok(parsed) = parse(&bad) {
                assert!(!parsed.verify_legacy(PASSWORD), "{bad}");
            }
        }
    }

    #[test]
    fn unknown_and_malformed_formats_are_refused_with_a_reason() {
        for bad in [
            "",
            "plaintext",
            "$1$abc$def",
            "$2x$04$ayYakpr31rlJxT7O3OkvsOLnfVyKP/gNd8xEeqLRCAwD38NPIULvK",
            "$2b$04$short",
            "$scrypt$ln=4,r=8,p=1$!!!$x",
            "pbkdf2_sha256$many$salt$aGFzaA==",
            "$7$86..../....",
        ] {
            let reason = identify(bad).unwrap_err();
            assert!(!reason.is_empty());
        }
    }

    #[test]
    fn costly_parameters_are_refused_before_any_work() {
        let bcrypt_31 = "$2b$31$ayYakpr31rlJxT7O3OkvsOLnfVyKP/gNd8xEeqLRCAwD38NPIULvK";
        assert!(identify(bcrypt_31).unwrap_err().contains("bcrypt cost 31"));
        let pbkdf2 =
            "pbkdf2_sha256$4000000000$q7QmVOm3C7lH$IiVN/qy6mFVRlwKlKObaBwz7c3aM5ENXA6r6+g30WPI=";
        assert!(identify(pbkdf2).unwrap_err().contains("iteration count"));
        let scrypt = "$scrypt$ln=30,r=8,p=1$XevdG4MQwvgfo7T2PsdY6w$2tzdJCmf4r8pc4/EcaMImc/f/AlUi0nfuIdt2hoU89U";
        assert!(identify(scrypt).unwrap_err().contains("scrypt memory"));
        // Shifts that would overflow are refused, not computed.
        let huge = "$scrypt$ln=200,r=8,p=1$XevdG4MQwvgfo7T2PsdY6w$2tzdJCmf4r8pc4/EcaMImc/f/AlUi0nfuIdt2hoU89U";
        assert!(identify(huge).is_err());
        let mcf = "$7$z6..../....XoGdreX8TkvTww.YFOmT1pWOIK3uBph31rqp82Y4HuB$2bQ7kXBkMNLADQmwOxGIJWDMJbAQher.r7noD7hENE1";
        assert!(identify(mcf).unwrap_err().contains("scrypt memory"));
    }

    #[test]
    fn reasons_never_contain_the_hash() {
        let hash = "$2b$31$ayYakpr31rlJxT7O3OkvsOLnfVyKP/gNd8xEeqLRCAwD38NPIULvK";
        assert!(!identify(hash).unwrap_err().contains("ayYakpr"));
        let django = "pbkdf2_sha256$1000$q7QmVOm3C7lH$!!notbase64";
        assert!(!identify(django).unwrap_err().contains("q7QmVOm3C7lH"));
    }
}
