# Sourced by .ci/neighbours.sh: midwatch's email through Postfix (Debian's configuration, "Local only") to a
# local mailbox, plaintext and with STARTTLS (Debian's snakeoil certificate, then one made by `openssl req
# -x509`, which OpenSSL 3 marks CA:TRUE); SpamAssassin's local tests score the delivered message.

postfix_part() {
  echo "-- Postfix: midwatch's email to a local mailbox"
  if ! installed postfix; then skip "postfix: the package postfix could not be installed"; return; fi
  echo "   postfix $(postconf -h mail_version)"
  if ! postfix status >/dev/null 2>&1; then
    postfix start >"$work/postfix-start.log" 2>&1 || { cat "$work/postfix-start.log"; fail "postfix start failed"; }
    postfix_started=1
  fi
  if ! id mwci >/dev/null 2>&1; then useradd -m mwci; user_created=1; fi
  local mbox=/var/mail/mwci
  # email_case NAME URL TLS [EXTRA]: a fresh config and state directory; on stdout the config's path.
  email_case() {
    local config
    config=$(instance_config "$work/mail-$1" root)
    cat >>"$config" <<EOF

[email]
url = "$2"
tls = "$3"
from = "midwatch <midwatch@localhost>"
to = ["mwci@localhost"]
${4:-}
EOF
    echo "$config"
  }
  # send CONFIG OUT: one check, email on, no write-back; status 2 (CRITICAL) is the demo data's.
  send() { "$midwatch" check --config "$1" --no-write >"$2" 2>&1 || [ $? -eq 2 ] || { cat "$2"; fail "midwatch check failed"; }; }
  delivered() { [ -s "$mbox" ] && grep -q '^From ' "$mbox"; }
  # Emptied, never created: local(8) delivers only to a mailbox its user owns.
  empty_mbox() { [ ! -e "$mbox" ] || : >"$mbox"; }
  empty_mbox

  # (a) tls = "none" to 127.0.0.1:25.
  send "$(email_case none smtp://127.0.0.1:25 none)" "$work/mail-none.out"
  grep -q '^Email: email sent to 1 recipient' "$work/mail-none.out" || { cat "$work/mail-none.out"; fail "tls = \"none\": midwatch did not send"; }
  wait_for 30 delivered || fail "tls = \"none\": nothing reached $mbox within 30 s"
  cp "$mbox" "$work/message.mbox"
  check_message "$work/message.mbox"
  echo "   ok: tls = \"none\" delivered to $mbox: $(grep -m1 '^Subject:' "$work/message.mbox")"

  # STARTTLS with Postfix's own certificate (Debian's snakeoil, its CN the host name when it was made). Debian
  # links that certificate into /etc/ssl/certs, so the system trust store already trusts it; midwatch's trust
  # store is pointed at the CA bundle alone, as on a host whose relay has a certificate of a private CA.
  local cert key cn
  cert=$(postconf -h smtpd_tls_cert_file)
  cn=$(openssl x509 -in "$cert" -noout -subject 2>/dev/null | sed -n 's/.*CN *= *\([^,/]*\).*/\1/p')
  [ -n "$cn" ] || fail "cannot read the CN of Postfix's certificate $cert"
  getent ahostsv4 "$cn" | grep -q '^127\.' || fail "Postfix's certificate names $cn, which does not resolve to loopback"
  install -d "$work/no-cert-dir"
  local trust=(env SSL_CERT_DIR="$work/no-cert-dir" SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt)

  # (b) tls = "required" without ca_file: a certificate error, nothing delivered.
  empty_mbox
  local out=$work/mail-untrusted.out
  "${trust[@]}" "$midwatch" check --config "$(email_case untrusted "smtp://$cn:25" required)" --no-write >"$out" 2>&1 || true
  grep -i '^Email:' "$out" | grep -qi 'certificate' || { cat "$out"; fail "tls = \"required\" without ca_file: no certificate error"; }
  sleep 2
  ! delivered || fail "tls = \"required\" without ca_file: a message was delivered"
  echo "   ok: tls = \"required\" without ca_file: $(grep -m1 '^Email:' "$out")"
  if grep -m1 '^Email:' "$out" | grep -qi 'smtp down\|unavailable'; then
    fail "the certificate error is reported as the server being down: $(grep -m1 '^Email:' "$out")"
  fi

  # (c) tls = "required" with ca_file = Postfix's certificate: delivered.
  local config
  config=$(email_case trusted "smtp://$cn:25" required "ca_file = \"$cert\"")
  "$midwatch" config check --offline --config "$config" >"$work/mail-trusted.config-check" 2>&1 || true
  if grep -q 'unknown field `ca_file`' "$work/mail-trusted.config-check"; then
    fail "this midwatch has no [email] ca_file: $(cat "$work/mail-trusted.config-check")"
  else
    "${trust[@]}" "$midwatch" check --config "$config" --no-write >"$work/mail-trusted.out" 2>&1 || true
    grep -q '^Email: email sent to 1 recipient' "$work/mail-trusted.out" || { cat "$work/mail-trusted.out"; fail "tls = \"required\" with ca_file: not sent"; }
    wait_for 30 delivered || fail "tls = \"required\" with ca_file: nothing reached $mbox within 30 s"
    check_message "$mbox"
    echo "   ok: tls = \"required\" with ca_file = \"$cert\" delivered over STARTTLS to $cn"
  fi

  relay_certificate_case

  if ! installed spamassassin; then skip "spamassassin: the package spamassassin could not be installed"; return; fi
  echo "   $(spamassassin --version | head -1)"
  spamassassin -L -t <"$work/message.mbox" >"$work/spam.out" 2>"$work/spam.err" || { cat "$work/spam.err"; fail "spamassassin failed"; }
  local score
  score=$(grep -m1 '^X-Spam-Status:' "$work/spam.out" | sed -n 's/.*score=\(-\?[0-9.]*\).*/\1/p')
  [ -n "$score" ] || fail "spamassassin wrote no X-Spam-Status score"
  echo "   SpamAssassin (local tests) score: $score; rules: $(sed -n '/^Content analysis details/,$p' "$work/spam.out" | grep -oE '^ *-?[0-9.]+ [A-Z0-9_]+' | awk '{printf "%s%s(%s)", s, $2, $1; s=" "}')"
  awk -v s="$score" 'BEGIN { exit !(s < 1.0) }' || fail "SpamAssassin scores midwatch's email $score, expected below 1.0"
}

