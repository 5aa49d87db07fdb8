//! The manual pages and shell completions, generated from the clap command they are given (the parser's own,
//! `cli::command()`) so they cannot drift from the parser.
//!
//! The generated files are committed under `docs/man/` and `docs/completions/` and the Debian package
//! ships them (`[package.metadata.deb]` in `Cargo.toml`), so `cargo deb` needs no generation step.
//! `tests/manual.rs` fails when they are stale; `MIDWATCH_BLESS=1 cargo test --test manual` rewrites them.
//! `midwatch completions bash|zsh|fish` prints the same completion scripts. The long descriptions of `check` and
//! `demo` are here too: their `--help` and their pages' DESCRIPTION say the same.
//!
//! Each page is clap_mangen's sections with three of midwatch's own: a SYNOPSIS that shows what every option
//! takes (`[--window WINDOW]`, where clap_mangen writes only `[--window]`), EXIT STATUS, ENVIRONMENT and FILES
//! where man-pages(7) orders them, and EXAMPLES.

use std::io::Write;

use clap::{ArgAction, ValueEnum};
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};

/// The shells whose completions the Debian package installs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

impl CompletionShell {
    pub const ALL: [CompletionShell; 3] = [Self::Bash, Self::Zsh, Self::Fish];

    /// The file name the shell looks the script up by (the package installs it in the shell's
    /// completion directory; `docs/completions/` holds the generated copies).
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Bash => "midwatch.bash",
            Self::Zsh => "_midwatch",
            Self::Fish => "midwatch.fish",
        }
    }

    fn generator(self) -> clap_complete::Shell {
        match self {
            Self::Bash => clap_complete::Shell::Bash,
            Self::Zsh => clap_complete::Shell::Zsh,
            Self::Fish => clap_complete::Shell::Fish,
        }
    }
}

/// The completion script of `cmd` for `shell`.
pub fn completions(mut cmd: clap::Command, shell: CompletionShell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell.generator(), &mut cmd, "midwatch", &mut out);
    out
}

/// One generated manual page.
pub struct ManPage {
    /// `midwatch.1`, `midwatch-check.1`, …
    pub file_name: String,
    pub roff: Vec<u8>,
}

/// `midwatch(1)` and one page per subcommand (`midwatch-check(1)`, …), as `git` and `cargo` do:
/// the SUBCOMMANDS section of `midwatch(1)` refers to them by those names.
pub fn man_pages(cmd: clap::Command) -> Vec<ManPage> {
    let mut cmd = cmd.long_about(DESCRIPTION).disable_help_subcommand(true);
    // Sets the display names (`midwatch-check`) and bin names (`midwatch check`) of the subcommands.
    cmd.build();
    let mut pages = Vec::new();
    collect(&cmd, true, &mut pages);
    pages
}

fn collect(cmd: &clap::Command, root: bool, pages: &mut Vec<ManPage>) {
    // The footer names the package and version on every page, not the subcommand.
    let man = Man::new(cmd.clone()).source(concat!("midwatch ", env!("CARGO_PKG_VERSION")));
    let mut out = Vec::new();
    render(&man, cmd, root, &mut out).expect("rendering into a Vec cannot fail");
    pages.push(ManPage { file_name: man.get_filename(), roff: out });
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        collect(sub, false, pages);
    }
}

/// clap_mangen's sections, with EXIT STATUS, ENVIRONMENT and FILES put where man-pages(7) orders them, our own
/// SYNOPSIS, and EXAMPLES before SEE ALSO.
fn render(man: &Man, cmd: &clap::Command, root: bool, w: &mut dyn Write) -> std::io::Result<()> {
    man.render_title(w)?;
    man.render_name_section(w)?;
    synopsis(cmd).to_writer(w)?;
    man.render_description_section(w)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(w)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(w)?;
    }
    let mut roff = Roff::default();
    let name = cmd.get_name();
    if root || name == "check" {
        exit_status(&mut roff);
    }
    if root {
        environment(&mut roff);
        files(&mut roff);
    }
    roff.to_writer(w)?;
    if cmd.get_version().is_some() {
        man.render_version_section(w)?;
    }
    examples(cmd).to_writer(w)?;
    let mut see_also = Roff::default();
    see_also.control("SH", ["SEE ALSO"]);
    if root {
        see_also.text([
            roman("systemctl(1), journalctl(1), systemd.exec(5) (LoadCredential=, StateDirectory=), "),
            roman("and /usr/share/doc/midwatch/README.md."),
        ]);
    } else {
        see_also.text([roman("midwatch(1)")]);
    }
    see_also.to_writer(w)
}

