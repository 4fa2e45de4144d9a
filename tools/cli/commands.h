// One function per `visionllm` subcommand; each parses its own flags.
#pragma once

namespace visionllm::cli {

int cmd_chat(int argc, char ** argv);
int cmd_detect(int argc, char ** argv);
int cmd_inspect(int argc, char ** argv);
int cmd_make_tiny(int argc, char ** argv);
int cmd_info(int argc, char ** argv);
int cmd_run(int argc, char ** argv);
int cmd_tokenize(int argc, char ** argv);

}  // namespace visionllm::cli
