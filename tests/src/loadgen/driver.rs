//! Sending webhooks the way wrk does: `concurrency` workers, each with its
//! own HTTP connection (a reqwest client with a one-connection pool) and its
//! own generator, each sending one request at a time. No task per request,
//! no shared connection pool (paced workers share only the schedule): the
//! client stays cheap enough
//! to share two cores with the server it measures.
//!
//! - With a pace ([`Pace::Webhooks`] or [`Pace::Messages`]) it is an open
//!   loop: webhook *i* is due when the webhooks (or messages) before it have
//!   used up their share of the rate (one schedule shared by all workers),
//!   and the next free worker sends it. When every worker is waiting for an
//!   answer the schedule slips; the report shows it (achieved rate, requests
//!   more than 10 ms late, largest schedule lag).
//! - With [`Pace::Unlimited`] it is a closed loop: each worker sends its next
//!   request as soon as the previous one is answered (the throughput ceiling).
//!
//! Latency is measured per request from just before `send` to the end of
//! the response body. Requests sent during the warm-up are not counted.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::payload::{Generator, KAPSO_PATH, META_PATH, Shape, Webhook};

/// How fast to send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// Webhooks per second.
    Webhooks(f64),
    /// Messages (and statuses) per second.
    Messages(f64),
    /// As fast as the concurrency bound allows.
    Unlimited,
}

/// When to stop sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    Elapsed(Duration),
    Count(u64),
}

#[derive(Debug, Clone)]
pub struct DriveConfig {
    /// `http://host:port`; each webhook's path is appended.
    pub base_url: String,
    pub concurrency: usize,
    pub pace: Pace,
    pub until: Until,
    pub warmup: Duration,
    pub request_timeout: Duration,
}

/// One answered (or failed) request.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// When the request was sent, since the start of the run.
    pub sent_at: Duration,
    pub latency: Duration,
    /// HTTP status; 0 when the request failed without a response.
    pub status: u16,
    pub shape: Shape,
    pub items: usize,
    pub statuses: usize,
    pub new_messages: usize,
    pub duplicate: bool,
}

/// A `2xx` for new message ids, handed to the visibility watcher.
#[derive(Debug)]
pub struct Accepted {
    pub workspace: usize,
    pub message_ids: Vec<String>,
    pub at: Instant,
}

/// Everything a run recorded.
#[derive(Debug)]
pub struct Drive {
    pub samples: Vec<Sample>,
    pub started: Instant,
    /// When the scheduler issued its last request.
    pub sending_ended: Instant,
    /// When the last response arrived.
    pub finished: Instant,
    /// Requests issued more than 10 ms after they were due (paced runs).
    pub late: u64,
    pub max_schedule_lag: Duration,
}

impl Drive {
    /// The samples of requests sent after the warm-up.
    pub fn measured(&self, warmup: Duration) -> impl Iterator<Item = &Sample> {
        self.samples.iter().filter(move |s| s.sent_at >= warmup)
    }

    /// Length of the measured window: from the end of the warm-up to the last send.
    pub fn window(&self, warmup: Duration) -> Duration {
        (self.sending_ended - self.started).saturating_sub(warmup)
    }
}

/// Sends webhooks from per-worker generators (`generator(k)` for worker
/// `k`) as configured, and reports every `2xx` with new message ids on
/// `accepted` (when given).
pub async fn drive(
    cfg: &DriveConfig,
    generator: impl Fn(usize) -> Generator,
    accepted: Option<mpsc::UnboundedSender<Accepted>>,
) -> anyhow::Result<Drive> {
    let workers = cfg.concurrency.max(1);
    let started = Instant::now();
    let pacer = match cfg.pace {
        Pace::Webhooks(rate) | Pace::Messages(rate) => Some(Arc::new(Pacer {
            started,
            rate: rate.max(1e-9),
            used: Mutex::new(0.0),
        })),
        Pace::Unlimited => None,
    };
    let mut handles = Vec::with_capacity(workers);
    for k in 0..workers {
        // One client per worker, so one connection per worker, as wrk does.
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .tcp_nodelay(true)
            .timeout(cfg.request_timeout)
            .build()?;
        let worker = Worker {
            k,
            workers,
            pacer: pacer.clone(),
            kapso_url: reqwest::Url::parse(&format!("{}{KAPSO_PATH}", cfg.base_url))?,
            meta_url: reqwest::Url::parse(&format!("{}{META_PATH}", cfg.base_url))?,
            cfg: cfg.clone(),
            client,
            started,
            accepted: accepted.clone(),
        };
        handles.push(tokio::spawn(worker.run(generator(k))));
    }
    drop(accepted);
    let mut drive = Drive {
        samples: Vec::new(),
        started,
        sending_ended: started,
        finished: started,
        late: 0,
        max_schedule_lag: Duration::ZERO,
    };
    for handle in handles {
        let done = handle.await?;
        drive.samples.extend(done.samples);
        drive.sending_ended = drive.sending_ended.max(done.last_send);
        drive.late += done.late;
        drive.max_schedule_lag = drive.max_schedule_lag.max(done.max_lag);
    }
    drive.finished = Instant::now();
    drive.samples.sort_by_key(|s| s.sent_at);
    Ok(drive)
}

