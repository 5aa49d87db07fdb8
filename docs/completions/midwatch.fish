# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_midwatch_global_optspecs
    string join \n h/help V/version
end

function __fish_midwatch_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_midwatch_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_midwatch_using_subcommand
    set -l cmd (__fish_midwatch_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c midwatch -n "__fish_midwatch_needs_command" -s h -l help -d 'Print help'
complete -c midwatch -n "__fish_midwatch_needs_command" -s V -l version -d 'Print version'
complete -c midwatch -n "__fish_midwatch_needs_command" -f -a "check" -d 'Run one full cycle now, writing ecc_agent_issue and emailing the findings; print the report, exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN'
complete -c midwatch -n "__fish_midwatch_needs_command" -f -a "completions" -d 'Print the shell completion script for bash, zsh or fish'
complete -c midwatch -n "__fish_midwatch_needs_command" -f -a "config" -d 'Validate the configuration file'
complete -c midwatch -n "__fish_midwatch_needs_command" -f -a "demo" -d 'Run a complete cycle against a simulated instance inside the process (no config, no account)'
complete -c midwatch -n "__fish_midwatch_needs_command" -f -a "run" -d 'Run cycles on the [check] schedule until SIGTERM/SIGINT: the systemd service (Type=notify)'
complete -c midwatch -n "__fish_midwatch_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c midwatch -n "__fish_midwatch_using_subcommand check" -l config -d 'The configuration file' -r -F
complete -c midwatch -n "__fish_midwatch_using_subcommand check" -l window -d 'The sampling period (e.g. 5m, 4h, 1d); at least 5m, at most 30d. Default: [check] window; with --until-ok, 5m (the MID Server heartbeat)' -r
complete -c midwatch -n "__fish_midwatch_using_subcommand check" -l timeout -d 'The whole check\'s deadline (e.g. 50s); when it passes, the check says what it was waiting for and exits 3. Default: [check] timeout (50s, below the 60s a monitoring plugin gets). With --until-ok: the whole watch (default 30m); each round then has [check] timeout' -r
complete -c midwatch -n "__fish_midwatch_using_subcommand check" -l detail -d 'What the text report shows' -r -f -a "summary\t'Counts by condition, no names'
detailed\t'Named findings by category, with remediation and the MID Server ID map'"
complete -c midwatch -n "__fish_midwatch_using_subcommand check" -l format -d 'Output format' -r -f -a "text\t''
json\t''"
complete -c midwatch -n "__fish_midwatch_using_subcommand check" -l user -d 'Check only this MID Server user (sys_user.user_name, in any case, as the instance compares names); repeat for more. The report, the status and write-back cover only the selected users; no email is sent' -r
complete -c midwatch -n "__fish_midwatch_using_subcommand check" -l mid-server -d 'Check only the users configured on this MID Server (ecc_agent.name, in any case); repeat for more' -r
complete -c midwatch -n "__fish_midwatch_using_subcommand check" -l every -d 'With --until-ok: how often to check again (e.g. 30s, 2m); 10s to 1h. Default: 1m' -r
complete -c midwatch -n "__fish_midwatch_using_subcommand check" -l dry-run -d 'Read and evaluate, print what would be written and sent, and write and send nothing'
complete -c midwatch -n "__fish_midwatch_using_subcommand check" -l show-email -d 'Print the text of this check\'s email after the report (with --dry-run: of the email it would send, sending nothing)'
complete -c midwatch -n "__fish_midwatch_using_subcommand check" -s v -l verbose -d 'Log to stderr: -v info, -vv debug, -vvv trace (RUST_LOG overrides). Without it, only warnings and errors, and, when stdout is not a terminal, after the report, so that its first line stays the status'
complete -c midwatch -n "__fish_midwatch_using_subcommand check" -l until-ok -d 'After a fix: run the check again every --every until every checked user is clear (exit 0), or until --timeout (then the last status). Each round says every watched user\'s state; Ctrl-C ends it with the last status'
complete -c midwatch -n "__fish_midwatch_using_subcommand check" -l no-email -d 'Do not send email'
complete -c midwatch -n "__fish_midwatch_using_subcommand check" -l no-write -d 'Do not write ecc_agent_issue'
complete -c midwatch -n "__fish_midwatch_using_subcommand check" -l no-alerts -d 'Do not post alerts to [alertmanager]'
complete -c midwatch -n "__fish_midwatch_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c midwatch -n "__fish_midwatch_using_subcommand completions" -s h -l help -d 'Print help'
complete -c midwatch -n "__fish_midwatch_using_subcommand config; and not __fish_seen_subcommand_from check help" -s h -l help -d 'Print help'
complete -c midwatch -n "__fish_midwatch_using_subcommand config; and not __fish_seen_subcommand_from check help" -f -a "check" -d 'Validate the config file and name every problem found'
complete -c midwatch -n "__fish_midwatch_using_subcommand config; and not __fish_seen_subcommand_from check help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c midwatch -n "__fish_midwatch_using_subcommand config; and __fish_seen_subcommand_from check" -l config -d 'The configuration file' -r -F
complete -c midwatch -n "__fish_midwatch_using_subcommand config; and __fish_seen_subcommand_from check" -l offline -d 'Only validate the file; do not contact the instance'
complete -c midwatch -n "__fish_midwatch_using_subcommand config; and __fish_seen_subcommand_from check" -s h -l help -d 'Print help'
complete -c midwatch -n "__fish_midwatch_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "check" -d 'Validate the config file and name every problem found'
complete -c midwatch -n "__fish_midwatch_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c midwatch -n "__fish_midwatch_using_subcommand demo" -l detail -d 'What the text report shows' -r -f -a "summary\t'Counts by condition, no names'
detailed\t'Named findings by category, with remediation and the MID Server ID map'"
complete -c midwatch -n "__fish_midwatch_using_subcommand demo" -l format -d 'Output format' -r -f -a "text\t''
json\t''"
complete -c midwatch -n "__fish_midwatch_using_subcommand demo" -l auth -d 'How the demo signs in to its simulated instance: basic, oauth_client_credentials (alias oauth) or oauth_password' -r -f -a "basic\t'Basic auth, user and password on every request'
oauth_client_credentials\t'OAuth client credentials grant (Basic auth refused by the simulated instance)'
oauth_password\t'OAuth password grant with a refresh token (Basic auth refused by the simulated instance)'"
complete -c midwatch -n "__fish_midwatch_using_subcommand demo" -l keep -d 'Keep the emails the demo\'s SMTP server received (.eml files): in DIR, or, without DIR, in its temporary directory, which then stays (midwatch-demo-* under $TMPDIR, else /tmp)' -r -F
complete -c midwatch -n "__fish_midwatch_using_subcommand demo" -l until-ok -d 'Show the remediation loop instead: a full check, then `check --user midserver2 --until-ok` in simulated time, midserver2 fixed after its second round'
complete -c midwatch -n "__fish_midwatch_using_subcommand demo" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c midwatch -n "__fish_midwatch_using_subcommand run" -l config -d 'The configuration file' -r -F
complete -c midwatch -n "__fish_midwatch_using_subcommand run" -l window -d 'The sampling period of every cycle (e.g. 4h); at least 5m, at most 30d. Default: [check] window' -r
complete -c midwatch -n "__fish_midwatch_using_subcommand run" -l timeout -d 'The deadline of every cycle (e.g. 5m). Default: [check] timeout' -r
complete -c midwatch -n "__fish_midwatch_using_subcommand run" -l no-email -d 'Do not send email'
complete -c midwatch -n "__fish_midwatch_using_subcommand run" -l no-write -d 'Do not write ecc_agent_issue'
complete -c midwatch -n "__fish_midwatch_using_subcommand run" -l no-alerts -d 'Do not post alerts to [alertmanager]'
complete -c midwatch -n "__fish_midwatch_using_subcommand run" -s h -l help -d 'Print help'
complete -c midwatch -n "__fish_midwatch_using_subcommand help; and not __fish_seen_subcommand_from check completions config demo run help" -f -a "check" -d 'Run one full cycle now, writing ecc_agent_issue and emailing the findings; print the report, exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN'
complete -c midwatch -n "__fish_midwatch_using_subcommand help; and not __fish_seen_subcommand_from check completions config demo run help" -f -a "completions" -d 'Print the shell completion script for bash, zsh or fish'
complete -c midwatch -n "__fish_midwatch_using_subcommand help; and not __fish_seen_subcommand_from check completions config demo run help" -f -a "config" -d 'Validate the configuration file'
complete -c midwatch -n "__fish_midwatch_using_subcommand help; and not __fish_seen_subcommand_from check completions config demo run help" -f -a "demo" -d 'Run a complete cycle against a simulated instance inside the process (no config, no account)'
complete -c midwatch -n "__fish_midwatch_using_subcommand help; and not __fish_seen_subcommand_from check completions config demo run help" -f -a "run" -d 'Run cycles on the [check] schedule until SIGTERM/SIGINT: the systemd service (Type=notify)'
complete -c midwatch -n "__fish_midwatch_using_subcommand help; and not __fish_seen_subcommand_from check completions config demo run help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c midwatch -n "__fish_midwatch_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "check" -d 'Validate the config file and name every problem found'
