//! `ssl_principal_mapping_rules`: how a client certificate's subject DN becomes a principal
//! name, in the syntax of Kafka's `ssl.principal.mapping.rules`: a comma-separated list of
//! `DEFAULT` (the DN as it is) and `RULE:pattern/replacement/[LU]` (a regular expression the
//! whole DN must match, a replacement with `$1`-style groups, optionally lower- or upper-cased).
//! The first rule that applies names the principal; a DN no rule applies to is refused.
//!
//! Patterns are Rust `regex` syntax, which covers what these rules use (groups, classes,
//! anchors, lazy quantifiers) but has no look-around or backreferences.

use regex::Regex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

#[derive(Debug)]
enum Rule {
    Default,
    Map {
        pattern: Regex,
        replacement: String,
        case: Case,
    },
}

/// Parsed mapping rules.
#[derive(Debug)]
pub struct PrincipalMapper {
    rules: Vec<Rule>,
}

/// Reads one `/`-terminated part of a rule, keeping escapes (`\/` becomes `/`).
fn part(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, '/')) => out.push('/'),
                Some((_, n)) => {
                    out.push('\\');
                    out.push(n);
                }
                None => return None,
            },
            '/' => return Some((out, &s[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

/// `$1` to `${1}`, so a group followed by letters stays a group (Java's reading).
fn replacement(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            let mut n = String::new();
            while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                n.push(d);
                chars.next();
            }
            out.push_str(&format!("${{{n}}}"));
        } else if c == '$' {
            out.push_str("$$");
        } else {
            out.push(c);
        }
    }
    out
}

impl PrincipalMapper {
    pub fn parse(rules: &str) -> Result<PrincipalMapper, String> {
        let mut out = Vec::new();
        let mut rest = rules.trim_start();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("DEFAULT") {
                out.push(Rule::Default);
                rest = r;
            } else if let Some(r) = rest.strip_prefix("RULE:") {
                let (pattern, r) =
                    part(r).ok_or_else(|| format!("rule `{rest}` has no pattern/"))?;
                let (repl, r) =
                    part(r).ok_or_else(|| format!("rule `{rest}` has no replacement/"))?;
                let (case, r) = match r.chars().next() {
                    Some('L') => (Case::Lower, &r[1..]),
                    Some('U') => (Case::Upper, &r[1..]),
                    _ => (Case::Keep, r),
                };
                let pattern = Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|e| format!("pattern `{pattern}`: {e}"))?;
                out.push(Rule::Map {
                    pattern,
                    replacement: replacement(&repl),
                    case,
                });
                rest = r;
            } else {
                return Err(format!(
                    "`{rest}` is neither DEFAULT nor RULE:pattern/replacement/"
                ));
            }
            rest = rest.trim_start();
            match rest.strip_prefix(',') {
                Some(r) => rest = r.trim_start(),
                None if rest.is_empty() => {}
                None => return Err(format!("expected `,` before `{rest}`")),
            }
        }
        if out.is_empty() {
            return Err("no rule".into());
        }
        Ok(PrincipalMapper { rules: out })
    }

    /// The principal name for `dn`, or `None` if no rule applies.
    pub fn map(&self, dn: &str) -> Option<String> {
        self.rules.iter().find_map(|r| match r {
            Rule::Default => Some(dn.to_string()),
            Rule::Map {
                pattern,
                replacement,
                case,
            } => {
                let caps = pattern.captures(dn)?;
                let mut name = String::new();
                caps.expand(replacement, &mut name);
                Some(match case {
                    Case::Keep => name,
                    Case::Lower => name.to_lowercase(),
                    Case::Upper => name.to_uppercase(),
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_documentation_examples() {
        let m = PrincipalMapper::parse(
            r"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/, RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L, RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L, DEFAULT",
        )
        .expect("rules");
        assert_eq!(
            m.map("CN=serviceuser,OU=ServiceUsers,O=Unknown,L=Unknown,ST=Unknown,C=Unknown")
                .as_deref(),
            Some("serviceuser")
        );
        assert_eq!(
            m.map("CN=adminUser,OU=Admin,O=Unknown,L=Unknown,ST=Unknown,C=Unknown")
                .as_deref(),
            Some("adminuser@admin")
        );
        assert_eq!(m.map("O=Example,CN=Client.1").as_deref(), Some("client.1"));
        assert_eq!(m.map("O=nothing").as_deref(), Some("O=nothing"));
    }

    #[test]
    fn no_rule_applies_and_bad_rules() {
        let m = PrincipalMapper::parse(r"RULE:^CN=([a-z]+)$/$1/U").expect("rule");
        assert_eq!(m.map("CN=abc").as_deref(), Some("ABC"));
        assert_eq!(m.map("CN=abc,O=x"), None);
        let slash = PrincipalMapper::parse(r"RULE:^CN=(.*)\/x$/$1-y/").expect("escaped slash");
        assert_eq!(slash.map("CN=a/x").as_deref(), Some("a-y"));
        for bad in ["", "RULE:^a$", "RULE:(/x/", "NOPE", "DEFAULT DEFAULT"] {
            assert!(PrincipalMapper::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            PrincipalMapper::parse("DEFAULT")
                .expect("default")
                .map("CN=a,O=b")
                .as_deref(),
            Some("CN=a,O=b")
        );
    }
}
