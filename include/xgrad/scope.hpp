#pragma once
// Scopes: which layer a node was built in, so that pictures of a graph can group its nodes by layer.
// A scope is a name only: it changes no parameter name, no computation and no compiled Program.
#include <cstddef>
#include <string>
#include <string_view>

namespace xg {

class Graph;

/// While a Scope lives, every node built in its graph records the scope's path (Node::scope).
/// Scopes nest: Scope(g, "encoder") and then Scope(g, "0") record "encoder.0". Destroying a Scope
/// (at the end of its block, or while an exception unwinds) restores the scope that was current when
/// it was made. The nn/ layers open one named after their parameter prefix ("encoder.0.self_attn"),
/// so the scopes of a model are its PyTorch module tree; grad() records each gradient node under
/// "grad." followed by the scope of the forward node whose rule built it.
class Scope {
 public:
  /// Enters `name` inside the current scope; `name` must not be empty.
  Scope(Graph& graph, std::string_view name);
  /// The scope of a layer given its full name, as nn/ layers are: inside the scope of layer
  /// "encoder.0", layer "encoder.0.self_attn" enters "self_attn" and layer "encoder.0" itself enters
  /// nothing new; any other name is nested whole. So a model built inside Scope(g, "model") records
  /// "model.encoder.0.self_attn" while its parameters keep their names.
  static Scope layer(Graph& graph, std::string_view name);
  /// Exactly `path` ("" for none), whatever scope is current.
  static Scope at(Graph& graph, std::string path);

  ~Scope();
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;
  Scope(Scope&&) = delete;
  Scope& operator=(Scope&&) = delete;

 private:
  Scope(Graph& graph, std::string path, std::string layer);  // enters `path` as it is

  Graph& graph_;
  std::size_t restored_depth_;  // how many scopes were open before this one
};

/// The first `depth` components of a scope path ("encoder.0.self_attn", 2 -> "encoder.0"); the whole
/// path when it has no more than `depth`.
std::string_view scope_prefix(std::string_view path, int depth);

}  // namespace xg
