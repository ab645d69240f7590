#pragma once
// JSON Lines, plain, gzip or zstd (told apart by the file's first bytes, not its name),
// decompressed as it is read and cut into chunks at line ends.
#include <cstdio>
#include <string>
#include <vector>

#include "data/readers/record_reader.h"

struct gzFile_s;
struct ZSTD_DCtx_s;

namespace j2v {

class JsonLinesReader : public RecordReader {
 public:
  JsonLinesReader(std::string path, ReaderOptions options);
  ~JsonLinesReader() override;
  JsonLinesReader(const JsonLinesReader&) = delete;
  JsonLinesReader& operator=(const JsonLinesReader&) = delete;

  std::shared_ptr<RecordBuffer> next() override;

 private:
  // Up to n decompressed bytes into out; 0 at the end of the file. Throws on a read error
  // or a file that ends inside a compressed frame.
  size_t read_some(char* out, size_t n);
  size_t read_zstd(char* out, size_t n);

  std::string path_;
  std::string name_;  // in errors and record sources
  ReaderOptions options_;
  gzFile_s* gz_ = nullptr;      // plain and gzip files (zlib reads plain ones unchanged)
  std::FILE* file_ = nullptr;   // zstd files
  ZSTD_DCtx_s* zstd_ = nullptr;
  std::vector<char> compressed_;
  size_t compressed_pos_ = 0, compressed_size_ = 0;
  size_t frame_left_ = 0;       // nonzero while a zstd frame is unfinished
  std::string carry_;           // the unfinished line after the previous chunk
  int64_t next_line_ = 1;
  bool ended_ = false;
  bool first_chunk_ = true;
};

}  // namespace j2v