/// `midwatch check [--config PATH] [--window WINDOW] … [-v|--verbose]... [--user NAME]...`: every visible option
/// with the placeholder of what it takes (in brackets when the value is optional), `...` when it repeats, then
/// the positional arguments and the subcommand.
fn synopsis(cmd: &clap::Command) -> Roff {
    let mut line = vec![bold(cmd.get_bin_name().unwrap_or_else(|| cmd.get_name()))];
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set() && !a.is_positional()) {
        let mut names = Vec::new();
        if let Some(short) = arg.get_short() {
            names.push(bold(format!("-{short}")));
        }
        if let Some(long) = arg.get_long() {
            if !names.is_empty() {
                names.push(roman("|"));
            }
            names.push(bold(format!("--{long}")));
        }
        let optional = !arg.is_required_set();
        line.push(roman(if optional { " [" } else { " " }));
        line.extend(names);
        if let Some(range) = arg.get_num_args().filter(|r| r.takes_values()) {
            let value = placeholder(arg);
            if range.min_values() == 0 {
                line.extend([roman(" ["), italic(value), roman("]")]);
            } else {
                line.extend([roman(" "), italic(value)]);
            }
        }
        if optional {
            line.push(roman("]"));
        }
        if matches!(arg.get_action(), ArgAction::Count | ArgAction::Append) {
            line.push(roman("..."));
        }
    }
    for arg in cmd.get_positionals().filter(|a| !a.is_hide_set()) {
        let (open, close) = if arg.is_required_set() { (" ", "") } else { (" [", "]") };
        line.extend([roman(open), italic(placeholder(arg)), roman(close)]);
    }
    if cmd.has_subcommands() {
        line.extend([roman(" "), italic("COMMAND")]);
    }
    let mut roff = Roff::default();
    roff.control("SH", ["SYNOPSIS"]);
    roff.text(line);
    roff
}

/// What an argument takes: its values when it has a few (`text|json`), else its name in the help (`PATH`).
fn placeholder(arg: &clap::Arg) -> String {
    let values: Vec<String> =
        arg.get_possible_values().iter().filter(|v| !v.is_hide_set()).map(|v| v.get_name().to_string()).collect();
    if (2..=4).contains(&values.len()) {
        return values.join("|");
    }
    arg.get_value_names()
        .map(|names| names.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| arg.get_id().as_str().to_uppercase())
}

