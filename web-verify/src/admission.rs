//! Who may upload, how fast, and how much: per-client limits, the upload's transfer-rate
//! meter, and the budget of temporary disk that uploads may fill.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use futures_util::Stream;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

/// The key a client is counted under: its IPv4 address, or the /64 network of its IPv6
/// address (one subscriber usually holds a whole /64, so counting single v6 addresses would
/// let one client be thousands).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    pub fn of(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V4(v4) => ClientKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(IpAddr::V4(v4)),
                None => {
                    let s = v6.segments();
                    ClientKey(IpAddr::V6(std::net::Ipv6Addr::new(
                        s[0], s[1], s[2], s[3], 0, 0, 0, 0,
                    )))
                }
            },
        }
    }
}

/// Per-client limits: uploads in progress at once (receiving or analysing) and uploads
/// started per minute.
pub struct ClientLimits {
    concurrent: usize,
    in_progress: Mutex<HashMap<ClientKey, usize>>,
    rate: Option<DefaultKeyedRateLimiter<ClientKey>>,
}

/// One client's upload in progress; its place is given back when dropped.
pub struct ClientSlot<'a> {
    limits: &'a ClientLimits,
    key: ClientKey,
}

impl Drop for ClientSlot<'_> {
    fn drop(&mut self) {
        let mut map = self
            .limits
            .in_progress
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

/// Keys kept by the rate limiter before the ones that are back to a full allowance are
/// forgotten (each costs a few dozen bytes).
const RATE_KEYS_KEPT: usize = 10_000;

impl ClientLimits {
    /// `concurrent` 0: no limit; `per_minute` 0: no rate limit.
    pub fn new(concurrent: usize, per_minute: u32) -> ClientLimits {
        ClientLimits {
            concurrent,
            in_progress: Mutex::new(HashMap::new()),
            rate: NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n))),
        }
    }

    /// Counts one upload against the client's rate. `Err`: how long until it may send one.
    pub fn check_rate(&self, key: ClientKey) -> Result<(), Duration> {
        let Some(rate) = &self.rate else {
            return Ok(());
        };
        if rate.len() > RATE_KEYS_KEPT {
            rate.retain_recent();
            rate.shrink_to_fit();
        }
        rate.check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// A place for one more upload of this client, or `None` when it has its share.
    pub fn enter(&self, key: ClientKey) -> Option<ClientSlot<'_>> {
        let mut map = self.in_progress.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(key).or_insert(0);
        if self.concurrent > 0 && *n >= self.concurrent {
            return None;
        }
        *n += 1;
        Some(ClientSlot { limits: self, key })
    }
}

/// Bytes of temporary disk the uploads may hold together.
pub struct DiskBudget {
    cap: u64,
    in_use: AtomicU64,
}

/// Disk held by one upload; given back when dropped (after its temp file is deleted).
pub struct DiskUse<'a> {
    budget: &'a DiskBudget,
    bytes: u64,
}

impl DiskBudget {
    pub fn new(cap: u64) -> DiskBudget {
        DiskBudget {
            cap,
            in_use: AtomicU64::new(0),
        }
    }

    pub fn in_use(&self) -> u64 {
        self.in_use.load(Ordering::SeqCst)
    }

    /// Whether `bytes` more would still fit now (a hint: nothing is reserved).
    pub fn would_fit(&self, bytes: u64) -> bool {
        self.in_use().saturating_add(bytes) <= self.cap
    }

    pub fn start(&self) -> DiskUse<'_> {
        DiskUse {
            budget: self,
            bytes: 0,
        }
    }
}

impl DiskUse<'_> {
    /// Takes `bytes` more from the budget; `false` (nothing taken) when they do not fit.
    pub fn grow(&mut self, bytes: u64) -> bool {
        let cap = self.budget.cap;
        let taken = self
            .budget
            .in_use
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                used.checked_add(bytes).filter(|n| *n <= cap)
            })
            .is_ok();
        if taken {
            self.bytes += bytes;
        }
        taken
    }
}

impl Drop for DiskUse<'_> {
    fn drop(&mut self) {
        self.budget.in_use.fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

/// How fast an upload must arrive: within `grace` of its start and of every previous chunk,
/// on average `min_rate` bytes per second from `grace` on, and all of it by `deadline`.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub grace: Duration,
    pub min_rate: u64,
    pub deadline: Duration,
}

