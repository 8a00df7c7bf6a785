//! A line-aware reader of UCI files: statements with the line they start on.
//!
//! Follows libuci's grammar: `package`, `config TYPE [NAME]`, `option NAME VALUE`,
//! `list NAME VALUE`, single/double quotes (a quoted value may span lines), backslash escapes,
//! adjacent quoted parts, and `#` comments. Every statement keeps the line it starts on.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stmt {
    Package(String),
    Config { typ: String, name: Option<String> },
    Option { name: String, value: String },
    List { name: String, value: String },
}

/// A statement that does not follow the grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyntaxError {
    /// A quote (the character) not closed before the end of the file.
    Unterminated(char),
    SectionType(String),
    SectionName(String),
    OptionName(String),
    /// `option` or `list` (the keyword) before any `config` line.
    BeforeConfig(String),
    NoValue {
        keyword: String,
        name: String,
    },
    WordCount(String),
    Keyword(String),
}

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyntaxError::Unterminated(q) => write!(f, "unterminated {q}…{q} quote"),
            SyntaxError::SectionType(t) => write!(f, "invalid section type '{t}'"),
            SyntaxError::SectionName(n) => write!(
                f,
                "invalid section name '{n}' (letters, digits, '_' and '-' only)"
            ),
            SyntaxError::OptionName(n) => write!(f, "invalid option name '{n}'"),
            SyntaxError::BeforeConfig(k) => write!(f, "'{k}' before any 'config' section"),
            SyntaxError::NoValue { keyword, name } => {
                write!(f, "{keyword} '{name}' has no value")
            }
            SyntaxError::WordCount(k) => write!(
                f,
                "wrong number of words for '{k}' (quote values with spaces)"
            ),
            SyntaxError::Keyword(k) => {
                write!(f, "unknown keyword '{k}' (expected config, option or list)")
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub line: usize,
    pub stmt: Stmt,
}

/// Splits one logical line into words, honouring '…', "…" (with \ escapes), adjacent quoted
/// parts (`'it'\''s'`), and `#` comments. Returns the words and the number of physical lines
/// consumed (quoted values may span lines).
fn words(lines: &[&str]) -> Result<(Vec<String>, usize), SyntaxError> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut used = 1;
    let mut text: String = lines[0].to_string();
    let mut chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    loop {
        if i >= chars.len() {
            break;
        }
        let c = chars[i];
        match c {
            '#' if !in_word => break,
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
                i += 1;
            }
            '\'' | '"' => {
                in_word = true;
                let quote = c;
                i += 1;
                loop {
                    if i >= chars.len() {
                        // Quoted value continues on the next physical line.
                        if used >= lines.len() {
                            return Err(SyntaxError::Unterminated(quote));
                        }
                        cur.push('\n');
                        text = lines[used].to_string();
                        used += 1;
                        chars = text.chars().collect();
                        i = 0;
                        continue;
                    }
                    let d = chars[i];
                    if d == quote {
                        i += 1;
                        break;
                    }
                    if d == '\\' && quote == '"' && i + 1 < chars.len() {
                        cur.push(chars[i + 1]);
                        i += 2;
                        continue;
                    }
                    cur.push(d);
                    i += 1;
                }
            }
            '\\' if i + 1 < chars.len() => {
                in_word = true;
                cur.push(chars[i + 1]);
                i += 2;
            }
            _ => {
                in_word = true;
                cur.push(c);
                i += 1;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok((out, used))
}

fn ident_ok(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Parses the text into statements; errors carry the 1-based line number.
pub fn statements(text: &str) -> Result<Vec<Located>, (usize, SyntaxError)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut n = 0;
    while n < lines.len() {
        let line = n + 1;
        let (w, used) = words(&lines[n..]).map_err(|e| (line, e))?;
        n += used;
        let Some(keyword) = w.first() else { continue };
        let stmt = match (keyword.as_str(), w.len()) {
            ("package", 2) => Stmt::Package(w[1].clone()),
            ("config", 2) | ("config", 3) => {
                if !ident_ok(&w[1]) {
                    return Err((line, SyntaxError::SectionType(w[1].clone())));
                }
                let name = w.get(2).cloned();
                if let Some(nm) = &name {
                    if !ident_ok(nm) {
                        return Err((line, SyntaxError::SectionName(nm.clone())));
                    }
                }
                Stmt::Config {
                    typ: w[1].clone(),
                    name,
                }
            }
            ("option", 3) | ("list", 3) => {
                if !ident_ok(&w[1]) {
                    return Err((line, SyntaxError::OptionName(w[1].clone())));
                }
                if out
                    .iter()
                    .all(|s: &Located| !matches!(s.stmt, Stmt::Config { .. }))
                {
                    return Err((line, SyntaxError::BeforeConfig(keyword.clone())));
                }
                if keyword == "option" {
                    Stmt::Option {
                        name: w[1].clone(),
                        value: w[2].clone(),
                    }
                } else {
                    Stmt::List {
                        name: w[1].clone(),
                        value: w[2].clone(),
                    }
                }
            }
            ("option", 2) | ("list", 2) => {
                return Err((
                    line,
                    SyntaxError::NoValue {
                        keyword: keyword.clone(),
                        name: w[1].clone(),
                    },
                ))
            }
            ("config" | "option" | "list" | "package", _) => {
                return Err((line, SyntaxError::WordCount(keyword.clone())))
            }
            (other, _) => return Err((line, SyntaxError::Keyword(other.to_string()))),
        };
        out.push(Located { line, stmt });
    }
    Ok(out)
}

/// UCI single-quoting: `it's` → `'it'\''s'`.
pub fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_with_lines_and_quoting() {
        let text = "# comment\nconfig awl 'main'\n\toption name \"my router\" # trailing\n\tlist bootstrap '/ip4/1.2.3.4/udp/1/quic-v1'\n\n\toption alias 'it'\\''s'\n";
        let s = statements(text).unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(
            s[0],
            Located {
                line: 2,
                stmt: Stmt::Config {
                    typ: "awl".into(),
                    name: Some("main".into())
                }
            }
        );
        assert_eq!(
            s[1],
            Located {
                line: 3,
                stmt: Stmt::Option {
                    name: "name".into(),
                    value: "my router".into()
                }
            }
        );
        assert_eq!(s[2].line, 4);
        assert_eq!(
            s[3].stmt,
            Stmt::Option {
                name: "alias".into(),
                value: "it's".into()
            }
        );
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(
            statements("config awl main\n\toption mtu\n").unwrap_err().0,
            2
        );
        assert_eq!(statements("\n\nfoo bar\n").unwrap_err().0, 3);
        assert_eq!(
            statements("config awl\n\toption a 'unterminated\n")
                .unwrap_err()
                .0,
            2
        );
        assert_eq!(statements("option a b\n").unwrap_err().0, 1);
        assert_eq!(statements("config awl 'bad name'\n").unwrap_err().0, 1);
    }

    #[test]
    fn quoting_round_trips() {
        let v = "a 'quoted' value";
        let line = format!("config x\noption v {}\n", quote(v));
        let s = statements(&line).unwrap();
        assert_eq!(
            s[1].stmt,
            Stmt::Option {
                name: "v".into(),
                value: v.into()
            }
        );
    }
}
