//! `cargo xtask`: the project's automation. Sets up the machine, cross-builds drivers into `.sys` images and
//! checks them, runs them under Wine, tests everything, benchmarks the sample driver.
//!
//! Run `cargo xtask help` for the commands.

mod bench;
mod c_driver;
mod driver_build;
mod image_size;
mod inf;
mod loom;
mod own_crate;
mod setup;
mod stack;
mod stop_under_load;
mod test_suite;
mod unload;
mod util;
mod wine;
mod wine_connect;
mod windows_packaging;

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Instant;

use driver_build::BuildOptions;
use util::{bail, Paths, Result};
use wine::{DriverSpec, Session, WineEnv};

/// The port the sample driver listens on.
const DEFAULT_PORT: u16 = 8080;

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  setup                 install what is missing (apt-get as root: wine, mingw-w64, curl, wrk, valgrind;
                        rustup target x86_64-pc-windows-gnu); changes nothing if all is there
  build                 cross-build the driver to target/sys/<name>.sys and check its imports/subsystem and
                        its stack (largest frame, deepest chain per entry point; target/sys/<name>.stack.json)
                        and its stripped size against the 128 KiB budget (target/sys/<name>.size.json)
  check FILE.sys        the checks of `build` on a .sys built elsewhere (your own driver crate): subsystem,
                        import table, stack (and its stripped size, reported, not limited)
  stack FILE.sys        the stack check alone, on any .sys: print the figures, fail if over budget
                        (--json PATH: also write the figures there)
  stack-selftest        build the big-frame test driver and check that the stack check rejects it
  serve                 build, start a Wine session and load the driver; leaves it answering on 127.0.0.1:8080
  stop                  unload the driver (its DriverUnload runs), print its final log lines, end the session
  demo                  setup + build + serve, then curl GET / and GET /stats, then stop; 0 only if GET / was 200
  test                  all tests: cargo test --workspace, rustdoc with warnings denied, the fault sweep,
                        the sim-based tests on 24 KiB stacks (--profile sim-opt), loom, the driver build with its import and stack checks
                        and the stack self-test, the Wine end-to-end tests against the driver (and its unload
                        counters), the echo sample under Wine (both builds checked), the connection test
                        drivers under Wine (as wine-connect), an own driver crate (as own-crate), the
                        sim-based tests under valgrind
  valgrind              only the valgrind phase of `test`
  loom                  the loom model checks of the runtime's lock-free handshakes (runtime/loom): every
                        model on the shipped files, and the mutants each model must catch
  wine-connect          the connection test drivers (tests/drivers/connect-peer, connect-name) under Wine:
                        each connects to its peer on 127.0.0.1 (by number; by `localhost`, resolved with
                        WskGetAddressInfo), the peer checks the exchange, the unload counters must be zero
  windows-packaging     what Linux checks of the Windows-only parts: `cargo tree` of wsk --features wdk for
                        x86_64-pc-windows-msvc, examples/wdk-echo's manifest, the INF/INX check, and a
                        type-check of the wdk feature and the example against tests/wdk-standins
  inf FILE...           the INF/INX check alone, on any files (file:line: message per problem)
  own-crate             a driver crate of your own: the files of README's section on your own driver crate,
                        in a fresh crate outside the workspace, plain `cargo build`, the checks of `build`,
                        loaded under Wine (the README endpoint's port), echo round trips, unload counters 0
  unload-under-load     load the driver under Wine and unload it (sc stop, its DriverUnload) 20 times while
                        wrk -t2 -c64 runs; each unload within 2 s with every live counter 0 (part of `test`)
  bench                 wrk (1, 16, 64 connections; keep-alive and `Connection: close`) against the sample,
                        the hand-written C WSK driver (tests/wine/c_wsk_http.c, port +1) in the same Wine
                        session, the user-mode C peer under Wine (port +10001) and natively (port +10002);
                        checks that all four send the sample's bytes; target/bench.json and markdown tables
  help                  this text

options:
  -p, --package PKG     driver package (build, serve, demo, test, bench; default http-listener)
  --debug               dev profile instead of release (build, serve, demo, test, bench)
  --release             release profile (the default)
  --no-host             test: skip the host phases (cargo test --workspace, fault sweep, sim-opt, loom)
  --no-valgrind         test: skip the valgrind phase
  --duration SECS       bench: seconds per wrk run (default 5)
  --sys PATH            serve/demo/test/bench: load this prebuilt .sys instead of building (still checked)
  --name NAME           service name for --sys (default: the file name without .sys)
  --port N              the TCP port the driver answers on (default 8080); the HTTP sample is built for it
                        (WSK_HTTP_PORT at compile time)

environment:
  WSK_WINE_DIR          session directory: prefix, log, state, helper .exe (default target/wine)
  WSK_WINEPREFIX        Wine prefix (default $WSK_WINE_DIR/prefix)
  WSK_E2E_IDLE_SECS     the driver's idle timeout the Wine tests expect (default 5)
  WSK_WINEDEBUG         WINEDEBUG of the session (default -all,warn+debugstr,err+all); e.g. add
                        +timestamp,+tid,+netio to trace every WSK call into the session log";

/// Which driver a command works on: a package to build, or a prebuilt image.
#[derive(Clone, Debug)]
pub struct DriverArgs {
    /// The cargo package to build.
    pub build: BuildOptions,
    /// A prebuilt `.sys` to use instead of building.
    pub sys: Option<PathBuf>,
    /// The service name for `sys`.
    pub name: Option<String>,
    /// The port the driver answers on.
    pub port: u16,
}

/// Builds (or takes the prebuilt) driver and checks its image; returns what to load.
///
/// # Errors
/// If the build or the image check fails.
pub fn resolve_driver(paths: &Paths, args: &DriverArgs) -> Result<DriverSpec> {
    match &args.sys {
        Some(sys) => {
            driver_build::check_file(sys)?;
            let name = match &args.name {
                Some(n) => n.clone(),
                None => sys
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            };
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                bail!("bad service name {name:?}: use letters, digits, _ and -");
            }
            Ok(DriverSpec {
                name,
                sys: sys.clone(),
                port: args.port,
            })
        }
        None => {
            let built = driver_build::build(paths, &args.build)?;
            Ok(DriverSpec {
                name: built.name,
                sys: built.sys,
                port: args.port,
            })
        }
    }
}

