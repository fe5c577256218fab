// Fitting a memory budget. Two levers, tried in this order because the first costs nothing at run
// time: (1) a memory-aware order of the same ops (a value's last readers run before the next big
// value is produced), kept only if it lowers the peak of live bytes; (2) rematerialization: forward
// values the backward pass reads are no longer kept from the forward pass to the backward one but
// computed again, by a copy of their node scheduled right before its first backward reader.
//
// Every choice is judged by the real liveness of the schedule it gives (assign_buffers, with views
// and in-place reuse), so the greedy never trusts a size estimate; and the plan's arena (which may
// exceed the peak) is what must fit.
#include "compiler/remat.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "compiler/memory_order.hpp"
#include "compiler/memory_plan.hpp"
#include "compiler/row_split.hpp"
#include "xgrad/error.hpp"
#include "xgrad/format.hpp"
#include "xgrad/op_def.hpp"

namespace xg {

namespace {

class Rematerializer {
 public:
  explicit Rematerializer(BudgetFit& fit) : f_(fit), base_(fit.schedule) {
    const std::size_t count = f_.nodes.size();
    std::vector<int> pos(count, -1);
    for (std::size_t p = 0; p < base_.size(); ++p) pos[static_cast<std::size_t>(base_[p])] = static_cast<int>(p);
    // The backward pass starts at the first gradient node; what it reads from before is kept
    // alive across the turn, which is where a training program's peak usually is.
    std::size_t boundary = base_.size();
    for (std::size_t p = 0; p < base_.size(); ++p) {
      const auto id = static_cast<std::size_t>(base_[p]);
      if (id < f_.gradient.size() && f_.gradient[id]) {
        boundary = p;
        break;
      }
    }
    late_readers_.resize(count);
    first_late_.assign(count, -1);
    for (std::size_t p = boundary; p < base_.size(); ++p) {
      const int u = base_[p];
      for (int in : distinct_inputs(f_.nodes[static_cast<std::size_t>(u)])) {
        const int at = pos[static_cast<std::size_t>(in)];
        if (at < 0 || static_cast<std::size_t>(at) >= boundary) continue;
        late_readers_[static_cast<std::size_t>(in)].push_back(u);
        if (first_late_[static_cast<std::size_t>(in)] < 0) first_late_[static_cast<std::size_t>(in)] = static_cast<int>(p);
      }
    }
    // Candidates: every forward value (a value the backward pass reads is often a view of one
    // it does not, and freeing the view's operand needs the operand recomputed too).
    clone_.assign(count, -1);
    for (std::size_t p = 0; p < boundary; ++p) {
      const auto id = static_cast<std::size_t>(base_[p]);
      if (f_.is_output[id] || f_.nodes[id].shape.numel() == 0) continue;
      candidates_.push_back(static_cast<int>(id));
    }
    std::sort(candidates_.begin(), candidates_.end());
    candidate_readers_.resize(count);
    f_.recomputes.assign(count, -1);
    FittedProgram program{f_.nodes, f_.live, f_.is_output, f_.value_of, f_.recomputes, f_.schedule, f_.gradient};
    for (int c : candidates_) {
      const int id = program.append(f_.nodes[static_cast<std::size_t>(c)], false, c);
      clone_[static_cast<std::size_t>(c)] = id;
      for (int in : distinct_inputs(f_.nodes[static_cast<std::size_t>(c)])) {
        if (clone_[static_cast<std::size_t>(in)] >= 0) candidate_readers_[static_cast<std::size_t>(in)].push_back(c);
      }
    }
    on_.assign(count, false);
  }

  const std::vector<int>& candidates() const { return candidates_; }
  int clone(int c) const { return clone_[static_cast<std::size_t>(c)]; }
  bool on(int c) const { return on_[static_cast<std::size_t>(c)]; }

  /// Recompute `c` (or stop): its backward readers read the copy, and so do the copies of its
  /// forward readers.
  void set(int c, bool recompute) {
    if (on_[static_cast<std::size_t>(c)] == recompute) return;
    on_[static_cast<std::size_t>(c)] = recompute;
    const int from = recompute ? c : clone(c), to = recompute ? clone(c) : c;
    auto redirect = [&](int node) {
      for (int& in : f_.nodes[static_cast<std::size_t>(node)].inputs) {
        if (in == from) in = to;
      }
    };
    for (int u : late_readers_[static_cast<std::size_t>(c)]) redirect(u);
    for (int g : candidate_readers_[static_cast<std::size_t>(c)]) redirect(clone(g));
  }

