//! Ansible's INI inventory format, read as Ansible's `ini` plugin reads it
//! (`lib/ansible/plugins/inventory/ini.py`, ansible-core 2.19):
//!
//! - lines before any `[section]` are hosts of `ungrouped`; `[group]`, `[group:vars]`,
//!   `[group:children]` (a `[group:vars]` or a child must be declared somewhere in the file);
//! - a line whose first character is `#` or `;` is a comment; on a host line `#` starts a
//!   comment anywhere outside quotes (shell-like words: `x=a#b` is `x=a`), `;` does not; a
//!   `:vars` line is `key=value` with everything after the first `=` the value;
//! - host patterns: `name:port`, ranges `node[01:20]` (leading zeros kept), `[a:c]`, a stride
//!   `[1:10:2]`, several ranges in one name;
//! - values are Python literals when they read as one (`2222` a number, `True` a boolean,
//!   `"{'a': 1}"` a mapping, `'x'` a string), else the text as written (`true`, `1.31.4`).

use serde_json::{Number, Value};

use super::KubesprayError;
use super::source::{Source, Vars};

/// More hosts than this from one pattern is a typo (`[1:100000]`), not a cluster.
const MAX_HOSTS_PER_PATTERN: usize = 10_000;

/// Groups, hosts and variables of an INI inventory.
pub fn parse(path: &str, text: &str) -> Result<Source, KubesprayError> {
    let mut source = Source::default();
    // Ansible's inventory starts with these two.
    source.add_group("all");
    source.add_group("ungrouped");
    let mut group = "ungrouped".to_string();
    let mut state = "hosts";
    // Groups named in [x:vars] or as a child before being declared: (line, what).
    let mut pending: Vec<(String, usize, &'static str)> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line_no = n + 1;
        let err = |message: String, help: &str| KubesprayError::new(path, Some(line_no), message, help);
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some((name, kind)) = section(line) {
            let kind = match kind {
                None | Some("hosts") => "hosts",
                Some("vars") => "vars",
                Some("children") => "children",
                Some(other) => {
                    return Err(err(
                        format!("section [{name}:{other}] has an unknown type `{other}`"),
                        "use [group], [group:vars] or [group:children]",
                    ));
                }
            };
            let declared = source.groups.contains_key(name) && !pending.iter().any(|(g, _, _)| g == name);
            source.add_group(name);
            if kind == "vars" {
                if !declared && !pending.iter().any(|(g, _, _)| g == name) {
                    pending.push((name.to_string(), line_no, "vars"));
                }
            } else {
                pending.retain(|(g, _, _)| g != name);
            }
            group = name.to_string();
            state = kind;
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            return Err(err(
                format!("`{line}` is not a section header"),
                "write [group], [group:vars] or [group:children], with no spaces inside the brackets",
            ));
        }
        match state {
            "hosts" => {
                let words = shell_words(line).map_err(|e| err(e, "close the quote"))?;
                let Some((pattern, rest)) = words.split_first() else { continue };
                let (names, port) = host_pattern(pattern).map_err(|e| {
                    err(e, "write a host name, `name:port`, or a range such as `node[01:20]` or `node[a:c]`")
                })?;
                let mut vars = Vars::new();
                for word in rest {
                    let Some((k, v)) = word.split_once('=') else {
                        return Err(err(
                            format!("`{word}` is not a key=value host variable"),
                            "write host variables as key=value, quoting values with spaces: key='a b'",
                        ));
                    };
                    vars.insert(k.to_string(), python_value(v));
                }
                if let Some(port) = port {
                    vars.insert("ansible_port".into(), Value::from(port));
                }
                for name in names {
                    source.add_host(&name, &group, vars.clone());
                }
            }
            "vars" => {
                let Some((k, v)) = line.split_once('=') else {
                    return Err(err(
                        format!("`{line}` is not key=value"),
                        "write one key=value per line in a :vars section",
                    ));
                };
                if let Some(g) = source.groups.get_mut(&group) {
                    g.vars.insert(k.trim().to_string(), python_value(v.trim()));
                }
            }
            _ => {
                let child = group_name(line).ok_or_else(|| {
                    err(format!("`{line}` is not a group name"), "list one group name per line in a :children section")
                })?;
                let known =
                    source.groups.contains_key(child) && !pending.iter().any(|(g, _, k)| g == child && *k == "vars");
                if !known && !pending.iter().any(|(g, _, _)| g == child) {
                    pending.push((child.to_string(), line_no, "children"));
                }
                source.add_child(&group, child);
            }
        }
    }
    if let Some((name, line, kind)) = pending.into_iter().min_by_key(|(_, line, _)| *line) {
        let (message, help) = if kind == "vars" {
            (
                format!("section [{name}:vars] is for a group declared nowhere"),
                "declare the group with a [group] section",
            )
        } else {
            (
                format!("the group `{name}` is a child of another but declared nowhere"),
                "declare it with a [group] section",
            )
        };
        return Err(KubesprayError::new(path, Some(line), message, help));
    }
    Ok(source)
}