/// Why an upload was cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Late {
    /// Nothing arrived for the grace period.
    Stalled,
    /// Arriving slower than the minimum rate.
    TooSlow,
    /// Not complete by the deadline.
    Deadline,
}

impl Late {
    pub fn message(self, pace: &Pace) -> String {
        match self {
            Late::Stalled => format!(
                "the upload stalled: nothing arrived for {} s",
                pace.grace.as_secs()
            ),
            Late::TooSlow => format!(
                "the upload was too slow: this server needs at least {} bytes per second",
                pace.min_rate
            ),
            Late::Deadline => format!(
                "the upload took longer than this server's limit of {} s",
                pace.deadline.as_secs()
            ),
        }
    }
}

/// Counts every byte of a request body as it arrives (multipart framing and all fields, not
/// only the file) and knows when the next byte must come.
pub struct Meter {
    pace: Pace,
    start: Instant,
    /// Bytes of the whole body allowed; more is `too_big`.
    max_body: u64,
    received: AtomicU64,
    /// Milliseconds after `start` of the last chunk.
    last_ms: AtomicU64,
    too_big: AtomicBool,
}

impl Meter {
    pub fn new(pace: Pace, max_body: u64) -> Arc<Meter> {
        Arc::new(Meter {
            pace,
            start: Instant::now(),
            max_body,
            received: AtomicU64::new(0),
            last_ms: AtomicU64::new(0),
            too_big: AtomicBool::new(false),
        })
    }

    pub fn too_big(&self) -> bool {
        self.too_big.load(Ordering::SeqCst)
    }

    /// The first moment at which the upload breaks a rule, and the rule.
    fn deadline(&self) -> (Instant, Late) {
        let mut due = (self.start + self.pace.deadline, Late::Deadline);
        let stall = self.start
            + Duration::from_millis(self.last_ms.load(Ordering::SeqCst))
            + self.pace.grace;
        if stall < due.0 {
            due = (stall, Late::Stalled);
        }
        if self.pace.min_rate > 0 {
            let received = self.received.load(Ordering::SeqCst);
            let slow = self.start
                + self.pace.grace
                + Duration::from_secs_f64(received as f64 / self.pace.min_rate as f64);
            if slow < due.0 {
                due = (slow, Late::TooSlow);
            }
        }
        due
    }

    /// Runs a step of reading the body, cut off when the upload breaks the pace.
    pub async fn within<F: Future>(&self, step: F) -> Result<F::Output, Late> {
        tokio::pin!(step);
        loop {
            let (due, _) = self.deadline();
            tokio::select! {
                out = &mut step => return Ok(out),
                _ = tokio::time::sleep_until(due) => {
                    // Bytes may have come in meanwhile: only a deadline still passed counts.
                    let (due, why) = self.deadline();
                    if Instant::now() >= due {
                        return Err(why);
                    }
                }
            }
        }
    }

    /// The request body, metered.
    pub fn wrap<S>(self: &Arc<Meter>, inner: S) -> Metered<S> {
        Metered {
            inner,
            meter: self.clone(),
        }
    }
}

/// A body stream that counts its bytes in its [`Meter`] and ends in an error past the limit.
pub struct Metered<S> {
    inner: S,
    meter: Arc<Meter>,
}

#[derive(Debug, thiserror::Error)]
#[error("the upload is larger than this server's limit")]
pub struct TooBig;

