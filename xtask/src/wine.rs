//! Wine sessions: a prefix, a keep-alive process, kernel drivers loaded as services, and their log.
//!
//! A session is started by one process (`cargo xtask serve`) and may be stopped by another (`cargo xtask stop`),
//! so its state is written to `target/wine/session.state` (`key=value` lines). One session per directory:
//! starting a session ends the one recorded there; set `WSK_WINE_DIR` to run another one beside it.
//!
//! Why it is done this way (see shared/reference/wine.md):
//! - DbgPrint output appears on the stderr of the *first* Wine process of the session, which services.exe and
//!   winedevice.exe inherit; so that process is `keepalive.exe` with stderr on `target/wine/session.log`, started
//!   before anything else, and every later Wine command also sends its stderr there.
//! - services.exe and winedevice.exe exit when no Wine user process is left, and the driver's port goes dead
//!   although `sc start` said RUNNING; `keepalive.exe` sleeps for the whole session.
//! - Wine commands never get a pipe as stdout: a service they start could inherit it and keep it open forever.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::unload::{self, UnloadCounters, UNLOAD_MARKER};
use crate::util::{self, bail, Error, Paths, Result};

/// `WINEDEBUG` for a session: DbgPrint output (warn+debugstr) and Wine's errors, nothing else.
pub const SESSION_WINEDEBUG: &str = "-all,warn+debugstr,err+all";

/// How long a driver may take, after `sc start` said RUNNING, to accept TCP connections.
pub const PORT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long `stop` waits for the runtime's unload line after `sc stop`.
const UNLOAD_LOG_TIMEOUT: Duration = Duration::from_secs(5);

/// Time limit for a single Wine command (`sc`, `wineboot`, `wineserver -w`).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);

/// The Wine environment of this workspace: prefix, log and state file locations.
#[derive(Clone, Debug)]
pub struct WineEnv {
    /// The Wine prefix: `$WSK_WINEPREFIX`, else `<dir>/prefix`.
    pub prefix: PathBuf,
    /// `target/wine`, or `$WSK_WINE_DIR`.
    pub dir: PathBuf,
    /// The session log (Wine's stderr, with DbgPrint output): `<dir>/session.log`.
    pub log: PathBuf,
    /// The session state file: `<dir>/session.state`.
    pub state: PathBuf,
    /// Where the C sources of helper programs are (`tests/wine`).
    pub sources: PathBuf,
}

/// A kernel driver to load: service name, image and the TCP port it listens on (127.0.0.1).
#[derive(Clone, Debug)]
pub struct DriverSpec {
    /// The service name (also the file name under `system32\drivers`).
    pub name: String,
    /// The `.sys` on the Linux side.
    pub sys: PathBuf,
    /// The port that answers once the driver is up.
    pub port: u16,
}

impl WineEnv {
    /// The environment for the workspace at `paths`. `$WSK_WINE_DIR` moves the whole session directory
    /// (prefix, log, state, helper programs), so two sessions can coexist; `$WSK_WINEPREFIX` moves the prefix.
    pub fn new(paths: &Paths) -> Self {
        let dir = match std::env::var_os("WSK_WINE_DIR") {
            Some(d) if !d.is_empty() => paths.root.join(d),
            _ => paths.wine_dir(),
        };
        let prefix = match std::env::var_os("WSK_WINEPREFIX") {
            Some(p) if !p.is_empty() => paths.root.join(p),
            _ => dir.join("prefix"),
        };
        WineEnv {
            prefix,
            log: dir.join("session.log"),
            state: dir.join("session.state"),
            sources: paths.wine_sources(),
            dir,
        }
    }

