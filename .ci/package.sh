#!/usr/bin/env bash
# The Debian package end to end, as the README's "Install" section uses it: build it with cargo-deb,
# lint it with lintian (errors fail), install it with dpkg, check the installed files, upgrade it over
# an edited configuration, then remove and purge it and check that nothing is left behind.
# Needs root (dpkg). Installs the tools it lacks (cargo-deb, lintian, man-db, dpkg-dev).
# Usage: .ci/package.sh
set -Eeuo pipefail
# A command that fails outside a test says where, not only the exit status of the script.
trap 'ci_status=$?; [ "$BASH_SUBSHELL" -gt 0 ] || echo "FAIL ${BASH_SOURCE[0]}:$LINENO: \`$BASH_COMMAND\` exited $ci_status" >&2' ERR
cd "$(dirname "$0")/.."

say() { echo "package: $*"; }
fail() { echo "package: FAILED: $*" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
  [ "${CI:-}" = "true" ] && fail "must run as root (dpkg -i)"
  say "not root: skipped (dpkg -i needs root)" >&2
  exit 0
fi
# Installing and purging is only harmless on a machine where midwatch is not otherwise installed.
if dpkg-query -W -f='${Status}' midwatch 2>/dev/null | grep -q installed; then
  [ "${CI:-}" = "true" ] || fail "a midwatch package is installed here already; purge it first (dpkg --purge midwatch)"
  say "purging the midwatch package left by an earlier run"
  dpkg --purge midwatch >/dev/null
fi

# Tools: cargo-deb from crates.io (kept in ~/.cargo/bin between runs), the rest from Debian.
if ! cargo deb --version >/dev/null 2>&1; then
  say "cargo install --locked cargo-deb"
  cargo install --locked --quiet cargo-deb@3.8.0
fi
missing=()
command -v lintian >/dev/null || missing+=(lintian)
command -v man >/dev/null || missing+=(man-db)
command -v dpkg-shlibdeps >/dev/null || missing+=(dpkg-dev) # cargo-deb's `$auto` dependencies
command -v strip >/dev/null || missing+=(binutils)
if [ ${#missing[@]} -gt 0 ]; then
  say "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

say "cargo deb"
deb=$(cargo deb --locked | tail -n 1)
[ -f "$deb" ] || fail "cargo deb did not print the package path (got: $deb)"
version=$(dpkg-deb -f "$deb" Version)
say "$deb: $(stat -c %s "$deb") bytes, version $version, depends: $(dpkg-deb -f "$deb" Depends)"
dpkg-deb -c "$deb"

say "lintian"
# Errors fail the build; warnings and info tags are printed for the record.
lintian --display-info --fail-on error "$deb"

# What is on the machine before, to prove that purge removes everything the package added.
scan() { find /etc /usr /var/lib -name '*midwatch*' 2>/dev/null | sort; }
before=$(mktemp)
scan >"$before"
work=$(mktemp -d)
installed=
cleanup() {
  [ -n "$installed" ] && dpkg --purge midwatch >/dev/null 2>&1 || true
  rm -rf "$work" "$before"
}
trap cleanup EXIT

say "dpkg -i"
installed=yes
# No systemd as PID 1 here (a container): the maintainer scripts must skip daemon-reload, not fail.
dpkg -i "$deb" </dev/null

[ "$(/usr/bin/midwatch --version)" = "midwatch $version" ] || fail "/usr/bin/midwatch --version: $(/usr/bin/midwatch --version)"
say "/usr/bin/midwatch --version: $(/usr/bin/midwatch --version)"
for page in midwatch midwatch-check midwatch-run midwatch-config-check midwatch-completions; do
  path=$(man -w "$page") || fail "man -w $page"
  say "man -w $page: $path"
done
MANWIDTH=100 man -P cat midwatch >"$work/midwatch.txt" 2>/dev/null || fail "man midwatch"
grep -q '^EXIT STATUS' "$work/midwatch.txt" || fail "man midwatch has no EXIT STATUS section"
for pair in bash:/usr/share/bash-completion/completions/midwatch zsh:/usr/share/zsh/vendor-completions/_midwatch \
  fish:/usr/share/fish/vendor_completions.d/midwatch.fish; do
  shell=${pair%%:*} file=${pair#*:}
  cmp -s "$file" <(/usr/bin/midwatch completions "$shell") || fail "$file is not what midwatch completions $shell prints"
done
# What bash offers after `midwatch c<Tab>`.
offered=$(bash -c 'source /usr/share/bash-completion/completions/midwatch
  COMP_WORDS=(midwatch c) COMP_CWORD=1 COMP_LINE="midwatch c" COMP_POINT=10
  _midwatch midwatch c midwatch && echo "${COMPREPLY[*]}"')
[ "$offered" = "check completions config" ] || fail "bash completes 'midwatch c' to '$offered'"
say "completions for bash, zsh and fish installed"
conffiles=$(dpkg-query -W -f='${Conffiles}\n' midwatch)
grep -q '^ /etc/midwatch/midwatch.toml ' <<<"$conffiles" || fail "/etc/midwatch/midwatch.toml is not a conffile"
for doc in README.md copyright examples/midwatch.example.toml; do
  [ -f "/usr/share/doc/midwatch/$doc" ] || fail "no /usr/share/doc/midwatch/$doc"
done
# Not enabled, not started: no [Install] symlink, no running midwatch.
if compgen -G '/etc/systemd/system/*.wants/midwatch*' >/dev/null; then fail "the install enabled a unit"; fi
if command -v systemctl >/dev/null; then
  enabled=$(systemctl is-enabled midwatch.service 2>&1) || true
  [ "$enabled" = disabled ] || fail "systemctl is-enabled midwatch.service: $enabled"
fi
for exe in /proc/[0-9]*/exe; do
  [ "$(readlink "$exe" 2>/dev/null)" != /usr/bin/midwatch ] || fail "the install started midwatch (${exe%/exe})"
done
say "midwatch.service installed, not enabled, not started"

say "units as installed"
.ci/verify-units.sh /usr/bin/midwatch /usr/lib/systemd/system

# The installed configuration is valid once the credential exists (as systemd would provide it).
install -m 0600 /dev/null "$work/instance_password"
echo "ci-password" >"$work/instance_password"
CREDENTIALS_DIRECTORY=$work /usr/bin/midwatch config check --offline || fail "midwatch config check --offline"

say "upgrade over an edited configuration"
echo '# edited by the operator' >>/etc/midwatch/midwatch.toml
dpkg -i "$deb" </dev/null
grep -q '^# edited by the operator$' /etc/midwatch/midwatch.toml || fail "the upgrade overwrote /etc/midwatch/midwatch.toml"

say "dpkg -r"
dpkg -r midwatch </dev/null
[ ! -e /usr/bin/midwatch ] || fail "dpkg -r left /usr/bin/midwatch"
[ ! -e /usr/lib/systemd/system/midwatch.service ] || fail "dpkg -r left the unit"
[ -f /etc/midwatch/midwatch.toml ] || fail "dpkg -r removed the configuration (only purge may)"

say "dpkg --purge"
dpkg --purge midwatch </dev/null
installed=
! dpkg-query -W midwatch >/dev/null 2>&1 || fail "dpkg still knows midwatch after purge"
left=$(comm -13 "$before" <(scan))
[ -z "$left" ] || fail "purge left: $left"
say "purge left nothing behind"
