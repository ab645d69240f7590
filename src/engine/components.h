#pragma once
// The engine's registries, one per kind of component, each holding the built-in
// components (registered in components.cc) and whatever a program adds before it runs the
// CLI: `j2v::engine::modules().add({"examples.MLP", "...", defaults, factory})`.
#include <torch/torch.h>

#include "engine/callback.h"
#include "engine/data.h"
#include "engine/logger.h"
#include "engine/module.h"
#include "engine/registry.h"
#include "engine/scheduler.h"

namespace j2v::engine {

class Trainer;

using ModuleRegistry = Registry<std::shared_ptr<Module>>;
using DataModuleRegistry = Registry<std::shared_ptr<DataModule>>;
using CallbackRegistry = Registry<std::shared_ptr<Callback>>;
using LoggerRegistry = Registry<std::shared_ptr<Logger>>;
// Optimizers are made over a module's parameter groups (Module::parameter_groups): the
// init_args' weight_decay applies to the groups that take it, the others get 0.
using OptimizerRegistry = Registry<std::shared_ptr<torch::optim::Optimizer>, std::vector<ParameterGroup>>;
// Schedulers see the Trainer for their length (estimated_stepping_batches).
using SchedulerRegistry = Registry<std::shared_ptr<Scheduler>, torch::optim::Optimizer&, Trainer&>;

ModuleRegistry& modules();
DataModuleRegistry& data_modules();
CallbackRegistry& callbacks();
LoggerRegistry& loggers();
OptimizerRegistry& optimizers();
SchedulerRegistry& schedulers();

// The one way optimizers are made, by class name (or alias: adamw, adam, sgd) and init_args
// (completed with the registry's defaults), over the module's parameter groups.
std::shared_ptr<torch::optim::Optimizer> make_optimizer(const std::string& optimizer_class,
                                                       const nlohmann::json& optimizer_args, Module& module);

// Keys every scheduler takes besides its own: how the Trainer steps it.
// interval (step|epoch), frequency, monitor (a logged metric; ReduceLROnPlateau).
OptimizerConfig make_optimizer_config(const std::string& optimizer_class, const nlohmann::json& optimizer_args,
                                      const std::string& scheduler_class, const nlohmann::json& scheduler_args,
                                      Module& module, Trainer& trainer);

}  // namespace j2v::engine
