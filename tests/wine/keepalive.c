/* keepalive.exe: a Wine user process that sleeps for the whole session.
 *
 * services.exe and winedevice.exe exit once no Wine user process is left, and a driver's port then goes dead
 * although `sc start` said RUNNING. `cargo xtask` starts this first, so its stderr (the session log) is also
 * where services.exe and winedevice.exe print the drivers' DbgPrint output. */
#include <windows.h>

int main(void)
{
    Sleep(INFINITE);
    return 0;
}
