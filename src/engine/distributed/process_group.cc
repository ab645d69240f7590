#include "engine/distributed/process_group.h"

#include <fmt/format.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace j2v::engine {

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
};

namespace {

std::shared_ptr<::gloo::transport::Device> transport_device(const ProcessGroupOptions& o) {
  if (!o.bind_addr.empty()) return c10d::ProcessGroupGloo::createDeviceForHostname(o.bind_addr);
  if (const char* interface = std::getenv("GLOO_SOCKET_IFNAME"); interface && *interface)
    return c10d::ProcessGroupGloo::createDeviceForInterface(interface);
  if (o.single_machine) return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

c10d::ReduceOp reduce_op(Reduction op) {
  switch (op) {
    case Reduction::kMax: return c10d::ReduceOp::MAX;
    case Reduction::kMin: return c10d::ReduceOp::MIN;
    case Reduction::kSum: break;
  }
  return c10d::ReduceOp::SUM;
}

// The first line of a c10d/Gloo error: the rest is a C++ stack.
std::string first_line(const std::exception& e) {
  std::string what = e.what();
  auto end = what.find('\n');
  return end == std::string::npos ? what : what.substr(0, end);
}

}  // namespace

ProcessGroup::ProcessGroup(const ProcessGroupOptions& options) : options_(options), impl_(std::make_unique<Impl>()) {
  if (options_.world_size < 1 || options_.rank < 0 || options_.rank >= options_.world_size)
    throw std::invalid_argument(fmt::format("rank {} is outside a world of {} processes", options_.rank,
                                            options_.world_size));
  try {
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<uint16_t>(options_.master_port);
    store_options.isServer = options_.rank == 0;
    store_options.numWorkers = static_cast<size_t>(options_.world_size);
    store_options.waitWorkers = true;
    store_options.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(options_.timeout);
    impl_->store = c10::make_intrusive<c10d::TCPStore>(options_.master_addr, store_options);
    auto gloo_options = c10d::ProcessGroupGloo::Options::create(
        std::chrono::duration_cast<std::chrono::milliseconds>(options_.timeout));
    gloo_options->devices.push_back(transport_device(options_));
    impl_->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, static_cast<int>(options_.rank),
                                                              static_cast<int>(options_.world_size), gloo_options);
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format(
        "rank {} of {}: cannot join the process group at {}:{} within {} s (trainer.ddp_timeout_s): {}", options_.rank,
        options_.world_size, options_.master_addr, options_.master_port, options_.timeout.count(), first_line(e)));
  }
}

ProcessGroup::~ProcessGroup() = default;

void ProcessGroup::fail(const char* what, const std::exception& e) const {
  throw std::runtime_error(fmt::format(
      "rank {} of {}: {} failed: another rank stopped, or did not answer within {} s (trainer.ddp_timeout_s): {}",
      options_.rank, options_.world_size, what, options_.timeout.count(), first_line(e)));
}

void ProcessGroup::all_reduce(std::vector<torch::Tensor>& tensors, Reduction op, const char* what) {
  c10d::AllreduceOptions o;
  o.reduceOp = reduce_op(op);
  try {
    impl_->gloo->allreduce(tensors, o)->wait();
  } catch (const std::exception& e) {
    fail(what, e);
  }
}

void ProcessGroup::broadcast(std::vector<torch::Tensor>& tensors, int64_t root, const char* what) {
  c10d::BroadcastOptions o;
  o.rootRank = root;
  try {
    impl_->gloo->broadcast(tensors, o)->wait();
  } catch (const std::exception& e) {
    fail(what, e);
  }
}

std::vector<double> ProcessGroup::all_reduce(const std::vector<double>& values, Reduction op, const char* what) {
  if (values.empty()) return values;
  std::vector<torch::Tensor> t{torch::tensor(values, torch::kFloat64)};
  all_reduce(t, op, what);
  auto* p = t[0].data_ptr<double>();
  return std::vector<double>(p, p + values.size());
}

std::vector<std::string> ProcessGroup::all_gather(const std::string& bytes, const char* what) {
  // Lengths first, then the bytes padded to the longest.
  auto lengths = all_reduce([&] {
    std::vector<double> v(static_cast<size_t>(options_.world_size), 0.0);
    v[static_cast<size_t>(options_.rank)] = static_cast<double>(bytes.size());
    return v;
  }(), Reduction::kSum, what);
  int64_t longest = 0;
  for (double l : lengths) longest = std::max<int64_t>(longest, static_cast<int64_t>(l));
  auto mine = torch::zeros({std::max<int64_t>(longest, 1)}, torch::kUInt8);
  std::memcpy(mine.data_ptr<uint8_t>(), bytes.data(), bytes.size());
  std::vector<std::vector<torch::Tensor>> outputs(1);
  for (int64_t r = 0; r < options_.world_size; ++r) outputs[0].push_back(torch::empty_like(mine));
  std::vector<torch::Tensor> inputs{mine};
  try {
    impl_->gloo->allgather(outputs, inputs)->wait();
  } catch (const std::exception& e) {
    fail(what, e);
  }
  std::vector<std::string> out;
  for (int64_t r = 0; r < options_.world_size; ++r)
    out.emplace_back(reinterpret_cast<const char*>(outputs[0][r].data_ptr<uint8_t>()),
                     static_cast<size_t>(lengths[static_cast<size_t>(r)]));
  return out;
}

}  // namespace j2v::engine
