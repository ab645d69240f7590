#pragma once
// Raw JSON records held in one padded buffer (what simdjson wants), with each record's
// source and line, so errors can name file and line (for tabular files the line is the
// 1-based row).
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace j2v {

class RecordBuffer {
 public:
  // A whole file of any supported format (see data/readers/record_reader.h).
  static std::shared_ptr<RecordBuffer> from_file(const std::string& path);
  // JSON Lines text; blank lines are skipped, line numbers start at first_line.
  static std::shared_ptr<RecordBuffer> from_text(std::string text, std::string source, int64_t first_line = 1);
  static std::shared_ptr<RecordBuffer> from_strings(const std::vector<std::string>& records,
                                                    std::string source = "<memory>");

  // Gathers records from several buffers (a shuffled batch of a stream), each keeping its
  // own source and line.
  class Builder {
   public:
    void reserve(size_t records, size_t bytes);
    void add(std::string_view json, const std::string& source, int64_t line);
    size_t size() const;
    std::shared_ptr<RecordBuffer> finish();

   private:
    std::shared_ptr<RecordBuffer> buffer_ = std::make_shared<RecordBuffer>();
  };

  size_t size() const { return offsets_.size(); }
  std::string_view record(size_t i) const { return {data_.data() + offsets_[i], lengths_[i]}; }
  // Bytes readable from the record's start: always >= its length + simdjson's padding.
  size_t capacity(size_t i) const { return data_.size() - offsets_[i]; }
  int64_t line(size_t i) const { return lines_[i]; }
  const std::string& source(size_t i) const { return sources_[source_ids_.empty() ? 0 : source_ids_[i]]; }
  const std::string& source() const { return sources_.front(); }
  // "file:line", the prefix of every error about record i.
  std::string where(size_t i) const { return source(i) + ":" + std::to_string(lines_[i]); }
  size_t bytes() const { return data_.size(); }

 private:
  void index_lines(std::string text, int64_t first_line);
  std::vector<std::string> sources_{""};
  std::vector<uint32_t> source_ids_;  // empty: every record comes from sources_[0]
  std::string data_;
  std::vector<uint64_t> offsets_;
  std::vector<uint32_t> lengths_;
  std::vector<int64_t> lines_;
};

}  // namespace j2v
