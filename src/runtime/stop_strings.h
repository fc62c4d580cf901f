// Stop strings matched in the generated text as it streams, across token boundaries: text that
// could still be the start of a stop string is held back until the next token decides, and a
// matched stop string (and everything after it) is never emitted.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace gemma {

class StopStringMatcher {
 public:
  explicit StopStringMatcher(std::vector<std::string> stops);

  // Adds generated text; returns what may be emitted now. After a match, returns the text before
  // the stop string and matched() is true; further pushes return nothing.
  std::string push(std::string_view text);
  bool matched() const { return matched_; }
  // The text still held back (at the end of generation: a prefix of a stop string that never
  // completed, which belongs to the output).
  std::string flush();

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool matched_ = false;
};

}  // namespace gemma