  /// The base order with each copy right before its first reader (a backward node or another
  /// copy); copies placed at the same point keep the forward order, so operands come first.
  std::vector<int> schedule() const {
    std::vector<int> anchor(f_.nodes.size(), -1);
    std::vector<std::vector<int>> at(base_.size());
    for (auto c = candidates_.rbegin(); c != candidates_.rend(); ++c) {
      if (!on(*c)) continue;
      int a = first_late_[static_cast<std::size_t>(*c)];
      for (int g : candidate_readers_[static_cast<std::size_t>(*c)]) {
        const int b = anchor[static_cast<std::size_t>(g)];
        if (on(g) && b >= 0) a = a < 0 ? b : std::min(a, b);
      }
      anchor[static_cast<std::size_t>(*c)] = a;  // -1: no reader needs the copy
    }
    for (int c : candidates_) {
      if (const int a = anchor[static_cast<std::size_t>(c)]; on(c) && a >= 0) at[static_cast<std::size_t>(a)].push_back(clone(c));
    }
    std::vector<int> out;
    out.reserve(base_.size() + candidates_.size());
    for (std::size_t p = 0; p < base_.size(); ++p) {
      out.insert(out.end(), at[p].begin(), at[p].end());
      out.push_back(base_[p]);
    }
    return out;
  }

  /// The first node of the schedule that reads copy `clone` (for the report).
  int first_reader(const std::vector<int>& schedule, int copy) const {
    for (int id : schedule) {
      const auto& in = f_.nodes[static_cast<std::size_t>(id)].inputs;
      if (std::find(in.begin(), in.end(), copy) != in.end()) return id;
    }
    return -1;
  }

