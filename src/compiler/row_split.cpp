// Splitting a region by rows. The region is found from the schedule's readers, checked whole (its
// operands, what reads it, where its chunks can run) before anything changes, then replaced by its
// chunks, which run where its last node ran; nodes between its first and last that read it move
// after them.
#include "compiler/row_split.hpp"

#include <algorithm>
#include <map>
#include <numeric>
#include <optional>
#include <tuple>

#include <fmt/format.h>

#include "xgrad/format.hpp"
#include "xgrad/kernels/fused_elementwise.hpp"
#include "xgrad/op_def.hpp"

namespace xg {

namespace {

/// How many leading axes of `shape` hold exactly `rows` rows, or -1.
int row_axes(const Shape& shape, std::int64_t rows) {
  std::int64_t extent = 1;
  for (int axis = 0; axis < shape.rank(); ++axis) {
    extent *= shape[axis];
    if (extent == rows) return axis + 1;
    if (extent > rows || extent == 0) return -1;
  }
  return -1;
}

/// `shape` with its `axes` row axes as one axis of `rows`.
Shape with_rows(const Shape& shape, int axes, std::int64_t rows) {
  std::vector<std::int64_t> dims{rows};
  dims.insert(dims.end(), shape.dims().begin() + axes, shape.dims().end());
  return Shape(std::move(dims));
}

enum class Kind { none, by_row, row_sum };

/// How a node treats the rows: each row of its value from the same row of its row operands
/// (`by_row`), or a sum over all rows of its row operands (`row_sum`); the other operands are the
/// same for every row.
struct Rule {
  Kind kind = Kind::none;
  std::vector<bool> row_operand;  // per input
};

Rule rule_of(const Node& n, std::span<const Node> nodes, std::int64_t rows) {
  const auto operand = [&](std::size_t k) -> const Shape& { return nodes[static_cast<std::size_t>(n.inputs[k])].shape; };
  const int out_axes = row_axes(n.shape, rows);
  const std::size_t count = n.inputs.size();
  if (n.op == &op_reshape) {
    if (out_axes > 0 && row_axes(operand(0), rows) > 0) return {Kind::by_row, {true}};
    return {};
  }
  if (n.op == &op_matmul) {
    const auto& attr = std::get<MatmulAttr>(n.attrs);
    const Shape &a = operand(0), &b = operand(1);
    if (!attr.transpose_a && b.rank() == 2 && out_axes == n.shape.rank() - 1 && row_axes(a, rows) == a.rank() - 1) {
      return {Kind::by_row, {true, false}};
    }
    // A^T B over rows of both: a weight gradient.
    if (attr.transpose_a && !attr.transpose_b && a.rank() == 2 && b.rank() == 2 && a[0] == rows && b[0] == rows) {
      return {Kind::row_sum, {true, true}};
    }
    return {};
  }
  if (n.op == &op_fused_matmul) {
    const auto& attr = std::get<EpilogueAttr>(n.attrs);
    // Dropout's mask is drawn at the element's flat position, which a chunk would shift.
    const Shape& a = operand(0);
    if (attr.product.transpose_a || attr.dropout > 0.0 || operand(1).rank() != 2 || out_axes != n.shape.rank() - 1 ||
        row_axes(a, rows) != a.rank() - 1) {
      return {};
    }
    std::vector<bool> row(count, true);
    row[1] = false;
    if (attr.bias) row[2] = false;
    for (std::size_t k = attr.bias ? 3 : 2; k < count; ++k) {
      if (operand(k) != n.shape) return {};
    }
    return {Kind::by_row, std::move(row)};
  }
  if (n.op == &op_sum) {
    const auto& attr = std::get<AxesAttr>(n.attrs);
    const int axes = row_axes(operand(0), rows);
    if (axes <= 0) return {};
    std::vector<int> leading(static_cast<std::size_t>(axes)), summed = attr.axes;
    std::iota(leading.begin(), leading.end(), 0);
    std::sort(summed.begin(), summed.end());
    if (summed == leading) return {Kind::row_sum, {true}};
    return {};
  }
  if (out_axes <= 0) return {};
  if (n.op == &op_layer_norm) {
    if (std::get<NormAttr>(n.attrs).normalized_ndim > n.shape.rank() - out_axes) return {};
    std::vector<bool> row(count, false);
    row[0] = true;
    return {Kind::by_row, std::move(row)};
  }
  if ((n.op->elementwise || n.op == &op_fused_elementwise) && !stream_seed(n.attrs)) {
    std::vector<bool> row;
    for (std::size_t k = 0; k < count; ++k) {
      // Broadcast along the rows: aligned with the axes after them, so each chunk reads all of it.
      if (operand(k) == n.shape) row.push_back(true);
      else if (operand(k).rank() <= n.shape.rank() - out_axes) row.push_back(false);
      else return {};
    }
    return {Kind::by_row, std::move(row)};
  }
  return {};
}

/// A fused elementwise node's row length for a chunk of shape `chunk` (its own if every operand
/// still reads by it, else the whole chunk), or nothing.
std::optional<std::int64_t> chunk_row_length(const Node& n, std::span<const Node> nodes, const Rule& rule, const Shape& chunk) {
  const std::int64_t own = std::get<FusedElementwiseAttr>(n.attrs).row_length;
  for (const std::int64_t length : {own, chunk.numel()}) {
    bool readable = true;
    for (std::size_t k = 0; k < n.inputs.size() && readable; ++k) {
      const Shape& operand = rule.row_operand[k] ? chunk : nodes[static_cast<std::size_t>(n.inputs[k])].shape;
      readable = kernels::BroadcastRows::make(chunk.dims(), operand.dims(), length).has_value();
    }
    if (readable) return length;
  }
  return std::nullopt;
}

/// The region around a seed, checked: what the split needs to rewrite the program.
struct Region {
  std::int64_t rows = 0;
  std::vector<int> members;        // in schedule order
  std::vector<bool> member;        // per node
  std::vector<Rule> rules;         // per node (members only)
  std::vector<bool> exported;      // per node: a by-row member read outside the region or an output
  std::vector<bool> moved;         // per node: between the region's nodes, reading it: runs after it
  std::size_t last = 0;            // schedule position of the region's last node
  bool keep_seed = false;          // the seed also has readers before the backward pass: they keep it,
                                   // and the region recomputes it by chunks (rematerialization)
  std::map<int, std::int64_t> row_lengths;  // fused elementwise members: their chunks' row length
};

std::optional<Region> find_region(const FittedProgram& p, int seed, int chunks) {
  const std::vector<Node>& nodes = p.nodes;
  const std::size_t count = nodes.size();
  // Where the backward pass starts: its first node built by grad() (every node a budget adds is
  // in it too).
  const auto in_backward = [&](int id) { return static_cast<std::size_t>(id) >= p.gradient.size() || p.gradient[static_cast<std::size_t>(id)]; };
  const auto backward_start = std::find_if(p.schedule.begin(), p.schedule.end(), in_backward);
  const int backward_from = static_cast<int>(backward_start - p.schedule.begin());
  const Node& s = nodes[static_cast<std::size_t>(seed)];
  if (s.shape.rank() < 2 || s.shape.numel() == 0) return std::nullopt;
  Region r;
  r.rows = s.shape.numel() / s.shape[s.shape.rank() - 1];
  if (r.rows < 2 * chunks || r.rows % chunks != 0) return std::nullopt;
  r.member.assign(count, false);
  r.rules.resize(count);
  r.exported.assign(count, false);
  r.moved.assign(count, false);
  std::vector<int> position(count, -1);
  std::vector<std::vector<int>> readers(count);
  for (std::size_t at = 0; at < p.schedule.size(); ++at) {
    const int id = p.schedule[at];
    position[static_cast<std::size_t>(id)] = static_cast<int>(at);
    for (int in : distinct_inputs(nodes[static_cast<std::size_t>(id)])) readers[static_cast<std::size_t>(in)].push_back(id);
  }
  if (position[static_cast<std::size_t>(seed)] < 0) return std::nullopt;
  const auto& seed_readers = readers[static_cast<std::size_t>(seed)];
  const auto read_before = [&](bool before) {
    return std::any_of(seed_readers.begin(), seed_readers.end(), [&](int u) { return (position[static_cast<std::size_t>(u)] < backward_from) == before; });
  };
  r.keep_seed = position[static_cast<std::size_t>(seed)] < backward_from && read_before(true) && read_before(false);
  Rule seed_rule = rule_of(s, nodes, r.rows);
  if (seed_rule.kind != Kind::by_row) return std::nullopt;

  // Grow through readers: by-row readers continue the region, row sums end it.
  r.member[static_cast<std::size_t>(seed)] = true;
  r.rules[static_cast<std::size_t>(seed)] = std::move(seed_rule);
  std::vector<int> queue{seed};
  while (!queue.empty()) {
    const int x = queue.back();
    queue.pop_back();
    if (r.rules[static_cast<std::size_t>(x)].kind == Kind::row_sum) continue;
    for (int reader : readers[static_cast<std::size_t>(x)]) {
      const auto id = static_cast<std::size_t>(reader);
      if (r.member[id] || (x == seed && r.keep_seed && position[id] < backward_from)) continue;
      Rule rule = rule_of(nodes[id], nodes, r.rows);
      if (rule.kind == Kind::none) continue;
      r.member[id] = true;
      r.rules[id] = std::move(rule);
      queue.push_back(reader);
    }
  }
  // Then through producers: a row operand that only the region reads, computed by rows on the
  // same side of the backward pass's start, need not exist whole either (GELU's gradient reads dY
  // W2^T, which the hidden value does not produce).
  const bool region_in_backward = r.keep_seed || position[static_cast<std::size_t>(seed)] >= backward_from;
  for (bool grew = true; grew;) {
    grew = false;
    for (std::size_t id = 0; id < count; ++id) {
      if (!r.member[id]) continue;
      const Node& n = nodes[id];
      for (std::size_t k = 0; k < n.inputs.size(); ++k) {
        const auto u = static_cast<std::size_t>(n.inputs[k]);
        if (r.member[u] || !r.rules[id].row_operand[k] || position[u] < 0 || p.is_output[u] ||
            (region_in_backward && position[u] < backward_from) ||
            !std::all_of(readers[u].begin(), readers[u].end(), [&](int reader) { return r.member[static_cast<std::size_t>(reader)]; })) {
          continue;
        }
        Rule rule = rule_of(nodes[u], nodes, r.rows);
        if (rule.kind != Kind::by_row) continue;
        r.member[u] = true;
        r.rules[u] = std::move(rule);
        grew = true;
      }
    }
  }
  for (std::size_t id = 0; id < count; ++id) {
    if (r.member[id]) r.members.push_back(static_cast<int>(id));
  }
  std::sort(r.members.begin(), r.members.end(), [&](int a, int b) { return position[static_cast<std::size_t>(a)] < position[static_cast<std::size_t>(b)]; });

  // Every operand a member takes from the region is one of its row operands; and the values read
  // outside it are known.
  for (int m : r.members) {
    const auto id = static_cast<std::size_t>(m);
    const Node& n = nodes[id];
    for (std::size_t k = 0; k < n.inputs.size(); ++k) {
      const auto in = static_cast<std::size_t>(n.inputs[k]);
      if (r.member[in] && !r.rules[id].row_operand[k]) return std::nullopt;
      if (!r.member[in] && r.rules[id].row_operand[k] && row_axes(nodes[in].shape, r.rows) <= 0) return std::nullopt;
    }
    if (r.rules[id].kind == Kind::by_row && !(m == seed && r.keep_seed)) {
      r.exported[id] = p.is_output[id] || std::any_of(readers[id].begin(), readers[id].end(), [&](int u) { return !r.member[static_cast<std::size_t>(u)]; });
    }
    if (r.rules[id].kind == Kind::by_row && n.op == &op_fused_elementwise) {
      const auto length = chunk_row_length(n, nodes, r.rules[id], with_rows(n.shape, row_axes(n.shape, r.rows), r.rows / chunks));
      if (!length) return std::nullopt;
      r.row_lengths[m] = *length;
    }
  }
  if (r.members.size() < 2) return std::nullopt;

  // The chunks run where the last member ran. What runs between the first member and the last and
  // reads the region moves after them; a member reading such a node would close a cycle.
  const auto first = static_cast<std::size_t>(position[static_cast<std::size_t>(r.members[r.keep_seed ? 1 : 0])]);
  r.last = static_cast<std::size_t>(position[static_cast<std::size_t>(r.members.back())]);
  for (std::size_t at = first; at <= r.last; ++at) {
    const auto id = static_cast<std::size_t>(p.schedule[at]);
    const auto& in = nodes[id].inputs;
    const bool reads_region = std::any_of(in.begin(), in.end(), [&](int u) {
      return (r.member[static_cast<std::size_t>(u)] && !(u == seed && r.keep_seed)) || r.moved[static_cast<std::size_t>(u)];
    });
    if (r.member[id]) {
      if (std::any_of(in.begin(), in.end(), [&](int u) { return r.moved[static_cast<std::size_t>(u)]; })) return std::nullopt;
    } else if (reads_region) {
      r.moved[id] = true;
    }
  }
  return r;
}

}  // namespace

bool split_by_rows(FittedProgram p, int seed, int chunks, std::string& change) {
  const std::optional<Region> found = find_region(p, seed, chunks);
  if (!found) return false;
  const Region& r = *found;
  const std::int64_t rows = r.rows, chunk_rows = r.rows / chunks;
  const std::string scope = p.nodes[static_cast<std::size_t>(seed)].scope;

  std::vector<int> block;  // the new nodes, in run order
  const auto append = [&](Node n, int repeats) {
    block.push_back(p.append(std::move(n), true, repeats));
    return block.back();
  };
  const auto node = [&](int id) -> const Node& { return p.nodes[static_cast<std::size_t>(id)]; };

  // Each row operand from outside, once, as a (rows, ...) value its chunks slice.
  std::map<int, int> as_rows;
  for (int m : r.members) {
    const std::vector<int> inputs = node(m).inputs;  // appending moves the nodes
    for (std::size_t k = 0; k < inputs.size(); ++k) {
      const int u = inputs[k];
      if (r.member[static_cast<std::size_t>(u)] || !r.rules[static_cast<std::size_t>(m)].row_operand[k] || as_rows.count(u) != 0) continue;
      const int axes = row_axes(node(u).shape, rows);
      if (axes == 1) {
        as_rows[u] = u;
        continue;
      }
      Node view{&op_reshape, {u}, {}, node(u).dtype, with_rows(node(u).shape, axes, rows), "", scope};
      as_rows[u] = append(std::move(view), -1);
    }
  }

  std::map<int, int> chunk_of, sum_of;       // member -> its value in this chunk; row sum -> running sum
  std::map<int, std::vector<int>> parts;     // exported member -> its chunks
  for (int c = 0; c < chunks; ++c) {
    const std::int64_t begin = c * chunk_rows;
    std::map<int, int> slice_of;
    const auto slice = [&](int u) {
      if (const auto it = slice_of.find(u); it != slice_of.end()) return it->second;
      const int whole = as_rows.at(u);
      Shape shape = node(whole).shape;
      shape[0] = chunk_rows;
      Node piece{&op_slice, {whole}, SliceAttr{0, begin, begin + chunk_rows, 1, rows}, node(whole).dtype, std::move(shape), "", scope};
      return slice_of[u] = append(std::move(piece), -1);
    };
    for (int m : r.members) {
      const auto id = static_cast<std::size_t>(m);
      const Rule& rule = r.rules[id];
      Node copy = node(m);
      for (std::size_t k = 0; k < copy.inputs.size(); ++k) {
        const int u = copy.inputs[k];
        if (r.member[static_cast<std::size_t>(u)]) copy.inputs[k] = chunk_of.at(u);
        else if (rule.row_operand[k]) copy.inputs[k] = slice(u);
      }
      if (rule.kind == Kind::by_row) {
        copy.shape = with_rows(copy.shape, row_axes(copy.shape, rows), chunk_rows);
        if (const auto it = r.row_lengths.find(m); it != r.row_lengths.end()) std::get<FusedElementwiseAttr>(copy.attrs).row_length = it->second;
      } else if (copy.op == &op_sum) {
        // The chunk's rows are one axis: summed as the sum's own axes are, kept or not as they are.
        const auto& attr = std::get<AxesAttr>(copy.attrs);
        const int axes = static_cast<int>(attr.axes.size());
        const Shape& summed = node(copy.inputs[0]).shape;
        std::vector<std::int64_t> dims(summed.dims().begin() + 1, summed.dims().end());
        const bool keep = attr.keepdims && axes == 1;
        if (keep) dims.insert(dims.begin(), 1);
        copy.attrs = AxesAttr{{0}, keep};
        copy.shape = Shape(std::move(dims));
      }
      const DType dtype = copy.dtype;
      const Shape shape = copy.shape;
      const int repeats = m == seed && r.keep_seed && p.recomputes[id] < 0 ? m : p.recomputes[id];
      const int value = append(std::move(copy), repeats);
      chunk_of[m] = value;
      if (rule.kind == Kind::row_sum) {
        sum_of[m] = c == 0 ? value : append(Node{&op_add, {sum_of.at(m), value}, {}, dtype, shape, "", scope}, -1);
      } else if (r.exported[id]) {
        parts[m].push_back(value);
      }
    }
  }

  // What the rest of the program reads instead of each member.
  std::map<int, int> result;
  const auto as_shape_of = [&](int value, int m) {
    if (node(value).shape == node(m).shape) return value;
    return append(Node{&op_reshape, {value}, {}, node(m).dtype, node(m).shape, "", scope}, -1);
  };
  for (auto& [m, chunk_values] : parts) {
    const Node& n = node(m);
    Node whole{&op_concat, chunk_values, AxisAttr{0}, n.dtype, with_rows(n.shape, row_axes(n.shape, rows), rows), "", scope};
    result[m] = as_shape_of(append(std::move(whole), -1), m);
  }
  for (const auto& [m, running] : sum_of) {
    result[m] = as_shape_of(running, m);
  }

  const auto redirect = [&](int id) {
    for (int& in : p.nodes[static_cast<std::size_t>(id)].inputs) {
      if (const auto it = result.find(in); it != result.end()) in = it->second;
    }
  };
  for (int id : p.schedule) {
    if (!r.member[static_cast<std::size_t>(id)]) redirect(id);
  }
  for (int& v : p.value_of) {
    if (const auto it = result.find(v); it != result.end()) v = it->second;
  }
  for (const auto& [m, value] : result) {
    if (p.is_output[static_cast<std::size_t>(m)]) p.is_output[static_cast<std::size_t>(value)] = true;
  }
  for (int m : r.members) {
    if (m == seed && r.keep_seed) continue;
    p.is_output[static_cast<std::size_t>(m)] = false;
    p.live[static_cast<std::size_t>(m)] = false;
  }

  std::vector<int> schedule, after;
  for (std::size_t at = 0; at < p.schedule.size(); ++at) {
    const int id = p.schedule[at];
    if (r.moved[static_cast<std::size_t>(id)]) after.push_back(id);
    else if (!r.member[static_cast<std::size_t>(id)] || (id == seed && r.keep_seed)) schedule.push_back(id);
    if (at == r.last) {
      schedule.insert(schedule.end(), block.begin(), block.end());
      schedule.insert(schedule.end(), after.begin(), after.end());
    }
  }
  p.schedule = std::move(schedule);
  change = fmt::format("{} ({} bytes) and {} more nodes run in {} chunks of {} rows: {} values read outside as concats, {} sums over rows",
                       describe(node(seed), seed), bytes_of(node(seed)), r.members.size() - 1, chunks, chunk_rows, parts.size(), sum_of.size());
  return true;
}

bool split_rows_to_fit(FittedProgram p, std::size_t budget, const std::function<Liveness(const std::vector<int>&)>& liveness,
                       PassReport& log, std::size_t& smallest) {
  // A few splits at most: each one is a region around one large value.
  constexpr int kMaxSplits = 8;
  constexpr std::size_t kSeedsTried = 6;
  constexpr int kChunkCounts[] = {2, 4, 8, 16};
  const auto arena_of = [&](const std::vector<int>& schedule) { return plan_memory(liveness(schedule).buffers).arena_bytes; };
  for (int round = 0;; ++round) {
    const Liveness lv = liveness(p.schedule);
    const std::size_t arena = plan_memory(lv.buffers).arena_bytes;
    smallest = std::min(smallest, arena);
    if (arena <= budget) return true;
    if (round == kMaxSplits) return false;
    // The values alive where the live bytes peak, largest first.
    const int step = peak_live_step(lv.buffers);
    std::vector<int> seeds;
    for (int id : p.schedule) {
      const auto i = static_cast<std::size_t>(id);
      const int b = lv.buffer_of[i];
      if (b < 0 || lv.skip[i]) continue;
      const BufferRequest& alive = lv.buffers[static_cast<std::size_t>(b)];
      if (alive.first_step <= step && step <= alive.last_step) seeds.push_back(id);
    }
    std::stable_sort(seeds.begin(), seeds.end(), [&](int a, int b) {
      return bytes_of(p.nodes[static_cast<std::size_t>(a)]) > bytes_of(p.nodes[static_cast<std::size_t>(b)]);
    });
    if (seeds.size() > kSeedsTried) seeds.resize(kSeedsTried);

    struct Choice {
      int seed = -1, chunks = 0;
      std::size_t arena = 0;
    } best{-1, 0, arena};
    for (int seed : seeds) {
      for (int chunks : kChunkCounts) {
        // Tried on a copy of the program, then undone.
        const auto saved = std::tuple(p.nodes, p.live, p.is_output, p.value_of, p.recomputes, p.schedule);
        std::string change;
        const bool split = split_by_rows(p, seed, chunks, change);
        const std::size_t a = split ? arena_of(p.schedule) : 0;
        std::tie(p.nodes, p.live, p.is_output, p.value_of, p.recomputes, p.schedule) = saved;
        if (!split) break;  // the region is not one to split, with any number of chunks
        if (a < best.arena) best = {seed, chunks, a};
        if (a <= budget) break;
      }
      if (best.arena <= budget) break;
    }
    if (best.seed < 0) return false;
    std::string change;
    split_by_rows(p, best.seed, best.chunks, change);
    log.changes.push_back(std::move(change));
    ++log.rewrites;
  }
}

}  // namespace xg
