#pragma once
// Splitting part of a program by rows: CompileOptions::memory_budget's last lever, for a value so
// large that recomputing it is not enough (the feed-forward block's hidden activation and its
// gradient, four times the model's width). The value's node and the readers that work row by row
// run in chunks of rows; only one chunk of the value exists at a time.
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "compiler/fitted_program.hpp"
#include "compiler/memory_plan.hpp"
#include "xgrad/compile_report.hpp"
#include "xgrad/graph.hpp"

namespace xg {

/// Runs the region of `seed` in `chunks` chunks of rows, or returns false and changes nothing when
/// it cannot. The region is the seed (a node that computes each row of its value from the same row
/// of its row-indexed operands: products with a shared right operand, elementwise ops, layer_norm,
/// reshapes that keep the rows) and every reader, transitively, that works the same way, with the
/// producers of row operands only the region reads that work the same way too; readers that sum
/// over the rows (a weight gradient A^T B, a bias gradient) take chunk-by-chunk sums. The region's
/// row-indexed operands are read as views of their rows; a value read outside the region is the
/// concat of its chunks (which take their parts of its bytes), a sum the last of its running sums.
/// A seed the forward pass also reads stays for those readers, and the region recomputes it by
/// chunks for the backward pass's. `change` describes what was split. Unlike recomputation, this
/// changes rounding: the sums over rows are added in another order, and a product of fewer rows
/// may take another kernel path.
bool split_by_rows(FittedProgram program, int seed, int chunks, std::string& change);

/// Splits regions of the values alive where the arena peaks, most bytes first, with the fewest chunks
/// that fit `budget` (else the ones that lower the arena most), until the arena fits or no split
/// lowers it; each split is logged. Returns whether the arena fits; `smallest` is lowered to the
/// smallest arena reached.
bool split_rows_to_fit(FittedProgram program, std::size_t budget,
                       const std::function<Liveness(const std::vector<int>&)>& liveness, PassReport& log,
                       std::size_t& smallest);

}  // namespace xg
