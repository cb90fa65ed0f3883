//! Email addresses, validated and folded once at the edge.
//!
//! [`Email::parse`] is the only way an address from a client becomes an
//! [`Email`], and every comparison, lookup, rate-limit key and uniqueness rule
//! uses its result, so two spellings of one mailbox are one account. The rules
//! (docs/security.md, "Addresses and names"):
//!
//! 1. Trim surrounding whitespace; refuse control, invisible and
//!    text-direction characters anywhere ([`crate::text::check`]).
//! 2. Apply Unicode NFKC to the whole address, so full-width and other
//!    compatibility forms become their plain letters (`ａｎｎ＠ｅｘａｍｐｌｅ．ｃｏｍ`
//!    is `ann@example.com`).
//! 3. Split at the last `@`. The local part is lower-cased and put through
//!    NFKC again (lower-casing can undo it), and must then be a dot-atom:
//!    RFC 5322 `atext` plus any non-ASCII character (RFC 6531), no empty
//!    dot-separated part. Quoted local parts (`"ann"@example.com`, which mail
//!    servers deliver to `ann@example.com`) and comments are refused rather
//!    than unquoted: the rule stays one a person can predict.
//! 4. The domain goes through IDNA ToASCII (UTS 46, non-transitional, as the
//!    `idna` crate implements it, with DNS length checks and no hyphen or
//!    STD3 checks beyond the address syntax below), so `bücher.example`,
//!    `BÜCHER.example` and `xn--bcher-kva.example` are one domain, stored
//!    and mailed in its ASCII form.
//! 5. The result must be a valid address of at most 254 bytes with a dot in
//!    its domain; `+tags` and dots in the local part are kept, because
//!    whether they reach one mailbox is each provider's own rule.
use serde::{Deserialize, Serialize};
use std::fmt;
use unicode_normalization::UnicodeNormalization;

/// A syntactically valid email address in its folded form (see the module
/// documentation for the rules).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

/// The longest address SMTP can carry (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// The longest local part SMTP can carry (RFC 5321), in bytes.
const MAX_LOCAL_LEN: usize = 64;

const INVALID: &str = "is not a valid email address";

/// RFC 5322 `atext` outside letters and digits.
const ATEXT_SYMBOLS: &str = "!#$%&'*+-/=?^_`{|}~";

fn fold_local(local: &str) -> Result<String, &'static str> {
    if local.starts_with('"') || local.contains('"') {
        return Err("must not have a quoted local part");
    }
    let folded: String = local.to_lowercase().nfkc().collect();
    let atom_char = |c: char| {
        c.is_ascii_alphanumeric()
            || ATEXT_SYMBOLS.contains(c)
            || (!c.is_ascii() && !c.is_whitespace())
    };
    let dot_atom = folded
        .split('.')
        .all(|atom| !atom.is_empty() && atom.chars().all(atom_char));
    if !dot_atom || folded.len() > MAX_LOCAL_LEN {
        return Err(INVALID);
    }
    // Lower-casing and NFKC may bring back a refused character (none known).
    crate::text::check(&folded)?;
    Ok(folded)
}

fn fold_domain(domain: &str) -> Result<String, &'static str> {
    use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};
    let ascii = Uts46::new()
        .to_ascii(
            domain.as_bytes(),
            AsciiDenyList::EMPTY,
            Hyphens::Allow,
            DnsLength::Verify,
        )
        .map_err(|_| "has an invalid domain")?;
    if !ascii.contains('.') {
        return Err(INVALID);
    }
    Ok(ascii.into_owned())
}

