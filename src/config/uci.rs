//! A parser and an editor for OpenWrt UCI files, as `uci commit` writes
//! them (and as people write them by hand).
//!
//! Grammar handled: `package`, `config <type> ['<name>']`,
//! `option <name> <value>`, `list <name> <value>`, `#` comments, `;` as a
//! statement separator, values single-quoted (no escapes inside),
//! double-quoted (backslash escapes) or bare, and adjacent pieces
//! concatenated — which is how uci writes a quote inside a value:
//! `'it'\''s'`.

use std::fmt;

/// A value of an option: a single `option` or the items of a `list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UciValue {
    Single(String),
    List(Vec<String>),
}

/// One option of a section with the line it was (last) set on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UciOption {
    pub name: String,
    pub value: UciValue,
    pub line: usize,
}

/// One `config` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub stype: String,
    /// `None` for an anonymous section.
    pub name: Option<String>,
    /// 1-based line of the `config` statement.
    pub line: usize,
    pub options: Vec<UciOption>,
}

impl Section {
    pub fn get(&self, name: &str) -> Option<&UciOption> {
        self.options.iter().find(|o| o.name == name)
    }
}

/// A syntax error, with its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UciError {
    pub line: usize,
    pub msg: String,
}

impl fmt::Display for UciError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.msg)
    }
}

/// Split one line into statements of words. Returns the statements with
/// their words unquoted. A `#` outside quotes starts a comment.
fn tokenize(line: &str, lineno: usize) -> Result<Vec<Vec<String>>, UciError> {
    let err = |msg: &str| UciError { line: lineno, msg: msg.to_string() };
    let mut stmts = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => cur.push(ch),
                        None => return Err(err("unterminated single quote")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(ch) => cur.push(ch),
                            None => return Err(err("unterminated double quote")),
                        },
                        Some(ch) => cur.push(ch),
                        None => return Err(err("unterminated double quote")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(ch) = chars.next() {
                    cur.push(ch);
                }
            }
            '#' if !in_word => break,
            ';' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
                if !words.is_empty() {
                    stmts.push(std::mem::take(&mut words));
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    if !words.is_empty() {
        stmts.push(words);
    }
    Ok(stmts)
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Parse a UCI file into its sections.
pub fn parse(text: &str) -> Result<Vec<Section>, UciError> {
    let mut sections: Vec<Section> = Vec::new();
    for (idx, line) in text.lines().enumerate() {
        let lineno = idx + 1;
        for words in tokenize(line, lineno)? {
            let err = |msg: String| UciError { line: lineno, msg };
            match words[0].as_str() {
                "package" => {}
                "config" => {
                    let stype = words.get(1).ok_or_else(|| err("config without a section type".into()))?;
                    if !valid_name(stype) {
                        return Err(err(format!("invalid section type '{stype}'")));
                    }
                    let name = words.get(2).cloned();
                    if let Some(n) = &name {
                        if !valid_name(n) {
                            return Err(err(format!("invalid section name '{n}'")));
                        }
                    }
                    if words.len() > 3 {
                        return Err(err("too many words after config".into()));
                    }
                    sections.push(Section { stype: stype.clone(), name, line: lineno, options: Vec::new() });
                }
                kw @ ("option" | "list") => {
                    let sec = sections
                        .last_mut()
                        .ok_or_else(|| err(format!("{kw} outside of a config section")))?;
                    let name = words.get(1).ok_or_else(|| err(format!("{kw} without a name")))?;
                    if !valid_name(name) {
                        return Err(err(format!("invalid option name '{name}'")));
                    }
                    let value = words.get(2).cloned().unwrap_or_default();
                    if words.len() > 3 {
                        return Err(err(format!("too many values for {kw} '{name}' (quote the value)")));
                    }
                    let pos = sec.options.iter().position(|o| &o.name == name);
                    match (kw, pos) {
                        ("option", Some(i)) => {
                            sec.options[i] = UciOption { name: name.clone(), value: UciValue::Single(value), line: lineno }
                        }
                        ("option", None) => {
                            sec.options.push(UciOption { name: name.clone(), value: UciValue::Single(value), line: lineno })
                        }
                        (_, Some(i)) => {
                            let o = &mut sec.options[i];
                            match &mut o.value {
                                UciValue::List(items) => items.push(value),
                                // uci turns an option into a list when a list item follows.
                                UciValue::Single(s) => o.value = UciValue::List(vec![std::mem::take(s), value]),
                            }
                            o.line = lineno;
                        }
                        (_, None) => {
                            sec.options.push(UciOption { name: name.clone(), value: UciValue::List(vec![value]), line: lineno })
                        }
                    }
                }
                other => return Err(err(format!("unknown keyword '{other}'"))),
            }
        }
    }
    Ok(sections)
}

/// Quote a value the way `uci commit` does.
pub fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "'\\''"))
}

