# Sourced by .ci/neighbours.sh: an Icinga 2 daemon runs the README's CheckCommand against the simulated
# instance; the PerfdataWriter records state, output and performance data of the check result.

icinga_part() {
  echo "-- Icinga 2: the README's CheckCommand in a running daemon"
  if ! installed icinga2; then skip "icinga2: the package icinga2 could not be installed"; return; fi
  echo "   $(icinga2 --version | head -1)"
  local user=nagios
  [ -r /etc/default/icinga2 ] && user=$(. /etc/default/icinga2; echo "${ICINGA2_USER:-nagios}")
  local dir=$work/icinga
  local config
  config=$(instance_config "$dir" "$user")
  install -d -m 0755 -o "$user" "$dir/perfdata"

  # The CheckCommand exactly as README.md has it, with the built binary in place of /usr/bin/midwatch.
  awk '/^object CheckCommand "midwatch" \{/ {on = 1} on {print} on && /^\}/ {exit}' "$repo/README.md" >"$dir/readme.conf"
  [ "$(grep -c '"/usr/bin/midwatch"' "$dir/readme.conf")" -eq 1 ] \
    || fail "Icinga 2: no CheckCommand \"midwatch\" running \"/usr/bin/midwatch\" found in README.md"
  sed "s|\"/usr/bin/midwatch\"|\"$midwatch\"|" "$dir/readme.conf" >"$dir/command.conf"
  cat >"$dir/icinga2.conf" <<EOF
include <itl>
const NodeName = "midwatch-ci"
object CheckerComponent "checker" { }
object FileLogger "ci" {
  path = "$dir/perfdata/icinga2.log"
  severity = "information"
}
include "command.conf"
object Host "midwatch-ci" {
  check_command = "dummy"
  check_interval = 1h
}
object Service "midwatch" {
  host_name = "midwatch-ci"
  check_command = "midwatch"
  vars.midwatch_config = "$config"
  check_interval = 5s
  retry_interval = 5s
  max_check_attempts = 1
}
object PerfdataWriter "ci" {
  service_perfdata_path = "$dir/perfdata/service-perfdata"
  service_temp_path = "$dir/perfdata/service-perfdata.tmp"
  host_perfdata_path = "$dir/perfdata/host-perfdata"
  host_temp_path = "$dir/perfdata/host-perfdata.tmp"
  service_format_template = "MIDWATCH_CI\tstate=\$service.state\$\toutput=\$service.output\$\tperfdata=\$service.perfdata\$"
  rotation_interval = 2s
}
EOF
  chmod 0644 "$dir"/*.conf
  icinga2 daemon -C -c "$dir/icinga2.conf" >"$dir/validate.log" 2>&1 || { cat "$dir/validate.log"; fail "Icinga 2 rejects the config"; }
  [ ! -x /usr/lib/icinga2/prepare-dirs ] || /usr/lib/icinga2/prepare-dirs /etc/default/icinga2
  icinga2 daemon -c "$dir/icinga2.conf" >"$dir/daemon.log" 2>&1 &
  local daemon=$!
  pids+=("$daemon")
  # The first rotated file that holds a check result is copied at once: the writer rotates every 2 s and
  # again when the daemon stops, and a rotation in the same second renames its (maybe empty) file onto the
  # same name.
  local file=$dir/record
  recorded() {
    local f
    for f in "$dir"/perfdata/service-perfdata.[0-9]*; do
      [ -f "$f" ] && grep -q $'\tperfdata=' "$f" 2>/dev/null && cp "$f" "$file" 2>/dev/null \
        && grep -q $'\tperfdata=' "$file" && return 0
    done
    return 1
  }
  if ! wait_for 60 recorded; then
    tail -20 "$dir/daemon.log" "$dir/perfdata/icinga2.log" || true
    fail "Icinga 2 recorded no check result of the service within 60 s"
  fi
  kill "$daemon" 2>/dev/null || true
  wait "$daemon" 2>/dev/null || true
  # One record: "MIDWATCH_CI<TAB>state=…<TAB>output=<the plugin output, several lines><TAB>perfdata=…".
  local first state output perfdata
  first=$(grep -m1 '^MIDWATCH_CI' "$file")
  state=$(cut -f2 <<<"$first"); state=${state#state=}
  output=$(cut -f3 <<<"$first"); output=${output#output=}
  perfdata=$(grep -m1 -o $'\tperfdata=.*' "$file"); perfdata=${perfdata#*perfdata=}
  echo "   the Icinga output line: $output"
  echo "   the Icinga state: $state; performance data: $perfdata"
  [ "$state" = CRITICAL ] || fail "Icinga 2 recorded state $state, expected CRITICAL for the demo data"
  [[ $output == "MIDWATCH CRITICAL - "* ]] || fail "Icinga 2's output does not begin with the status line: $output"
  local token n=0
  for token in $perfdata; do
    [[ $token =~ ^(\'[^\']+\'|[^\'=[:space:]]+)=-?[0-9.]+[a-zA-Z%]*(\;-?[0-9.]*){0,4}$ ]] \
      || fail "Icinga 2's performance data token does not parse: $token"
    n=$((n + 1))
  done
  [[ " $perfdata" == *" findings=$findings "* ]] || fail "Icinga 2's performance data lacks findings=$findings: $perfdata"
  # Icinga 2 logs a warning for performance data it cannot parse.
  if grep -i 'warning/\|critical/' "$dir/perfdata/icinga2.log" "$dir/daemon.log" | grep -i 'perf'; then
    fail "Icinga 2 logged a problem with the performance data"
  fi
  echo "   ok: CRITICAL, the status line first, $n performance data values parsed (findings=$findings)"

  # The README's Nagios command line, its \$ARGn\$ filled in, run as the same user (Nagios itself is not run).
  local line
  line=$(grep -m1 'command_line *"\?/usr/bin/midwatch' "$repo/README.md" | sed 's/^ *command_line *//')
  [ -n "$line" ] || fail "no Nagios command_line for /usr/bin/midwatch found in README.md"
  line=${line//\/usr\/bin\/midwatch/$midwatch}
  line=${line//\$ARG1\$/$config}
  line=${line//\$ARG2\$/4h}
  local status=0
  su -s /bin/sh -c "$line" "$user" >"$dir/nagios.out" 2>&1 || status=$?
  echo "   the Nagios command line's first line: $(head -1 "$dir/nagios.out")"
  [ "$status" -eq 2 ] || fail "the README's Nagios command line exited $status, expected 2 (CRITICAL)"
  head -1 "$dir/nagios.out" | grep -q '^MIDWATCH CRITICAL - .* | findings=' || fail "the Nagios command line's first line is not the status line"
}
icinga_part
