//! The error of a config word that names none of a setting's values, shared by every setting
//! this crate parses from text (`coding`, `long_mode`), so each reads the same way in logs.

use std::fmt;

/// A config word that names none of a setting's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownWord {
    /// What the setting is called in the message, e.g. `coding`.
    pub setting: &'static str,
    /// The words the setting accepts, as the message lists them.
    pub expected: &'static str,
    /// The word as given.
    pub word: String,
}

impl UnknownWord {
    /// The error for `word`, given to the setting `setting` that accepts `expected`.
    pub fn new(setting: &'static str, expected: &'static str, word: &str) -> UnknownWord {
        UnknownWord {
            setting,
            expected,
            word: word.to_string(),
        }
    }
}

impl fmt::Display for UnknownWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown {} {:?} (expected {})",
            self.setting, self.word, self.expected
        )
    }
}

impl std::error::Error for UnknownWord {}

#[cfg(test)]
mod tests {
    use crate::concat::LongMode;
    use crate::text::CodingPolicy;

    #[test]
    fn each_setting_names_itself_the_word_and_the_choices() {
        let coding = "utf8".parse::<CodingPolicy>().unwrap_err();
        assert_eq!(
            coding.to_string(),
            "unknown coding \"utf8\" (expected gsm7, ascii_only, latin1 or ucs2)"
        );
        let mode = " Split".parse::<LongMode>().unwrap_err();
        assert_eq!(
            mode.to_string(),
            "unknown long-message mode \" Split\" (expected udh, udh16, sar or payload)"
        );
    }
}
