#pragma once
// The command line of json2vec, for a program of its own: register components, then hand
// argv to run_cli (fit / validate / test / predict with --config and overrides).
#include "cli/commands.h"
