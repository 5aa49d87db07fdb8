//! The stored data as the handlers read it, and rows rendered as the Table API answers them (dot-walks, references, error envelopes).

use super::*;

/// Where each stored row of every table is, by sys_id, for dot-walks and record paths. Rebuilt after
/// an outside edit; a create adds its row.
#[derive(Debug, Default)]
pub(crate) struct SysIdIndex {
    pub(super) tables: HashMap<String, HashMap<String, usize>>,
    pub(super) valid: bool,
}

impl SysIdIndex {
    pub(crate) fn invalidate(&mut self) {
        self.valid = false;
    }

    pub(crate) fn rebuild(&mut self, dataset: &Dataset) {
        self.tables = dataset
            .tables
            .iter()
            .map(|(t, rows)| {
                (t.clone(), rows.iter().enumerate().map(|(i, r)| (field_string(r, "sys_id"), i)).collect())
            })
            .collect();
        self.valid = true;
    }

    pub(crate) fn insert(&mut self, table: &str, sys_id: &str, at: usize) {
        if self.valid {
            self.tables.entry(table.to_string()).or_default().insert(sys_id.to_string(), at);
        }
    }

    pub(crate) fn find(&self, table: &str, sys_id: &str) -> Option<usize> {
        self.tables.get(table)?.get(sys_id).copied()
    }
}

/// The stored data as the handlers read it.
#[derive(Clone, Copy)]
pub(super) struct View<'a> {
    pub(super) dataset: &'a Dataset,
    pub(super) index: &'a SysIdIndex,
}

impl<'a> View<'a> {
    pub(super) fn of(state: &'a State) -> View<'a> {
        View { dataset: &state.dataset, index: &state.index }
    }

    pub(super) fn row(&self, table: &str, sys_id: &str) -> Option<&'a Map<String, Value>> {
        let rows = self.dataset.tables.get(table)?;
        match self.index.find(table, sys_id) {
            Some(i) => rows.get(i).filter(|r| field_string(r, "sys_id") == sys_id),
            None if !self.index.valid => rows.iter().find(|r| field_string(r, "sys_id") == sys_id),
            None => None,
        }
    }

    /// A field of a row as comparable text (dot-walks followed).
    pub(super) fn text(&self, row: RowRef<'a>, field: &str) -> Cow<'a, str> {
        match row {
            RowRef::Map(m) => Cow::Owned(lookup_string(*self, m, field)),
            RowRef::Event(i) => self.dataset.events.field(i, field).unwrap_or(Cow::Borrowed("")),
        }
    }

    /// The rows of `table` matching `query` (not yet ordered).
    pub(super) fn select(&self, table: &str, query: &Query) -> Vec<RowRef<'a>> {
        let rows = self.dataset.tables.get(table).map(Vec::as_slice).unwrap_or_default();
        let view = *self;
        let mut matching: Vec<RowRef<'a>> = rows
            .iter()
            .filter(|row| query.matches_with(|field| lookup_string(view, row, field)))
            .map(RowRef::Map)
            .collect();
        if table == "sysevent" {
            matching.extend(self.dataset.events.select(query).into_iter().map(RowRef::Event));
        }
        matching
    }

    /// Orders rows by the query's ORDERBY keys (stable).
    pub(super) fn sort(&self, rows: &mut Vec<RowRef<'a>>, query: &Query) {
        if query.order.is_empty() {
            return;
        }
        let compact: Option<Vec<u32>> =
            rows.iter().map(|r| if let RowRef::Event(i) = r { Some(*i) } else { None }).collect();
        if let Some(mut ids) = compact
            && self.dataset.events.sort(&mut ids, &query.order)
        {
            *rows = ids.into_iter().map(RowRef::Event).collect();
            return;
        }
        query.sort_with(rows, |r, field| self.text(*r, field).into_owned());
    }
}

/// One stored row: a JSON map, or a compact `sysevent` row.
#[derive(Debug, Clone, Copy)]
pub(super) enum RowRef<'a> {
    Map(&'a Map<String, Value>),
    Event(u32),
}

