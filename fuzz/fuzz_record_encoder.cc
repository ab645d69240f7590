// Arbitrary bytes as a JSON Lines file through the record encoder of a nested schema with
// every datatype: each line is encoded, or the file is refused with a DataError naming the
// line. Anything else (a crash, a sanitizer report, another exception) is a finding.
#include <cstddef>
#include <cstdint>
#include <string>

#include "base/errors.h"
#include "fuzz_schema.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& codec = j2v::fuzz::fitted_codec();
  auto records = j2v::RecordBuffer::from_text(std::string(reinterpret_cast<const char*>(data), size), "fuzz.jsonl");
  try {
    codec.encode(records, nullptr, 1);
  } catch (const j2v::DataError&) {
  }
  return 0;
}
