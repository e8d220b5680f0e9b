// Command-line parsing shared by the three binaries: CLI11's help and version exit 0, and any
// other parse error prints CLI11's message and means exit_code::kUsage.
#pragma once

#include <CLI/CLI.hpp>

#include <optional>

#include "common/exit_codes.h"

namespace kiln {

// nullopt when the program should go on; else the status to exit with.
inline std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return exit_code::kUsage;
  }
  return std::nullopt;
}

}  // namespace kiln
