//! Tips added to clap's usage errors where clap's words leave the reader guessing what to type instead.

/// The flags whose value is a duration.
const DURATION_FLAGS: [&str; 3] = ["--window", "--timeout", "--every"];

/// clap's error with a tip where a duration was written as two words (`--window 4 hours`, as the config file
/// may write it): clap takes the unit for an argument of its own ("unexpected argument 'hours' found"). `args`
/// is the command line, the program's name first.
pub(super) fn with_hint(mut e: clap::Error, args: &[String]) -> clap::Error {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::UnknownArgument {
        return e;
    }
    let Some(ContextValue::String(unexpected)) = e.get(ContextKind::InvalidArg) else { return e };
    if let Some(hint) = split_duration(args, unexpected) {
        e.insert(ContextKind::Suggested, ContextValue::StyledStrs(vec![hint.into()]));
    }
    e
}

/// `a duration is one argument: write --window 4h (or --window "4 hours")`, when `unit` follows a number
/// given to a duration flag. (`--window=4 hours` is refused for its value "4" first, whose message says that a
/// unit is needed.)
fn split_duration(args: &[String], unit: &str) -> Option<String> {
    let short = match unit.to_ascii_lowercase().as_str() {
        "s" | "sec" | "secs" | "second" | "seconds" => "s",
        "m" | "min" | "mins" | "minute" | "minutes" => "m",
        "h" | "hr" | "hrs" | "hour" | "hours" => "h",
        "d" | "day" | "days" => "d",
        "w" | "week" | "weeks" => "w",
        _ => return None,
    };
    let (flag, number) = args.windows(3).find_map(|w| {
        let given = DURATION_FLAGS.contains(&w[0].as_str()) && w[1].parse::<u64>().is_ok() && w[2] == unit;
        given.then_some((&w[0], &w[1]))
    })?;
    let unit = unit.to_ascii_lowercase();
    Some(format!("a duration is one argument: write {flag} {number}{short} (or {flag} \"{number} {unit}\")"))
}
