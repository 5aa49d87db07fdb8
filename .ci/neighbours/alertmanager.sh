# Sourced by .ci/neighbours.sh, or run alone as root (`bash .ci/neighbours/alertmanager.sh`, after `cargo build
# --bins -p midwatch -p midwatch-sim`): two midwatch hosts — two `check`s whose configs differ only in their
# state directory — against one midwatch-sim post their findings to two peers of Debian 12's
# prometheus-alertmanager (0.25) clustered on loopback; a webhook receiver (python3's http.server) records every
# notification. It fails unless:
#   - exactly one firing notification per finding reaches the receiver, with exactly the labels of the README's
#     "Running on two hosts" (alertname, servicenow_instance, user, category, severity) and the annotations
#     summary (the finding's message) and description — a per-host label would make two;
#   - a silence added with amtool on one peer (it gossips to the other) keeps its user's notification away;
#   - after the user is fixed (SIGUSR1 to midwatch-sim) and both hosts check again, exactly one resolved
#     notification comes;
#   - a check that cannot read the instance raises MidwatchCheckFailed, notified once.
# The packaged service is stopped and disabled: the peers run on ports of their own.

if [ -z "${work:-}" ]; then
  # Run alone: what .ci/neighbours.sh would have set up.
  set -Eeuo pipefail
  trap 'ci_status=$?; [ "$BASH_SUBSHELL" -gt 0 ] || echo "FAIL ${BASH_SOURCE[0]}:$LINENO: \`$BASH_COMMAND\` exited $ci_status" >&2' ERR
  cd "$(dirname "${BASH_SOURCE[0]}")/../.."
  repo=$PWD
  . .ci/neighbours/common.sh
  work=$(mktemp -d /tmp/midwatch-alertmanager.XXXXXX)
  pids=()
  cleanup() {
    local p
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
  }
  trap 'cleanup 2>/dev/null' EXIT
  trap 'exit 130' INT TERM HUP
  bin=${CARGO_TARGET_DIR:-$repo/target}/debug
  [ -x "$bin/midwatch" ] && [ -x "$bin/midwatch-sim" ] \
    || fail "build first: cargo build --bins -p midwatch -p midwatch-sim ($bin/midwatch, $bin/midwatch-sim)"
  midwatch=$bin/midwatch
  if ! installed prometheus-alertmanager; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus-alertmanager \
      >"$work/apt.log" 2>&1 || true
  fi
fi

alertmanager_part() {
  echo "-- Alertmanager: two midwatch hosts, two clustered peers, one notification per finding"
  if ! installed prometheus-alertmanager; then
    skip "prometheus-alertmanager: the package prometheus-alertmanager could not be installed"; return
  fi
  if ! command -v python3 >/dev/null; then skip "prometheus-alertmanager: no python3 for the webhook receiver"; return; fi
  # The package starts its own service on 9093 where systemd runs; these peers are the test's.
  if command -v systemctl >/dev/null && systemctl is-enabled --quiet prometheus-alertmanager 2>/dev/null; then
    systemctl disable --now prometheus-alertmanager >/dev/null 2>&1 || true
  fi
  echo "   $(prometheus-alertmanager --version 2>&1 | head -1)"
  local dir=$work/alertmanager started_at
  started_at=$(date +%s)
  install -d -m 0755 "$dir"
  local sim_bin=$bin/midwatch-sim
  [ -x "$work/bin/midwatch-sim" ] && sim_bin=$work/bin/midwatch-sim

  # One simulated instance of its own: SIGUSR1 changes its data.
  "$sim_bin" >"$dir/sim.url" 2>"$dir/sim.err" &
  local sim=$!
  pids+=("$sim")
  wait_for 20 test -s "$dir/sim.url" || fail "midwatch-sim printed no URL: $(cat "$dir/sim.err")"
  local instance
  instance=$(head -1 "$dir/sim.url")

  # The webhook receiver: every notification's body, one JSON document a line.
  local hook_port=19099 web1=19093 web2=19095 gossip1=19094 gossip2=19096
  cat >"$dir/receiver.py" <<'EOF'
import http.server, json, sys
out = sys.argv[2]
class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with open(out, "a") as f:
            f.write(json.dumps(json.loads(body)) + "\n")
        self.send_response(200)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Receiver).serve_forever()