enum Cmd {
    Setup,
    Build,
    Check { sys: PathBuf },
    Stack { sys: PathBuf, json: Option<PathBuf> },
    StackSelfTest,
    Serve,
    Stop,
    Demo,
    Test,
    Valgrind,
    Loom,
    Bench,
    WineConnect,
    UnloadUnderLoad,
    WindowsPackaging,
    Inf(Vec<PathBuf>),
    OwnCrate,
    Help,
}

struct Args {
    cmd: Cmd,
    driver: DriverArgs,
    host: bool,
    valgrind: bool,
    duration: u32,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args> {
    let cmd = match it.next().as_deref() {
        Some("setup") => Cmd::Setup,
        Some("build") => Cmd::Build,
        Some("stack") => match it.next() {
            Some(path) if !path.starts_with('-') => Cmd::Stack {
                sys: PathBuf::from(path),
                json: None,
            },
            _ => bail!("`stack` needs the path of a .sys\n\n{USAGE}"),
        },
        Some("check") => match it.next() {
            Some(path) if !path.starts_with('-') => Cmd::Check { sys: PathBuf::from(path) },
            _ => bail!("`check` needs the path of a .sys\n\n{USAGE}"),
        },
        Some("stack-selftest") => Cmd::StackSelfTest,
        Some("serve") => Cmd::Serve,
        Some("stop") => Cmd::Stop,
        Some("demo") => Cmd::Demo,
        Some("test") => Cmd::Test,
        Some("valgrind") => Cmd::Valgrind,
        Some("loom") => Cmd::Loom,
        Some("bench") => Cmd::Bench,
        Some("wine-connect") => Cmd::WineConnect,
        Some("unload-under-load") => Cmd::UnloadUnderLoad,
        Some("windows-packaging") => Cmd::WindowsPackaging,
        Some("inf") => {
            let files: Vec<PathBuf> = it.by_ref().map(PathBuf::from).collect();
            if files.is_empty() || files.iter().any(|f| f.to_string_lossy().starts_with('-')) {
                bail!("`inf` needs the paths of INF/INX files\n\n{USAGE}");
            }
            Cmd::Inf(files)
        }
        Some("own-crate") => Cmd::OwnCrate,
        Some("help" | "-h" | "--help") | None => Cmd::Help,
        Some(other) => bail!("unknown command `{other}`\n\n{USAGE}"),
    };
    let mut args = Args {
        cmd,
        driver: DriverArgs {
            build: BuildOptions::default(),
            sys: None,
            name: None,
            port: DEFAULT_PORT,
        },
        host: true,
        valgrind: true,
        duration: 5,
    };
    let takes_driver = matches!(
        args.cmd,
        Cmd::Build | Cmd::Serve | Cmd::Demo | Cmd::Test | Cmd::Bench | Cmd::WineConnect | Cmd::UnloadUnderLoad
    );
    let loads_driver = takes_driver && !matches!(args.cmd, Cmd::Build | Cmd::WineConnect);
    while let Some(flag) = it.next() {
        let mut value = |what: &str| {
            it.next()
                .ok_or_else(|| util::Error::msg(format!("`{flag}` needs {what}")))
        };
        match flag.as_str() {
            "-p" | "--package" if takes_driver => {
                args.driver.build.package = value("a package name")?
            }
            "--release" if takes_driver => args.driver.build.release = true,
            "--debug" if takes_driver => args.driver.build.release = false,
            "--sys" if loads_driver => args.driver.sys = Some(PathBuf::from(value("a path")?)),
            "--name" if loads_driver => args.driver.name = Some(value("a service name")?),
            "--port" if loads_driver || matches!(args.cmd, Cmd::Build) => {
                let v = value("a port")?;
                args.driver.port = v
                    .parse()
                    .map_err(|_| util::Error::msg(format!("bad port `{v}`")))?;
            }
            "--json" if matches!(args.cmd, Cmd::Stack { .. }) => {
                let path = PathBuf::from(value("a path")?);
                if let Cmd::Stack { json, .. } = &mut args.cmd {
                    *json = Some(path);
                }
            }
            "--no-host" if matches!(args.cmd, Cmd::Test) => args.host = false,
            "--valgrind" if matches!(args.cmd, Cmd::Test) => args.valgrind = true,
            "--no-valgrind" if matches!(args.cmd, Cmd::Test) => args.valgrind = false,
            "--duration" if matches!(args.cmd, Cmd::Bench) => {
                let v = value("seconds")?;
                args.duration = v
                    .parse()
                    .ok()
                    .filter(|&d| d > 0)
                    .ok_or_else(|| util::Error::msg(format!("bad duration `{v}`")))?;
            }
            _ => bail!("unknown option `{flag}` for this command\n\n{USAGE}"),
        }
    }
    // The sample listens where the xtask looks: its build gets the port (WSK_HTTP_PORT).
    args.driver.build.port = Some(args.driver.port);
    Ok(args)
}

fn main() -> ExitCode {
    let start = Instant::now();
    let result =
        parse_args(std::env::args().skip(1)).and_then(|args| run(&Paths::discover(), args));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!("(after {})", util::secs(start.elapsed()));
            ExitCode::FAILURE
        }
    }
}

