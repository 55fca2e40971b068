//! Fairness of the one executor thread: an endpoint whose operations keep completing inline (a UDP
//! flood of a datagram endpoint, a TCP echo endpoint with a client that never lets it wait, datagrams
//! queued by WskReceiveFromEvent) must still let a timer task tick, and must let unload (the stop flag)
//! through while the flood goes on. Without the cooperative budget the busy task never returns Pending:
//! the timer task ticks 0 times and unload waits until the flood ends (here: never, since the flood
//! ends only once unload has returned, or the test has failed).
//!
//! Every check is a condition with a generous limit: ticks counted by the timer task itself, unload
//! observed to return while the flood threads still run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod kinds_common;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use kinds_common::on_windows;
use wsk::{Buf, Connection, DatagramHandler, DatagramSocket, Endpoint, ListenHandler, SocketAddr};
use wsk_sim::faults;
use wsk_tests::{free_port, time_scale, wait_for, Session, RT};

/// How long any condition may take to hold; far above what it takes (milliseconds) on a loaded machine.
const LIMIT: Duration = Duration::from_secs(20);
/// Ticks the timer task must make during the flood.
const TICKS: u64 = 5;

/// How often the provider routine `name` was called since the simulation was reset.
fn calls(name: &str) -> u64 {
    faults::count_points().into_iter().find(|p| p.name == name).map_or(0, |p| p.count)
}

/// Client threads that keep an endpoint busy until told to stop (also when the test fails: dropping the
/// flood stops and joins them, before the session's drop unloads).
struct Flood {
    stop: Arc<AtomicBool>,
    /// The threads that produce the load; the flood runs while every one of them does.
    senders: Vec<JoinHandle<()>>,
    /// Threads that only drain what the endpoint sends back (they end when the connection does).
    others: Vec<JoinHandle<()>>,
    /// The TCP client's connection, shut down when the flood stops (so its reader ends too).
    conn: Option<TcpStream>,
}

impl Flood {
    /// Two threads sending 64-byte datagrams to `port` as fast as they can.
    fn udp(port: u16) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let senders = (0..2)
            .map(|_| {
                let stop = stop.clone();
                thread::spawn(move || {
                    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
                    let msg = [0u8; 64];
                    while !stop.load(Ordering::Relaxed) {
                        let _ = c.send_to(&msg, ("127.0.0.1", port));
                    }
                })
            })
            .collect();
        Self { stop, senders, others: Vec::new(), conn: None }
    }

    /// One TCP connection to `port`: a thread writing 64 KiB chunks as fast as it can, another reading
    /// the echo in 256 KiB reads, so the endpoint (receiving and echoing 512 bytes at a time) always
    /// finds data to receive and room to send.
    fn tcp(port: u16) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
        conn.set_nodelay(true).unwrap();
        let mut reader = conn.try_clone().unwrap();
        let mut writer = conn.try_clone().unwrap();
        let writer_stop = stop.clone();
        let sender = thread::spawn(move || {
            let chunk = vec![7u8; 64 * 1024];
            while !writer_stop.load(Ordering::Relaxed) {
                if writer.write_all(&chunk).is_err() {
                    // The connection is gone (unload closed it): the thread still runs until told to stop.
                    while !writer_stop.load(Ordering::Relaxed) {
                        thread::sleep(Duration::from_millis(1));
                    }
                }
            }
        });
        let drain = thread::spawn(move || {
            let mut buf = vec![0u8; 256 * 1024];
            while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
        });
        Self { stop, senders: vec![sender], others: vec![drain], conn: Some(conn) }
    }

    /// True while every load-producing thread still runs.
    fn running(&self) -> bool {
        self.senders.iter().all(|t| !t.is_finished())
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(conn) = &self.conn {
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }
        for t in self.senders.drain(..).chain(self.others.drain(..)) {
            let _ = t.join();
        }
    }
}

/// Spawns a task that ticks every 10 ms; returns its tick count.
fn spawn_ticker() -> Arc<AtomicU64> {
    let ticks = Arc::new(AtomicU64::new(0));
    let t = ticks.clone();
    RT.spawn(async move {
        loop {
            wsk::time::sleep(Duration::from_millis(10)).await;
            t.fetch_add(1, Ordering::Relaxed);
        }
    })
    .unwrap();
    ticks
}

/// With `flood` keeping an endpoint busy (`work` counts what the endpoint did, `busy` of it shows the
/// flood is in full swing): the timer task ticks, and unload returns while the flood still runs.
fn timer_and_unload_under_flood(session: Session, flood: Flood, ticks: &AtomicU64, busy: u64, work: impl Fn() -> u64) {
    wait_for("the flood to keep the endpoint busy", LIMIT, || work() >= busy);
    let t0 = ticks.load(Ordering::Relaxed);
    wait_for("the timer task to tick during the flood", LIMIT, || ticks.load(Ordering::Relaxed) >= t0 + TICKS);
    assert!(flood.running(), "the flood ended early");
    let (tx, rx) = mpsc::channel();
    let unload = thread::spawn(move || {
        let _ = session.stop();
        let _ = tx.send(());
    });
    let returned = rx.recv_timeout(LIMIT * time_scale()).is_ok();
    // Checked before the flood is told to stop: it was still running when unload returned.
    let flooding = flood.running();
    drop(flood);
    unload.join().unwrap();
    assert!(returned, "unload did not return while the flood ran");
    assert!(flooding, "the flood had ended before unload returned");
}