/// Rewrite the options of one section in `text`, keeping every other line
/// (comments, unrelated sections, order) as it is. The section is found by
/// name, or as the first section of type `stype` when it has no name.
/// `None` deletes an option.
pub fn edit_section(
    text: &str,
    stype: &str,
    name: Option<&str>,
    updates: &[(String, Option<UciValue>)],
) -> Result<String, UciError> {
    // Index statements by line: which section each line belongs to and
    // which option it sets. Assumes uci's one statement per line.
    let lines: Vec<&str> = text.lines().collect();
    let mut target: Option<(usize, usize)> = None; // (first line idx, last line idx) of the section
    let mut in_target = false;
    for (idx, line) in lines.iter().enumerate() {
        let stmts = tokenize(line, idx + 1)?;
        for words in &stmts {
            if words[0] == "config" {
                let matches = words.get(1).map(|s| s.as_str()) == Some(stype)
                    && match name {
                        Some(n) => words.get(2).map(|s| s.as_str()) == Some(n),
                        None => true,
                    };
                if in_target {
                    in_target = false;
                }
                if matches && target.is_none() {
                    target = Some((idx, idx));
                    in_target = true;
                }
            } else if in_target {
                if let Some(t) = target.as_mut() {
                    t.1 = idx;
                }
            }
        }
    }
    let mut out: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
    let (first, mut last) = match target {
        Some(t) => t,
        None => {
            // Append a new section.
            if out.last().map(|l| !l.trim().is_empty()).unwrap_or(false) {
                out.push(String::new());
            }
            match name {
                Some(n) => out.push(format!("config {stype} {}", quote(n))),
                None => out.push(format!("config {stype}")),
            }
            let i = out.len() - 1;
            (i, i)
        }
    };
    for (key, value) in updates {
        // Remove the existing statements of this option within the section.
        let mut i = first + 1;
        let mut insert_at = None;
        while i <= last && i < out.len() {
            let stmts = tokenize(&out[i], i + 1)?;
            let hit = stmts
                .iter()
                .any(|w| (w[0] == "option" || w[0] == "list") && w.get(1).map(|s| s.as_str()) == Some(key.as_str()));
            if hit {
                out.remove(i);
                last -= 1;
                insert_at.get_or_insert(i);
            } else {
                i += 1;
            }
        }
        let new_lines: Vec<String> = match value {
            None => Vec::new(),
            Some(UciValue::Single(v)) => vec![format!("\toption {key} {}", quote(v))],
            Some(UciValue::List(items)) => items.iter().map(|v| format!("\tlist {key} {}", quote(v))).collect(),
        };
        let at = insert_at.unwrap_or(last + 1);
        for (k, l) in new_lines.into_iter().enumerate() {
            out.insert(at + k, l);
            last += 1;
        }
    }
    let mut s = out.join("\n");
    s.push('\n');
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exactly what `uci commit` writes (tabs, single quotes, blank line
    /// between sections, `'\''` for a quote).
    const COMMITTED: &str = "\nconfig agent 'agent'\n\toption sn '8CFCA0107D1B'\n\toption broker_host '127.0.0.1'\n\toption password 'it'\\''s secret'\n\tlist watch 'dnsmasq'\n\tlist watch 'uhttpd'\n\nconfig device 'iad1'\n\toption type 'iad'\n\toption enabled '1'\n\nconfig device\n\toption type 's20'\n";

    #[test]
    fn parses_uci_commit_output() {
        let s = parse(COMMITTED).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].stype, "agent");
        assert_eq!(s[0].name.as_deref(), Some("agent"));
        assert_eq!(s[0].line, 2);
        assert_eq!(s[0].get("sn").unwrap().value, UciValue::Single("8CFCA0107D1B".into()));
        assert_eq!(s[0].get("password").unwrap().value, UciValue::Single("it's secret".into()));
        assert_eq!(s[0].get("password").unwrap().line, 5);
        assert_eq!(s[0].get("watch").unwrap().value, UciValue::List(vec!["dnsmasq".into(), "uhttpd".into()]));
        assert_eq!(s[1].name.as_deref(), Some("iad1"));
        assert_eq!(s[2].name, None, "anonymous section");
        assert_eq!(s[2].get("type").unwrap().value, UciValue::Single("s20".into()));
    }

    #[test]
    fn parses_hand_written_forms() {
        let text = "# a comment\npackage dma-agent\nconfig agent agent # trailing\n  option a \"x \\\"y\\\" z\" ; option b bare\n\toption c 'one'\"two\"\n\toption d ''\n\toption e '#not a comment'\n";
        let s = parse(text).unwrap();
        assert_eq!(s.len(), 1);
        let o = |n: &str| match &s[0].get(n).unwrap().value {
            UciValue::Single(v) => v.clone(),
            _ => panic!(),
        };
        assert_eq!(o("a"), "x \"y\" z");
        assert_eq!(o("b"), "bare");
        assert_eq!(o("c"), "onetwo");
        assert_eq!(o("d"), "");
        assert_eq!(o("e"), "#not a comment");
    }

    #[test]
    fn reports_errors_with_lines() {
        assert_eq!(parse("config agent\n\toption x 'open\n").unwrap_err().line, 2);
        assert_eq!(parse("option x 1\n").unwrap_err().line, 1);
        assert_eq!(parse("config agent\nbogus x\n").unwrap_err().msg, "unknown keyword 'bogus'");
        assert!(parse("config agent\n\toption x a b\n").is_err());
        assert!(parse("config 'ag ent'\n").is_err());
    }

    #[test]
    fn edit_keeps_comments_and_other_sections() {
        let text = "# header comment\nconfig agent 'agent'\n\t# broker\n\toption broker_host '127.0.0.1'\n\tlist watch 'a'\n\nconfig device 'x'\n\toption type 'iad'\n";
        let out = edit_section(
            text,
            "agent",
            Some("agent"),
            &[
                ("broker_host".into(), Some(UciValue::Single("host's".into()))),
                ("watch".into(), Some(UciValue::List(vec!["b".into(), "c".into()]))),
                ("sys_interval".into(), Some(UciValue::Single("30".into()))),
            ],
        )
        .unwrap();
        assert!(out.starts_with("# header comment\nconfig agent 'agent'\n\t# broker\n\toption broker_host 'host'\\''s'\n"));
        let s = parse(&out).unwrap();
        assert_eq!(s[0].get("broker_host").unwrap().value, UciValue::Single("host's".into()));
        assert_eq!(s[0].get("watch").unwrap().value, UciValue::List(vec!["b".into(), "c".into()]));
        assert_eq!(s[0].get("sys_interval").unwrap().value, UciValue::Single("30".into()));
        assert_eq!(s[1].get("type").unwrap().value, UciValue::Single("iad".into()));
        assert!(out.ends_with("config device 'x'\n\toption type 'iad'\n"));
        // deleting
        let out2 = edit_section(&out, "agent", None, &[("watch".into(), None)]).unwrap();
        assert!(parse(&out2).unwrap()[0].get("watch").is_none());
        // missing section is appended
        let out3 = edit_section("", "agent", Some("agent"), &[("sn".into(), Some(UciValue::Single("X".into())))]).unwrap();
        assert_eq!(out3, "config agent 'agent'\n\toption sn 'X'\n");
    }
}
