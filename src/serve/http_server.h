#pragma once
// An HTTP/1.1 server on an event loop (Boost.Beast over Asio), knowing nothing of models: a
// few threads serve any number of connections, so a slow, idle, pipelined or half-closed
// client holds a socket and a timer, never a thread, and cannot starve the others.
//
// Limits, each answered with a JSON error and the connection closed: a request's headers
// must arrive within request_timeout_s of its first byte (408) and stay under
// max_header_bytes (431); a body over max_body_bytes is refused from its Content-Length
// before it is sent (413); a malformed request line or header, two different
// Content-Lengths, or a Transfer-Encoding other than chunked is a 400. Between requests a
// keep-alive connection may idle for idle_timeout_s; past max_connections new connections
// are closed at once. Requests on one connection are answered in order (pipelining).
//
// Beast stays out of this header: only http_server.cc compiles it.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace j2v::serve {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // the target without its query string
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // The value of a header (names compare case-insensitively); empty when absent.
  std::string header(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra ones (Allow, Retry-After)
  bool close = false;  // close the connection after this response
};

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: a free port, see HttpServer::port()
  int threads = 2;
  int64_t max_connections = 10000;
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 1 << 20;
  double request_timeout_s = 10.0;
  double idle_timeout_s = 5.0;
};

// Answers one request: call it exactly once, from any thread, now or later.
using Respond = std::function<void(HttpResponse)>;
// Runs on an event-loop thread: long work belongs elsewhere, with `respond` called from there.
using HttpHandler = std::function<void(HttpRequest request, Respond respond)>;
// The response to an error the server answers itself (400, 408, 413, 431).
using HttpErrorResponse = std::function<HttpResponse(int status, const std::string& message)>;
// After each response is written (or a connection refused): for metrics. `path` is empty
// when the request was not read far enough to have one.
using OnResponse = std::function<void(const std::string& path, int status)>;

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, HttpHandler handler, HttpErrorResponse error_response,
             OnResponse on_response = nullptr);
  ~HttpServer();  // stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and listens (SO_REUSEADDR, no SO_REUSEPORT: a port in use is an error). Throws
  // std::runtime_error "cannot listen on HOST:PORT: reason".
  void listen();
  int port() const;
  // Starts accepting, on options.threads threads.
  void start();
  // Graceful: stops accepting and closes connections between requests; a request already
  // received is answered (then its connection closes). Returns once every connection has
  // closed and the threads have stopped. Idempotent.
  void stop();

  struct Impl;  // the event loop and its connections (http_server.cc)

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace j2v::serve
