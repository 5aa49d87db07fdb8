//! Links to the instance's pages: MID Server Issue records, users, MID Servers.

use std::collections::BTreeMap;

use url::Url;

use crate::domain::SysId;

/// Links to the instance, every one by a record's sys_id: no user name, message or other text from the instance
/// reaches a link's query. `ecc_agent_issue` sys_ids by message (empty when write-back is off); a record
/// without a known sys_id gets no link.
#[derive(Debug, Clone)]
pub struct Links {
    pub instance_url: Url,
    pub issue_ids: BTreeMap<String, String>,
}

impl Links {
    /// A page of the instance, its query built from `pairs` (URL-encoded); `None` when the path does not join.
    pub(super) fn page(&self, path: &str, pairs: &[(&str, &str)]) -> Option<String> {
        let mut url: Url = self.instance_url.join(path).ok()?;
        if !pairs.is_empty() {
            url.query_pairs_mut().extend_pairs(pairs.iter().copied());
        }
        Some(url.to_string())
    }

    /// The `ecc_agent_issue` list.
    pub(super) fn issue_list(&self) -> Option<String> {
        self.page("ecc_agent_issue_list.do", &[])
    }

    /// A record's form, by its sys_id (`<table>.do?sys_id=…`); `None` unless `sys_id` is one.
    fn record(&self, table_form: &str, sys_id: &str) -> Option<String> {
        let id = SysId::parse(sys_id)?;
        self.page(table_form, &[("sys_id", id.as_str())])
    }

    /// The `ecc_agent_issue` record, when write-back knows its sys_id.
    pub(super) fn issue(&self, message: &str) -> Option<String> {
        self.record("ecc_agent_issue.do", self.issue_ids.get(message)?)
    }

    /// The `sys_user` record with this sys_id (the report's `user_ids` hold them by user name).
    pub(super) fn user(&self, sys_id: &str) -> Option<String> {
        self.record("sys_user.do", sys_id)
    }

    /// The `ecc_agent` record.
    pub(super) fn mid(&self, sys_id: &str) -> Option<String> {
        self.record("ecc_agent.do", sys_id)
    }
}
