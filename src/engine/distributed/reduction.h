#pragma once
// How a collective combines the ranks' values.
namespace j2v::engine {

enum class Reduction { kSum, kMax, kMin };

}  // namespace j2v::engine
