#!/bin/sh
# The generated models (graph/meson.build) need the library's kernels and runtime only: none of
# their undefined symbols may be a graph builder, autodiff or a compiler pass.
set -eu
library=$1
found=$(nm -C --undefined-only "$library" | grep -E ' xg::(compile|grad|generate_cpp|Program|Graph|Var)\b' || true)
if [ -n "$found" ]; then
  echo "generated code calls into the graph or the compiler:"
  echo "$found"
  exit 1
fi
echo "ok: $(nm -C --undefined-only "$library" | grep -c ' xg::') undefined xg:: symbols, none of the graph or the compiler"
