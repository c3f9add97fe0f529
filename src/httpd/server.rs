//! The I/O thread (accept, allow list, nonblocking reads under `poll`,
//! parse, deadlines) and the worker pool (handler, answer).

use super::request::{parse, Progress, Request};
use super::{Limits, Response};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest single poll while connections are open (their deadlines are
/// checked at least this often); idle, the I/O thread sleeps until a
/// connection or `stop` wakes it, and the workers until a request comes.
const TICK: Duration = Duration::from_millis(1000);
/// Bytes read from one connection per readiness.
const READ_CHUNK: usize = 4096;
/// Connections accepted per poll round (the rest wait in the backlog).
const ACCEPT_BURST: usize = 64;

type Handler = dyn Fn(&Request, SocketAddr) -> Response + Send + Sync;
type Admit = dyn Fn(IpAddr) -> bool + Send + Sync;
type Refused = dyn Fn(SocketAddr, Option<&str>, u16) + Send + Sync;

/// A request ready for a worker.
struct Job {
    stream: TcpStream,
    peer: SocketAddr,
    req: Request,
}

/// A connection being read.
struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    buf: Vec<u8>,
    deadline: Instant,
    continue_sent: bool,
}

pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Write end of the pipe that wakes the I/O thread for `stop`.
    wake: Option<OwnedFd>,
    threads: Vec<JoinHandle<()>>,
}

