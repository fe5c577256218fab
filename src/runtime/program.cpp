// Program::run: copy the feeds into the arena, point the parameter operands at their values, call
// the kernels in order. No allocation, no shape logic.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "xgrad/kernel_environment.hpp"
#include "runtime/program_impl.hpp"
#include "xgrad/attr_fields.hpp"
#include "xgrad/format.hpp"

namespace xg {

Program::Program(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Program::Program(Program&&) noexcept = default;
Program& Program::operator=(Program&&) noexcept = default;
Program::~Program() = default;

namespace {

bool same_shape(std::span<const std::size_t> given, const Shape& wanted) {
  return std::equal(given.begin(), given.end(), wanted.begin(), wanted.end(),
                    [](std::size_t a, std::int64_t b) { return static_cast<std::int64_t>(a) == b; });
}

/// The flat index of the first NaN or infinity in a float buffer, or -1.
std::int64_t first_non_finite(const void* data, DType dtype, std::int64_t count) {
  if (!is_float(dtype)) return -1;
  return visit_float(dtype, [&]<class T>() -> std::int64_t {
    const T* x = static_cast<const T*>(data);
    for (std::int64_t i = 0; i < count; ++i) {
      if (!std::isfinite(x[i])) return i;
    }
    return -1;
  });
}

std::string_view kind_of(const void* data, DType dtype, std::int64_t at) {
  const double v = dtype == DType::f64 ? static_cast<const double*>(data)[at] : static_cast<const float*>(data)[at];
  return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
}

/// The node, and for a fused elementwise node the ops it computes (their values are not stored, so
/// the culprit is one of them).
std::string describe_kernel(const Node& n, int id) {
  const auto* fused = std::get_if<FusedElementwiseAttr>(&n.attrs);
  if (fused == nullptr) return describe(n, id);
  std::vector<std::string_view> ops;
  for (const ElementwiseInstruction& i : fused->program) ops.push_back(elementwise_op_name(i.op));
  return fmt::format("node {} ({}: {})", id, n.op_name(), fmt::join(ops, ", "));
}

void require_finite(const void* data, const Node& n, int id, std::uint64_t run, std::string_view what) {
  const std::int64_t at = first_non_finite(data, n.dtype, n.shape.numel());
  if (at < 0) return;
  throw NonFiniteError(fmt::format("run {}: {} {} {} at flat index {} of shape {}", run, describe_kernel(n, id), what,
                                   kind_of(data, n.dtype, at), at, n.shape));
}

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    const auto end = text.find('\n');
    lines.push_back(text.substr(0, end));
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return lines;
}

}  // namespace

void Program::run(std::span<const Feed> feeds) {
  Impl& p = *impl_;
  for (const Feed& feed : feeds) {
    const int id = feed.var.id();
    auto slot = std::find_if(p.inputs.begin(), p.inputs.end(), [&](const InputSlot& s) { return s.node == id; });
    if (slot == p.inputs.end() || p.nodes[static_cast<std::size_t>(id)].name != feed.var.node().name) {
      throw FeedError(fmt::format("run: {} is not an input of this program", feed.var.describe()));
    }
    const Node& n = p.nodes[static_cast<std::size_t>(id)];
    if (feed.value.dtype != n.dtype || !same_shape(feed.value.shape, n.shape)) {
      throw FeedError(fmt::format("run: the feed for input '{}' is {} of shape ({}), but the input is {} of shape {}",
                                  n.name, feed.value.dtype, fmt::join(feed.value.shape, ", "), n.dtype, n.shape));
    }
    const auto bytes = static_cast<std::size_t>(n.shape.numel()) * size_of(n.dtype);
    if (slot->needed && bytes > 0) std::memcpy(slot->buffer.data, feed.value.data, bytes);  // empty arrays may hold null
  }
  for (const InputSlot& slot : p.inputs) {
    if (!slot.needed) continue;
    const bool fed = std::any_of(feeds.begin(), feeds.end(), [&](const Feed& f) { return f.var.id() == slot.node; });
    if (!fed) {
      const Node& n = p.nodes[static_cast<std::size_t>(slot.node)];
      throw FeedError(fmt::format("run: missing feed for input '{}' ({} {}, node {})", n.name, n.dtype, n.shape, slot.node));
    }
  }
  for (const StoredLeaf& leaf : p.leaves) {
    const Node& n = p.nodes[static_cast<std::size_t>(leaf.node)];
    const Tensor& value = leaf.folded != nullptr ? *leaf.folded : p.store->values.at(leaf.node);
    if (value.dtype() != n.dtype || value.numel() != n.shape.numel()) {
      throw ValueError(fmt::format("run: the value of {} was replaced by {} of {} elements; it must stay {} {}",
                                   describe(n, leaf.node), value.dtype(), value.numel(), n.dtype, n.shape));
    }
    for (std::size_t k : leaf.operands) p.operands[k].data = const_cast<void*>(value.data());  // kernels only read operands
    if (p.check_finite) require_finite(value.data(), n, leaf.node, p.context.run_index, "holds");
  }
  if (p.check_finite) {
    for (const InputSlot& slot : p.inputs) {
      if (slot.needed) require_finite(slot.buffer.data, p.nodes[static_cast<std::size_t>(slot.node)], slot.node, p.context.run_index, "was fed");
    }
  }
  const KernelEnvironment environment(p.flush_denormals);
  for (std::size_t s = 0; s < p.steps.size(); ++s) {
    const Step& step = p.steps[s];
    const Node& n = p.nodes[static_cast<std::size_t>(step.node)];
    const auto start = p.profiling ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    p.context.workspace = step.workspace;
    p.context.workspace_bytes = step.workspace_bytes;
    try {
      step.forward(n, std::span<const Buffer>(p.operands.data() + step.first_operand, step.operand_count), step.out,
                   p.context);
    } catch (const IndexError& e) {
      throw IndexError(fmt::format("{}: {}", describe(n, step.node), e.what()));
    }
    if (p.check_finite) require_finite(step.out.data, n, step.node, p.context.run_index, "produced");
    if (p.profiling) p.step_nanoseconds[s] += (std::chrono::steady_clock::now() - start).count();
  }
  if (p.profiling) ++p.profiled_runs;
  ++p.context.run_index;
}

TensorRef Program::view(Var v) const {
  const Impl& p = *impl_;
  const auto id = static_cast<std::size_t>(v.id());
  if (id >= p.nodes.size() || p.placement[id].kind == Placement::Kind::none) {
    throw ValueError(fmt::format("Program: {} is not stored by this program (its outputs do not need it, or a fused op computes "
                                 "it on the way); list it as an output to read it",
                                 v.describe()));
  }
  const Node& n = p.nodes[id];
  const bool readable = p.is_output[id] || p.placement[id].kind == Placement::Kind::stored;
  if (!readable) {
    throw ValueError(fmt::format("Program: {} is an intermediate value whose memory is reused; list it as an output "
                                 "to read it",
                                 v.describe()));
  }
  // TensorRef wants size_t extents; they live next to the node's shape for as long as the Program.
  static_assert(sizeof(std::size_t) == sizeof(std::int64_t));
  const std::span<const std::size_t> shape(reinterpret_cast<const std::size_t*>(n.shape.dims().data()),
                                           n.shape.dims().size());
  if (p.placement[id].kind == Placement::Kind::stored) {
    return TensorRef(p.stored_value(p.value_of[id]).data(), n.dtype, shape);
  }
  return TensorRef(p.arena + p.placement[id].offset, n.dtype, shape);
}

Tensor Program::get(Var v) const {
  const TensorRef ref = view(v);
  return visit_dtype(ref.dtype, [&]<class T>() {
    std::vector<std::size_t> shape(ref.shape.begin(), ref.shape.end());
    xt::xarray<T> out = xt::zeros<T>(shape);
    std::copy_n(static_cast<const T*>(ref.data), out.size(), out.data());
    return Tensor(std::move(out));
  });
}

void Program::set_training(bool training) { impl_->context.training = training; }
bool Program::training() const { return impl_->context.training; }
void Program::set_check_finite(bool check) { impl_->check_finite = check; }
bool Program::check_finite() const { return impl_->check_finite; }
void Program::set_profiling(bool profile) {
  impl_->profiling = profile;
  impl_->step_nanoseconds.assign(impl_->steps.size(), 0);  // sized here, so run() never allocates
  impl_->profiled_runs = 0;
}

std::string Program::profile() const {
  const Impl& p = *impl_;
  struct Row {
    std::string_view op;
    std::int64_t calls = 0, nanoseconds = 0;
  };
  std::vector<Row> rows;
  std::int64_t total = 0;
  for (std::size_t s = 0; s < p.step_nanoseconds.size(); ++s) {
    const std::string_view op = p.nodes[static_cast<std::size_t>(p.steps[s].node)].op_name();
    auto row = std::find_if(rows.begin(), rows.end(), [&](const Row& r) { return r.op == op; });
    if (row == rows.end()) row = rows.insert(rows.end(), Row{op});
    ++row->calls;
    row->nanoseconds += p.step_nanoseconds[s];
    total += p.step_nanoseconds[s];
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.nanoseconds > b.nanoseconds; });
  const double runs = static_cast<double>(std::max<std::uint64_t>(p.profiled_runs, 1));
  std::string out = fmt::format("{:<18} {:>6} {:>12} {:>7}   (per run, over {} runs)\n", "op", "calls", "ms", "share", p.profiled_runs);
  for (const Row& r : rows) {
    out += fmt::format("{:<18} {:>6} {:>12.3f} {:>6.1f}%\n", r.op, r.calls, static_cast<double>(r.nanoseconds) / 1e6 / runs,
                       total > 0 ? 100.0 * static_cast<double>(r.nanoseconds) / static_cast<double>(total) : 0.0);
  }
  return out + fmt::format("{:<18} {:>6} {:>12.3f}\n", "total", p.steps.size(), static_cast<double>(total) / 1e6 / runs);
}

