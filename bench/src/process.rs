//! Starting a server binary as the Functions host does, timing its readiness, reading its
//! memory from `/proc`, and draining its output.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The host gives a custom handler this long to answer before it gives up; so do we.
const READY_LIMIT: Duration = Duration::from_secs(30);
/// Short enough not to blur a start of a few milliseconds.
const READY_POLL: Duration = Duration::from_micros(250);
/// The end of each output kept to explain a failure.
const TAIL_BYTES: usize = 4096;

/// What a process wrote, counted; its end is kept to explain a failure.
#[derive(Debug, Default)]
pub struct Output {
    pub lines: u64,
    pub bytes: u64,
    tail: Vec<u8>,
}

/// A running server process; killed when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    /// From just before exec to the first 200 on `GET /`.
    pub ready_after: Duration,
    pub stdout: Arc<Mutex<Output>>,
    pub stderr: Arc<Mutex<Output>>,
}

/// Resident memory in KiB, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub rss_kib: u64,
    pub peak_kib: u64,
}

impl Server {
    /// Starts `exe` with exactly `env` (plus `PATH` and the port) and waits for `GET /` to answer.
    pub fn start(exe: &Path, env: &[(&str, String)]) -> io::Result<Self> {
        Self::start_under(&[], exe, env)
    }

    /// [`Self::start`], with `exe` run by `wrapper` (a program and its arguments, such as
    /// valgrind), which must run it in its own process.
    pub fn start_under(wrapper: &[String], exe: &Path, env: &[(&str, String)]) -> io::Result<Self> {
        let port = free_port()?;
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .envs(env.iter().map(|(k, v)| (*k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = cmd.spawn()?;
        let stdout = drain(child.stdout.take().expect("stdout is piped"));
        let stderr = drain(child.stderr.take().expect("stderr is piped"));
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut server = Self {
            child,
            addr,
            ready_after: Duration::ZERO,
            stdout,
            stderr,
        };
        loop {
            if probe(addr)? {
                server.ready_after = started.elapsed();
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "{} exited with {status} before it was ready: {}",
                    exe.display(),
                    server.tail()
                )));
            }
            if started.elapsed() > READY_LIMIT {
                return Err(io::Error::other(format!(
                    "{} not ready within {READY_LIMIT:?}: {}",
                    exe.display(),
                    server.tail()
                )));
            }
            std::thread::sleep(READY_POLL);
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Current and peak resident set size.
    pub fn memory(&self) -> io::Result<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .ok_or_else(|| io::Error::other(format!("no {name} in /proc status")))
        };
        Ok(Memory {
            rss_kib: field("VmRSS:")?,
            peak_kib: field("VmHWM:")?,
        })
    }

    /// CPU time (user + system, all threads) the process has used so far.
    pub fn cpu_time(&self) -> io::Result<Duration> {
        cpu_time(&format!("/proc/{}/stat", self.pid()))
    }

    /// Resets the peak (`VmHWM`) to the current RSS, so the next peak belongs to the next phase.
    pub fn reset_peak(&self) -> io::Result<()> {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5")
    }

    /// The last lines the process wrote, for error messages.
    pub fn tail(&self) -> String {
        let mut text = String::new();
        for out in [&self.stderr, &self.stdout] {
            let out = out.lock().unwrap_or_else(|p| p.into_inner());
            text.push_str(String::from_utf8_lossy(&out.tail).trim_end());
            text.push('\n');
        }
        if text.trim().is_empty() {
            "(no output)".into()
        } else {
            text.trim_end().to_owned()
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Linux reports `utime`/`stime` in clock ticks of `USER_HZ`, which is 100 on every Linux ABI.
const TICK: Duration = Duration::from_millis(10);

/// CPU time (user + system) from a `/proc/<pid>/stat` file; `/proc/self/stat` for this process.
pub fn cpu_time(stat: &str) -> io::Result<Duration> {
    let text = std::fs::read_to_string(stat)?;
    // The command name may hold spaces and parentheses: fields are counted after the last ')'.
    let fields: Vec<&str> = text
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u32>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => Ok(TICK * (user + system)),
        _ => Err(io::Error::other(format!("{stat}: no utime/stime"))),
    }
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// One readiness poll: `Ok(true)` on a 200, `Ok(false)` while nothing listens yet.
fn probe(addr: SocketAddr) -> io::Result<bool> {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return Ok(false);
    };
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_nodelay(true)?;
    stream.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    if &head[..9] == b"HTTP/1.1 " && &head[9..12] == b"200" {
        Ok(true)
    } else {
        Err(io::Error::other(format!(
            "GET / answered {:?}",
            String::from_utf8_lossy(&head)
        )))
    }
}

/// Reads a pipe to its end on a thread of its own, so a chatty child never blocks on it. It
/// reads in large chunks and only counts lines, so that reading the gateway's log (as the
/// host does) costs the shared CPU as little as possible.
fn drain(mut pipe: impl Read + Send + 'static) -> Arc<Mutex<Output>> {
    let out = Arc::new(Mutex::new(Output::default()));
    let sink = out.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let mut last = Vec::new();
        loop {
            let n = match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let chunk = &buf[..n];
            last.extend_from_slice(chunk);
            if last.len() > TAIL_BYTES {
                last.drain(..last.len() - TAIL_BYTES);
            }
            let mut o = sink.lock().unwrap_or_else(|p| p.into_inner());
            o.lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
            o.bytes += n as u64;
            o.tail.clone_from(&last);
        }
    });
    out
}
