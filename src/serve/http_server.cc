#include "serve/http_server.h"

#include <fmt/format.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <chrono>
#include <limits>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

namespace j2v::serve {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

std::chrono::milliseconds millis(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000.0));
}

}  // namespace

std::string HttpRequest::header(std::string_view name) const {
  for (const auto& [key, value] : headers)
    if (iequals(key, name)) return value;
  return "";
}

class Session;

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  HttpServerOptions options;
  HttpHandler handler;
  HttpErrorResponse error_response;
  OnResponse on_response;

  net::io_context io{options.threads};
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  tcp::acceptor acceptor{net::make_strand(io)};
  net::steady_timer accept_retry{acceptor.get_executor()};
  std::vector<std::thread> threads;
  int port = 0;

  std::atomic<bool> stopping{false};
  std::mutex stop_mutex;
  std::mutex sessions_mutex;
  std::condition_variable sessions_closed;
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions;

  Impl(HttpServerOptions o, HttpHandler h, HttpErrorResponse e, OnResponse r)
      : options(std::move(o)), handler(std::move(h)), error_response(std::move(e)), on_response(std::move(r)) {}

  void accept();
  void add(const std::shared_ptr<Session>& session);
  void remove(Session* session);
};

// One connection: read a request (header, then body), hand it to the handler, write the
// response, and read the next one, strictly in turn; every step on the connection's strand.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<HttpServer::Impl> server)
      : stream_(std::move(socket)), timer_(stream_.get_executor()), server_(std::move(server)) {}
  ~Session() { server_->remove(this); }

  void start() { read_header(); }

  // From stop(): a connection between requests closes now; one whose request is being
  // answered closes after the response.
  void stop() {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      if (!self->answering_) self->close();
    });
  }

 private:
  const HttpServerOptions& options() const { return server_->options; }

  // The stream's own timeouts close the socket, leaving no way to answer 408: this timer
  // cancels the pending operation instead, and fail() answers.
  void arm(double seconds) {
    timed_out_ = false;
    timer_.expires_after(millis(seconds));
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec) return;  // cancelled: the operation finished in time
      self->timed_out_ = true;
      beast::error_code ignored;
      self->stream_.socket().cancel(ignored);
    });
  }

  void read_header() {
    if (server_->stopping) return close();
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(options().max_header_bytes));
    // No body limit while the header is read: Beast would refuse a large Content-Length
    // before the request's path is known; on_header() checks it and sets the limit.
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());  // not boost::none: 1.74 compares it as "below any length"
    // Waiting for a request to start is idling; once bytes of it are here, the rest of the
    // header must follow within the request timeout, however slowly it trickles.
    arm(buffer_.size() > 0 ? options().request_timeout_s : options().idle_timeout_s);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
  }

  void on_header(beast::error_code ec) {
    if (ec) return fail(ec);
    auto& request = parser_->get();
    path_.assign(request.target().data(), request.target().size());
    if (auto query = path_.find('?'); query != std::string::npos) path_.resize(query);
    auto length = parser_->content_length();
    if (length && *length > options().max_body_bytes)
      return error(413, fmt::format("the request body is larger than {} bytes (max_body_bytes): send fewer records "
                                    "per request",
                                    options().max_body_bytes));
    parser_->body_limit(static_cast<std::uint64_t>(options().max_body_bytes));  // chunked bodies
    arm(options().request_timeout_s);
    auto expect = request[http::field::expect];
    if (iequals(std::string_view(expect.data(), expect.size()), "100-continue")) {
      auto interim = std::make_shared<http::response<http::empty_body>>(http::status::continue_, 11);
      http::async_write(stream_, *interim, [self = shared_from_this(), interim](beast::error_code ec, size_t) {
        if (ec) return self->close();
        self->read_body();
      });
      return;
    }
    read_body();
  }

  void read_body() {
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->on_body(ec); });
  }

  void on_body(beast::error_code ec) {
    if (ec) return fail(ec);
    auto message = parser_->release();
    HttpRequest request;
    auto method = message.method_string();
    request.method.assign(method.data(), method.size());
    request.path = path_;
    for (const auto& field : message)
      request.headers.emplace_back(std::string(field.name_string().data(), field.name_string().size()),
                                   std::string(field.value().data(), field.value().size()));
    request.body = std::move(message.body());
    keep_alive_ = message.keep_alive();
    answering_ = true;
    timer_.cancel();  // the handler takes as long as it takes; the client waits
    auto self = shared_from_this();
    auto once = std::make_shared<std::atomic<bool>>(false);
    Respond respond = [self, once](HttpResponse response) {
      if (once->exchange(true)) return;  // answered already
      net::post(self->stream_.get_executor(),
                [self, response = std::move(response)]() mutable { self->write(std::move(response)); });
    };
    try {
      server_->handler(std::move(request), respond);
    } catch (const std::exception& e) {
      respond(server_->error_response(500, std::string("internal error: ") + e.what()));
    }
  }

  void write(HttpResponse answer) {
    auto response = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(answer.status), 11);
    response->set(http::field::content_type, answer.content_type);
    for (const auto& [name, value] : answer.headers) response->set(name, value);
    response->body() = std::move(answer.body);
    bool keep = keep_alive_ && !answer.close && !server_->stopping;
    response->keep_alive(keep);
    response->prepare_payload();
    int status = answer.status;
    // A client that stops reading must not hold the connection forever.
    arm(options().request_timeout_s);
    http::async_write(stream_, *response,
                      [self = shared_from_this(), response, keep, status](beast::error_code ec, size_t) {
                        self->answering_ = false;
                        self->timer_.cancel();
                        if (self->server_->on_response) self->server_->on_response(self->path_, status);
                        if (ec || !keep) return self->close();
                        self->path_.clear();
                        self->read_header();
                      });
  }

  // A request that could not be read: answer what is wrong when there is something to say.
  void fail(beast::error_code ec) {
    // A header read whole names its path even when the request is refused (a Content-Length
    // over body_limit fails as soon as the header is parsed).
    if (path_.empty() && parser_ && parser_->is_header_done()) {
      auto target = parser_->get().target();
      path_.assign(target.data(), target.size());
      if (auto query = path_.find('?'); query != std::string::npos) path_.resize(query);
    }
    if (timed_out_ && ec == net::error::operation_aborted) {
      // Idle between requests: close quietly. Part of a request and then nothing: say so.
      if (!parser_ || !parser_->got_some()) return close();
      return error(408, fmt::format("the request did not arrive within {} s (request_timeout_s)",
                                    options().request_timeout_s));
    }
    if (ec == http::error::end_of_stream || ec == net::error::eof || ec == net::error::operation_aborted ||
        ec == net::error::connection_reset || ec == http::error::partial_message)
      return close();  // the client went away, or stop() closed us: nobody to answer
    if (ec == http::error::header_limit)
      return error(431, fmt::format("the request's headers are larger than {} bytes", options().max_header_bytes));
    if (ec == http::error::body_limit)
      return error(413, fmt::format("the request body is larger than {} bytes (max_body_bytes): send fewer records "
                                    "per request",
                                    options().max_body_bytes));
    error(400, "malformed HTTP request: " + ec.message());
  }

  void error(int status, const std::string& message) {
    HttpResponse response = server_->error_response(status, message);
    response.close = true;  // what follows on the connection cannot be trusted to be a request
    keep_alive_ = false;
    answering_ = true;
    write(std::move(response));
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    timer_.cancel();
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.close();
  }

  beast::tcp_stream stream_;
  net::steady_timer timer_;
  bool timed_out_ = false;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<HttpServer::Impl> server_;
  std::string path_;
  bool keep_alive_ = false;
  bool answering_ = false;
  bool closed_ = false;
};

