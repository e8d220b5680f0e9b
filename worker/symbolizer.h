// Names the code addresses of a live process: function (demangled, with the functions inlined
// there), source file and line, from the DWARF of the modules it maps (libdwfl). kiln-symbolize
// runs it for a worker that has crashed and waits in its crash handler, so that libdw and its
// allocations stay out of the crashed process (worker/crash_handler.h).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace kiln::worker {

// One line per address, "#N  0xADDR in FUNCTION at FILE:LINE", and an indented line for each
// function inlined at that address, innermost first. An address that no module or symbol
// covers is printed bare ("in ??"). Empty when the process's modules cannot be read.
std::vector<std::string> symbolize(pid_t pid, const std::vector<uint64_t>& addresses);

}  // namespace kiln::worker
