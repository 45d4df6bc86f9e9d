//! The Debian package a bastion installs (packaging/build-deb), made from this test run's
//! binary: what it holds and depends on, and, installed with `dpkg -i` into a fresh Debian 12
//! root, that `kubewright --version`, `man kubewright-apply` and bash completion work there.
//!
//! The root is the test bed's cached debootstrap root (`bed::image::root`, Debian 12 as a
//! genericcloud image has it, man-db and bash-completion included), never changed: the test
//! installs into an overlay over it, in mount, PID and network namespaces of its own, so its
//! mounts go when its namespaces do, however the test ends, and nothing of the machine's /etc,
//! network or kernel settings is touched.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_kubewright");
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed ({}):\n{}", out.status, common::output_text(&out));
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// dpkg-deb builds the package and objdump reads the binary's symbol versions: CI has both
/// (dpkg-dev and binutils, from .ci/run).
fn packaging_tools() -> bool {
    common::tool_available("dpkg-deb", "--version", "dpkg-dev", "build the .deb")
        && common::tool_available("objdump", "--version", "binutils", "read the binary's glibc symbol versions")
}

/// The .deb packaging/build-deb makes of this test run's binary, in `out`. A quick gzip: the
/// default xz takes ~30 s for the unoptimised binary, and the compressor is not what is tested.
fn build_deb(out: &Path) -> PathBuf {
    let o = run(Command::new("bash")
        .arg(repo().join("packaging/build-deb"))
        .args(["--binary", BIN, "--out-dir"])
        .arg(out)
        .env("DPKG_DEB_COMPRESSOR_TYPE", "gzip")
        .env("DPKG_DEB_COMPRESSOR_LEVEL", "1"));
    let printed = stdout(&o);
    let deb = PathBuf::from(printed.trim());
    assert!(deb.is_file(), "build-deb printed {printed:?}, which is no file");
    assert_eq!(deb.parent(), Some(out), "the .deb goes to --out-dir");
    deb
}

/// The highest `NAME_x.y` symbol version `binary` needs (`objdump -T`), as in `2.34`.
fn highest_symbol_version(binary: &Path, name: &str) -> String {
    let dump = stdout(&run(Command::new("objdump").arg("-T").arg(binary)));
    let prefix = format!("{name}_");
    let mut versions: Vec<Vec<u32>> = dump
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter_map(|w| w.strip_prefix(&prefix))
        .filter_map(|v| v.split('.').map(|n| n.parse().ok()).collect::<Option<Vec<u32>>>())
        .collect();
    versions.sort();
    let highest = versions.last().unwrap_or_else(|| panic!("no {name}_ symbol version in {}", binary.display()));
    highest.iter().map(u32::to_string).collect::<Vec<_>>().join(".")
}

/// The manual pages `kubewright generate man` writes, by file name, gzipped as packaged.
fn man_pages_of_the_binary(dir: &Path) -> Vec<String> {
    run(Command::new(BIN).args(["generate", "man"]).arg(dir));
    let mut pages: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| format!("{}.gz", e.unwrap().file_name().to_string_lossy())).collect();
    pages.sort();
    pages
}