fn run(paths: &Paths, args: Args) -> Result<()> {
    match args.cmd {
        Cmd::Help => {
            println!("{USAGE}");
            Ok(())
        }
        Cmd::Setup => setup::ensure(&paths.root),
        Cmd::Build => {
            setup::check(&paths.root)?;
            driver_build::build(paths, &args.driver.build).map(drop)
        }
        Cmd::UnloadUnderLoad => {
            setup::check(&paths.root)?;
            let spec = resolve_driver(paths, &args.driver)?;
            stop_under_load::run(paths, &spec).map(|s| println!("unload-under-load: {s}"))
        }
        Cmd::WineConnect => {
            setup::check(&paths.root)?;
            wine_connect::run(paths, args.driver.build.release).map(|s| println!("wine-connect: {s}"))
        }
        Cmd::Check { sys } => {
            driver_build::check_file(&sys)?;
            stack::check_file(&sys, None)?;
            image_size::check_file(&sys, None, None)?;
            println!("check: {} is a valid kernel image within the stack budget", sys.display());
            Ok(())
        }
        Cmd::OwnCrate => {
            setup::check(&paths.root)?;
            own_crate::run(paths).map(|s| println!("own-crate: {s}"))
        }
        Cmd::Stack { sys, json } => stack::check_file(&sys, json.as_deref()).map(drop),
        Cmd::StackSelfTest => {
            setup::check(&paths.root)?;
            stack::self_test(paths).map(|s| println!("stack-selftest: {s}"))
        }
        Cmd::Serve => serve(paths, &args.driver).map(drop),
        Cmd::Stop => stop(paths),
        Cmd::Demo => demo(paths, &args.driver),
        Cmd::Test => test_suite::run(
            paths,
            &test_suite::TestOptions {
                host: args.host,
                valgrind: args.valgrind,
                driver: args.driver,
            },
        ),
        Cmd::Valgrind => {
            setup::check(&paths.root)?;
            test_suite::valgrind(paths).map(|s| println!("valgrind: {s}"))
        }
        Cmd::Loom => loom::run(paths).map(|s| println!("loom: {s}")),
        Cmd::Bench => bench(paths, &args.driver, args.duration),
        Cmd::WindowsPackaging => {
            setup::check(&paths.root)?;
            windows_packaging::run(paths).map(|s| println!("windows-packaging: {s}"))
        }
        Cmd::Inf(files) => {
            let problems: Vec<String> = files.iter().filter_map(|f| inf::check_file(f).err()).collect();
            if problems.is_empty() {
                println!("inf: {} file(s), no problem", files.len());
                Ok(())
            } else {
                bail!("{}", problems.join("\n"))
            }
        }
    }
}

