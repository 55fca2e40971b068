/*
 * DbgPrint for the host kernel simulation.
 *
 * DbgPrint is a variadic cdecl routine; stable Rust can call such functions but cannot define them, so this
 * shim formats the message with the C library and hands the finished line to Rust (wsk_sim_log in
 * src/log.rs), which keeps it in the simulation's log.
 *
 * The format is interpreted by the host C library: the Windows-only conversions (%wZ, %ws, %I64d) are not
 * understood, and `long` is 64-bit here but 32-bit on Windows. Callers that format in Rust and pass "%s"
 * (as a logging backend should) see the same text on both.
 */
#include <stdarg.h>
#include <stdio.h>

extern void wsk_sim_log(const char *line);

unsigned int DbgPrint(const char *format, ...)
{
    char line[2048];
    va_list args;

    if (!format)
        return 0xC000000Du; /* STATUS_INVALID_PARAMETER */
    va_start(args, format);
    vsnprintf(line, sizeof(line), format, args);
    va_end(args);
    wsk_sim_log(line);
    return 0; /* STATUS_SUCCESS */
}
