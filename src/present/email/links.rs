//! Links to the instance's pages: MID Server Issue records, users, MID Servers.

use std::collections::BTreeMap;

use url::Url;

/// Links to the instance: `ecc_agent_issue` record sys_ids by message (may be empty when write-back is off).
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

    /// The `ecc_agent_issue` record when its sys_id is known, else the list filtered on the message.
    pub(super) fn issue(&self, message: &str) -> Option<String> {
        match self.issue_ids.get(message) {
            Some(id) => self.page("nav_to.do", &[("uri", &format!("ecc_agent_issue.do?sys_id={id}"))]),
            None => self.page("ecc_agent_issue_list.do", &[("sysparm_query", &format!("message={message}"))]),
        }
    }

    /// The `sys_user` list filtered on the user name.
    pub(super) fn user(&self, user: &str) -> Option<String> {
        self.page("sys_user_list.do", &[("sysparm_query", &format!("user_name={user}"))])
    }

    /// The `ecc_agent` record.
    pub(super) fn mid(&self, sys_id: &str) -> Option<String> {
        self.page("ecc_agent.do", &[("sys_id", sys_id)])
    }
}
