//! Country names and codes as they appear in exports -> ISO 3166-1 alpha-2.
//! Exports carry `US`, `USA`, `United States`, `Unspecified` or nothing; markets are defined on
//! alpha-2 codes, so everything is normalised here once.

use std::collections::HashMap;
use std::sync::OnceLock;

#[path = "countries_table.rs"]
mod table;

fn index() -> &'static HashMap<String, &'static str> {
    static INDEX: OnceLock<HashMap<String, &'static str>> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut m = HashMap::new();
        for (a2, a3, names) in table::COUNTRIES {
            m.insert(a2.to_string(), *a2);
            m.insert(a3.to_string(), *a2);
            for n in *names {
                m.insert(n.to_uppercase(), *a2);
            }
        }
        m
    })
}

/// The alpha-2 code for a code or an English name, or `None` (blank, `Unspecified`, unknown).
pub fn to_alpha2(raw: &str) -> Option<&'static str> {
    let key = raw.trim().trim_start_matches('\'').trim().to_uppercase();
    if key.is_empty() {
        return None;
    }
    index().get(&key).copied()
}

/// Whether `code` is an ISO 3166-1 alpha-2 code (exactly, upper case).
pub fn is_alpha2(code: &str) -> bool {
    table::COUNTRIES.iter().any(|(a2, _, _)| *a2 == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_names_and_aliases() {
        assert_eq!(to_alpha2("us"), Some("US"));
        assert_eq!(to_alpha2("GBR"), Some("GB"));
        assert_eq!(to_alpha2("United Kingdom"), Some("GB"));
        assert_eq!(to_alpha2(" germany "), Some("DE"));
        assert_eq!(to_alpha2("Unspecified"), None);
        assert_eq!(to_alpha2("European Community"), None);
        assert_eq!(to_alpha2(""), None);
        assert!(is_alpha2("FR") && !is_alpha2("XX") && !is_alpha2("fr"));
    }
}