impl<S, E> Stream for Metered<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<axum::BoxError>,
{
    type Item = Result<Bytes, axum::BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.meter.too_big() {
            return Poll::Ready(Some(Err(TooBig.into())));
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                let meter = &self.meter;
                let total = meter
                    .received
                    .fetch_add(chunk.len() as u64, Ordering::SeqCst)
                    + chunk.len() as u64;
                meter
                    .last_ms
                    .store(meter.start.elapsed().as_millis() as u64, Ordering::SeqCst);
                if total > meter.max_body {
                    meter.too_big.store(true, Ordering::SeqCst);
                    return Poll::Ready(Some(Err(TooBig.into())));
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            other => other.map(|_| None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_counted_by_their_64_network() {
        let a = ClientKey::of("2001:db8:1:2::1".parse().unwrap());
        let b = ClientKey::of("2001:db8:1:2:ffff::9".parse().unwrap());
        let c = ClientKey::of("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            ClientKey::of("::ffff:10.0.0.1".parse().unwrap()),
            ClientKey::of("10.0.0.1".parse().unwrap())
        );
    }

    #[test]
    fn a_client_gets_its_share_and_no_more() {
        let limits = ClientLimits::new(2, 0);
        let me = ClientKey::of("10.0.0.1".parse().unwrap());
        let other = ClientKey::of("10.0.0.2".parse().unwrap());
        let first = limits.enter(me).unwrap();
        let _second = limits.enter(me).unwrap();
        assert!(limits.enter(me).is_none());
        assert!(limits.enter(other).is_some());
        drop(first);
        assert!(
            limits.enter(me).is_some(),
            "a finished upload frees its place"
        );
    }

    #[test]
    fn the_rate_limit_says_when_to_come_back() {
        let limits = ClientLimits::new(0, 3);
        let me = ClientKey::of("10.0.0.1".parse().unwrap());
        for _ in 0..3 {
            assert!(limits.check_rate(me).is_ok());
        }
        let wait = limits.check_rate(me).unwrap_err();
        assert!(
            wait > Duration::from_secs(15) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(limits
            .check_rate(ClientKey::of("10.0.0.2".parse().unwrap()))
            .is_ok());
    }

    #[test]
    fn the_disk_budget_is_given_back() {
        let budget = DiskBudget::new(100);
        let mut a = budget.start();
        assert!(a.grow(60));
        let mut b = budget.start();
        assert!(!b.grow(50), "over the cap");
        assert!(b.grow(40));
        assert!(!budget.would_fit(1));
        drop(a);
        assert_eq!(budget.in_use(), 40);
        drop(b);
        assert_eq!(budget.in_use(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_is_cut_off_after_the_grace_period() {
        let pace = Pace {
            grace: Duration::from_secs(2),
            min_rate: 1000,
            deadline: Duration::from_secs(60),
        };
        let meter = Meter::new(pace, 1 << 20);
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        let mut body = meter.wrap(tokio_stream(rx));
        // Ten bytes a second: under 1000 B/s once the grace period is over.
        tokio::spawn(async move {
            loop {
                if tx
                    .send(Ok(Bytes::from_static(b"0123456789")))
                    .await
                    .is_err()
                {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let started = Instant::now();
        let late = loop {
            match meter.within(futures_util::StreamExt::next(&mut body)).await {
                Ok(Some(Ok(_))) => continue,
                Ok(other) => panic!("{:?}", other.map(|r| r.map(|b| b.len()))),
                Err(late) => break late,
            }
        };
        assert_eq!(late, Late::TooSlow);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_secs(3),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_upload_is_not_cut_off_and_a_stall_is() {
        let pace = Pace {
            grace: Duration::from_secs(2),
            min_rate: 1000,
            deadline: Duration::from_secs(60),
        };
        let meter = Meter::new(pace, 1 << 20);
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        let mut body = meter.wrap(tokio_stream(rx));
        // 2000 B/s for 10 s, then silence.
        tokio::spawn(async move {
            for _ in 0..20 {
                let _ = tx.send(Ok(Bytes::from(vec![0u8; 1000]))).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        let started = Instant::now();
        let mut got = 0;
        let late = loop {
            match meter.within(futures_util::StreamExt::next(&mut body)).await {
                Ok(Some(Ok(b))) => got += b.len(),
                Ok(_) => panic!("ended"),
                Err(late) => break late,
            }
        };
        assert_eq!(got, 20_000);
        assert_eq!(late, Late::Stalled);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(11_500) && took < Duration::from_secs(13),
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn every_byte_counts_against_the_body_limit() {
        let meter = Meter::new(
            Pace {
                grace: Duration::from_secs(10),
                min_rate: 0,
                deadline: Duration::from_secs(60),
            },
            25,
        );
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
        for _ in 0..3 {
            tx.send(Ok(Bytes::from_static(b"0123456789")))
                .await
                .unwrap();
        }
        drop(tx);
        let mut body = meter.wrap(tokio_stream(rx));
        use futures_util::StreamExt;
        assert!(body.next().await.unwrap().is_ok());
        assert!(body.next().await.unwrap().is_ok());
        assert!(body.next().await.unwrap().is_err());
        assert!(meter.too_big());
    }

    fn tokio_stream<T: Send + 'static>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> Pin<Box<dyn Stream<Item = T> + Send>> {
        Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }
}
