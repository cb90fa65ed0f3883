//! Rules a new password must meet: length, optional character classes, and not
//! being one of the most common passwords.
use super::{check_size, MAX_PASSWORD_BYTES};
use crate::error::{CoreError, FieldError, Result};
use secrecy::{ExposeSecret, SecretString};
use std::{collections::HashSet, fmt, str::FromStr, sync::LazyLock};

/// No configuration may allow shorter passwords than this (NIST SP 800-63B's floor).
pub const MIN_ALLOWED_CHARS: usize = 8;

/// The bundled list (see `data/README.md` for its source and licence).
static COMMON_LIST: &str = include_str!("../../data/common-passwords.txt");

/// Built on first use and kept: 30,000 entries are worth hashing once, not per request.
static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    COMMON_LIST
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
});

/// Whether `password` is on the bundled list of common passwords (trimmed, any case).
pub fn is_common(password: &str) -> bool {
    COMMON.contains(password.trim().to_lowercase().as_str())
}

/// How many passwords the bundled list holds.
pub fn common_list_len() -> usize {
    COMMON.len()
}

/// A kind of character a policy can require.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CharClass {
    /// A lowercase letter (any script).
    Lower,
    /// An uppercase letter (any script).
    Upper,
    /// A decimal digit.
    Digit,
    /// Anything that is not a letter, digit or whitespace.
    Symbol,
}

impl CharClass {
    /// Every class, in a stable order.
    pub const ALL: [CharClass; 4] = [Self::Lower, Self::Upper, Self::Digit, Self::Symbol];

    /// The configuration spelling: `lower`, `upper`, `digit`, `symbol`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lower => "lower",
            Self::Upper => "upper",
            Self::Digit => "digit",
            Self::Symbol => "symbol",
        }
    }

    fn matches(self, c: char) -> bool {
        match self {
            Self::Lower => c.is_lowercase(),
            Self::Upper => c.is_uppercase(),
            Self::Digit => c.is_ascii_digit(),
            Self::Symbol => !c.is_alphanumeric() && !c.is_whitespace(),
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::Lower => "must contain a lowercase letter",
            Self::Upper => "must contain an uppercase letter",
            Self::Digit => "must contain a digit",
            Self::Symbol => "must contain a symbol (not a letter, digit or space)",
        }
    }
}

impl fmt::Display for CharClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CharClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| {
                format!("{s:?} is not a character class: use lower, upper, digit or symbol")
            })
    }
}

/// Rules a new password must meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Fewest characters (Unicode scalar values); at least [`MIN_ALLOWED_CHARS`].
    pub min_chars: usize,
    /// Most characters; at most [`MAX_PASSWORD_BYTES`].
    pub max_chars: usize,
    /// Classes each password must contain at least one character of (none by default).
    pub required_classes: Vec<CharClass>,
    /// Refuse the passwords on the bundled list of the most common ones.
    pub refuse_common: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_chars: 10,
            max_chars: 128,
            required_classes: Vec::new(),
            refuse_common: true,
        }
    }
}

impl PasswordPolicy {
    /// Checks the policy itself: one that allows trivially short passwords, or
    /// longer ones than are ever hashed, is refused rather than applied.
    ///
    /// # Errors
    /// What is wrong, as a sentence.
    pub fn validate(&self) -> std::result::Result<(), PolicyError> {
        if self.min_chars < MIN_ALLOWED_CHARS {
            return Err(PolicyError::MinLength(format!(
                "must be at least {MIN_ALLOWED_CHARS}"
            )));
        }
        if self.max_chars > MAX_PASSWORD_BYTES {
            return Err(PolicyError::MaxLength(format!(
                "must be at most {MAX_PASSWORD_BYTES} (longer passwords are never hashed)"
            )));
        }
        if self.max_chars < self.min_chars {
            return Err(PolicyError::MaxLength(format!(
                "must be at least the minimum length ({})",
                self.min_chars
            )));
        }
        Ok(())
    }

