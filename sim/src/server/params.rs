//! The `sysparm_*` parameters of a request, validated as the instance does.

use super::*;

/// The sysparm_* parameters of a request, validated.
#[derive(Debug, Default)]
pub(super) struct Params {
    pub(super) query: Query,
    pub(super) fields: Option<Vec<String>>,
    pub(super) limit: usize,
    pub(super) offset: usize,
    pub(super) exclude_reference_link: bool,
    pub(super) suppress_pagination_header: bool,
}

pub(super) const LIST_PARAMS: &[&str] = &[
    "sysparm_query",
    "sysparm_fields",
    "sysparm_limit",
    "sysparm_offset",
    "sysparm_exclude_reference_link",
    "sysparm_display_value",
    "sysparm_no_count",
    "sysparm_suppress_pagination_header",
];
pub(super) const RECORD_PARAMS: &[&str] =
    &["sysparm_fields", "sysparm_exclude_reference_link", "sysparm_display_value"];
pub(super) const WRITE_PARAMS: &[&str] =
    &["sysparm_fields", "sysparm_exclude_reference_link", "sysparm_display_value", "sysparm_input_display_value"];

pub(super) fn parse_bool(name: &str, value: &str) -> Result<bool, Reply> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Reply::unsupported(format!("fake instance expects true or false for {name}, got {value:?}"))),
    }
}

pub(super) fn parse_usize(name: &str, value: &str) -> Result<usize, Reply> {
    value.parse::<usize>().map_err(|_| {
        Reply::unsupported(format!("fake instance expects a non-negative integer for {name}, got {value:?}"))
    })
}

pub(super) fn parse_params(pairs: &[(String, String)], allowed: &[&str]) -> Result<Params, Reply> {
    let mut params = Params { limit: DEFAULT_LIMIT, ..Params::default() };
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in pairs {
        if !allowed.contains(&name.as_str()) {
            return Err(Reply::unsupported(format!(
                "fake instance does not support parameter {name} here (supported: {})",
                allowed.join(", ")
            )));
        }
        if seen.contains(&name.as_str()) {
            return Err(Reply::unsupported(format!("fake instance: parameter {name} given more than once")));
        }
        seen.push(name);
        match name.as_str() {
            "sysparm_query" => {
                params.query = Query::parse(value).map_err(|e| Reply::unsupported(e.to_string()))?;
            }
            "sysparm_fields" => {
                let fields: Vec<String> =
                    value.split(',').map(str::trim).filter(|f| !f.is_empty()).map(str::to_string).collect();
                if let Some(bad) = fields.iter().find(|f| !f.split('.').all(is_identifier)) {
                    return Err(Reply::unsupported(format!(
                        "fake instance: invalid field name {bad:?} in sysparm_fields"
                    )));
                }
                params.fields = (!fields.is_empty()).then_some(fields);
            }
            "sysparm_limit" => {
                params.limit = parse_usize(name, value)?;
                if params.limit == 0 {
                    return Err(Reply::unsupported("fake instance expects sysparm_limit >= 1".to_string()));
                }
            }
            "sysparm_offset" => params.offset = parse_usize(name, value)?,
            "sysparm_exclude_reference_link" => {
                params.exclude_reference_link = parse_bool(name, value)?;
            }
            "sysparm_suppress_pagination_header" => {
                params.suppress_pagination_header = parse_bool(name, value)?;
            }
            "sysparm_no_count" => {
                parse_bool(name, value)?;
            }
            "sysparm_display_value" | "sysparm_input_display_value" if value != "false" => {
                return Err(Reply::unsupported(format!("fake instance supports only {name}=false, got {value:?}")));
            }
            _ => {}
        }
    }
    Ok(params)
}

// ---------------------------------------------------------------------------------------------
// Reading
