//! `midwatch config check` online: proves that the instance answers and that the account can read
//! every table a cycle reads. Every problem is named, not just the first.

use crate::collect::LOGIN_HISTORY_TABLE;
use crate::config::Config;
use crate::cycle;
use crate::snow::{ApiError, RetryPolicy};

/// The tables a cycle reads, with the fields it needs.
pub const READ_TABLES: &[(&str, &str)] = &[
    ("sys_user_role", "sys_id,name"),
    ("sys_user_role_contains", "role,contains"),
    ("sys_user_has_role", "user,role"),
    ("sys_user", "sys_id,user_name,active,locked_out,sys_domain"),
    ("ecc_agent", "sys_id,name,status"),
    ("ecc_agent_config", "ecc_agent,param_name,value,sys_domain"),
    ("sysevent", "name,parm1,parm2,sys_created_on,sys_id"),
];

/// Returns every problem found; empty means the account can do its reads.
pub async fn probe(config: &Config) -> Vec<String> {
    let retry = RetryPolicy { max_retries: 1, ..RetryPolicy::default() };
    let client = match cycle::client(config, retry) {
        Ok(c) => c,
        Err(e) => return vec![format!("{e:#}")],
    };
    let reads = READ_TABLES.iter().map(|(table, fields)| {
        let client = &client;
        async move {
            let fields: Vec<&str> = fields.split(',').collect();
            (table, client.read_first(table, "", &fields).await)
        }
    });
    let mut problems: Vec<String> = futures::future::join_all(reads)
        .await
        .into_iter()
        .filter_map(|(_, r)| r.err().map(|e| e.to_string()))
        .collect();
    problems.dedup();
    match client.read_first(LOGIN_HISTORY_TABLE, "", &["user"]).await {
        Ok(_) => println!("note: {LOGIN_HISTORY_TABLE} is readable: findings will carry login failure reasons"),
        Err(ApiError::InvalidTable { .. }) => {
            println!("note: {LOGIN_HISTORY_TABLE} does not exist (Identity Center not installed); optional")
        }
        Err(e) => println!("note: {LOGIN_HISTORY_TABLE} is optional and could not be read: {e}"),
    }
    problems
}
