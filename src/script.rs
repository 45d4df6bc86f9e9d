//! Shell scripts built from words, never from formatted strings.
//!
//! A step's commands run on a host as one `sh` script (one SSH round trip). Every word is
//! quoted for POSIX `sh` when it is rendered, so no inventory value can change what a
//! command means, whatever characters it holds.

use std::fmt;

use serde::{Serialize, Serializer};

/// One word of a command: its text is passed to the program as exactly one argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word(String);

impl<T: Into<String>> From<T> for Word {
    fn from(s: T) -> Self {
        Word(s.into())
    }
}

/// Quote `s` for POSIX sh: bare when it only holds characters the shell never interprets,
/// single-quoted otherwise (a `'` inside becomes `'\''`).
pub fn quote(s: &str) -> String {
    let bare = !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"@%+=:,./_-".contains(&b))
        && !s.starts_with('=');
    if bare { s.to_string() } else { format!("'{}'", s.replace('\'', r"'\''")) }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    /// A simple command: program and arguments.
    Command(Vec<Word>),
    /// `cmd > file` (file replaced).
    Redirect(Vec<Word>, Word),
    /// `trap 'rm -f -- file' EXIT`: the file goes when the script ends, however it ends.
    RemoveOnExit(Word),
}

/// A script of commands run in order, stopping at the first failure (`set -eu`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Script {
    lines: Vec<Line>,
}

fn words<I, W>(args: I) -> Vec<Word>
where
    I: IntoIterator<Item = W>,
    W: Into<Word>,
{
    args.into_iter().map(Into::into).collect()
}

impl Script {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cmd<I, W>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = W>,
        W: Into<Word>,
    {
        self.lines.push(Line::Command(words(args)));
        self
    }

    pub fn redirect<I, W>(mut self, args: I, file: impl Into<Word>) -> Self
    where
        I: IntoIterator<Item = W>,
        W: Into<Word>,
    {
        self.lines.push(Line::Redirect(words(args), file.into()));
        self
    }

    /// Remove `path` when the script ends, whether it succeeds or fails: for files that hold
    /// secrets for one command.
    pub fn remove_on_exit(mut self, path: impl Into<Word>) -> Self {
        self.lines.push(Line::RemoveOnExit(path.into()));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The commands, one per line, as a reader sees them (no `set -eu` prelude).
    pub fn commands(&self) -> Vec<String> {
        // A shell has one EXIT trap: each sets it to remove every file named so far.
        let mut removed: Vec<String> = Vec::new();
        let mut out = Vec::with_capacity(self.lines.len());
        for line in &self.lines {
            match line {
                Line::Command(ws) => out.push(join(ws)),
                Line::Redirect(ws, file) => out.push(format!("{} > {}", join(ws), quote(&file.0))),
                Line::RemoveOnExit(file) => {
                    removed.push(quote(&file.0));
                    out.push(format!("trap {} EXIT", quote(&format!("rm -f -- {}", removed.join(" ")))));
                    out.push(EXIT_ON_SIGNAL.to_string());
                }
            }
        }
        out
    }

    /// The full script a host runs.
    pub fn to_shell(&self) -> String {
        // No pipelines: Debian's sh (dash) has no `pipefail`, so a failing first command
        // would go unnoticed; and `set -o pipefail` itself makes dash exit.
        let mut out = String::from("set -eu\n");
        for line in self.commands() {
            out.push_str(&line);
            out.push('\n');
        }
        out
    }
}

/// The words of one line as [`Script::commands`] renders a command: the inverse of [`quote`]
/// for its own output (bare words and single-quoted ones with `'\''` inside; a lone `>` is a
/// word of its own). None for a line it did not render (shell syntax).
pub fn parse_words(line: &str) -> Option<Vec<String>> {
    match leading_words(line) {
        (words, "") => Some(words),
        _ => None,
    }
}

/// The words at the start of `line`, up to the first shell syntax outside quotes (`||`, `{`,
/// `;`, ...), and what is left from there.
pub fn leading_words(line: &str) -> (Vec<String>, &str) {
    let mut words = Vec::new();
    let mut rest = line;
    loop {
        rest = rest.trim_start_matches(' ');
        if rest.is_empty() {
            return (words, rest);
        }
        if let Some(after) = rest.strip_prefix("> ") {
            words.push(">".into());
            rest = after;
            continue;
        }
        let mut word = String::new();
        let mut chars = rest.char_indices().peekable();
        let mut end = rest.len();
        let mut took_any = false;
        while let Some(&(i, c)) = chars.peek() {
            match c {
                ' ' => {
                    end = i;
                    break;
                }
                '\'' => {
                    chars.next();
                    let mut closed = false;
                    for (_, c) in chars.by_ref() {
                        if c == '\'' {
                            closed = true;
                            break;
                        }
                        word.push(c);
                    }
                    if !closed {
                        return (words, rest);
                    }
                    took_any = true;
                    // `'\''`: a quote inside a quoted word.
                    if let Some(&(_, '\\')) = chars.peek() {
                        chars.next();
                        match chars.next() {
                            Some((_, '\'')) => word.push('\''),
                            _ => return (words, rest),
                        }
                    }
                }
                c if c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c) => {
                    word.push(c);
                    took_any = true;
                    chars.next();
                }
                _ => return (words, rest),
            }
        }
        if !took_any {
            return (words, rest);
        }
        words.push(word);
        rest = &rest[end..];
    }
}

