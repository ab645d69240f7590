#include "data/readers/json_lines_reader.h"

#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "base/errors.h"

namespace j2v {

namespace {
constexpr unsigned char kZstdMagic[4] = {0x28, 0xB5, 0x2F, 0xFD};
}

JsonLinesReader::JsonLinesReader(std::string path, ReaderOptions options)
    : path_(std::move(path)), name_(options.display_name.empty() ? path_ : options.display_name), options_(options) {
  std::error_code ec;
  if (std::filesystem::is_directory(path_, ec))
    throw DataError("cannot read '" + name_ + "': it is a directory (data.streaming.root reads a directory of files)");
  std::FILE* probe = std::fopen(path_.c_str(), "rb");
  if (!probe) throw DataError("cannot open '" + name_ + "': " + std::strerror(errno));
  unsigned char magic[4] = {0, 0, 0, 0};
  size_t got = std::fread(magic, 1, 4, probe);
  if (got == 4 && std::memcmp(magic, kZstdMagic, 4) == 0) {
    std::rewind(probe);
    file_ = probe;
    zstd_ = ZSTD_createDCtx();
    compressed_.resize(ZSTD_DStreamInSize());
    return;
  }
  std::fclose(probe);
  gz_ = gzopen(path_.c_str(), "rb");
  if (!gz_) throw DataError("cannot open '" + name_ + "': " + std::strerror(errno));
  gzbuffer(gz_, 1 << 17);
}

JsonLinesReader::~JsonLinesReader() {
  if (gz_) gzclose(gz_);
  if (file_) std::fclose(file_);
  if (zstd_) ZSTD_freeDCtx(zstd_);
}

size_t JsonLinesReader::read_zstd(char* out, size_t n) {
  ZSTD_outBuffer output{out, n, 0};
  while (output.pos == 0) {
    if (compressed_pos_ == compressed_size_) {
      compressed_size_ = std::fread(compressed_.data(), 1, compressed_.size(), file_);
      compressed_pos_ = 0;
      if (compressed_size_ == 0) {
        if (std::ferror(file_)) throw DataError("cannot read '" + name_ + "': " + std::strerror(errno));
        if (frame_left_ != 0) throw DataError("cannot read '" + name_ + "': the zstd stream ends early (truncated file?)");
        return 0;
      }
    }
    ZSTD_inBuffer input{compressed_.data(), compressed_size_, compressed_pos_};
    size_t left = ZSTD_decompressStream(zstd_, &output, &input);
    compressed_pos_ = input.pos;
    if (ZSTD_isError(left))
      throw DataError("cannot read '" + name_ + "': " + ZSTD_getErrorName(left) + " (corrupt zstd file?)");
    frame_left_ = left;
  }
  return output.pos;
}

size_t JsonLinesReader::read_some(char* out, size_t n) {
  if (zstd_) return read_zstd(out, n);
  int got = gzread(gz_, out, static_cast<unsigned>(std::min<size_t>(n, 1u << 30)));
  int err = Z_OK;
  const char* message = gzerror(gz_, &err);
  if (got < 0 || (err != Z_OK && err != Z_STREAM_END))
    throw DataError("cannot read '" + name_ + "': " + message + " (truncated or corrupt file?)");
  return static_cast<size_t>(got);
}

std::shared_ptr<RecordBuffer> JsonLinesReader::next() {
  while (!ended_) {
    std::string text = std::move(carry_);
    carry_.clear();
    size_t want = std::max<size_t>(options_.chunk_bytes, 1);
    size_t cut = std::string::npos;
    // Read until the chunk is full and holds a line end (a longer line keeps growing it).
    while (true) {
      size_t have = text.size();
      if (have >= want) {
        cut = text.rfind('\n');
        if (cut != std::string::npos) break;
        if (have > options_.max_record_bytes)
          throw DataError(fmt::format("{}:{}: a line longer than {} MiB: not JSON Lines? (one record per line)",
                                      name_, next_line_, options_.max_record_bytes >> 20));
        want = std::max(want * 2, have + 1);
      }
      text.resize(want);
      size_t got = read_some(text.data() + have, want - have);
      text.resize(have + got);
      if (got == 0) {
        ended_ = true;
        break;
      }
    }
    if (!ended_) {
      carry_.assign(text, cut + 1, std::string::npos);
      text.resize(cut + 1);
    }
    // A byte-order mark some editors write: text, not part of the first record.
    if (first_chunk_ && text.compare(0, 3, "\xEF\xBB\xBF") == 0) text.erase(0, 3);
    first_chunk_ = false;
    int64_t first_line = next_line_;
    next_line_ += static_cast<int64_t>(std::count(text.begin(), text.end(), '\n'));
    auto chunk = RecordBuffer::from_text(std::move(text), name_, first_line);
    if (chunk->size() > 0) return chunk;  // a chunk of blank lines only: read on
  }
  return nullptr;
}

}  // namespace j2v
