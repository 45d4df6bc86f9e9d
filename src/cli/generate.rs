//! `kubewright generate man DIR`: a manual page for kubewright and for each of its subcommands,
//! made from the same clap `Command` the binary parses with, so `--help` and `man` say the
//! same by construction. Hidden from `--help`: packaging runs it (packaging/build-deb), people
//! read the pages. Shell completions stay `kubewright completions SHELL`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Subcommand};
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

#[derive(Subcommand)]
pub enum GenerateCommand {
    /// Write the manual pages (section 1) of kubewright and of every subcommand into DIR
    #[command(after_help = "\
Example:
  kubewright generate man target/man && man -l target/man/kubewright-apply.1

One page per command, nested ones included (kubewright-certs-renew.1), each naming its parent
under SEE ALSO. The pages are not compressed: packaging/build-deb gzips them.")]
    Man {
        /// The directory to write kubewright.1, kubewright-apply.1, ... into (created if missing)
        dir: PathBuf,
    },
}

pub fn exec(cmd: GenerateCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        GenerateCommand::Man { dir } => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create the manual page directory {}", dir.display()))?;
            for page in man_pages(super::Cli::command()) {
                let path = dir.join(format!("{}.1", page.name));
                std::fs::write(&path, &page.roff).with_context(|| {
                    format!("cannot write the manual page {} (is {} writable?)", path.display(), dir.display())
                })?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One manual page: `name` is the command's display name (`kubewright-certs-renew`), which
/// `man` finds it by.
pub struct Page {
    pub name: String,
    pub roff: String,
}

/// The pages of `root` and of every subcommand it shows in `--help` (hidden ones have none).
pub fn man_pages(root: clap::Command) -> Vec<Page> {
    // `help` is a subcommand of clap's making, with nothing to say that `--help` does not; as
    // clap_mangen's own `generate_to` does, it gets no page and is not listed.
    let mut root = root.disable_help_subcommand(true);
    // Building sets each subcommand's display name (`kubewright-certs-renew`), its usage's
    // name (`kubewright certs renew`) and the global options it inherits.
    root.build();
    let mut pages = Vec::new();
    collect(&root, None, &mut pages);
    pages
}

fn collect(cmd: &clap::Command, parent: Option<&str>, pages: &mut Vec<Page>) {
    let name = display_name(cmd);
    pages.push(Page { roff: page(cmd, parent), name: name.clone() });
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        collect(sub, Some(&name), pages);
    }
}

fn display_name(cmd: &clap::Command) -> String {
    cmd.get_display_name().unwrap_or_else(|| cmd.get_name()).to_string()
}

/// clap_mangen's sections, in a man page's usual order, with the text `--help` prints after the
/// options split up: its headed blocks (`Examples:`, `Exit codes:`) become sections of their
/// own, its other paragraphs join DESCRIPTION (clap_mangen would print it all as one filled
/// paragraph under EXTRA, joining the example lines into one).
fn page(cmd: &clap::Command, parent: Option<&str>) -> String {
    // clap_mangen names the source after the command itself ("renew 0.1.0").
    let man = Man::new(cmd.clone()).source(format!("kubewright {}", env!("CARGO_PKG_VERSION")));
    let after = cmd.get_after_long_help().or_else(|| cmd.get_after_help()).map(|s| after_help(&s.to_string()));
    let after = after.unwrap_or_default();
    // Every render starts with the same preamble (the string apostrophes are written as, so
    // that `'` in an example stays a plain quote): the page has it once, first.
    let preamble = Roff::new().render();
    let mut out = preamble.clone();
    let mut add = |rendered: Vec<u8>| {
        let text = String::from_utf8_lossy(&rendered);
        out.push_str(text.strip_prefix(preamble.as_str()).unwrap_or(&text));
    };
    let section = |part: fn(&Man, &mut dyn std::io::Write) -> std::io::Result<()>| {
        let mut buf = Vec::new();
        // Writing into a Vec cannot fail.
        let _ = part(&man, &mut buf);
        buf
    };
    add(section(Man::render_title));
    // No hyphenation and a ragged right margin: paths, options and host names are what these
    // pages are made of, and a break inside one (/etc/kuber-netes) misleads.
    add(Roff::new().control("nh", []).control("ad", ["l"]).render().into_bytes());
    add(section(Man::render_name_section));
    add(section(Man::render_synopsis_section));
    add(section(Man::render_description_section));
    let mut roff = Roff::new();
    for block in &after.description {
        block.render(&mut roff);
    }
    add(roff.render().into_bytes());
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        add(section(Man::render_options_section));
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        add(section(Man::render_subcommands_section));
    }
    let mut roff = Roff::new();
    for (heading, blocks) in &after.sections {
        roff.control("SH", [heading.as_str()]);
        for block in blocks {
            block.render(&mut roff);
        }
    }
    roff.control("SH", ["SEE ALSO"]);
    match parent {
        Some(parent) => roff.text([bold(parent), roman("(1)")]),
        // The default transport is the system ssh, and ssh_config says how each host is reached.
        None => roff.text([bold("ssh"), roman("(1), "), bold("ssh_config"), roman("(5)")]),
    };
    add(roff.render().into_bytes());
    if cmd.get_version().is_some() {
        add(section(Man::render_version_section));
    }
    out
}

