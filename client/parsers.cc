// The two inputs kiln reads from users: JSON lines of jobs and compile databases.
#include "client/parsers.h"

#include <optional>
#include <regex>

#include "client/json_msgpack.h"
#include "client/pool.h"
#include "common/shell_split.h"

namespace kiln::client {
namespace {

using nlohmann::json;

// Deeper JSON than this is refused: turning a value into msgpack recurses once per level, and
// no job or compile database nests anywhere near it.
constexpr int kMaxJsonDepth = 64;

struct TooDeep {};

// json::parse with a bound on nesting. Throws json::exception for bad JSON (a parse error, or a
// number too large for any C++ type: out_of_range) and TooDeep.
json parse_bounded(std::string_view text) {
  return json::parse(text, [](int depth, json::parse_event_t, json&) {
    if (depth > kMaxJsonDepth) throw TooDeep{};
    return true;
  });
}

// One input line to a job: {"kind": ..., "payload": ...} or the exec short form
// {"argv": [...], "cwd": ..., "env": {...}, "stdin": "...", "clear_env": bool}.
Expected<JobLine> parse_job(const json& line) {
  if (!line.is_object()) return fail("a job is a JSON object");
  JobLine job;
  if (line.contains("timeout_ms")) {
    if (!line["timeout_ms"].is_number_unsigned()) return fail("\"timeout_ms\" is not a count");
    job.timeout_ms = line["timeout_ms"].get<uint64_t>();
  }
  if (line.contains("priority")) {
    if (!line["priority"].is_number_integer()) return fail("\"priority\" is not an integer");
    job.priority = line["priority"].get<int64_t>();
  }
  if (line.contains("kind")) {
    if (!line["kind"].is_string()) return fail("\"kind\" is not a string");
    job.kind = line["kind"];
    job.payload = to_msgpack(line.value("payload", json()));
    return job;
  }
  if (!line.contains("argv")) return fail("a job needs \"kind\" (and \"payload\") or \"argv\"");
  ExecRequest r;
  try {
    r.argv = line["argv"].get<std::vector<std::string>>();
    if (line.contains("cwd")) r.cwd = line["cwd"].get<std::string>();
    if (line.contains("env")) {
      for (const auto& [k, v] : line["env"].items()) r.env.emplace_back(k, v.get<std::string>());
    }
    if (line.contains("stdin")) r.stdin_data = line["stdin"].get<std::string>();
    r.clear_env = line.value("clear_env", false);
  } catch (const json::exception& e) {
    return fail(std::string("bad exec job: ") + e.what());
  }
  job.kind = "exec";
  job.payload = exec_payload(r);
  return job;
}

}  // namespace

Expected<JobLine> parse_job_line(std::string_view line) {
  try {
    return parse_job(parse_bounded(line));
  } catch (const json::exception& e) {
    return fail(std::string("invalid JSON: ") + e.what());
  } catch (const TooDeep&) {
    return fail("invalid JSON: nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  }
}

namespace {

// The argument of a compiler's -o ("-o a.o" or "-oa.o"), or "".
std::string output_argument(const std::vector<std::string>& argv) {
  for (std::size_t i = 1; i < argv.size(); ++i) {
    if (argv[i] == "-o" && i + 1 < argv.size()) return argv[i + 1];
    if (argv[i].size() > 2 && argv[i].compare(0, 2, "-o") == 0) return argv[i].substr(2);
  }
  return "";
}

}  // namespace

namespace {

// One entry of a compile database, or why it is not one.
Expected<CompileEntry> parse_compile_entry(const json& e, const std::string& where) {
  if (!e.is_object() || !e.contains("directory") || !e["directory"].is_string() ||
      !e.contains("file") || !e["file"].is_string()) {
    return fail(where + ": needs \"directory\" and \"file\" strings");
  }
  CompileEntry entry{e["directory"], e["file"], {}, ""};
  if (e.contains("arguments")) {
    if (!e["arguments"].is_array()) return fail(where + ": \"arguments\" is not an array");
    for (const json& a : e["arguments"]) {
      if (!a.is_string()) return fail(where + ": \"arguments\" holds a non-string");
      entry.argv.push_back(a);
    }
  } else if (e.contains("command") && e["command"].is_string()) {
    Expected<std::vector<std::string>> words = shell_split(e["command"].get<std::string>());
    if (!words) return fail(where + ": \"command\": " + words.error());
    entry.argv = std::move(*words);
  } else {
    return fail(where + ": needs \"arguments\" or \"command\"");
  }
  if (entry.argv.empty()) return fail(where + ": the command is empty");
  entry.output = e.contains("output") && e["output"].is_string() ? e["output"].get<std::string>()
                                                                 : output_argument(entry.argv);
  return entry;
}

}  // namespace

Expected<CompileDb> parse_compile_db(std::string_view text, const std::string& path,
                                     const std::string& filter) {
  json db;
  try {
    db = parse_bounded(text);
  } catch (const TooDeep&) {
    return fail(path + ": invalid JSON: nested deeper than " + std::to_string(kMaxJsonDepth) +
                " levels");
  } catch (const json::exception& e) {
    return fail(path + ": invalid JSON: " + e.what());
  }
  if (!db.is_array()) return fail(path + ": a compile database is a JSON array");
  std::optional<std::regex> re;
  if (!filter.empty()) {
    try {
      re.emplace(filter);
    } catch (const std::regex_error& e) {
      return fail("--filter " + filter + ": " + e.what());
    }
  }
  CompileDb out;
  for (std::size_t i = 0; i < db.size(); ++i) {
    const json& e = db[i];
    // The filter is on the file; an entry without one is reported whatever the filter.
    if (re && e.is_object() && e.contains("file") && e["file"].is_string() &&
        !std::regex_search(e["file"].get<std::string>(), *re)) {
      continue;
    }
    Expected<CompileEntry> entry =
        parse_compile_entry(e, path + ": entry " + std::to_string(i + 1));
    if (entry) {
      out.entries.push_back(std::move(*entry));
    } else {
      out.problems.push_back(entry.error());
    }
  }
  if (re && out.entries.empty() && out.problems.empty()) {
    return fail("--filter " + filter + " matches none of the " + std::to_string(db.size()) +
                " entries of " + path);
  }
  return out;
}

}  // namespace kiln::client
