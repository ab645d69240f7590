#pragma once
// The public API in one include: schema builders and selectors, schema inference, the model
// (with its schema changes and field importance), the in-memory data module and the
// Lightning-style engine.
#include "data/schema_inference.h"
#include "data/table_data_module.h"
#include "engine/callbacks/early_stopping.h"
#include "engine/callbacks/model_checkpoint.h"
#include "engine/callbacks/prediction_writer.h"
#include "engine/trainer.h"
#include "model/importance.h"
#include "model/model.h"
#include "schema/schema.h"
#include "schema/selector.h"