/// The EXAMPLES of a page: each command line with what it does.
fn examples(cmd: &clap::Command) -> Roff {
    let mut roff = Roff::default();
    let list: &[(&str, &str)] = match cmd.get_bin_name().unwrap_or_else(|| cmd.get_name()) {
        "midwatch" => &[
            ("midwatch demo", "Two cycles against a simulated instance: no configuration, no account."),
            (
                "midwatch config check",
                "Validate /etc/midwatch/midwatch.toml and prove the account can read every table.",
            ),
            (
                "midwatch check --dry-run",
                "One cycle that writes and sends nothing: what it would create, count, resolve and email.",
            ),
            ("sudo systemctl enable --now midwatch", "Run the service (midwatch run) on the [check] schedule."),
        ],
        "midwatch check" => &[
            (
                "midwatch check",
                "One cycle: read the instance, write ecc_agent_issue, email the findings when they changed, print the \
                 report.",
            ),
            ("midwatch check --dry-run", "The same, writing and sending nothing: what it would do."),
            (
                "midwatch check --detail summary --no-email --no-write",
                "As a monitoring plugin beside the service (Icinga 2, Nagios): counts only; records and email are \
                 left to the service.",
            ),
            (
                "midwatch check --user midserver2 --until-ok",
                "After a fix: check that user every minute until it is clear (exit 0), for at most 30 minutes.",
            ),
            (
                "midwatch check --config /etc/midwatch/acme.toml --format json",
                "The instance of midwatch@acme.service, as one JSON document for scripts.",
            ),
        ],
        "midwatch run" => &[
            ("midwatch run", "What midwatch.service runs: cycles on the [check] schedule until SIGTERM or SIGINT."),
            ("sudo systemctl reload midwatch", "Make the service re-read its configuration (SIGHUP)."),
        ],
        "midwatch config" | "midwatch config check" => &[
            (
                "midwatch config check",
                "Validate the file, sign in, read every table a cycle reads, and ask the SMTP server whether it \
                 accepts the sender and every recipient; nothing is written or sent.",
            ),
            ("midwatch config check --offline", "Only validate the file."),
            (
                "MIDWATCH_CONFIG=/etc/midwatch/acme.toml midwatch config check",
                "Another file, named by the environment.",
            ),
        ],
        "midwatch demo" => &[
            ("midwatch demo", "The two cycles; the demo's temporary directory is removed when it ends."),
            ("midwatch demo --keep", "The same, keeping the emails it received, and saying where the .eml files are."),
            ("midwatch demo --until-ok", "The remediation loop (check --until-ok) in simulated minutes."),
            (
                "midwatch demo --auth oauth --format json",
                "Signing in with OAuth client credentials; one JSON document.",
            ),
        ],
        "midwatch completions" => &[(
            "midwatch completions bash > ~/.local/share/bash-completion/completions/midwatch",
            "Bash completion for one user (the package installs it for bash, zsh and fish).",
        )],
        _ => &[],
    };
    if list.is_empty() {
        return roff;
    }
    roff.control("SH", ["EXAMPLES"]);
    for (command, what) in list {
        roff.control("TP", []);
        roff.text([bold(*command)]);
        roff.text([roman(*what)]);
    }
    roff
}

const DESCRIPTION: &str = "\
midwatch watches the MID Server users of a ServiceNow instance from outside the instance. It reads the \
instance over the REST Table API and decides, for every MID Server user, whether it has an authentication, \
authorization, network or configuration problem, exactly as the instance's own MIDUserConnectivity job does. \
It records each problem in the MID Server Issue table ecc_agent_issue (creating, counting and resolving \
records under its own source) and emails the findings to the administrators.

midwatch check runs one cycle and exits with a monitoring-plugin status; midwatch run is the systemd \
service that runs cycles on a schedule; midwatch config check validates the configuration and proves the \
instance and the SMTP server are reachable; midwatch demo runs a complete cycle against a simulated \
instance and needs no configuration.";

/// `midwatch check --help` (and the DESCRIPTION of midwatch-check(1)): what a plain check changes, and how not to.
pub(crate) const CHECK_ABOUT: &str = "\
Run one full cycle now: read the instance, judge every MID Server user, write the findings to ecc_agent_issue \
(create, count, resolve), email them when the configuration has an [email] section (with send = \"on_change\", \
the default, only when they changed since the last email), and print the report. Exit status 0 OK, 1 WARNING, \
2 CRITICAL, 3 UNKNOWN.

--no-write (or [check] write_issues = false) leaves ecc_agent_issue alone; --no-email sends no email; \
--dry-run does neither and prints what it would write and send. A check of chosen \
users (--user, --mid-server) sends no email.";

/// `midwatch demo --help` (and the DESCRIPTION of midwatch-demo(1)).
#[cfg(feature = "demo")]
pub(crate) const DEMO_ABOUT: &str = "\
Run two cycles against a simulated instance and SMTP server inside the process: no configuration, no network, \
no ServiceNow account. Cycle 1 reports the documentation's example findings, writes them to the simulated \
ecc_agent_issue and emails them; then midserver2 is fixed, and cycle 2 counts the other records, resolves \
midserver2's and emails the change. The exit status is 2 (CRITICAL), as the scenario is meant to be.

