#pragma once
// `json2vec serve`: a checkpoint as an HTTP service (src/serve/deployment.h). Settings come
// from JSON2VEC_* environment variables, then from flags (flags win). Prints one JSON line
// when ready; SIGTERM or SIGINT stops accepting, answers what was received, exits 0.
#include <optional>
#include <string>
#include <vector>

namespace j2v::cli {

// overrides: "key=value" for every --key value flag other than --ckpt_path; schema_overrides:
// the --override ADDRESS.OPTION=VALUE flags, applied to the checkpoint's schema before serving.
int run_serve(const std::optional<std::string>& ckpt_path, const std::vector<std::string>& overrides,
              const std::vector<std::string>& schema_overrides = {});
std::string serve_help();

}  // namespace j2v::cli
