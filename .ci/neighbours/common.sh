# The helpers every neighbour part uses, sourced by .ci/neighbours.sh and by a part run alone.
fail() { echo "FAIL $1"; exit 1; }
skip() { echo "SKIP $1"; }
# wait_for SECONDS COMMAND...: polls COMMAND every half second until it succeeds or SECONDS pass.
wait_for() {
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.5
  done
}
# installed PACKAGE: whether dpkg has it installed.
installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }
