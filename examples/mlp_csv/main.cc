// A program of its own on the json2vec engine: it registers its model and data module, then
// hands its command line to the same CLI json2vec uses (fit/validate/test/predict, --config,
// overrides, --print_config, checkpoints, callbacks, loggers).
#include <json2vec/cli.h>
#include <malloc.h>

#include "csv_data_module.h"
#include "mlp.h"

int main(int argc, char** argv) {
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  examples::register_mlp();
  examples::register_csv_data_module();
  return j2v::cli::run_cli(argc, argv);
}
