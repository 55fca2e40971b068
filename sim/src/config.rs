//! How the provider behaves: when it completes IRPs, whether pending IRPs can be cancelled, and which
//! platform's quirks it imitates.
//!
//! [`Config::windows`] (the default) behaves like Windows: a call that can finish at once completes its IRP
//! inline and returns the real status; one that cannot returns STATUS_PENDING and completes later; pending
//! IRPs carry a cancel routine, so IoCancelIrp completes them with STATUS_CANCELLED; IPv6 sockets start
//! IPv6-only. [`Config::wine`]
//! reproduces Wine 8's netio.sys (see `shared/reference/wine.md`). Per-call overrides come from the fault
//! plan ([`crate::faults::Fault::Complete`]).

use std::sync::Mutex;
use std::time::Duration;

use crate::sync::lock;

/// How the provider finishes a call whose result is known at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Completion {
    /// Complete the IRP before returning and return the same status (Windows' fast path).
    Inline,
    /// Return STATUS_PENDING and complete the IRP shortly after on another thread (Windows' slow path).
    Deferred,
    /// Complete the IRP inline, then return STATUS_PENDING whatever the status was (Wine's WskBind,
    /// WskAccept, WskSend, WskReceive).
    PendingAfterComplete,
    /// Complete the IRP inline; return STATUS_PENDING on success and the status itself on failure (Wine's
    /// WskSocket and WskCloseSocket).
    PendingOnSuccess,
}

