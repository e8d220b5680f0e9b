// The zygote side of docs/protocol.md "Zygote link" for C++ tools built on kiln::tool::serve:
// when kiln-supervisor starts the tool as a zygote (KILN_ZYGOTE set, `--zygote NAME`), serve()
// runs this after the tool's warm-up, and each worker's tool is a fork of the warm process.
#pragma once

#include <optional>

namespace kiln::tool {

// Runs the zygote until the supervisor is gone: the exit status for main. In each forked tool
// it returns nullopt, with the tool link in place on fds 3 and 4: serve on.
std::optional<int> run_zygote();

}  // namespace kiln::tool
