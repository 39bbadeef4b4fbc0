//! Discovery: one task that lists every followed stream's shards (DescribeStream, all pages) every
//! `--discovery-interval`, or at once when poked (a shard ended: its children are usually listed
//! already), and sends each listing to the worker. It runs beside the worker's loop, so a slow
//! DescribeStream delays nothing else (leases are renewed by the renewer, on their own clock).
//! A stream whose listing keeps failing is reported to `/healthz` (see `metrics::Metrics::health`).

use crate::metrics::{Metric, Metrics};
use crate::stream::api::{self, ShardDesc, TableStream};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

/// One stream's shards, as listed.
pub struct Listing {
    /// The stream's index in the worker's list.
    pub index: usize,
    pub shards: Vec<ShardDesc>,
}

/// Starts discovery over `streams`; it stops with `stop`. The `Notify` asks for a listing now.
pub fn spawn(
    client: aws_sdk_dynamodbstreams::Client,
    streams: Vec<TableStream>,
    interval: Duration,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> (
    mpsc::Receiver<Listing>,
    Arc<Notify>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = mpsc::channel(streams.len().max(1));
    let poke = Arc::new(Notify::new());
    let task = tokio::spawn(tracing::Instrument::in_current_span(run(
        client,
        streams,
        interval,
        metrics,
        tx,
        poke.clone(),
        stop,
    )));
    (rx, poke, task)
}

async fn run(
    client: aws_sdk_dynamodbstreams::Client,
    streams: Vec<TableStream>,
    interval: Duration,
    metrics: Arc<Metrics>,
    tx: mpsc::Sender<Listing>,
    poke: Arc<Notify>,
    stop: CancellationToken,
) {
    loop {
        for (index, stream) in streams.iter().enumerate() {
            let table = stream.table.as_str();
            let listed = tokio::select! {
                _ = stop.cancelled() => return,
                listed = api::list_shards(&client, &stream.arn) => listed,
            };
            match listed {
                // An empty listing says nothing (a stream always has an open shard): kept out, so
                // that it cannot make every finished lease look unlisted.
                Ok(shards) if !shards.is_empty() => {
                    metrics.discovery_done(table, true);
                    if tx.send(Listing { index, shards }).await.is_err() {
                        return;
                    }
                }
                Ok(_) => metrics.discovery_done(table, false),
                Err(e) => {
                    metrics.discovery_done(table, false);
                    metrics.inc(Metric::Errors, &[("kind", "discovery")], 1);
                    tracing::warn!(
                        table,
                        "listing shards failed; trying again at the next discovery: {e}"
                    );
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
            _ = poke.notified() => {}
        }
    }
}