/// The provider's behaviour. Set it with [`configure`]; [`crate::reset`] restores [`Config::windows`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Completion of calls whose result is known at once.
    pub completion: Completion,
    /// Per-call completion, overriding [`Config::completion`] for the named routines.
    pub completion_for: Vec<(&'static str, Completion)>,
    /// Pending IRPs carry a cancel routine, so IoCancelIrp completes them (Windows). Without it (Wine), only
    /// WskCloseSocket gets a pending IRP back.
    pub cancel_routines: bool,
    /// How long a [`Completion::Deferred`] completion waits on its worker thread.
    pub defer_delay: Duration,
    /// Routines that return STATUS_NOT_IMPLEMENTED without completing their IRP (Wine's stubs).
    pub stubs: Vec<&'static str>,
    /// Socket categories WskSocket accepts, as a set of `1 << WSK_FLAG_*` bits (bit 0 is the basic socket).
    pub socket_kinds: u32,
    /// IPv6 addresses work. Wine's WskBind copies 16 bytes of address, so IPv6 binds fail there.
    pub ipv6: bool,
    /// An AF_INET6 socket starts IPv6-only (IPV6_V6ONLY = 1), as on Windows: a `[::]` listener is not
    /// reachable over IPv4 unless the client sets IPV6_V6ONLY to 0 with WskControlSocket before bind. Off,
    /// sockets start dual-stack (the Linux default).
    pub ipv6_v6only_default: bool,
    /// Chained MDLs (`Mdl->Next`) are accepted in a WSK_BUF. Wine completes such calls with
    /// STATUS_UNSUCCESSFUL.
    pub chained_mdls: bool,
    /// At most this many pending operations per socket (Wine: 10, after which calls fail with
    /// STATUS_UNSUCCESSFUL).
    pub max_pending_per_socket: Option<usize>,
    /// WskCloseSocket on a connection without a WskDisconnect first resets it (Windows: close is abortive
    /// unless WskDisconnect came first). Wine closes gracefully.
    pub abortive_close: bool,
    /// Bytes of a SOCKADDR that WskAccept writes back (Wine copies 16, so IPv6 addresses are cut short);
    /// `None` writes the whole address.
    pub accept_address_bytes: Option<usize>,
    /// How long WskDeregister waits for NPIs to be released and sockets closed before it records
    /// [`crate::Rule::DeregisterBusy`] (Windows would wait forever).
    pub deregister_wait: Duration,
    /// Record [`crate::Rule::CloseFromCompletion`] when a socket is closed from the completion routine of one
    /// of its own operations (legal on Windows, a use-after-free under Wine).
    pub flag_close_from_completion: bool,
    /// Record [`crate::Rule::MdlNotMapped`] for MDLs that MmBuildMdlForNonPagedPool never saw.
    pub require_mapped_mdls: bool,
    /// The routines MmGetSystemRoutineAddress resolves, by name; every other name gives NULL. Only names the
    /// simulation implements resolve ([`crate::kernel::time::RESOLVABLE`]): `KeQueryInterruptTime`,
    /// `KeQueryInterruptTimePrecise`, `KeQueryPerformanceCounter`, `wine_ntoskrnl_main_loop`. Windows: the
    /// three clocks. Wine 8.0: no `KeQueryInterruptTimePrecise` (its ntoskrnl.exe lacks the export), and
    /// `wine_ntoskrnl_main_loop`, which only Wine's ntoskrnl exports (how a driver tells it runs under Wine).
    pub system_routines: Vec<&'static str>,
    /// Routine names MmGetSystemRoutineAddress pretends not to know (to exercise a client's fallbacks); they
    /// are removed from [`Config::system_routines`].
    pub missing_routines: Vec<&'static str>,
    /// IoSetCompletionRoutineEx works (Windows). Off (Wine 8.0, whose ntoskrnl.exe exports it as
    /// `__wine_stub_IoSetCompletionRoutineEx`), calling it records [`crate::Rule::WineStub`] and returns
    /// STATUS_NOT_IMPLEMENTED without touching the IRP or the device.
    pub completion_routine_ex: bool,
    /// The driver image stays mapped after the unload returned until every device object of the driver is
    /// deleted and unreferenced (Windows). Off (Wine: `DriverUnload(); FreeLibrary(); IoDeleteDriver()`),
    /// the image goes as soon as the unload has returned, whatever device references remain, so an
    /// IoSetCompletionRoutineEx reference protects nothing there.
    pub devices_keep_image: bool,
    /// WskCloseSocket does not complete until every completion of the socket running on a provider worker
    /// has returned, epilogue included (Wine: netio.sys completes asynchronous I/O inside a threadpool
    /// callback of the socket, and WskCloseSocket waits for those callbacks with
    /// `WaitForThreadpoolWaitCallbacks`). It also ends a [`crate::faults::Fault::LateReturn`] hold of a
    /// completion of that socket: on Wine, a routine's epilogue cannot outlive the close of its socket.
    pub close_waits_for_callbacks: bool,
    /// How long a [`crate::faults::Fault::LateReturn`] hold waits for the driver's unload to return (or, with
    /// [`Config::close_waits_for_callbacks`], the close of the completion's socket) before it gives up with
    /// [`crate::Rule::LateReturnTimeout`].
    pub late_return_cap: Duration,
    /// WskGetAddressInfo answers `localhost` (and `*.localhost`) itself with `::1` then `127.0.0.1`, as
    /// Windows' resolver does whatever the hosts file says. Off (Wine: `GetAddrInfoExW` asks the host's
    /// resolver), the host's `getaddrinfo` answers, which on a machine without `::1 localhost` in
    /// /etc/hosts has no IPv6 address for it.
    pub builtin_localhost: bool,
    /// WskGetAddressInfo's names must be NUL-terminated right after `Length` (Wine's netio.sys passes
    /// `Buffer` to `GetAddrInfoExW` as a C string); one that is not is [`crate::Rule::BadResolveArgs`].
    pub names_as_c_strings: bool,
    /// WskGetAddressInfo writes a list to `Result` also when it fails (a misbehaving provider: neither
    /// Windows nor Wine does). A client that trusts the status leaks the list
    /// ([`crate::Counts::addrinfo_lists_live`]); one that frees it with WskFreeAddressInfo is clean.
    pub resolve_list_on_failure: bool,
}

impl Config {
    /// Windows' behaviour (the default).
    #[must_use]
    pub fn windows() -> Self {
        Self {
            completion: Completion::Inline,
            completion_for: Vec::new(),
            cancel_routines: true,
            defer_delay: Duration::from_millis(1),
            stubs: Vec::new(),
            socket_kinds: 0b1_1111, // basic, listen, connection, datagram, stream
            ipv6: true,
            ipv6_v6only_default: true,
            chained_mdls: true,
            max_pending_per_socket: None,
            abortive_close: true,
            accept_address_bytes: None,
            deregister_wait: Duration::from_millis(500),
            flag_close_from_completion: true,
            require_mapped_mdls: true,
            system_routines: vec![
                "KeQueryInterruptTime",
                "KeQueryInterruptTimePrecise",
                "KeQueryPerformanceCounter",
            ],
            missing_routines: Vec::new(),
            completion_routine_ex: true,
            devices_keep_image: true,
            close_waits_for_callbacks: false,
            late_return_cap: Duration::from_secs(10),
            builtin_localhost: true,
            names_as_c_strings: false,
            resolve_list_on_failure: false,
        }
    }

