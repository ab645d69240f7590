#include "engine/checkpoint_io.h"

#include <filesystem>

#include "base/atomic_file.h"
#include "engine/trainer.h"

namespace j2v::engine {

namespace fs = std::filesystem;

void write_checkpoint_atomically(const std::string& path, const CheckpointWriter& writer) {
  fs::path target(path);
  if (target.has_parent_path()) fs::create_directories(target.parent_path());
  std::string tmp = temp_path_for(path);
  try {
    torch::serialize::OutputArchive root;
    nlohmann::json meta = writer.meta;
    meta["format"] = kCheckpointFormat;
    meta["version"] = kCheckpointVersion;
    root.write("meta", c10::IValue(meta.dump()));
    torch::serialize::OutputArchive module_archive;
    writer.write_module(module_archive);
    root.write("module", module_archive);
    for (size_t i = 0; i < writer.write_optimizers.size(); ++i) {
      torch::serialize::OutputArchive optimizer_archive;
      writer.write_optimizers[i](optimizer_archive);
      root.write("optimizer_" + std::to_string(i), optimizer_archive);
    }
    for (const auto& [name, write] : writer.write_extra) {
      torch::serialize::OutputArchive extra;
      write(extra);
      root.write(name, extra);
    }
    root.save_to(tmp);
    commit_file(tmp, path);  // fsync, rename, fsync of the directory
  } catch (const std::exception& e) {
    remove_quietly(tmp);
    throw CheckpointError("cannot write checkpoint '" + path + "': " + e.what());
  }
}

CheckpointReader::CheckpointReader(const std::string& path) : path_(path) {
  if (!fs::exists(path)) throw CheckpointError("checkpoint '" + path + "' does not exist");
  if (fs::is_directory(path)) throw CheckpointError("checkpoint '" + path + "' is a directory, not a file");
  try {
    archive_.load_from(path);
    c10::IValue meta;
    archive_.read("meta", meta);
    meta_ = nlohmann::json::parse(meta.toStringRef());
  } catch (const std::exception& e) {
    std::string what = e.what();
    auto newline = what.find('\n');
    if (newline != std::string::npos) what = what.substr(0, newline);
    throw CheckpointError("cannot read checkpoint '" + path + "': not a readable json2vec checkpoint (" + what + ")");
  }
  if (meta_.value("format", "") != kCheckpointFormat)
    throw CheckpointError("cannot read checkpoint '" + path + "': not a json2vec checkpoint");
  if (meta_.value("version", 0) > kCheckpointVersion)
    throw CheckpointError("checkpoint '" + path + "' was written by a newer json2vec (format version " +
                          std::to_string(meta_.value("version", 0)) + ")");
}

bool CheckpointReader::read_nested(const std::string& key, torch::serialize::InputArchive& out) {
  return archive_.try_read(key, out);
}

}  // namespace j2v::engine