    /// A command for a Wine program with this prefix, headless, without Mono/Gecko prompts, with the
    /// session's debug channels ([`SESSION_WINEDEBUG`], or `$WSK_WINEDEBUG` to trace Wine itself, e.g.
    /// `-all,warn+debugstr,err+all,+timestamp,+tid,+netio`; the session log then holds the trace).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        let debug = std::env::var("WSK_WINEDEBUG").unwrap_or_else(|_| SESSION_WINEDEBUG.to_owned());
        cmd.env("WINEPREFIX", &self.prefix)
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
            .env("DISPLAY", "")
            .env("WINEDEBUG", debug)
            .stdin(Stdio::null());
        cmd
    }

    /// Creates the prefix with `wineboot --init` unless it exists (7-11 s the first time).
    ///
    /// # Errors
    /// If wineboot fails or the prefix still lacks Wine's netio.sys afterwards.
    pub fn ensure_prefix(&self) -> Result<()> {
        let netio = self.drivers_dir().join("netio.sys");
        if self.prefix.join("system.reg").is_file() && netio.is_file() {
            return Ok(());
        }
        fs::create_dir_all(&self.dir)?;
        let boot_log = self.dir.join("wineboot.log");
        println!(
            "wine: creating prefix {} (log {})",
            self.prefix.display(),
            boot_log.display()
        );
        let start = Instant::now();
        let out = File::create(&boot_log)?;
        let mut cmd = self.command("wine");
        cmd.args(["wineboot", "--init"])
            .env("WINEDEBUG", "-all")
            .stdout(out.try_clone()?)
            .stderr(out);
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::msg(format!("cannot run wine: {e}")))?;
        let status = util::wait_timeout(&mut child, COMMAND_TIMEOUT, "wineboot --init")?;
        util::check_status(&cmd, status)?;
        // Let the session end so the registry is flushed to disk.
        self.wait_server()?;
        if !netio.is_file() {
            bail!(
                "wine: prefix {} has no {} after wineboot --init",
                self.prefix.display(),
                netio.display()
            );
        }
        println!("wine: prefix ready in {}", util::secs(start.elapsed()));
        Ok(())
    }

    /// Whether process `pid` runs with this `WINEPREFIX` (read from `/proc/<pid>/environ`).
    pub fn owns(&self, pid: u32) -> bool {
        let want = format!("WINEPREFIX={}", self.prefix.display());
        fs::read(format!("/proc/{pid}/environ"))
            .is_ok_and(|env| env.split(|&b| b == 0).any(|var| var == want.as_bytes()))
    }

    /// `C:\windows\system32\drivers` of the prefix.
    pub fn drivers_dir(&self) -> PathBuf {
        self.prefix.join("drive_c/windows/system32/drivers")
    }

    /// Builds `tests/wine/<name>.c` into `target/wine/bin/<name>.exe` with mingw, unless it is up to date.
    ///
    /// # Errors
    /// If the source is missing or the compiler fails.
    pub fn build_exe(&self, name: &str, libs: &[&str]) -> Result<PathBuf> {
        let src = self.sources.join(format!("{name}.c"));
        let bin = self.dir.join("bin");
        let exe = bin.join(format!("{name}.exe"));
        let modified = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
        if modified(&src).is_none() {
            bail!("wine: helper source {} is missing", src.display());
        }
        if modified(&exe).is_some() && modified(&exe) >= modified(&src) {
            return Ok(exe);
        }
        fs::create_dir_all(&bin)?;
        let mut cmd = Command::new("x86_64-w64-mingw32-gcc");
        cmd.args(["-O2", "-Wall", "-Wextra", "-o"])
            .arg(&exe)
            .arg(&src);
        for lib in libs {
            cmd.arg(format!("-l{lib}"));
        }
        util::run(&mut cmd)?;
        Ok(exe)
    }

    /// Ends every Wine process of this prefix: `wineserver -k`, then `wineserver -w`.
    ///
    /// # Errors
    /// If `wineserver -w` does not return in time.
    pub fn kill_server(&self) -> Result<()> {
        // Exits non-zero when no server runs: nothing to do then.
        let _ = self
            .command("wineserver")
            .arg("-k")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        self.wait_server()
    }

    fn wait_server(&self) -> Result<()> {
        let mut child = self
            .command("wineserver")
            .arg("-w")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        util::wait_timeout(&mut child, COMMAND_TIMEOUT, "wineserver -w").map(drop)
    }

    /// The last `n` lines of the session log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    fn log_len(&self) -> u64 {
        fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0)
    }

    fn log_since(&self, offset: u64) -> String {
        let mut text = Vec::new();
        if let Ok(mut f) = File::open(&self.log) {
            if f.seek(SeekFrom::Start(offset)).is_ok() {
                let _ = f.read_to_end(&mut text);
            }
        }
        String::from_utf8_lossy(&text).into_owned()
    }

    fn log_append(&self) -> Result<File> {
        Ok(OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?)
    }

    /// Writes a `[xtask] ...` marker line into the session log, so a reader can see what happened when.
    fn mark(&self, what: &str) {
        if let Ok(mut f) = self.log_append() {
            let _ = writeln!(f, "[xtask] {what}");
        }
    }

    /// Runs a Wine command inside the session: stdout to a file, stderr to the log. Returns whether it
    /// succeeded and its stdout followed by what the log gained meanwhile (Wine's `sc` reports failures
    /// such as `err:sc:wmain failed to create service 1073` on the err channel, not on stdout).
    fn run_in_session(&self, args: &[&str]) -> Result<(bool, String)> {
        let offset = self.log_len();
        let out_path = self.dir.join("command.out");
        let out = File::create(&out_path)?;
        let mut cmd = self.command("wine");
        cmd.args(args).stdout(out).stderr(self.log_append()?);
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::msg(format!("cannot run `{}`: {e}", util::display(&cmd))))?;
        let status = util::wait_timeout(&mut child, COMMAND_TIMEOUT, &util::display(&cmd))?;
        let mut text = fs::read(&out_path)
            .map(|b| String::from_utf8_lossy(&b).replace('\r', ""))
            .unwrap_or_default();
        text.push_str(&self.log_since(offset));
        Ok((status.success(), text))
    }
}