#[test]
fn the_deb_holds_the_binary_pages_and_completions_and_depends_on_the_glibc_it_needs() {
    if !packaging_tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let deb = build_deb(tmp.path());
    let arch = stdout(&run(Command::new("dpkg").arg("--print-architecture"))).trim().to_string();
    assert_eq!(deb.file_name().unwrap().to_string_lossy(), format!("kubewright_{VERSION}-1_{arch}.deb"));

    let control = stdout(&run(Command::new("dpkg-deb").arg("--field").arg(&deb)));
    let field = |name: &str| {
        control
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in:\n{control}"))
            .to_string()
    };
    assert_eq!(field("Package"), "kubewright");
    assert_eq!(field("Version"), format!("{VERSION}-1"));
    assert_eq!(field("Architecture"), arch);
    assert_eq!(field("Section"), "admin");
    assert_eq!(field("Priority"), "optional");
    assert_eq!(field("Recommends"), "openssh-client", "the default transport runs the system ssh");
    assert!(control.contains("runs the system ssh (openssh-client)"), "{control}");
    assert!(!field("Maintainer").is_empty());

    // Debian's places for everything, and nothing else.
    let listing = stdout(&run(Command::new("dpkg-deb").arg("--contents").arg(&deb)));
    let files: Vec<&str> = listing
        .lines()
        .filter(|l| !l.starts_with('d'))
        .map(|l| l.split_whitespace().last().unwrap().trim_start_matches('.'))
        .collect();
    assert!(listing.lines().all(|l| l.contains(" root/root ")), "owned by root:\n{listing}");
    assert!(listing.contains("-rwxr-xr-x root/root"), "{listing}");
    let pages = man_pages_of_the_binary(&tmp.path().join("man"));
    let mut expected: Vec<String> = [
        "/usr/bin/kubewright",
        "/usr/share/bash-completion/completions/kubewright",
        "/usr/share/zsh/vendor-completions/_kubewright",
        "/usr/share/fish/vendor_completions.d/kubewright.fish",
        "/usr/share/doc/kubewright/copyright",
        "/usr/share/doc/kubewright/changelog.Debian.gz",
    ]
    .into_iter()
    .map(String::from)
    .chain(pages.iter().map(|p| format!("/usr/share/man/man1/{p}")))
    .collect();
    expected.sort();
    let mut files: Vec<String> = files.into_iter().map(String::from).collect();
    files.sort();
    assert_eq!(files, expected);
    for page in ["kubewright.1.gz", "kubewright-apply.1.gz", "kubewright-certs-renew.1.gz"] {
        assert!(pages.iter().any(|p| p == page), "no {page} among {pages:?}");
    }

    // The binary as packaged: the one built, stripped, and its glibc is the Depends' libc6.
    let unpacked = tmp.path().join("unpacked");
    run(Command::new("dpkg-deb").arg("--extract").arg(&deb).arg(&unpacked));
    let binary = unpacked.join("usr/bin/kubewright");
    assert_eq!(stdout(&run(Command::new(&binary).arg("--version"))).trim(), format!("kubewright {VERSION}"));
    let sections = stdout(&run(Command::new("objdump").arg("-h").arg(&binary)));
    assert!(!sections.contains(".debug_info"), "the packaged binary is stripped:\n{sections}");
    let glibc = highest_symbol_version(&binary, "GLIBC");
    let depends = field("Depends");
    assert!(
        depends.split(", ").any(|d| d == format!("libc6 (>= {glibc})")),
        "GLIBC_{glibc} needed, Depends: {depends}"
    );
    let gcc = highest_symbol_version(&binary, "GCC");
    assert!(depends.split(", ").any(|d| d == format!("libgcc-s1 (>= {gcc})")), "GCC_{gcc} needed, Depends: {depends}");
    // What README.md tells a bastion's admin is what the binary needs.
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    assert!(readme.contains(&format!("glibc {glibc} or newer")), "README.md must say the .deb needs glibc {glibc}");

    let copyright = std::fs::read_to_string(unpacked.join("usr/share/doc/kubewright/copyright")).unwrap();
    assert!(copyright.contains("\nLicense: Apache-2.0\n"), "{copyright}");
}

