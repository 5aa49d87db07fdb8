//! The service's keys (`[check] schedule` and `jitter`, `[metrics]`, `[state]`), parsed as under a
//! systemd unit.

use std::path::Path;
use std::time::Duration;

/// The environment systemd gives the service: a state directory and a credential.
struct UnitEnvironment;

impl midwatch::config::Environment for UnitEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        match name {
            "STATE_DIRECTORY" => Some("/var/lib/midwatch/acme:/var/lib/other".into()),
            "CREDENTIALS_DIRECTORY" => Some("/run/credentials/midwatch@acme.service".into()),
            _ => None,
        }
    }

    fn read_file(&self, path: &Path) -> std::io::Result<String> {
        match path.to_str() {
            Some("/run/credentials/midwatch@acme.service/instance_password") => Ok("pw\n".into()),
            _ => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
        }
    }
}

fn parse_service_config(extra: &str) -> Result<midwatch::config::Config, String> {
    let text = format!(
        "[instance]\nurl = \"https://acme.service-now.com\"\nuser = \"svc\"\npassword_file = \"instance_password\"\n{extra}"
    );
    midwatch::config::Config::parse("t.toml", &text, &UnitEnvironment).map_err(|e| e.to_string())
}

#[test]
fn service_keys_default_to_no_jitter_no_metrics_and_the_units_state_directory() {
    let c = parse_service_config("").expect("valid");
    assert_eq!(c.check.schedule, "0 0 */4 * * *");
    assert_eq!(c.check.jitter, Duration::ZERO);
    assert_eq!(c.metrics.textfile, None);
    assert_eq!(c.state_directory, Path::new("/var/lib/midwatch/acme"), "the first $STATE_DIRECTORY");
    let c = parse_service_config(
        "[check]\njitter = \"5m\"\n[metrics]\ntextfile = \"/run/midwatch/m.prom\"\n[state]\ndirectory = \"/srv/mw\"\n",
    )
    .expect("valid");
    assert_eq!(c.check.jitter, Duration::from_secs(300));
    assert_eq!(c.metrics.textfile.as_deref(), Some(Path::new("/run/midwatch/m.prom")));
    assert_eq!(c.state_directory, Path::new("/srv/mw"), "an explicit directory wins");
}

#[test]
fn service_keys_are_validated_with_their_names() {
    for (extra, expected) in [
        ("[check]\nschedule = \"0 */5 * * *\"\n", "[check] schedule = \"0 */5 * * *\" needs 6 fields"),
        ("[check]\nschedule = \"0 61 * * * *\"\n", "is not a cron expression"),
        ("[check]\nschedule = \"0 0 0 1 1 * 2020\"\n", "never fires again"),
        ("[check]\njitter = \"soon\"\n", "[check] jitter = \"soon\" is not a duration"),
        ("[check]\njitter = \"2d\"\n", "[check] jitter must be at most 1d"),
        ("[metrics]\ntextfile = \"/run/midwatch/metrics.txt\"\n", "expected a file name ending in .prom"),
        ("[metrics]\nfile = \"/run/m.prom\"\n", "unknown field `file`"),
    ] {
        let err = parse_service_config(extra).expect_err(extra);
        assert!(err.contains(expected), "{extra:?}: {err}");
    }
}
