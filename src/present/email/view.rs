//! The email as both bodies show it, built once from the report, the change since the last email, the links
//! and `now`: sections in order, headings, field labels, paragraphs and links. Every sentence of the email is
//! written here; the renderers (`text.rs`, `html.rs`) only lay it out. Values from the instance are held
//! cleaned; links are URLs built from the raw values.

use chrono::{DateTime, Utc};

use super::{Delta, Form, Links};
use crate::domain::{Category, Finding, Report, Status, sn_time};
use crate::escape::clean;
use crate::present::{FindingView, IdMapView, ReportView, Untrusted};

pub(super) const INSTANCE: &str = "Instance";
pub(super) const WINDOW: &str = "Window";
pub(super) const CHANGES: &str = "Changes";
pub(super) const AT_A_GLANCE: &str = "At a glance";
pub(super) const GLANCE_COLUMNS: [&str; 4] = ["Category", "Findings", "New", "Oldest open"];
pub(super) const WHAT_TO_DO: &str = "What to do";
pub(super) const DOWN_MID_SERVER: &str = "Down MID Server";
/// The label of a finding's links, where they share one field.
pub(super) const LINKS: &str = "Links";
/// The signature separator of the text body.
pub(super) const SIGNATURE: &str = "-- ";

/// What both bodies show.
pub(super) struct EmailView {
    pub(super) status: Status,
    /// The status line without its performance data.
    pub(super) status_line: String,
    pub(super) instance_url: String,
    pub(super) window: String,
    pub(super) changes: String,
    /// One row per category with findings now.
    pub(super) glance: Vec<GlanceRow>,
    pub(super) sections: Vec<Section>,
    pub(super) footer: Footer,
}

/// One row of the "at a glance" table: a category with findings now.
pub(super) struct GlanceRow {
    pub(super) category: Category,
    pub(super) findings: usize,
    pub(super) new: usize,
    /// How long the oldest of them has been open; `-` when all are new or there is no history.
    pub(super) oldest_open: String,
}

/// Which findings a [`Section::Findings`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Open {
    New,
    StillOpen,
}

