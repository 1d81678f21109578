// shoal: the command-line tool (see cli/main.h).
#include "cli/main.h"

int main(int argc, char** argv) { return shoal::cli::Main(argc, argv); }