std::vector<Program::StepTime> Program::step_times() const {
  const Impl& p = *impl_;
  std::vector<StepTime> times;
  const double runs = static_cast<double>(std::max<std::uint64_t>(p.profiled_runs, 1));
  for (std::size_t s = 0; s < p.step_nanoseconds.size(); ++s) {
    const int node = p.steps[s].node;
    times.push_back({node, p.nodes[static_cast<std::size_t>(node)].op_name(), static_cast<double>(p.step_nanoseconds[s]) / runs});
  }
  return times;
}

std::uint64_t Program::run_index() const { return impl_->context.run_index; }
void Program::set_run_index(std::uint64_t runs) { impl_->context.run_index = runs; }
const MemoryReport& Program::memory() const { return impl_->memory; }
int Program::threads() const { return impl_->pool->size(); }
bool Program::flush_denormals() const { return impl_->flush_denormals; }
std::size_t Program::steps() const { return impl_->steps.size(); }

std::uint64_t Program::matmul_flops() const {
  std::uint64_t flops = 0;
  for (const Step& step : impl_->steps) {
    const Node& n = impl_->nodes[static_cast<std::size_t>(step.node)];
    if (n.op->matmul_flops != nullptr) flops += n.op->matmul_flops(n, impl_->nodes);
  }
  return flops;
}