/// Counts the datagrams it gets.
#[wsk::wsk_endpoint(kind = "datagram", addr = "127.0.0.1:9")]
struct Sink {
    seen: AtomicU64,
}

impl DatagramHandler for Sink {
    async fn on_datagram(&'static self, _s: &mut DatagramSocket, _from: SocketAddr, _data: &[u8]) -> wsk::Result<()> {
        self.seen.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

static SINK: Sink = Sink { seen: AtomicU64::new(0) };

#[test]
fn a_udp_flood_lets_timers_and_unload_through() {
    on_windows("udp flood", || {
        let session = Session::start().unwrap();
        let port = free_port();
        SINK.start_at(&RT, SocketAddr::v4([127, 0, 0, 1], port)).unwrap();
        let ticks = spawn_ticker();
        wait_for("the timer task to tick before the flood", LIMIT, || ticks.load(Ordering::Relaxed) >= TICKS);
        let before = SINK.seen.load(Ordering::Relaxed);
        let flood = Flood::udp(port);
        timer_and_unload_under_flood(session, flood, &ticks, 1000, || SINK.seen.load(Ordering::Relaxed) - before);
    });
}

/// Bytes the TCP echo endpoint receives and sends back at a time.
const ECHO_CHUNK: usize = 512;

/// Echoes every byte until the peer closes; counts the bytes.
#[wsk::wsk_endpoint(kind = "listen", addr = "127.0.0.1:9")]
struct Echo {
    bytes: AtomicU64,
}

impl ListenHandler for Echo {
    async fn on_connection(&'static self, conn: &mut Connection) -> wsk::Result<()> {
        let mut buf = Buf::with_capacity(ECHO_CHUNK)?;
        loop {
            buf = conn.recv(buf).await?;
            if buf.is_empty() {
                return Ok(());
            }
            self.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
            buf = conn.send_all(buf).await?;
        }
    }
}

static ECHO: Echo = Echo { bytes: AtomicU64::new(0) };

#[test]
fn a_fast_tcp_client_lets_timers_and_unload_through() {
    on_windows("tcp echo flood", || {
        let session = Session::start().unwrap();
        let port = free_port();
        ECHO.start_at(&RT, SocketAddr::v4([127, 0, 0, 1], port)).unwrap();
        let ticks = spawn_ticker();
        wait_for("the timer task to tick before the flood", LIMIT, || ticks.load(Ordering::Relaxed) >= TICKS);
        let before = ECHO.bytes.load(Ordering::Relaxed);
        let flood = Flood::tcp(port);
        timer_and_unload_under_flood(session, flood, &ticks, 20_000, || {
            (ECHO.bytes.load(Ordering::Relaxed) - before) / ECHO_CHUNK as u64
        });
    });
}

/// Counts the datagrams WskReceiveFromEvent queued for it, with some work on each (as a real handler
/// has): the simulation's pump indicates one datagram at a time, and a handler that does nothing drains
/// the queue faster than the pump fills it, so it would wait (and yield) anyway.
#[wsk::wsk_endpoint(kind = "datagram", addr = "127.0.0.1:9", events(receive))]
struct EventSink {
    seen: AtomicU64,
}

impl DatagramHandler for EventSink {
    async fn on_datagram(&'static self, _s: &mut DatagramSocket, _from: SocketAddr, data: &[u8]) -> wsk::Result<()> {
        let start = std::time::Instant::now();
        let mut sum = 0u64;
        while start.elapsed() < Duration::from_millis(1) {
            sum = data.iter().fold(sum, |a, &b| a.rotate_left(5) ^ u64::from(b));
        }
        std::hint::black_box(sum);
        self.seen.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

static EVENT_SINK: EventSink = EventSink { seen: AtomicU64::new(0) };

#[test]
fn a_udp_flood_through_receive_events_lets_timers_and_unload_through() {
    on_windows("udp flood, receive events", || {
        let session = Session::start().unwrap();
        let port = free_port();
        EVENT_SINK.start_at(&RT, SocketAddr::v4([127, 0, 0, 1], port)).unwrap();
        let ticks = spawn_ticker();
        wait_for("the timer task to tick before the flood", LIMIT, || ticks.load(Ordering::Relaxed) >= TICKS);
        let before = EVENT_SINK.seen.load(Ordering::Relaxed);
        let flood = Flood::udp(port);
        timer_and_unload_under_flood(session, flood, &ticks, 200, || EVENT_SINK.seen.load(Ordering::Relaxed) - before);
        assert_eq!(calls("WskReceiveFrom"), 0, "the datagrams came from WskReceiveFromEvent");
    });
}
