#pragma once
// Turns a /predict body into records the model can take, or refuses it with the status
// and message a client can act on. Everything that can fail on one request's account is
// checked here, before the request joins a batch, so a bad request never fails others.
#include <memory>
#include <string>
#include <vector>

#include "data/record_encoder.h"
#include "schema/field_spec.h"

namespace j2v::serve {

struct KeyTrie;

struct ReadRequest {
  std::vector<std::string> records;  // each exactly as written in the body
  bool list = false;                 // the body was a list: answer with a list
};

class RequestReader {
 public:
  // `encoder` must outlive the reader; it is only read (frozen field state), so one
  // reader serves every connection thread at once.
  RequestReader(const std::vector<FieldSpec>& fields, const RecordEncoder& encoder, int64_t max_records,
                bool reject_unknown_fields);
  ~RequestReader();

  // Throws HttpError: 400 not JSON, 413 too many records, 422 JSON the model cannot take.
  ReadRequest read(std::string body) const;

 private:
  const RecordEncoder& encoder_;
  int64_t max_records_;
  bool reject_unknown_;
  std::unique_ptr<KeyTrie> keys_;
  std::string field_list_;  // for unknown-field messages
};

}  // namespace j2v::serve
