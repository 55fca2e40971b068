//! Compile-time proof that every routine the simulation defines has exactly the signature `wsk-sys`
//! declares for it. The linker matches symbols by name only, so a parameter added to a declaration and not
//! here would be undefined behaviour at run time; with these checks it is a build error.
//!
//! Each line coerces the declaration and the definition to one function-pointer type whose parameter and
//! return types are inferred: they unify only if both signatures are identical. (`DbgPrint` is variadic C
//! and cannot be checked this way.)

/// Both arguments have the same type.
const fn same<T: Copy>(_declared: T, _defined: T) {}

macro_rules! check {
    ($($name:ident in $($module:ident)::+ ($($arg:tt),*);)*) => {
        $(const _: () = same::<unsafe extern "system" fn($($arg),*) -> _>(wsk_sys::$name, crate::$($module::)+$name);)*
    };
}

check! {
    ExAllocatePoolWithTag in kernel::pool (_, _, _);
    ExFreePoolWithTag in kernel::pool (_, _);
    IoAllocateIrp in kernel::irp (_, _);
    IoFreeIrp in kernel::irp (_);
    IoReuseIrp in kernel::irp (_, _);
    IoCancelIrp in kernel::irp (_);
    MmBuildMdlForNonPagedPool in kernel::mdl (_);
    KeInitializeEvent in kernel::event (_, _, _);
    KeSetEvent in kernel::event (_, _, _);
    KeClearEvent in kernel::event (_);
    KeWaitForSingleObject in kernel::event (_, _, _, _, _);
    PsCreateSystemThread in kernel::thread (_, _, _, _, _, _, _);
    ZwWaitForSingleObject in kernel::thread (_, _, _);
    ZwClose in kernel::thread (_);
    MmGetSystemRoutineAddress in kernel::time (_);
    IoCreateDevice in kernel::device (_, _, _, _, _, _, _);
    IoDeleteDevice in kernel::device (_);
    IoSetCompletionRoutineEx in kernel::irp (_, _, _, _, _, _, _);
    IofCompleteRequest in kernel::irp (_, _);
    ObReferenceObjectByHandle in kernel::thread (_, _, _, _, _, _);
    ObfReferenceObject in kernel::object (_);
    ObfDereferenceObject in kernel::object (_);
    KeAcquireInStackQueuedSpinLock in kernel::spinlock (_, _);
    KeReleaseInStackQueuedSpinLock in kernel::spinlock (_);
    KeGetCurrentIrql in kernel::spinlock ();
    KeBugCheckEx in kernel::bugcheck (_, _, _, _, _);
    WskRegister in provider::registration (_, _);
    WskDeregister in provider::registration (_);
    WskCaptureProviderNPI in provider::registration (_, _, _);
    WskReleaseProviderNPI in provider::registration (_);
}
