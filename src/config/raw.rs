//! The file as written: TOML text into one raw serde struct per section, naming every problem of the file in
//! one pass. serde's `deny_unknown_fields` would stop at the first unknown key, so the text is parsed into a
//! [`toml::Table`] first and each section's keys are compared with the fields of its raw struct; a value of
//! the wrong TOML type is named with its key, and the section is still read without it.

use serde::de::{self, DeserializeOwned, Visitor};

/// The sections of the file, in the order problems are reported.
const SECTIONS: &[&str] = &["instance", "check", "email", "alertmanager", "state", "log", "metrics"];

/// Keys whose value is an inline secret: a wrong-type message must not echo the value.
const SECRET_KEYS: &[&str] = &["password", "client_secret"];

/// A parsed file whose sections are taken out one by one; [`RawFile::finish`] names what is left.
pub(super) struct RawFile {
    table: toml::Table,
}

/// One section as read: its raw struct (without any key that was unknown or of the wrong type), and the keys
/// whose value had the wrong type.
pub(super) struct RawSection<T> {
    name: &'static str,
    present: bool,
    raw: T,
    mistyped: Vec<String>,
}

impl<T> RawSection<T> {
    /// Whether the file has this section at all.
    pub(super) fn is_present(&self) -> bool {
        self.present
    }

    /// Runs the section's validation on the raw struct. A key of the wrong type was already named and is absent
    /// from the raw struct, so what validation says about its absence ("url is required", "set exactly one of
    /// password_file, …") is left out; every other problem is kept.
    pub(super) fn validate<V>(self, problems: &mut Vec<String>, validate: impl FnOnce(T, &mut Vec<String>) -> V) -> V {
        let mut own = Vec::new();
        let validated = validate(self.raw, &mut own);
        problems.extend(own.into_iter().filter(|p| !self.mistyped.iter().any(|key| is_about(p, self.name, key))));
        validated
    }
}

/// Whether `problem` is about `key` of `[section]` (or, for `password_file` / `password_env`, about the secret
/// as a whole): the problems of a section all begin with `[section] key`.
fn is_about(problem: &str, section: &str, key: &str) -> bool {
    let key = key.strip_suffix("_file").or_else(|| key.strip_suffix("_env")).unwrap_or(key);
    problem
        .strip_prefix(&format!("[{section}] {key}"))
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', ':', '_', '[']))
}

impl RawFile {
    /// Parses TOML text. A syntax error stops everything else: it is the one problem returned.
    pub(super) fn parse(text: &str) -> Result<RawFile, String> {
        toml::from_str::<toml::Table>(text).map(|table| RawFile { table }).map_err(|e| syntax_error(text, &e))
    }

    /// Takes `[name]` out of the file, naming its unknown keys and the values of the wrong type. A missing
    /// section reads as empty (all defaults); so does a section that is not a table, which is named.
    pub(super) fn section<T: DeserializeOwned + Default>(
        &mut self,
        name: &'static str,
        problems: &mut Vec<String>,
    ) -> RawSection<T> {
        let mut section = RawSection { name, present: false, raw: T::default(), mistyped: Vec::new() };
        let Some(value) = self.table.remove(name) else {
            return section;
        };
        section.present = true;
        let toml::Value::Table(table) = value else {
            problems.push(format!(
                "{name} = … is a value, but [{name}] is a section: write a line [{name}] and put its keys below it"
            ));
            return section;
        };
        let known = field_names::<T>();
        let mut good = toml::Table::new();
        for (key, value) in table {
            if !known.contains(&key.as_str()) {
                problems.push(unknown_key(name, &key, known));
                continue;
            }
            let single = toml::Table::from_iter([(key.clone(), value.clone())]);
            match T::deserialize(toml::Value::Table(single)) {
                Ok(_) => {
                    good.insert(key, value);
                }
                Err(e) => {
                    problems.push(wrong_type(name, &key, &e));
                    section.mistyped.push(key);
                }
            }
        }
        // Every remaining key deserialized alone, and no raw struct has a rule across keys, so this succeeds.
        match T::deserialize(toml::Value::Table(good)) {
            Ok(raw) => section.raw = raw,
            Err(e) => {
                problems.push(format!("[{name}] cannot be read ({}): see config/midwatch.example.toml", one_line(&e)))
            }
        }
        section
    }

    /// Names every top-level key that is not a section this version knows.
    pub(super) fn finish(self, problems: &mut Vec<String>) {
        let sections = SECTIONS.iter().map(|s| format!("[{s}]")).collect::<Vec<_>>().join(", ");
        for (key, value) in self.table {
            let problem = match (&value, suggestion(&key, SECTIONS)) {
                (toml::Value::Table(_), Some(close)) => {
                    format!("unknown section [{key}]: did you mean [{close}]?")
                }
                (toml::Value::Table(_), None) => {
                    format!("unknown section [{key}]: remove it; the sections are {sections}")
                }
                _ => match owners_of(&key, None) {
                    Some(sections) => format!("`{key}` is outside any section: move it below the {sections} line"),
                    None => format!("unknown field `{key}` outside any section: keys belong in one of {sections}"),
                },
            };
            problems.push(problem);
        }
    }
}

/// The message of an unknown key: the close spelling of a key of this section, else the section it belongs
/// in, else the keys this section has.
fn unknown_key(section: &str, key: &str, known: &[&str]) -> String {
    if let Some(close) = suggestion(key, known) {
        return format!("[{section}] unknown field `{key}`: did you mean `{close}`?");
    }
    if let Some(others) = owners_of(key, Some(section)) {
        return format!("[{section}] unknown field `{key}`: it belongs in {others}");
    }
    format!(
        "[{section}] unknown field `{key}`: remove it; [{section}] has {} (config/midwatch.example.toml documents \
         each)",
        known.join(", ")
    )
}

/// The sections other than `except` that have `key`, as `[a]` or `[a] or [b]`.
fn owners_of(key: &str, except: Option<&str>) -> Option<String> {
    let owners: Vec<String> = SECTIONS
        .iter()
        .filter(|s| Some(**s) != except && section_keys(s).contains(&key))
        .map(|s| format!("[{s}]"))
        .collect();
    (!owners.is_empty()).then(|| owners.join(" or "))
}

/// The keys of a section, from its raw struct.
fn section_keys(section: &str) -> &'static [&'static str] {
    match section {
        "instance" => field_names::<super::instance::RawInstance>(),
        "check" => field_names::<super::check::RawCheck>(),
        "email" => field_names::<super::email::RawEmail>(),
        "alertmanager" => field_names::<super::alertmanager::RawAlertmanager>(),
        "state" => field_names::<super::state::RawState>(),
        "log" => field_names::<super::log::RawLog>(),
        "metrics" => field_names::<super::metrics::RawMetrics>(),
        _ => &[],
    }
}