/// A script's text split into its commands: at newlines outside quotes (a quoted word may hold
/// newlines of its own).
pub fn top_level_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if !quoted => escaped = true,
            '\'' => quoted = !quoted,
            '\n' if !quoted => {
                lines.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

impl Script {
    /// The words of the script's command, when it is exactly one command.
    pub fn single_command(&self) -> Option<Vec<String>> {
        match self.lines.as_slice() {
            [Line::Command(ws)] => Some(ws.iter().map(|w| w.0.clone()).collect()),
            _ => None,
        }
    }
}

fn join(ws: &[Word]) -> String {
    ws.iter().map(|w| quote(&w.0)).collect::<Vec<_>>().join(" ")
}

impl fmt::Display for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.commands().join("\n"))
    }
}

impl Serialize for Script {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.commands().serialize(s)
    }
}

/// What coreutils' `timeout` exits with when it stopped the command.
pub const TIMEOUT_EXIT_CODE: i32 = 124;

/// How long the remote `timeout -k` waits between TERM and KILL.
pub const REMOTE_KILL_GRACE_SECS: u64 = 10;

/// A command (its words) that the host itself stops after `limit`: coreutils' `timeout` sends
/// TERM to its process group, KILL 10 s later, and exits 124. Merely no longer waiting for it
/// locally would leave it running there.
pub fn time_limited(words: Vec<&str>, limit: Option<crate::duration::Duration>) -> Script {
    match limit {
        Some(limit) => {
            let (grace, seconds) = (REMOTE_KILL_GRACE_SECS.to_string(), limit.seconds.to_string());
            Script::new().cmd(["timeout", "-k", grace.as_str(), seconds.as_str()].into_iter().chain(words))
        }
        None => Script::new().cmd(words),
    }
}

/// A script the host stops after `limit`, as [`time_limited`] does a command. Its own `set -eu`
/// and traps hold inside; a script that must clean up when stopped traps TERM (see
/// [`EXIT_ON_SIGNAL`]).
pub fn time_limited_script(script: &Script, limit: crate::duration::Duration) -> Script {
    time_limited(vec!["sh", "-c", &script.to_shell()], Some(limit))
}

/// Where a run's commands record their sessions on a host (`/run`: emptied at boot, with the
/// processes it names). A login that cannot write there (no root, no sudo) records them under
/// its home directory instead.
pub const RUN_SESSIONS_DIR: &str = "/run/kubewright";

/// The environment variable naming the run a command belongs to, in each command's
/// environment on the host: how [`stop_run_commands`] tells the run's sessions from another's
/// that took a recorded number since.
pub const RUN_MARK: &str = "KUBEWRIGHT_RUN";

/// Both scripts below find the run's directory the same way: `$1` is the run id.
const RUN_DIR: &str = r#"run=$1
d=$RUN_SESSIONS_DIR/$run
if ! mkdir -p -m 0700 "$d" 2>/dev/null; then
  d=$HOME/.kubewright/run/$run
  if ! mkdir -p -m 0700 "$d"; then
    echo "cannot make $d, where kubewright records the session of each command it runs" >&2
    exit 125
  fi
fi
"#;