/// What `stop` saw.
#[derive(Debug, Default)]
pub struct StopReport {
    /// DbgPrint messages (and other log lines) mentioning `wsk`, logged from `sc stop` on.
    pub wsk_lines: Vec<String>,
    /// The runtime's unload line and its counters, if it was logged.
    pub unload: Option<(String, UnloadCounters)>,
    /// Things that went wrong while stopping (the session is ended anyway).
    pub problems: Vec<String>,
}

/// A running Wine session, as recorded in the state file.
#[derive(Debug)]
pub struct Session {
    env: WineEnv,
    keepalive_pid: u32,
    drivers: Vec<(String, u16)>,
    processes: Vec<(u32, u16, String)>,
}

impl Session {
    /// Starts a session: ends any earlier one of this prefix, creates the prefix if needed, builds and starts
    /// `keepalive.exe` with its stderr on a fresh session log.
    ///
    /// # Errors
    /// If Wine or mingw are missing or fail.
    pub fn start(env: &WineEnv) -> Result<Session> {
        fs::create_dir_all(&env.dir)?;
        if let Some(old) = Session::attach(env) {
            println!(
                "wine: ending the session left running (keepalive pid {})",
                old.keepalive_pid
            );
        }
        env.kill_server()?;
        let _ = fs::remove_file(&env.state);
        env.ensure_prefix()?;
        let keepalive = env.build_exe("keepalive", &[])?;

        let log = File::create(&env.log)?;
        let mut cmd = env.command("wine");
        cmd.arg(&keepalive).stdout(log.try_clone()?).stderr(log);
        // Its own process group: a Ctrl-C meant for the xtask must not end the session it leaves running.
        cmd.process_group(0);
        let child = cmd
            .spawn()
            .map_err(|e| Error::msg(format!("cannot start keepalive.exe under wine: {e}")))?;
        let session = Session {
            env: env.clone(),
            keepalive_pid: child.id(),
            drivers: Vec::new(),
            processes: Vec::new(),
        };
        session.save()?;
        println!(
            "wine: session started (keepalive pid {}, log {})",
            session.keepalive_pid,
            env.log.display()
        );
        Ok(session)
    }

