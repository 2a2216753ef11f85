#include "launch/cli.h"

int main(int argc, char** argv) { return shardrec::cli::Main(argc, argv); }