fn serve(paths: &Paths, driver: &DriverArgs) -> Result<Session> {
    setup::check(&paths.root)?;
    let spec = resolve_driver(paths, driver)?;
    let env = WineEnv::new(paths);
    let session = wine::serve(&env, std::slice::from_ref(&spec))?;
    println!(
        "serving: http://127.0.0.1:{}/  (driver {}, log {})",
        spec.port,
        spec.name,
        env.log.display()
    );
    println!("stop with: cargo xtask stop");
    Ok(session)
}

fn stop(paths: &Paths) -> Result<()> {
    let env = WineEnv::new(paths);
    let Some(session) = Session::attach(&env) else {
        println!(
            "stop: no session recorded in {}; ending any Wine server of the prefix anyway",
            env.state.display()
        );
        return env.kill_server();
    };
    let report = session.stop()?;
    test_suite::print_stop_report(&report);
    match &report.unload {
        Some((line, _)) => println!("final counters: {line}"),
        None => println!("final counters: the driver logged no `unload complete:` line"),
    }
    println!("stop: session ended");
    Ok(())
}

fn demo(paths: &Paths, driver: &DriverArgs) -> Result<()> {
    setup::ensure(&paths.root)?;
    let session = serve(paths, driver)?;
    let base = format!("http://127.0.0.1:{}", driver.port);
    let root = curl(&format!("{base}/"));
    let stats = curl(&format!("{base}/stats"));
    let report = session.stop()?;
    test_suite::print_stop_report(&report);
    if let Some((line, _)) = &report.unload {
        println!("final counters: {line}");
    }
    let root = root?;
    stats?;
    let status_line = root.lines().next().unwrap_or("").trim();
    if status_line.split_whitespace().nth(1) != Some("200") {
        bail!("demo: GET / answered `{status_line}`, not 200");
    }
    println!("demo: GET / answered `{status_line}`: the driver works");
    Ok(())
}

