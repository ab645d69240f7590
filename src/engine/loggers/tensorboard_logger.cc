#include "engine/loggers/tensorboard_logger.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "engine/loggers/crc32c.h"

namespace j2v::engine {

namespace fs = std::filesystem;

namespace {

// Protobuf wire format, only as much as tensorflow.Event needs (field numbers from TensorFlow's
// event.proto, summary.proto and tensor.proto).
enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}

void put_tag(std::string& out, uint32_t field, WireType type) { put_varint(out, (uint64_t{field} << 3) | type); }

// Little-endian whatever the host, as the wire format and TFRecord framing require.
void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}

void put_double(std::string& out, uint32_t field, double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  put_tag(out, field, kFixed64);
  put_le(out, bits, 8);
}

void put_float(std::string& out, uint32_t field, float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  put_tag(out, field, kFixed32);
  put_le(out, bits, 4);
}

// int64 fields are plain varints: a negative value takes ten bytes of two's complement.
void put_int64(std::string& out, uint32_t field, int64_t v) {
  put_tag(out, field, kVarint);
  put_varint(out, static_cast<uint64_t>(v));
}

// Strings, bytes and nested messages alike.
void put_bytes(std::string& out, uint32_t field, const std::string& bytes) {
  put_tag(out, field, kLengthDelimited);
  put_varint(out, bytes.size());
  out += bytes;
}

double unix_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Event{wall_time = 1, step = 2} with the rest of the message already encoded.
std::string event(int64_t step, const std::string& rest) {
  std::string out;
  put_double(out, 1, unix_seconds());
  if (step != 0) put_int64(out, 2, step);  // proto3 leaves a zero default out
  return out + rest;
}

// Summary.Value{tag = 1, simple_value = 2}
std::string scalar_value(const std::string& tag, double value) {
  std::string out;
  put_bytes(out, 1, tag);
  put_float(out, 2, static_cast<float>(value));
  return out;
}

// Summary.Value{tag = 1, metadata = 9, tensor = 8}: a scalar DT_STRING tensor tagged for the
// text plugin, which is how tensorboard.summary.text writes it.
std::string text_value(const std::string& tag, const std::string& text) {
  std::string plugin_data;  // PluginData{plugin_name = 1}
  put_bytes(plugin_data, 1, "text");
  std::string metadata;  // SummaryMetadata{plugin_data = 1}
  put_bytes(metadata, 1, plugin_data);
  std::string tensor;  // TensorProto{dtype = 1, tensor_shape = 2, string_val = 8}
  put_int64(tensor, 1, 7);  // DT_STRING
  put_bytes(tensor, 2, "");  // a scalar: TensorShapeProto with no dims
  put_bytes(tensor, 8, text);
  std::string out;
  put_bytes(out, 1, tag);
  put_bytes(out, 9, metadata);
  put_bytes(out, 8, tensor);
  return out;
}

// Distinguishes loggers opened in the same second by the same process.
std::atomic<uint64_t> file_counter{0};

std::string hostname() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

}  // namespace

TensorBoardLogger::TensorBoardLogger(std::string directory) : directory_(std::move(directory)) { open(); }

TensorBoardLogger::~TensorBoardLogger() {
  if (file_) std::fclose(file_);
}

void TensorBoardLogger::open() {
  std::error_code ec;
  fs::create_directories(directory_, ec);
  if (ec) throw std::runtime_error("cannot create TensorBoard log directory '" + directory_ + "': " + ec.message());
  std::string name = "events.out.tfevents." + std::to_string(static_cast<int64_t>(unix_seconds())) + "." + hostname() +
                     "." + std::to_string(getpid()) + "." + std::to_string(file_counter++);
  path_ = (fs::path(directory_) / name).string();
  file_ = std::fopen(path_.c_str(), "wb");
  if (!file_) throw std::runtime_error("cannot open TensorBoard event file '" + path_ + "': " + std::strerror(errno));
  // Readers identify the format by this first event.
  std::string version;
  put_bytes(version, 3, "brain.Event:2");
  write_record(event(0, version));
}

// TFRecord: uint64 length, masked crc32c of the length, payload, masked crc32c of the payload.
void TensorBoardLogger::write_record(const std::string& payload) {
  if (!file_) open();
  std::string record;
  put_le(record, payload.size(), 8);
  put_le(record, masked_crc32c(record.data(), 8), 4);
  record += payload;
  put_le(record, masked_crc32c(payload.data(), payload.size()), 4);
  if (std::fwrite(record.data(), 1, record.size(), file_) != record.size())
    throw std::runtime_error("cannot write TensorBoard event file '" + path_ + "': " + std::strerror(errno));
}

void TensorBoardLogger::log_metrics(const std::map<std::string, double>& metrics, int64_t step) {
  std::string summary;  // Summary{repeated Value value = 1}
  for (const auto& [tag, value] : metrics) put_bytes(summary, 1, scalar_value(tag, value));
  std::string rest;
  put_bytes(rest, 5, summary);
  write_record(event(step, rest));
}

void TensorBoardLogger::log_hyperparams(const nlohmann::json& params) {
  // Replacing invalid UTF-8 rather than throwing: a stray byte in a name must not stop training.
  std::string text = params.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
  std::string summary;
  put_bytes(summary, 1, text_value("hparams", "```json\n" + text + "\n```"));
  std::string rest;
  put_bytes(rest, 5, summary);
  write_record(event(0, rest));
}

void TensorBoardLogger::save() {
  if (file_ && std::fflush(file_) != 0)
    throw std::runtime_error("cannot write TensorBoard event file '" + path_ + "': " + std::strerror(errno));
}

void TensorBoardLogger::finalize() {
  if (!file_) return;
  std::FILE* file = file_;
  file_ = nullptr;  // closed even if the flush fails, so the destructor does not retry
  if (std::fclose(file) != 0)
    throw std::runtime_error("cannot close TensorBoard event file '" + path_ + "': " + std::strerror(errno));
}

}  // namespace j2v::engine
