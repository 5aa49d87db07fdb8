//! The manual pages and shell completions, generated from the clap command they are given (the parser's own,
//! `cli::command()`) so they cannot drift from the parser.
//!
//! The generated files are committed under `docs/man/` and `docs/completions/` and the Debian package
//! ships them (`[package.metadata.deb]` in `Cargo.toml`), so `cargo deb` needs no generation step.
//! `tests/manual.rs` fails when they are stale; `MIDWATCH_BLESS=1 cargo test --test manual` rewrites them.
//! `midwatch completions bash|zsh|fish` prints the same completion scripts.

use std::io::Write;

use clap::ValueEnum;
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

/// clap_mangen's sections, with EXIT STATUS, ENVIRONMENT and FILES put where man-pages(7) orders them.
fn render(man: &Man, cmd: &clap::Command, root: bool, w: &mut dyn Write) -> std::io::Result<()> {
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
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
