//! An evaluator for the subset of Pub/Sub's subscription filter syntax this project uses, so the
//! filters in `terraform/routing.json` can be checked offline (the emulator ignores filters).
//!
//! Supported: `attributes.KEY = "v"`, `attributes.KEY != "v"`, `attributes:KEY` (exists),
//! `hasPrefix(attributes.KEY, "p")`, `NOT` (and `-`), `AND`, `OR`, parentheses; KEY is a bare
//! name or a string literal (`attributes."event.hasPrivateMetadata"`). As in Pub/Sub, `=` is false
//! for a missing attribute, `!=` is true for one, and `AND` and `OR` cannot be mixed without
//! parentheses. Anything else is a parse error, never a silent `false`.

use std::collections::BTreeMap;

use anyhow::{Result, bail};

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Attributes,
    Dot,
    Colon,
    Eq,
    Ne,
    LParen,
    RParen,
    Comma,
    Not,
    And,
    Or,
    HasPrefix,
    Ident(String),
    Str(String),
}

fn lex(s: &str) -> Result<Vec<Tok>> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' => i += 1,
            '.' => {
                out.push(Tok::Dot);
                i += 1
            }
            ':' => {
                out.push(Tok::Colon);
                i += 1
            }
            '=' => {
                out.push(Tok::Eq);
                i += 1
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                out.push(Tok::Ne);
                i += 2
            }
            '(' => {
                out.push(Tok::LParen);
                i += 1
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1
            }
            '-' => {
                out.push(Tok::Not);
                i += 1
            }
            '"' => {
                let mut v = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => bail!("unterminated string in filter"),
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some('\\') => {
                            if let Some(n) = chars.get(i + 1) {
                                v.push(*n)
                            }
                            i += 2
                        }
                        Some(ch) => {
                            v.push(*ch);
                            i += 1
                        }
                    }
                }
                out.push(Tok::Str(v));
            }
            c if c.is_ascii_alphanumeric() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '-')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                out.push(match word.as_str() {
                    "attributes" => Tok::Attributes,
                    "NOT" => Tok::Not,
                    "AND" => Tok::And,
                    "OR" => Tok::Or,
                    "hasPrefix" => Tok::HasPrefix,
                    _ => Tok::Ident(word),
                });
            }
            other => bail!("unexpected character {other:?} in filter"),
        }
    }
    Ok(out)
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Eq(String, String),
    Exists(String),
    HasPrefix(String, String),
    Not(Box<Filter>),
    And(Vec<Filter>),
    Or(Vec<Filter>),
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn expect(&mut self, t: Tok) -> Result<()> {
        match self.next() {
            Some(got) if got == t => Ok(()),
            got => bail!("expected {t:?}, found {got:?}"),
        }
    }
    fn expr(&mut self) -> Result<Filter> {
        let first = self.unary()?;
        let op = match self.peek() {
            Some(Tok::And) => Tok::And,
            Some(Tok::Or) => Tok::Or,
            _ => return Ok(first),
        };
        let mut terms = vec![first];
        while let Some(t) = self.peek() {
            if *t == op {
                self.next();
                terms.push(self.unary()?);
            } else if matches!(t, Tok::And | Tok::Or) {
                bail!("AND and OR cannot be mixed without parentheses");
            } else {
                break;
            }
        }
        Ok(if op == Tok::And {
            Filter::And(terms)
        } else {
            Filter::Or(terms)
        })
    }
    fn unary(&mut self) -> Result<Filter> {
        match self.peek() {
            Some(Tok::Not) => {
                self.next();
                Ok(Filter::Not(Box::new(self.unary()?)))
            }
            Some(Tok::LParen) => {
                self.next();
                let e = self.expr()?;
                self.expect(Tok::RParen)?;
                Ok(e)
            }
            Some(Tok::HasPrefix) => {
                self.next();
                self.expect(Tok::LParen)?;
                self.expect(Tok::Attributes)?;
                self.expect(Tok::Dot)?;
                let key = self.key()?;
                self.expect(Tok::Comma)?;
                let Some(Tok::Str(p)) = self.next() else {
                    bail!("hasPrefix needs a string")
                };
                self.expect(Tok::RParen)?;
                Ok(Filter::HasPrefix(key, p))
            }
            Some(Tok::Attributes) => {
                self.next();
                match self.next() {
                    Some(Tok::Colon) => Ok(Filter::Exists(self.key()?)),
                    Some(Tok::Dot) => {
                        let key = self.key()?;
                        let negate = match self.next() {
                            Some(Tok::Eq) => false,
                            Some(Tok::Ne) => true,
                            t => bail!("expected = or != after attributes.{key}, found {t:?}"),
                        };
                        let Some(Tok::Str(v)) = self.next() else {
                            bail!("values must be string literals")
                        };
                        let eq = Filter::Eq(key, v);
                        Ok(if negate {
                            Filter::Not(Box::new(eq))
                        } else {
                            eq
                        })
                    }
                    t => bail!("expected . or : after attributes, found {t:?}"),
                }
            }
            t => bail!("unexpected {t:?}"),
        }
    }
    fn key(&mut self) -> Result<String> {
        match self.next() {
            Some(Tok::Ident(k)) | Some(Tok::Str(k)) => Ok(k),
            t => bail!("expected an attribute key, found {t:?}"),
        }
    }
}

