//! Keeping the email within `[email] max_size`, and its short form for a relay that refuses it for its size.
//!
//! An email is composed in full when it fits. Beyond `max_size` (the biggest incidents: thousands of findings
//! at a few kB each) it is composed in the largest compact form that fits: the at-a-glance table and every
//! finding's message stay, the first findings of each category keep their full detail, and each category says
//! how many more there are and where to see them in full (`present::email::Form`). The size measured is the
//! message's, as it goes to the relay (headers, both alternatives, quoted-printable).
//!
//! Every message that has a shorter form carries it in the outbox (`OutboxEntry::short`, with the same
//! `Message-ID`): the first finding of each category in full, else none in full. Delivery sends it instead
//! when the relay's EHLO says (SIZE, RFC 1870) that it would refuse the message, or when it refuses the
//! message for its size (552): a relay's limit drops a notification only if even its short form is over it.

use std::collections::BTreeMap;

use super::Notice;
use super::outbox::BuiltMessage;
use super::smtp::{self, BuildError};
use crate::config::EmailConfig;
use crate::domain::Category;
use crate::present::email::{self, Delta, Form, RenderedEmail};

/// This cycle's message: the text body of the form chosen (what `--dry-run` shows), and the message built.
pub(super) struct Composed {
    pub(super) text: String,
    pub(super) built: BuiltMessage,
}

/// How many findings of each category the short form shows in full, most first.
const SHORT_FORMS: [usize; 2] = [1, 0];

/// Renders and builds this cycle's message in the largest form within `cfg.max_size`, with its short form.
pub(super) fn compose(
    cfg: &EmailConfig,
    notice: &Notice<'_>,
    delta: &Delta<'_>,
    digest: &str,
) -> Result<Composed, BuildError> {
    let forms = Forms { cfg, notice, delta, message_id: smtp::message_id(cfg, digest, notice.now) };
    let (form, (email, message)) = forms.largest_within(cfg.max_size)?;
    let shorter = |k: usize| match form {
        Form::Full => true,
        Form::FirstInFull(n) => k < n,
    };
    let mut short = None;
    for k in SHORT_FORMS.into_iter().filter(|&k| shorter(k)) {
        if let Some((_, candidate)) = forms.within(Form::FirstInFull(k), smtp::wire_size(&message) - 1)? {
            short = Some(candidate);
            break;
        }
    }
    let built = BuiltMessage { message_id: forms.message_id, subject: email.subject, message, short };
    Ok(Composed { text: email.text, built })
}

/// A form rendered, and its message built.
type Built = (RenderedEmail, String);

/// The forms of one message, all with its `Message-ID`.
struct Forms<'a> {
    cfg: &'a EmailConfig,
    notice: &'a Notice<'a>,
    delta: &'a Delta<'a>,
    message_id: String,
}

impl Forms<'_> {
    fn build(&self, form: Form) -> Result<Built, BuildError> {
        let n = self.notice;
        let email = email::render_form(n.report, self.delta, n.links, n.now, form);
        self.built(email)
    }

    fn built(&self, email: RenderedEmail) -> Result<Built, BuildError> {
        let message = smtp::build_message(self.cfg, &email, &self.message_id, self.notice.now)?;
        Ok((email, message))
    }

    /// The form, built, if its message is at most `max` bytes as sent. A form whose bodies alone are over it
    /// is not built: quoted-printable never makes a body shorter, and building megabytes is the slow part.
    fn within(&self, form: Form, max: usize) -> Result<Option<Built>, BuildError> {
        let n = self.notice;
        let email = email::render_form(n.report, self.delta, n.links, n.now, form);
        if email.text.len() + email.html.len() > max {
            return Ok(None);
        }
        let built = self.built(email)?;
        Ok((smtp::wire_size(&built.1) <= max).then_some(built))
    }

    /// The full form when it is within `max_size`, else the form with the most findings of each category in
    /// full that is; with none in full when even that is over it (every finding's message is kept whatever
    /// the size, and a warning says so).
    fn largest_within(&self, max_size: usize) -> Result<(Form, Built), BuildError> {
        if let Some(full) = self.within(Form::Full, max_size)? {
            return Ok((Form::Full, full));
        }
        // The largest n below the longest list whose form fits, by bisection: what fits at n fits below it.
        let (mut fits, mut low, mut over) = (None, 0, longest_list(self.notice, self.delta));
        while low < over {
            let n = low + (over - low) / 2;
            match self.within(Form::FirstInFull(n), max_size)? {
                Some(built) => {
                    fits = Some((n, built));
                    low = n + 1;
                }
                None => over = n,
            }
        }
        let (n, built) = match fits {
            Some(fit) => fit,
            None => {
                let least = self.build(Form::FirstInFull(0))?;
                let bytes = smtp::wire_size(&least.1);
                tracing::warn!(
                    bytes,
                    max_size,
                    "the email is over [email] max_size with every finding by its message only; it is sent so"
                );
                (0, least)
            }
        };
        let bytes = smtp::wire_size(&built.1);
        tracing::info!(
            bytes,
            max_size,
            in_full = n,
            "the email is over [email] max_size in full: it shows the first findings of each category in full"
        );
        Ok((Form::FirstInFull(n), built))
    }
}

/// The most items one list of the email has (a category of a section, or another list): no form shows more
/// of one in full.
fn longest_list(notice: &Notice<'_>, delta: &Delta<'_>) -> usize {
    let r = notice.report;
    let most = |categories: &mut dyn Iterator<Item = Category>| {
        let mut counts = BTreeMap::new();
        for c in categories {
            *counts.entry(c).or_insert(0_usize) += 1;
        }
        counts.into_values().max().unwrap_or(0)
    };
    let id_map = r
        .id_map
        .as_ref()
        .map_or(0, |m| m.unassociated_users.len().max(m.users_on_down_mid_servers.len()).max(m.down_mid_servers.len()));
    [
        most(&mut delta.new.iter().map(|f| f.category)),
        most(&mut delta.still_open.iter().map(|f| f.category)),
        most(&mut delta.resolved.iter().map(|f| f.category)),
        r.down_mid_servers.len(),
        r.skipped_users.len(),
        id_map,
    ]
    .into_iter()
    .max()
    .unwrap_or(0)
}
