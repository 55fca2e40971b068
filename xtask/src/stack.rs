//! The stack check of `cargo xtask build`: a static bound on the stack every entry point of a `.sys` can
//! use, and on every function's frame.
//!
//! An x64 kernel thread has a fixed 24 KiB stack and running past it is a bugcheck; under Wine every
//! thread has 1 MiB or more, so no test run notices a frame that is too big (a 78 KB `Task<F>::poll` frame
//! passed every test). So every build reads the image and fails when a frame is over [`FRAME_BUDGET`], a
//! function calls the stack probe, or an entry point's deepest chain is over [`CHAIN_BUDGET`]. The report
//! prints the largest frames, each entry point's bound and the deepest chain; the JSON
//! (`target/sys/<name>.stack.json`) has every entry point's chain with the kernel routines each step calls.
//!
//! # Frames ([`unwind`], [`pe`])
//! Function ranges and frames come from the x64 unwind data the compiler emits for every function that
//! moves RSP: each `.pdata` RUNTIME_FUNCTION names a range and its `.xdata` UNWIND_INFO, whose codes say
//! what the prolog pushes and allocates (PUSH_NONVOL, ALLOC_SMALL, ALLOC_LARGE in both encodings,
//! PUSH_MACHFRAME; SET_FPREG and the SAVE_* codes move nothing). A chained range (UNW_FLAG_CHAININFO)
//! belongs to the function its chain ends at and adds its codes to the parent's. Frame = allocation + 8
//! for the return address. Code without unwind data (a leaf, an import thunk, `___chkstk_ms`) starts at a
//! COFF symbol, an export, the entry point, a relocated code pointer or a call target, and ends at the next
//! start. Whatever a function's body moves RSP down after the prolog (`push`, `sub rsp, N`, `and rsp, -N`)
//! is added as if never undone; `sub rsp, reg` cannot be bounded and is an error. A call of `___chkstk_ms`
//! (the probe of frames over one page) is an error in itself; its `mov $N, %eax` is compared with the
//! unwind allocation (a larger N is a note, and the frame is at least N + 8). Names come from the COFF
//! symbol table, demangled without hashes (`name@rva` where two functions share one).
//!
//! # The call graph ([`decode`], [`points_to`], [`analysis`])
//! Every function is decoded (iced-x86) with its control flow (direct branches, switches, see
//! [`decode`]). `call rel32` is an edge; a `jmp`/`jcc` out of the function is a tail call, which counts
//! the callee's chain instead of the caller's frame (the x64 ABI puts the epilogue before such a jump),
//! except from a function whose body moved RSP. Calls into the import address table, directly or through
//! an import thunk (`jmp [rip+IAT]`), are **kernel routines**: not counted, since the stack they use is
//! what the 12 KiB the chain budget leaves over is for; the JSON lists them per chain step.
//!
//! **Indirect calls.** The pointer is followed by [`points_to`]: reaching definitions in the function,
//! static slots (relocation + every store, when the slot's address never escapes), arguments traced to
//! every direct caller, return values traced to the callee's `ret`s. A pointer found exactly is an edge to
//! that function. Otherwise:
//! - a pointer loaded from `[p+N]`, where `p` was itself read from memory or passed in (a vtable pointer
//!   of a fat pointer, a `RawWaker`'s vtable, a task header's), reaches every function stored at offset N
//!   of a static table (a base relocation into a table whose start code forms with `lea` or data refers
//!   to; a table ends at the next such start), and every function whose address code forms;
//! - any other pointer read from memory or computed reaches every *address-taken* function (relocated
//!   into data, formed in code, or loaded from a data slot holding it).
//!
//! That is [`ASSUMPTION_DISPATCH`]: a pointer to a function table kept in memory points at the table's
//! start, and function pointers copied out of a static table are not stored elsewhere. Rust's dyn and
//! `RawWakerVTable` calls satisfy it. Candidate sets leave out the entry points ([`ASSUMPTION_ENTRIES`]).
//! The report also gives the bound "were every indirect call to reach every address-taken function", to
//! show how much the resolution matters.
//!
//! # Chains ([`chains`])
//! The deepest chain is the longest path ([`chains::chain_bounds`]). Indirect calls make cycles: a
//! `Display` impl's `write!` calls `core::fmt::write`, which calls `Display` impls through pointers; and
//! the binary cannot tell a waker's `clone` from the task vtable's `poll` at the same slot. The graph is
//! condensed into strongly connected components: outside cycles the figure is the exact longest path;
//! inside one it is bounded under
//! - [`ASSUMPTION_NESTING`]: at most [`MAX_DISPATCH_NESTING`] indirect calls between functions of one
//!   cycle are active on one stack (each such call spends a level);
//! - [`AT_MOST_ONCE`]: the listed functions never appear twice on one stack (each row has its reason);
//! - should direct calls alone form a cycle (recursion), [`ASSUMPTION_RECURSION`]: every function of it is
//!   charged at once.
//!
//! The report prints each assumption that was used. Under them every figure is an upper bound: every frame
//! is one, every real call is an edge of the graph, and every stack the assumptions allow is a path the
//! computation considers. An overestimate is possible (it is what the candidate sets cost); an
//! underestimate is not.
//!
//! # Entry points
//! [`ENTRY_POINTS`] lists what the kernel calls: the PE entry point and functions matched by demangled
//! name. A required one that matches nothing fails the check, naming the pattern, so a rename in the
//! runtime cannot drop it silently: update the table. Functions whose address code forms, that match no
//! entry and are not formatting functions are listed in a note (a new kernel callback would be one).