EOF
  : >"$dir/notifications.jsonl"
  python3 "$dir/receiver.py" "$hook_port" "$dir/notifications.jsonl" 2>"$dir/receiver.err" &
  pids+=($!)

  # One route: every alert its own group ('...'), sent at once, never repeated during the test. The second
  # peer waits --cluster.peer-timeout for the first's notification log before it notifies; that must stay below
  # group_interval (as Alertmanager's defaults, 15s and 5m, are), or its next flush lags behind the first's and
  # can notify an alert the first has just notified resolved (a stale view, not a second sender).
  cat >"$dir/alertmanager.yml" <<EOF
route:
  receiver: webhook
  group_by: ['...']
  group_wait: 1s
  group_interval: 3s
  repeat_interval: 1h
receivers:
  - name: webhook
    webhook_configs:
      - url: http://127.0.0.1:$hook_port/
        send_resolved: true
EOF
  # Two peers; gossip every 50ms, and the second waits 1s (not 15s) for the first's notification log.
  local peer am=()
  for peer in 1 2; do
    local web=$web1 gossip=$gossip1 other=$gossip2
    [ "$peer" = 2 ] && web=$web2 gossip=$gossip2 other=$gossip1
    prometheus-alertmanager --config.file="$dir/alertmanager.yml" --storage.path="$dir/data$peer" \
      --web.listen-address="127.0.0.1:$web" --cluster.listen-address="127.0.0.1:$gossip" \
      --cluster.peer="127.0.0.1:$other" --cluster.gossip-interval=50ms --cluster.pushpull-interval=2s \
      --cluster.settle-timeout=5s --cluster.peer-timeout=1s >"$dir/peer$peer.log" 2>&1 &
    am+=($!)
    pids+=($!)
  done
  # Ready, in a cluster of two, settled: only then do the peers notify.
  clustered() {
    local port
    for port in $web1 $web2; do
      python3 - "$port" <<'EOF' || return 1
import json, sys, urllib.request
status = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/api/v2/status", timeout=2))
sys.exit(0 if status["cluster"]["status"] == "ready" and len(status["cluster"]["peers"]) == 2 else 1)
EOF
    done
    grep -q "gossip settled" "$dir/peer1.log" && grep -q "gossip settled" "$dir/peer2.log"
  }
  wait_for 30 clustered || { tail -5 "$dir"/peer*.log; fail "the two Alertmanager peers did not form a cluster within 30 s"; }

  # am_host NAME [URL]: a config that differs from the other host's only in its state directory.
  am_host() {
    install -d -m 0755 "$dir/$1"
    install -d -m 0700 "$dir/$1/state"
    echo demo-password >"$dir/$1/instance_password"
    chmod 0600 "$dir/$1/instance_password"
    cat >"$dir/$1/midwatch.toml" <<EOF
[instance]
url = "${2:-$instance}"
user = "svc.midwatch"
password_file = "$dir/$1/instance_password"

[state]
directory = "$dir/$1/state"

[alertmanager]
urls = ["http://127.0.0.1:$web1", "http://127.0.0.1:$web2"]
timeout = "5s"
EOF
    echo "$dir/$1/midwatch.toml"
  }
  local a b
  a=$(am_host a)
  b=$(am_host b)
  [ "$(diff <(sed "s|$dir/a/|X|" "$a") <(sed "s|$dir/b/|X|" "$b"))" = "" ] || fail "the two hosts' configs differ beyond the state directory"

  # both_check OUT EXPECTED: both hosts at once, each `check --format json` (write-back on).
  both_check() {
    local sa=0 sb=0
    "$midwatch" check --config "$a" --format json >"$dir/$1.a.json" 2>"$dir/$1.a.err" & local pa=$!
    "$midwatch" check --config "$b" --format json >"$dir/$1.b.json" 2>"$dir/$1.b.err" & local pb=$!
    wait "$pa" || sa=$?
    wait "$pb" || sb=$?
    [ "$sa" -eq "$2" ] && [ "$sb" -eq "$2" ] \
      || fail "midwatch check exited $sa and $sb, expected $2: $(head -c 400 "$dir/$1.a.json" "$dir/$1.a.err" "$dir/$1.b.err")"
  }
  # verdict ARGS: the notifications judged by python3 (see its lines); prints what it found, fails on a mismatch.
  cat >"$dir/verdict.py" <<'EOF'
