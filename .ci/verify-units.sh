#!/usr/bin/env bash
# Checks systemd/midwatch.service and systemd/midwatch@.service with `systemd-analyze verify`, and
# prints their `systemd-analyze security` exposure. Usage: .ci/verify-units.sh [path/to/midwatch [UNIT_DIR]]
# (default target/debug/midwatch, built if missing, and the units in systemd/; .ci/package.sh passes
# the installed binary and /usr/lib/systemd/system). Under CI=true, installs systemd when absent.
set -Eeuo pipefail
# A command that fails outside a test says where, not only the exit status of the script.
trap 'ci_status=$?; [ "$BASH_SUBSHELL" -gt 0 ] || echo "FAIL ${BASH_SOURCE[0]}:$LINENO: \`$BASH_COMMAND\` exited $ci_status" >&2' ERR
cd "$(dirname "$0")/.."

if ! command -v systemd-analyze >/dev/null 2>&1; then
  if [ "${CI:-}" = "true" ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null
  else
    echo "verify-units: systemd-analyze not found (apt-get install systemd); skipped" >&2
    exit 0
  fi
fi

binary=${1:-target/debug/midwatch}
[ -x "$binary" ] || cargo build --quiet --bin midwatch
binary=$(realpath "$binary")
units=${2:-systemd}
# Documentation=man:midwatch(1) is checked with man(1): only the package installs the page.
if [ "$units" = systemd ]; then man=--man=no; else man=--man=yes; fi

# verify checks that ExecStart's binary exists: point the copies at the built one.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for unit in "$units/midwatch.service" "$units/midwatch@.service"; do
  sed "s|/usr/bin/midwatch|$binary|" "$unit" >"$work/$(basename "$unit")"
done

status=0
for unit in midwatch.service midwatch@.service; do
  # Unknown or misspelt keys are only warnings (exit status 0): fail on any line about our units too.
  if out=$(systemd-analyze verify "$man" "$work/$unit" 2>&1) && ! grep -q midwatch <<<"$out"; then
    echo "verify-units: $unit ok"
  else
    printf '%s\n' "$out" >&2
    echo "verify-units: systemd-analyze verify $unit failed" >&2
    status=1
  fi
  # The exposure score (0 = best, 10 = worst) for the record; --offline needs systemd >= 250.
  if score=$(systemd-analyze security --offline=yes "$work/$unit" 2>/dev/null | tail -n 1); then
    echo "verify-units: $unit: $score"
  fi
done
exit $status