/// A paragraph of filled text, or lines kept as they are (examples, tables).
#[derive(Debug, PartialEq)]
enum Block {
    Text(String),
    Verbatim(Vec<String>),
}

impl Block {
    fn render(&self, roff: &mut Roff) {
        match self {
            Block::Text(text) => {
                roff.control("PP", []);
                roff.text([roman(text.as_str())]);
            }
            Block::Verbatim(lines) => {
                roff.control("PP", []);
                roff.control("RS", ["4"]);
                roff.control("nf", []);
                for line in lines {
                    roff.text([roman(line.as_str())]);
                }
                roff.control("fi", []);
                roff.control("RE", []);
            }
        }
    }
}

/// `--help`'s text after the options, as man page parts.
#[derive(Debug, Default, PartialEq)]
struct AfterHelp {
    /// Paragraphs without a heading: more about what the command does.
    description: Vec<Block>,
    /// `Examples:` and the like with their indented lines, by man page section name.
    sections: Vec<(String, Vec<Block>)>,
}

/// Split `--help`'s after-text (paragraphs separated by blank lines; a paragraph whose first
/// line ends with `:` and is followed by indented lines is a headed block) into man page parts.
fn after_help(text: &str) -> AfterHelp {
    let mut out = AfterHelp::default();
    let lines: Vec<&str> = text.lines().collect();
    for paragraph in lines.split(|l| l.trim().is_empty()).filter(|p| !p.is_empty()) {
        let first = paragraph[0];
        let headed =
            !first.starts_with(' ') && first.ends_with(':') && paragraph.get(1).is_some_and(|l| l.starts_with(' '));
        if headed {
            let title = first.trim_end_matches(':');
            // "Examples (see vagrant/README.md)": the aside becomes the section's first line.
            let (title, aside) = match title.split_once(" (") {
                Some((t, aside)) => (t, Some(aside.trim_end_matches(')'))),
                None => (title, None),
            };
            let heading = match title {
                "Example" => "EXAMPLES".to_string(),
                t => t.to_uppercase(),
            };
            let mut blocks: Vec<Block> = aside.map(|a| Block::Text(format!("({a})"))).into_iter().collect();
            blocks.extend(blocks_of(&paragraph[1..]));
            out.sections.push((heading, blocks));
        } else {
            out.description.extend(blocks_of(paragraph));
        }
    }
    out
}