fn wrong_type(section: &str, key: &str, e: &toml::de::Error) -> String {
    if SECRET_KEYS.contains(&key) {
        // serde's message quotes the value, and this value is a secret.
        format!("[{section}] {key} must be a string in quotes (the value is not shown: it is a secret)")
    } else {
        // serde names Rust types; the file has TOML types.
        let message = one_line(e).replace("expected i64", "expected an integer (without quotes)");
        format!("[{section}] {key}: {message}")
    }
}

fn one_line(e: &toml::de::Error) -> String {
    e.message().trim().lines().map(str::trim).collect::<Vec<_>>().join("; ")
}

/// `line L, column C: message`, without toml's excerpt of the line (which could show an inline secret).
fn syntax_error(text: &str, e: &toml::de::Error) -> String {
    let message = one_line(e);
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("not valid TOML at line {line}, column {column}: {message}")
        }
        None => format!("not valid TOML: {message}"),
    }
}

/// The candidate a typo most likely meant: at most one edit per three characters (and at least one), ignoring
/// case and `-` for `_`.
fn suggestion<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    crate::spelling::closest(word, candidates.iter().copied(), 1).into_iter().next()
}

/// The field names of a raw section struct, as serde's derive lists them: exactly the keys the section knows,
/// so there is no second list to keep in step with the struct.
fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut names: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldNames(&mut names));
    names
}

/// A deserializer that only records the field list a derived `Deserialize` passes to `deserialize_struct`.
struct FieldNames<'a>(&'a mut &'static [&'static str]);

impl<'de> de::Deserializer<'de> for FieldNames<'_> {
    type Error = de::value::Error;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("only the field names are read"))
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_are_the_raw_structs_fields() {
        assert!(section_keys("instance").contains(&"password_file"));
        assert!(section_keys("email").contains(&"to"));
        assert_eq!(section_keys("metrics"), &["textfile"]);
        for section in SECTIONS {
            assert!(!section_keys(section).is_empty(), "{section}");
        }
    }

    #[test]
    fn a_typo_suggests_the_key_it_most_likely_meant() {
        assert_eq!(suggestion("pasword_file", section_keys("instance")), Some("password_file"));
        assert_eq!(suggestion("windw", section_keys("check")), Some("window"));
        assert_eq!(suggestion("Page-Size", section_keys("instance")), Some("page_size"));
        assert_eq!(suggestion("extra", SECTIONS), None);
        assert_eq!(suggestion("x", &["to"]), None, "a short word suggests nothing far from it");
        assert_eq!(suggestion("emial", SECTIONS), Some("email"));
    }

    #[test]
    fn a_syntax_error_names_line_and_column_without_echoing_the_line() {
        let text = "[instance]\npassword = \"s3cret\nuser = \"x\"\n";
        let Err(e) = RawFile::parse(text) else { panic!("not TOML") };
        assert!(e.starts_with("not valid TOML at line 2, column "), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
}