mod analysis;
mod chains;
mod decode;
mod pe;
mod points_to;
mod report;
mod unwind;

use std::fs;
use std::path::Path;

pub use analysis::{analyse, Analysis};

use crate::driver_build::{self, BuildOptions};
use crate::util::{self, bail, Paths, Result};

/// An x64 kernel thread's stack (`KERNEL_STACK_SIZE`, 0x6000): fixed, it cannot grow, and running past it
/// is a bugcheck (0x7F double fault or 0x50), not an exception.
pub const KERNEL_STACK: u64 = 0x6000;

/// The largest frame one function may have: one page. A larger frame needs a stack probe (`___chkstk_ms`)
/// and is always a sign of a large value on the stack (a future moved by value); Microsoft's C6262 already
/// warns at 1 KiB in driver code.
pub const FRAME_BUDGET: u64 = 4096;

/// The deepest chain of driver frames an entry point may reach: half of [`KERNEL_STACK`]. The other
/// 12 KiB is for what shares the stack and is not counted here: the kernel frames below the entry point
/// (the I/O manager, the thread start, a DPC), the kernel and WSK provider routines the driver calls, and
/// the `IoCompleteRequest` and completion-routine frames that run nested on the same stack when a
/// provider completes an IRP inline.
pub const CHAIN_BUDGET: u64 = 12 * 1024;

/// How deep dynamic dispatch may nest inside one call-graph cycle (see [`ASSUMPTION_NESTING`]). Five
/// allows a `log!` through `dyn Log`, the `fmt::Arguments` it formats, two nested `Display` impls (an
/// error and its source) and the `dyn Write` they write to. The bound grows with it (each level can add
/// the cycle's deepest round), so raise it only for a real deeper nesting.
pub const MAX_DISPATCH_NESTING: usize = 5;

/// How indirect calls are resolved; printed with every report.
pub const ASSUMPTION_DISPATCH: &str = "a pointer to a function table kept in memory points at the \
    table's start, and function pointers read from a static table are called, not stored elsewhere (so \
    a call through offset N of such a pointer reaches offset N of a static table or a function whose \
    address code forms, and any other unresolved pointer any address-taken function)";

/// Why an indirect call's candidate set leaves out the entry points; printed with every report.
pub const ASSUMPTION_ENTRIES: &str = "the entry points are called by the kernel only: the driver hands \
    their addresses over (DRIVER_OBJECT, PsCreateSystemThread, IRP stack locations) and calls none of them \
    through a pointer of its own unless the pointer is known to be exactly that function";

/// The bound inside call-graph cycles; printed with every report that has cycles.
pub const ASSUMPTION_NESTING: &str =
    "at most K indirect calls between functions of one call-graph cycle are active on one stack";

/// The bound of a direct-recursion cycle; printed only when there is one.
pub const ASSUMPTION_RECURSION: &str =
    "a function of a direct-recursion cycle appears at most once per dispatch level";