/// Shell functions over the sessions recorded in `$d` for run `$run`: `look` adds those
/// recorded since it last looked to `$sessions` (and lists them in `$fresh`); `members LIST`
/// sets `$pids` to the processes of the sessions in LIST.
const SESSIONS: &str = r#"sessions= fresh=
look() {
  fresh=
  for f in "$d"/cmd.*; do
    [ -f "$f" ] || continue
    g=$(cat "$f" 2>/dev/null) || continue
    case "$g" in ''|*[!0-9]*) continue ;; esac
    case " $sessions " in *" $g "*) continue ;; esac
    if [ -r "/proc/$g/environ" ] && ! grep -qxz "$RUN_MARK=$run" "/proc/$g/environ"; then continue; fi
    sessions="$sessions $g" fresh="$fresh $g"
  done
}
# From /proc/PID/stat: the session is its 6th field, the 4th after the command name (the
# fields after that are numbers and a state letter: nothing a glob expands).
members() {
  pids= of=$1
  for p in /proc/[0-9]*; do
    { read -r stat < "$p/stat"; } 2>/dev/null || continue
    set -- ${stat##*) }
    for s in $of; do
      if [ "${4:-}" = "$s" ]; then pids="$pids ${p#/proc/}"; fi
    done
  done
}
"#;

/// `script` in a session of its own on the host (`setsid`), the session recorded under
/// [`RUN_SESSIONS_DIR`]`/RUN` while it runs, so that an aborted run can stop it there
/// ([`stop_run_commands`]) instead of leaving it running behind a released lock. Standard input
/// still reaches it. A command of a run already stopped on the host does not start; a host
/// without `setsid` (util-linux) runs nothing, rather than something no stop could reach.
pub fn in_own_session(script: &Script, run_id: &str) -> Script {
    const WRAP: &str = r#"shift
if [ -e "$d/stopped" ]; then echo "run $run was stopped on this host: this command did not start" >&2; exit 143; fi
if ! command -v setsid >/dev/null 2>&1; then
  echo "setsid is not installed (package util-linux): kubewright runs each command in a session of its own, so that a stopped run can stop it" >&2
  exit 127
fi
f="$d/cmd.$$"
exec 3<&0
setsid -w env "$RUN_MARK=$run" sh -c 'echo $$ > "$0"; exec "$@"' "$f" "$@" 0<&3 3<&- &
pid=$!
exec 3<&-
wait "$pid"
rc=$?
rm -f "$f"
exit "$rc""#;
    let shell = script.to_shell();
    let wrap = format!("{}{RUN_DIR}{WRAP}", settings());
    Script::new().cmd(["sh", "-c", wrap.as_str(), "sh", run_id, "sh", "-c", shell.as_str()])
}

/// Stops every command run `run_id` still has on the host: TERM to every process of each
/// recorded session (only if its leader, when still there, carries the run's mark), KILL after
/// `grace_s` seconds, and waits until none is left. Exits 1 naming the processes still there.
/// The run is marked stopped on the host first: a command whose start crossed the stop does
/// not start, or, recorded a moment later, is found by the next look a second on.
///
/// The whole session, not the leader's process group: `timeout` (every command's time limit)
/// puts itself and the command in a process group of its own, so a signal to the leader's group
/// would end the shell and leave kubeadm running under its `timeout`.
pub fn stop_run_commands(run_id: &str, grace_s: u64) -> Script {
    const STOP: &str = r#"grace=$2
: > "$d/stopped"
# TERM to each session as it is found, looking again each second (at least once) until none
# is left or the grace is over; then KILL.
i=0
while :; do
  look
  members "$fresh"
  if [ -n "$pids" ]; then kill -TERM $pids 2>/dev/null || true; fi
  members "$sessions"
  if [ -z "$pids" ] && [ "$i" -ge 1 ]; then break; fi
  if [ "$i" -ge "$grace" ]; then break; fi
  sleep 1
  i=$((i + 1))
done
if [ -n "$pids" ]; then kill -KILL $pids 2>/dev/null || true; sleep 1; members "$sessions"; fi
if [ -n "$pids" ]; then echo "process(es)$pids of run $run are still there" >&2; exit 1; fi"#;
    let stop = format!("{}{RUN_DIR}{SESSIONS}{STOP}", settings());
    Script::new().cmd(["sh", "-c", stop.as_str(), "sh", run_id, &grace_s.to_string()])
}

/// Lists, one per line as `PID COMMAND LINE`, the commands run `run_id` still has on the host:
/// of each session's processes, those that started none of the others (the command itself, not
/// the shells and `timeout` around it). Nothing when it never ran one here. Changes nothing.
pub fn run_commands_left(run_id: &str) -> Script {
    const LIST: &str = r#"run=$1
d=$RUN_SESSIONS_DIR/$run
if [ ! -d "$d" ]; then d=$HOME/.kubewright/run/$run; fi
if [ ! -d "$d" ]; then exit 0; fi
"#;
    const PRINT: &str = r#"look
members "$sessions"
parents=
for p in $pids; do
  { read -r stat < "/proc/$p/stat"; } 2>/dev/null || continue
  set -- ${stat##*) }
  parents="$parents $2"
done
for p in $pids; do
  case " $parents " in *" $p "*) continue ;; esac
  line=$(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | cut -c1-200) || continue
  echo "$p $line"
done"#;
    let list = format!("{}{LIST}{SESSIONS}{PRINT}", settings());
    Script::new().cmd(["sh", "-c", list.as_str(), "sh", run_id])
}

/// The constants the run-session scripts share, as shell assignments.
fn settings() -> String {
    format!("RUN_SESSIONS_DIR={}\nRUN_MARK={RUN_MARK}\n", quote(RUN_SESSIONS_DIR))
}

/// The line a script with an EXIT trap needs for that trap to run when the script is stopped:
/// dash ends on an untrapped TERM, HUP or INT without running the EXIT trap.
pub const EXIT_ON_SIGNAL: &str = "trap 'exit 143' HUP INT TERM";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_needs_it() {
        assert_eq!(quote("kubeadm"), "kubeadm");
        assert_eq!(quote("kubeadm=1.31.4-1.1"), "kubeadm=1.31.4-1.1");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$(reboot)"), "'$(reboot)'");
        assert_eq!(quote("x;rm -rf /"), "'x;rm -rf /'");
        assert_eq!(quote("*"), "'*'");
        assert_eq!(quote("~root"), "'~root'");
    }

    #[test]
    fn hostile_words_stay_one_argument() {
        let s = Script::new().cmd(["echo", "a'b; reboot", "$(id)"]);
        assert_eq!(s.commands(), vec![r"echo 'a'\''b; reboot' '$(id)'"]);
    }

    #[test]
    fn rendered_words_parse_back() {
        for words in
            [vec!["echo", "a'b; reboot", "$(id)"], vec!["sh", "-c", "set -eu\nx 'y'\n", "sh", ""], vec!["it's", "'"]]
        {
            let line = Script::new().cmd(words.clone()).commands().remove(0);
            assert_eq!(parse_words(&line), Some(words.iter().map(|w| w.to_string()).collect()), "{line}");
        }
        assert_eq!(parse_words("a > b"), Some(vec!["a".into(), ">".into(), "b".into()]));
        assert_eq!(parse_words("a || b"), None);
        assert_eq!(
            leading_words("sh -euc 'x y' || { exit; }"),
            (vec!["sh".into(), "-euc".into(), "x y".into()], "|| { exit; }")
        );
        let script = Script::new().cmd(["sh", "-c", "a\nb"]).cmd(["echo", "two"]).to_shell();
        assert_eq!(top_level_lines(&script), ["set -eu", "sh -c 'a\nb'", "echo two"]);
    }

    #[test]
    fn renders_redirects() {
        let s = Script::new().redirect(["echo", "1"], "/proc/sys/net/ipv4/ip_forward");
        assert_eq!(s.to_shell(), "set -eu\necho 1 > /proc/sys/net/ipv4/ip_forward\n");
    }

    #[test]
    fn a_time_limit_wraps_the_words_in_the_hosts_timeout() {
        let limited =
            time_limited(vec!["sh", "-c", "sleep 9; echo 'done'"], Some(crate::duration::Duration::from_secs(90)));
        assert_eq!(limited.commands(), ["timeout -k 10 90 sh -c 'sleep 9; echo '\\''done'\\'''"]);
        assert_eq!(time_limited(vec!["true"], None).commands(), ["true"]);
    }
}