/// The open loop's schedule, shared by the workers: each webhook takes the
/// next slot, due when the webhooks (or messages) before it have used up
/// their share of the rate, so the offered rate is exact whatever the
/// number of workers.
#[derive(Debug)]
struct Pacer {
    started: Instant,
    rate: f64,
    /// Webhooks (or messages) scheduled so far.
    used: Mutex<f64>,
}

impl Pacer {
    fn next_slot(&self, pace: &Pace, hook: &Webhook) -> Instant {
        let weight = match pace {
            Pace::Messages(_) => hook.items as f64,
            _ => 1.0,
        };
        let mut used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        let due = self.started + Duration::from_secs_f64(*used / self.rate);
        *used += weight;
        due
    }
}

/// One connection's sender: one request at a time.
struct Worker {
    k: usize,
    workers: usize,
    pacer: Option<Arc<Pacer>>,
    /// Parsed once: parsing a URL per request is a visible share of the client's CPU.
    kapso_url: reqwest::Url,
    meta_url: reqwest::Url,
    cfg: DriveConfig,
    client: reqwest::Client,
    started: Instant,
    accepted: Option<mpsc::UnboundedSender<Accepted>>,
}

struct WorkerDone {
    samples: Vec<Sample>,
    last_send: Instant,
    late: u64,
    max_lag: Duration,
}

impl Worker {
    async fn run(self, mut generator: Generator) -> WorkerDone {
        let n = self.workers as u64;
        let share = match self.cfg.until {
            Until::Count(total) => Some(total / n + u64::from((self.k as u64) < total % n)),
            Until::Elapsed(_) => None,
        };
        let end = match self.cfg.until {
            Until::Elapsed(d) => Some(self.started + d),
            Until::Count(_) => None,
        };
        let mut done = WorkerDone {
            samples: Vec::with_capacity(4096),
            last_send: self.started,
            late: 0,
            max_lag: Duration::ZERO,
        };
        let mut issued = 0u64;
        loop {
            if share.is_some_and(|s| issued >= s) || end.is_some_and(|e| Instant::now() >= e) {
                return done;
            }
            let hook = generator.next_webhook();
            if let Some(pacer) = &self.pacer {
                let due = pacer.next_slot(&self.cfg.pace, &hook);
                if end.is_some_and(|e| due >= e) {
                    return done;
                }
                if due > Instant::now() {
                    tokio::time::sleep_until(due.into()).await;
                }
                let lag = Instant::now().saturating_duration_since(due);
                done.max_lag = done.max_lag.max(lag);
                done.late += u64::from(lag > Duration::from_millis(10));
            }
            issued += 1;
            done.last_send = Instant::now();
            done.samples.push(self.send(&hook).await);
        }
    }

    async fn send(&self, hook: &Webhook) -> Sample {
        let url = match hook.path {
            KAPSO_PATH => self.kapso_url.clone(),
            _ => self.meta_url.clone(),
        };
        let mut request = self.client.post(url).body(hook.body.clone());
        for (name, value) in &hook.headers {
            request = request.header(*name, value);
        }
        let sent = Instant::now();
        let status = match request.send().await {
            // Read the body to its end so the connection is reused.
            Ok(response) => {
                let status = response.status().as_u16();
                response.bytes().await.map_or(0, |_| status)
            }
            Err(_) => 0,
        };
        let answered = Instant::now();
        if (200..300).contains(&status)
            && !hook.new_message_ids.is_empty()
            && let Some(tx) = &self.accepted
        {
            let _ = tx.send(Accepted {
                workspace: hook.workspace,
                message_ids: hook.new_message_ids.clone(),
                at: answered,
            });
        }
        Sample {
            sent_at: sent - self.started,
            latency: answered - sent,
            status,
            shape: hook.shape,
            items: hook.items,
            statuses: hook.statuses,
            new_messages: hook.new_message_ids.len(),
            duplicate: hook.duplicate,
        }
    }
}
