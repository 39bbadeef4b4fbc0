//! Audit tools over the archive. `verify` checks that it is complete and untampered: [`facts`]
//! reads what each file says about itself, [`verify`] checks it (pure), `cmd::verify` walks the
//! archive and reports. `docs/AUDIT.md` says what this proves and what it cannot.

pub mod facts;
pub mod history;
pub mod snapshot;
pub mod verify;

/// An instant as RFC 3339 (UTC), for reports.
pub fn snapshot_time_text(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
