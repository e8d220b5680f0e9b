// Splitting a command line the way a POSIX shell does (compile_commands.json's `command`, the
// COMMAND of `--tool NAME=COMMAND`): blanks separate words; '...' is literal; "..." keeps blanks
// and honours \ before $ ` " \ and newline; a backslash outside quotes keeps the next character. No
// expansions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace kiln {

Expected<std::vector<std::string>> shell_split(std::string_view command);

}  // namespace kiln
