#include "worker/symbolizer.h"

#include <cxxabi.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <memory>

namespace kiln::worker {
namespace {

std::string demangled(const char* name) {
  if (name == nullptr) return "??";
  int status = -1;
  std::unique_ptr<char, decltype(&std::free)> plain(
      abi::__cxa_demangle(name, nullptr, nullptr, &status), &std::free);
  return status == 0 && plain ? std::string(plain.get()) : std::string(name);
}

std::string where(const char* file, int line) {
  if (file == nullptr) return "";
  return std::string(" at ") + file + ":" + std::to_string(line);
}

struct Inlined {
  std::string name;
  std::string call_site;  // " at FILE:LINE" in the function it was inlined into
};

// The functions inlined at `address`, innermost first.
std::vector<Inlined> inlined_at(Dwfl_Module* module, Dwarf_Addr address) {
  std::vector<Inlined> inlined;
  Dwarf_Addr bias = 0;
  Dwarf_Die* cu = dwfl_module_addrdie(module, address, &bias);
  Dwarf_Die* scopes = nullptr;
  const int n = cu == nullptr ? 0 : dwarf_getscopes(cu, address - bias, &scopes);
  Dwarf_Files* files = nullptr;
  if (n > 0) dwarf_getsrcfiles(cu, &files, nullptr);
  for (int i = 0; i < n; ++i) {
    if (dwarf_tag(&scopes[i]) != DW_TAG_inlined_subroutine) continue;
    Dwarf_Attribute attr;
    Dwarf_Word file = 0, line = 0;
    dwarf_formudata(dwarf_attr(&scopes[i], DW_AT_call_file, &attr), &file);
    dwarf_formudata(dwarf_attr(&scopes[i], DW_AT_call_line, &attr), &line);
    const char* name = dwarf_diename(&scopes[i]);
    const char* path = files == nullptr ? nullptr : dwarf_filesrc(files, file, nullptr, nullptr);
    inlined.push_back({name != nullptr ? name : "??", where(path, static_cast<int>(line))});
  }
  std::free(scopes);
  return inlined;
}

// As gdb shows it: the innermost function at the address's line, then each function it was
// inlined into at the line of that call, down to the one the symbol table names.
std::string frame_line(std::size_t index, Dwfl* dwfl, Dwarf_Addr address) {
  char head[64];
  std::snprintf(head, sizeof head, "#%-2zu 0x%016" PRIx64 " in ", index, address);
  Dwfl_Module* module = dwfl_addrmodule(dwfl, address);
  if (module == nullptr) return std::string(head) + "??";
  std::string at;
  if (Dwfl_Line* src = dwfl_module_getsrc(module, address); src != nullptr) {
    int source_line = 0;
    const char* file = dwfl_lineinfo(src, nullptr, &source_line, nullptr, nullptr, nullptr);
    at = where(file, source_line);
  }
  std::string line = head;
  for (const Inlined& function : inlined_at(module, address)) {
    line += function.name + " (inlined)" + at + "\n      in ";
    at = function.call_site;
  }
  return line + demangled(dwfl_module_addrname(module, address)) + at;
}

}  // namespace

std::vector<std::string> symbolize(pid_t pid, const std::vector<uint64_t>& addresses) {
  static const Dwfl_Callbacks callbacks = {dwfl_linux_proc_find_elf, dwfl_standard_find_debuginfo,
                                           nullptr, nullptr};
  std::unique_ptr<Dwfl, decltype(&dwfl_end)> dwfl(dwfl_begin(&callbacks), &dwfl_end);
  if (!dwfl || dwfl_linux_proc_report(dwfl.get(), pid) != 0 ||
      dwfl_report_end(dwfl.get(), nullptr, nullptr) != 0) {
    return {};
  }
  std::vector<std::string> lines;
  for (std::size_t i = 0; i < addresses.size(); ++i) {
    lines.push_back(frame_line(i, dwfl.get(), addresses[i]));
  }
  return lines;
}

}  // namespace kiln::worker