 private:
  BudgetFit& f_;
  std::vector<int> base_;
  std::vector<std::vector<int>> late_readers_;   // per node: its readers in the backward pass
  std::vector<int> first_late_;                  // per node: the position of the first of them
  std::vector<int> candidates_;                  // forward values the backward pass reads, in id order
  std::vector<int> clone_;                       // per candidate: its copy's id
  std::vector<std::vector<int>> candidate_readers_;  // per node: the candidates that read it
  std::vector<bool> on_;
};

/// Recomputation cost in FLOP-equivalents: products by their FLOPs, the rest by the bytes they move
/// (a core does about this many multiply-adds in the time memory delivers a byte).
constexpr std::uint64_t kFlopsPerByte = 16;

std::uint64_t recompute_cost(const Node& n, const std::vector<Node>& nodes) {
  if (n.op->matmul_flops != nullptr) return n.op->matmul_flops(n, nodes);
  if (is_view(n, nodes)) return 0;
  std::uint64_t bytes = bytes_of(n);
  for (int in : n.inputs) bytes += bytes_of(nodes[static_cast<std::size_t>(in)]);
  return bytes * kFlopsPerByte;
}

/// Where a schedule's live bytes peak and the largest values alive there, for a budget no plan meets.
std::string describe_peak(const std::vector<Node>& nodes, const std::vector<int>& schedule, const Liveness& lv) {
  const int step = peak_live_step(lv.buffers);
  // Each buffer is named by the node that writes it first (views and in-place ops join it later).
  std::vector<int> owner(lv.buffers.size(), -1);
  std::vector<bool> scratch(lv.buffers.size(), false);
  for (std::size_t id = 0; id < nodes.size(); ++id) {
    if (const int w = lv.workspace_of[id]; w >= 0) {
      owner[static_cast<std::size_t>(w)] = static_cast<int>(id);
      scratch[static_cast<std::size_t>(w)] = true;
    }
    const int b = lv.buffer_of[id];
    if (b < 0 || scratch[static_cast<std::size_t>(b)]) continue;
    int& o = owner[static_cast<std::size_t>(b)];
    if (o < 0 || lv.step_of[id] < lv.step_of[static_cast<std::size_t>(o)]) o = static_cast<int>(id);
  }
  std::vector<std::size_t> alive;
  for (std::size_t b = 0; b < lv.buffers.size(); ++b) {
    if (lv.buffers[b].first_step <= step && step <= lv.buffers[b].last_step && owner[b] >= 0) alive.push_back(b);
  }
  std::stable_sort(alive.begin(), alive.end(), [&](std::size_t a, std::size_t b) { return lv.buffers[a].bytes > lv.buffers[b].bytes; });
  constexpr std::size_t kNamed = 6;
  std::vector<std::string> named;
  std::size_t rest = 0;
  for (std::size_t i = 0; i < alive.size(); ++i) {
    const std::size_t b = alive[i];
    const double mib = static_cast<double>(lv.buffers[b].bytes) / 1048576.0;
    const int id = owner[b];
    if (i < kNamed) {
      named.push_back(fmt::format("{}{} {:.1f} MiB", scratch[b] ? "the workspace of " : "",
                                  describe(nodes[static_cast<std::size_t>(id)], id), mib));
    } else {
      rest += lv.buffers[b].bytes;
    }
  }
  const std::string where = step == 0 ? std::string("with the inputs")
                                      : fmt::format("at {}", describe(nodes[static_cast<std::size_t>(schedule[static_cast<std::size_t>(step - 1)])],
                                                                      schedule[static_cast<std::size_t>(step - 1)]));
  std::string text = fmt::format("the live bytes peak {}, with these alive: {}", where, fmt::join(named, ", "));
  if (alive.size() > kNamed) text += fmt::format(", and {} more values ({:.1f} MiB)", alive.size() - kNamed, static_cast<double>(rest) / 1048576.0);
  return text;
}

}  // namespace

void fit_memory_budget(BudgetFit fit) {
  MemoryBudgetReport& r = fit.report.memory_budget;
  r.budget = fit.budget;
  bool copy_views = false;
  auto liveness = [&](const std::vector<int>& schedule) {
    return assign_buffers(fit.nodes, fit.live, fit.is_output, schedule, fit.in_place, fit.slots, copy_views);
  };
  auto peak = [&](const std::vector<int>& schedule) { return peak_live_bytes(liveness(schedule).buffers); };
  auto arena = [&](const std::vector<int>& schedule) { return plan_memory(liveness(schedule).buffers).arena_bytes; };

  const Liveness plain = liveness(fit.schedule);
  r.arena_before = r.arena_after = plan_memory(plain.buffers).arena_bytes;
  r.peak_before = r.peak_after = peak_live_bytes(plain.buffers);
  // Kernel calls and product FLOPs of the program without a budget, which the cost is reported against.
  const auto calls_and_flops = [&](const std::vector<int>& order, const Liveness& of) {
    std::pair<std::size_t, std::uint64_t> total{0, 0};
    for (int id : order) {
      const Node& n = fit.nodes[static_cast<std::size_t>(id)];
      if (of.skip[static_cast<std::size_t>(id)] || n.shape.numel() == 0) continue;
      ++total.first;
      if (n.op->matmul_flops != nullptr) total.second += n.op->matmul_flops(n, fit.nodes);
    }
    return total;
  };
  const auto [calls_before, flops_before] = calls_and_flops(fit.schedule, plain);
  fit.recomputes.assign(fit.nodes.size(), -1);
  if (r.arena_before <= fit.budget) return;
  copy_views = fit.copy_output_views = true;
  r.arena_after = arena(fit.schedule);
  r.peak_after = peak(fit.schedule);
  if (r.arena_after <= fit.budget) return;

  // The memory-aware order, judged with the output views copied (compile()'s own try, if it made
  // one, judged the plain plan).
  if (const Reordering order = reorder_for_memory(fit.nodes, fit.is_output, fit.schedule, peak, fit.report); order.reordered) {
    r.rescheduled = true;
    r.peak_after = order.peak_after;
    r.arena_after = arena(fit.schedule);
    if (r.arena_after <= fit.budget) return;
  }

  Rematerializer remat(fit);
  std::vector<int> order = remat.candidates();
  std::vector<std::uint64_t> cost(fit.nodes.size(), 0);
  for (int c : order) cost[static_cast<std::size_t>(c)] = recompute_cost(fit.nodes[static_cast<std::size_t>(c)], fit.nodes);
  // Most bytes per unit of work first; ties keep the forward order.
  auto worth = [&](int c) {
    return static_cast<double>(bytes_of(fit.nodes[static_cast<std::size_t>(c)])) / static_cast<double>(cost[static_cast<std::size_t>(c)] + 1);
  };
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return worth(a) > worth(b); });

  std::vector<int> schedule = remat.schedule();
  std::size_t current = peak(schedule), target = fit.budget;
  std::size_t best = r.arena_after;
  std::vector<int> accepted, rejected;
  PassReport split_log{"split_rows", 0, {}};
  std::size_t next = 0;
  constexpr int kRounds = 3;
  int rounds = 0;
  for (;;) {
    // Take candidates while the peak is above the target, keeping each that does not raise it
    // (one that only holds the peak may complete a chain down to a kept value).
    while (current > target && next < order.size()) {
      const int c = order[next++];
      if (remat.on(c)) continue;
      remat.set(c, true);
      const std::size_t p = peak(remat.schedule());
      if (p <= current) {
        current = p;
        accepted.push_back(c);
      } else {
        remat.set(c, false);
        rejected.push_back(c);
      }
      // One rejected while others were not yet chosen may pay now: a second round over them.
      if (next == order.size() && current > target && rounds < kRounds && !rejected.empty()) {
        ++rounds;
        order = std::move(rejected);
        rejected.clear();
        next = 0;
      }
    }
    schedule = remat.schedule();
    const std::size_t planned = arena(schedule);
    best = std::min(best, planned);
    // Drops, costliest first, every recomputation the peak does not need (those that only held it
    // while a chain was incomplete): their copies may have raised the arena by where they sit.
    const auto drop_unneeded = [&] {
      for (auto c = accepted.rbegin(); c != accepted.rend(); ++c) {
        remat.set(*c, false);
        if (const std::size_t p = peak(remat.schedule()); p <= current) current = p;
        else remat.set(*c, true);
      }
    };
    if (planned <= fit.budget) {
      // Then keep the leaner plan unless it no longer fits.
      const std::vector<int> kept = accepted;
      drop_unneeded();
      std::vector<int> leaner = remat.schedule();
      if (const std::size_t a = arena(leaner); a <= fit.budget) {
        schedule = std::move(leaner);
        r.arena_after = a;
      } else {
        for (int c : kept) remat.set(c, true);
        r.arena_after = planned;
        current = peak(schedule);
      }
      r.peak_after = current;
      break;
    }
    if (next >= order.size()) {
      drop_unneeded();
      std::vector<int> leanest = remat.schedule();
      // The last lever: the values recomputation cannot make small enough, a chunk of rows at a time.
      if (fit.split_rows) {
        FittedProgram program{fit.nodes, fit.live, fit.is_output, fit.value_of, fit.recomputes, leanest, fit.gradient};
        const bool fits = split_rows_to_fit(program, fit.budget, liveness, split_log, best);
        r.row_splits = split_log.rewrites;
        if (fits) {
          schedule = std::move(leanest);
          r.arena_after = arena(schedule);
          r.peak_after = peak(schedule);
          break;
        }
      }
      const Liveness lv = liveness(leanest);
      best = std::min(best, plan_memory(lv.buffers).arena_bytes);
      const auto recomputed = static_cast<std::size_t>(std::count_if(accepted.begin(), accepted.end(), [&](int c) { return remat.on(c); }));
      throw ValueError(fmt::format(
          "compile: no plan fits the memory budget of {} bytes ({:.1f} MiB): the smallest arena reached is {} bytes "
          "({:.1f} MiB), against {} bytes without a budget, with {} of {} forward values recomputed in the backward pass{}; {}",
          fit.budget, static_cast<double>(fit.budget) / 1048576.0, best, static_cast<double>(best) / 1048576.0, r.arena_before,
          recomputed, remat.candidates().size(),
          r.row_splits > 0 ? fmt::format(" and {} regions run in row chunks", r.row_splits) : std::string(),
          describe_peak(fit.nodes, leanest, lv)));
    }
    // The plan places buffers with gaps: aim the peak lower by what the arena is over.
    const std::size_t over = planned - fit.budget;
    target = std::min(target, current) > over ? std::min(target, current) - over : 0;
  }

  PassReport& log = fit.report.passes.emplace_back(PassReport{"rematerialize", 0, {}});
  const Liveness lv = liveness(schedule);
  // Against the program without a budget: a split's chunks replace nodes as well as repeat them.
  const auto [calls_after, flops_after] = calls_and_flops(schedule, lv);
  r.extra_kernel_calls = calls_after > calls_before ? calls_after - calls_before : 0;
  r.extra_matmul_flops = flops_after > flops_before ? flops_after - flops_before : 0;
  for (int id : schedule) {
    const int from = fit.recomputes[static_cast<std::size_t>(id)];
    if (from < 0) continue;
    const Node& n = fit.nodes[static_cast<std::size_t>(id)];
    fit.live[static_cast<std::size_t>(id)] = true;
    ++r.recomputed;
    if (!lv.skip[static_cast<std::size_t>(id)] && n.op->matmul_flops == nullptr) r.extra_memory_bytes += recompute_cost(n, fit.nodes) / kFlopsPerByte;
    ++log.rewrites;
    log.changes.push_back(fmt::format("%{} recomputes {} before %{} ({} bytes)", id, describe(n, from),
                                      remat.first_reader(schedule, id), bytes_of(n)));
  }
  if (split_log.rewrites > 0) fit.report.passes.push_back(std::move(split_log));
  fit.schedule = std::move(schedule);
}

}  // namespace xg
