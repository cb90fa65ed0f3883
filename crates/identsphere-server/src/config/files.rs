//! The files under the data directory: the embedded database's location and the
//! per-install secret, plus reading secrets from files.
use rand::{rngs::OsRng, RngCore};
use secrecy::{ExposeSecret, SecretString};
use std::{
    fs,
    io::{self, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::Path,
};

const DATABASE_FILE: &str = "identsphere.db";

pub(super) fn read_secret(path: &Path) -> Result<SecretString, String> {
    let mut text =
        fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    // `echo` and editors end the file with a newline that is not part of the secret.
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(SecretString::from(text))
}

/// Creates the data directory with mode 0700 (it holds the database and the
/// secret); returns a warning when an existing one is open to other users.
pub(super) fn prepare_data_dir(dir: &Path) -> Result<Option<String>, String> {
    let fix = "or point IDENTSPHERE_DATA_DIR at a writable directory";
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}; create it {fix}", dir.display()))?;
    let mode = fs::metadata(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .permissions()
        .mode();
    Ok((mode & 0o077 != 0).then(|| {
        format!(
            "{} is open to other users (mode {:o}); consider `chmod 700` on it",
            dir.display(),
            mode & 0o777
        )
    }))
}

/// sqlx's `sqlite://PATH` form. sqlx percent-decodes the path and cuts it at `?`,
/// so those characters are escaped.
pub(super) fn sqlite_url(dir: &Path) -> String {
    let path = dir.join(DATABASE_FILE);
    let path = path.to_string_lossy(); // lossless: the directory came from UTF-8 text
    format!(
        "sqlite://{}",
        path.replace('%', "%25")
            .replace('?', "%3F")
            .replace('#', "%23")
    )
}

/// Reads `<data_dir>/jwt_secret`, creating it on first start.
pub(super) fn per_install_secret(path: &Path) -> Result<SecretString, String> {
    match create_secret_file(path) {
        Ok(secret) => return Ok(secret),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {}: {e}", path.display())),
    }
    let mode = fs::metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} is readable by other users (mode {:o}); run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        ));
    }
    read_secret(path)
}

/// Writes a fresh secret. The file is born with mode 0600 (a chmod after writing
/// would leave a moment where others can read it), and `create_new` keeps two
/// first starts from overwriting each other's secret.
fn create_secret_file(path: &Path) -> io::Result<SecretString> {
    let secret = random_secret()?;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    if let Err(e) = file
        .write_all(secret.expose_secret().as_bytes())
        .and_then(|()| file.sync_all())
    {
        // A truncated secret would be reused on every later start; better none.
        let _ = fs::remove_file(path);
        return Err(e);
    }
    Ok(secret)
}

/// 32 bytes from the OS CSPRNG as 64 lowercase hex characters.
pub(super) fn random_secret() -> io::Result<SecretString> {
    let mut bytes = [0u8; 32];
    OsRng.try_fill_bytes(&mut bytes).map_err(io::Error::other)?;
    Ok(SecretString::from(
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>(),
    ))
}
