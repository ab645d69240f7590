// Arbitrary bytes as a config file (YAML, or JSON when it parses as JSON): resolved with
// every default, or refused with a ConfigError naming the key or line. Anything else (a
// crash, a sanitizer report, unbounded memory, another exception) is a finding.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>

#include "cli/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/j2v-fuzz-config-" + std::to_string(::getpid()) + ".yaml";
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    j2v::cli::resolve_config(path, {}, /*require_fields=*/false);
  } catch (const j2v::cli::ConfigError&) {
  }
  return 0;
}
