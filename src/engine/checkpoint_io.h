#pragma once
// One self-describing checkpoint file: a LibTorch archive holding a JSON "meta" document
// (trainer, callback and module state: schema, vocabularies, hyperparameters) beside the
// module's tensors and each optimizer's state. Written to a temporary file, synced and
// renamed, so a crash never leaves a torn checkpoint under the final name; a checksum of the
// file is verified on load, so bytes damaged later are refused rather than predicted with.
#include <torch/torch.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

namespace j2v::engine {

struct CheckpointWriter {
  nlohmann::json meta;
  std::function<void(torch::serialize::OutputArchive&)> write_module;
  std::vector<std::function<void(torch::serialize::OutputArchive&)>> write_optimizers;
  // Further named archives (random generator state, callbacks' tensors).
  std::vector<std::pair<std::string, std::function<void(torch::serialize::OutputArchive&)>>> write_extra;
};
void write_checkpoint_atomically(const std::string& path, const CheckpointWriter& writer);

class CheckpointReader {
 public:
  explicit CheckpointReader(const std::string& path);  // throws CheckpointError
  const nlohmann::json& meta() const { return meta_; }
  torch::serialize::InputArchive& archive() { return archive_; }
  bool read_nested(const std::string& key, torch::serialize::InputArchive& out);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  torch::serialize::InputArchive archive_;
  nlohmann::json meta_;
};

constexpr const char* kCheckpointFormat = "json2vec-checkpoint";
// 2: a CRC-32 of the file in the zip comment, verified on load (1: none).
constexpr int kCheckpointVersion = 2;

}  // namespace j2v::engine