impl Filter {
    pub fn parse(s: &str) -> Result<Self> {
        if s.len() > 256 {
            bail!("filter is {} bytes; Pub/Sub allows 256", s.len());
        }
        let mut p = Parser {
            toks: lex(s)?,
            pos: 0,
        };
        let f = p.expr()?;
        if p.pos != p.toks.len() {
            bail!("trailing input in filter at token {}", p.pos);
        }
        Ok(f)
    }

    pub fn matches(&self, attributes: &BTreeMap<String, String>) -> bool {
        match self {
            Filter::Eq(k, v) => attributes.get(k) == Some(v),
            Filter::Exists(k) => attributes.contains_key(k),
            Filter::HasPrefix(k, p) => attributes.get(k).is_some_and(|v| v.starts_with(p.as_str())),
            Filter::Not(f) => !f.matches(attributes),
            Filter::And(fs) => fs.iter().all(|f| f.matches(attributes)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(attributes)),
        }
    }
}

/// The filters of `terraform/routing.json`, by service name.
pub fn routing() -> Result<BTreeMap<String, String>> {
    let path = crate::emulators::repo_root().join("terraform/routing.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    let mut out = BTreeMap::new();
    for (service, entry) in v.as_object().into_iter().flatten() {
        let Some(f) = entry["filter"].as_str() else {
            bail!("{service}: no filter in {}", path.display())
        };
        out.insert(service.clone(), f.to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn evaluates_the_supported_syntax() {
        let a = attrs(&[("event.hasPrivateMetadata", "true"), ("kind", "keep")]);
        for (f, want) in [
            (r#"attributes."event.hasPrivateMetadata" = "true""#, true),
            (r#"attributes.kind = "keep""#, true),
            (r#"attributes.kind != "keep""#, false),
            (r#"attributes.missing != "x""#, true),
            (r#"attributes.missing = "x""#, false),
            (r#"attributes:kind"#, true),
            (r#"attributes:"missing""#, false),
            (r#"NOT attributes:missing"#, true),
            (r#"-attributes:missing"#, true),
            (r#"attributes:kind AND attributes:missing"#, false),
            (r#"attributes:kind OR attributes:missing"#, true),
            (
                r#"(attributes:kind OR attributes:missing) AND NOT attributes.kind = "drop""#,
                true,
            ),
            (r#"hasPrefix(attributes.kind, "ke")"#, true),
        ] {
            assert_eq!(Filter::parse(f).unwrap().matches(&a), want, "{f}");
        }
        for bad in [
            r#"attributes:a AND attributes:b OR attributes:c"#,
            r#"attributes.a = b"#,
            r#"attributes.a == "b""#,
            r#"this is not valid (("#,
        ] {
            assert!(Filter::parse(bad).is_err(), "{bad}");
        }
    }
}