The demo's state directory and the emails its SMTP server receives are in a temporary directory (midwatch-demo-* \
under $TMPDIR, else /tmp), removed when the demo ends: --keep keeps it and names the .eml files, --keep DIR \
saves them in DIR.";

/// The exit-status table of the README ("As a Nagios or Icinga plugin").
fn exit_status(roff: &mut Roff) {
    roff.control("SH", ["EXIT STATUS"]);
    roff.text([roman(
        "The Nagios / Icinga plugin convention, so that midwatch check can be used as a monitoring plugin:",
    )]);
    for (code, label, meaning) in [
        ("0", "OK", "no findings."),
        ("1", "WARNING", "only configuration findings (users with the mid_server role that no MID Server uses)."),
        (
            "2",
            "CRITICAL",
            "at least one authentication, authorization or network finding for a user of a down MID Server.",
        ),
        (
            "3",
            "UNKNOWN",
            "the check could not be completed: bad configuration, invalid command-line arguments, instance \
             unreachable, credentials refused, a table unreadable, the deadline passed.",
        ),
    ] {
        roff.control("TP", []);
        roff.text([bold(code)]);
        roff.text([bold(label), roman(": "), roman(meaning)]);
    }
    roff.control("PP", []);
    roff.text([roman(
        "--help and --version exit 0. A failure to write ecc_agent_issue, to send email or to post alerts does \
         not change the status of a completed evaluation; it is named in the status line and the report. \
         midwatch run and midwatch config check exit 3 when the configuration is invalid.",
    )]);
}

fn environment(roff: &mut Roff) {
    roff.control("SH", ["ENVIRONMENT"]);
    for (name, meaning) in [
        ("MIDWATCH_CONFIG", "The configuration file when --config is not given."),
        (
            "CREDENTIALS_DIRECTORY",
            "Set by systemd's LoadCredential=. A relative *_file path in the configuration \
             (password_file = \"instance_password\") is looked up there first, then next to the configuration \
             file.",
        ),
        ("STATE_DIRECTORY", "Set by systemd's StateDirectory=. The state directory when [state] directory is not set."),
        ("RUST_LOG", "Overrides [log] level (a tracing filter such as info or midwatch=debug)."),
        ("HTTPS_PROXY, NO_PROXY", "A proxy for the instance when [instance] proxy is not set."),
    ] {
        roff.control("TP", []);
        roff.text([bold(name)]);
        roff.text([roman(meaning)]);
    }
}

fn files(roff: &mut Roff) {
    roff.control("SH", ["FILES"]);
    for (path, meaning) in [
        (
            "/etc/midwatch/midwatch.toml",
            "The configuration (the default of --config). Every key, with its default, is in \
             /usr/share/doc/midwatch/examples/midwatch.example.toml.",
        ),
        ("/etc/midwatch/INSTANCE.toml", "The configuration of midwatch@INSTANCE.service."),
        (
            "/etc/midwatch/instance_password",
            "The instance password, on one line, readable by root only. midwatch.service hands it to the \
             service as the credential instance_password (LoadCredential=); midwatch@INSTANCE.service reads \
             /etc/midwatch/INSTANCE.instance_password.",
        ),
        (
            "/etc/midwatch/smtp_password",
            "The SMTP password, the same way, once the LoadCredential=smtp_password line of the unit is enabled.",
        ),
        (
            "/var/lib/midwatch",
            "The state directory of midwatch.service (/var/lib/midwatch/INSTANCE for the template): the email \
             outbox (outbox/), the findings last notified (email-state.json), email.lock, and the alerts this \
             host posted to [alertmanager] (alerts-state.json). With DynamicUser=yes it is really \
             /var/lib/private/midwatch. Deleting it makes the next cycle email as if for the first time, and \
             forgets which alerts to resolve (they end by themselves a few cycles later).",
        ),
        (
            "/usr/lib/systemd/system/midwatch.service",
            "The service; midwatch@.service is the template for one unit per instance.",
        ),
    ] {
        roff.control("TP", []);
        roff.text([italic(path)]);
        roff.text([roman(meaning)]);
    }
}
