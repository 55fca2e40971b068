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

/// Connections of the round-robin test, messages each client sends, and the bytes of one message.
const RR_CONNS: usize = 8;
const RR_MESSAGES: usize = 100;
const RR_MSG: usize = 8;

/// Serves fixed-size messages once told to go: each message is received whole (one receive, the data is
/// already there), logged with its connection's number, and answered.
#[wsk::wsk_endpoint(kind = "listen", addr = "127.0.0.1:9")]
struct Turns {
    go: AtomicBool,
    log: std::sync::Mutex<Vec<u32>>,
}

impl ListenHandler for Turns {
    async fn on_connection(&'static self, conn: &mut Connection) -> wsk::Result<()> {
        // Polls a flag set by the test once every client's messages are buffered on the server side, so
        // from then on every receive completes inline and only the executor decides who goes next.
        while !self.go.load(Ordering::Acquire) {
            wsk::time::sleep(Duration::from_millis(1)).await;
        }
        let mut buf = Buf::with_capacity(RR_MSG)?;
        loop {
            buf.clear();
            while buf.len() < RR_MSG {
                let before = buf.len();
                buf = conn.recv(buf).await?;
                if buf.len() == before {
                    return Ok(());
                }
            }
            let id = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
            self.log.lock().unwrap_or_else(|e| e.into_inner()).push(id);
            buf = conn.send_all(buf).await?;
        }
    }
}

/// The bytes of `c`'s send queue not yet acknowledged by its peer (Linux TIOCOUTQ).
fn unacked(c: &TcpStream) -> i32 {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = -1;
    // SAFETY: TIOCOUTQ writes one c_int through the pointer, which points at `n`.
    let r = unsafe { libc::ioctl(c.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    assert_eq!(r, 0, "ioctl(TIOCOUTQ): {}", std::io::Error::last_os_error());
    n
}

static TURNS: Turns = Turns { go: AtomicBool::new(false), log: std::sync::Mutex::new(Vec::new()) };

/// Connections whose requests are all waiting (each receive completes inline, as under load, where a
/// keep-alive client has its next request on the wire before the server asks for it) take turns a
/// request at a time: between two messages of one connection, the server serves at most about one message
/// of each other connection. With a budget of 64 operations per poll, each connection was served 32
/// messages per turn, so a request waited for 31 of each other connection's (the keep-alive p99 stall of
/// issue 10: p50 120 µs, p99 900 ms at 64 connections under Wine).
#[test]
fn connections_with_requests_waiting_take_turns_a_request_at_a_time() {
    on_windows("round robin", || {
        let session = Session::start().unwrap();
        let port = free_port();
        TURNS.start_at(&RT, SocketAddr::v4([127, 0, 0, 1], port)).unwrap();
        let clients: Vec<TcpStream> = (0..RR_CONNS)
            .map(|id| {
                let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
                let mut all = Vec::with_capacity(RR_MESSAGES * RR_MSG);
                for seq in 0..RR_MESSAGES {
                    all.extend_from_slice(&(id as u32).to_le_bytes());
                    all.extend_from_slice(&(seq as u32).to_le_bytes());
                }
                c.write_all(&all).unwrap();
                c
            })
            .collect();
        wait_for("every connection to be accepted", LIMIT, || wsk::stats().connections_open == RR_CONNS as u64);
        // A client's bytes are in the server side's receive queue once the server side has acknowledged
        // them: nothing is left in the client's send queue (TIOCOUTQ counts unsent and unacknowledged).
        wait_for("the messages to reach the server side", LIMIT, || clients.iter().all(|c| unacked(c) == 0));
        TURNS.go.store(true, Ordering::Release);
        let readers: Vec<_> = clients
            .into_iter()
            .map(|mut c| {
                thread::spawn(move || {
                    let mut back = vec![0u8; RR_MESSAGES * RR_MSG];
                    c.read_exact(&mut back).unwrap();
                })
            })
            .collect();
        for r in readers {
            r.join().unwrap();
        }
        let log = TURNS.log.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(log.len(), RR_CONNS * RR_MESSAGES);
        // The largest number of other connections' messages served between two of one connection's.
        let mut last = [None::<usize>; RR_CONNS];
        let mut worst = 0;
        for (i, &id) in log.iter().enumerate() {
            if let Some(prev) = last[id as usize] {
                worst = worst.max(i - prev - 1);
            }
            last[id as usize] = Some(i);
        }
        assert!(
            worst <= 2 * (RR_CONNS - 1),
            "a connection waited for {worst} messages of others between two of its own (round robin: {})",
            RR_CONNS - 1
        );
        drop(session);
    });
}