/// Functions that never appear twice on one stack, each with the reason; matched like [`ENTRY_POINTS`]
/// (demangled, `*` for any run). The chain computation never re-enters one (see
/// [`chains::chain_bounds`]). The binary alone cannot tell a waker's `clone` (slot 0 of a
/// `RawWakerVTable`) from a task's `poll` (slot 0 of the executor's task vtable), so without this the
/// bound would let every waker call re-enter the executor. Keep it short: each row is an assumption the
/// report prints.
pub const AT_MOST_ONCE: &[(&str, &str)] = &[
    (
        "wsk::executor::*Task<F>::poll",
        "the executor polls a task only from its run queue; waking only queues it",
    ),
    (
        "wsk::executor::*Task<F>::drop_future",
        "only `Scheduler::drop_tasks` calls it, for one task after another; dropping a future wakes or \
         releases other tasks, which never drops theirs (the indirect calls the analysis resolves to it \
         at its table offset are a waker's `wake`, which only queues, and the provider's dispatch \
         routines such as WskCloseSocket, which never call back into a task)",
    ),
    (
        "wsk::endpoint::Endpoint::start",
        "an endpoint is started once, from DriverEntry",
    ),
    (
        "*<impl wsk::endpoint::Endpoint for *>::start_with",
        "an endpoint is started once, from DriverEntry",
    ),
    (
        "wsk::socket::events::shut",
        "its only indirect call is WskRelease through the provider's dispatch table, provider code that \
         never calls back into the driver",
    ),
];

/// Names of the stack probe routines: calling one means a frame of more than a page.
pub const PROBES: &[&str] = &[
    "___chkstk_ms",
    "__chkstk",
    "__chkstk_ms",
    "___chkstk",
    "__alloca",
];

/// How the kernel reaches an entry point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// The PE entry point (`DriverEntry`, `-Wl,-e,DriverEntry`).
    PeEntry,
    /// The demangled name without its hash, `*` matching any run of characters.
    Name(&'static str),
}

/// When an image without a match for an entry point fails the check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Required {
    /// Every driver has it.
    Always,
    /// Every driver built on the wsk runtime has it (the image has `wsk::` functions): a renamed routine
    /// must not drop out of the check silently.
    WithRuntime,
}

/// One row of [`ENTRY_POINTS`].
#[derive(Clone, Copy, Debug)]
pub struct EntryPoint {
    /// What the report calls it.
    pub label: &'static str,
    /// How to find it.
    pub pattern: Pattern,
    /// Whether an image without a match fails the check.
    pub required: Required,
}

/// The prefix of the runtime's function names: an image with one is a wsk driver.
pub const RUNTIME_PREFIX: &str = "wsk::";

/// The functions the kernel calls. Update the patterns when the runtime renames them: a required pattern
/// that matches nothing fails the build with the pattern in the message.
pub const ENTRY_POINTS: &[EntryPoint] = &[
    EntryPoint {
        label: "DriverEntry",
        pattern: Pattern::PeEntry,
        required: Required::Always,
    },
    EntryPoint {
        label: "DriverUnload",
        pattern: Pattern::Name("*__wsk_driver_unload"),
        required: Required::WithRuntime,
    },
    EntryPoint {
        label: "executor thread",
        pattern: Pattern::Name("wsk::runtime::executor_thread"),
        required: Required::WithRuntime,
    },
    EntryPoint {
        label: "completion routine",
        pattern: Pattern::Name("wsk::irp::on_complete*"),
        required: Required::WithRuntime,
    },
    EntryPoint {
        label: "event callback",
        // WskAcceptEvent, WskReceiveEvent, WskDisconnectEvent, WskReceiveFromEvent: the runtime hands their
        // table to every WskSocket / WskAccept, so every wsk driver has them.
        pattern: Pattern::Name("wsk::socket::events::on_*"),
        required: Required::WithRuntime,
    },
];

/// Whether `name` matches `pattern`, where `*` matches any run of characters (also none).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return pattern == name;
    };
    if parts.len() == 1 {
        return pattern == name;
    }
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Demangles without the hash (`{:#}`); other names stay as they are.
pub fn demangle(raw: &str) -> String {
    match rustc_demangle::try_demangle(raw) {
        Ok(d) => format!("{d:#}"),
        Err(_) => raw.to_owned(),
    }
}

/// `78424` -> `78,424 B`.
pub fn bytes(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out.push_str(" B");
    out
}