import json, sys
notifications = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
report = json.load(open(sys.argv[2]))
# What each host alerts: one alert per finding and per early warning, keyed by (alertname, user), with the
# labels and the summary the README's "Running on two hosts" gives them.
items = {}
for f in report["findings"]:
    items[("MidServerUser" + f["category"].capitalize(), f["user"])] = {
        "category": f["category"], "severity": "warning" if f["category"] == "configuration" else "critical",
        "summary": f["message"]}
for w in report.get("warnings", []):
    items[("MidServerUserWarning", w["user"])] = {"category": w["kind"], "severity": "warning", "summary": w["text"]}
findings = {f["user"]: f for f in report["findings"]}
silenced, fixed, stage = sys.argv[3], sys.argv[4], sys.argv[5]
count = {}
problems = []
for n in notifications:
    for alert in n["alerts"]:
        labels, name = alert["labels"], alert["labels"].get("alertname")
        key = (alert["status"], name, labels.get("user", ""))
        count[key] = count.get(key, 0) + 1
        if name == "MidwatchCheckFailed":
            if sorted(labels) != ["alertname", "servicenow_instance"]:
                problems.append(f"MidwatchCheckFailed labels {sorted(labels)}")
            if not alert["annotations"].get("summary", "").startswith("MIDWATCH UNKNOWN - "):
                problems.append(f"MidwatchCheckFailed summary {alert['annotations']}")
            continue
        if sorted(labels) != ["alertname", "category", "servicenow_instance", "severity", "user"]:
            problems.append(f"labels {sorted(labels)} of {labels.get('user')}: expected exactly alertname, category, servicenow_instance, severity, user")
        item = items.get((name, labels.get("user")))
        if item is None:
            problems.append(f"an alert {name} for {labels.get('user')}, who has no such finding or warning")
            continue
        expected = {"alertname": name, "category": item["category"], "servicenow_instance": "127.0.0.1",
                    "user": labels.get("user"), "severity": item["severity"]}
        if {k: labels.get(k) for k in expected} != expected:
            problems.append(f"labels {labels}, expected {expected}")
        if alert["annotations"].get("summary") != item["summary"] or not alert["annotations"].get("description"):
            problems.append(f"annotations {alert['annotations']} of {labels.get('user')}")
for (name, user) in items:
    want = 0 if user == silenced else 1
    got = count.get(("firing", name, user), 0)
    if got != want:
        problems.append(f"{got} firing {name} notification(s) for {user}, expected {want}" + (" (silenced)" if want == 0 else ""))
resolved = count.get(("resolved", "MidServerUser" + findings[fixed]["category"].capitalize(), fixed), 0)
if resolved != (1 if stage in ("fixed", "failed") else 0):
    problems.append(f"{resolved} resolved notification(s) for {fixed} at stage {stage}")
others = sum(n for (status, name, user), n in count.items() if status == "resolved" and user != fixed)
if others:
    problems.append(f"{others} resolved notification(s) for other users")
failed = count.get(("firing", "MidwatchCheckFailed", ""), 0)
if failed != (1 if stage == "failed" else 0):
    problems.append(f"{failed} MidwatchCheckFailed notification(s) at stage {stage}")
print(f"{len(notifications)} notification(s): " + ", ".join(f"{s} {u or n}={c}" for (s, n, u), c in sorted(count.items())))
if problems:
    print("\n".join(problems))
    sys.exit(1)