void HttpServer::Impl::add(const std::shared_ptr<Session>& session) {
  std::lock_guard<std::mutex> lock(sessions_mutex);
  sessions.emplace(session.get(), session);
}

void HttpServer::Impl::remove(Session* session) {
  std::lock_guard<std::mutex> lock(sessions_mutex);
  sessions.erase(session);
  if (sessions.empty()) sessions_closed.notify_all();
}

void HttpServer::Impl::accept() {
  acceptor.async_accept(net::make_strand(io), [self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !self->acceptor.is_open()) return;
    if (ec) {
      // Out of file descriptors (EMFILE): accepting again at once would spin; let
      // connections close first.
      self->accept_retry.expires_after(std::chrono::milliseconds(50));
      self->accept_retry.async_wait([self](beast::error_code wait_ec) {
        if (!wait_ec) self->accept();
      });
      return;
    }
    size_t open;
    {
      std::lock_guard<std::mutex> lock(self->sessions_mutex);
      open = self->sessions.size();
    }
    if (static_cast<int64_t>(open) >= self->options.max_connections || self->stopping) {
      beast::error_code ignored;
      socket.close(ignored);
      if (self->on_response) self->on_response("", 503);
    } else {
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);  // responses are one small write: no Nagle delay
      auto session = std::make_shared<Session>(std::move(socket), self);
      self->add(session);
      session->start();
    }
    self->accept();
  });
}

