#pragma once
// j2v::serve::Deployment: a model served over HTTP/1.1 (keep-alive), the engine of `json2vec serve`.
//
//   GET  /health   200 {"status": "ok"} once the model is loaded; 503 while loading or stopping
//   POST /predict  one record (a JSON object) or a list of them; answers the batch PredictionWriter's
//                  payload per record, {"inputs": ..., "predictions": {address: ...}}, as one
//                  object or a list to match the request
//   GET  /metrics  Prometheus text: requests, errors, latency, batch sizes, queue depth
//   GET  /schema   the model's fields and addresses
//
// Requests from all connections are batched (serve/batcher.h) and run with no autograd,
// each worker on its own copy of the model. Requests are checked before they are batched
// (serve/request_reader.h), so a bad one is answered 4xx alone.
//
//   j2v::serve::Deployment d(j2v::serve::DeploymentOptions::from_env().ckpt_path("model.ckpt").port(0));
//   d.start();       // returns once /health answers 200
//   ... d.port() ...
//   d.stop();        // stops accepting, answers what was received, then returns
#include <memory>
#include <string>

#include "model/model.h"
#include "serve/deployment_options.h"

namespace j2v::serve {

class Deployment {
 public:
  // Serves the checkpoint at options.ckpt_path.
  explicit Deployment(DeploymentOptions options);
  // Serves a model already in memory (trained or loaded); the workers copy its weights at
  // start(), so later training of `model` does not change what is served.
  Deployment(Model model, DeploymentOptions options);
  ~Deployment();  // stop()
  Deployment(const Deployment&) = delete;
  Deployment& operator=(const Deployment&) = delete;

  // Listens (/health answers 503 meanwhile), loads the model, starts the workers, and
  // returns once ready. Throws std::invalid_argument for bad options, std::runtime_error
  // when the address cannot be bound, engine::CheckpointError for an unreadable checkpoint.
  void start();
  // Graceful: stops accepting connections, lets every received request finish, then stops
  // the workers. Safe from any thread, any number of times; returns once stopped.
  void stop();
  // Blocks until stop() has finished (from another thread, e.g. a signal handler's).
  void wait();

  bool ready() const;
  int port() const;  // the bound port (the chosen one when options.port is 0)
  const std::string& host() const;
  const DeploymentOptions& options() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace j2v::serve