    /// Wine 8.0's netio.sys and ntoskrnl.exe: completes inline and returns STATUS_PENDING, never cancels,
    /// answers the unimplemented routines with STATUS_NOT_IMPLEMENTED without completing the IRP, supports
    /// only listen and connection sockets over IPv4, at most 10 pending operations per socket, graceful
    /// close that waits for the socket's completion callbacks; IoSetCompletionRoutineEx is a crashing stub,
    /// `KeQueryInterruptTimePrecise` is missing, `wine_ntoskrnl_main_loop` resolves, and the image is
    /// unmapped as soon as the unload has returned.
    #[must_use]
    pub fn wine() -> Self {
        Self {
            completion: Completion::PendingAfterComplete,
            completion_for: vec![
                ("WskSocket", Completion::PendingOnSuccess),
                ("WskCloseSocket", Completion::PendingOnSuccess),
                // Wine returns STATUS_INVALID_DEVICE_STATE itself for a connect before bind.
                ("WskConnect", Completion::PendingOnSuccess),
                // netio.sys runs GetAddrInfoExW on a threadpool thread and completes the IRP there.
                ("WskGetAddressInfo", Completion::Deferred),
            ],
            cancel_routines: false,
            stubs: vec![
                "WskSocketConnect",
                "WskControlClient",
                "WskGetNameInfo",
                "WskControlSocket",
                "WskInspectComplete",
                "WskGetLocalAddress",
                "WskGetRemoteAddress",
                "WskDisconnect",
                "WskRelease",
                "WskConnectEx",
            ],
            socket_kinds: 0b0_0110, // listen, connection
            ipv6: false,
            // Moot while IPv6 binds fail; Wine's host sockets would follow the Linux default.
            ipv6_v6only_default: false,
            chained_mdls: false,
            max_pending_per_socket: Some(10),
            abortive_close: false,
            accept_address_bytes: Some(16),
            system_routines: vec![
                "KeQueryInterruptTime",
                "KeQueryPerformanceCounter",
                "wine_ntoskrnl_main_loop",
            ],
            completion_routine_ex: false,
            devices_keep_image: false,
            close_waits_for_callbacks: true,
            builtin_localhost: false,
            names_as_c_strings: true,
            ..Self::windows()
        }
    }

    /// The completion mode for one routine.
    #[must_use]
    pub fn completion_of(&self, call: &str) -> Completion {
        self.completion_for
            .iter()
            .find(|(name, _)| *name == call)
            .map_or(self.completion, |(_, c)| *c)
    }

    /// Whether MmGetSystemRoutineAddress resolves `name`: listed in [`Config::system_routines`] and not in
    /// [`Config::missing_routines`].
    #[must_use]
    pub fn resolves(&self, name: &str) -> bool {
        self.system_routines.contains(&name) && !self.missing_routines.contains(&name)
    }

    /// Whether WskSocket accepts this WSK_FLAG_* category.
    #[must_use]
    pub fn supports_kind(&self, flag: u32) -> bool {
        let bit = if flag == 0 { 1 } else { flag << 1 };
        self.socket_kinds & bit != 0
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::windows()
    }
}

static CONFIG: Mutex<Option<Config>> = Mutex::new(None);

/// Replaces the provider's configuration (takes effect for the next call).
pub fn configure(config: Config) {
    *lock(&CONFIG) = Some(config);
}

/// The configuration in force.
#[must_use]
pub fn current() -> Config {
    lock(&CONFIG).clone().unwrap_or_default()
}

/// Reads one setting without cloning the whole configuration.
pub(crate) fn with<R>(f: impl FnOnce(&Config) -> R) -> R {
    let guard = lock(&CONFIG);
    match guard.as_ref() {
        Some(config) => f(config),
        None => f(&Config::windows()),
    }
}

pub(crate) fn reset() {
    *lock(&CONFIG) = None;
}