# relay_certificate_case: Postfix presents a certificate made the usual way, `openssl req -x509 -newkey rsa:2048
# -nodes -subj /CN=localhost -addext subjectAltName=DNS:localhost` (OpenSSL 3 marks it CA:TRUE). Without it in
# ca_file midwatch refuses it, saying it is marked as a CA; with ca_file = that very file the message is
# delivered over STARTTLS. No TLS library's log line is in either run's output. Postfix's own certificate is
# put back afterwards (and by cleanup when a check fails).
relay_certificate_case() {
  local cert=$work/relay-cert.pem key=$work/relay-key.pem out config
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost \
    -keyout "$key" -out "$cert" >"$work/openssl-req.log" 2>&1 || { cat "$work/openssl-req.log"; fail "openssl req -x509 failed"; }
  chmod 0600 "$key"
  chmod 0644 "$cert"
  openssl x509 -in "$cert" -noout -ext basicConstraints 2>/dev/null | grep -q 'CA:TRUE' \
    || fail "openssl req -x509 made a certificate without CA:TRUE: $(openssl x509 -in "$cert" -noout -ext basicConstraints 2>&1)"
  postfix_restore=(postconf -e "smtpd_tls_cert_file=$(postconf -h smtpd_tls_cert_file)" "smtpd_tls_key_file=$(postconf -h smtpd_tls_key_file)")
  postconf -e "smtpd_tls_cert_file=$cert" "smtpd_tls_key_file=$key"
  postfix reload >"$work/postfix-reload.log" 2>&1 || { cat "$work/postfix-reload.log"; fail "postfix reload failed"; }
  local wanted
  wanted=$(openssl x509 -in "$cert" -noout -fingerprint -sha256)
  presents() {
    [ "$(openssl s_client -starttls smtp -connect 127.0.0.1:25 -servername localhost </dev/null 2>/dev/null \
      | openssl x509 -noout -fingerprint -sha256 2>/dev/null)" = "$wanted" ]
  }
  wait_for 30 presents || fail "Postfix does not present the certificate made by openssl req -x509 within 30 s"
  getent ahosts localhost | grep -q '^\(127\.\|::1 \)' || fail "localhost does not resolve to loopback"

  # Without ca_file: refused as a certificate marked as a CA, nothing delivered.
  empty_mbox
  out=$work/mail-relay-untrusted.out
  "${trust[@]}" "$midwatch" check --config "$(email_case relay-untrusted smtp://localhost:25 required)" --no-write >"$out" 2>&1 || true
  grep -m1 '^Email:' "$out" | grep -q 'marked as a CA' || { cat "$out"; fail "openssl req -x509 certificate without ca_file: not said as marked as a CA"; }
  ! grep -qi 'rustls\|webpki' "$out" || { cat "$out"; fail "a TLS library's log line is in check's output"; }
  sleep 2
  ! delivered || fail "openssl req -x509 certificate without ca_file: a message was delivered"
  echo "   ok: openssl req -x509 certificate without ca_file: $(grep -m1 '^Email:' "$out" | cut -c1-160)…"

  # With ca_file = that very file: delivered over STARTTLS.
  out=$work/mail-relay-trusted.out
  config=$(email_case relay-trusted smtp://localhost:25 required "ca_file = \"$cert\"")
  "${trust[@]}" "$midwatch" check --config "$config" --no-write >"$out" 2>&1 || true
  grep -q '^Email: email sent to 1 recipient' "$out" || { cat "$out"; fail "openssl req -x509 certificate in ca_file: not sent"; }
  ! grep -qi 'rustls\|webpki' "$out" || { cat "$out"; fail "a TLS library's log line is in check's output"; }
  wait_for 30 delivered || fail "openssl req -x509 certificate in ca_file: nothing reached $mbox within 30 s"
  check_message "$mbox"
  echo "   ok: tls = \"required\" with ca_file = the openssl req -x509 certificate (CA:TRUE) delivered over STARTTLS to localhost"

  "${postfix_restore[@]}"
  postfix_restore=()
  postfix reload >/dev/null 2>&1 || fail "postfix reload (its own certificate back) failed"
}

# check_message MBOX: one message, multipart/alternative with text and HTML, the status line first in the
# text, the subject, and the documented message of the demo's authentication finding.
check_message() {
  [ "$(grep -c '^From ' "$1")" -eq 1 ] || fail "expected exactly one message in $1"
  grep -q '^Subject: \[midwatch\] CRITICAL ' "$1" || fail "the subject is not \"[midwatch] CRITICAL …\": $(grep -m1 '^Subject:' "$1")"
  grep -qi '^Content-Type: multipart/alternative' "$1" || fail "the message is not multipart/alternative"
  grep -qi '^Content-Type: text/plain' "$1" && grep -qi '^Content-Type: text/html' "$1" || fail "the message lacks a text/plain or text/html part"
  local decoded=$work/message.txt
  perl -MMIME::QuotedPrint -0777 -ne 'print decode_qp($_)' "$1" >"$decoded"
  awk '/^Content-Type: text\/plain/ {p = 1; next} p && /^$/ {getline; print; exit}' "$decoded" | grep -q '^MIDWATCH CRITICAL - ' \
    || fail "the text part does not begin with the status line"
  local documented="Login authentication failure for User midserver2 associated with 1 down MID Server. Check password on MID server."
  [ "$(tr -s ' \n' '  ' <"$decoded" | grep -oF "$documented" | wc -l)" -ge 2 ] \
    || fail "the documented message is not in both alternatives: $documented"
}
postfix_part