    /// Checks a new password; `field` names it in the errors, one per rule broken.
    ///
    /// # Errors
    /// `Validation` naming each rule that failed.
    pub fn check(&self, field: &str, password: &SecretString) -> Result<()> {
        check_size(field, password)?;
        let p = password.expose_secret();
        let chars = p.chars().count();
        let mut errors = Vec::new();
        if chars < self.min_chars {
            errors.push(format!("must be at least {} characters", self.min_chars));
        }
        if chars > self.max_chars {
            errors.push(format!("must be at most {} characters", self.max_chars));
        }
        for class in &self.required_classes {
            if !p.chars().any(|c| class.matches(c)) {
                errors.push(class.message().to_owned());
            }
        }
        if self.refuse_common && is_common(p) {
            errors.push("is one of the most common passwords; choose another".to_owned());
        }
        if errors.is_empty() {
            return Ok(());
        }
        Err(CoreError::Validation(
            errors
                .into_iter()
                .map(|m| FieldError::new(field, m))
                .collect(),
        ))
    }
}

/// Why a [`PasswordPolicy`] is refused, by the setting at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// `min_chars` is too small.
    #[error("minimum length {0}")]
    MinLength(String),
    /// `max_chars` is too large or below the minimum.
    #[error("maximum length {0}")]
    MaxLength(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(r: Result<()>) -> Vec<String> {
        match r {
            Err(CoreError::Validation(list)) => list.into_iter().map(|e| e.message).collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn the_bundled_list_is_large() {
        assert!(common_list_len() >= 10_000, "{}", common_list_len());
        assert!(is_common("password"));
        assert!(is_common("  PassWord1 "));
        assert!(is_common("qwertyuiop"));
        assert!(!is_common("correct horse battery staple"));
    }

    #[test]
    fn lengths() {
        let p = PasswordPolicy::default();
        assert_eq!(
            messages(p.check("password", &SecretString::from("shortpw"))),
            ["must be at least 10 characters"]
        );
        assert!(p
            .check("password", &SecretString::from("long enough pw"))
            .is_ok());
        assert_eq!(
            messages(p.check("password", &SecretString::from("x".repeat(129)))),
            ["must be at most 128 characters"]
        );
        // Characters, not bytes: ten two-byte letters are ten characters.
        assert!(p
            .check("password", &SecretString::from("éàüößçñøåæ"))
            .is_ok());
        assert!(check_size("password", &SecretString::from("é".repeat(600))).is_err());
    }

    #[test]
    fn common_passwords_are_refused_in_any_case() {
        let p = PasswordPolicy::default();
        for common in ["1234567890", "qwertyuiop", " Qwertyuiop  ", "PASSWORD123"] {
            let m = messages(p.check("new_password", &SecretString::from(common)));
            assert!(
                m.iter()
                    .any(|m| m.contains("is one of the most common passwords")),
                "{common}: {m:?}"
            );
        }
        let off = PasswordPolicy {
            refuse_common: false,
            ..Default::default()
        };
        assert!(off
            .check("password", &SecretString::from("qwertyuiop"))
            .is_ok());
    }

    #[test]
    fn character_classes_when_required() {
        let p = PasswordPolicy {
            required_classes: CharClass::ALL.to_vec(),
            ..Default::default()
        };
        assert_eq!(
            messages(p.check("password", &SecretString::from("only lowercase words"))),
            [
                "must contain an uppercase letter",
                "must contain a digit",
                "must contain a symbol (not a letter, digit or space)"
            ]
        );
        assert!(p
            .check("password", &SecretString::from("Lower Upper 7 !"))
            .is_ok());
        // Off by default.
        assert!(PasswordPolicy::default()
            .check("password", &SecretString::from("only lowercase words"))
            .is_ok());
    }

    #[test]
    fn classes_parse() {
        assert_eq!("Upper".parse(), Ok(CharClass::Upper));
        assert!("uppercase".parse::<CharClass>().is_err());
    }

    #[test]
    fn weak_policies_are_refused() {
        assert_eq!(PasswordPolicy::default().validate(), Ok(()));
        let short = PasswordPolicy {
            min_chars: 7,
            ..Default::default()
        };
        assert!(matches!(short.validate(), Err(PolicyError::MinLength(_))));
        let huge = PasswordPolicy {
            max_chars: 1025,
            ..Default::default()
        };
        assert!(matches!(huge.validate(), Err(PolicyError::MaxLength(_))));
        let inverted = PasswordPolicy {
            min_chars: 20,
            max_chars: 12,
            ..Default::default()
        };
        assert!(matches!(
            inverted.validate(),
            Err(PolicyError::MaxLength(_))
        ));
    }
}
