#include "data/record_buffer.h"

#include <simdjson.h>

#include "base/errors.h"
#include "data/readers/record_reader.h"

namespace j2v {

std::shared_ptr<RecordBuffer> RecordBuffer::from_file(const std::string& path) {
  return read_all(open_record_reader(path, ReaderOptions{}), path);
}

std::shared_ptr<RecordBuffer> RecordBuffer::from_text(std::string text, std::string source, int64_t first_line) {
  auto buffer = std::make_shared<RecordBuffer>();
  buffer->sources_.front() = std::move(source);
  buffer->index_lines(std::move(text), first_line);
  return buffer;
}

std::shared_ptr<RecordBuffer> RecordBuffer::from_strings(const std::vector<std::string>& records, std::string source) {
  auto buffer = std::make_shared<RecordBuffer>();
  buffer->sources_.front() = std::move(source);
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
  buffer->index_lines(std::move(text), 1);
  // Record i is input i even when it is blank, so callers can line results up with inputs.
  if (buffer->size() != records.size()) {
    for (size_t i = 0; i < records.size(); ++i)
      if (records[i].find_first_not_of(" \t\r\n") == std::string::npos)
        throw DataError(buffer->source() + ": record " + std::to_string(i + 1) + " is empty");
  }
  return buffer;
}

void RecordBuffer::index_lines(std::string text, int64_t first_line) {
  data_ = std::move(text);
  size_t n = data_.size();
  int64_t line = first_line - 1;
  size_t start = 0;
  while (start < n) {
    size_t end = data_.find('\n', start);
    if (end == std::string::npos) end = n;
    ++line;
    size_t a = start, b = end;
    while (a < b && (data_[a] == ' ' || data_[a] == '\t' || data_[a] == '\r')) ++a;
    while (b > a && (data_[b - 1] == ' ' || data_[b - 1] == '\t' || data_[b - 1] == '\r')) --b;
    if (b > a) {
      if (b - a > UINT32_MAX) throw DataError(source() + ":" + std::to_string(line) + ": record larger than 4 GiB");
      offsets_.push_back(a);
      lengths_.push_back(static_cast<uint32_t>(b - a));
      lines_.push_back(line);
    }
    start = end + 1;
  }
  data_.append(simdjson::SIMDJSON_PADDING, '\0');
}

void RecordBuffer::Builder::reserve(size_t records, size_t bytes) {
  buffer_->data_.reserve(bytes + records + simdjson::SIMDJSON_PADDING);
  buffer_->offsets_.reserve(records);
  buffer_->lengths_.reserve(records);
  buffer_->lines_.reserve(records);
  buffer_->source_ids_.reserve(records);
}

void RecordBuffer::Builder::add(std::string_view json, const std::string& source, int64_t line) {
  auto& b = *buffer_;
  uint32_t id = 0;
  if (b.offsets_.empty()) {
    b.sources_.front() = source;
  } else {
    // Consecutive records mostly share a file: compare with the last source before searching.
    id = b.source_ids_.back();
    if (b.sources_[id] != source) {
      id = 0;
      while (id < b.sources_.size() && b.sources_[id] != source) ++id;
      if (id == b.sources_.size()) b.sources_.push_back(source);
    }
  }
  b.offsets_.push_back(b.data_.size());
  b.lengths_.push_back(static_cast<uint32_t>(json.size()));
  b.lines_.push_back(line);
  b.source_ids_.push_back(id);
  b.data_.append(json);
  b.data_.push_back('\n');
}

size_t RecordBuffer::Builder::size() const { return buffer_->offsets_.size(); }

std::shared_ptr<RecordBuffer> RecordBuffer::Builder::finish() {
  buffer_->data_.append(simdjson::SIMDJSON_PADDING, '\0');
  auto out = std::move(buffer_);
  buffer_ = std::make_shared<RecordBuffer>();
  return out;
}

}  // namespace j2v
