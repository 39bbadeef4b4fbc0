//! `dynamo-archiver leases`: the lease table as operators need to see it.

use super::CommandError;
use crate::config::LeasesConfig;
use crate::leases::{Checkpoint, Lease, LeaseError, LeaseStore};

/// A lease's state: `ended` (read to its end), `active` (owned by a worker), `free` (released or
/// never taken; the next worker's discovery takes it).
pub fn state(lease: &Lease) -> &'static str {
    match (&lease.checkpoint, &lease.owner) {
        (Checkpoint::ShardEnd, _) => "ended",
        (_, Some(_)) => "active",
        (_, None) => "free",
    }
}

fn age(updated_at_ms: Option<i64>, now_ms: i64) -> String {
    match updated_at_ms {
        None => "-".into(),
        Some(t) => {
            let s = (now_ms - t).max(0) / 1000;
            if s < 120 {
                format!("{s}s ago")
            } else if s < 7200 {
                format!("{}m ago", s / 60)
            } else {
                format!("{}h ago", s / 3600)
            }
        }
    }
}

/// Renders leases as a text table (sorted by table, then shard).
pub fn render_text(leases: &[Lease], now_ms: i64) -> String {
    let header = [
        "TABLE",
        "SHARD",
        "STATE",
        "OWNER",
        "CHECKPOINT",
        "PARENT",
        "UPDATED",
    ];
    let rows: Vec<[String; 7]> = leases
        .iter()
        .map(|l| {
            [
                l.table.to_string(),
                l.shard.to_string(),
                state(l).into(),
                l.owner.clone().unwrap_or_else(|| "-".into()),
                l.checkpoint.to_string(),
                if l.parents.is_empty() {
                    "-".into()
                } else {
                    l.parents
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                },
                age(l.updated_at_ms, now_ms),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        s.truncate(s.trim_end().len());
        s.push('\n');
        s
    };
    let mut out = line(&header.map(String::from));
    for r in &rows {
        out.push_str(&line(r));
    }
    out
}

pub fn render_json(leases: &[Lease], now_ms: i64) -> String {
    let items: Vec<serde_json::Value> = leases
        .iter()
        .map(|l| {
            serde_json::json!({
                "lease_key": l.key.as_str(),
                "table": l.table.as_str(),
                "stream_arn": l.stream.as_str(),
                "shard_id": l.shard.as_str(),
                "state": state(l),
                "owner": l.owner,
                "lease_counter": l.counter,
                "checkpoint": l.checkpoint.to_string(),
                "parent_shard_ids": l.parents.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
                "owner_switches_since_checkpoint": l.owner_switches_since_checkpoint,
                "last_file_key": l.last_file_key,
                "last_file_sha256": l.last_file_sha256.map(hex::encode),
                "updated_at_ms": l.updated_at_ms,
                "seconds_since_update": l.updated_at_ms.map(|t| (now_ms - t).max(0) / 1000),
            })
        })
        .collect();
    serde_json::to_string_pretty(&items).expect("JSON values serialise")
}

pub async fn run(config: &LeasesConfig) -> Result<(), CommandError> {
    let clients = crate::aws::load().await;
    let store = LeaseStore::new(clients.dynamodb, config.lease_table.clone(), String::new());
    let mut leases = store.all().await.map_err(|e| match e {
        LeaseError::NoTable(_) => CommandError::Config(e.to_string()),
        other => CommandError::Runtime(other.to_string()),
    })?;
    if !config.tables.is_empty() {
        leases.retain(|l| config.tables.contains(&l.table));
    }
    leases.sort_by(|a, b| (&a.table, &a.shard).cmp(&(&b.table, &b.shard)));
    let now = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    if config.json {
        println!("{}", render_json(&leases, now));
    } else {
        print!("{}", render_text(&leases, now));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leases::LeaseKey;
    use crate::types::{SequenceNumber, ShardId, StreamArn, TableName};

    fn lease(shard: &str, owner: Option<&str>, cp: Checkpoint, parent: Option<&str>) -> Lease {
        let (t, s) = (TableName::new("users"), StreamArn::new("arn:x/stream/L"));
        Lease {
            key: LeaseKey::new(&t, &s, &ShardId::new(shard)),
            table: t,
            stream: s,
            shard: ShardId::new(shard),
            parents: parent.into_iter().map(ShardId::new).collect(),
            owner: owner.map(str::to_owned),
            counter: 3,
            checkpoint: cp,
            owner_switches_since_checkpoint: 0,
            last_file_key: None,
            last_file_sha256: None,
            updated_at_ms: Some(1_000),
            pending_owner: None,
            start_after_ms: None,
        }
    }

    #[test]
    fn states_and_table() {
        let leases = vec![
            lease("s1", Some("w1"), Checkpoint::ShardEnd, None),
            lease(
                "s2",
                Some("w1"),
                Checkpoint::At(SequenceNumber::parse("42").unwrap()),
                Some("s1"),
            ),
            lease("s3", None, Checkpoint::TrimHorizon, None),
        ];
        assert_eq!(
            leases.iter().map(state).collect::<Vec<_>>(),
            ["ended", "active", "free"]
        );
        let text = render_text(&leases, 91_000);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("TABLE  SHARD  STATE   OWNER  CHECKPOINT"),
            "{text}"
        );
        assert!(
            lines[2].contains("active")
                && lines[2].contains("42")
                && lines[2].contains("s1")
                && lines[2].ends_with("90s ago"),
            "{text}"
        );
        let json: serde_json::Value = serde_json::from_str(&render_json(&leases, 91_000)).unwrap();
        assert_eq!(json[1]["checkpoint"], "42");
        assert_eq!(json[1]["parent_shard_ids"][0], "s1");
        assert_eq!(json[2]["owner"], serde_json::Value::Null);
        assert_eq!(json[0]["seconds_since_update"], 90);
    }
}
