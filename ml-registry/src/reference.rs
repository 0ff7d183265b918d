//! Model names, alias names and references (`name:version`, `name@alias`, `name@latest`).

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// The longest model or alias name.
pub const MAX_NAME_LEN: usize = 64;

/// The alias that always means the newest version; it cannot be set or removed.
pub const LATEST: &str = "latest";

/// Checks a model name against `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`.
///
/// The rule keeps names safe as one path component and as part of a blob name: `../x`, absolute
/// paths, empty names and names with separators are refused.
pub fn validate_model_name(name: &str) -> Result<()> {
    validate("model", name)
}

/// Checks an alias name: the model-name rule, not all digits (that would read as a version) and
/// not `latest` (reserved).
pub fn validate_alias(alias: &str) -> Result<()> {
    validate("alias", alias)?;
    let bad = |reason: &str| Error::InvalidName {
        what: "alias",
        name: alias.to_string(),
        reason: reason.into(),
    };
    if alias.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("an alias cannot be all digits (that is a version number)"));
    }
    if alias == LATEST {
        return Err(bad("`latest` is reserved: it always means the newest version"));
    }
    Ok(())
}

fn validate(what: &'static str, name: &str) -> Result<()> {
    let bad = |reason: String| Error::InvalidName {
        what,
        name: name.to_string(),
        reason,
    };
    let Some(first) = name.bytes().next() else {
        return Err(bad("it is empty".into()));
    };
    if name.len() > MAX_NAME_LEN {
        return Err(bad(format!("it is {} characters long", name.len())));
    }
    if !first.is_ascii_alphanumeric() {
        return Err(bad(format!("it starts with {:?}", first as char)));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(bad(format!("it contains {c:?}")));
    }
    Ok(())
}

/// Which version of a model a [`Reference`] selects.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Selector {
    /// An exact version number (`name:3`).
    Version(u32),
    /// A named alias (`name@prod`).
    Alias(String),
    /// The newest version (`name@latest`).
    Latest,
}

/// A reference to one version of a registered model: `name:version`, `name@alias` or
/// `name@latest`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    /// The model name.
    pub name: String,
    /// Which version.
    pub selector: Selector,
}

impl Reference {
    /// `name:version`.
    pub fn version(name: &str, version: u32) -> Result<Reference> {
        validate_model_name(name)?;
        Ok(Reference {
            name: name.into(),
            selector: Selector::Version(version),
        })
    }

    /// `name@alias` (`latest` gives [`Selector::Latest`]).
    pub fn alias(name: &str, alias: &str) -> Result<Reference> {
        validate_model_name(name)?;
        if alias == LATEST {
            return Ok(Reference {
                name: name.into(),
                selector: Selector::Latest,
            });
        }
        validate_alias(alias)?;
        Ok(Reference {
            name: name.into(),
            selector: Selector::Alias(alias.into()),
        })
    }

    /// `name@latest`.
    pub fn latest(name: &str) -> Result<Reference> {
        validate_model_name(name)?;
        Ok(Reference {
            name: name.into(),
            selector: Selector::Latest,
        })
    }
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(s: &str) -> Result<Reference> {
        let bad = |reason: String| Error::InvalidReference {
            reference: s.to_string(),
            reason,
        };
        let wrap = |e: Error| match e {
            Error::InvalidName { what, name, reason } => bad(format!("{what} name {name:?}: {reason}")),
            other => other,
        };
        match (s.find(':'), s.find('@')) {
            (Some(_), Some(_)) => Err(bad(
                "use either ':' (a version) or '@' (an alias), not both".into()
            )),
            (Some(i), None) => {
                let (name, v) = (&s[..i], &s[i + 1..]);
                let version: u32 = v
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| bad(format!("version {v:?} is not a positive integer")))?;
                Reference::version(name, version).map_err(wrap)
            }
            (None, Some(i)) => Reference::alias(&s[..i], &s[i + 1..]).map_err(wrap),
            (None, None) => Err(bad(format!(
                "no version or alias given; write `{s}:1`, `{s}@prod` or `{s}@latest`"
            ))),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.selector {
            Selector::Version(v) => write!(f, "{}:{v}", self.name),
            Selector::Alias(a) => write!(f, "{}@{a}", self.name),
            Selector::Latest => write!(f, "{}@{LATEST}", self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        let r: Reference = "credit:3".parse().unwrap();
        assert_eq!(r.name, "credit");
        assert_eq!(r.selector, Selector::Version(3));
        assert_eq!(r.to_string(), "credit:3");
        let r: Reference = "credit@prod".parse().unwrap();
        assert_eq!(r.selector, Selector::Alias("prod".into()));
        let r: Reference = "credit.v2_x-y@latest".parse().unwrap();
        assert_eq!(r.selector, Selector::Latest);
        assert_eq!(r.to_string(), "credit.v2_x-y@latest");
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        let msg = |s: &str| s.parse::<Reference>().unwrap_err().to_string();
        assert!(
            msg("credit").contains("no version or alias given"),
            "{}",
            msg("credit")
        );
        assert!(msg("credit:x").contains("\"x\" is not a positive integer"));
        assert!(msg("credit:0").contains("not a positive integer"));
        assert!(msg("credit:-1").contains("not a positive integer"));
        assert!(msg("credit:1@prod").contains("not both"));
        assert!(msg("../x:1").contains("starts with '.'"), "{}", msg("../x:1"));
        assert!(msg("/abs@prod").contains("starts with '/'"));
        assert!(msg(":1").contains("it is empty"));
        assert!(msg("credit@").contains("it is empty"));
        assert!(msg("credit@12").contains("all digits"));
        assert!(msg("a/b:1").contains("contains '/'"));
    }

    #[test]
    fn names_follow_the_rule() {
        for ok in ["a", "A9", "credit-default_v1.2", &"x".repeat(64)] {
            validate_model_name(ok).unwrap();
        }
        for bad in [
            "",
            "../x",
            "/etc",
            ".hidden",
            "-x",
            "a b",
            "a/b",
            "é",
            &"x".repeat(65),
        ] {
            let e = validate_model_name(bad).unwrap_err().to_string();
            assert!(e.contains("invalid model name"), "{bad:?}: {e}");
        }
        assert!(
            validate_alias("latest")
                .unwrap_err()
                .to_string()
                .contains("reserved")
        );
    }
}