impl Email {
    /// Validates and folds `raw` (see the module documentation).
    ///
    /// # Errors
    /// A message suitable for a `validation_failed` entry.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("must not be empty");
        }
        // Bounds the folding work; the folded form is checked again below.
        if trimmed.chars().count() > MAX_EMAIL_LEN {
            return Err("must be at most 254 characters");
        }
        crate::text::check(trimmed)?;
        let composed: String = trimmed.nfkc().collect();
        let (local, domain) = composed.rsplit_once('@').ok_or(INVALID)?;
        let normalised = format!("{}@{}", fold_local(local)?, fold_domain(domain)?);
        if normalised.len() > MAX_EMAIL_LEN {
            return Err("must be at most 254 characters");
        }
        email_address::EmailAddress::parse_with_options(
            &normalised,
            email_address::Options::default()
                .without_display_text()
                .without_domain_literal(),
        )
        .map_err(|_| INVALID)?;
        Ok(Self(normalised))
    }

    /// This address folded by the current rules: an address stored before
    /// them (pending invitations, email changes) is compared and used in the
    /// form a new one would have. Unchanged if the current rules refuse it.
    #[must_use]
    pub fn refold(self) -> Self {
        Self::parse(&self.0).unwrap_or(self)
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Builds an `Email` from a value that a store already validated.
    pub fn from_trusted(value: String) -> Self {
        Self(value)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Addresses are personal data: debug output never shows them in full.
impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Email(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folded(raw: &str) -> String {
        Email::parse(raw)
            .unwrap_or_else(|m| panic!("{raw:?}: {m}"))
            .as_str()
            .to_owned()
    }

    #[test]
    fn normalises_case_and_whitespace() {
        assert_eq!(folded("  Ann.Lee@Example.COM "), "ann.lee@example.com");
    }

    #[test]
    fn full_width_and_compatibility_forms_fold_to_plain_letters() {
        assert_eq!(folded("ａｎｎ@example.com"), "ann@example.com");
        assert_eq!(folded("ＡＮＮ＠ＥＸＡＭＰＬＥ．ｃｏｍ"), "ann@example.com");
        assert_eq!(folded("ﬁle@example.com"), "file@example.com");
    }

    #[test]
    fn domains_are_stored_in_their_idna_ascii_form() {
        for raw in [
            "ann@bücher.example",
            "ann@BÜCHER.example",
            "ann@xn--bcher-kva.example",
            "ann@XN--BCHER-KVA.EXAMPLE",
            "ann@bu\u{308}cher.example",
        ] {
            assert_eq!(folded(raw), "ann@xn--bcher-kva.example", "{raw}");
        }
        // Non-transitional: ß is its own letter, not "ss".
        assert_eq!(folded("ann@faß.de"), "ann@xn--fa-hia.de");
        assert!(Email::parse("ann@xn--zz.example").is_err(), "bad punycode");
        assert!(Email::parse(&format!("ann@{}.example", "a".repeat(64))).is_err());
    }

    #[test]
    fn quoted_local_parts_are_refused() {
        for raw in [
            "\"ann\"@example.com",
            "\"a nn\"@example.com",
            "\"ann@x\"@example.com",
            "ann\"@example.com",
            "＂ann＂@example.com",
        ] {
            assert_eq!(
                Email::parse(raw).unwrap_err(),
                "must not have a quoted local part",
                "{raw}"
            );
        }
    }

    #[test]
    fn invisible_and_direction_characters_are_refused() {
        for raw in [
            "a\u{200B}nn@example.com",
            "ann@exa\u{200D}mple.com",
            "\u{202E}moc.elpmaxe@nna",
            "ann\u{FEFF}@example.com",
            "ann\u{0}@example.com",
        ] {
            assert!(Email::parse(raw).is_err(), "{raw:?} accepted");
        }
    }

    #[test]
    fn tags_dots_and_international_local_parts_are_kept() {
        assert_eq!(folded("Ann+News@example.com"), "ann+news@example.com");
        assert_eq!(folded("a.n.n@example.com"), "a.n.n@example.com");
        assert_eq!(folded("José@example.com"), "josé@example.com");
        assert_eq!(folded("Jose\u{301}@example.com"), "josé@example.com");
    }

    #[test]
    fn rejects_invalid() {
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "a b@example.com",
            "a\u{3000}b@example.com",
            "Ann <ann@example.com>",
            "ann(comment)@example.com",
            ".ann@example.com",
            "a..nn@example.com",
            "ann@[127.0.0.1]",
            "ann@example.com.",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert!(Email::parse(&long_local).is_err());
    }

    #[test]
    fn refold_upgrades_addresses_stored_under_the_old_rule() {
        let old = Email::from_trusted("ａｎｎ@bücher.example".into());
        assert_eq!(old.refold().as_str(), "ann@xn--bcher-kva.example");
        let refused = Email::from_trusted("\"ann\"@example.com".into());
        assert_eq!(refused.refold().as_str(), "\"ann\"@example.com");
    }

    #[test]
    fn debug_redacts() {
        let e = Email::parse("ann@example.com").unwrap();
        assert!(!format!("{e:?}").contains("ann"));
    }

    proptest::proptest! {
        /// Folding is stable: a stored address parses back to itself.
        #[test]
        fn folding_is_idempotent(
            local in "[a-zA-Z0-9.+ａ-ｚＡ-Ｚé\u{301}ß\u{130}ﬁΣσς]{1,20}",
            domain in "[a-zA-Z0-9ü\u{308}Ｅ-]{1,12}\\.(example|com|ＣＯＭ|xn--bcher-kva)",
        ) {
            if let Ok(once) = Email::parse(&format!("{local}@{domain}")) {
                let twice = Email::parse(once.as_str());
                proptest::prop_assert_eq!(twice.as_ref().map(Email::as_str), Ok(once.as_str()));
            }
        }
    }
}