/// Consecutive indented lines are kept as they are (less the two spaces `--help` indents them
/// by); the others are one filled paragraph.
fn blocks_of(lines: &[&str]) -> Vec<Block> {
    let mut blocks = Vec::new();
    for line in lines {
        let indented = line.starts_with(' ');
        match (blocks.last_mut(), indented) {
            (Some(Block::Verbatim(v)), true) => v.push(line.strip_prefix("  ").unwrap_or(line).to_string()),
            (Some(Block::Text(t)), false) => {
                t.push(' ');
                t.push_str(line.trim());
            }
            (_, true) => blocks.push(Block::Verbatim(vec![line.strip_prefix("  ").unwrap_or(line).to_string()])),
            (_, false) => blocks.push(Block::Text(line.trim().to_string())),
        }
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text a page shows, near enough: roff's escapes undone.
    fn plain(roff: &str) -> String {
        roff.replace("\\*(Aq", "'").replace("\\-", "-").replace("\\&", "").replace("\\\\", "\\")
    }

    fn built() -> clap::Command {
        let mut root = super::super::Cli::command().disable_help_subcommand(true);
        root.build();
        root
    }

    fn every_command(cmd: &clap::Command, out: &mut Vec<clap::Command>) {
        out.push(cmd.clone());
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            every_command(sub, out);
        }
    }

    /// Every command `--help` shows (nested ones too) has a page, and the page has each of the
    /// command's long options, its one-line description and every line of its after-text.
    #[test]
    fn every_command_has_a_page_with_its_options_and_examples() {
        let pages = man_pages(super::super::Cli::command());
        let mut commands = Vec::new();
        every_command(&built(), &mut commands);
        assert_eq!(pages.len(), commands.len(), "one page per command");
        for cmd in &commands {
            let name = display_name(cmd);
            let page = pages.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("no page for {name}"));
            let text = plain(&page.roff);
            assert!(page.roff.starts_with(&Roff::new().render()), "{name}: the preamble first");
            assert_eq!(page.roff.matches(".SH NAME").count(), 1, "{name}");
            if let Some(about) = cmd.get_about() {
                assert!(text.contains(&about.to_string()), "{name}: its about line is missing:\n{text}");
            }
            for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
                if let Some(long) = arg.get_long() {
                    assert!(text.contains(&format!("--{long}")), "{name}: --{long} is not in its page:\n{text}");
                }
            }
            let after = cmd.get_after_help().map(|s| s.to_string()).unwrap_or_default();
            for line in after.lines().map(str::trim).filter(|l| !l.is_empty() && !l.ends_with(':')) {
                assert!(text.contains(line), "{name}: `{line}` from --help is not in its page:\n{text}");
            }
        }
        for nested in ["kubewright-certs-renew", "kubewright-inventory-from-vagrant", "kubewright-lock-break"] {
            assert!(pages.iter().any(|p| p.name == nested), "no page {nested}");
        }
        assert!(!pages.iter().any(|p| p.name.contains("generate") || p.name.ends_with("-help")));
    }

    #[test]
    fn a_page_names_its_parent_and_shows_examples_as_lines() {
        let pages = man_pages(super::super::Cli::command());
        let page = |name: &str| &pages.iter().find(|p| p.name == name).unwrap().roff;
        let renew = page("kubewright-certs-renew");
        assert!(renew.contains(".SH \"SEE ALSO\"\n\\fBkubewright\\-certs\\fR(1)\n"), "{renew}");
        assert!(renew.contains(".SH EXAMPLES\n.PP\n.RS 4\n.nf\nkubewright certs renew \\-i inv.yaml\n"), "{renew}");
        assert!(page("kubewright-certs").contains("\\fBkubewright\\fR(1)"));
        let root = page("kubewright");
        assert!(root.contains(".SH \"EXIT CODES\"\n"), "{root}");
        assert!(root.contains("\\fBssh_config\\fR(5)"), "{root}");
        // The options of the whole program are on every page (they are global).
        assert!(renew.contains("\\-\\-output"), "{renew}");
        // Sections after the options, VERSION last.
        let order: Vec<usize> = [".SH DESCRIPTION", ".SH OPTIONS", ".SH EXAMPLES", ".SH \"SEE ALSO\"", ".SH VERSION"]
            .iter()
            .map(|s| renew.find(s).unwrap_or_else(|| panic!("no {s}")))
            .collect();
        assert!(order.is_sorted(), "{renew}");
    }

    #[test]
    fn after_help_becomes_sections_and_description() {
        let parsed = after_help(
            "Examples (see x/README.md):\n  kw a\n  kw b   # note\n\nDoes this\nand that.\n\nExit codes:\n  0  ok\n  1  failed\n`check` differs.\n",
        );
        assert_eq!(
            parsed,
            AfterHelp {
                description: vec![Block::Text("Does this and that.".into())],
                sections: vec![
                    (
                        "EXAMPLES".into(),
                        vec![
                            Block::Text("(see x/README.md)".into()),
                            Block::Verbatim(vec!["kw a".into(), "kw b   # note".into()])
                        ]
                    ),
                    (
                        "EXIT CODES".into(),
                        vec![
                            Block::Verbatim(vec!["0  ok".into(), "1  failed".into()]),
                            Block::Text("`check` differs.".into())
                        ]
                    ),
                ],
            }
        );
        // A sentence that merely ends with a colon is not a heading without indented lines.
        assert_eq!(after_help("Reads:\nfiles.").sections, vec![]);
    }
}
