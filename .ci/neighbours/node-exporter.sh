# Sourced by .ci/neighbours.sh: `midwatch run` writes [metrics] textfile; prometheus-node-exporter's textfile
# collector reads it, and its /metrics carries the cycle's values.

# The series of a Prometheus text exposition, one a line, labels sorted and values as numbers, comments left out.
series() {
  perl -ne 'next if /^#/ || !/\S/; /^(\w+)(?:\{(.*)\})?\s+(\S+)/ or next;
    print "$1\{", join(",", sort split /,/, ($2 // "")), "} ", $3 + 0, "\n"' | sort
}

node_exporter_part() {
  echo "-- prometheus-node-exporter: the textfile of midwatch run"
  if ! installed prometheus-node-exporter; then
    skip "prometheus-node-exporter: the package prometheus-node-exporter could not be installed"; return
  fi
  echo "   $(prometheus-node-exporter --version 2>&1 | head -1)"
  local dir=$work/metrics config
  config=$(instance_config "$dir" root)
  install -d -m 0755 "$dir/textfile"
  cat >>"$config" <<EOF

[check]
schedule = "*/2 * * * * *"

[metrics]
textfile = "$dir/textfile/midwatch.prom"
EOF
  "$midwatch" run --config "$config" --no-email --no-write >"$dir/run.log" 2>&1 &
  local run=$!
  pids+=("$run")
  wait_for 30 test -s "$dir/textfile/midwatch.prom" || { cat "$dir/run.log"; fail "midwatch run wrote no textfile within 30 s"; }
  kill -TERM "$run"
  local status=0
  wait "$run" || status=$?
  [ "$status" -eq 0 ] || { cat "$dir/run.log"; fail "midwatch run exited $status on SIGTERM, expected 0"; }

  local port=19187
  prometheus-node-exporter --collector.disable-defaults --collector.textfile \
    --collector.textfile.directory="$dir/textfile" --web.listen-address="127.0.0.1:$port" >"$dir/exporter.log" 2>&1 &
  pids+=($!)
  # curl when the machine has it, else plain HTTP/1.0 over bash's /dev/tcp.
  scrape() {
    if command -v curl >/dev/null; then
      curl -fsS "http://127.0.0.1:$port/metrics" >"$dir/scraped.txt" 2>/dev/null
    else
      { exec 3<>"/dev/tcp/127.0.0.1/$port" && printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 \
        && sed '1,/^\r\?$/d' <&3 >"$dir/scraped.txt" && exec 3<&-; } 2>/dev/null && [ -s "$dir/scraped.txt" ]
    fi
  }
  wait_for 20 scrape || { cat "$dir/exporter.log"; fail "node_exporter did not answer on 127.0.0.1:$port within 20 s"; }
  grep -q '^node_textfile_scrape_error 0$' "$dir/scraped.txt" \
    || fail "node_textfile_scrape_error is not 0: $(grep node_textfile_scrape_error "$dir/scraped.txt"; cat "$dir/exporter.log")"
  series <"$dir/textfile/midwatch.prom" >"$dir/file.series"
  grep '^midwatch_' "$dir/scraped.txt" | series >"$dir/scraped.series"
  diff "$dir/file.series" "$dir/scraped.series" >"$dir/series.diff" \
    || { cat "$dir/series.diff"; fail "node_exporter's midwatch_* series differ from the textfile"; }
  grep -q '^midwatch_cycle_status{servicenow_instance="127.0.0.1"} 2$' "$dir/scraped.series" \
    || fail "midwatch_cycle_status is not 2 (CRITICAL): $(grep midwatch_cycle_status "$dir/scraped.series")"
  local sum
  sum=$(awk '/^midwatch_findings\{/ {s += $NF} END {print s + 0}' "$dir/scraped.series")
  [ "$sum" -eq "$findings" ] || fail "midwatch_findings add up to $sum, check --format json reports $findings"
  echo "   ok: node_textfile_scrape_error 0; $(wc -l <"$dir/scraped.series") midwatch_* series as written, findings $sum, status 2"
}
node_exporter_part
