#pragma once
// The training engine alone, for any LibTorch model (after PyTorch Lightning): Module,
// DataModule, Trainer, callbacks, loggers, schedulers and the component registries. The CLI
// that runs a program's registered components from a config file is json2vec/cli.h.
#include "engine/callbacks/early_stopping.h"
#include "engine/callbacks/learning_rate_monitor.h"
#include "engine/callbacks/model_checkpoint.h"
#include "engine/callbacks/prediction_writer.h"
#include "engine/callbacks/rollback_to_best.h"
#include "engine/callbacks/timer.h"
#include "engine/components.h"
#include "engine/loggers/tensorboard_logger.h"
#include "engine/trainer.h"