    /// The session recorded in the state file, if any (whether or not its processes still run).
    pub fn attach(env: &WineEnv) -> Option<Session> {
        let text = fs::read_to_string(&env.state).ok()?;
        let mut s = Session {
            env: env.clone(),
            keepalive_pid: 0,
            drivers: Vec::new(),
            processes: Vec::new(),
        };
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let mut words = value.split_whitespace();
            match key {
                "keepalive_pid" => s.keepalive_pid = value.trim().parse().unwrap_or(0),
                "driver" => {
                    if let (Some(name), Some(Ok(port))) =
                        (words.next(), words.next().map(str::parse))
                    {
                        s.drivers.push((name.to_owned(), port));
                    }
                }
                "process" => {
                    if let (Some(Ok(pid)), Some(Ok(port)), Some(name)) = (
                        words.next().map(str::parse),
                        words.next().map(str::parse),
                        words.next(),
                    ) {
                        s.processes.push((pid, port, name.to_owned()));
                    }
                }
                _ => {}
            }
        }
        Some(s)
    }

    fn save(&self) -> Result<()> {
        let mut text = format!(
            "# written by cargo xtask; read by `cargo xtask stop`\nprefix={}\nlog={}\nkeepalive_pid={}\n",
            self.env.prefix.display(),
            self.env.log.display(),
            self.keepalive_pid
        );
        for (name, port) in &self.drivers {
            text.push_str(&format!("driver={name} {port}\n"));
        }
        for (pid, port, name) in &self.processes {
            text.push_str(&format!("process={pid} {port} {name}\n"));
        }
        fs::write(&self.env.state, text)?;
        Ok(())
    }

    /// The Wine environment of this session.
    pub fn env(&self) -> &WineEnv {
        &self.env
    }

    /// Installs and starts a kernel driver, then waits until 127.0.0.1:`port` accepts connections (port 0:
    /// a driver that only connects out, nothing to wait for).
    ///
    /// # Errors
    /// If the port is already taken, `sc create`/`sc start` fail, the session dies, or the port does not
    /// answer within [`PORT_TIMEOUT`]. The log tail is part of the message.
    pub fn load_driver(&mut self, spec: &DriverSpec) -> Result<()> {
        // Port 0: a driver that only connects out; there is no port of its own to check or wait for.
        if spec.port != 0 {
            ensure_port_free(spec.port)?;
        }
        let drivers = self.env.drivers_dir();
        fs::create_dir_all(&drivers)?;
        // Re-copied on every load, so a rebuilt driver is what runs.
        fs::copy(&spec.sys, drivers.join(format!("{}.sys", spec.name)))
            .map_err(|e| Error::msg(format!("wine: cannot copy {}: {e}", spec.sys.display())))?;
        let bin_path = format!("C:\\windows\\system32\\drivers\\{}.sys", spec.name);
        let name = spec.name.as_str();

        self.env.mark(&format!("sc create {name}"));
        let create = [
            "sc", "create", name, "type=", "kernel", "start=", "demand", "binPath=", &bin_path,
        ];
        let (ok, out) = self.env.run_in_session(&create)?;
        // 1073 is ERROR_SERVICE_EXISTS: registered by an earlier session of this prefix.
        if !ok && !out.contains("1073") && !out.to_ascii_lowercase().contains("exists") {
            bail!(
                "wine: `sc create {name}` failed:\n{}\n--- log tail ---\n{}",
                out.trim(),
                self.env.log_tail(30)
            );
        }

        self.env.mark(&format!("sc start {name}"));
        let start = Instant::now();
        let (_, out) = self.env.run_in_session(&["sc", "start", name])?;
        if !out.contains("RUNNING") {
            bail!(
                "wine: `sc start {name}` did not report RUNNING:\n{}\n--- log tail ({}) ---\n{}",
                out.trim(),
                self.env.log.display(),
                self.env.log_tail(40)
            );
        }
        self.drivers.push((spec.name.clone(), spec.port));
        self.save()?;
        let started = start.elapsed();
        if spec.port == 0 {
            println!("wine: driver {name} RUNNING after {}", util::secs(started));
            return Ok(());
        }
        self.wait_for_port(spec.port, name)?;
        println!(
            "wine: driver {name} RUNNING after {}, 127.0.0.1:{} answering after {}",
            util::secs(started),
            spec.port,
            util::secs(start.elapsed())
        );
        Ok(())
    }

    /// Starts a Wine user program in the session (its output goes to the log) and waits for its port.
    ///
    /// # Errors
    /// If the port is taken, the program cannot start, or its port does not answer in time.
    pub fn spawn_program(&mut self, exe: &Path, args: &[String], port: u16) -> Result<()> {
        ensure_port_free(port)?;
        let name = exe
            .file_name()
            .map_or("program".into(), |n| n.to_string_lossy().into_owned());
        self.env.mark(&format!("start {name} {}", args.join(" ")));
        let log = self.env.log_append()?;
        let mut cmd = self.env.command("wine");
        cmd.arg(exe)
            .args(args)
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        let child = cmd
            .spawn()
            .map_err(|e| Error::msg(format!("cannot start {name} under wine: {e}")))?;
        self.processes.push((child.id(), port, name.clone()));
        self.save()?;
        self.wait_for_port(port, &name)
    }

    fn wait_for_port(&self, port: u16, what: &str) -> Result<()> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let start = Instant::now();
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(250)).is_ok() {
                return Ok(());
            }
            if !util::pid_alive(self.keepalive_pid) {
                bail!(
                    "wine: the session ended (keepalive.exe exited) before {what} answered on {addr}\n--- log tail ---\n{}",
                    self.env.log_tail(40)
                );
            }
            if start.elapsed() > PORT_TIMEOUT {
                bail!(
                    "wine: {what} did not accept connections on {addr} within {} s\n--- log tail ({}) ---\n{}",
                    PORT_TIMEOUT.as_secs(),
                    self.env.log.display(),
                    self.env.log_tail(40)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops every driver with `sc stop` (their DriverUnload runs), waits for the runtime's unload line, ends
    /// the session and removes the state file.
    ///
    /// # Errors
    /// Only if the Wine server cannot be ended; driver problems are in [`StopReport::problems`].
    pub fn stop(self) -> Result<StopReport> {
        let mut report = StopReport::default();
        let offset = self.env.log_len();
        let session_alive = util::pid_alive(self.keepalive_pid);
        if !session_alive && !self.drivers.is_empty() {
            report.problems.push(format!(
                "the session had already ended (keepalive pid {} gone): drivers were not unloaded",
                self.keepalive_pid
            ));
        }
        for (name, _) in self.drivers.iter().filter(|_| session_alive) {
            self.env.mark(&format!("sc stop {name}"));
            match self.env.run_in_session(&["sc", "stop", name]) {
                Ok((_, out)) if out.contains("STOPPED") || out.contains("STOP_PENDING") => {
                    println!("wine: sc stop {name}: {}", state_line(&out));
                }
                Ok((_, out)) => report
                    .problems
                    .push(format!("`sc stop {name}` said: {}", out.trim())),
                Err(e) => report.problems.push(e.to_string()),
            }
        }
        if session_alive && !self.drivers.is_empty() {
            // `sc stop` returns once DriverUnload has; its last lines may still be on their way to the log.
            // Wait for the unload line, or until the log has been quiet for a second.
            let start = Instant::now();
            let (mut last_len, mut last_change) = (self.env.log_len(), Instant::now());
            while start.elapsed() < UNLOAD_LOG_TIMEOUT
                && !self.env.log_since(offset).contains(UNLOAD_MARKER)
            {
                std::thread::sleep(Duration::from_millis(100));
                let len = self.env.log_len();
                if len != last_len {
                    (last_len, last_change) = (len, Instant::now());
                } else if last_change.elapsed() > Duration::from_secs(1) {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.env.mark("wineserver -k");
        self.env.kill_server()?;
        for pid in std::iter::once(self.keepalive_pid).chain(self.processes.iter().map(|p| p.0)) {
            // Only a process of this prefix: a stale state file may name a pid now used by another program.
            if pid != 0 && util::pid_alive(pid) && self.env.owns(pid) {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
        let _ = fs::remove_file(&self.env.state);

        let text = self.env.log_since(offset);
        report.wsk_lines = text
            .lines()
            .map(|l| unload::dbgprint_message(l).unwrap_or(l))
            .filter(|m| m.to_ascii_lowercase().contains("wsk"))
            .map(str::to_owned)
            .collect();
        report.unload = unload::find_in_log(&text);
        Ok(report)
    }
}

/// What [`Session::unload_driver`] saw.
#[derive(Debug, Default)]
pub struct Unloaded {
    /// From issuing `sc stop` until DriverUnload had returned (`sc stop` returned) and the runtime's
    /// unload line was in the log, whichever came later: an upper bound of the unload's duration.
    pub time: Duration,
    /// The runtime's unload line and its counters, if it was logged within the limit.
    pub unload: Option<(String, UnloadCounters)>,
    /// What went wrong (`sc stop` failing or saying something unexpected).
    pub problems: Vec<String>,
}

impl Session {
    /// Unloads one driver with `sc stop` and waits up to `limit` for the runtime's unload line; the
    /// session stays up, so the driver can be loaded again with [`Self::load_driver`] (Wine starts a
    /// new winedevice.exe for it).
    ///
    /// # Errors
    /// If the driver is not loaded in this session or the log cannot be read.
    pub fn unload_driver(&mut self, name: &str, limit: Duration) -> Result<Unloaded> {
        let Some(index) = self.drivers.iter().position(|(n, _)| n == name) else {
            bail!("wine: driver {name} is not loaded in this session");
        };
        let mut out = Unloaded::default();
        let offset = self.env.log_len();
        self.env.mark(&format!("sc stop {name}"));
        let start = Instant::now();
        match self.env.run_in_session(&["sc", "stop", name]) {
            Ok((_, text)) if text.contains("STOPPED") || text.contains("STOP_PENDING") => {}
            Ok((_, text)) => out.problems.push(format!("`sc stop {name}` said: {}", text.trim())),
            Err(e) => out.problems.push(e.to_string()),
        }
        loop {
            out.unload = unload::find_in_log(&self.env.log_since(offset));
            if out.unload.is_some() || start.elapsed() > limit {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        out.time = start.elapsed();
        self.drivers.remove(index);
        self.save()?;
        Ok(out)
    }
}

/// Starts a session and loads `drivers`; on failure ends the session again and returns the error.
///
/// # Errors
/// See [`Session::start`] and [`Session::load_driver`].
pub fn serve(env: &WineEnv, drivers: &[DriverSpec]) -> Result<Session> {
    let mut session = Session::start(env)?;
    for spec in drivers {
        if let Err(e) = session.load_driver(spec) {
            let _ = session.stop();
            return Err(e);
        }
    }
    Ok(session)
}

/// Fails if something already accepts connections on 127.0.0.1:`port` (we would test the wrong server).
///
/// # Errors
/// If the port is in use.
pub fn ensure_port_free(port: u16) -> Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    if TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok() {
        bail!("wine: something already listens on {addr}; stop it first (a session left running? `cargo xtask stop`)");
    }
    Ok(())
}

/// The `STATE : 1 STOPPED` part of `sc` output.
fn state_line(out: &str) -> String {
    out.lines().find(|l| l.contains("STATE")).map_or_else(
        || out.trim().to_owned(),
        |l| l.split_whitespace().collect::<Vec<_>>().join(" "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_file_roundtrip() {
        let dir = std::env::temp_dir().join(format!("xtask-wine-test-{}", std::process::id()));
        // Built by hand, not by `WineEnv::new`: the test must not follow $WSK_WINE_DIR to a real session.
        let env = WineEnv {
            prefix: dir.join("prefix"),
            log: dir.join("session.log"),
            state: dir.join("session.state"),
            sources: dir.join("src"),
            dir: dir.clone(),
        };
        let _ = fs::create_dir_all(&env.dir);
        let s = Session {
            env: env.clone(),
            keepalive_pid: 42,
            drivers: vec![("http_listener".into(), 8080)],
            processes: vec![(43, 18081, "peer_http.exe".into())],
        };
        assert!(s.save().is_ok());
        let back = Session::attach(&env);
        let _ = fs::remove_dir_all(&dir);
        let back = back.map(|b| (b.keepalive_pid, b.drivers, b.processes));
        assert_eq!(
            back,
            Some((
                42,
                vec![("http_listener".to_owned(), 8080)],
                vec![(43, 18081, "peer_http.exe".to_owned())]
            ))
        );
    }

    #[test]
    fn owns_only_processes_of_its_prefix() {
        let env = WineEnv {
            prefix: PathBuf::from("/nonexistent/prefix"),
            dir: PathBuf::new(),
            log: PathBuf::new(),
            state: PathBuf::new(),
            sources: PathBuf::new(),
        };
        assert!(!env.owns(std::process::id()));
        assert!(!env.owns(u32::MAX));
    }

    #[test]
    fn state_line_is_compacted() {
        let out = "SERVICE_NAME: x\n        TYPE               : 1  KERNEL_DRIVER\n        STATE              : 1  STOPPED\n";
        assert_eq!(state_line(out), "STATE : 1 STOPPED");
    }
}
