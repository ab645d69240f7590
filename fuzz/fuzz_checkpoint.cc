// Arbitrary bytes as the meta document of a checkpoint (trainer state, schema, field state,
// model options), written with real weights and loaded as `predict` and `serve` load one: the
// load succeeds or throws an error the CLI reports on one line; a crash, sanitizer report or
// runaway allocation is a finding.
//
// The archive around the meta stays well-formed. Its bytes are LibTorch's format, and a
// checkpoint damaged on disk never reaches LibTorch's reader: the checksum is verified first.
// A hand-crafted archive with a valid checksum can still crash LibTorch's unpickler (found by
// an earlier version of this harness); a checkpoint is trusted input, as in PyTorch.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "engine/checkpoint_io.h"
#include "model/model.h"
#include "model/model_impl.h"

namespace {
// A small trained transactions model: its weights go into every checkpoint written here.
const j2v::Model& seed_model() {
  static const j2v::Model model = j2v::Model::load(JSON2VEC_FUZZ_DIR "/seed_checkpoint.bin");
  return model;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/j2v-fuzz-checkpoint-" + std::to_string(::getpid()) + ".ckpt";
  nlohmann::json meta = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (meta.is_discarded()) return 0;  // the meta is JSON json2vec wrote: its content is what varies
  j2v::engine::CheckpointWriter writer;
  writer.meta = std::move(meta);
  writer.write_module = [](torch::serialize::OutputArchive& archive) { seed_model().impl().save(archive); };
  try {
    j2v::engine::write_checkpoint_atomically(path, writer);
  } catch (const std::exception&) {
    return 0;  // meta that cannot be written (it is not an object): nothing to load
  }
  try {
    auto model = j2v::Model::load(path);
    model.predict({R"({"amount": 12.5, "merchant": "books", "hour": 3, "country": "DE"})", "{}"});
  } catch (const std::exception&) {
    // CheckpointError, SchemaError, invalid_argument...: the CLI prints each on one line.
  }
  return 0;
}
