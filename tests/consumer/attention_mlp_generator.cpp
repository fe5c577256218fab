// The model source the build turns into a generator program (meson.build): it only says which
// model xg::define_model is; the main() comes from the xgrad-generator dependency.
#include <xgrad/model_generator.hpp>

#include "attention_mlp.hpp"

xg::ModelDefinition xg::define_model(xg::Graph& graph) { return consumer::attention_mlp(graph); }
