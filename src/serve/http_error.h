#pragma once
#include <stdexcept>
#include <string>

namespace j2v::serve {

// A request the service refuses: the status to answer and a message naming the problem.
// 400 when the body is not JSON, 413 when it is too large, 422 when it is JSON the model
// cannot take (wrong type, unknown field, not a record), 503 when overloaded or stopping.
class HttpError : public std::runtime_error {
 public:
  HttpError(int status, const std::string& message) : std::runtime_error(message), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

}  // namespace j2v::serve
