#pragma once
// The json2vec command line, after LightningCLI: `json2vec SUBCOMMAND --config run.yaml
// [--section.key=value ...]`. Returns the process exit code.
namespace j2v::cli {

int run_cli(int argc, char** argv);

}  // namespace j2v::cli
