// main() of a model generator: the program a build makes from a model source that defines
// xg::define_model, and runs to write the model's class. In its own object file, so that a program
// with a main() of its own can still use generator_main from the same library.
#include "xgrad/model_generator.hpp"

int main(int argc, char** argv) { return xg::generator_main(argc, argv, xg::define_model); }