/// What the root test needs of the machine; without it the test skips loudly, and fails in CI.
fn root_prerequisites() -> bool {
    let mut missing = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        missing.push("root (mounts and chroot need it)".to_string());
    }
    for (tool, package) in [("unshare", "util-linux"), ("chroot", "coreutils"), ("debootstrap", "debootstrap")] {
        let found = Command::new("sh").args(["-c", &format!("command -v {tool}")]).output();
        if !found.is_ok_and(|o| o.status.success()) {
            missing.push(format!("`{tool}` (apt-get install {package})"));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!("cannot install the .deb into a Debian root here, missing: {}", missing.join(", "));
    assert!(std::env::var_os("CI").is_none(), "{msg} (CI is set, so this fails instead of skipping)");
    #[allow(clippy::print_stderr)] // the loud skip the test bed's tests also print
    {
        eprintln!("SKIPPED: {msg}");
    }
    false
}

/// Runs in fresh mount, PID, network, UTS and IPC namespaces (`unshare`): puts the root
/// together (an overlay over the cached root, its own /proc with /proc/sys read-only, /tmp,
/// /run), installs the package with `dpkg -i` and uses it, each check's output after a
/// `=== name` line. Everything it mounts is gone when its namespaces are, pass or fail.
const IN_ROOT: &str = r#"set -eu
exec 2>&1
lower=$1 t=$2 deb=$3
m=$t/merged
mkdir -p "$t/upper" "$t/work" "$m"
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$t/upper,workdir=$t/work" "$m"
mount -t proc proc "$m/proc"
mount --bind "$m/proc/sys" "$m/proc/sys"
mount -o remount,bind,ro "$m/proc/sys"
mount -t tmpfs -o mode=1777 tmpfs "$m/tmp"
mount -t tmpfs -o mode=0755 tmpfs "$m/run"
cp "$deb" "$m/tmp/kubewright.deb"
in_root() { chroot "$m" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C TERM=dumb "$@"; }
echo "=== dpkg -i"; in_root dpkg -i /tmp/kubewright.deb
echo "=== status"; in_root dpkg-query -W -f='${Status}\n' kubewright
echo "=== verify"; in_root dpkg --verify kubewright
echo "=== which"; in_root sh -c 'command -v kubewright'
echo "=== version"; in_root kubewright --version
echo "=== man -w"; in_root man -w kubewright-apply
echo "=== whatis"; in_root whatis kubewright-certs-renew
echo "=== man apply"; in_root env MANWIDTH=200 man kubewright-apply
echo "=== man certs renew"; in_root env MANWIDTH=200 man kubewright-certs-renew
echo "=== bash completion"
in_root bash -c '
. /usr/share/bash-completion/bash_completion
# What bash does on the first Tab after `kubewright`: load the completion from its place.
__load_completion kubewright || { echo "bash-completion loads nothing for kubewright"; exit 1; }
spec=$(complete -p kubewright) fn=${spec#*-F } fn=${fn%% *}
tab() {
  COMP_WORDS=("$@") COMP_CWORD=$(($# - 1)) COMP_LINE="$*" COMP_POINT=${#COMP_LINE} COMPREPLY=()
  "$fn" kubewright "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
  echo "$*: ${COMPREPLY[*]}"
}
tab kubewright ap
tab kubewright certs re
tab kubewright apply --play
tab kubewright gen
'
echo "=== end"
"#;

/// `=== name` sections of the script's output, by name.
fn sections(out: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in out.lines() {
        if let Some(name) = line.strip_prefix("=== ") {
            if let Some((n, text)) = current.take() {
                map.insert(n, text);
            }
            current = Some((name.to_string(), String::new()));
        } else if let Some((_, text)) = current.as_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    if let Some((n, text)) = current {
        map.insert(n, text);
    }
    map
}

#[test]
fn the_deb_installs_in_a_fresh_debian_12_root_with_man_pages_and_bash_completion() {
    if !packaging_tools() || !root_prerequisites() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let deb = build_deb(tmp.path());
    let cached = kubewright_testbed::bed::image::root().unwrap_or_else(|e| panic!("no Debian 12 root: {e:#}"));
    let os = std::fs::read_to_string(cached.join("root/etc/os-release")).unwrap();
    assert!(os.contains("VERSION_ID=\"12\""), "the bed's root is Debian 12:\n{os}");
    let work = tmp.path().join("root");
    let o = Command::new("timeout")
        .args(["--kill-after=5", "120", "unshare", "--mount", "--propagation", "private", "--pid", "--fork"])
        .args(["--kill-child", "--net", "--uts", "--ipc", "bash", "-c", IN_ROOT, "bash"])
        .arg(cached.join("root"))
        .arg(&work)
        .arg(&deb)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = common::output_text(&o);
    assert!(o.status.success(), "installing and using the .deb in the root failed ({}):\n{out}", o.status);
    let s = sections(&out);
    let get = |name: &str| s.get(name).unwrap_or_else(|| panic!("no `{name}` output in:\n{out}")).as_str();
    assert!(s.contains_key("end"), "{out}");
    assert!(!get("dpkg -i").contains("warning"), "{out}");
    assert_eq!(get("status").trim(), "install ok installed", "{out}");
    assert_eq!(get("verify").trim(), "", "installed files differ from the package's md5sums");
    assert_eq!(get("which").trim(), "/usr/bin/kubewright");
    assert_eq!(get("version").trim(), format!("kubewright {VERSION}"));
    assert_eq!(get("man -w").trim(), "/usr/share/man/man1/kubewright-apply.1.gz");
    // man-db's trigger indexed the pages' NAME lines (what `apropos kubewright` searches).
    assert!(get("whatis").starts_with("kubewright-certs-renew (1) - Renew the control planes' certificates"), "{out}");
    let apply = get("man apply");
    for expected in [
        "kubewright-apply - Show the plan, confirm, and run it on the hosts",
        "--playbook",
        "EXAMPLES",
        "    kubewright apply -i inv.yaml --playbook restart-kubelet.yaml\n",
        "SEE ALSO\n       kubewright(1)",
    ] {
        assert!(apply.contains(expected), "`man kubewright-apply` lacks {expected:?}:\n{apply}");
    }
    assert!(get("man certs renew").contains("SEE ALSO\n       kubewright-certs(1)"), "{out}");
    let completion = get("bash completion");
    for expected in [
        "kubewright ap: apply\n",
        "kubewright certs re: renew\n",
        "kubewright apply --play: --playbook\n",
        // `generate` is for packaging: hidden from --help, and not offered.
        "kubewright gen: \n",
    ] {
        assert!(completion.contains(expected), "bash completion lacks {expected:?}:\n{completion}");
    }
}
