#include "engine/checkpoint_io.h"
#include "base/json_read.h"

#include <fmt/format.h>
#include <zlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "base/atomic_file.h"
#include "engine/trainer.h"

namespace j2v::engine {

namespace fs = std::filesystem;

namespace {
// A checkpoint is a zip archive, whose last record (the end of central directory, 22 bytes)
// may carry a comment that zip readers, LibTorch's included, skip. The comment holds the
// CRC-32 of every byte before the comment's length field, so a checkpoint whose bytes
// changed on disk is refused on load instead of predicting with altered weights.
constexpr char kChecksumTag[] = "json2vec-crc32:";
constexpr size_t kChecksumCommentSize = sizeof(kChecksumTag) - 1 + 8;  // tag + 8 hex digits
constexpr size_t kEndRecordSize = 22;
constexpr uint32_t kEndRecordSignature = 0x06054b50;

uint32_t read_le(const char* p, int bytes) {
  uint32_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

uint32_t crc32_of(const char* data, size_t size) {
  uLong crc = crc32(0L, Z_NULL, 0);
  for (size_t done = 0; done < size;) {
    uInt chunk = static_cast<uInt>(std::min<size_t>(size - done, size_t{1} << 30));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(data + done), chunk);
    done += chunk;
  }
  return static_cast<uint32_t>(crc);
}

void append_checksum(std::string& zip) {
  size_t end = zip.size() - kEndRecordSize;
  if (zip.size() < kEndRecordSize || read_le(zip.data() + end, 4) != kEndRecordSignature ||
      read_le(zip.data() + end + 20, 2) != 0)
    throw std::runtime_error("the archive does not end as a zip file does");
  std::string comment = fmt::format("{}{:08x}", kChecksumTag, crc32_of(zip.data(), zip.size() - 2));
  zip[zip.size() - 2] = static_cast<char>(comment.size() & 0xff);
  zip[zip.size() - 1] = static_cast<char>(comment.size() >> 8);
  zip += comment;
}

enum class Checksum { kAbsent, kMatches, kDiffers };

Checksum verify_checksum(const std::string& zip) {
  if (zip.size() < kEndRecordSize + kChecksumCommentSize) return Checksum::kAbsent;
  size_t end = zip.size() - kChecksumCommentSize - kEndRecordSize;
  const char* comment = zip.data() + end + kEndRecordSize;
  if (read_le(zip.data() + end, 4) != kEndRecordSignature || read_le(zip.data() + end + 20, 2) != kChecksumCommentSize ||
      std::memcmp(comment, kChecksumTag, sizeof(kChecksumTag) - 1) != 0)
    return Checksum::kAbsent;
  std::string hex(comment + sizeof(kChecksumTag) - 1, 8);
  char* parsed_to = nullptr;
  unsigned long stored = std::strtoul(hex.c_str(), &parsed_to, 16);
  if (parsed_to != hex.c_str() + 8) return Checksum::kDiffers;
  return stored == crc32_of(zip.data(), end + 20) ? Checksum::kMatches : Checksum::kDiffers;
}
}  // namespace

void write_checkpoint_atomically(const std::string& path, const CheckpointWriter& writer) {
  fs::path target(path);
  if (target.has_parent_path()) fs::create_directories(target.parent_path());
  remove_stale_temp_files(path);
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
    std::string bytes;
    root.save_to([&bytes](const void* data, size_t size) {
      bytes.append(static_cast<const char*>(data), size);
      return size;
    });
    append_checksum(bytes);
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
      out.close();
      if (!out) throw std::runtime_error("write failed (disk full?)");
    }
    commit_file(tmp, path);  // fsync, rename, fsync of the directory
  } catch (const std::exception& e) {
    remove_quietly(tmp);
    throw CheckpointError("cannot write checkpoint '" + path + "': " + e.what());
  }
}

CheckpointReader::CheckpointReader(const std::string& path) : path_(path) {
  if (!fs::exists(path)) throw CheckpointError("checkpoint '" + path + "' does not exist");
  if (fs::is_directory(path)) throw CheckpointError("checkpoint '" + path + "' is a directory, not a file");
  Checksum checksum = Checksum::kAbsent;
  try {
    std::string bytes;
    {
      std::ifstream in(path, std::ios::binary);
      if (!in) throw std::runtime_error("cannot open the file");
      bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      if (in.bad()) throw std::runtime_error("read error");
    }
    checksum = verify_checksum(bytes);
    if (checksum == Checksum::kDiffers)
      throw CheckpointError("checkpoint '" + path + "' is damaged: its bytes do not match the checksum written "
                            "with it (altered or corrupted on disk); use another checkpoint");
    archive_.load_from(bytes.data(), bytes.size());
    c10::IValue meta;
    archive_.read("meta", meta);
    meta_ = nlohmann::json::parse(meta.toStringRef());
  } catch (const CheckpointError&) {
    throw;
  } catch (const std::exception& e) {
    std::string what = e.what();
    auto newline = what.find('\n');
    if (newline != std::string::npos) what = what.substr(0, newline);
    throw CheckpointError("cannot read checkpoint '" + path + "': not a readable json2vec checkpoint (" + what + ")");
  }
  if (meta_.value("format", "") != kCheckpointFormat)
    throw CheckpointError("cannot read checkpoint '" + path + "': not a json2vec checkpoint");
  if (read_integer(meta_, "version", 0) > kCheckpointVersion)
    throw CheckpointError("checkpoint '" + path + "' was written by a newer json2vec (format version " +
                          std::to_string(read_integer(meta_, "version", 0)) + ")");
  // Version 1 checkpoints were written without one.
  if (read_integer(meta_, "version", 0) >= 2 && checksum != Checksum::kMatches)
    throw CheckpointError("checkpoint '" + path + "' is damaged: its checksum is missing (truncated or altered?)");
}

bool CheckpointReader::read_nested(const std::string& key, torch::serialize::InputArchive& out) {
  return archive_.try_read(key, out);
}

}  // namespace j2v::engine