const CompileReport& Program::report() const { return impl_->report; }

std::string Program::dump() const {
  const Impl& p = *impl_;
  std::string out;
  const std::string summary = p.report.summary();
  for (std::string_view line : split_lines(summary)) out += fmt::format("# {}\n", line);
  bool recomputed_header = false;
  for (std::size_t id = 0; id < p.nodes.size(); ++id) {
    const Node& n = p.nodes[id];
    const Placement& at = p.placement[id];
    if (at.kind == Placement::Kind::none) continue;
    if (p.value_of[id] != static_cast<int>(id)) {
      out += fmt::format("%{:<4} = %{}\n", id, p.value_of[id]);
      continue;
    }
    const std::string attrs = attrs_text(n.attrs);
    const std::string where = at.kind == Placement::Kind::arena ? fmt::format("arena+{}", at.offset) : "stored";
    const int repeats = id < p.recomputes.size() ? p.recomputes[id] : -1;
    if (repeats >= 0 && !recomputed_header) {
      recomputed_header = true;
      out += "# recomputed in the backward pass (memory budget), each right before its first reader:\n";
    }
    out += fmt::format("%{:<4} {:<14} {:<4} {:<16} ({}) {}{}{}{}\n", id, n.op_name(), n.dtype, to_string(n.shape),
                       fmt::join(n.inputs, ", "), attrs.empty() ? "" : fmt::format("{{{}}} ", attrs), where,
                       p.is_output[id] ? " output" : "", repeats >= 0 ? fmt::format(" recomputes %{}", repeats) : "");
  }
  return out;
}

}  // namespace xg