EOF
  verdict() { python3 "$dir/verdict.py" "$dir/notifications.jsonl" "$dir/first.a.json" "$silenced" midserver2 "$1"; }
  # settled N: N notifications have come, and nothing more within 6 s (a group_interval, the second peer's 1 s
  # wait for the first's notification log, and a margin): a duplicate would have come by then.
  at_least() { [ "$(wc -l <"$dir/notifications.jsonl")" -ge "$1" ]; }
  settled() {
    wait_for 30 at_least "$1" \
      || { verdict "$2" || true; fail "fewer than $1 notification(s) within 30 s at stage $2"; }
    sleep 6
  }

  # The findings, as both hosts will see them (a dry run posts and writes nothing); one user is silenced on
  # peer 1 for its MID Server's maintenance window, and the silence must reach peer 2.
  "$midwatch" check --config "$a" --format json --dry-run >"$dir/dry.json" 2>"$dir/dry.err" || [ $? -eq 2 ] \
    || fail "midwatch check --dry-run: $(head -c 300 "$dir/dry.json" "$dir/dry.err")"
  local silenced
  silenced=$(python3 -c 'import json,sys; print(next(f["user"] for f in json.load(open(sys.argv[1]))["findings"] if f["user"] != "midserver2"))' "$dir/dry.json")
  amtool silence add --alertmanager.url="http://127.0.0.1:$web1" --author=ci --comment="MID Server maintenance" \
    --duration=1h "user=$silenced" >"$dir/silence.id" || fail "amtool silence add user=$silenced failed"
  silence_gossiped() { [ -n "$(amtool silence query --alertmanager.url="http://127.0.0.1:$web2" -q "user=$silenced")" ]; }
  wait_for 10 silence_gossiped || fail "the silence of user=$silenced did not reach peer 2 within 10 s"

  # 1. Both hosts check at once: one firing notification per finding, none for the silenced user.
  both_check first 2
  local expected
  # One notification per finding and per early warning (the demo data's mid.healthy is refused from an unknown
  # address), none for the silenced user's one finding.
  expected=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(len(r["findings"]) + len(r.get("warnings", [])) - 1)' "$dir/first.a.json")
  settled "$expected" firing
  verdict firing || fail "the first checks of both hosts did not give exactly one notification per finding"
  echo "   ok: two hosts, $((expected + 1)) findings and warnings: $expected notifications, one each, the silenced $silenced none"

  # 2. midserver2 fixed, both hosts check again: exactly one resolved notification.
  kill -USR1 "$sim"
  wait_for 10 grep -q SIGUSR1 "$dir/sim.err" || fail "midwatch-sim did not take SIGUSR1"
  both_check second 2
  settled "$((expected + 1))" fixed
  verdict fixed || fail "fixing midserver2 did not give exactly one resolved notification"
  echo "   ok: midserver2 fixed, both hosts checked again: one resolved notification"

  # 3. The instance cannot be read (a closed port): MidwatchCheckFailed, notified once from both hosts.
  local closed
  closed=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  local blind_a blind_b sa=0 sb=0
  blind_a=$(am_host blind-a "http://127.0.0.1:$closed")
  blind_b=$(am_host blind-b "http://127.0.0.1:$closed")
  "$midwatch" check --config "$blind_a" --timeout 5s >"$dir/blind-a.out" 2>&1 & local pa=$!
  "$midwatch" check --config "$blind_b" --timeout 5s >"$dir/blind-b.out" 2>&1 & local pb=$!
  wait "$pa" || sa=$?
  wait "$pb" || sb=$?
  [ "$sa" -eq 3 ] && [ "$sb" -eq 3 ] || fail "checks of an unreadable instance exited $sa and $sb, expected 3: $(cat "$dir/blind-a.out")"
  settled "$((expected + 2))" failed
  verdict failed || fail "an unreadable instance did not give exactly one MidwatchCheckFailed notification"
  echo "   ok: an unreadable instance: one MidwatchCheckFailed notification ($(head -1 "$dir/blind-a.out" | cut -c1-60)…)"

  # A peer leaves its cluster for up to 10 s on SIGTERM; nothing here needs that.
  { for peer in "${am[@]}" "$sim"; do kill -KILL "$peer" && wait "$peer"; done; } >/dev/null 2>&1 || true
  echo "   Alertmanager part done in $(( $(date +%s) - started_at )) s"
}
alertmanager_part