/// The value at a field path: a plain field, or a dot-walk through references
/// (`user.user_name`), following the table named in each reference's link.
pub(super) fn lookup(view: View<'_>, row: &Map<String, Value>, path: &str) -> Option<Value> {
    let mut parts = path.split('.');
    let mut current = row.get(parts.next()?)?;
    for part in parts {
        let Value::Object(reference) = current else {
            return None;
        };
        let link = reference.get("link")?.as_str()?;
        let sys_id = reference.get("value")?.as_str()?;
        let mut segments = link.rsplit('/');
        segments.next()?;
        let ref_table = segments.next()?;
        current = view.row(ref_table, sys_id)?.get(part)?;
    }
    Some(current.clone())
}

pub(super) fn lookup_string(view: View<'_>, row: &Map<String, Value>, path: &str) -> String {
    if path.contains('.') { value_text(lookup(view, row, path).as_ref()) } else { field_string(row, path) }
}

/// A rendered record: fields in response order (`serde_json::Map` would sort them).
#[derive(Debug)]
pub(super) struct Record(pub(super) Vec<(String, Value)>);

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (field, value) in &self.0 {
            map.serialize_entry(field, value)?;
        }
        map.end()
    }
}

/// The error envelope of the Table API.
#[derive(serde::Serialize)]
pub(super) struct ErrorEnvelope<'a> {
    pub(super) error: ErrorBody<'a>,
    pub(super) status: &'a str,
}

#[derive(serde::Serialize)]
pub(super) struct ErrorBody<'a> {
    pub(super) message: &'a str,
    pub(super) detail: Option<&'a str>,
}

/// The `{"result": …}` envelope.
#[derive(serde::Serialize)]
pub(super) struct Envelope<T> {
    pub(super) result: T,
}

/// A row as the API returns it, honouring `sysparm_fields` (fields in the order asked, absent ones
/// omitted) and `sysparm_exclude_reference_link`.
pub(super) fn render(view: View<'_>, row: &Map<String, Value>, params: &Params) -> Record {
    let shape = |value: Value| -> Value {
        match value {
            Value::Object(ref obj) if params.exclude_reference_link => Value::String(value_text(obj.get("value"))),
            other => other,
        }
    };
    let fields = match &params.fields {
        Some(fields) => fields
            .iter()
            .filter_map(|field| lookup(view, row, field).map(|value| (field.clone(), shape(value))))
            .collect(),
        None => row.iter().map(|(field, value)| (field.clone(), shape(value.clone()))).collect(),
    };
    Record(fields)
}

/// The REST quota's error, as KB1297438 quotes it (docs/servicenow.md §2 item 6).
pub(super) const QUOTA_MESSAGE: &str = "Transaction cancelled: maximum execution time exceeded";
pub(super) const QUOTA_DETAIL: &str = "Transaction cancelled: maximum execution time exceeded Check logs for error trace or \
                            enable glide.rest.debug property to verify REST request processing";

/// A page the quota cut: the rows sent before it struck, then its error.
#[derive(serde::Serialize)]
pub(super) struct CancelledPage<'a> {
    pub(super) result: Vec<Record>,
    pub(super) error: ErrorBody<'a>,
    pub(super) status: &'a str,
}

pub(super) fn render_ref(view: View<'_>, row: RowRef<'_>, params: &Params) -> Record {
    match row {
        RowRef::Map(m) => render(view, m, params),
        RowRef::Event(i) => {
            let all: Vec<String>;
            let fields = match &params.fields {
                Some(f) => f.as_slice(),
                None => {
                    all = EVENT_FIELDS.iter().map(|f| f.to_string()).collect();
                    all.as_slice()
                }
            };
            Record(
                fields
                    .iter()
                    .filter_map(|f| view.dataset.events.field(i, f).map(|v| (f.clone(), Value::String(v.into_owned()))))
                    .collect(),
            )
        }
    }
}