/// A section of the body after the header, in the order both bodies show them. A title is written as the HTML
/// heading shows it; the text body shows it in capitals.
pub(super) enum Section {
    Findings {
        open: Open,
        title: String,
        groups: Vec<Group<FindingItem>>,
    },
    Resolved {
        title: String,
        groups: Vec<Group<ResolvedItem>>,
    },
    /// No finding at all.
    AllClear(&'static str),
    HeldBack {
        title: String,
        intro: &'static str,
        items: Vec<HeldBackItem>,
        /// `… and 12 more: …`, when the compact form leaves some out.
        more: Option<String>,
    },
    /// (user, reason) of the users the check refused to query.
    NotChecked {
        title: String,
        items: Vec<(String, String)>,
        more: Option<String>,
    },
    IdMap(IdMapSection),
    Notes {
        title: String,
        items: Vec<String>,
    },
}

/// The items of one category, titled `Authentication (2)`: in the compact form, the first ones in full, then
/// the others' messages after the sentence that says how many they are and where to see them in full.
pub(super) struct Group<T> {
    pub(super) category: Category,
    pub(super) title: String,
    pub(super) items: Vec<T>,
    /// Said before `rest`, when there is a rest.
    pub(super) more: Option<More>,
    /// The cleaned messages of the items not shown in full.
    pub(super) rest: Vec<String>,
}

/// Where the compact form says how many more there are and where to see them in full.
pub(super) struct More {
    /// `2990 more, message only. Each in full: …`, without the link that ends it.
    pub(super) sentence: String,
    /// The MID Server Issue records on the instance, when the link can be built.
    pub(super) list: Option<String>,
}

/// A finding open now.
pub(super) struct FindingItem {
    pub(super) message: String,
    pub(super) down_mid_servers: Vec<DownMid>,
    /// Label → cleaned value, after the MID Servers.
    pub(super) rows: Vec<(&'static str, String)>,
    pub(super) refs: Vec<Ref>,
}

/// A down MID Server of a finding.
pub(super) struct DownMid {
    pub(super) name: Linked,
    pub(super) sys_id: String,
    /// `silent since …`, when its last heartbeat is known.
    pub(super) since: Option<String>,
}

/// A link to a record of the instance: `field` labels it as a field of its own, `label` as one of several
/// links side by side.
pub(super) struct Ref {
    pub(super) field: &'static str,
    pub(super) label: String,
    pub(super) href: String,
}

/// A finding of the last email that is gone now.
pub(super) struct ResolvedItem {
    pub(super) message: String,
    pub(super) refs: Vec<Ref>,
}

/// A shown value and, when it can be built, the link to its record.
pub(super) struct Linked {
    pub(super) text: String,
    pub(super) href: Option<String>,
}

/// A MID Server down for less than `[check] down_for`.
pub(super) struct HeldBackItem {
    pub(super) name: Linked,
    /// `, silent since …; users: a, b`: what follows the name.
    pub(super) detail: String,
}

/// The MID Server ID map: three lists, each after its intro.
pub(super) struct IdMapSection {
    pub(super) title: &'static str,
    pub(super) unassociated_intro: &'static str,
    pub(super) unassociated: Vec<Linked>,
    /// Shown in place of an empty `unassociated` list.
    pub(super) none: &'static str,
    pub(super) on_down_intro: &'static str,
    /// A user and the sys_ids of the down MID Servers it is configured on.
    pub(super) on_down: Vec<(Linked, Vec<Linked>)>,
    pub(super) down_intro: &'static str,
    /// sys_id → name.
    pub(super) down: Vec<(Linked, String)>,
    /// `… and 12 more: …` after each list the compact form cut short.
    pub(super) more: [Option<String>; 3],
}

/// The closing paragraph.
pub(super) struct Footer {
    /// `Sent by midwatch at … UTC. …`
    pub(super) sent: String,
    pub(super) list_label: &'static str,
    pub(super) list: Option<String>,
}

impl EmailView {
    pub(super) fn of(report: &Report, delta: &Delta<'_>, links: &Links, now: DateTime<Utc>, form: Form) -> EmailView {
        let r = ReportView::of(report);
        let keep = form.keep();
        let mut sections = findings_sections(report, delta, links, keep);
        if report.findings.is_empty() && report.warnings.is_empty() {
            sections.push(Section::AllClear("No MID Server user has a problem now."));
        }
        sections.extend(early_sections(report, &r, delta));
        if !r.held_back.is_empty() {
            let (held_back, more) = cut(&r.held_back, keep);
            sections.push(Section::HeldBack {
                title: format!("Recently down, not judged yet ({})", r.held_back.len()),
                intro: "Down for less than [check] down_for: they may be restarting or upgrading. Their users are \
                        judged on a later cycle if they stay down.",
                items: held_back
                    .iter()
                    .map(|h| {
                        let since = h.mid.down_since.as_deref().unwrap_or("last heartbeat unknown");
                        let users: Vec<&str> = h.users.iter().map(|u| u.text.as_str()).collect();
                        HeldBackItem {
                            name: Linked { text: h.mid.name.text.clone(), href: links.mid(h.mid.sys_id.raw) },
                            detail: format!(", {since}; users: {}", users.join(", ")),
                        }
                    })
                    .collect(),
                more,
            });
        }
        if !r.skipped_users.is_empty() {
            let (items, more) = cut(&r.skipped_users, keep);
            sections.push(Section::NotChecked {
                title: format!("Users not checked ({})", r.skipped_users.len()),
                items: items.to_vec(),
                more,
            });
        }
        if let Some(map) = &r.id_map {
            sections.push(Section::IdMap(id_map(map, links, &report.user_ids, keep)));
        }
        if !r.notes.is_empty() {
            sections.push(Section::Notes { title: "Notes".to_string(), items: r.notes.clone() });
        }
        EmailView {
            status: report.status,
            status_line: without_perfdata(&r.status_line).to_string(),
            instance_url: links.instance_url.as_str().to_string(),
            window: r.window,
            changes: changes_line(delta),
            glance: glance(report, delta),
            sections,
            footer: Footer {
                sent: format!(
                    "Sent by midwatch at {} UTC. \"New\" and \"resolved\" compare with the previous email.",
                    sn_time::format(now)
                ),
                list_label: "MID Server Issue records",
                list: links.issue_list(),
            },
        }
    }
}

/// The early warnings (each new one marked, the gone ones named) and the observations.
fn early_sections(report: &Report, r: &ReportView<'_>, delta: &Delta<'_>) -> Vec<Section> {
    let mut sections = Vec::new();
    let mut warnings: Vec<String> = report
        .warnings
        .iter()
        .zip(&r.warnings)
        .map(|(w, text)| {
            let new = delta.previous_at.is_some() && delta.new_warnings.contains(&w.key());
            if new { format!("New: {text}") } else { text.clone() }
        })
        .collect();
    if !delta.gone_warnings.is_empty() {
        warnings.push(format!("No longer warned since the last email: {}", clean(&delta.gone_warnings.join("; "))));
    }
    if !warnings.is_empty() {
        sections.push(Section::Notes { title: crate::present::warnings_title(report.warnings.len()), items: warnings });
    }
    if !r.observations.is_empty() {
        sections.push(Section::Notes {
            title: crate::present::observations_title(r.observations.len()),
            items: r.observations.clone(),
        });
    }
    sections
}

/// The new, still open and resolved findings, each by category, the first `keep` of each category in full.
fn findings_sections(report: &Report, delta: &Delta<'_>, links: &Links, keep: usize) -> Vec<Section> {
    let end = report.window.end;
    let mut sections = Vec::new();
    for (open, title, findings) in [(Open::New, "New", &delta.new), (Open::StillOpen, "Still open", &delta.still_open)]
    {
        if findings.is_empty() {
            continue;
        }
        let groups = by_category(
            findings,
            keep,
            |f| (f.category, &f.message),
            |f| finding_item(&FindingView::of(f, end), links, &report.user_ids),
            |n, c| More {
                sentence: format!(
                    "{n} more {} findings, message only. Each in full: `midwatch check --format json`, or \
                     midwatch's MID Server Issue records on the instance",
                    c.name()
                ),
                list: links.issue_list(),
            },
        );
        sections.push(Section::Findings { open, title: format!("{title} ({})", findings.len()), groups });
    }
    if !delta.resolved.is_empty() {
        let groups = by_category(
            &delta.resolved,
            keep,
            |f| (f.category, &f.message),
            |f| {
                let (message, user) = (Untrusted::of(&f.message), Untrusted::of(&f.user));
                ResolvedItem { refs: refs(links, &report.user_ids, &message, &user), message: message.text }
            },
            |n, _| More { sentence: format!("{n} more, without their links"), list: None },
        );
        sections.push(Section::Resolved { title: format!("Resolved ({})", delta.resolved.len()), groups });
    }
    sections
}

/// The items grouped by category, in category order, empty groups left out: the first `keep` of each as
/// `item` makes them, the others by their message only (`of` gives an item's category and raw message).
fn by_category<F, T>(
    all: &[F],
    keep: usize,
    of: impl Fn(&F) -> (Category, &String),
    item: impl Fn(&F) -> T,
    more: impl Fn(usize, Category) -> More,
) -> Vec<Group<T>> {
    Category::ALL
        .into_iter()
        .filter_map(|c| {
            let of_c: Vec<&F> = all.iter().filter(|f| of(f).0 == c).collect();
            if of_c.is_empty() {
                return None;
            }
            let (full, rest) = of_c.split_at(keep.min(of_c.len()));
            Some(Group {
                category: c,
                title: format!("{} ({})", c.title(), of_c.len()),
                items: full.iter().map(|&f| item(f)).collect(),
                more: (!rest.is_empty()).then(|| more(rest.len(), c)),
                rest: rest.iter().map(|&f| clean(of(f).1)).collect(),
            })
        })
        .collect()
}

/// The first `keep` items of a list, and what the compact form says of the others.
fn cut<T>(all: &[T], keep: usize) -> (&[T], Option<String>) {
    let (kept, rest) = all.split_at(keep.min(all.len()));
    let more = (!rest.is_empty())
        .then(|| format!("… and {} more: `midwatch check --format json` lists them all.", rest.len()));
    (kept, more)
}

fn finding_item(f: &FindingView<'_>, links: &Links, user_ids: &UserIds) -> FindingItem {
    FindingItem {
        message: f.message.text.clone(),
        down_mid_servers: f
            .down_mid_servers
            .iter()
            .map(|m| DownMid {
                name: Linked { text: m.name.text.clone(), href: links.mid(m.sys_id.raw) },
                sys_id: m.sys_id.text.clone(),
                since: m.down_since.clone(),
            })
            .collect(),
        rows: f.rows.clone(),
        refs: refs(links, user_ids, &f.message, &f.user),
    }
}

/// The `sys_user` sys_id of each user name, from the report.
type UserIds = std::collections::BTreeMap<String, String>;

/// The `sys_user` record of a user the check read, by its sys_id.
fn user_link(links: &Links, user_ids: &UserIds, user: &str) -> Option<String> {
    links.user(user_ids.get(user)?)
}

/// The issue record and user record links of a finding.
fn refs(links: &Links, user_ids: &UserIds, message: &Untrusted<'_>, user: &Untrusted<'_>) -> Vec<Ref> {
    let issue = links.issue(message.raw).map(|href| Ref { field: "Issue record", label: "issue record".into(), href });
    let user = user_link(links, user_ids, user.raw).map(|href| Ref {
        field: "User record",
        label: format!("user {}", user.text),
        href,
    });
    issue.into_iter().chain(user).collect()
}

fn id_map(map: &IdMapView<'_>, links: &Links, user_ids: &UserIds, keep: usize) -> IdMapSection {
    let user = |u: &Untrusted<'_>| Linked { text: u.text.clone(), href: user_link(links, user_ids, u.raw) };
    let mid = |id: &Untrusted<'_>| Linked { text: id.text.clone(), href: links.mid(id.raw) };
    let (unassociated, unassociated_more) = cut(&map.unassociated_users, keep);
    let (on_down, on_down_more) = cut(&map.users_on_down_mid_servers, keep);
    let (down, down_more) = cut(&map.down_mid_servers, keep);
    IdMapSection {
        title: "MID Server ID map",
        unassociated_intro: "Users with the mid_server role not configured on any MID Server:",
        unassociated: unassociated.iter().map(user).collect(),
        none: "(none)",
        on_down_intro: "Users configured on down MID Servers (MID Server sys_ids):",
        on_down: on_down.iter().map(|u| (user(&u.user), u.mid_servers.iter().map(mid).collect())).collect(),
        down_intro: "Down MID Servers (sys_id: name):",
        down: down.iter().map(|m| (mid(&m.sys_id), m.name.text.clone())).collect(),
        more: [unassociated_more, on_down_more, down_more],
    }
}

fn glance(report: &Report, delta: &Delta<'_>) -> Vec<GlanceRow> {
    Category::ALL
        .into_iter()
        .filter_map(|c| {
            let of_c: Vec<&Finding> = report.findings.iter().filter(|f| f.category == c).collect();
            if of_c.is_empty() {
                return None;
            }
            let oldest =
                of_c.iter().filter_map(|f| f.history.filter(|h| h.times_detected > 1).map(|h| h.first_detected)).min();
            Some(GlanceRow {
                category: c,
                findings: of_c.len(),
                new: delta.new.iter().filter(|f| f.category == c).count(),
                oldest_open: oldest.map_or_else(|| "-".to_string(), |at| crate::present::age(at, report.window.end)),
            })
        })
        .collect()
}

/// The status line without its performance data (` | findings=5 …`), which is for a monitoring system, not a
/// reader. The data are the last ` | ` part: their labels and values hold no `|`.
fn without_perfdata(status_line: &str) -> &str {
    status_line.rsplit_once(" | ").map_or(status_line, |(words, _)| words)
}

fn changes_line(delta: &Delta<'_>) -> String {
    match delta.previous_at {
        None => "first email from midwatch for this instance: every finding is new".to_string(),
        Some(at) => format!(
            "{} new, {} still open, {} resolved since the last email ({} UTC)",
            delta.new.len(),
            delta.still_open.len(),
            delta.resolved.len(),
            sn_time::format(at)
        ),
    }
}
