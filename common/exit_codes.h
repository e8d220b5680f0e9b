// Exit statuses of Kiln's binaries, in one place (ninja's exit_status.h, tini's 126/127).
#pragma once

namespace kiln::exit_code {

inline constexpr int kOk = 0;
// `kiln`: at least one job failed; the command itself worked.
inline constexpr int kJobsFailed = 1;
// `kiln stats|top|trace|shutdown|daemon start`: no daemon answered, or it did not do what was
// asked (the command says why on stderr).
inline constexpr int kCommandFailed = 1;
// Bad command line, bad build key, bad configuration, or `kiln run|compile-db` could not read its
// input or open its pool: nothing was started.
inline constexpr int kUsage = 2;
// The peer on the link broke the wire protocol.
inline constexpr int kProtocolError = 3;
// kiln-supervisor --listen: another supervisor already serves that socket.
inline constexpr int kAlreadyServing = 5;
// kiln-worker: one of its warm tools failed to start, or died between jobs.
inline constexpr int kToolFailed = 6;
// The system refused something that cannot fail in normal use (see fatal()), or
// kiln-supervisor found a libuv handle still open at exit (uv_loop_close() != 0).
inline constexpr int kInternal = 4;
// `kiln exec`: kiln itself could not run the command (no daemon, a broken link); env(1)'s code.
inline constexpr int kLauncherFailed = 125;
// A command could not be executed / was not found (the shell's convention, kept by tini).
inline constexpr int kCannotExecute = 126;
inline constexpr int kNotFound = 127;
// A process killed by signal N is reported as 128 + N.
inline constexpr int kSignalBase = 128;

}  // namespace kiln::exit_code
