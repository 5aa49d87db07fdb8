//! Table API reads: lists with their paging headers, and one record.

use super::*;

/// `partial`: [`Fault::QuotaPartial`], the rows sent before the quota cancels the transaction.
pub(super) fn list(shared: &Shared, state: &State, req: &Incoming, table: &str, partial: Option<usize>) -> Reply {
    let mut params = match parse_params(&req.query, LIST_PARAMS) {
        Ok(p) => p,
        Err(reply) => return reply,
    };
    // A capped page: fewer rows than asked, and the Link header's pages are of the cap's size.
    params.limit = params.limit.min(state.page_cap.unwrap_or(usize::MAX));
    let view = View::of(state);
    let mut matching = view.select(table, &params.query);
    view.sort(&mut matching, &params.query);
    let total = matching.len();
    let page: Vec<Record> =
        matching.iter().skip(params.offset).take(params.limit).map(|row| render_ref(view, *row, &params)).collect();
    let rows = page.len();
    if let Some(cut) = partial {
        let result = page.into_iter().take(cut).collect();
        let cancelled = CancelledPage {
            result,
            error: ErrorBody { message: QUOTA_MESSAGE, detail: Some(QUOTA_DETAIL) },
            status: "failure",
        };
        return match serde_json::to_string(&cancelled) {
            Ok(body) => Reply::json(200, body).with_cost(Cost { rows, ..Cost::default() }),
            Err(e) => Reply::error(500, &format!("fake instance cannot serialize the result: {e}"), None),
        };
    }
    let mut reply = Reply::result(200, page).with_header(HeaderName::from_static("x-total-count"), &total.to_string());
    if !params.suppress_pagination_header {
        let link = link_header(&shared.base_url, &req.path, &req.query, &params, total);
        reply = reply.with_header(header::LINK, &link);
    }
    reply.with_cost(Cost { rows, ..Cost::default() })
}

// ---------------------------------------------------------------------------------------------
// Aggregate API

/// `<url?sysparm_offset=…&sysparm_limit=…&…>;rel="next",…`, keeping the other sysparm_* parameters.
pub(super) fn link_header(
    base_url: &str,
    path: &str,
    query: &[(String, String)],
    params: &Params,
    total: usize,
) -> String {
    let limit = params.limit;
    let offset = params.offset;
    let url_at = |offset: usize| -> String {
        let mut serializer = url::form_urlencoded::Serializer::new(String::new());
        serializer.append_pair("sysparm_offset", &offset.to_string());
        serializer.append_pair("sysparm_limit", &limit.to_string());
        for (name, value) in query {
            if name != "sysparm_offset" && name != "sysparm_limit" && name.starts_with("sysparm_") {
                serializer.append_pair(name, value);
            }
        }
        format!("<{base_url}{path}?{}>", serializer.finish())
    };
    let mut links = Vec::new();
    if offset.saturating_add(limit) < total {
        links.push(format!("{};rel=\"next\"", url_at(offset + limit)));
    }
    if offset > 0 {
        links.push(format!("{};rel=\"prev\"", url_at(offset.saturating_sub(limit))));
    }
    links.push(format!("{};rel=\"first\"", url_at(0)));
    let last = if total == 0 { 0 } else { (total - 1) / limit * limit };
    links.push(format!("{};rel=\"last\"", url_at(last)));
    links.join(",")
}

pub(super) fn find_index(state: &State, table: &str, sys_id: &str) -> Option<usize> {
    let rows = state.dataset.tables.get(table)?;
    match state.index.find(table, sys_id) {
        Some(i) => Some(i).filter(|i| rows.get(*i).is_some_and(|r| field_string(r, "sys_id") == sys_id)),
        None if !state.index.valid => rows.iter().position(|r| field_string(r, "sys_id") == sys_id),
        None => None,
    }
}

pub(super) fn get_one(state: &State, req: &Incoming, table: &str, sys_id: &str) -> Reply {
    let params = match parse_params(&req.query, RECORD_PARAMS) {
        Ok(p) => p,
        Err(reply) => return reply,
    };
    let row =
        find_index(state, table, sys_id).and_then(|i| state.dataset.tables.get(table).and_then(|rows| rows.get(i)));
    match row {
        Some(row) => Reply::result(200, render(View::of(state), row, &params)),
        None => Reply::not_found(),
    }
}

// ---------------------------------------------------------------------------------------------
// Writing
