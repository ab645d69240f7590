#pragma once
// The public API in one include: schema builders, the model, the in-memory data module and
// the Lightning-style engine.
#include "data/table_data_module.h"
#include "engine/callbacks/early_stopping.h"
#include "engine/callbacks/model_checkpoint.h"
#include "engine/callbacks/prediction_writer.h"
#include "engine/trainer.h"
#include "model/model.h"
#include "schema/schema.h"