/// `curl -sS -i URL`, printed; returns the answer.
fn curl(url: &str) -> Result<String> {
    println!("\n$ curl -sS -i {url}");
    let out = util::stdout_of(Command::new("curl").args(["-sS", "-i", "--max-time", "10", url]))?;
    println!("{}", out.replace('\r', ""));
    Ok(out)
}

fn bench(paths: &Paths, driver: &DriverArgs, secs: u32) -> Result<()> {
    setup::check(&paths.root)?;
    let spec = resolve_driver(paths, driver)?;
    bench::run_in_session(paths, &spec, secs, &paths.target.join("bench.json")).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use driver_build::DEFAULT_PACKAGE;

    fn parse(s: &str) -> Result<Args> {
        parse_args(s.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn parses_commands_and_options() {
        let a = parse("build -p foo --debug").unwrap_or_else(|e| unreachable!("{e}"));
        assert!(matches!(a.cmd, Cmd::Build));
        assert_eq!(a.driver.build.package, "foo");
        assert!(!a.driver.build.release);

        let a =
            parse("serve --sys /tmp/x.sys --port 18080").unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(a.driver.sys, Some(PathBuf::from("/tmp/x.sys")));
        assert_eq!(a.driver.port, 18080);
        assert_eq!(a.driver.build.package, DEFAULT_PACKAGE);

        let a = parse("test --no-valgrind").unwrap_or_else(|e| unreachable!("{e}"));
        assert!(!a.valgrind && a.host);
        assert!(matches!(parse("").map(|a| a.cmd), Ok(Cmd::Help)));
        assert!(
            matches!(parse("stack target/sys/x.sys").map(|a| a.cmd), Ok(Cmd::Stack { sys, json: None }) if sys.as_os_str() == "target/sys/x.sys")
        );
        assert!(
            matches!(parse("stack x.sys --json x.json").map(|a| a.cmd), Ok(Cmd::Stack { json: Some(j), .. }) if j.as_os_str() == "x.json")
        );
        assert!(matches!(
            parse("stack-selftest").map(|a| a.cmd),
            Ok(Cmd::StackSelfTest)
        ));
        assert!(matches!(parse("loom").map(|a| a.cmd), Ok(Cmd::Loom)));
        assert!(matches!(parse("own-crate").map(|a| a.cmd), Ok(Cmd::OwnCrate)));
        assert!(
            matches!(parse("check x.sys").map(|a| a.cmd), Ok(Cmd::Check { sys }) if sys.as_os_str() == "x.sys")
        );
    }

    #[test]
    fn the_port_reaches_the_build() {
        let a = parse("build --port 8400").unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(a.driver.build.port, Some(8400));
        let a = parse("test --no-host --port 8401").unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!((a.driver.port, a.driver.build.port), (8401, Some(8401)));
        let a = parse("serve").unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(a.driver.build.port, Some(DEFAULT_PORT));
        let a = parse("unload-under-load --port 8402").unwrap_or_else(|e| unreachable!("{e}"));
        assert!(matches!(a.cmd, Cmd::UnloadUnderLoad));
        assert_eq!(a.driver.build.port, Some(8402));
        assert!(parse("wine-connect --port 8400").is_err());
    }

    #[test]
    fn rejects_bad_input() {
        assert!(parse("frobnicate").is_err());
        assert!(parse("build --sys x.sys").is_err());
        assert!(parse("stop -p foo").is_err());
        assert!(parse("serve --port").is_err());
        assert!(parse("serve --port 99999").is_err());
        assert!(parse("bench --duration 0").is_err());
        assert!(parse("stack").is_err());
        assert!(parse("stack x.sys -p foo").is_err());
        assert!(parse("check").is_err());
        assert!(parse("own-crate --port 1").is_err());
    }
}
