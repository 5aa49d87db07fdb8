#!/usr/bin/env bash
# The real neighbours: midwatch next to Debian's Icinga 2, Postfix (with SpamAssassin's local tests),
# prometheus-node-exporter and a prometheus-alertmanager cluster, against the simulated instance (midwatch-sim,
# the demo data set, CRITICAL).
# Runs as root on a fresh Debian machine; installs what it needs with apt-get. A package that cannot be
# installed makes its part print "SKIP <program>: <reason>"; a real mismatch fails the script.
set -Eeuo pipefail
# A command that fails outside a test says where, not only the exit status of the script.
trap 'ci_status=$?; [ "$BASH_SUBSHELL" -gt 0 ] || echo "FAIL ${BASH_SOURCE[0]}:$LINENO: \`$BASH_COMMAND\` exited $ci_status" >&2' ERR
cd "$(dirname "$0")/.."
repo=$PWD
started=$(date +%s)

. "$(dirname "$0")/neighbours/common.sh"

work=$(mktemp -d /tmp/midwatch-neighbours.XXXXXX)
chmod 755 "$work"
pids=()
postfix_started=
# The command that puts Postfix's own certificate back, while postfix.sh has it present another one.
postfix_restore=()
user_created=
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "${#postfix_restore[@]}" -gt 0 ]; then "${postfix_restore[@]}" >/dev/null 2>&1 && postfix reload >/dev/null 2>&1 || true; fi
  if [ -n "$postfix_started" ]; then postfix stop >/dev/null 2>&1 || true; fi
  if [ -n "$user_created" ]; then userdel -r mwci >/dev/null 2>&1 || true; rm -f /var/mail/mwci; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

echo "-- installing icinga2 postfix prometheus-node-exporter spamassassin prometheus-alertmanager (apt-get)"
export DEBIAN_FRONTEND=noninteractive
if command -v debconf-set-selections >/dev/null; then
  printf '%s\n' "postfix postfix/main_mailer_type select Local only" "postfix postfix/mailname string localhost" \
    | debconf-set-selections
fi
packages=(icinga2 postfix prometheus-node-exporter spamassassin prometheus-alertmanager)
apt_install() { apt-get install -y -q --no-install-recommends "$@" >>"$work/apt.log" 2>&1; }
if ! apt_install "${packages[@]}"; then
  apt-get update -q >>"$work/apt.log" 2>&1 || true
  apt_install "${packages[@]}" || for p in "${packages[@]}"; do apt_install "$p" || true; done
fi
for p in "${packages[@]}"; do
  if installed "$p"; then
    echo "   $p $(dpkg-query -W -f='${Version}' "$p")"
  else
    echo "   $p: not installed ($(grep -m1 -E "^E: .*$p|Unable to locate package $p" "$work/apt.log" || echo 'apt-get failed'))"
  fi
done

echo "-- building midwatch and midwatch-sim (debug)"
cargo build --locked --quiet --bins -p midwatch -p midwatch-sim
bin=${CARGO_TARGET_DIR:-$repo/target}/debug
# A copy every user can run (Icinga runs the check as its own user, who may not reach the checkout).
install -d -m 0755 "$work/bin"
install -m 0755 "$bin/midwatch" "$bin/midwatch-sim" "$work/bin/"
midwatch=$work/bin/midwatch

"$work/bin/midwatch-sim" >"$work/sim.url" 2>"$work/sim.err" &
pids+=($!)
wait_for 20 test -s "$work/sim.url" || fail "midwatch-sim printed no URL: $(cat "$work/sim.err")"
url=$(head -1 "$work/sim.url")
echo "   simulated instance at $url"

# instance_config DIR OWNER: a config for the simulated instance in DIR (state directory and password file
# owned by OWNER), on stdout its path; the caller appends its sections.
instance_config() {
  install -d -m 0755 "$1"
  install -d -m 0700 -o "$2" "$1/state"
  install -m 0600 -o "$2" /dev/null "$1/instance_password"
  echo demo-password >"$1/instance_password"
  cat >"$1/midwatch.toml" <<EOF
[instance]
url = "$url"
user = "svc.midwatch"
password_file = "$1/instance_password"

[state]
directory = "$1/state"
EOF
  chmod 0644 "$1/midwatch.toml"
  echo "$1/midwatch.toml"
}

# The cycle's numbers, as midwatch reports them itself.
"$midwatch" check --config "$(instance_config "$work/json" root)" --format json --no-email --no-write \
  >"$work/check.json" || [ $? -eq 2 ] || fail "midwatch check --format json: $(head -c 300 "$work/check.json")"
findings=$(grep -m1 -o '"findings": *[0-9][0-9]*' "$work/check.json" | grep -o '[0-9]*$' || true)
[ -n "$findings" ] && [ "$findings" -gt 0 ] || fail "no findings in the demo data set's check --format json"

. "$(dirname "$0")/neighbours/icinga.sh"
. "$(dirname "$0")/neighbours/postfix.sh"
. "$(dirname "$0")/neighbours/node-exporter.sh"
. "$(dirname "$0")/neighbours/alertmanager.sh"

echo "-- real neighbours done in $(( $(date +%s) - started )) s"
