#!/usr/bin/env bash
# cargo deny check: licenses, bans, sources and RustSec advisories, offline (deny.toml says what is
# allowed). The machines here cannot fetch the advisory database: it comes from a snapshot, a git
# bundle of the RustSec advisory-db repository beside the repository (MIDWATCH_ADVISORY_BUNDLE overrides).
# Usage: .ci/deny.sh [check ...] (default: all checks).
set -Eeuo pipefail
# A command that fails outside a test says where, not only the exit status of the script.
trap 'ci_status=$?; [ "$BASH_SUBSHELL" -gt 0 ] || echo "FAIL ${BASH_SOURCE[0]}:$LINENO: \`$BASH_COMMAND\` exited $ci_status" >&2' ERR
cd "$(dirname "$0")/.."

if ! cargo deny --version >/dev/null 2>&1; then
  # About 3.5 minutes, once: ~/.cargo/bin keeps it for the next run.
  echo "deny: cargo install --locked cargo-deny"
  cargo install --locked --quiet cargo-deny@0.20.2
fi

# The snapshot lives beside the checkout (../shared/rustsec/); a CI clone elsewhere finds the workplace copy.
bundle=${MIDWATCH_ADVISORY_BUNDLE:-}
if [ -z "$bundle" ]; then
  for candidate in ../shared/rustsec/advisory-db.bundle /work/shared/rustsec/advisory-db.bundle; do
    if [ -f "$candidate" ]; then bundle=$candidate; break; fi
  done
fi
# deny.toml: db-path = "target/advisory-dbs". cargo-deny opens the clone of its default database URL
# (https://github.com/RustSec/advisory-db) in <db-path>/advisory-db-<hash of that URL>.
db=target/advisory-dbs/advisory-db-3157b0e258782691

checks=("$@")
if [ -n "$bundle" ] && [ -f "$bundle" ]; then
  # A fresh clone each run, so a replaced bundle is always the one checked against.
  rm -rf "$db"
  mkdir -p "$(dirname "$db")"
  git -c init.defaultBranch=main clone --quiet "$bundle" "$db"
  # cargo-deny dates the database by the newer of its HEAD commit and the mtime of .git/HEAD, and a
  # fresh clone's HEAD is new: give it the commit's date so maximum-db-staleness measures the snapshot.
  touch -d "$(git -C "$db" show -s --format=%cI HEAD)" "$db/.git/HEAD"
  echo "deny: advisory database $(git -C "$db" show -s --format='%h of %cs' HEAD) from $bundle"
else
  # Without a database the advisories cannot be checked offline; say so loudly, check the rest.
  echo "deny: WARNING: no advisory database bundle found (set MIDWATCH_ADVISORY_BUNDLE); checking licenses, bans and sources only" >&2
  [ ${#checks[@]} -gt 0 ] || checks=(licenses bans sources)
fi

# cargo-deny reads the whole lock file, every platform's crates included: fetch them first (crates.io is
# reachable; only the advisory database is not).
cargo fetch --locked --quiet
cargo deny --frozen check "${checks[@]}"
