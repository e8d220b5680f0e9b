// The worker's crash handler (docs/design.md start-up step 6). On SIGSEGV, SIGBUS, SIGFPE, SIGILL
// and SIGABRT, on an alternate signal stack: first `kiln-worker <pid> crashed: SIGSEGV (address
// 0x..)` written with write(2) alone, then SIGKILL to the running command's group, then a
// symbolized stack trace (backward-cpp with libdw) as best effort — it allocates, which is not
// async-signal-safe; if it hangs the supervisor's timer ends the worker — then the default
// action is restored and the signal raised again, so the exit status names it.
#pragma once

namespace kiln::worker {

// Installs the handler for the whole process and an alternate stack for the calling thread.
void install_crash_handler();

// Gives the calling thread its own alternate signal stack (they are per thread: without one, a
// stack overflow in that thread dies silently). Every thread of the worker calls it.
void install_alternate_stack();

}  // namespace kiln::worker
