#pragma once
// An object in S3, downloaded in ranged parts (each retried on its own) to a temporary file
// that is removed when the reader is done; its records are then read like a local file's,
// with the s3:// address in errors.
#include <string>

#include "data/readers/record_reader.h"

namespace j2v {

class S3Reader : public RecordReader {
 public:
  S3Reader(const std::string& url, ReaderOptions options);
  ~S3Reader() override;
  S3Reader(const S3Reader&) = delete;
  S3Reader& operator=(const S3Reader&) = delete;

  std::shared_ptr<RecordBuffer> next() override { return inner_->next(); }

 private:
  std::string local_dir_;
  std::unique_ptr<RecordReader> inner_;
};

}  // namespace j2v
