//! `processor inbox ...`: the inbox's reads and mark-read from the shell, one
//! line per row, for an operator looking at a workspace.
//!
//! Guarantee: phone numbers are printed masked unless `--unmasked` is given,
//! and a page ends with the cursor for the next one (`next: <cursor>`).

use std::io::Write;

use clap::Subcommand;
use shared::mask::mask_phone;
use shared::record::now_ms;
use uuid::Uuid;

use super::{ConversationSummary, Inbox, MessageView};
use crate::config::CqlConfig;
use crate::store::open_session;

/// What to read (or mark) in the inbox.
#[derive(Debug, Clone, Subcommand)]
pub enum InboxCommand {
    /// A workspace's conversations, most recent activity first.
    List {
        workspace: String,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// The `next:` cursor of the previous page.
        #[arg(long)]
        after: Option<String>,
        /// Print phone numbers in full.
        #[arg(long)]
        unmasked: bool,
    },
    /// A conversation's messages, newest first.
    History {
        workspace: String,
        conversation: Uuid,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        after: Option<String>,
    },
    /// A workspace's inbound, read and unread message counts.
    Totals { workspace: String },
    /// Marks a conversation read (as an agent would).
    MarkRead {
        workspace: String,
        conversation: Uuid,
    },
}

/// Runs one inbox command against the configured keyspace, printing to `out`.
pub async fn run(
    cql: &CqlConfig,
    command: InboxCommand,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let inbox = Inbox::new(open_session(cql).await?, &cql.keyspace).await?;
    match command {
        InboxCommand::List {
            workspace,
            limit,
            after,
            unmasked,
        } => {
            let page = inbox
                .list(&workspace, after.as_deref(), limit, now_ms())
                .await?;
            for c in &page.items {
                writeln!(out, "{}", summary_line(c, unmasked))?;
            }
            next_line(out, page.next)?;
        }
        InboxCommand::History {
            workspace,
            conversation,
            limit,
            after,
        } => {
            let page = inbox
                .history(&workspace, conversation, after.as_deref(), limit)
                .await?;
            for m in &page.items {
                writeln!(out, "{}", message_line(m))?;
            }
            next_line(out, page.next)?;
        }
        InboxCommand::Totals { workspace } => {
            let t = inbox.totals(&workspace).await?;
            writeln!(
                out,
                "inbound {}  read {}  unread {}",
                t.inbound, t.read, t.unread
            )?;
        }
        InboxCommand::MarkRead {
            workspace,
            conversation,
        } => {
            let m = inbox.mark_read(&workspace, conversation, now_ms()).await?;
            writeln!(
                out,
                "read_count {}  newly_read {}",
                m.read_count, m.newly_read
            )?;
        }
    }
    Ok(())
}

fn next_line(out: &mut impl Write, next: Option<String>) -> std::io::Result<()> {
    match next {
        Some(cursor) => writeln!(out, "next: {cursor}"),
        None => writeln!(out, "(end)"),
    }
}

fn summary_line(c: &ConversationSummary, unmasked: bool) -> String {
    let who = c
        .contact_phone
        .as_deref()
        .map(|p| {
            if unmasked {
                p.to_owned()
            } else {
                mask_phone(p)
            }
        })
        .or_else(|| c.contact_user_id.clone())
        .or_else(|| c.group_id.as_ref().map(|g| format!("group {g}")))
        .unwrap_or_default();
    format!(
        "{}  {}  unread {:>3}  {} {}  {}",
        c.conversation_id,
        time(c.last_message_at_ms),
        c.unread,
        who,
        c.contact_name.as_deref().unwrap_or(""),
        c.last_message_preview.as_deref().unwrap_or("")
    )
}

fn message_line(m: &MessageView) -> String {
    format!(
        "{}  {:<8} {:<10} {}  {}",
        time(m.sent_at_ms),
        m.direction.as_deref().unwrap_or(""),
        m.status.as_deref().unwrap_or(""),
        m.message_id,
        m.body.as_deref().unwrap_or("")
    )
}

/// Milliseconds since the epoch as `seconds.millis` UTC, sortable.
fn time(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}
