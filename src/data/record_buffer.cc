#include "data/record_buffer.h"

#include <simdjson.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "data/data_error.h"

namespace j2v {

namespace {
std::string read_file(const std::string& path) {
  gzFile file = gzopen(path.c_str(), "rb");  // reads plain files unchanged
  if (!file) throw DataError("cannot open '" + path + "': " + std::strerror(errno));
  std::string out;
  char chunk[1 << 16];
  int n;
  while ((n = gzread(file, chunk, sizeof(chunk))) > 0) out.append(chunk, n);
  int err = 0;
  const char* message = gzerror(file, &err);
  bool failed = n < 0 || (err != Z_OK && err != Z_STREAM_END);
  std::string detail = failed ? message : "";
  gzclose(file);
  if (failed) throw DataError("cannot read '" + path + "': " + detail + " (truncated or corrupt file?)");
  return out;
}
}  // namespace

std::shared_ptr<RecordBuffer> RecordBuffer::from_file(const std::string& path) {
  auto buffer = std::make_shared<RecordBuffer>();
  buffer->source_ = path;
  buffer->index_lines(read_file(path));
  return buffer;
}

std::shared_ptr<RecordBuffer> RecordBuffer::from_strings(const std::vector<std::string>& records, std::string source) {
  auto buffer = std::make_shared<RecordBuffer>();
  buffer->source_ = std::move(source);
  size_t total = 0;
  for (const auto& r : records) total += r.size() + 1;
  std::string text;
  text.reserve(total);
  for (const auto& r : records) {
    // An in-memory record is one record even if it spans lines: flatten its newlines
    // (whitespace in JSON) so it stays one line of the buffer.
    for (char c : r) text += (c == '\n' || c == '\r') ? ' ' : c;
    text += '\n';
  }
  buffer->index_lines(std::move(text));
  // Record i is input i even when it is blank, so callers can line results up with inputs.
  if (buffer->size() != records.size()) {
    for (size_t i = 0; i < records.size(); ++i)
      if (records[i].find_first_not_of(" \t\r\n") == std::string::npos)
        throw DataError(buffer->source_ + ": record " + std::to_string(i + 1) + " is empty");
  }
  return buffer;
}

void RecordBuffer::index_lines(std::string text) {
  data_ = std::move(text);
  size_t n = data_.size();
  int64_t line = 0;
  size_t start = 0;
  while (start < n) {
    size_t end = data_.find('\n', start);
    if (end == std::string::npos) end = n;
    ++line;
    size_t a = start, b = end;
    while (a < b && (data_[a] == ' ' || data_[a] == '\t' || data_[a] == '\r')) ++a;
    while (b > a && (data_[b - 1] == ' ' || data_[b - 1] == '\t' || data_[b - 1] == '\r')) --b;
    if (b > a) {
      if (b - a > UINT32_MAX) throw DataError(source_ + ":" + std::to_string(line) + ": record larger than 4 GiB");
      offsets_.push_back(a);
      lengths_.push_back(static_cast<uint32_t>(b - a));
      lines_.push_back(line);
    }
    start = end + 1;
  }
  data_.append(simdjson::SIMDJSON_PADDING, '\0');
}

}  // namespace j2v