/// `[name]` or `[name:kind]`, with an optional `#` comment after it (Ansible's section regex).
fn section(line: &str) -> Option<(&str, Option<&str>)> {
    let rest = line.strip_prefix('[')?;
    let close = rest.find(']')?;
    let (inside, after) = (&rest[..close], rest[close + 1..].trim_start());
    if !(after.is_empty() || after.starts_with('#')) {
        return None;
    }
    let (name, kind) = match inside.split_once(':') {
        Some((name, kind)) => {
            if kind.is_empty() || !kind.chars().all(|c| c.is_alphanumeric() || c == '_') {
                return None;
            }
            (name, Some(kind))
        }
        None => (inside, None),
    };
    (!name.is_empty() && !name.chars().any(char::is_whitespace)).then_some((name, kind))
}

/// A `:children` line: one group name, optionally followed by a `#` comment.
fn group_name(line: &str) -> Option<&str> {
    let name = line.split('#').next()?.trim();
    (!name.is_empty() && !name.contains([':', ']']) && !name.chars().any(char::is_whitespace)).then_some(name)
}

/// A host line's words as Python's `shlex.split(line, comments=True)` makes them: whitespace
/// separates, `'...'` is literal, `"..."` lets `\"` and `\\` through, a backslash outside quotes
/// escapes the next character, quoted parts join the word around them, `#` outside quotes ends
/// the line.
pub fn shell_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '#' => break,
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("no closing quotation in `{line}`")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(format!("no closing quotation in `{line}`")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(format!("no closing quotation in `{line}`")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err(format!("no escaped character at the end of `{line}`")),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// The host names a pattern stands for, and the port it gives them (`name:2222`).
pub fn host_pattern(pattern: &str) -> Result<(Vec<String>, Option<u16>), String> {
    let (name, port) = split_port(pattern);
    let names = expand_ranges(name)?;
    if names.iter().any(|n| n.trim() == "---") {
        return Err(format!("`{pattern}` is not a host: is this a YAML file?"));
    }
    Ok((names, port))
}

/// `host:22` → (`host`, 22); `[fe80::1]:22` → (`fe80::1`, 22); a bare IPv6 address or a name
/// whose only colons are inside ranges keeps them.
fn split_port(pattern: &str) -> (&str, Option<u16>) {
    if let Some(rest) = pattern.strip_prefix('[')
        && let Some((addr, after)) = rest.split_once(']')
        && addr.contains("::")
    {
        return match after.strip_prefix(':').and_then(|p| p.parse().ok()) {
            Some(port) => (addr, Some(port)),
            None => (pattern, None),
        };
    }
    if let Some((name, port)) = pattern.rsplit_once(':')
        && !port.is_empty()
        && port.chars().all(|c| c.is_ascii_digit())
        && let Ok(port) = port.parse::<u16>()
    {
        let mut depth = 0i32;
        let colon_outside = name.chars().any(|c| {
            match c {
                '[' => depth += 1,
                ']' => depth -= 1,
                _ => {}
            }
            c == ':' && depth == 0
        });
        if !colon_outside && !name.is_empty() {
            return (name, Some(port));
        }
    }
    (pattern, None)
}

const ASCII_LETTERS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Ansible's `expand_hostname_range`: the first `[begin:end]` or `[begin:end:step]` is
/// expanded (inclusive; an empty begin is 0; a begin with leading zeros pads every number to
/// its width, and the end must have that width; letters run through `a..zA..Z`), then the
/// names are expanded again while a `[` is left.
pub fn expand_ranges(name: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    expand_into(name, &mut out)?;
    Ok(out)
}

fn expand_into(name: &str, out: &mut Vec<String>) -> Result<(), String> {
    let Some(open) = name.find('[') else {
        out.push(name.to_string());
        return Ok(());
    };
    let close = match name.find(']') {
        Some(close) if close > open => close,
        _ => return Err(format!("`{name}`: a host range is `[begin:end]`")),
    };
    let (head, range, tail) = (&name[..open], &name[open + 1..close], &name[close + 1..]);
    let bounds: Vec<&str> = range.split(':').collect();
    if bounds.len() != 2 && bounds.len() != 3 {
        return Err(format!("`{name}`: a host range is [begin:end] or [begin:end:step]"));
    }
    let begin = if bounds[0].is_empty() { "0" } else { bounds[0] };
    let end = bounds[1];
    if end.is_empty() {
        return Err(format!("`{name}`: the host range has no end"));
    }
    let step: i64 = match bounds.get(2) {
        None => 1,
        Some(s) => s.trim().parse().map_err(|_| format!("`{name}`: the step `{s}` is not a whole number"))?,
    };
    if step == 0 {
        return Err(format!("`{name}`: the step of a host range cannot be 0"));
    }
    let width = (begin.len() > 1 && begin.starts_with('0')).then_some(begin.len());
    if let Some(w) = width
        && end.len() != w
    {
        return Err(format!("`{name}`: a zero-padded range needs a begin and an end of the same width"));
    }
    let too_many = || format!("`{name}` stands for more than {MAX_HOSTS_PER_PATTERN} hosts");
    let items: Vec<String> = match (ASCII_LETTERS.find(begin), ASCII_LETTERS.find(end)) {
        (Some(b), Some(e)) => {
            if b > e {
                return Err(format!("`{name}`: the range's begin `{begin}` comes after its end `{end}`"));
            }
            // Python's letters[b:e + 1:step]: nothing for a negative step.
            match usize::try_from(step) {
                Ok(step) => ASCII_LETTERS[b..=e].chars().step_by(step).map(String::from).collect(),
                Err(_) => Vec::new(),
            }
        }
        _ => {
            let number = |s: &str| {
                s.trim().parse::<i64>().map_err(|_| format!("`{name}`: `{s}` is neither a number nor a letter"))
            };
            let (b, e) = (number(begin)?, number(end)?);
            // Python's range(b, e + 1, step).
            let mut items = Vec::new();
            let mut i = b;
            while (step > 0 && i <= e) || (step < 0 && i > e.saturating_add(1)) {
                if items.len() >= MAX_HOSTS_PER_PATTERN {
                    return Err(too_many());
                }
                items.push(match width {
                    Some(w) => format!("{:0>w$}", i.to_string()),
                    None => i.to_string(),
                });
                i = i.saturating_add(step);
                if i == i64::MAX || i == i64::MIN {
                    break;
                }
            }
            items
        }
    };
    for item in items {
        expand_into(&format!("{head}{item}{tail}"), out)?;
        if out.len() > MAX_HOSTS_PER_PATTERN {
            return Err(too_many());
        }
    }
    Ok(())
}

/// An INI value as Ansible takes it: a Python literal (`ast.literal_eval`) when it reads as
/// one, else the text itself.
pub fn python_value(text: &str) -> Value {
    let mut p = Literal { s: text.as_bytes(), i: 0, text };
    match p.value(0) {
        Some(v) if p.at_end() => v,
        _ => Value::String(text.to_string()),
    }
}

/// A reader of Python literals: strings, numbers, `True`/`False`/`None`, lists, tuples, sets and
/// dicts, with a `#` comment after them.
struct Literal<'a> {
    s: &'a [u8],
    i: usize,
    text: &'a str,
}

impl Literal<'_> {
    fn skip(&mut self) {
        while let Some(&c) = self.s.get(self.i) {
            if c == b' ' || c == b'\t' {
                self.i += 1;
            } else if c == b'#' {
                self.i = self.s.len();
            } else {
                break;
            }
        }
    }

    fn at_end(&mut self) -> bool {
        self.skip();
        self.i >= self.s.len()
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Option<Value> {
        if depth > 32 {
            return None;
        }
        self.skip();
        let c = *self.s.get(self.i)?;
        match c {
            b'\'' | b'"' => {
                let mut text = self.string()?;
                // Adjacent strings join: 'a' "b" is 'ab'.
                loop {
                    self.skip();
                    match self.s.get(self.i) {
                        Some(b'\'' | b'"') => text.push_str(&self.string()?),
                        _ => break,
                    }
                }
                Some(Value::String(text))
            }
            b'[' => {
                self.i += 1;
                Some(Value::Array(self.items(b']', depth)?))
            }
            b'(' => {
                self.i += 1;
                let start = self.i;
                let items = self.items(b')', depth)?;
                // `(1)` is 1, `(1,)` a tuple.
                let inner = &self.text[start..self.i - 1];
                if items.len() == 1 && !inner.trim_end().ends_with(',') {
                    return items.into_iter().next();
                }
                Some(Value::Array(items))
            }
            b'{' => {
                self.i += 1;
                self.dict_or_set(depth)
            }
            b'-' | b'+' => {
                self.i += 1;
                let v = self.value(depth + 1)?;
                let n = v.as_number()?.clone();
                if c == b'+' {
                    return Some(Value::Number(n));
                }
                if let Some(i) = n.as_i64() {
                    return i.checked_neg().map(Value::from);
                }
                if let Some(u) = n.as_u64() {
                    return i64::try_from(u).ok().and_then(i64::checked_neg).map(Value::from);
                }
                n.as_f64().and_then(|f| Number::from_f64(-f)).map(Value::Number)
            }
            c if c.is_ascii_digit() || c == b'.' => self.number(),
            _ => {
                let start = self.i;
                while self.s.get(self.i).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_') {
                    self.i += 1;
                }
                match &self.text[start..self.i] {
                    "True" => Some(Value::Bool(true)),
                    "False" => Some(Value::Bool(false)),
                    "None" => Some(Value::Null),
                    _ => None,
                }
            }
        }
    }

    fn items(&mut self, close: u8, depth: usize) -> Option<Vec<Value>> {
        let mut items = Vec::new();
        loop {
            if self.eat(close) {
                return Some(items);
            }
            items.push(self.value(depth + 1)?);
            if self.eat(close) {
                return Some(items);
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    fn dict_or_set(&mut self, depth: usize) -> Option<Value> {
        let mut map = serde_json::Map::new();
        let mut set = Vec::new();
        loop {
            if self.eat(b'}') {
                break;
            }
            let key = self.value(depth + 1)?;
            if self.eat(b':') {
                if !set.is_empty() {
                    return None;
                }
                let value = self.value(depth + 1)?;
                let key = match key {
                    Value::String(s) => s,
                    Value::Bool(b) => b.to_string(),
                    Value::Null => "null".into(),
                    Value::Number(n) => n.to_string(),
                    _ => return None,
                };
                map.insert(key, value);
            } else {
                if !map.is_empty() {
                    return None;
                }
                set.push(key);
            }
            if self.eat(b'}') {
                break;
            }
            if !self.eat(b',') {
                return None;
            }
        }
        // `{}` is an empty dict; a set becomes a list, as Ansible's JSON shows it.
        Some(if set.is_empty() { Value::Object(map) } else { Value::Array(set) })
    }

    fn string(&mut self) -> Option<String> {
        let quote = *self.s.get(self.i)?;
        let triple = self.s.get(self.i..self.i + 3) == Some(&[quote, quote, quote][..]);
        self.i += if triple { 3 } else { 1 };
        let mut out = String::new();
        let rest = &self.text[self.i..];
        let mut chars = rest.char_indices();
        while let Some((at, c)) = chars.next() {
            if c == quote as char {
                if !triple {
                    self.i += at + 1;
                    return Some(out);
                }
                if rest[at..].starts_with(&format!("{0}{0}{0}", quote as char)) {
                    self.i += at + 3;
                    return Some(out);
                }
                out.push(c);
                continue;
            }
            if c == '\\' {
                let (_, e) = chars.next()?;
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    '0' => out.push('\0'),
                    '\\' | '\'' | '"' => out.push(e),
                    'x' => {
                        let hex: String = (0..2).filter_map(|_| chars.next().map(|(_, c)| c)).collect();
                        out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                    }
                    other => {
                        out.push('\\');
                        out.push(other);
                    }
                }
                continue;
            }
            out.push(c);
        }
        None
    }

    fn number(&mut self) -> Option<Value> {
        let start = self.i;
        while self.s.get(self.i).is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_')) {
            self.i += 1;
        }
        // An exponent's sign: 1e-3.
        if matches!(self.s.get(self.i), Some(b'-' | b'+'))
            && matches!(self.s.get(self.i - 1), Some(b'e' | b'E'))
            && !self.text[start..self.i].starts_with("0x")
        {
            self.i += 1;
            while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
                self.i += 1;
            }
        }
        let word = &self.text[start..self.i];
        if word.starts_with('_') || word.ends_with('_') || word.contains("__") {
            return None;
        }
        let digits = word.replace('_', "");
        let radix = |prefix: [&str; 2], radix: u32| {
            prefix
                .iter()
                .find_map(|p| digits.strip_prefix(p))
                .and_then(|d| i64::from_str_radix(d, radix).ok())
                .map(Value::from)
        };
        if let Some(v) = radix(["0x", "0X"], 16).or_else(|| radix(["0o", "0O"], 8)).or_else(|| radix(["0b", "0B"], 2)) {
            return Some(v);
        }
        if digits.chars().all(|c| c.is_ascii_digit()) {
            // Python 3 refuses leading zeros (`0012`), except in 0 itself (`000`).
            if digits.len() > 1 && digits.starts_with('0') && !digits.chars().all(|c| c == '0') {
                return None;
            }
            return digits.parse::<i64>().ok().map(Value::from).or_else(|| digits.parse::<u64>().ok().map(Value::from));
        }
        if digits.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'))
            && digits.chars().any(|c| c.is_ascii_digit())
        {
            return digits.parse::<f64>().ok().and_then(Number::from_f64).map(Value::Number);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ranges_expand_as_ansible_does() {
        let r = |p: &str| expand_ranges(p).unwrap();
        assert_eq!(
            r("worker[01:03].example.com"),
            ["worker01.example.com", "worker02.example.com", "worker03.example.com"]
        );
        assert_eq!(r("n[1:3]"), ["n1", "n2", "n3"], "inclusive");
        assert_eq!(r("n[:2]"), ["n0", "n1", "n2"], "an empty begin is 0");
        assert_eq!(r("n[1:10:4]"), ["n1", "n5", "n9"], "a stride");
        assert_eq!(r("x[a:c]"), ["xa", "xb", "xc"]);
        assert_eq!(r("x[y:B]"), ["xy", "xz", "xA", "xB"], "letters run a..z then A..Z");
        assert_eq!(r("x[a:e:2]"), ["xa", "xc", "xe"]);
        assert_eq!(r("r[1:2]-n[a:b]"), ["r1-na", "r1-nb", "r2-na", "r2-nb"], "several ranges");
        assert!(r("n[3:1]").is_empty(), "a backwards number range is empty, as Python's range()");
        assert_eq!(r("plain"), ["plain"]);
    }

    #[test]
    fn bad_ranges_are_errors() {
        for (p, says) in [
            ("n[01:3]", "same width"),
            ("n[1]", "[begin:end]"),
            ("n[1:]", "no end"),
            ("n[1:3:0]", "cannot be 0"),
            ("n[1:3:x]", "not a whole number"),
            ("n[c:a]", "comes after"),
            ("n[1:b]", "neither a number"),
            ("n[1:3", "[begin:end]"),
            ("n[0:99999]", "more than 10000"),
        ] {
            let e = expand_ranges(p).unwrap_err();
            assert!(e.contains(says), "{p}: {e}");
        }
    }

    #[test]
    fn ports_split_off_names_and_ipv4_but_not_bare_ipv6() {
        assert_eq!(host_pattern("web[1:2]:2200").unwrap(), (vec!["web1".into(), "web2".into()], Some(2200)));
        assert_eq!(host_pattern("10.0.0.1:22").unwrap(), (vec!["10.0.0.1".into()], Some(22)));
        assert_eq!(host_pattern("[fe80::1]:22").unwrap(), (vec!["fe80::1".into()], Some(22)));
        assert_eq!(host_pattern("fe80::1").unwrap(), (vec!["fe80::1".into()], None));
    }

    #[test]
    fn values_are_python_literals_or_text() {
        let v = python_value;
        assert_eq!(v("2222"), json!(2222));
        assert_eq!(v("0012"), json!("0012"), "leading zeros are not a Python int");
        assert_eq!(v("1.5"), json!(1.5));
        assert_eq!(v("-3"), json!(-3));
        assert_eq!(v("0x10"), json!(16));
        assert_eq!(v("True"), json!(true));
        assert_eq!(v("true"), json!("true"), "only Python's spelling is a boolean");
        assert_eq!(v("None"), json!(null));
        assert_eq!(v("1.31.4"), json!("1.31.4"));
        assert_eq!(v("'03'"), json!("03"));
        assert_eq!(v("'a' \"b\""), json!("ab"));
        assert_eq!(v("[1, 'a']"), json!([1, "a"]));
        assert_eq!(v("(1, 2)"), json!([1, 2]));
        assert_eq!(v("{'address': '1.2.3.4', 'port': 8443}"), json!({"address": "1.2.3.4", "port": 8443}));
        assert_eq!(v("23 # a comment"), json!(23), "a comment after a literal goes");
        assert_eq!(v("hello # not a comment"), json!("hello # not a comment"), "text keeps it");
        assert_eq!(v("'x' ; semi"), json!("'x' ; semi"));
        assert_eq!(v(""), json!(""));
        assert_eq!(v("{{ kube_version }}"), json!("{{ kube_version }}"));
    }

    #[test]
    fn host_lines_split_like_shlex_with_comments() {
        let w = |l: &str| shell_words(l).unwrap();
        assert_eq!(w("h x='a b' y=\"c \\\"d\\\"\""), ["h", "x=a b", "y=c \"d\""]);
        assert_eq!(w("h x=a#b y=c"), ["h", "x=a"], "# ends the line even inside a word");
        assert_eq!(w("h x='a#b'"), ["h", "x=a#b"]);
        assert_eq!(w("h x=a;b"), ["h", "x=a;b"], "; is no comment on a host line");
        assert_eq!(w("h s='it''s' e=a\\ b"), ["h", "s=its", "e=a b"]);
        assert!(shell_words("h x='open").unwrap_err().contains("no closing quotation"));
    }

    #[test]
    fn ungrouped_hosts_vars_children_and_comments() {
        let s = parse(
            "inv.ini",
            "; a comment\nlone ansible_host=10.0.0.9 ansible_port=2222 x='a b'\n\n[kube_node:vars]\nv=23 # c\n\
             [kube_node] # the workers\nw[1:2]\n[k8s_cluster:children]\nkube_node\n",
        )
        .unwrap();
        assert_eq!(s.hosts, ["lone", "w1", "w2"]);
        assert_eq!(s.host_vars["lone"]["ansible_port"], 2222);
        assert_eq!(s.host_vars["lone"]["x"], "a b");
        assert_eq!(s.groups["ungrouped"].hosts, ["lone"]);
        assert_eq!(s.groups["kube_node"].vars["v"], 23, "[g:vars] may come before [g]");
        assert_eq!(s.groups["k8s_cluster"].children, ["kube_node"]);
    }

    #[test]
    fn ini_errors_name_the_line() {
        for (text, line, says) in [
            ("[g]\nh nonsense\n", 2, "not a key=value"),
            ("[g:weird]\n", 1, "unknown type"),
            ("[g x]\n", 1, "not a section header"),
            ("[g:vars]\nx=1\n", 1, "declared nowhere"),
            ("[p:children]\nmissing\n", 2, "declared nowhere"),
            ("[g]\nh x='open\n", 2, "no closing quotation"),
            ("[g:vars]\njustaword\n[g]\n", 2, "not key=value"),
            ("[g]\nn[1:b]\n", 2, "neither a number"),
        ] {
            let e = parse("inv.ini", text).unwrap_err();
            assert_eq!(e.line, Some(line), "{text}: {e}");
            assert!(e.to_string().contains(says), "{text}: {e}");
            assert!(e.to_string().starts_with(&format!("inv.ini:{line}: ")), "{e}");
        }
    }
}