/// Analyses `sys`, prints the report, writes `json` if given, and fails on any budget violation.
///
/// # Errors
/// If the file cannot be read or parsed, or the budget is exceeded (the message names the functions).
pub fn check_file(sys: &Path, json: Option<&Path>) -> Result<Analysis> {
    let data = fs::read(sys).map_err(|e| util::Error::msg(format!("{}: {e}", sys.display())))?;
    let name = sys.file_name().map_or_else(
        || sys.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let analysis = analyse(&name, &data)?;
    print!("{}", analysis.report());
    if let Some(json) = json {
        fs::write(json, analysis.json())?;
        println!("stack: figures in {}", json.display());
    }
    if !analysis.problems.is_empty() {
        bail!(
            "{} fails the stack check:\n  {}",
            sys.display(),
            analysis.problems.join("\n  ")
        );
    }
    Ok(analysis)
}

/// The test driver with an 8 KiB frame (tests/drivers/big-frame).
pub const SELF_TEST_PACKAGE: &str = "big-frame";

/// The function in it that holds the array.
pub const SELF_TEST_FUNCTION: &str = "big_frame::fill_and_sum";

/// The size of its array (`big_frame::FRAME_BYTES`): its frame must be at least this.
pub const SELF_TEST_ARRAY: u64 = 8 * 1024;

/// Builds the big-frame test driver the way `cargo xtask build -p big-frame` does and checks that the
/// build fails on its frame: the error names [`SELF_TEST_FUNCTION`], and the analysis of the image finds
/// its frame of at least [`SELF_TEST_ARRAY`] and its call of the stack probe.
///
/// # Errors
/// If the driver builds and passes, fails for another reason, or the figures are not as expected.
pub fn self_test(paths: &Paths) -> Result<String> {
    let opts = BuildOptions {
        package: SELF_TEST_PACKAGE.to_owned(),
        release: true,
        port: None,
    };
    let err = match driver_build::build(paths, &opts) {
        Ok(built) => bail!(
            "{} passed the stack check; it must be rejected for its 8 KiB frame",
            built.sys.display()
        ),
        Err(e) => e.to_string(),
    };
    let lines: Vec<&str> = err
        .lines()
        .map(str::trim)
        .filter(|l| l.contains(&format!("`{SELF_TEST_FUNCTION}`")))
        .collect();
    if !lines.iter().any(|l| l.contains("frame budget")) {
        bail!(
            "building {SELF_TEST_PACKAGE} failed, but not with a frame error naming \
             `{SELF_TEST_FUNCTION}`: {err}"
        );
    }
    let sys = paths
        .target
        .join("sys")
        .join(format!("{}.sys", SELF_TEST_PACKAGE.replace('-', "_")));
    let data = fs::read(&sys).map_err(|e| util::Error::msg(format!("{}: {e}", sys.display())))?;
    let analysis = analyse(&sys.display().to_string(), &data)?;
    let Some(f) = analysis
        .functions
        .iter()
        .find(|f| f.name == SELF_TEST_FUNCTION)
    else {
        bail!("{} has no function `{SELF_TEST_FUNCTION}`", sys.display());
    };
    if f.frame < SELF_TEST_ARRAY || f.probe.is_none() {
        bail!(
            "`{SELF_TEST_FUNCTION}` has a frame of {} and {} the stack probe; expected at least {} and a \
             probe call",
            bytes(f.frame),
            if f.probe.is_some() { "calls" } else { "does not call" },
            bytes(SELF_TEST_ARRAY)
        );
    }
    Ok(format!("rejected: {}", lines.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match(
            "wsk::irp::on_complete*",
            "wsk::irp::on_complete"
        ));
        assert!(glob_match(
            "wsk::irp::on_complete*",
            "wsk::irp::on_complete_ex"
        ));
        assert!(glob_match(
            "*__wsk_driver_unload",
            "http_listener::__wsk_driver_unload"
        ));
        assert!(!glob_match(
            "*__wsk_driver_unload",
            "http_listener::__wsk_driver_unload::x"
        ));
        assert!(glob_match(
            "wsk::runtime::executor_thread",
            "wsk::runtime::executor_thread"
        ));
        assert!(!glob_match(
            "wsk::runtime::executor_thread",
            "wsk::runtime::executor_thread2"
        ));
        assert!(glob_match("a*b*c", "aXbYc") && !glob_match("a*b*c", "aXcYb"));
        assert!(glob_match("*", "") && !glob_match("ab*ba", "aba"));
    }

    #[test]
    fn thousands() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(78424), "78,424 B");
        assert_eq!(bytes(1_234_567), "1,234,567 B");
    }

    #[test]
    fn demangles_both_schemes() {
        assert_eq!(
            demangle("_ZN3wsk3irp11on_complete17hcad795b8efa5a15fE"),
            "wsk::irp::on_complete"
        );
        assert_eq!(demangle("DriverEntry"), "DriverEntry");
        assert_eq!(
            demangle("_RNvXsU_NtNtCs9lENWKl8Ts5_4core3fmt3numhNtB7_5Debug3fmt"),
            "<u8 as core::fmt::Debug>::fmt"
        );
    }
}