impl Server {
    /// Listen on `listen` and serve until [`Server::stop`]. `admit` is the
    /// allow list (checked before a byte is read); `handler` answers a
    /// complete request; `refused` hears of every request an admitted peer
    /// began (sent a byte of) that the server itself refused or cut off
    /// (peer, request target when the request line was read, status), so
    /// the application can tell that a sender has something it did not take.
    pub fn start(
        listen: &str,
        name: &str,
        limits: Limits,
        admit: impl Fn(IpAddr) -> bool + Send + Sync + 'static,
        handler: impl Fn(&Request, SocketAddr) -> Response + Send + Sync + 'static,
        refused: impl Fn(SocketAddr, Option<&str>, u16) + Send + Sync + 'static,
    ) -> Result<Server, String> {
        let listener = TcpListener::bind(listen).map_err(|e| format!("listen on {listen}: {e}"))?;
        listener.set_nonblocking(true).map_err(|e| format!("listen on {listen}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let stop = Arc::new(AtomicBool::new(false));
        let (wake_r, wake_w) = crate::util::wake_pipe().map_err(|e| format!("wake pipe: {e}"))?;
        let (tx, rx) = sync_channel::<Job>(limits.queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let handler: Arc<Handler> = Arc::new(handler);
        let limits = Arc::new(limits);
        let mut threads = Vec::new();
        let mut server = Server { addr, stop: stop.clone(), wake: Some(wake_w), threads: Vec::new() };
        for i in 0..limits.workers.max(1) {
            let (rx, handler, limits) = (rx.clone(), handler.clone(), limits.clone());
            let t = crate::stack::spawn(format!("{name}-w{i}"), move || worker(&rx, &*handler, &limits));
            match t {
                Ok(t) => threads.push(t),
                Err(e) => {
                    server.threads = threads;
                    server.stop();
                    return Err(e.to_string());
                }
            }
        }
        let admit: Box<Admit> = Box::new(admit);
        let refused: Box<Refused> = Box::new(refused);
        let (stop2, limits2) = (stop.clone(), limits.clone());
        let io = crate::stack::spawn(format!("{name}-io"), move || IoLoop { listener, log: LogLimit { last: None, left_out: 0 }, wake: wake_r, admit, refused, limits: limits2, conns: Vec::new(), jobs: tx, budget: 0 }.run(&stop2));
        match io {
            Ok(t) => threads.push(t),
            Err(e) => {
                server.threads = threads;
                server.stop();
                return Err(e.to_string());
            }
        }
        server.threads = threads;
        Ok(server)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop and join every thread: the I/O thread is woken at once and
    /// closes every connection; the workers end with their current request
    /// (bounded by the handler and the write timeout).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(w) = self.wake.take() {
            // SAFETY: writing one byte from a valid buffer to our own pipe.
            unsafe { libc::write(w.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
            // Kept open until the I/O thread has seen it (dropped below).
            for t in self.threads.drain(..) {
                let _ = t.join();
            }
            drop(w);
            return;
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs requests until the I/O thread ends (the channel closes).
fn worker(rx: &Mutex<Receiver<Job>>, handler: &Handler, limits: &Limits) {
    loop {
        let job = {
            let Ok(g) = rx.lock() else { return };
            g.recv()
        };
        let Ok(job) = job else { return };
        let resp = handler(&job.req, job.peer);
        answer(job.stream, &resp, limits.write_timeout);
    }
}

/// Write the answer (blocking, bounded) and close.
fn answer(mut stream: TcpStream, resp: &Response, timeout: Duration) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_write_timeout(Some(timeout));
    let _ = stream.write_all(&resp.to_bytes());
    let _ = stream.shutdown(Shutdown::Write);
}

/// Best-effort answer from the I/O thread: never blocks (a peer that does
/// not read gets a cut answer), then close.
fn answer_now(stream: &TcpStream, resp: &Response) {
    let _ = stream.set_nonblocking(true);
    let mut s = stream;
    let _ = s.write(&resp.to_bytes());
    let _ = stream.shutdown(Shutdown::Both);
}

/// Logs about misbehaving peers, at most one per interval (a hostile LAN
/// must not flood the router's log), with the count of the ones left out.
struct LogLimit {
    last: Option<Instant>,
    left_out: u64,
}

impl LogLimit {
    const EVERY: Duration = Duration::from_secs(10);

    fn info(&mut self, msg: impl FnOnce() -> String) {
        if self.last.is_some_and(|t| t.elapsed() < Self::EVERY) {
            self.left_out += 1;
            return;
        }
        let more = std::mem::take(&mut self.left_out);
        if more > 0 {
            log::info!("{} ({more} more like it not logged)", msg());
        } else {
            log::info!("{}", msg());
        }
        self.last = Some(Instant::now());
    }
}

struct IoLoop {
    listener: TcpListener,
    log: LogLimit,
    /// Read end of the stop pipe.
    wake: OwnedFd,
    admit: Box<Admit>,
    refused: Box<Refused>,
    limits: Arc<Limits>,
    conns: Vec<Conn>,
    jobs: SyncSender<Job>,
    /// Bytes that may still be buffered in this round (`max_buffered` less
    /// what the open connections hold).
    budget: usize,
}

impl IoLoop {
    /// The most a connection may buffer: head, body and chunk framing.
    fn buf_cap(&self) -> usize {
        let l = &self.limits;
        l.max_head.saturating_add(l.max_body).saturating_add(l.max_body / 2).saturating_add(1024)
    }

    fn run(mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::SeqCst) {
            let now = Instant::now();
            // Idle (no connection open): sleep until something happens.
            let ms = match self.conns.iter().map(|c| c.deadline.saturating_duration_since(now)).min() {
                Some(d) => d.min(TICK).as_millis().max(1) as libc::c_int,
                None => -1,
            };
            let mut fds: Vec<libc::pollfd> = Vec::with_capacity(self.conns.len() + 2);
            fds.push(libc::pollfd { fd: self.listener.as_raw_fd(), events: libc::POLLIN, revents: 0 });
            fds.push(libc::pollfd { fd: self.wake.as_raw_fd(), events: libc::POLLIN, revents: 0 });
            for c in &self.conns {
                fds.push(libc::pollfd { fd: c.stream.as_raw_fd(), events: libc::POLLIN, revents: 0 });
            }
            // SAFETY: `fds` is a valid array of `fds.len()` pollfd entries for the duration of the call.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() != ErrorKind::Interrupted {
                    log::warn!("http: poll: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                }
                continue;
            }
            let held: usize = self.conns.iter().map(|c| c.buf.len()).sum();
            self.budget = self.limits.max_buffered.saturating_sub(held);
            if stop.load(Ordering::SeqCst) {
                break;
            }
            // Read the ready connections (indices of `fds` are shifted by two).
            let ready = fds.iter().skip(2).map(|p| p.revents != 0).chain(std::iter::repeat(false));
            let keep: Vec<(Conn, bool)> = self.conns.drain(..).zip(ready).collect();
            for (c, r) in keep {
                if let Some(c) = if r { self.read(c) } else { Some(c) } {
                    self.conns.push(c);
                }
            }
            // Deadlines.
            let now = Instant::now();
            let (late, open): (Vec<Conn>, Vec<Conn>) = self.conns.drain(..).partition(|c| c.deadline <= now);
            self.conns = open;
            for c in late {
                log::debug!("http: {} timed out", c.peer);
                self.refuse(&c, 408, "request not complete in time");
            }
            if fds.first().is_some_and(|p| p.revents != 0) {
                self.accept();
            }
        }
    }

    fn accept(&mut self) {
        for _ in 0..ACCEPT_BURST {
            let (stream, peer) = match self.listener.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => {
                    // EMFILE and friends: leave the rest in the backlog for now.
                    log::warn!("http: accept: {e}");
                    return;
                }
            };
            if !(self.admit)(peer.ip()) {
                self.log.info(|| format!("http: {peer}: source address not allowed"));
                answer_now(&stream, &Response::reason(403, "source address not allowed"));
                continue;
            }
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            // The answer is one write, but a `100 Continue` comes first:
            // without TCP_NODELAY the answer waited for its ACK (issue 24).
            let _ = stream.set_nodelay(true);
            if self.conns.len() >= self.limits.max_conns.max(1) {
                // Make room: the oldest connection that has sent nothing
                // (likeliest idle), else the oldest.
                let i = self.conns.iter().position(|c| c.buf.is_empty()).unwrap_or(0);
                let old = self.conns.remove(i);
                log::debug!("http: {} closed for a newer connection", old.peer);
                self.refuse(&old, 503, "too many connections");
            }
            let deadline = Instant::now() + self.limits.request_timeout;
            let conn = Conn { stream, peer, buf: Vec::new(), deadline, continue_sent: false };
            // A real client has usually sent its request already: take it now.
            if let Some(c) = self.read(conn) {
                self.conns.push(c);
            }
        }
    }

    /// Answer a refusal and close; tell the application when the peer had
    /// begun a request.
    fn refuse(&self, c: &Conn, status: u16, reason: &str) {
        // The application hears of it before the peer does (a peer that
        // reads the answer may look at the application's counters next).
        if !c.buf.is_empty() {
            (self.refused)(c.peer, super::request::request_target(&c.buf), status);
        }
        answer_now(&c.stream, &Response::reason(status, reason));
    }

    /// Read what is there; the connection back while it is still being read.
    fn read(&mut self, mut c: Conn) -> Option<Conn> {
        let cap = self.buf_cap();
        let mut chunk = [0u8; READ_CHUNK];
        let mut got_any = false;
        loop {
            let room = cap.saturating_sub(c.buf.len()).min(READ_CHUNK);
            if room == 0 {
                break;
            }
            let room = room.min(self.budget);
            if room == 0 {
                if self.complete_or_refused(&mut c) {
                    return None;
                }
                let peer = c.peer;
                self.log.info(|| format!("http: {peer}: buffers full; closed"));
                self.refuse(&c, 503, "busy; try again later");
                return None;
            }
            match c.stream.read(&mut chunk[..room]) {
                Ok(0) => {
                    // The peer went away (or half-closed): what it sent may
                    // still be a complete request; anything less is dropped.
                    if !(got_any && self.complete_or_refused(&mut c)) {
                        log::debug!("http: {} closed before a complete request", c.peer);
                        if !c.buf.is_empty() {
                            (self.refused)(c.peer, super::request::request_target(&c.buf), 400);
                        }
                    }
                    return None;
                }
                Ok(n) => {
                    c.buf.extend_from_slice(&chunk[..n]);
                    self.budget = self.budget.saturating_sub(n);
                    got_any = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
        if self.complete_or_refused(&mut c) {
            return None;
        }
        if c.buf.len() >= cap {
            self.refuse(&c, 413, "request too large");
            return None;
        }
        Some(c)
    }

    /// Parse what was read: a complete request goes to a worker, a refused
    /// one is answered; true when the connection is done with here.
    fn complete_or_refused(&mut self, c: &mut Conn) -> bool {
        match parse(&c.buf, &self.limits) {
            Ok(Progress::Partial { head_done, expects_continue }) => {
                if head_done && expects_continue && !c.continue_sent {
                    c.continue_sent = true;
                    let _ = (&c.stream).write(b"HTTP/1.1 100 Continue\r\n\r\n");
                }
                false
            }
            Ok(Progress::Done(req)) => {
                let Ok(stream) = c.stream.try_clone() else { return true };
                let _ = c.stream.set_nonblocking(false);
                match self.jobs.try_send(Job { stream, peer: c.peer, req }) {
                    Ok(()) => {}
                    Err(TrySendError::Full(job)) => {
                        answer_now(&job.stream, &Response::reason(503, "busy; try again later"));
                        (self.refused)(job.peer, Some(&job.req.target), 503);
                    }
                    Err(TrySendError::Disconnected(_)) => {}
                }
                true
            }
            Err(e) => {
                let peer = c.peer;
                self.log.info(|| format!("http: {peer}: {} {}", e.status, e.reason));
                self.refuse(c, e.status, &e.reason);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(addr: SocketAddr, parts: &[&[u8]]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut out = Vec::new();
        for p in parts {
            s.write_all(p).unwrap();
            if p.ends_with(b"\r\n\r\n") && p.windows(6).any(|w| w.eq_ignore_ascii_case(b"expect")) {
                let mut b = [0u8; 64];
                let n = s.read(&mut b).unwrap();
                out.extend_from_slice(&b[..n]);
            }
        }
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn serves_continues_refuses_and_stops_promptly() {
        let refusals = Arc::new(Mutex::new(Vec::new()));
        let r2 = refusals.clone();
        let mut srv = Server::start(
            "127.0.0.1:0",
            "sms-rx",
            Limits { max_body: 64, ..Limits::default() },
            |ip| ip.is_loopback(),
            |req, _| Response::reason(200, &format!("{} {} {}", req.method, req.target, req.body.len())),
            move |_, target, status| r2.lock().unwrap().push((target.map(String::from), status)),
        )
        .unwrap();
        let a = srv.local_addr();
        let r = exchange(a, &[b"POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"]);
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n") && r.contains("Connection: close") && r.contains("POST /x 3"), "{r}");
        let r = exchange(a, &[b"POST /y HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n", b"hi"]);
        assert!(r.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200") && r.contains("POST /y 2"), "{r}");
        let r = exchange(a, &[b"POST /big HTTP/1.1\r\nContent-Length: 65\r\n\r\n"]);
        assert!(r.starts_with("HTTP/1.1 413"), "{r}");
        assert_eq!(*refusals.lock().unwrap(), vec![(Some("/big".to_string()), 413)], "the application hears of it");
        // Stop with idle and half-sent connections open: prompt.
        let idle: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(a).unwrap()).collect();
        let mut half = TcpStream::connect(a).unwrap();
        half.write_all(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nab").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let t0 = Instant::now();
        srv.stop();
        assert!(t0.elapsed() < Duration::from_secs(2), "stop took {:?}", t0.elapsed());
        drop(idle);
    }

    #[test]
    fn refused_peer_gets_403_before_sending_anything() {
        let srv = Server::start("127.0.0.1:0", "sms-rx", Limits::default(), |_| false, |_, _| Response::reason(200, "no"), |_, _, _| {}).unwrap();
        let mut s = TcpStream::connect(srv.local_addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.1 403") && out.contains("source address not allowed"), "{out}");
    }
}
