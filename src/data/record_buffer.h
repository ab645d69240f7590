#pragma once
// Raw JSON records held in one padded buffer (what simdjson wants), with each record's
// source line, so errors can name file and line.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace j2v {

class RecordBuffer {
 public:
  // JSON Lines, plain or gzip-compressed (by content, not by name). Blank lines are skipped.
  static std::shared_ptr<RecordBuffer> from_file(const std::string& path);
  static std::shared_ptr<RecordBuffer> from_strings(const std::vector<std::string>& records,
                                                    std::string source = "<memory>");

  size_t size() const { return offsets_.size(); }
  std::string_view record(size_t i) const { return {data_.data() + offsets_[i], lengths_[i]}; }
  // Bytes readable from the record's start: always >= its length + simdjson's padding.
  size_t capacity(size_t i) const { return data_.size() - offsets_[i]; }
  int64_t line(size_t i) const { return lines_[i]; }
  const std::string& source() const { return source_; }
  size_t bytes() const { return data_.size(); }

 private:
  void index_lines(std::string text);
  std::string source_;
  std::string data_;
  std::vector<uint64_t> offsets_;
  std::vector<uint32_t> lengths_;
  std::vector<int64_t> lines_;
};

}  // namespace j2v
