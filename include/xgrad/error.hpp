#pragma once
// The exceptions xgrad raises. Every failure a user can cause is one of these, and its message names
// what was wrong and where (op, node, shapes, positions).
#include <stdexcept>
#include <string>

namespace xg {

/// Base of every error xgrad raises on purpose.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Shapes that do not fit an op: raised while the graph is built or a feed is checked.
class ShapeError : public Error {
 public:
  using Error::Error;
};

/// A dtype an op cannot take (an integer tensor into exp, f32 mixed with f64, ...).
class DTypeError : public Error {
 public:
  using Error::Error;
};

/// A bad argument that is neither shape nor dtype: an axis out of range, a probability above 1, ...
class ValueError : public Error {
 public:
  using Error::Error;
};

/// An index found at run time outside its range: a label outside [0, V), a length above S.
class IndexError : public Error {
 public:
  using Error::Error;
};

/// A feed that is missing, unknown, or of the wrong shape or dtype when a Program runs.
class FeedError : public Error {
 public:
  using Error::Error;
};

/// A gradient that cannot be formed: no rule for an op, or a non-scalar output without a seed.
class GradientError : public Error {
 public:
  using Error::Error;
};

/// A file that cannot be opened, read or written (the message carries the path and the OS's reason).
class IOError : public Error {
 public:
  using Error::Error;
};

/// A checkpoint whose contents are malformed, or do not match the graph it is loaded into.
class CheckpointError : public Error {
 public:
  using Error::Error;
};

/// A NaN or infinity found by Program's finite-check mode, naming the first node that produced it.
class NonFiniteError : public Error {
 public:
  using Error::Error;
};

}  // namespace xg
