//! Endpoint keys: a primary and a secondary (as Azure ML endpoints have), given directly or read
//! from a key file that is re-read when it changes, so keys rotate without a restart.
//!
//! Rotation, as on Azure ML: clients move to the secondary key; the primary is replaced in the
//! key file (write a new file and rename it over the old one, so no reader sees half of it);
//! within [`ServeConfig::key_reload_interval`](crate::ServeConfig::key_reload_interval) the old
//! key is refused. A key file that cannot be read or holds no valid keys is logged and the keys
//! in use stay in use: a botched edit never opens the endpoint nor locks every client out.
//!
//! Keys are compared in constant time ([`subtle::ConstantTimeEq`]): every accepted key is
//! compared with the whole given key, and the results are combined without branching, so the
//! answer's timing tells nothing about how much of a key matched. No key is ever logged or
//! shown by `Debug`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

use crate::error::{Error, Result};

/// Reads a key file: the primary key on its first non-blank line and, optionally, the secondary
/// on the next; surrounding white space is ignored. Errors name the file, never its content.
pub fn read_key_file(path: &Path) -> Result<Vec<String>> {
    let bad = |reason: String| Error::KeyFile {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|_| bad("it is not UTF-8 text".into()))?;
    let keys: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    match keys.len() {
        1 | 2 => {}
        0 => return Err(bad("it is empty: put the primary key on its first line".into())),
        n => {
            return Err(bad(format!(
                "it has {n} keys: give the primary key and, optionally, the secondary key, one per line"
            )));
        }
    }
    if let Some(k) = keys
        .iter()
        .find(|k| k.chars().any(|c| c.is_control() || c == ' '))
    {
        let line = keys.iter().position(|x| x == k).unwrap_or(0) + 1;
        return Err(bad(format!(
            "key {line} holds a space or a control character; a key is one word that can be sent in a header"
        )));
    }
    Ok(keys)
}

/// The keys in use, and where they are reloaded from.
pub(crate) struct KeyRing {
    current: RwLock<Arc<Vec<String>>>,
    file: Option<Watched>,
}

struct Watched {
    path: PathBuf,
    interval: Duration,
    /// When the file was last read; `try_lock` so only one request at a time reads it.
    last_check: Mutex<Instant>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.current.read().map_or(0, |k| k.len());
        f.debug_struct("KeyRing")
            .field("keys", &format_args!("<{n} redacted>"))
            .field("file", &self.file.as_ref().map(|w| &w.path))
            .finish()
    }
}

impl KeyRing {
    /// Fixed keys, or (when `file` is given) the keys of that file, re-read at most every
    /// `interval`.
    pub(crate) fn new(keys: Vec<String>, file: Option<&Path>, interval: Duration) -> Result<Self> {
        let (keys, file) = match file {
            None => (keys, None),
            Some(path) => (
                read_key_file(path)?,
                Some(Watched {
                    path: path.to_path_buf(),
                    interval,
                    last_check: Mutex::new(Instant::now()),
                }),
            ),
        };
        Ok(KeyRing {
            current: RwLock::new(Arc::new(keys)),
            file,
        })
    }

    /// True when requests must carry a key.
    pub(crate) fn enabled(&self) -> bool {
        self.file.is_some() || self.current.read().is_ok_and(|k| !k.is_empty())
    }

    /// The keys in use now, re-reading the key file first when its interval has passed.
    fn keys(&self) -> Arc<Vec<String>> {
        if let Some(w) = &self.file
            && let Ok(mut last) = w.last_check.try_lock()
            && last.elapsed() >= w.interval
        {
            *last = Instant::now();
            self.reload(w);
        }
        self.current
            .read()
            .map_or_else(|p| p.into_inner().clone(), |k| k.clone())
    }

    fn reload(&self, w: &Watched) {
        match read_key_file(&w.path) {
            Ok(keys) => {
                let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
                if **current != keys {
                    tracing::info!(
                        file = %w.path.display(),
                        keys = keys.len(),
                        "key file changed: the new keys are in use, the old ones are refused"
                    );
                    *current = Arc::new(keys);
                }
            }
            Err(e) => tracing::warn!(error = %e, "keeping the keys in use"),
        }
    }

    /// True when `given` is one of the keys, compared in constant time with each of them.
    pub(crate) fn accepts(&self, given: &str) -> bool {
        let keys = self.keys();
        let mut ok = subtle::Choice::from(0u8);
        for k in keys.iter() {
            ok |= given.as_bytes().ct_eq(k.as_bytes());
        }
        ok.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_hold_one_or_two_keys_and_errors_never_show_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keys");
        std::fs::write(&p, "\n  primary-1  \nsecondary-2\n").unwrap();
        assert_eq!(read_key_file(&p).unwrap(), ["primary-1", "secondary-2"]);
        std::fs::write(&p, "a\nb\nsecret-c\n").unwrap();
        let e = read_key_file(&p).unwrap_err().to_string();
        assert!(e.contains("3 keys") && !e.contains("secret-c"), "{e}");
        std::fs::write(&p, "\n\n").unwrap();
        assert!(read_key_file(&p).unwrap_err().to_string().contains("empty"));
        std::fs::write(&p, "two words-secret\n").unwrap();
        let e = read_key_file(&p).unwrap_err().to_string();
        assert!(
            e.contains("key 1 holds a space") && !e.contains("words-secret"),
            "{e}"
        );
        let e = read_key_file(&dir.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read it"), "{e}");
    }

    #[test]
    fn a_changed_key_file_replaces_the_keys_and_a_broken_one_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keys");
        std::fs::write(&p, "old-primary\nsecondary\n").unwrap();
        let ring = KeyRing::new(Vec::new(), Some(&p), Duration::ZERO).unwrap();
        assert!(ring.enabled());
        assert!(ring.accepts("old-primary") && ring.accepts("secondary"));
        assert!(!ring.accepts("old-primar") && !ring.accepts("old-primary2") && !ring.accepts(""));
        std::fs::write(&p, "new-primary\nsecondary\n").unwrap();
        assert!(!ring.accepts("old-primary"), "refused after the rotation");
        assert!(ring.accepts("new-primary") && ring.accepts("secondary"));
        std::fs::write(&p, "").unwrap();
        assert!(ring.accepts("new-primary"), "an empty file keeps the keys in use");
        std::fs::remove_file(&p).unwrap();
        assert!(ring.accepts("secondary"), "a missing file keeps the keys in use");
        assert!(!format!("{ring:?}").contains("secondary"));
    }

    #[test]
    fn fixed_keys_and_no_keys() {
        let ring = KeyRing::new(vec!["k1".into()], None, Duration::ZERO).unwrap();
        assert!(ring.enabled() && ring.accepts("k1") && !ring.accepts("k2"));
        let none = KeyRing::new(Vec::new(), None, Duration::ZERO).unwrap();
        assert!(!none.enabled() && !none.accepts(""));
    }
}
