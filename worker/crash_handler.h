// The worker's crash handler (docs/design.md start-up step 6). On SIGSEGV, SIGBUS, SIGFPE, SIGILL
// and SIGABRT, on an alternate signal stack: first `kiln-worker <pid> crashed: SIGSEGV (address
// 0x..)` written with write(2) alone, then SIGKILL to the running command's group, then the
// crashed thread's stack: its addresses from libgcc's unwinder, symbolized by kiln-symbolize
// (libdw), which the handler runs with posix_spawn and waits for. libdw, its allocations
// and its code stay out of the worker: they are mapped only in that process, only after a crash.
// Without kiln-symbolize beside the worker, or when it fails or takes over 5 s (it is then
// killed), the bare addresses are printed. Then the default
// action is restored and the signal raised again, so the exit status names it.
#pragma once

namespace kiln::worker {

// Installs the handler for the whole process and an alternate stack for the calling thread.
void install_crash_handler();

// Fault injection (selftest `crash-report-hangs`): from now on the handler stops after the
// report's first line, so that the supervisor's deadline for a report that hangs can be tested.
void hang_crash_reports();

// Gives the calling thread its own alternate signal stack (they are per thread: without one, a
// stack overflow in that thread dies silently). Every thread of the worker calls it.
void install_alternate_stack();

}  // namespace kiln::worker