HttpServer::HttpServer(HttpServerOptions options, HttpHandler handler, HttpErrorResponse error_response,
                       OnResponse on_response)
    : impl_(std::make_shared<Impl>(std::move(options), std::move(handler), std::move(error_response),
                                   std::move(on_response))) {}

HttpServer::~HttpServer() { stop(); }

void HttpServer::listen() {
  Impl& s = *impl_;
  auto fail = [&](const std::string& reason) {
    return std::runtime_error(fmt::format("cannot listen on {}:{}: {}", s.options.host, s.options.port, reason));
  };
  beast::error_code ec;
  tcp::resolver resolver(s.io);
  auto endpoints = resolver.resolve(s.options.host, std::to_string(s.options.port), tcp::resolver::passive, ec);
  if (ec || endpoints.empty()) throw fail(ec ? ec.message() : "no such address");
  tcp::endpoint endpoint = endpoints.begin()->endpoint();
  s.acceptor.open(endpoint.protocol(), ec);
  if (!ec) s.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor.bind(endpoint, ec);
  if (!ec) s.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    beast::error_code ignored;
    s.acceptor.close(ignored);
    throw fail(ec.message());
  }
  s.port = s.acceptor.local_endpoint().port();
}

int HttpServer::port() const { return impl_->port; }

void HttpServer::start() {
  Impl& s = *impl_;
  s.work.emplace(net::make_work_guard(s.io));
  s.accept();
  for (int t = 0; t < std::max(s.options.threads, 1); ++t) s.threads.emplace_back([&s] { s.io.run(); });
}

void HttpServer::stop() {
  Impl& s = *impl_;
  std::lock_guard<std::mutex> once(s.stop_mutex);  // a second caller returns once the first is done
  if (s.stopping.exchange(true)) return;
  if (s.threads.empty()) {
    beast::error_code ignored;
    s.acceptor.close(ignored);
    return;
  }
  net::post(s.acceptor.get_executor(), [&s] {
    beast::error_code ignored;
    s.acceptor.close(ignored);
    s.accept_retry.cancel();
  });
  std::vector<std::shared_ptr<Session>> open;
  {
    std::lock_guard<std::mutex> lock(s.sessions_mutex);
    for (auto& [raw, weak] : s.sessions)
      if (auto session = weak.lock()) open.push_back(session);
  }
  for (auto& session : open) session->stop();
  open.clear();
  {
    // Requests being answered finish; the wait is bounded in case a handler never answers.
    std::unique_lock<std::mutex> lock(s.sessions_mutex);
    s.sessions_closed.wait_for(lock, millis(std::max(s.options.request_timeout_s, 1.0) * 3),
                               [&] { return s.sessions.empty(); });
  }
  s.work.reset();
  s.io.stop();
  for (auto& t : s.threads)
    if (t.joinable()) t.join();
}

}  // namespace j2v::serve
