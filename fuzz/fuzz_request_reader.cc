// Arbitrary bytes as the body of POST /predict: the request reader answers with records to
// batch, or with an HttpError (400, 413, 422) naming the problem. Anything else (a crash, a
// sanitizer report, another exception) is a finding.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_schema.h"
#include "serve/http_error.h"
#include "serve/request_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& codec = j2v::fuzz::fitted_codec();
  static const j2v::serve::RequestReader lenient(codec.schema().fields, codec.encoder(), 64, false);
  static const j2v::serve::RequestReader strict(codec.schema().fields, codec.encoder(), 64, true);
  std::string body(reinterpret_cast<const char*>(data), size);
  for (const auto* reader : {&lenient, &strict}) {
    try {
      reader->read(body);
    } catch (const j2v::serve::HttpError&) {
    }
  }
  return 0;
}
